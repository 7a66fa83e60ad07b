//! The engine's own decisions that change how much memory a model takes, kept here so that the
//! engine (which acts on them) and the estimator (which predicts them) read one constant each.
//! minibar-fit has no MLX dependency, so the engine imports these rather than the other way.
//!
//! Invariant: the engine decides whether to expand a quantized model with
//! [`cpu_dequantizes`], and [`crate::estimate`] models the same call, so a change of the limit
//! moves the prediction and the behaviour together.

/// On the CPU, a quantized model whose weights take at most this many bytes once dense (in the
/// compute dtype, f32 there) is expanded on load: MLX's CPU quantized kernels are
/// single-threaded, and small dense models decode faster than quantized ones.
pub const CPU_DEQUANTIZE_LIMIT: u64 = 1 << 30;

/// Prompt tokens per forward pass during prefill: bounds the activations a long prompt needs.
pub const PREFILL_CHUNK: u64 = 256;

/// Whether the engine on the CPU expands quantized weights that are `dense_bytes` when dense.
pub fn cpu_dequantizes(dense_bytes: u64) -> bool {
    dense_bytes <= CPU_DEQUANTIZE_LIMIT
}

/// Whether a model [`cpu_dequantizes`] allows to expand is expanded, given the verdicts of the
/// expanded and the kept-quantized forms against the budget: speed is not worth a model that
/// no longer fits, so a model that fits only quantized stays quantized. [`crate::assess`]
/// applies it, and the engine loads as the gate's [`crate::Admission::dequantize`] says.
pub fn keep_expansion(expanded: FitLevel, quantized: FitLevel) -> bool {
    expanded != FitLevel::WontFit || quantized == FitLevel::WontFit
}

use crate::verdict::FitLevel;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expansion_that_would_not_fit_is_dropped() {
        use FitLevel::*;
        assert!(keep_expansion(Fits, Fits));
        assert!(keep_expansion(Tight, Fits));
        assert!(!keep_expansion(WontFit, Tight));
        assert!(!keep_expansion(WontFit, Fits));
        // Neither fits: the engine's speed rule stands (a forced load behaves as before).
        assert!(keep_expansion(WontFit, WontFit));
    }

    #[test]
    fn the_limit_is_inclusive_at_one_gibibyte() {
        assert!(cpu_dequantizes(538_060_032));
        assert!(cpu_dequantizes(1 << 30));
        assert!(!cpu_dequantizes((1 << 30) + 1));
    }
}
