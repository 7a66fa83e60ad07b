//! How much memory a model may use here, and whether an estimate fits it.

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
    /// Fits with room to spare (at least [`COMFORT_MARGIN`] of the budget left).
    Fits,
    /// Fits, but with little headroom: other apps may push it into swap.
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

/// Share of the budget that must stay free for a comfortable fit.
pub const COMFORT_MARGIN: f64 = 0.10;

/// An advisory verdict: nothing is ever blocked on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The level.
    pub level: FitLevel,
    /// Bytes the model needs.
    pub needed: u64,
    /// Bytes it may use.
    pub usable: u64,
    /// `usable - needed` (negative when it does not fit).
    pub headroom: i64,
    /// One sentence a user can act on.
    pub reason: String,
}

/// Formats bytes in decimal gigabytes, the unit Apple and mlx-lm report (megabytes below 1 GB).
pub fn gb(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

/// Judges `needed` bytes against `budget`.
pub fn verdict(needed: u64, budget: &Budget) -> Verdict {
    let usable = budget.usable;
    let headroom = usable as i64 - needed as i64;
    let comfortable = (usable as f64 * (1.0 - COMFORT_MARGIN)) as u64;
    let level = if needed <= comfortable {
        FitLevel::Fits
    } else if needed <= usable {
        FitLevel::Tight
    } else {
        FitLevel::WontFit
    };
    let limit_binds = budget
        .gpu_limit
        .is_some_and(|l| l.saturating_sub(budget.held_by_minibar) == usable);
    let what = match (budget.source, limit_binds) {
        (_, true) => "the GPU working-set limit",
        (BudgetSource::ThisMachine, false) => "the memory available now",
        (BudgetSource::WhatIf, false) => "memory",
    };
    let held = if budget.held_by_minibar > 0 {
        format!(
            " (after {} held by loaded models)",
            gb(budget.held_by_minibar)
        )
    } else {
        String::new()
    };
    let reason = match level {
        FitLevel::Fits => format!(
            "needs {} of {}{held}; {} to spare",
            gb(needed),
            gb(usable),
            gb(headroom as u64)
        ),
        FitLevel::Tight => format!(
            "needs {} of {}{held}: only {} to spare, other apps may push it into swap",
            gb(needed),
            gb(usable),
            gb(headroom as u64)
        ),
        FitLevel::WontFit => {
            let mut r = format!(
                "needs {}, {} more than {what} ({}){held}",
                gb(needed),
                gb(needed - usable),
                gb(usable)
            );
            if limit_binds && needed < budget.total / 100 * 90 {
                r.push_str("; `sudo sysctl iogpu.wired_limit_mb=…` can raise the limit");
            } else if budget.held_by_minibar > 0 && needed <= usable + budget.held_by_minibar {
                r.push_str("; unloading the loaded models would make room");
            }
            r
        }
    };
    Verdict {
        level,
        needed,
        usable,
        headroom,
        reason,
    }
}
