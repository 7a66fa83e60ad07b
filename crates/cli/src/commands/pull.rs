//! `minibar pull`: download a catalog model or any Hugging Face repo into the shared cache,
//! with a memory-fit and disk check first and a progress bar while it runs.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use minibar_hub::{
    FileFilter, Hub, HubConfig, HubError, ModelRef, PullControl, PullEvent, PullOptions,
    PullOutcome,
};
use tokio::sync::mpsc::UnboundedReceiver;

/// Arguments of `minibar pull`.
#[derive(clap::Args)]
pub struct Args {
    /// A catalog id (`qwen3-4b`) or a Hugging Face repo (`org/name`), optionally `@revision`.
    pub model: String,
    /// Download even if the model may not fit in memory or on disk.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print progress events and the result as JSON lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// For a catalog id: which download to take (`4bit`, `8bit`, `bf16`, ...); default 4bit.
    #[arg(long)]
    pub quant: Option<String>,
    /// Also fetch files matching this glob (for example '*Q4_0.gguf'); repeatable.
    #[arg(long = "include", value_name = "GLOB")]
    pub include: Vec<String>,
    /// Only the shards these decoder blocks need, `A..B` or `A-B` (end exclusive): a cluster
    /// node's share, as `minibar cluster status` shows it. A later pull without it fills in
    /// the rest.
    #[arg(long, value_name = "A..B", value_parser = parse_layers)]
    pub layers: Option<std::ops::Range<usize>>,
}

/// `A..B` or `A-B` (end exclusive) as a range of layers.
fn parse_layers(s: &str) -> Result<std::ops::Range<usize>, String> {
    let (a, b) = s
        .split_once("..")
        .or_else(|| s.split_once('-'))
        .ok_or_else(|| format!("`{s}` is not a layer range: write A..B, for example 0..12"))?;
    let num = |x: &str| {
        x.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}` is not a layer range: write A..B, for example 0..12"))
    };
    let (a, b) = (num(a)?, num(b)?);
    if a >= b {
        return Err(format!(
            "`{s}` holds no layer: the end is exclusive, as in 0..12"
        ));
    }
    Ok(a..b)
}

/// Runs `minibar pull`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let model = resolve_model(&args.model, args.quant.as_deref())?;
    let mut config = HubConfig::from_env();
    let mut filter = FileFilter::default();
    for pattern in &args.include {
        filter = filter.include(pattern.clone());
    }
    config.filter = filter;
    let hub = Hub::new(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(pull(&hub, &model, &args))
}

/// A catalog id becomes its MLX repo (the requested quantization, else 4-bit, else the first
/// listed, else the original); anything with a `/` is a repo id.
fn resolve_model(spec: &str, quant: Option<&str>) -> anyhow::Result<ModelRef> {
    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id, Some(rev)),
        None => (spec, None),
    };
    if id.contains('/') {
        return Ok(ModelRef::new(id, revision)?);
    }
    let catalog = minibar_catalog::Catalog::load(None)?;
    let entry = catalog.get(id).with_context(|| {
        format!(
            "`{id}` is neither a catalog id nor an `org/name` repo (see models.toml for the ids)"
        )
    })?;
    // Refused before anything is downloaded: the engine's own table decides.
    let support = catalog.support(entry, minibar_engine::models::supported_architectures());
    if let Some(reason) = support.reason() {
        anyhow::bail!("{id} is not supported yet: {reason}; nothing was downloaded");
    }
    let repo = match quant {
        Some(q) => entry
            .mlx
            .iter()
            .find(|r| r.quant == q)
            .map(|r| r.repo.clone())
            .with_context(|| {
                let have: Vec<&str> = entry.mlx.iter().map(|r| r.quant.as_str()).collect();
                format!("{id} has no `{q}` download (it has: {})", have.join(", "))
            })?,
        None => entry
            .mlx
            .iter()
            .find(|r| r.quant == "4bit")
            .or_else(|| entry.mlx.first())
            .map(|r| r.repo.clone())
            .unwrap_or_else(|| entry.hf_repo.clone()),
    };
    Ok(ModelRef::new(&repo, revision)?)
}

/// Refuses, before anything is downloaded, a repository whose config.json names a model_type
/// the engine's table does not run. A repository the hub cannot plan is left to the pull,
/// which reports why (or falls back to the cache).
async fn refuse_unsupported(hub: &Hub, model: &ModelRef) -> anyhow::Result<()> {
    let Ok(plan) = hub.plan(model).await else {
        return Ok(());
    };
    let Some(model_type) = plan
        .config
        .as_ref()
        .and_then(|c| c.get("model_type"))
        .and_then(|v| v.as_str())
    else {
        return Ok(());
    };
    let catalog = minibar_catalog::Catalog::load(None)?;
    let support = catalog.support_of_type(
        model_type,
        minibar_engine::models::supported_architectures(),
    );
    if let Some(reason) = support.reason() {
        anyhow::bail!(
            "{} is not supported yet: {reason}; nothing was downloaded",
            model.repo_id
        );
    }
    Ok(())
}

async fn pull(hub: &Hub, model: &ModelRef, args: &Args) -> anyhow::Result<()> {
    refuse_unsupported(hub, model).await?;
    // Held while downloading: `minibar rm` (or the app) refuses to delete it meanwhile.
    let _in_use = minibar_hub::library::ModelInUse::acquire(
        &minibar_hub::library::LibraryPaths::from_env(),
        &model.repo_id,
        minibar_hub::library::Use::Download,
    )?;
    let control = PullControl::new();
    {
        // Ctrl-C stops cleanly; the partial files stay for the next pull.
        let control = control.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                control.cancel();
            }
        });
    }
    let mut assume_yes = args.yes;
    loop {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let options = PullOptions {
            assume_yes,
            // With --layers, the share is judged, as the rank's load gate will judge it.
            fit: Some(minibar_hub::memory_check(minibar_fit::Thresholds::default())),
            control: control.clone(),
            events: Some(tx),
            layers: args.layers.clone(),
        };
        let renderer = tokio::spawn(render(rx, args.json));
        let result = hub.pull(model, options).await;
        let _ = renderer.await;
        match result {
            Ok(outcome) => return report(&outcome, args.json),
            Err(HubError::NeedsConfirmation { concerns })
                if !args.json && std::io::stdin().is_terminal() =>
            {
                for c in &concerns {
                    eprintln!("warning: {c}");
                }
                if !confirm("Download anyway?")? {
                    anyhow::bail!("not downloaded");
                }
                assume_yes = true;
            }
            Err(HubError::Cancelled) => {
                anyhow::bail!("download stopped; the partial files were kept: run `minibar pull {model}` again to resume")
            }
            Err(e) => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({ "event": "error", "message": e.to_string() })
                    );
                }
                return Err(e.into());
            }
        }
    }
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn report(outcome: &PullOutcome, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(outcome)?;
        v["event"] = serde_json::json!("result");
        println!("{v}");
        return Ok(());
    }
    if outcome.offline {
        eprintln!("offline: the hub could not be reached; using the cached copy");
    }
    let cached: u64 = outcome
        .files
        .iter()
        .filter(|f| f.reused)
        .map(|f| f.size)
        .sum();
    println!(
        "{}@{} ready at {} ({} downloaded, {} already cached)",
        outcome.repo_id,
        &outcome.commit[..outcome.commit.len().min(12)],
        outcome.snapshot.display(),
        minibar_hub::format::bytes(outcome.downloaded_bytes),
        minibar_hub::format::bytes(cached),
    );
    Ok(())
}

/// Draws events: JSON lines, progress bars on a terminal, or plain progress lines in a log.
async fn render(mut rx: UnboundedReceiver<PullEvent>, json: bool) {
    if json {
        while let Some(e) = rx.recv().await {
            if let Ok(line) = serde_json::to_string(&e) {
                println!("{line}");
            }
        }
        return;
    }
    if std::io::stderr().is_terminal() {
        render_bars(rx).await
    } else {
        render_lines(rx).await
    }
}

/// The total bar before the plan gives the size: a spinner that says so, never "0 B/0 B".
fn unsized_total() -> ProgressBar {
    let bar = ProgressBar::no_length().with_prefix("total").with_style(
        ProgressStyle::with_template("{prefix:>12} {spinner} {bytes} of an unknown size")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

async fn render_bars(mut rx: UnboundedReceiver<PullEvent>) {
    let multi = MultiProgress::new();
    let overall_style = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let file_style =
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    let overall = multi.add(unsized_total());
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    while let Some(e) = rx.recv().await {
        match e {
            PullEvent::Planned {
                repo_id,
                commit,
                total_bytes,
                cached_bytes,
                ..
            } => {
                let _ = multi.println(format!(
                    "pulling {repo_id} at {}",
                    &commit[..commit.len().min(12)]
                ));
                overall.set_style(overall_style.clone());
                overall.set_length(total_bytes);
                overall.set_position(cached_bytes);
            }
            PullEvent::FileStarted {
                path,
                size,
                resume_from,
                ..
            } => {
                let bar = bars.entry(path.clone()).or_insert_with(|| {
                    multi.add(
                        ProgressBar::new(size)
                            .with_style(file_style.clone())
                            .with_prefix(short(&path)),
                    )
                });
                bar.set_position(resume_from);
                if resume_from > 0 {
                    bar.set_message(format!(
                        "resumed at {}",
                        minibar_hub::format::bytes(resume_from)
                    ));
                }
            }
            PullEvent::Progress {
                path,
                file,
                overall: o,
            } => {
                if let Some(bar) = bars.get(&path) {
                    bar.set_position(file.done);
                }
                overall.set_length(o.total);
                overall.set_position(o.done);
            }
            PullEvent::Retrying {
                path,
                attempt,
                reason,
                ..
            } => {
                if let Some(bar) = bars.get(&path) {
                    bar.set_message(format!("retry {attempt}: {reason}"));
                }
            }
            PullEvent::VerifyFailed { path, detail } => {
                let _ = multi.println(format!(
                    "{path}: verification failed ({detail}); fetching it again"
                ));
            }
            PullEvent::FileDone { path, .. } => {
                if let Some(bar) = bars.remove(&path) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
            PullEvent::Paused => overall.set_message("paused"),
            PullEvent::Resumed => overall.set_message(""),
            PullEvent::Done { .. } => overall.finish(),
        }
    }
    for bar in bars.values() {
        bar.abandon();
    }
    overall.abandon();
}

/// Progress as plain lines (at most one a second) for logs and pipes.
async fn render_lines(mut rx: UnboundedReceiver<PullEvent>) {
    let mut last: Option<Instant> = None;
    while let Some(e) = rx.recv().await {
        match e {
            PullEvent::Planned {
                repo_id,
                commit,
                total_bytes,
                cached_bytes,
                files,
                ..
            } => eprintln!(
                "pulling {repo_id} at {}: {} files, {} ({} cached)",
                &commit[..commit.len().min(12)],
                files.len(),
                minibar_hub::format::bytes(total_bytes),
                minibar_hub::format::bytes(cached_bytes)
            ),
            PullEvent::FileStarted {
                path, resume_from, ..
            } if resume_from > 0 => {
                eprintln!(
                    "{path}: resuming at {}",
                    minibar_hub::format::bytes(resume_from)
                )
            }
            PullEvent::Progress { overall, .. }
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                    || overall.done == overall.total =>
            {
                last = Some(Instant::now());
                let pct = if overall.total > 0 {
                    overall.done as f64 * 100.0 / overall.total as f64
                } else {
                    100.0
                };
                let eta = overall
                    .eta_secs
                    .map(|s| format!(" ETA {:.0}s", s))
                    .unwrap_or_default();
                eprintln!(
                    "{pct:5.1}% {}/{} {}/s{eta}",
                    minibar_hub::format::bytes(overall.done),
                    minibar_hub::format::bytes(overall.total),
                    minibar_hub::format::bytes(overall.bytes_per_sec as u64),
                );
            }
            PullEvent::Retrying {
                path,
                attempt,
                reason,
                delay_ms,
            } => {
                eprintln!("{path}: retry {attempt} in {delay_ms} ms ({reason})")
            }
            PullEvent::VerifyFailed { path, detail } => {
                eprintln!("{path}: verification failed ({detail}); fetching it again")
            }
            _ => {}
        }
    }
}

fn short(path: &str) -> String {
    if path.chars().count() <= 12 {
        path.to_string()
    } else {
        let tail: String = path
            .chars()
            .rev()
            .take(11)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_has_no_length_until_the_plan_says() {
        let bar = unsized_total();
        assert_eq!(bar.length(), None);
        bar.finish_and_clear();
    }

    #[test]
    fn layer_ranges_are_read_either_way() {
        assert_eq!(parse_layers("0..12"), Ok(0..12));
        assert_eq!(parse_layers("12-24"), Ok(12..24));
        assert!(parse_layers("5..5").is_err());
        assert!(parse_layers("12").is_err());
        assert!(parse_layers("a..b").is_err());
    }
}
