//! MLX's `quantize`, `dequantize`, `quantized_matmul` and `gather_qmm` for every quantization
//! mode MLX 0.32
//! has (affine and the micro-scaling formats mxfp4, mxfp8, nvfp4). mlx-rs 0.33 passes a fixed
//! `"affine"` to mlx-c, so these call mlx-c directly through a small safe layer.

use std::{ffi::CStr, fmt, str::FromStr, sync::Once};

use mlx_rs::{Array, Dtype, Stream};

use crate::error::{EngineError, Result};

/// How a quantized tensor is packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QuantMode {
    /// Integers with a scale and a bias per group (in the weights' float dtype).
    #[default]
    Affine,
    /// OCP MX fp4 (E2M1 values, one E8M0 scale per 32).
    Mxfp4,
    /// OCP MX fp8 (E4M3 values, one E8M0 scale per 32).
    Mxfp8,
    /// NVIDIA fp4 (E2M1 values, one E4M3 scale per 16).
    Nvfp4,
}

impl QuantMode {
    /// Every mode, in the order MLX documents them.
    pub const ALL: [QuantMode; 4] = [
        QuantMode::Affine,
        QuantMode::Mxfp4,
        QuantMode::Mxfp8,
        QuantMode::Nvfp4,
    ];

    /// The name MLX and mlx-lm's config.json use.
    pub fn name(self) -> &'static str {
        match self {
            QuantMode::Affine => "affine",
            QuantMode::Mxfp4 => "mxfp4",
            QuantMode::Mxfp8 => "mxfp8",
            QuantMode::Nvfp4 => "nvfp4",
        }
    }

    fn c_name(self) -> &'static CStr {
        match self {
            QuantMode::Affine => c"affine",
            QuantMode::Mxfp4 => c"mxfp4",
            QuantMode::Mxfp8 => c"mxfp8",
            QuantMode::Nvfp4 => c"nvfp4",
        }
    }

    /// MLX's (and mlx-lm's) group size and bits when none are given.
    pub fn defaults(self) -> (i32, i32) {
        match self {
            QuantMode::Affine => (64, 4),
            QuantMode::Mxfp4 => (32, 4),
            QuantMode::Nvfp4 => (16, 4),
            QuantMode::Mxfp8 => (32, 8),
        }
    }

    /// Whether the format stores a bias per group next to the scale.
    pub fn has_biases(self) -> bool {
        self == QuantMode::Affine
    }

    /// Checks that MLX supports `group_size` and `bits` in this mode, saying what would.
    pub fn check(self, group_size: i32, bits: i32) -> std::result::Result<(), String> {
        let ok = match self {
            QuantMode::Affine => {
                [2, 3, 4, 5, 6, 8].contains(&bits) && [32, 64, 128].contains(&group_size)
            }
            other => (group_size, bits) == other.defaults(),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            QuantMode::Affine => format!(
                "affine quantization with {bits} bits and groups of {group_size}: choose 2, 3, 4, 5, 6 or 8 bits and groups of 32, 64 or 128"
            ),
            other => {
                let (g, b) = other.defaults();
                format!(
                    "{other} with {bits} bits and groups of {group_size}: {other} is always {b} bits in groups of {g}"
                )
            }
        })
    }
}

impl fmt::Display for QuantMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuantMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        QuantMode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown quantization mode `{s}` (MLX has affine, mxfp4, mxfp8 and nvfp4)")
            })
    }
}

/// A quantized matrix as MLX packs it.
pub struct Packed {
    /// `[.., in * bits / 32]` u32.
    pub weight: Array,
    /// One scale per group (float for affine, u8 for the micro-scaling formats).
    pub scales: Array,
    /// One bias per group; affine only.
    pub biases: Option<Array>,
}

/// mlx-c's default error handler exits the process; mlx-rs installs its own (which turns errors
/// into `Err`) on its first operation, so run one before calling mlx-c ourselves.
fn ensure_error_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = mlx_rs::ops::abs(Array::from_int(0));
    });
}

fn optional_int(v: i32) -> mlx_sys::mlx_optional_int {
    mlx_sys::mlx_optional_int {
        value: v,
        has_value: true,
    }
}

/// An absent optional array argument (mlx-c's null array).
fn null_array() -> Array {
    // SAFETY: mlx_array_new returns an empty handle that mlx-c treats as "no array" and that
    // Array's destructor may free.
    unsafe { Array::from_ptr(mlx_sys::mlx_array_new()) }
}

fn failed(op: &str, mode: QuantMode, group_size: i32, bits: i32, shape: &[i32]) -> EngineError {
    EngineError::Mlx(format!(
        "{op} failed for a {shape:?} array in {mode} mode ({bits} bits, groups of {group_size})"
    ))
}

/// Runs an mlx-c call that writes one array.
fn array_op(f: impl FnOnce(*mut mlx_sys::mlx_array) -> i32) -> Option<Array> {
    ensure_error_handler();
    // SAFETY: `res` starts as an empty handle; on success mlx-c stores a new reference in it,
    // which Array then owns; on failure it is freed here.
    unsafe {
        let mut res = mlx_sys::mlx_array_new();
        if f(&mut res) == 0 {
            Some(Array::from_ptr(res))
        } else {
            mlx_sys::mlx_array_free(res);
            None
        }
    }
}

/// Quantizes the last axis of `w` in groups of `group_size`.
pub fn quantize(w: &Array, mode: QuantMode, group_size: i32, bits: i32) -> Result<Packed> {
    mode.check(group_size, bits).map_err(EngineError::Mlx)?;
    if w.ndim() < 2 || w.shape()[w.ndim() - 1] % group_size != 0 {
        return Err(failed("quantize", mode, group_size, bits, w.shape()));
    }
    ensure_error_handler();
    let stream = Stream::thread_local_or_default();
    let global_scale = null_array();
    // SAFETY: every handle passed is live for the call; the vector and the arrays read from it
    // are freed (the arrays by Array's destructor, the vector below) on every path.
    let arrays = unsafe {
        let mut vec = mlx_sys::mlx_vector_array_new();
        let status = mlx_sys::mlx_quantize(
            &mut vec,
            w.as_ptr(),
            optional_int(group_size),
            optional_int(bits),
            mode.c_name().as_ptr(),
            global_scale.as_ptr(),
            stream.as_ptr(),
        );
        let mut out = Vec::new();
        if status == 0 {
            for i in 0..mlx_sys::mlx_vector_array_size(vec) {
                let mut a = mlx_sys::mlx_array_new();
                if mlx_sys::mlx_vector_array_get(&mut a, vec, i) != 0 {
                    mlx_sys::mlx_array_free(a);
                    break;
                }
                out.push(Array::from_ptr(a));
            }
        }
        mlx_sys::mlx_vector_array_free(vec);
        out
    };
    let expected = if mode.has_biases() { 3 } else { 2 };
    if arrays.len() != expected {
        return Err(failed("quantize", mode, group_size, bits, w.shape()));
    }
    let mut it = arrays.into_iter();
    let (weight, scales, biases) = (it.next(), it.next(), it.next());
    match (weight, scales) {
        (Some(weight), Some(scales)) => Ok(Packed {
            weight,
            scales,
            biases,
        }),
        _ => Err(failed("quantize", mode, group_size, bits, w.shape())),
    }
}

/// Unpacks quantized weights into `dtype` (by default the scales' float dtype, or bfloat16 for
/// the micro-scaling formats, whose values it holds exactly).
pub fn dequantize(
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    mode: QuantMode,
    group_size: i32,
    bits: i32,
    dtype: Option<Dtype>,
) -> Result<Array> {
    let stream = Stream::thread_local_or_default();
    let none = null_array();
    let global_scale = null_array();
    let dtype = mlx_sys::mlx_optional_dtype {
        value: dtype.unwrap_or(Dtype::Float32) as mlx_sys::mlx_dtype,
        has_value: dtype.is_some(),
    };
    array_op(|res| unsafe {
        // SAFETY: all handles are live for the call.
        mlx_sys::mlx_dequantize(
            res,
            w.as_ptr(),
            scales.as_ptr(),
            biases.unwrap_or(&none).as_ptr(),
            optional_int(group_size),
            optional_int(bits),
            mode.c_name().as_ptr(),
            global_scale.as_ptr(),
            dtype,
            stream.as_ptr(),
        )
    })
    .ok_or_else(|| failed("dequantize", mode, group_size, bits, w.shape()))
}

/// `x @ W.T` (or `x @ W` when `transpose` is false) with `W` quantized.
#[allow(clippy::too_many_arguments)]
pub fn quantized_matmul(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    transpose: bool,
    mode: QuantMode,
    group_size: i32,
    bits: i32,
) -> Result<Array> {
    let stream = Stream::thread_local_or_default();
    let none = null_array();
    array_op(|res| unsafe {
        // SAFETY: all handles are live for the call.
        mlx_sys::mlx_quantized_matmul(
            res,
            x.as_ptr(),
            w.as_ptr(),
            scales.as_ptr(),
            biases.unwrap_or(&none).as_ptr(),
            transpose,
            optional_int(group_size),
            optional_int(bits),
            mode.c_name().as_ptr(),
            stream.as_ptr(),
        )
    })
    .ok_or_else(|| failed("quantized_matmul", mode, group_size, bits, w.shape()))
}

/// `x @ W[e].T` for each expert `e` in `rhs_indices`, `W` quantized and stacked
/// `[experts, out, in]` (MLX's `gather_qmm`, as mlx-lm's `QuantizedSwitchLinear` calls it);
/// `x`'s batch axes broadcast against the indices. mlx-rs 0.33's wrapper is affine only.
#[allow(clippy::too_many_arguments)]
pub fn gather_qmm(
    x: &Array,
    w: &Array,
    scales: &Array,
    biases: Option<&Array>,
    rhs_indices: &Array,
    sorted_indices: bool,
    mode: QuantMode,
    group_size: i32,
    bits: i32,
) -> Result<Array> {
    let stream = Stream::thread_local_or_default();
    let none = null_array();
    let no_lhs = null_array();
    array_op(|res| unsafe {
        // SAFETY: all handles are live for the call.
        mlx_sys::mlx_gather_qmm(
            res,
            x.as_ptr(),
            w.as_ptr(),
            scales.as_ptr(),
            biases.unwrap_or(&none).as_ptr(),
            no_lhs.as_ptr(),
            rhs_indices.as_ptr(),
            true,
            optional_int(group_size),
            optional_int(bits),
            mode.c_name().as_ptr(),
            sorted_indices,
            stream.as_ptr(),
        )
    })
    .ok_or_else(|| failed("gather_qmm", mode, group_size, bits, w.shape()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(rows: i32, cols: i32) -> Array {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        Array::from_slice(&v, &[rows, cols])
    }

    #[test]
    fn every_mode_round_trips_and_multiplies() {
        let w = ramp(8, 64);
        let x = ramp(3, 64);
        for mode in QuantMode::ALL {
            let (g, b) = mode.defaults();
            let p = quantize(&w, mode, g, b).unwrap();
            assert_eq!(p.biases.is_some(), mode.has_biases(), "{mode}");
            assert_eq!(p.weight.shape(), &[8, 64 * b / 32], "{mode}");
            assert_eq!(p.scales.shape(), &[8, 64 / g], "{mode}");
            let dense = dequantize(
                &p.weight,
                &p.scales,
                p.biases.as_ref(),
                mode,
                g,
                b,
                Some(Dtype::Float32),
            )
            .unwrap();
            assert_eq!(dense.dtype(), Dtype::Float32);
            let err = mlx_rs::ops::abs(&(&dense - &w))
                .unwrap()
                .max(None)
                .unwrap()
                .item_exact::<f32>();
            // 4-bit formats keep about one significant bit at the top of each group.
            assert!(err < 0.6, "{mode}: round trip off by {err}");
            let y = quantized_matmul(
                &x,
                &p.weight,
                &p.scales,
                p.biases.as_ref(),
                true,
                mode,
                g,
                b,
            )
            .unwrap();
            let reference = mlx_rs::ops::matmul(&x, dense.t()).unwrap();
            let diff = mlx_rs::ops::abs(&(&y - &reference))
                .unwrap()
                .max(None)
                .unwrap()
                .item_exact::<f32>();
            assert!(diff < 1e-3, "{mode}: matmul off by {diff}");
        }
    }

    #[test]
    fn gathered_products_equal_each_experts_own_product_in_every_mode() {
        // Three experts of [8, 64]; tokens [4, 1, 64] pick one expert each.
        let w = ramp(24, 64).reshape(&[3, 8, 64]).unwrap();
        let x = ramp(4, 64).reshape(&[4, 1, 64]).unwrap();
        let picks = [2u32, 0, 2, 1];
        let idx = Array::from_slice(&picks, &[4]);
        for mode in QuantMode::ALL {
            let (g, b) = mode.defaults();
            let p = quantize(&w, mode, g, b).unwrap();
            let y = gather_qmm(
                &x,
                &p.weight,
                &p.scales,
                p.biases.as_ref(),
                &idx,
                false,
                mode,
                g,
                b,
            )
            .unwrap();
            assert_eq!(y.shape(), &[4, 1, 8], "{mode}");
            for (t, &e) in picks.iter().enumerate() {
                use mlx_rs::ops::indexing::IndexOp;
                let e = e as i32;
                let own = quantized_matmul(
                    &x.index(t as i32),
                    &p.weight.index(e),
                    &p.scales.index(e),
                    p.biases.as_ref().map(|b| b.index(e)).as_ref(),
                    true,
                    mode,
                    g,
                    b,
                )
                .unwrap();
                let diff = mlx_rs::ops::abs(&(&y.index(t as i32) - &own))
                    .unwrap()
                    .max(None)
                    .unwrap()
                    .item_exact::<f32>();
                assert!(diff < 1e-4, "{mode}: token {t} off by {diff}");
            }
        }
    }

    #[test]
    fn bad_settings_are_errors_not_crashes() {
        let w = ramp(4, 64);
        assert!(quantize(&w, QuantMode::Mxfp4, 64, 4).is_err());
        assert!(quantize(&w, QuantMode::Affine, 64, 7).is_err());
        assert!(quantize(&ramp(4, 48), QuantMode::Mxfp8, 32, 8).is_err());
        assert!("fp4".parse::<QuantMode>().is_err());
        assert_eq!("mxfp8".parse::<QuantMode>(), Ok(QuantMode::Mxfp8));
        // A shape MLX itself rejects comes back as an error.
        let p = quantize(&w, QuantMode::Mxfp4, 32, 4).unwrap();
        let x = ramp(2, 32);
        let r = quantized_matmul(
            &x,
            &p.weight,
            &p.scales,
            None,
            true,
            QuantMode::Mxfp4,
            32,
            4,
        )
        .and_then(|a| a.eval().map_err(Into::into));
        assert!(r.is_err());
    }
}
