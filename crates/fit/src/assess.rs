//! The one place that says whether a model fits: fits, tight or won't fit, the largest context,
//! and the thresholds it judged by, reported back with the answer. `minibar fit` and
//! `minibar pull`, the benchmark, the app's catalog and model picker all ask here, and the UI
//! shows what this returns without judging again.
//!
//! Invariant: a verdict is a pure function of the need, the budget and the [`Thresholds`]:
//! `needed <= usable - spare` fits, `needed <= usable` is tight, anything more won't fit.

use serde::{Deserialize, Serialize};

use crate::engine::keep_expansion;
use crate::estimate::{estimate, max_context, Estimate, Runtime, Workload};
use crate::gguf::{GgufLoad, GgufWeights};
use crate::quant::Quantization;
use crate::shape::ModelShape;
use crate::verdict::{gb, Budget, BudgetSource, FitLevel};
use crate::FitError;

/// Default share of the budget that must stay free for a comfortable fit.
pub const COMFORT_MARGIN: f64 = 0.10;

/// What "comfortable" means: the memory that must stay free besides the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Share of the budget that must stay free for a model to fit comfortably.
    pub comfort_margin: f64,
    /// Bytes that must stay free for a comfortable fit whatever the share (the app's
    /// memory-headroom setting); 0 for none.
    pub headroom: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            comfort_margin: COMFORT_MARGIN,
            headroom: 0,
        }
    }
}

impl Thresholds {
    /// The default margin, and at least `headroom` bytes free.
    pub fn with_headroom(headroom: u64) -> Thresholds {
        Thresholds {
            headroom,
            ..Thresholds::default()
        }
    }

    /// Bytes of `usable` that must stay free for a comfortable fit.
    pub fn spare(&self, usable: u64) -> u64 {
        ((usable as f64 * self.comfort_margin.clamp(0.0, 1.0)) as u64).max(self.headroom)
    }
}

/// A verdict with the numbers and thresholds behind it. Advisory: nothing is blocked on it
/// except what a caller chooses to ask the user about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The level.
    pub level: FitLevel,
    /// Bytes the model needs.
    pub needed: u64,
    /// Bytes it may use.
    pub usable: u64,
    /// The most a model may need and still fit comfortably (`usable` less the spare).
    pub comfortable: u64,
    /// `usable - needed` (negative when it does not fit).
    pub headroom: i64,
    /// One sentence a user can act on.
    pub reason: String,
    /// The thresholds judged by.
    pub thresholds: Thresholds,
}

/// A model judged against a budget: the verdict, the largest context, and the estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// Fits, tight or won't fit, and why.
    pub verdict: Verdict,
    /// The longest context (up to the model's own maximum) that fits the budget at all;
    /// `None` when not even one token does.
    pub max_context: Option<u64>,
    /// Where the bytes go.
    pub estimate: Estimate,
}

/// Judges `shape` stored as `quant`, run as `work` on `runtime`, against `budget`.
pub fn assess(
    shape: &ModelShape,
    quant: &Quantization,
    work: &Workload,
    runtime: &Runtime,
    budget: &Budget,
    thresholds: &Thresholds,
) -> Result<Assessment, FitError> {
    let mut runtime = *runtime;
    let mut estimate = estimate(shape, quant, work, &runtime)?;
    if estimate.dequantized {
        let kept = Runtime {
            cpu_dequantize: false,
            ..runtime
        };
        let quantized = crate::estimate::estimate(shape, quant, work, &kept)?;
        let level = |e: &Estimate| judge(e.total, budget, thresholds).level;
        if !keep_expansion(level(&estimate), level(&quantized)) {
            (runtime, estimate) = (kept, quantized);
        }
    }
    let max_context = max_context(shape, quant, work, &runtime, budget.usable)?;
    Ok(Assessment {
        verdict: judge(estimate.total, budget, thresholds),
        max_context,
        estimate,
    })
}

/// A GGUF file judged by its weights as the engine will hold them (see [`crate::gguf`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GgufAssessment {
    /// Fits, tight or won't fit, and why.
    pub verdict: Verdict,
    /// The weights in the file and once loaded.
    pub load: GgufLoad,
}

/// Judges a GGUF file by its tensor table: the bytes its weights take once loaded on
/// `runtime`, expanded or not by the same rule as [`assess`].
pub fn assess_gguf(
    weights: &GgufWeights,
    runtime: &Runtime,
    budget: &Budget,
    thresholds: &Thresholds,
) -> GgufAssessment {
    let expanded = weights.load(runtime, true);
    let mut load = expanded;
    if expanded.dequantized {
        let quantized = weights.load(runtime, false);
        let level = |l: &GgufLoad| judge(l.loaded_bytes, budget, thresholds).level;
        if !keep_expansion(level(&expanded), level(&quantized)) {
            load = quantized;
        }
    }
    GgufAssessment {
        verdict: judge(load.loaded_bytes, budget, thresholds),
        load,
    }
}

/// Judges a need known only in bytes: a model whose shape is unknown, by its weight files.
pub fn assess_bytes(needed: u64, budget: &Budget, thresholds: &Thresholds) -> Verdict {
    judge(needed, budget, thresholds)
}

fn judge(needed: u64, budget: &Budget, thresholds: &Thresholds) -> Verdict {
    let usable = budget.usable;
    let headroom = usable as i64 - needed as i64;
    let spare = thresholds.spare(usable);
    let comfortable = usable.saturating_sub(spare);
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
            "needs {} of {}{held}: only {} to spare, less than the {} kept free, so other apps may push it into swap",
            gb(needed),
            gb(usable),
            gb(headroom as u64),
            gb(spare)
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
        comfortable,
        headroom,
        reason,
        thresholds: *thresholds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_larger_of_margin_and_headroom_must_stay_free() {
        let b = Budget::what_if(24 * GIB); // usable 16 GiB
        let u = b.usable;
        let t = Thresholds::default();
        assert_eq!(t.spare(u), u / 10);
        assert_eq!(assess_bytes(u - u / 10, &b, &t).level, FitLevel::Fits);
        assert_eq!(assess_bytes(u - u / 10 + 1, &b, &t).level, FitLevel::Tight);
        assert_eq!(assess_bytes(u, &b, &t).level, FitLevel::Tight);
        assert_eq!(assess_bytes(u + 1, &b, &t).level, FitLevel::WontFit);
        // A headroom larger than the margin moves the comfortable line, not the budget.
        let h = Thresholds::with_headroom(4 * GIB);
        let v = assess_bytes(u - 3 * GIB, &b, &h);
        assert_eq!(v.level, FitLevel::Tight, "{}", v.reason);
        assert_eq!(v.comfortable, u - 4 * GIB);
        assert_eq!(v.thresholds, h);
        assert!(v.reason.contains("kept free"), "{}", v.reason);
        assert_eq!(assess_bytes(u - 4 * GIB, &b, &h).level, FitLevel::Fits);
    }
}
