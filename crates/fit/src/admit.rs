//! The one gate before a model loads: judge it with [`crate::assess`], refuse one that won't
//! fit (with the numbers) unless the user forced it, and say which memory limits the engine
//! must set so that even a forced model cannot take the machine down. The engine's `load`
//! asks here, so the CLI's chat, generate and bench, the app and the server all get the same
//! answer.
//!
//! Invariant: an admitted model always comes with limits no larger than the budget, whether
//! it was forced or not: forcing lifts the refusal, never the limit.

use std::path::Path;

use serde::Serialize;

use crate::assess::{assess, assess_bytes, assess_gguf, Thresholds, Verdict};
use crate::estimate::{Runtime, Workload};
use crate::gguf::GgufWeights;
use crate::machine::snapshot;
use crate::verdict::{Budget, FitLevel};

/// What a caller asks when it loads a model.
#[derive(Debug, Clone, Default)]
pub struct LoadRequest {
    /// The context window the model will run with (default: [`Workload::default`]'s).
    pub context: Option<u64>,
    /// Load even when the verdict is "won't fit": the user said so.
    pub force: bool,
    /// The budget to judge against (default: this machine now, nothing held).
    pub budget: Option<Budget>,
    /// What must stay free (the app's headroom setting).
    pub thresholds: Thresholds,
    /// A pipeline rank's part of the model (default: the whole model).
    pub share: Option<Share>,
}

/// The decoder blocks one rank of a split model holds: it is judged by that part of the
/// weights, not the whole model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Share {
    /// Blocks this rank holds.
    pub held: usize,
    /// Blocks in the model.
    pub of: usize,
}

/// MLX's allocator limits for a loaded model, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryLimits {
    /// The memory limit: MLX frees its cache and waits for running work before going past
    /// it. The whole budget.
    pub memory: u64,
    /// The buffer-cache limit: freed buffers kept for reuse never take more than the memory
    /// the model leaves spare (none when it leaves none).
    pub cache: u64,
    /// The wired limit (macOS 15+, Metal): the model's need, at most the GPU working set.
    /// `None` where there is no GPU limit.
    pub wired: Option<u64>,
}

/// A model the gate lets load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Admission {
    /// The verdict it was admitted with (a forced model's is "won't fit").
    pub verdict: Verdict,
    /// Whether it loads only because the user forced it.
    pub forced: bool,
    /// The limits the engine sets before loading.
    pub limits: MemoryLimits,
    /// Whether the engine expands the quantized weights to dense ones on the CPU: the
    /// prediction assumed it, so the engine's `Dequantize::Auto` does what this says.
    pub dequantize: bool,
}

/// A model refused because it won't fit; says by how much.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{model} won't fit: {}", verdict.reason)]
pub struct Refusal {
    /// The model's file or folder name.
    pub model: String,
    /// The verdict, with the bytes needed and usable.
    pub verdict: Verdict,
}

/// Decides whether the model at `path` (a GGUF file or a model folder) may load. A folder is
/// judged by its config.json's shape (so the engine's CPU expansion of small quantized models
/// counts); a GGUF file by its tensor table (each type as the engine maps it, expanded or
/// not: [`assess_gguf`]); anything else (a folder whose config the estimator does not know,
/// a file that is not a GGUF) by the bytes of its weights.
pub fn admit(path: &Path, request: &LoadRequest) -> Result<Admission, Refusal> {
    let budget = request
        .budget
        .clone()
        .unwrap_or_else(|| Budget::this_machine(&snapshot(), 0, None));
    let work = request
        .context
        .map_or_else(Workload::default, Workload::with_context);
    let (verdict, dequantize) = match request.share {
        Some(share) => judge_share(share, &budget, &request.thresholds, |whole| {
            Some(judge(path, &work, whole, &request.thresholds))
        })
        .unwrap_or_else(|| judge(path, &work, &budget, &request.thresholds)),
        None => judge(path, &work, &budget, &request.thresholds),
    };
    if verdict.level == FitLevel::WontFit && !request.force {
        return Err(Refusal {
            model: model_name(path),
            verdict,
        });
    }
    Ok(Admission {
        limits: limits(&verdict, &budget),
        forced: verdict.level == FitLevel::WontFit,
        verdict,
        dequantize,
    })
}

/// The verdict for a rank holding `share` of a model's blocks, and whether the engine expands
/// its weights: it needs that part of the weights and of the KV cache, so the whole model is
/// judged by `judge_whole` against the budget scaled up alike (the expansion decision is the
/// whole model's), and the share's part of that against `budget`. The load gate and the
/// check before a `--layers` download both ask this. `None` when `judge_whole` cannot judge.
pub fn judge_share(
    share: Share,
    budget: &Budget,
    thresholds: &Thresholds,
    judge_whole: impl FnOnce(&Budget) -> Option<(Verdict, bool)>,
) -> Option<(Verdict, bool)> {
    let (of, held) = (share.of.max(1) as u128, share.held.max(1) as u128);
    let up = |b: u64| (b as u128 * of / held).min(u64::MAX as u128) as u64;
    let whole_budget = Budget {
        total: up(budget.total),
        gpu_limit: budget.gpu_limit.map(up),
        available: budget.available.map(up),
        held_by_minibar: up(budget.held_by_minibar),
        usable: up(budget.usable),
        source: budget.source,
    };
    let (whole, dequantize) = judge_whole(&whole_budget)?;
    let part = (whole.needed as u128 * held / of) as u64;
    Some((assess_bytes(part, budget, thresholds), dequantize))
}

/// The verdict, and whether the engine should expand the weights on the CPU.
fn judge(
    path: &Path,
    work: &Workload,
    budget: &Budget,
    thresholds: &Thresholds,
) -> (Verdict, bool) {
    let runtime = Runtime::native();
    if path.is_file() {
        if let Ok(weights) = GgufWeights::open(path) {
            let a = assess_gguf(&weights, &runtime, budget, thresholds);
            return (a.verdict, a.load.dequantized);
        }
    }
    if let Some((shape, quant)) = folder_model(path) {
        if let Ok(a) = assess(&shape, &quant, work, &runtime, budget, thresholds) {
            return (a.verdict, a.estimate.dequantized);
        }
    }
    (assess_bytes(weight_bytes(path), budget, thresholds), false)
}

fn limits(verdict: &Verdict, budget: &Budget) -> MemoryLimits {
    MemoryLimits {
        memory: budget.usable,
        cache: budget.usable.saturating_sub(verdict.needed),
        wired: budget.gpu_limit.map(|g| verdict.needed.min(g)),
    }
}

/// The shape and quantization of a model folder, from its config.json.
fn folder_model(path: &Path) -> Option<(crate::ModelShape, crate::Quantization)> {
    let text = std::fs::read_to_string(path.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    crate::model_from_config(&config).ok()
}

/// Bytes of a model file, or of the weight files in a model folder.
fn weight_bytes(path: &Path) -> u64 {
    if path.is_file() {
        return path.metadata().map_or(0, |m| m.len());
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".safetensors") || name.ends_with(".gguf")
                })
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A model's display name: the file stem or folder name.
pub fn model_name(path: &Path) -> String {
    let stem = if path.is_file() {
        path.file_stem()
    } else {
        path.file_name()
    };
    stem.map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    /// A 2 GB "model": a GGUF file is judged by its bytes, so a sparse file will do.
    fn model(dir: &Path) -> std::path::PathBuf {
        let p = dir.join("big.gguf");
        std::fs::File::create(&p).unwrap().set_len(2 * GB).unwrap();
        p
    }

    fn budget(usable: u64, gpu: Option<u64>) -> Budget {
        Budget {
            total: 4 * usable,
            gpu_limit: gpu,
            available: Some(usable),
            held_by_minibar: 0,
            usable,
            source: crate::BudgetSource::ThisMachine,
        }
    }

    fn request(usable: u64, force: bool) -> LoadRequest {
        LoadRequest {
            force,
            budget: Some(budget(usable, None)),
            ..LoadRequest::default()
        }
    }

    #[test]
    fn a_model_that_wont_fit_is_refused_with_the_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let err = admit(&model(dir.path()), &request(GB, false)).unwrap_err();
        assert_eq!(err.model, "big");
        assert_eq!(err.verdict.needed, 2 * GB);
        assert_eq!(err.verdict.usable, GB);
        let text = err.to_string();
        assert!(text.contains("2.0 GB") && text.contains("1.0 GB"), "{text}");
    }

    #[test]
    fn forcing_lifts_the_refusal_but_not_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let a = admit(&model(dir.path()), &request(GB, true)).unwrap();
        assert!(a.forced);
        assert_eq!(a.verdict.level, FitLevel::WontFit);
        assert_eq!(a.limits.memory, GB, "the budget still bounds MLX");
        assert_eq!(a.limits.cache, 0, "no spare memory, no cache");
    }

    #[test]
    fn a_model_that_fits_gets_the_budget_and_its_spare_as_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = request(10 * GB, false);
        r.budget = Some(budget(10 * GB, Some(12 * GB)));
        let a = admit(&model(dir.path()), &r).unwrap();
        assert!(!a.forced);
        assert_eq!(a.verdict.level, FitLevel::Fits);
        assert_eq!(
            a.limits,
            MemoryLimits {
                memory: 10 * GB,
                cache: 8 * GB,
                wired: Some(2 * GB),
            }
        );
        // Never wire more than the GPU may.
        r.budget = Some(budget(10 * GB, Some(GB)));
        r.force = true;
        assert_eq!(
            admit(&model(dir.path()), &r).unwrap().limits.wired,
            Some(GB)
        );
    }

    #[test]
    fn a_folder_is_judged_by_its_shape_and_context() {
        let dir = tempfile::tempdir().unwrap();
        // A 7B llama: its 4-bit weights alone are ~3.5 GB, far beyond the bytes on disk.
        let config = serde_json::json!({
            "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
            "vocab_size": 32000, "max_position_embeddings": 4096,
            "quantization": {"group_size": 64, "bits": 4}
        });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let small = admit(dir.path(), &request(3 * GB, false)).unwrap_err();
        assert!(small.verdict.needed > 3 * GB, "{}", small);
        let short = admit(
            dir.path(),
            &LoadRequest {
                context: Some(256),
                ..request(20 * GB, false)
            },
        )
        .unwrap();
        let long = admit(
            dir.path(),
            &LoadRequest {
                context: Some(4096),
                ..request(20 * GB, false)
            },
        )
        .unwrap();
        assert!(long.verdict.needed > short.verdict.needed);
    }

    #[test]
    fn a_rank_is_judged_by_its_share_of_the_layers() {
        let dir = tempfile::tempdir().unwrap();
        // The whole 2 GB model won't fit 1 GB; a third of its layers does.
        let third = LoadRequest {
            share: Some(Share { held: 10, of: 30 }),
            ..request(GB, false)
        };
        let a = admit(&model(dir.path()), &third).unwrap();
        assert_eq!(a.verdict.needed, 2 * GB / 3);
        let two_thirds = LoadRequest {
            share: Some(Share { held: 20, of: 30 }),
            ..request(GB, false)
        };
        assert!(admit(&model(dir.path()), &two_thirds).is_err());
    }
}
