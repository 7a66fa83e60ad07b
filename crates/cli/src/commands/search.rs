//! `minibar search QUERY`: models on the Hugging Face hub (mlx-community's first), each with
//! minibar-fit's verdict for this machine and whether Minibar's engine runs it, from its
//! config.json and file sizes, before anything is downloaded. A hit pulls with `minibar pull`.

use anyhow::Context;
use minibar_catalog::{Catalog, Support};
use minibar_engine::models::supported_architectures;
use minibar_fit::{gb, Assessment, Budget, Runtime, Thresholds, Workload};
use minibar_hub::{Hub, HubConfig, ModelRef, SearchHit};
use serde::Serialize;

/// Arguments of `minibar search`.
#[derive(clap::Args)]
pub struct Args {
    /// Words in the repository name (`qwen3 4b`, `llama-3.2`).
    pub query: String,
    /// Results to show.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Context length the fit is judged for (tokens).
    #[arg(long, default_value_t = 4096)]
    pub context: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One result with what Minibar makes of it.
#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    hit: SearchHit,
    /// `model_type` from its config.json.
    model_type: Option<String>,
    /// Bytes of weight files.
    weight_bytes: Option<u64>,
    /// Whether the engine runs it.
    support: Option<Support>,
    /// minibar-fit's verdict for this machine.
    fit: Option<Assessment>,
    /// Why it could not be judged (no config.json, only GGUF files, ...).
    note: Option<String>,
}

/// Runs `minibar search`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.context == 0 || args.limit == 0 {
        anyhow::bail!("--context and --limit must be positive");
    }
    let hub = Hub::new(HubConfig::from_env())?;
    let catalog = Catalog::load(None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let rows = runtime.block_on(search(&hub, &catalog, &args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("nothing on {} matches `{}`", hub.endpoint(), args.query);
        return Ok(());
    }
    let repo_w = rows
        .iter()
        .map(|r| r.hit.repo_id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<repo_w$}  {:>8}  {:>8}  {:<9}  {:>7}  RUNS",
        "REPO", "WEIGHTS", "NEEDS", "VERDICT", "MAX CTX"
    );
    for r in &rows {
        let (needs, verdict, ctx) = match &r.fit {
            Some(a) => (
                gb(a.verdict.needed),
                a.verdict.level.label().to_string(),
                a.max_context.map_or("-".into(), |c| c.to_string()),
            ),
            None => ("-".into(), "?".into(), "-".into()),
        };
        let runs = match (&r.support, &r.note) {
            (Some(Support::Runs), _) => "yes".to_string(),
            (Some(s), _) => format!("not supported yet: {}", s.reason().unwrap_or_default()),
            (None, Some(note)) => note.clone(),
            (None, None) => "?".into(),
        };
        println!(
            "{:<repo_w$}  {:>8}  {:>8}  {:<9}  {:>7}  {runs}",
            r.hit.repo_id,
            r.weight_bytes.map_or("-".into(), gb),
            needs,
            verdict,
            ctx
        );
    }
    println!("\nDownload one with `minibar pull REPO`.");
    Ok(())
}

async fn search(hub: &Hub, catalog: &Catalog, args: &Args) -> anyhow::Result<Vec<Row>> {
    let hits = hub.search(&args.query, args.limit).await?;
    let budget = Budget::this_machine(&minibar_fit::snapshot(), 0, None);
    let work = Workload::with_context(args.context);
    let mut rows = Vec::with_capacity(hits.len());
    for hit in hits {
        let mut row = Row {
            hit,
            model_type: None,
            weight_bytes: None,
            support: None,
            fit: None,
            note: None,
        };
        // The id was checked by the hub crate; planning fetches config.json and sizes only.
        let plan = match ModelRef::new(&row.hit.repo_id, None) {
            Ok(model) => hub.plan(&model).await,
            Err(e) => Err(e),
        };
        match plan {
            Err(e) => row.note = Some(e.to_string()),
            Ok(plan) => {
                row.weight_bytes = Some(plan.weight_bytes());
                match plan.config.as_ref() {
                    None => row.note = Some("no config.json".into()),
                    Some(config) => {
                        let model_type = config
                            .get("model_type")
                            .and_then(|v| v.as_str())
                            .map(String::from);
                        row.support = model_type
                            .as_deref()
                            .map(|t| catalog.support_of_type(t, supported_architectures()));
                        row.model_type = model_type;
                        match minibar_fit::model_from_config(config).and_then(|(shape, quant)| {
                            minibar_fit::assess(
                                &shape,
                                &quant,
                                &work,
                                &Runtime::native(),
                                &budget,
                                &Thresholds::default(),
                            )
                        }) {
                            Ok(a) => row.fit = Some(a),
                            Err(e) => row.note = Some(format!("cannot estimate: {e}")),
                        }
                    }
                }
            }
        }
        rows.push(row);
    }
    Ok(rows)
}
