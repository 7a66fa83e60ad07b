//! `minibar bench`: what this machine does with local models (pp512, tg128, depth, batch
//! scaling), printed as a table and saved to the benchmark history.

use std::path::PathBuf;

use anyhow::{bail, Context};
use minibar_bench::{
    export, history::compare_runs, ladder, run_suite, table, CancelToken, History, Installed,
    Progress, SuiteConfig,
};

use super::{force, model_arg};

/// Export formats.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// llama-bench-style JSON rows.
    Json,
    /// llama-bench-style CSV.
    Csv,
    /// llama-bench-style Markdown table.
    Md,
}

/// Arguments of `minibar bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Under a minute: 2 runs per test, no depth test, batch 1, 4, 16 (the default).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// 5 runs per test, generation at depth 4096, batch 1 to 32.
    #[arg(long)]
    pub full: bool,
    /// Print the whole record as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Models to run (paths or store names; repeatable). Default: the default model, and with
    /// --full every other installed model from the smallest up (those that won't fit are
    /// skipped).
    #[arg(long, short)]
    pub model: Vec<String>,
    /// Load the named models even if they won't fit in memory (remembered per model; MLX's
    /// memory limit still applies).
    #[arg(long, requires = "model")]
    pub force: bool,
    /// Timed runs per test (overrides the mode's).
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Prompt tokens of the pp test.
    #[arg(long)]
    pub n_prompt: Option<usize>,
    /// Generated tokens of the tg test.
    #[arg(long)]
    pub n_gen: Option<usize>,
    /// Skip the batch-scaling test.
    #[arg(long)]
    pub no_batch: bool,
    /// Do not save the run to the history.
    #[arg(long)]
    pub no_save: bool,
    /// Write the run (or, with --history-id, a stored run) in this format.
    #[arg(long, value_enum)]
    pub export: Option<Format>,
    /// Where to write the export (default: standard output).
    #[arg(long, requires = "export")]
    pub out: Option<PathBuf>,
    /// List the stored runs and exit.
    #[arg(long)]
    pub history: bool,
    /// Export a stored run instead of running (with --export).
    #[arg(long, requires = "export")]
    pub history_id: Option<i64>,
    /// Compare two stored runs (ids), second against first.
    #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"])]
    pub compare: Option<Vec<i64>>,
    /// Measure Minibar, mlx-lm (stock and with OpenBLAS) and llama.cpp on the same weights
    /// (runs benches/compare_mlx_lm.py with $MINIBAR_REFERENCE_PYTHON).
    #[arg(long)]
    pub compare_mlx_lm: bool,
}

/// The benchmark history; a damaged file is set aside (and the user told), as the app does,
/// instead of stopping every `minibar bench`.
fn open_history(path: &std::path::Path) -> anyhow::Result<History> {
    if let Some(notice) = minibar_sqlite::set_aside_if_damaged(path, "Your benchmark history")? {
        eprintln!("minibar: {notice}");
    }
    Ok(History::open(path)?)
}

/// Runs `minibar bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.compare_mlx_lm {
        return compare_mlx_lm(&args);
    }
    let history_path = History::default_path();
    if args.history {
        let h = open_history(&history_path)?;
        for r in h.list()? {
            println!(
                "{:>5}  {}  {:5}  {}  {}",
                r.id,
                r.test_time,
                r.mode,
                r.cpu,
                r.models.join(", ")
            );
        }
        return Ok(());
    }
    if let Some(ids) = &args.compare {
        let h = open_history(&history_path)?;
        let load = |id: i64| {
            h.load(id)?
                .with_context(|| format!("no benchmark run {id} in {}", history_path.display()))
        };
        let (a, b) = (load(ids[0])?, load(ids[1])?);
        println!(
            "run {} ({}) against run {} ({})",
            ids[1], b.test_time, ids[0], a.test_time
        );
        for c in compare_runs(&a, &b) {
            println!(
                "{:40} {:16} {:9.2} -> {:9.2} t/s  {:.3}x",
                c.model, c.test, c.before_ts, c.after_ts, c.ratio
            );
        }
        return Ok(());
    }
    if let Some(id) = args.history_id {
        let h = open_history(&history_path)?;
        let run = h
            .load(id)?
            .with_context(|| format!("no benchmark run {id} in {}", history_path.display()))?;
        return write_export(&args, &run);
    }

    let models = if args.model.is_empty() && args.full {
        installed_ladder()?
    } else if args.model.is_empty() {
        vec![model_arg::resolve(None)?]
    } else {
        args.model
            .iter()
            .map(|m| model_arg::resolve(Some(m)))
            .collect::<anyhow::Result<_>>()?
    };
    let mut forced = Vec::new();
    let mut in_use = Vec::new();
    for m in &models {
        if force::forced(m, args.force)? {
            forced.push(m.clone());
        }
        in_use.extend(force::hold(m, minibar_hub::library::Use::Benchmark)?);
    }
    let mut config = if args.full {
        SuiteConfig::full(models)
    } else {
        SuiteConfig::quick(models)
    };
    config.forced = forced;
    if let Some(r) = args.repetitions {
        config.repetitions = r;
    }
    if let Some(n) = args.n_prompt {
        config.n_prompt = n;
    }
    if let Some(n) = args.n_gen {
        config.n_gen = n;
    }
    if args.no_batch {
        config.batch_sizes.clear();
    }
    let cancel = CancelToken::new();
    super::interrupt::cancel_on_ctrl_c(&cancel);
    let mut run = run_suite(&config, &cancel, &mut |p| {
        if let Progress::Step { done, total, label } = p {
            eprintln!("[{:>2}/{total}] {label}", done + 1);
        }
    })?;
    if !args.no_save {
        let mut h = open_history(&history_path)?;
        let id = h.save(&mut run)?;
        eprintln!("saved as run {id} in {}", history_path.display());
    }
    if args.export.is_some() {
        write_export(&args, &run)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else if args.export.is_none() || args.out.is_some() {
        print!("{}", table::render(&run));
    }
    Ok(())
}

/// The default model, then every complete installed model (store and Hugging Face cache).
fn installed_ladder() -> anyhow::Result<Vec<PathBuf>> {
    let default = model_arg::resolve(None)?;
    let library =
        minibar_hub::library::list_models(&minibar_hub::library::LibraryPaths::from_env())
            .context("cannot list the installed models")?;
    let installed: Vec<Installed> = library
        .models
        .into_iter()
        .filter(|m| m.complete)
        .map(|m| Installed {
            path: m.path,
            size_bytes: m.size_bytes,
        })
        .collect();
    Ok(ladder(&default, &installed))
}

fn write_export(args: &Args, run: &minibar_bench::BenchRun) -> anyhow::Result<()> {
    let text = match args.export {
        Some(Format::Json) => export::to_json(run)?,
        Some(Format::Csv) => export::to_csv(run)?,
        Some(Format::Md) => export::to_markdown(run),
        None => return Ok(()),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Runs the comparison script of the source tree against this binary.
fn compare_mlx_lm(args: &Args) -> anyhow::Result<()> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/compare_mlx_lm.py");
    if !script.exists() {
        bail!(
            "{} is missing: --compare-mlx-lm runs from a source checkout",
            script.display()
        );
    }
    let python = std::env::var_os("MINIBAR_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/minibar/venv/bin/python"))
        })
        .context("set MINIBAR_REFERENCE_PYTHON to a Python with mlx-lm (make test sets one up)")?;
    let gguf = match args.model.first() {
        Some(m) => model_arg::resolve(Some(m))?,
        None => model_arg::resolve(None)?,
    };
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .arg("--minibar")
        .arg(std::env::current_exe()?)
        .arg("--gguf")
        .arg(&gguf);
    if let Some(r) = args.repetitions {
        cmd.arg("--repetitions").arg(r.to_string());
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    Ok(())
}
