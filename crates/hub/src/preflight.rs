//! Checks before a download starts: does it fit the disk, and (through a callback the caller
//! plugs in, e.g. `minibar-fit`) will the model fit in memory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::format;
use crate::plan::DownloadPlan;

/// What the memory model thinks of a model on this machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "snake_case")]
pub enum FitVerdict {
    /// Fits comfortably.
    Fits,
    /// Fits, with little room to spare.
    Tight(String),
    /// Will not fit in memory; the caller should ask before downloading.
    WontFit(String),
    /// No estimate (no callback, or not enough information).
    Unknown,
}

/// What the fit callback gets to judge a model by.
#[derive(Debug)]
pub struct FitQuery<'a> {
    /// Repository.
    pub repo_id: &'a str,
    /// The model's config.json, when the repository has one.
    pub config: Option<&'a serde_json::Value>,
    /// Bytes of weight files (safetensors, gguf) in the plan.
    pub weight_bytes: u64,
    /// Bytes of all files in the plan.
    pub total_bytes: u64,
    /// The blocks a `--layers` pull fetches: the node holds that share, not the whole model.
    pub share: Option<minibar_fit::Share>,
}

/// The memory-fit hook: the CLI and the app pass [`memory_check`].
pub type FitCheck = Arc<dyn Fn(&FitQuery<'_>) -> FitVerdict + Send + Sync>;

/// The memory check `minibar pull` and the app's downloads both run: minibar-fit's one
/// verdict for config.json's shape and quantization, the default workload, this machine's
/// memory now and `thresholds`. Unknown when the repository has no config.json the
/// estimator reads.
pub fn memory_check(thresholds: minibar_fit::Thresholds) -> FitCheck {
    Arc::new(move |q: &FitQuery<'_>| {
        let Some(config) = q.config else {
            return FitVerdict::Unknown;
        };
        let Ok((shape, quant)) = minibar_fit::model_from_config(config) else {
            return FitVerdict::Unknown;
        };
        let budget = minibar_fit::Budget::this_machine(&minibar_fit::snapshot(), 0, None);
        let judge_whole = |budget: &minibar_fit::Budget| {
            let a = minibar_fit::assess(
                &shape,
                &quant,
                &minibar_fit::Workload::default(),
                &minibar_fit::Runtime::native(),
                budget,
                &thresholds,
            )
            .ok()?;
            Some((a.verdict, a.estimate.dequantized))
        };
        // A node's share is judged as the rank's load gate will judge it.
        let judged = match q.share {
            Some(share) => minibar_fit::judge_share(share, &budget, &thresholds, judge_whole),
            None => judge_whole(&budget),
        };
        let Some((verdict, _)) = judged else {
            return FitVerdict::Unknown;
        };
        match verdict.level {
            minibar_fit::FitLevel::Fits => FitVerdict::Fits,
            minibar_fit::FitLevel::Tight => FitVerdict::Tight(verdict.reason),
            minibar_fit::FitLevel::WontFit => FitVerdict::WontFit(verdict.reason),
        }
    })
}

/// A reason to ask the user before downloading.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "concern", rename_all = "snake_case")]
pub enum Concern {
    /// The files left to download are larger than the free space.
    NotEnoughDisk {
        /// Bytes still to download.
        needed: u64,
        /// Bytes free on the cache's disk.
        available: u64,
        /// The cache folder.
        path: PathBuf,
    },
    /// The memory model says the model will not fit.
    WontFit {
        /// The memory model's explanation.
        detail: String,
    },
}

impl fmt::Display for Concern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Concern::NotEnoughDisk {
                needed,
                available,
                path,
            } => write!(
                f,
                "not enough disk space: {} to download but only {} free at {}",
                format::bytes(*needed),
                format::bytes(*available),
                path.display()
            ),
            Concern::WontFit { detail } => write!(f, "the model will not fit in memory: {detail}"),
        }
    }
}

/// The outcome of the checks.
#[derive(Clone, Debug, Serialize)]
pub struct Preflight {
    /// Bytes of all files of the plan.
    pub total_bytes: u64,
    /// Bytes still to download.
    pub remaining_bytes: u64,
    /// Free bytes on the cache's disk, if they could be read.
    pub available_bytes: Option<u64>,
    /// The memory model's verdict.
    pub fit: FitVerdict,
    /// Reasons to ask before downloading; empty means go ahead.
    pub concerns: Vec<Concern>,
}

/// Runs the disk and memory checks for a plan.
pub fn check(plan: &DownloadPlan, cache_dir: &Path, fit: Option<&FitCheck>) -> Preflight {
    let remaining = plan.remaining_bytes();
    let available = available_space(cache_dir);
    let mut concerns = Vec::new();
    if let Some(available) = available {
        if remaining > available {
            concerns.push(Concern::NotEnoughDisk {
                needed: remaining,
                available,
                path: cache_dir.to_path_buf(),
            });
        }
    }
    let verdict = match fit {
        Some(f) => f(&FitQuery {
            repo_id: &plan.repo_id,
            config: plan.config.as_ref(),
            weight_bytes: plan.weight_bytes(),
            total_bytes: plan.total_bytes(),
            share: plan.layers.as_ref().map(|l| minibar_fit::Share {
                held: l.layers.len(),
                of: l.of,
            }),
        }),
        None => FitVerdict::Unknown,
    };
    if let FitVerdict::WontFit(detail) = &verdict {
        concerns.push(Concern::WontFit {
            detail: detail.clone(),
        });
    }
    Preflight {
        total_bytes: plan.total_bytes(),
        remaining_bytes: remaining,
        available_bytes: available,
        fit: verdict,
        concerns,
    }
}

/// Free space on the disk that holds `path`, asking its nearest existing ancestor.
pub fn available_space(path: &Path) -> Option<u64> {
    let mut p = Some(path);
    while let Some(dir) = p {
        if dir.exists() {
            return fs4::available_space(dir).ok();
        }
        p = dir.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(config: Option<&serde_json::Value>) -> FitQuery<'_> {
        FitQuery {
            repo_id: "org/model",
            config,
            weight_bytes: 1,
            total_bytes: 1,
            share: None,
        }
    }

    #[test]
    fn the_memory_check_is_minibar_fits_verdict() {
        let check = memory_check(minibar_fit::Thresholds::default());
        // Llama 3.1 405B in bf16: ~800 GB.
        let huge = serde_json::json!({"model_type": "llama", "hidden_size": 16384,
            "intermediate_size": 53248, "num_hidden_layers": 126, "num_attention_heads": 128,
            "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
            "torch_dtype": "bfloat16"});
        match check(&query(Some(&huge))) {
            FitVerdict::WontFit(reason) => assert!(reason.contains("GB"), "{reason}"),
            other => panic!("405B judged {other:?}"),
        }
        let tiny = serde_json::json!({"model_type": "llama", "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 256});
        assert_eq!(check(&query(Some(&tiny))), FitVerdict::Fits);
        assert_eq!(check(&query(None)), FitVerdict::Unknown);
    }

    #[test]
    fn a_layer_share_is_judged_as_the_rank_will_be() {
        let check = memory_check(minibar_fit::Thresholds::default());
        // 2000 layers of about 0.5 GB in bf16: ~1 TB whole, one layer's share fits anywhere.
        let deep = serde_json::json!({"model_type": "llama", "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 2000, "num_attention_heads": 32,
            "num_key_value_heads": 8, "vocab_size": 32000, "torch_dtype": "bfloat16"});
        assert!(matches!(check(&query(Some(&deep))), FitVerdict::WontFit(_)));
        let share = FitQuery {
            share: Some(minibar_fit::Share { held: 1, of: 2000 }),
            ..query(Some(&deep))
        };
        let verdict = check(&share);
        assert!(!matches!(verdict, FitVerdict::WontFit(_)), "{verdict:?}");
    }
}
