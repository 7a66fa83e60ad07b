//! The catalog as the Models view shows it: every model with its quantizations, each judged
//! against this machine's memory, marked installed, with its download state.

use std::collections::HashMap;

use minibar_catalog::{Catalog, CatalogEntry};
use minibar_fit::{
    estimate, max_context, verdict, Budget, Candidate, Estimate, FitLevel, MemorySnapshot, Runtime,
    Workload,
};

use super::library::Installed;
use crate::types::{
    CatalogModel, DownloadProgress, FitReport, FitVerdict, MemoryBreakdown, ModelVariant, Settings,
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
}

impl Context<'_> {
    fn budget(&self) -> Budget {
        let mut b = Budget::this_machine(self.memory, self.held_by_minibar, None);
        b.usable = b.usable.saturating_sub(self.settings.memory_headroom_bytes);
        b
    }

    fn workload(&self) -> Workload {
        Workload::with_context(self.settings.context_length.max(1))
    }
}

/// Turns an estimate (with `weights` replacing its weight bytes when the file is known) into
/// the report the UI draws.
fn report(
    est: &Estimate,
    weights: u64,
    max_ctx: Option<u64>,
    budget: &Budget,
    memory: &MemorySnapshot,
) -> FitReport {
    let overhead = est.activations + est.overhead;
    let needed = weights + est.kv_cache.total + overhead;
    let v = verdict(needed, budget);
    FitReport {
        verdict: match v.level {
            FitLevel::Fits => FitVerdict::Fits,
            FitLevel::Tight => FitVerdict::Tight,
            FitLevel::WontFit => FitVerdict::WontFit,
        },
        reason: v.reason,
        headroom_bytes: v.headroom,
        max_context: max_ctx.unwrap_or(0),
        breakdown: MemoryBreakdown {
            weights_bytes: weights,
            kv_cache_bytes: est.kv_cache.total,
            overhead_bytes: overhead,
            in_use_bytes: memory.used,
            budget_bytes: budget.usable,
        },
    }
}

/// A catalog candidate as a variant.
fn variant(
    entry: &CatalogEntry,
    c: &Candidate,
    ctx: &Context<'_>,
    budget: &Budget,
) -> Option<ModelVariant> {
    let runtime = Runtime::native();
    let work = ctx.workload();
    let est = estimate(&c.shape, &c.quant, &work, &runtime).ok()?;
    let max_ctx = max_context(&c.shape, &c.quant, &work, &runtime, budget.usable)
        .ok()
        .flatten();
    let quant = c.quant.to_string();
    let id = format!("{}@{quant}", entry.id);
    let installed = ctx.installed.iter().any(|i| i.variant_id == id);
    Some(ModelVariant {
        fit: report(&est, est.weights.total, max_ctx, budget, ctx.memory),
        model_id: entry.id.clone(),
        quant,
        bits_per_weight: est.bits_per_weight,
        size_bytes: est.weights.total,
        installed,
        download: ctx.downloads.get(&id).cloned(),
        id,
    })
}

/// An installed file the catalog lists no download for (a GGUF import), judged with the
/// entry's shape and the file's real size.
fn local_variant(
    entry: &CatalogEntry,
    i: &Installed,
    ctx: &Context<'_>,
    budget: &Budget,
) -> Option<ModelVariant> {
    let base = entry.candidates().into_iter().next()?;
    let est = estimate(
        &base.shape,
        &base.quant,
        &ctx.workload(),
        &Runtime::native(),
    )
    .ok()?;
    let bits = i
        .bits_per_weight
        .unwrap_or(i.size_bytes as f64 * 8.0 / est.params.total.max(1) as f64);
    Some(ModelVariant {
        id: i.variant_id.clone(),
        model_id: entry.id.clone(),
        quant: i.quant.clone(),
        bits_per_weight: bits,
        size_bytes: i.size_bytes,
        fit: report(&est, i.size_bytes, None, budget, ctx.memory),
        installed: true,
        download: None,
    })
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
                    variants.extend(local_variant(entry, i, ctx, &budget));
                }
            }
            CatalogModel {
                id: entry.id.clone(),
                name: entry.name.clone(),
                family: entry.family.clone(),
                params_b: entry.params_total as f64 / 1e9,
                description: format!("{} · {} · {}", entry.hf_repo, entry.license, entry.family),
                context_length: entry.shape.max_context,
                variants,
            }
        })
        .collect();
    for i in ctx
        .installed
        .iter()
        .filter(|i| catalog.get(&i.model_id).is_none())
    {
        let weights = i.size_bytes;
        let v = verdict(weights, &budget);
        out.push(CatalogModel {
            id: i.model_id.clone(),
            name: i.name.clone(),
            family: "local".into(),
            params_b: 0.0,
            description: format!("Installed at {}", i.path.display()),
            context_length: 0,
            variants: vec![ModelVariant {
                id: i.variant_id.clone(),
                model_id: i.model_id.clone(),
                quant: i.quant.clone(),
                bits_per_weight: i.bits_per_weight.unwrap_or(0.0),
                size_bytes: i.size_bytes,
                fit: FitReport {
                    verdict: match v.level {
                        FitLevel::Fits => FitVerdict::Fits,
                        FitLevel::Tight => FitVerdict::Tight,
                        FitLevel::WontFit => FitVerdict::WontFit,
                    },
                    reason: format!(
                        "{} (weights only: the catalog has no shape for it)",
                        v.reason
                    ),
                    headroom_bytes: v.headroom,
                    max_context: 0,
                    breakdown: MemoryBreakdown {
                        weights_bytes: weights,
                        kv_cache_bytes: 0,
                        overhead_bytes: 0,
                        in_use_bytes: ctx.memory.used,
                        budget_bytes: budget.usable,
                    },
                },
                installed: true,
                download: None,
            }],
        });
    }
    out
}

/// The download repo of a catalog variant id.
pub fn repo_of(catalog: &Catalog, variant_id: &str) -> Option<String> {
    let (model, quant) = variant_id.split_once('@')?;
    catalog
        .get(model)?
        .candidates()
        .into_iter()
        .find(|c| c.quant.to_string() == quant)
        .and_then(|c| c.repo)
}
