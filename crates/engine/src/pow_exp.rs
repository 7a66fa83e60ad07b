//! Sigmoid, SiLU, GELU and softmax on MLX's CPU backend with `power(2, x)` in place of `exp(x)`.
//!
//! Why: the Linux `mlx-cpu` wheel is built for baseline x86-64, so its `exp` is a scalar
//! polynomial whose every `fma` is a call into libm: about 9 ns an element, against 3 ns for
//! `power` (libm's `powf`) and 0.15 ns for an add. Exponentials were a fifth of a decode
//! step at 32 concurrent sequences. Measured with mlx 0.32.2 on the 2-core development
//! machine, f32 `[8, 260, 1536]`: SiLU 43 ms native against 11.6 ms here, softmax 29.7
//! against 16.0 ms; per decode layer at 32 sequences, SiLU 0.72 against 0.22 ms and the
//! attention softmax 0.90 against 0.43 ms. On Metal `exp` is one instruction, so there
//! and for half-precision inputs (whose rounding the extra operations would compound)
//! the native operations run ([`applies`]).
//!
//! Invariant: each function equals its native counterpart to f32 rounding (relative error
//! under 1e-5 where the result is not vanishingly small), saturating the same way at large
//! magnitudes and keeping masked (`f32::MIN`) scores at zero weight; the tests hold them
//! together.

use mlx_rs::{ops, Array, Dtype};

use crate::{backend::Backend, error::Result};

const LOG2_E: f32 = std::f32::consts::LOG2_E;

/// Whether `x` takes the `power` path: f32 on the CPU.
pub fn applies(x: &Array) -> bool {
    x.dtype() == Dtype::Float32 && Backend::detect() == Backend::Cpu
}

/// `2^(x * factor)`, elementwise.
fn exp2_scaled(x: &Array, factor: f32) -> Result<Array> {
    Ok(Array::from_f32(2.0).power(ops::multiply(x, Array::from_f32(factor))?)?)
}

/// `1 / (1 + e^-x)`.
pub fn sigmoid(x: &Array) -> Result<Array> {
    if !applies(x) {
        return Ok(ops::sigmoid(x)?);
    }
    let denominator = ops::add(&exp2_scaled(x, -LOG2_E)?, Array::from_f32(1.0))?;
    Ok(denominator.reciprocal()?)
}

/// `x * sigmoid(x)`, as one division.
pub fn silu(x: &Array) -> Result<Array> {
    if !applies(x) {
        return Ok(ops::multiply(x, ops::sigmoid(x)?)?);
    }
    let denominator = ops::add(&exp2_scaled(x, -LOG2_E)?, Array::from_f32(1.0))?;
    Ok(ops::divide(x, &denominator)?)
}

/// GELU's tanh approximation, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, as the
/// equal `x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))` (f32 `[8, 260, 1536]`: 73 ms through
/// MLX's compiled `tanh` form, 13.6 ms here).
pub fn gelu_tanh(x: &Array) -> Result<Array> {
    if !applies(x) {
        return Ok(mlx_rs::nn::gelu_approximate(x)?);
    }
    const TWICE_SQRT_2_OVER_PI: f32 =
        2.0 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
    let cube_term = ops::multiply(&ops::square(x)?, Array::from_f32(0.044_715))?;
    let inner = ops::multiply(x, &ops::add(&cube_term, Array::from_f32(1.0))?)?;
    let denominator = ops::add(
        &exp2_scaled(&inner, -TWICE_SQRT_2_OVER_PI * LOG2_E)?,
        Array::from_f32(1.0),
    )?;
    Ok(ops::divide(x, &denominator)?)
}

/// Softmax over the last axis.
pub fn softmax_last(x: &Array) -> Result<Array> {
    // Below this size the five operations cost more than the slow `exp` they save: one
    // sequence's decode softmax over 260 positions (2,340 scores) takes 60 us natively and
    // 94 us here, two sequences' 144 against 116 us.
    const SMALLEST: usize = 4096;
    if !applies(x) || x.size() < SMALLEST {
        return Ok(ops::softmax_axis(x, -1, None)?);
    }
    softmax_by_power(x)
}

/// [`softmax_last`]'s `power` path, whatever the size.
fn softmax_by_power(x: &Array) -> Result<Array> {
    let max = x.max_axis(-1, true)?;
    let e = exp2_scaled(&ops::subtract(x, &max)?, LOG2_E)?;
    Ok(ops::divide(&e, &e.sum_axis(-1, true)?)?)
}

/// Softmax over the last axis of the scores where `mask` is true (broadcast against `x`); the
/// others get weight zero, and a row with none visible is all zeros rather than NaN.
pub fn softmax_masked(x: &Array, mask: &Array) -> Result<Array> {
    let hidden = ops::select(mask, x, Array::from_f32(f32::NEG_INFINITY))?;
    // A finite maximum keeps an all-hidden row at -inf - max = -inf, whose power is zero.
    let max = ops::maximum(&hidden.max_axis(-1, true)?, Array::from_f32(f32::MIN))?;
    let shifted = ops::subtract(&hidden, &max)?;
    let e = if applies(x) {
        exp2_scaled(&shifted, LOG2_E)?
    } else {
        ops::exp(&shifted)?
    };
    // A row with anything visible sums to at least one (its maximum's term); none, to zero.
    let sum = ops::maximum(&e.sum_axis(-1, true)?, Array::from_f32(f32::MIN_POSITIVE))?;
    Ok(ops::divide(&e, &sum)?)
}

#[cfg(test)]
mod tests {
    use mlx_rs::{ops::indexing::IndexOp, random};

    use super::*;

    /// The largest relative difference where the native result is above `floor`.
    fn worst(ours: &Array, native: &Array, floor: f32) -> f32 {
        let a: Vec<f32> = ours.as_slice().to_vec();
        let b: Vec<f32> = native.as_slice().to_vec();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(&o, &n)| {
                assert_eq!(o.is_nan(), n.is_nan(), "{o} against {n}");
                if n.abs() > floor {
                    ((o - n) / n).abs()
                } else {
                    (o - n).abs()
                }
            })
            .fold(0.0, f32::max)
    }

    /// Rows of typical scores and a row of extremes.
    fn inputs() -> [Array; 2] {
        random::seed(11).unwrap();
        let spread = random::normal::<f32>(&[4, 257], None, None, None).unwrap();
        let spread = ops::multiply(&spread, Array::from_f32(6.0)).unwrap();
        let extremes = [
            0.0f32,
            -0.0,
            1e-30,
            20.0,
            -20.0,
            88.0,
            -88.0,
            104.0,
            -104.0,
            1e4,
            -1e4,
            f32::MAX,
            f32::MIN,
        ];
        [spread, Array::from_slice(&extremes, &[1, 13])]
    }

    #[test]
    fn the_cpu_takes_the_power_path() {
        assert!(applies(&Array::from_f32(1.0)) == (Backend::detect() == Backend::Cpu));
    }

    #[test]
    fn sigmoid_and_silu_match_the_native_ones_and_saturate_alike() {
        for x in inputs() {
            let native_sigmoid = ops::sigmoid(&x).unwrap();
            assert!(worst(&sigmoid(&x).unwrap(), &native_sigmoid, 1e-30) < 1e-5);
            let native_silu = ops::multiply(&x, &native_sigmoid).unwrap();
            assert!(worst(&silu(&x).unwrap(), &native_silu, 1e-30) < 1e-5);
        }
    }

    #[test]
    fn gelu_matches_the_native_tanh_form() {
        for x in inputs() {
            let native = mlx_rs::nn::gelu_approximate(&x).unwrap();
            let ours: Vec<f32> = gelu_tanh(&x).unwrap().as_slice().to_vec();
            let native: Vec<f32> = native.as_slice().to_vec();
            for (o, n) in ours.iter().zip(&native) {
                // The tanh form cancels to ~1e-7 absolute where GELU nears zero from below.
                assert!((o - n).abs() <= 1e-5 * n.abs() + 1e-6, "{o} against {n}");
            }
        }
    }

    #[test]
    fn softmax_matches_the_native_one_with_masked_scores() {
        let [spread, extremes] = inputs();
        // Hide every third score, as attention masks do.
        let hide = ops::arange::<_, i32>(0, 257, 1)
            .unwrap()
            .remainder(Array::from_int(3))
            .unwrap()
            .eq(Array::from_int(0))
            .unwrap();
        let masked = ops::select(&hide, Array::from_f32(f32::MIN), &spread).unwrap();
        for x in [spread, masked, extremes] {
            let native = ops::softmax_axis(&x, -1, None).unwrap();
            for ours in [softmax_by_power(&x), softmax_last(&x)] {
                assert!(worst(&ours.unwrap(), &native, 1e-30) < 1e-5);
            }
        }
    }

    #[test]
    fn masked_softmax_weighs_only_the_visible_scores_and_zeroes_a_hidden_row() {
        let [spread, _] = inputs();
        // Row r sees its first 60 r + 17 scores; a fifth row sees none.
        let seen = Array::from_slice(&[17i32, 77, 137, 197, 0], &[5, 1]);
        let rows = ops::concatenate(&[spread.clone(), spread.index(0..1)], 0).unwrap();
        let mask = ops::arange::<_, i32>(0, 257, 1)
            .unwrap()
            .reshape(&[1, 257])
            .unwrap()
            .lt(&seen)
            .unwrap();
        let ours = softmax_masked(&rows, &mask).unwrap();
        let native = ops::softmax_axis(
            ops::select(&mask, &rows, Array::from_f32(f32::MIN)).unwrap(),
            -1,
            None,
        )
        .unwrap();
        assert!(worst(&ours.index(0..4), &native.index(0..4), 1e-30) < 1e-5);
        let hidden_row: Vec<f32> = ours.index(4).as_slice().to_vec();
        assert!(hidden_row.iter().all(|&w| w == 0.0), "{hidden_row:?}");
    }
}
