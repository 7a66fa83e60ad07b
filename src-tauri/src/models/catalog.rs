//! The catalog as the Models view shows it: every model with its quantizations, each judged
//! against this machine's memory, marked installed, with its download state.

use std::collections::HashMap;

use minibar_catalog::{Catalog, CatalogEntry};
use minibar_fit::{
    assess, assess_bytes, assess_gguf, model_from_config, Assessment, Budget, Candidate, FitLevel,
    GgufWeights, MemorySnapshot, Runtime, Thresholds, Verdict, Workload,
};

use super::library::Installed;
use crate::types::{
    AppError, CatalogModel, DownloadProgress, FitReport, FitThresholds, FitVerdict,
    MemoryBreakdown, ModelSupport, ModelVariant, Settings,
};

/// What a listing needs besides the catalog.
pub struct Context<'a> {
    /// Saved settings (context length, headroom).
    pub settings: &'a Settings,
    /// This machine's memory now.
    pub memory: &'a MemorySnapshot,
    /// Bytes Minibar's loaded model holds.
    pub held_by_minibar: u64,
    /// Installed models.
    pub installed: &'a [Installed],
    /// Downloads by variant id.
    pub downloads: &'a HashMap<String, DownloadProgress>,
    /// The memory of each node of the cluster that is up (`minibar cluster up`), for the
    /// "fits across N nodes" verdict; `None` when none is.
    pub cluster: Option<&'a [u64]>,
}

impl Context<'_> {
    fn budget(&self) -> Budget {
        Budget::this_machine(self.memory, self.held_by_minibar, None)
    }

    /// The settings' headroom is what "comfortable" keeps free, not a smaller budget: a model
    /// that fits only by eating into it is tight, not out.
    fn thresholds(&self) -> Thresholds {
        Thresholds::with_headroom(self.settings.memory_headroom_bytes)
    }

    fn workload(&self) -> Workload {
        Workload::with_context(self.settings.context_length.max(1))
    }

    /// `fit` with, when it won't fit here, whether it fits across the cluster's nodes (a model
    /// of `layers` blocks and `weights` bytes of weights).
    fn across(&self, mut fit: FitReport, layers: usize, weights: u64) -> FitReport {
        if let (FitVerdict::WontFit, Some(memory)) = (fit.verdict, self.cluster) {
            fit.across = crate::cluster::across(layers, weights, memory);
        }
        fit
    }
}

/// The report the UI draws: minibar-fit's verdict as it is, with its numbers and thresholds,
/// and where the bytes go (`kv_and_overhead`: KV cache, then activations and runtime).
fn report(
    v: Verdict,
    max_context: Option<u64>,
    weights: u64,
    kv_and_overhead: (u64, u64),
    memory: &MemorySnapshot,
) -> FitReport {
    FitReport {
        verdict: match v.level {
            FitLevel::Fits => FitVerdict::Fits,
            FitLevel::Tight => FitVerdict::Tight,
            FitLevel::WontFit => FitVerdict::WontFit,
        },
        reason: v.reason,
        headroom_bytes: v.headroom,
        max_context: max_context.unwrap_or(0),
        needed_bytes: v.needed,
        usable_bytes: v.usable,
        comfortable_bytes: v.comfortable,
        thresholds: FitThresholds {
            comfort_margin: v.thresholds.comfort_margin,
            headroom_bytes: v.thresholds.headroom,
        },
        breakdown: MemoryBreakdown {
            weights_bytes: weights,
            kv_cache_bytes: kv_and_overhead.0,
            overhead_bytes: kv_and_overhead.1,
            in_use_bytes: memory.used,
            // What is in use plus what a model may use: the bar overflows exactly when the
            // verdict is "won't fit".
            budget_bytes: memory.used + v.usable,
        },
        across: None,
    }
}

fn assessed(a: Assessment, memory: &MemorySnapshot) -> FitReport {
    let e = &a.estimate;
    let parts = (e.kv_cache.total, e.activations + e.overhead);
    report(a.verdict, a.max_context, e.weights.total, parts, memory)
}

/// A catalog candidate as a variant.
fn variant(
    entry: &CatalogEntry,
    c: &Candidate,
    ctx: &Context<'_>,
    budget: &Budget,
) -> Option<ModelVariant> {
    let a = assess(
        &c.shape,
        &c.quant,
        &ctx.workload(),
        &Runtime::native(),
        budget,
        &ctx.thresholds(),
    )
    .ok()?;
    let quant = c.quant.to_string();
    let id = format!("{}@{quant}", entry.id);
    let (layers, weights) = (c.shape.layers as usize, a.estimate.weights.total);
    let on_disk = ctx.installed.iter().find(|i| i.variant_id == id);
    Some(ModelVariant {
        model_id: entry.id.clone(),
        quant,
        bits_per_weight: a.estimate.bits_per_weight,
        size_bytes: a.estimate.weights.total,
        fit: ctx.across(assessed(a, ctx.memory), layers, weights),
        installed: on_disk.is_some(),
        unverified_files: on_disk.map(|i| i.unverified.clone()).unwrap_or_default(),
        download: ctx.downloads.get(&id).cloned(),
        id,
    })
}

/// A model judged by its config.json (shape and quantization), as the list judges catalog
/// variants; `None` when the config cannot be read as a model minibar-fit knows.
pub fn config_fit(config: &serde_json::Value, ctx: &Context<'_>) -> Option<FitReport> {
    let (shape, quant) = model_from_config(config).ok()?;
    let a = assess(
        &shape,
        &quant,
        &ctx.workload(),
        &Runtime::native(),
        &ctx.budget(),
        &ctx.thresholds(),
    )
    .ok()?;
    let weights = a.estimate.weights.total;
    Some(ctx.across(assessed(a, ctx.memory), shape.layers as usize, weights))
}

/// An installed model judged as it is stored: its folder's config.json (shape and
/// quantization) when it has one, a GGUF file by its weights as the engine loads them (the
/// load gate's rule), else weights only by its size on disk.
fn installed_fit(i: &Installed, ctx: &Context<'_>, budget: &Budget) -> FitReport {
    if let Ok(weights) = GgufWeights::open(&i.path) {
        let a = assess_gguf(&weights, &Runtime::native(), budget, &ctx.thresholds());
        let mut v = a.verdict;
        v.reason = format!("{} (weights only, as loaded)", v.reason);
        let fit = report(v, None, a.load.loaded_bytes, (0, 0), ctx.memory);
        // Its block count, as the ranks read it, only when the cluster is asked.
        let layers = match (fit.verdict, ctx.cluster) {
            (FitVerdict::WontFit, Some(_)) => minibar_engine::read_args(&i.path)
                .map(|a| a.num_hidden_layers.max(0) as usize)
                .unwrap_or(0),
            _ => 0,
        };
        return ctx.across(fit, layers, a.load.loaded_bytes);
    }
    let from_config = std::fs::read_to_string(i.path.join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|c| config_fit(&c, ctx));
    match from_config {
        Some(fit) => fit,
        None => {
            let mut v = assess_bytes(i.size_bytes, budget, &ctx.thresholds());
            v.reason = format!("{} (weights only: its shape is unknown)", v.reason);
            report(v, None, i.size_bytes, (0, 0), ctx.memory)
        }
    }
}

/// Whether an installed model fits this machine (tight included): the list's verdict, which
/// decides whether its chat may go to a cluster instead.
pub fn fits_here(i: &Installed, ctx: &Context<'_>) -> bool {
    installed_fit(i, ctx, &ctx.budget()).verdict != FitVerdict::WontFit
}

/// An installed file the catalog lists no download for (a GGUF import).
fn local_variant(
    entry: &CatalogEntry,
    i: &Installed,
    ctx: &Context<'_>,
    budget: &Budget,
) -> ModelVariant {
    let bits = i
        .bits_per_weight
        .unwrap_or(i.size_bytes as f64 * 8.0 / entry.params_total.max(1) as f64);
    ModelVariant {
        id: i.variant_id.clone(),
        model_id: entry.id.clone(),
        quant: i.quant.clone(),
        bits_per_weight: bits,
        size_bytes: i.size_bytes,
        fit: installed_fit(i, ctx, budget),
        installed: true,
        unverified_files: i.unverified.clone(),
        download: None,
    }
}

/// Every catalog model with its variants, then installed models the catalog does not know.
pub fn list(catalog: &Catalog, ctx: &Context<'_>) -> Vec<CatalogModel> {
    let budget = ctx.budget();
    let mut out: Vec<CatalogModel> = catalog
        .entries()
        .iter()
        .map(|entry| {
            let mut variants: Vec<ModelVariant> = entry
                .candidates()
                .iter()
                .filter_map(|c| variant(entry, c, ctx, &budget))
                .collect();
            for i in ctx.installed.iter().filter(|i| i.model_id == entry.id) {
                if !variants.iter().any(|v| v.id == i.variant_id) {
                    variants.push(local_variant(entry, i, ctx, &budget));
                }
            }
            CatalogModel {
                id: entry.id.clone(),
                name: entry.name.clone(),
                family: entry.family.clone(),
                params_b: entry.params_total as f64 / 1e9,
                description: format!("{} · {} · {}", entry.hf_repo, entry.license, entry.family),
                context_length: entry.shape.max_context,
                support: support(catalog, entry),
                variants,
            }
        })
        .collect();
    for i in ctx
        .installed
        .iter()
        .filter(|i| catalog.get(&i.model_id).is_none())
    {
        out.push(CatalogModel {
            id: i.model_id.clone(),
            name: i.name.clone(),
            family: "local".into(),
            params_b: 0.0,
            description: format!("Installed at {}", i.path.display()),
            context_length: 0,
            // Installed by hand: loading it is the test.
            support: ModelSupport {
                runs: true,
                reason: None,
            },
            variants: vec![ModelVariant {
                id: i.variant_id.clone(),
                model_id: i.model_id.clone(),
                quant: i.quant.clone(),
                bits_per_weight: i.bits_per_weight.unwrap_or(0.0),
                size_bytes: i.size_bytes,
                fit: installed_fit(i, ctx, &budget),
                installed: true,
                unverified_files: i.unverified.clone(),
                download: None,
            }],
        });
    }
    out
}

/// Whether the engine runs a catalog entry: its own table of architectures decides.
fn support(catalog: &Catalog, entry: &CatalogEntry) -> ModelSupport {
    support_of_type(catalog, entry.model_type())
}

/// Whether the engine runs models of `model_type` (one found on the hub, say), and why not.
pub fn support_of_type(catalog: &Catalog, model_type: &str) -> ModelSupport {
    let s = catalog.support_of_type(
        model_type,
        minibar_engine::models::supported_architectures(),
    );
    ModelSupport {
        runs: s.runs(),
        reason: s.reason().map(String::from),
    }
}

/// The download repo of a catalog variant id; refused, with the reason, for a model the
/// engine does not run, before anything is downloaded.
pub fn repo_of(catalog: &Catalog, variant_id: &str) -> Result<String, AppError> {
    let missing = || AppError::not_found(format!("the catalog has no download for {variant_id}"));
    let (model, quant) = variant_id.split_once('@').ok_or_else(missing)?;
    let entry = catalog.get(model).ok_or_else(missing)?;
    if let Some(reason) = support(catalog, entry).reason {
        return Err(AppError::invalid(format!(
            "{} is not supported yet: {reason}",
            entry.name
        )));
    }
    entry
        .candidates()
        .into_iter()
        .find(|c| c.quant.to_string() == quant)
        .and_then(|c| c.repo)
        .ok_or_else(missing)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use minibar_fit::{fit_row, MemorySnapshot, Pressure};

    use super::*;

    /// An installed GGUF's badge is the load gate's judgement of its weights as loaded (on the
    /// CPU, SmolLM2's Q4_1 expanded to 538 MB of f32), not its size on disk.
    /// A 24 GB machine with half its memory in use.
    fn half_used_24gb() -> MemorySnapshot {
        MemorySnapshot {
            total: 24 << 30,
            available: 12 << 30,
            used: 12 << 30,
            swap_total: 0,
            swap_used: 0,
            pressure: Pressure::Normal,
            gpu_limit: None,
        }
    }

    #[test]
    fn an_installed_gguf_is_judged_as_the_engine_loads_it() {
        let Some(gguf) = minibar_testkit::default_gguf() else {
            return;
        };
        let memory = half_used_24gb();
        let settings = Settings::default();
        let downloads = HashMap::new();
        let ctx = Context {
            settings: &settings,
            memory: &memory,
            held_by_minibar: 0,
            installed: &[],
            downloads: &downloads,
            cluster: None,
        };
        let size = std::fs::metadata(&gguf).unwrap().len();
        let installed = Installed {
            variant_id: "smollm2@q4_1".into(),
            model_id: "smollm2".into(),
            name: "SmolLM2".into(),
            quant: "q4_1".into(),
            path: gguf.clone(),
            size_bytes: size,
            bits_per_weight: None,
            library_name: None,
            unverified: Vec::new(),
        };
        let budget = ctx.budget();
        let fit = installed_fit(&installed, &ctx, &budget);
        let gate = assess_gguf(
            &GgufWeights::open(&gguf).unwrap(),
            &Runtime::native(),
            &budget,
            &ctx.thresholds(),
        );
        assert_eq!(fit.needed_bytes, gate.verdict.needed);
        assert_eq!(fit.breakdown.weights_bytes, gate.load.loaded_bytes);
        if cfg!(target_os = "linux") {
            assert!(
                fit.needed_bytes > 4 * size,
                "{} of {size}",
                fit.needed_bytes
            );
        }
    }

    /// The badge the app sends and the row `minibar fit` prints come from one call: for every
    /// catalog format, the same verdict, need and largest context on the same machine.
    #[test]
    fn the_app_and_minibar_fit_agree_on_every_catalog_format() {
        let catalog = Catalog::builtin().unwrap();
        let memory = half_used_24gb();
        let settings = Settings::default();
        let downloads = HashMap::new();
        let ctx = Context {
            settings: &settings,
            memory: &memory,
            held_by_minibar: 0,
            installed: &[],
            downloads: &downloads,
            cluster: None,
        };
        let models = list(&catalog, &ctx);
        // What `minibar fit --headroom <the setting> --context <the setting>` computes.
        let budget = Budget::this_machine(&memory, 0, None);
        let thresholds = Thresholds::with_headroom(settings.memory_headroom_bytes);
        let work = Workload::with_context(settings.context_length);
        let mut levels = Vec::new();
        for c in catalog.candidates() {
            let cli = fit_row(&c, &work, &Runtime::native(), &budget, &thresholds).unwrap();
            let id = format!("{}@{}", c.id, cli.quant);
            let app = models
                .iter()
                .flat_map(|m| &m.variants)
                .find(|v| v.id == id)
                .unwrap_or_else(|| panic!("no variant {id}"));
            let level = match cli.verdict.level {
                FitLevel::Fits => FitVerdict::Fits,
                FitLevel::Tight => FitVerdict::Tight,
                FitLevel::WontFit => FitVerdict::WontFit,
            };
            assert_eq!(app.fit.verdict, level, "{id}");
            assert_eq!(app.fit.needed_bytes, cli.needed, "{id}");
            assert_eq!(app.fit.max_context, cli.max_context.unwrap_or(0), "{id}");
            assert_eq!(app.fit.reason, cli.verdict.reason, "{id}");
            levels.push(level);
        }
        // A real mix on a 12 GB budget, so agreement is not agreement on one answer.
        assert!(levels.contains(&FitVerdict::Fits) && levels.contains(&FitVerdict::WontFit));
    }
}
