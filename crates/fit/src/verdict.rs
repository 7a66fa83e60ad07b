//! How much memory a model may use here (the verdict itself is [`crate::assess`]'s).

use serde::Serialize;

use crate::machine::{default_gpu_working_set, MemorySnapshot};

/// Where a budget's numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetSource {
    /// A reading of this machine.
    ThisMachine,
    /// A hypothetical Mac with this much unified memory.
    WhatIf,
}

/// The memory a model may use. Bytes throughout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    /// Physical memory.
    pub total: u64,
    /// The GPU working-set limit, where there is one.
    pub gpu_limit: Option<u64>,
    /// Memory available right now (`None` for a what-if).
    pub available: Option<u64>,
    /// Memory held by models Minibar has loaded (counted against the GPU limit).
    pub held_by_minibar: u64,
    /// What a new model may use: the smallest of the limits above.
    pub usable: u64,
    /// Where the numbers come from.
    pub source: BudgetSource,
}

impl Budget {
    /// A Mac with `total` bytes of unified memory and nothing else running: the GPU
    /// working-set limit is the budget.
    pub fn what_if(total: u64) -> Budget {
        let limit = default_gpu_working_set(total);
        Budget {
            total,
            gpu_limit: Some(limit),
            available: None,
            held_by_minibar: 0,
            usable: limit,
            source: BudgetSource::WhatIf,
        }
    }

    /// This machine as `snap` reads it. `held_by_minibar` is memory Minibar's loaded models
    /// hold (already missing from `available`); `gpu_limit` overrides the snapshot's (MLX's
    /// `recommendedMaxWorkingSetSize`, from the engine).
    pub fn this_machine(
        snap: &MemorySnapshot,
        held_by_minibar: u64,
        gpu_limit: Option<u64>,
    ) -> Budget {
        let gpu_limit = gpu_limit.or(snap.gpu_limit);
        let usable = match gpu_limit {
            Some(limit) => limit.saturating_sub(held_by_minibar).min(snap.available),
            None => snap.available,
        };
        Budget {
            total: snap.total,
            gpu_limit,
            available: Some(snap.available),
            held_by_minibar,
            usable,
            source: BudgetSource::ThisMachine,
        }
    }
}

/// Whether a model fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FitLevel {
    /// Fits and leaves the spare memory its [`crate::Thresholds`] ask for.
    Fits,
    /// Fits, but with less spare memory than asked for: other apps may push it into swap.
    Tight,
    /// Needs more than the budget.
    WontFit,
}

impl FitLevel {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            FitLevel::Fits => "fits",
            FitLevel::Tight => "tight",
            FitLevel::WontFit => "won't fit",
        }
    }
}

/// Formats bytes in decimal gigabytes, the unit Apple and mlx-lm report (megabytes below 1 GB).
pub fn gb(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}
