//! `minibar fit`: which models fit this machine's memory (or a what-if Mac), one model's
//! breakdown, and a live watch of the memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use minibar_catalog::{Catalog, CatalogEntry, Support};
use minibar_engine::models::supported_architectures;
use minibar_fit::{
    assess, assess_bytes, assess_gguf, estimate, fit_table, gb, model_from_config, snapshot, watch,
    Budget, BudgetSource, Candidate, Estimate, FitLevel, FitRow, GgufWeights, KvFormat,
    MemorySnapshot, ModelShape, Pressure, Quantization, Runtime, Thresholds, Verdict, WhatIfRow,
    Workload, MAC_MEMORY_SIZES_GB,
};
use serde::Serialize;

/// Appends a line to a String (formatting into a String cannot fail).
macro_rules! outln {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Writes to stdout; `Ok(false)` when the reader has gone (`minibar fit | head`).
fn emit(text: &str) -> Result<bool> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Arguments of `minibar fit`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Judge against a Mac with this much unified memory instead of this machine (e.g. 16GB,
    /// 512GB; GB as Apple counts RAM, 2^30 bytes).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    ram: Option<u64>,
    /// Show one model's breakdown: a catalog id, a folder with a config.json, or a GGUF file.
    #[arg(long, value_name = "ID|DIR|FILE")]
    model: Option<String>,
    /// With --model: only this quantization (bf16, 8bit, 4bit-g32, mxfp4, mixed_3_6, ...).
    #[arg(long, value_name = "QUANT", requires = "model")]
    quant: Option<String>,
    /// Context length to estimate for (tokens; 8k, 32K accepted).
    #[arg(long, default_value = "4096", value_parser = parse_tokens)]
    context: u64,
    /// Sequences run together.
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Quantize the KV cache to this many bits (mlx-lm's --kv-bits; group 64).
    #[arg(long, value_name = "BITS")]
    kv_bits: Option<u8>,
    /// Prompt tokens per prefill step (the engine's).
    #[arg(long, default_value_t = minibar_fit::engine::PREFILL_CHUNK)]
    prefill_chunk: u64,
    /// Memory to keep free for other apps for a model to count as fitting comfortably (at
    /// least 10% of the budget is kept whatever this says).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "0")]
    headroom: u64,
    /// Memory already held by models Minibar has loaded (e.g. 12GB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "0")]
    held: u64,
    /// The GPU working-set limit, when known better than macOS's default rule.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    gpu_limit: Option<u64>,
    /// Runtime to estimate for (default: this machine's; a what-if --ram is always Metal).
    #[arg(long, value_enum)]
    runtime: Option<RuntimeArg>,
    /// List the formats that won't fit, and the models the engine does not run yet, too.
    #[arg(long)]
    all: bool,
    /// Which Mac runs what: every catalog model and quantization on every unified-memory size
    /// Apple sells (8 to 512 GB), at --context and --kv-bits.
    #[arg(long, conflicts_with_all = ["ram", "model", "watch", "held", "gpu_limit"])]
    table: bool,
    /// A catalog file merged over the built-in one (default: ~/.config/minibar/models.toml).
    #[arg(long, value_name = "PATH")]
    catalog: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print the memory once a second, and what fits now, until Ctrl-C.
    #[arg(long, conflicts_with_all = ["ram", "json"])]
    watch: bool,
}

/// Which runtime the estimates assume.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RuntimeArg {
    /// MLX on Apple silicon (Metal).
    Metal,
    /// MLX's CPU backend (f32).
    Cpu,
}

/// Runs `minibar fit`.
pub fn run(args: Args) -> Result<()> {
    let catalog = Catalog::load(args.catalog.as_deref())?;
    let work = Workload {
        context: args.context,
        batch: args.batch,
        kv: match args.kv_bits {
            Some(bits) => KvFormat::Quantized { bits, group: 64 },
            None => KvFormat::Model,
        },
        prefill_chunk: args.prefill_chunk,
    };
    if args.context == 0 || args.batch == 0 || args.prefill_chunk == 0 {
        bail!("--context, --batch and --prefill-chunk must be positive");
    }
    if let Some(bits) = args.kv_bits {
        if ![2, 3, 4, 5, 6, 8].contains(&bits) {
            bail!("--kv-bits must be 2, 3, 4, 5, 6 or 8");
        }
    }
    let runtime = match (args.runtime, args.ram) {
        (Some(RuntimeArg::Metal), _) | (None, Some(_)) => Runtime::metal(),
        (Some(RuntimeArg::Cpu), _) => Runtime::cpu(),
        (None, None) => Runtime::native(),
    };
    if args.watch {
        return watch_memory(&args, &catalog, &work, &runtime);
    }
    if args.table {
        // Every column is a Mac: Metal unless told otherwise.
        let runtime = match args.runtime {
            Some(RuntimeArg::Cpu) => Runtime::cpu(),
            _ => Runtime::metal(),
        };
        return what_if(&args, &catalog, &work, &runtime);
    }
    let (budget, snap) = match args.ram {
        Some(total) => {
            let mut b = Budget::what_if(total);
            if let Some(limit) = args.gpu_limit {
                b.gpu_limit = Some(limit);
                b.usable = limit.min(total);
            }
            b.held_by_minibar = args.held;
            b.usable = b.usable.saturating_sub(args.held);
            (b, None)
        }
        None => {
            let snap = snapshot();
            (
                Budget::this_machine(&snap, args.held, args.gpu_limit),
                Some(snap),
            )
        }
    };
    match &args.model {
        Some(model) => detail(&args, &catalog, model, &work, &runtime, &budget),
        None => table(&args, &catalog, &work, &runtime, &budget, snap.as_ref()),
    }
}

fn thresholds(args: &Args) -> Thresholds {
    Thresholds::with_headroom(args.headroom)
}

fn runtime_label(rt: &Runtime) -> &'static str {
    if rt.fused_attention {
        "MLX on Metal"
    } else {
        "MLX on CPU, f32"
    }
}

fn pressure_label(p: Pressure) -> &'static str {
    match p {
        Pressure::Normal => "normal",
        Pressure::Warning => "warning",
        Pressure::Critical => "critical",
    }
}

fn describe_budget(b: &Budget, snap: Option<&MemorySnapshot>) -> String {
    let mut s = match (b.source, snap) {
        (BudgetSource::ThisMachine, Some(snap)) => format!(
            "This machine: {} memory, {} available, swap {} of {}, pressure {}",
            gb(snap.total),
            gb(snap.available),
            gb(snap.swap_used),
            gb(snap.swap_total),
            pressure_label(snap.pressure)
        ),
        _ => format!("What if: a Mac with {} GB of unified memory", b.total >> 30),
    };
    if let Some(limit) = b.gpu_limit {
        s.push_str(&format!(", GPU working-set limit {}", gb(limit)));
    }
    if b.held_by_minibar > 0 {
        s.push_str(&format!(
            ", {} held by loaded models",
            gb(b.held_by_minibar)
        ));
    }
    s.push_str(&format!(".\nA model may use {}.", gb(b.usable)));
    s
}

fn describe_work(w: &Workload, rt: &Runtime) -> String {
    let kv = match w.kv {
        KvFormat::Quantized { bits, .. } => format!(", {bits}-bit KV cache"),
        _ => String::new(),
    };
    format!(
        "Estimates for a {}-token context, batch {}{kv}, {}.",
        w.context,
        w.batch,
        runtime_label(rt)
    )
}

fn short_params(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.1}B", n as f64 / 1e9)
    } else {
        format!("{}M", n / 1_000_000)
    }
}

fn short_tokens(n: Option<u64>) -> String {
    match n {
        None => "-".into(),
        Some(n) if n >= 1024 => format!("{}K", n / 1024),
        Some(n) => n.to_string(),
    }
}

/// Whether the engine runs a catalog id (the engine's own table decides).
fn support_of(catalog: &Catalog, id: &str) -> Support {
    match catalog.get(id) {
        Some(entry) => catalog.support(entry, supported_architectures()),
        None => Support::Runs,
    }
}

#[derive(Serialize)]
struct RowJson<'a> {
    #[serde(flatten)]
    row: &'a FitRow,
    support: Support,
}

#[derive(Serialize)]
struct TableJson<'a> {
    budget: &'a Budget,
    machine: Option<&'a MemorySnapshot>,
    workload: &'a Workload,
    runtime: &'a Runtime,
    rows: Vec<RowJson<'a>>,
}

fn table(
    args: &Args,
    catalog: &Catalog,
    work: &Workload,
    runtime: &Runtime,
    budget: &Budget,
    snap: Option<&MemorySnapshot>,
) -> Result<()> {
    let rows = fit_table(
        &catalog.candidates(),
        work,
        runtime,
        budget,
        &thresholds(args),
    )?;
    let mut out = String::new();
    if args.json {
        let doc = TableJson {
            budget,
            machine: snap,
            workload: work,
            runtime,
            rows: rows
                .iter()
                .filter(|r| args.all || support_of(catalog, &r.id).runs())
                .map(|row| RowJson {
                    row,
                    support: support_of(catalog, &row.id),
                })
                .collect(),
        };
        outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        emit(&out)?;
        return Ok(());
    }
    outln!(out, "{}", describe_budget(budget, snap));
    outln!(out, "{}\n", describe_work(work, runtime));
    let unsupported = rows
        .iter()
        .filter(|r| !support_of(catalog, &r.id).runs())
        .count();
    let shown: Vec<&FitRow> = rows
        .iter()
        .filter(|r| {
            args.all || (r.verdict.level != FitLevel::WontFit && support_of(catalog, &r.id).runs())
        })
        .collect();
    let name_w = shown.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
    let id_w = shown.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let quant_w = shown
        .iter()
        .map(|r| r.quant.len())
        .max()
        .unwrap_or(5)
        .max(5);
    outln!(
        out,
        "{:<name_w$}  {:<id_w$}  {:<quant_w$}  {:>6}  {:>8}  {:<9}  {:>7}  REPO",
        "MODEL",
        "ID",
        "QUANT",
        "PARAMS",
        "NEEDS",
        "VERDICT",
        "MAX CTX"
    );
    for r in &shown {
        outln!(
            out,
            "{:<name_w$}  {:<id_w$}  {:<quant_w$}  {:>6}  {:>8}  {:<9}  {:>7}  {}",
            r.name,
            r.id,
            r.quant,
            short_params(r.params),
            gb(r.needed),
            r.verdict.level.label(),
            short_tokens(r.max_context),
            match support_of(catalog, &r.id) {
                Support::Runs => r.repo.clone().unwrap_or_default(),
                s => format!("not supported yet: {}", s.reason().unwrap_or_default()),
            }
        );
    }
    if shown.is_empty() {
        outln!(out, "(nothing in the catalog fits)");
    }
    if !args.all {
        let too_big = rows
            .iter()
            .filter(|r| r.verdict.level == FitLevel::WontFit && support_of(catalog, &r.id).runs())
            .count();
        if too_big > 0 {
            outln!(
                out,
                "\n{too_big} more formats won't fit (--all lists them)."
            );
        }
        if unsupported > 0 {
            outln!(
                out,
                "{unsupported} formats of models Minibar's engine does not run yet are hidden (--all lists them, with the reason)."
            );
        }
    }
    emit(&out)?;
    Ok(())
}

#[derive(Serialize)]
struct WhatIfJson<'a> {
    workload: &'a Workload,
    runtime: &'a Runtime,
    thresholds: Thresholds,
    sizes_gb: &'a [u64],
    rows: &'a [WhatIfRow],
}

/// One cell: `fits 33K`, `tight 4K`, `no`.
fn what_if_cell(level: FitLevel, max_context: Option<u64>) -> String {
    match level {
        FitLevel::WontFit => "no".into(),
        FitLevel::Fits => format!("fits {}", short_tokens(max_context)),
        FitLevel::Tight => format!("tight {}", short_tokens(max_context)),
    }
}

/// `minibar fit --table`: the catalog's models (those the engine runs, unless --all) on every
/// Mac size, each cell minibar-fit's verdict and the largest context.
fn what_if(args: &Args, catalog: &Catalog, work: &Workload, runtime: &Runtime) -> Result<()> {
    let candidates: Vec<Candidate> = catalog
        .candidates()
        .into_iter()
        .filter(|c| args.all || support_of(catalog, &c.id).runs())
        .collect();
    let t = thresholds(args);
    let rows = minibar_fit::what_if_table(&candidates, &MAC_MEMORY_SIZES_GB, work, runtime, &t)?;
    let mut out = String::new();
    if args.json {
        let doc = WhatIfJson {
            workload: work,
            runtime,
            thresholds: t,
            sizes_gb: &MAC_MEMORY_SIZES_GB,
            rows: &rows,
        };
        outln!(out, "{}", serde_json::to_string_pretty(&doc)?);
        emit(&out)?;
        return Ok(());
    }
    outln!(
        out,
        "Which Mac runs what: {} Cells: fits / tight / no, and the largest context.\n",
        describe_work(work, runtime)
    );
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
    let quant_w = rows.iter().map(|r| r.quant.len()).max().unwrap_or(5).max(5);
    let mut header = format!(
        "{:<name_w$}  {:<quant_w$}  {:>8}",
        "MODEL", "QUANT", "NEEDS"
    );
    for gb_size in MAC_MEMORY_SIZES_GB {
        header.push_str(&format!("  {:>10}", format!("{gb_size} GB")));
    }
    outln!(out, "{header}");
    for r in &rows {
        let mut line = format!(
            "{:<name_w$}  {:<quant_w$}  {:>8}",
            r.name,
            r.quant,
            gb(r.needed)
        );
        for c in &r.cells {
            line.push_str(&format!("  {:>10}", what_if_cell(c.level, c.max_context)));
        }
        outln!(out, "{}", line.trim_end());
    }
    if !args.all {
        let hidden = catalog.candidates().len() - candidates.len();
        if hidden > 0 {
            outln!(
                out,
                "\n{hidden} formats of models Minibar's engine does not run yet are hidden (--all lists them)."
            );
        }
    }
    emit(&out)?;
    Ok(())
}

/// A model to detail: a catalog entry, or a local folder's config.json.
struct Subject {
    title: String,
    shape: ModelShape,
    formats: Vec<(Quantization, Option<String>)>,
}

fn subject(catalog: &Catalog, model: &str, quant: Option<&str>) -> Result<Subject> {
    let wanted = quant
        .map(|q| q.parse::<Quantization>())
        .transpose()
        .context("--quant")?;
    if let Some(entry) = catalog.get(model) {
        let formats = match wanted {
            Some(q) => {
                let repo = entry
                    .mlx
                    .iter()
                    .find(|r| r.quantization().ok().as_ref() == Some(&q))
                    .map(|r| r.repo.clone());
                vec![(q, repo)]
            }
            None => entry
                .candidates()
                .into_iter()
                .map(|c| (c.quant, c.repo))
                .collect(),
        };
        return Ok(Subject {
            title: entry_title(entry),
            shape: entry.shape.clone(),
            formats,
        });
    }
    let dir = Path::new(model);
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        bail!(
            "`{model}` is neither a catalog id nor a folder with a config.json \
             (`minibar fit --all` lists the ids)"
        );
    }
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", config_path.display()))?;
    let (shape, stored) = model_from_config(&config)
        .with_context(|| format!("reading the model from {}", config_path.display()))?;
    let quant = wanted.unwrap_or(stored);
    Ok(Subject {
        title: format!("{} ({})", dir.display(), shape.model_type),
        shape,
        formats: vec![(quant, None)],
    })
}

fn entry_title(e: &CatalogEntry) -> String {
    let active = e
        .params_active
        .map(|a| format!(", {} active", short_params(a)))
        .unwrap_or_default();
    format!(
        "{} [{}]: {}, {} parameters{active}, {} license{}; {}",
        e.name,
        e.id,
        e.shape.model_type,
        short_params(e.params_total),
        e.license,
        if e.gated { ", gated" } else { "" },
        e.hf_repo
    )
}

#[derive(Serialize)]
struct DetailJson {
    quant: String,
    repo: Option<String>,
    estimate: Estimate,
    verdict: Verdict,
    max_context: Option<u64>,
}

fn detail(
    args: &Args,
    catalog: &Catalog,
    model: &str,
    work: &Workload,
    runtime: &Runtime,
    budget: &Budget,
) -> Result<()> {
    if Path::new(model).is_file() {
        return gguf_detail(args, Path::new(model), runtime, budget);
    }
    let s = subject(catalog, model, args.quant.as_deref())?;
    let mut details = Vec::new();
    for (quant, repo) in &s.formats {
        let a = assess(&s.shape, quant, work, runtime, budget, &thresholds(args))?;
        details.push(DetailJson {
            quant: quant.to_string(),
            repo: repo.clone(),
            estimate: a.estimate,
            verdict: a.verdict,
            max_context: a.max_context,
        });
    }
    let mut out = String::new();
    if args.json {
        outln!(out, "{}", serde_json::to_string_pretty(&details)?);
        emit(&out)?;
        return Ok(());
    }
    outln!(out, "{}", s.title);
    if let Some(reason) = catalog.get(model).and_then(|e| {
        catalog
            .support(e, supported_architectures())
            .reason()
            .map(String::from)
    }) {
        outln!(out, "Not supported yet: {reason}.");
    }
    outln!(
        out,
        "{}",
        describe_budget(budget, None).replace("What if: ", "Against: ")
    );
    outln!(out, "{}", describe_work(work, runtime));
    for d in &details {
        let e = &d.estimate;
        let kv = &e.kv_cache;
        outln!(
            out,
            "\n{}{}  ({:.2} bits per weight)",
            d.quant,
            d.repo
                .as_ref()
                .map(|r| format!("  {r}"))
                .unwrap_or_default(),
            e.bits_per_weight
        );
        if e.dequantized {
            outln!(
                out,
                "  loaded as {}: the engine expands quantized models of up to {} dense on the CPU",
                e.loaded_as,
                gb(minibar_fit::engine::CPU_DEQUANTIZE_LIMIT)
            );
        }
        outln!(out, "  weights      {:>9}", gb(e.weights.total));
        for (kind, bytes) in &e.weights.by_kind {
            outln!(out, "    {:<10} {:>9}", kind.label(), gb(*bytes));
        }
        let mut layers = format!("{} full × {} tokens", kv.full_layers, kv.full_tokens);
        if kv.sliding_layers > 0 {
            layers.push_str(&format!(
                ", {} sliding × {} tokens",
                kv.sliding_layers, kv.sliding_tokens
            ));
        }
        if kv.stateless_layers > 0 {
            layers.push_str(&format!(", {} without cache", kv.stateless_layers));
        }
        outln!(out, "  KV cache     {:>9}  ({layers})", gb(kv.total));
        outln!(out, "  activations  {:>9}", gb(e.activations));
        outln!(out, "  runtime      {:>9}", gb(e.overhead));
        outln!(out, "  total        {:>9}", gb(e.total));
        outln!(out, "  {}: {}", d.verdict.level.label(), d.verdict.reason);
        match d.max_context {
            Some(c) => outln!(out, "  largest context that fits: {c} tokens"),
            None => outln!(out, "  not even a one-token context fits"),
        }
    }
    emit(&out)?;
    Ok(())
}

/// A GGUF file judged as the load gate judges it: its weights as the engine holds them.
fn gguf_detail(args: &Args, path: &Path, runtime: &Runtime, budget: &Budget) -> Result<()> {
    let weights = GgufWeights::open(path)
        .with_context(|| format!("`{}` is not a GGUF file", path.display()))?;
    let a = assess_gguf(&weights, runtime, budget, &thresholds(args));
    let mut out = String::new();
    if args.json {
        outln!(out, "{}", serde_json::to_string_pretty(&a)?);
        emit(&out)?;
        return Ok(());
    }
    outln!(out, "{} (GGUF)", path.display());
    outln!(
        out,
        "{}",
        describe_budget(budget, None).replace("What if: ", "Against: ")
    );
    outln!(out, "  weights in the file  {:>9}", gb(a.load.file_bytes));
    outln!(
        out,
        "  weights loaded       {:>9}  ({})",
        gb(a.load.loaded_bytes),
        if a.load.dequantized {
            "expanded to dense weights, as the engine does on the CPU"
        } else {
            "each GGUF type in its MLX form"
        }
    );
    outln!(out, "  {}: {}", a.verdict.level.label(), a.verdict.reason);
    emit(&out)?;
    Ok(())
}

fn watch_memory(args: &Args, catalog: &Catalog, work: &Workload, runtime: &Runtime) -> Result<()> {
    // Estimates do not change while watching: compute them once, compare each reading.
    let candidates: Vec<Candidate> = match &args.model {
        Some(model) => {
            let s = subject(catalog, model, args.quant.as_deref())?;
            s.formats
                .into_iter()
                .map(|(quant, repo)| Candidate {
                    id: model.clone(),
                    name: model.clone(),
                    shape: s.shape.clone(),
                    quant,
                    repo,
                })
                .collect()
        }
        None => catalog.candidates(),
    };
    let mut needs = Vec::with_capacity(candidates.len());
    for c in &candidates {
        let e = estimate(&c.shape, &c.quant, work, runtime)?;
        needs.push((e.params.total, e.bits_per_weight, e.total, c));
    }
    if !emit(&format!("{} Ctrl-C stops.\n", describe_work(work, runtime)))? {
        return Ok(());
    }
    for snap in watch(Duration::from_secs(1)) {
        let mut out = String::new();
        let budget = Budget::this_machine(&snap, args.held, args.gpu_limit);
        let t = thresholds(args);
        let comfy = needs
            .iter()
            .filter(|(_, _, need, _)| assess_bytes(*need, &budget, &t).level == FitLevel::Fits);
        let count = comfy.clone().count();
        let best = comfy
            .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
            .map(|(_, _, need, c)| format!("{} {} ({})", c.name, c.quant, gb(*need)))
            .unwrap_or_else(|| "nothing".into());
        outln!(out,
            "{}  available {}  used {}  swap {}  pressure {}  may use {}  fits: {count} formats, largest {best}",
            clock(),
            gb(snap.available),
            gb(snap.used),
            gb(snap.swap_used),
            pressure_label(snap.pressure),
            gb(budget.usable),
        );
        if !emit(&out)? {
            break;
        }
    }
    Ok(())
}

/// UTC wall-clock time as hh:mm:ss.
fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses a memory size: `16GB`, `16G`, `16` (GB), `1.5TB`, `512MB`; binary units, as Apple
/// counts RAM.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase().replace(' ', "");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 16GB)"))?;
    let scale = match unit {
        "" | "g" | "gb" | "gib" => 1u64 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(format!("unknown unit in `{s}` (use MB, GB or TB)")),
    };
    if !value.is_finite() || value < 0.0 || value * scale as f64 > (64u64 << 40) as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok((value * scale as f64) as u64)
}

/// Parses a token count: `4096`, `8k`, `32K`.
fn parse_tokens(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, scale) = match t.strip_suffix('k') {
        Some(n) => (n, 1024),
        None => (t.as_str(), 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{s}` is not a token count (try 4096 or 32k)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("16GB"), Ok(16 << 30));
        assert_eq!(parse_size("16g"), Ok(16 << 30));
        assert_eq!(parse_size("64"), Ok(64 << 30));
        assert_eq!(parse_size("1.5TB"), Ok(3 << 39));
        assert_eq!(parse_size("512 MB"), Ok(512 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("16PB").is_err());
        assert!(parse_size("-1GB").is_err());
    }

    #[test]
    fn token_counts_accept_k() {
        assert_eq!(parse_tokens("8k"), Ok(8192));
        assert_eq!(parse_tokens("4096"), Ok(4096));
        assert!(parse_tokens("0").is_err());
        assert!(parse_tokens("many").is_err());
    }
}
