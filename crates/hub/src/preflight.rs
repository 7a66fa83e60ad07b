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
}

/// The memory-fit hook: the CLI and the app pass a closure over `minibar-fit`.
pub type FitCheck = Arc<dyn Fn(&FitQuery<'_>) -> FitVerdict + Send + Sync>;

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
