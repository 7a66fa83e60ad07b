//! The building blocks every architecture shares: linear and embedding layers that may be
//! dense or MLX-quantized, and RMS norm. They hold plain arrays so loading stays explicit.

use mlx_rs::{ops, ops::indexing::IndexOp, Array, Dtype};

use crate::{error::Result, pow_exp, quant_ops, quant_ops::QuantMode};

/// How a quantized tensor was packed (MLX's affine or micro-scaling formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantParams {
    /// Weights per scale.
    pub group_size: i32,
    /// Bits per weight.
    pub bits: i32,
    /// The packing format.
    pub mode: QuantMode,
}

impl QuantParams {
    /// Affine quantization with these settings.
    pub fn affine(bits: i32, group_size: i32) -> Self {
        QuantParams {
            group_size,
            bits,
            mode: QuantMode::Affine,
        }
    }
}

/// A weight matrix `[out, in]`, dense or quantized, applied as `x @ W.T (+ b)`.
pub enum Linear {
    /// Plain floating-point weights.
    Dense {
        /// `[out, in]`.
        weight: Array,
        /// `[out]`.
        bias: Option<Array>,
    },
    /// MLX quantization: packed u32 weights with a scale (and, for affine, a bias) per group.
    Quantized {
        /// `[out, in * bits / 32]` u32.
        weight: Array,
        /// `[out, in / group]`.
        scales: Array,
        /// `[out, in / group]`; affine only.
        biases: Option<Array>,
        /// `[out]`.
        bias: Option<Array>,
        /// Packing.
        params: QuantParams,
        /// Float dtype of dense results (dequantized weights, embedding rows): the
        /// micro-scaling formats' u8 scales do not carry one.
        dtype: Dtype,
    },
}

impl Linear {
    /// Applies the layer to `x` (`[..., in]`).
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let (y, bias) = match self {
            Linear::Dense { weight, bias } => (ops::matmul(x, weight.t())?, bias),
            Linear::Quantized {
                weight,
                scales,
                biases,
                bias,
                params,
                ..
            } => (
                quant_ops::quantized_matmul(
                    x,
                    weight,
                    scales,
                    biases.as_ref(),
                    true,
                    params.mode,
                    params.group_size,
                    params.bits,
                )?,
                bias,
            ),
        };
        Ok(match bias {
            Some(b) => ops::add(&y, b)?,
            None => y,
        })
    }

    /// Output rows `start..end` as a layer of their own, sharing this one's memory.
    pub fn rows(&self, start: i32, end: i32) -> Linear {
        let r = |a: &Array| a.index(start..end);
        match self {
            Linear::Dense { weight, bias } => Linear::Dense {
                weight: r(weight),
                bias: bias.as_ref().map(r),
            },
            Linear::Quantized {
                weight,
                scales,
                biases,
                bias,
                params,
                dtype,
            } => Linear::Quantized {
                weight: r(weight),
                scales: r(scales),
                biases: biases.as_ref().map(r),
                bias: bias.as_ref().map(r),
                params: *params,
                dtype: *dtype,
            },
        }
    }

    /// Elements of the weight once dense (packed words hold `32 / bits` weights each).
    pub fn dense_elements(&self) -> u64 {
        match self {
            Linear::Dense { weight, .. } => weight.size() as u64,
            Linear::Quantized { weight, params, .. } => {
                weight.size() as u64 * 32 / params.bits.max(1) as u64
            }
        }
    }

    /// The output size.
    pub fn out_features(&self) -> i32 {
        match self {
            Linear::Dense { weight, .. } | Linear::Quantized { weight, .. } => weight.shape()[0],
        }
    }

    /// Replaces quantized weights by their dense f32 equivalent (faster on MLX's CPU backend,
    /// whose quantized kernels are single-threaded).
    pub fn dequantized(self) -> Result<Linear> {
        Ok(match self {
            Linear::Quantized {
                weight,
                scales,
                biases,
                bias,
                params,
                dtype,
            } => Linear::Dense {
                weight: quant_ops::dequantize(
                    &weight,
                    &scales,
                    biases.as_ref(),
                    params.mode,
                    params.group_size,
                    params.bits,
                    Some(dtype),
                )?,
                bias,
            },
            dense => dense,
        })
    }

    /// The arrays this layer holds, for memory accounting and evaluation.
    pub fn arrays(&self) -> Vec<&Array> {
        match self {
            Linear::Dense { weight, bias } => std::iter::once(weight).chain(bias).collect(),
            Linear::Quantized {
                weight,
                scales,
                biases,
                bias,
                ..
            } => [weight, scales]
                .into_iter()
                .chain(biases)
                .chain(bias)
                .collect(),
        }
    }
}

/// Token embeddings `[vocab, dim]`, dense or quantized; also usable as the tied output layer.
pub struct Embedding {
    /// The table, with the same layout as a linear layer's weight.
    pub table: Linear,
}

impl Embedding {
    /// Looks up the rows for `ids` (any shape) and returns `[..., dim]`.
    pub fn forward(&self, ids: &Array) -> Result<Array> {
        match &self.table {
            Linear::Dense { weight, .. } => Ok(weight.take_axis(ids, 0)?),
            Linear::Quantized {
                weight,
                scales,
                biases,
                params,
                dtype,
                ..
            } => {
                let w = weight.take_axis(ids, 0)?;
                let s = scales.take_axis(ids, 0)?;
                let b = biases.as_ref().map(|b| b.take_axis(ids, 0)).transpose()?;
                quant_ops::dequantize(
                    &w,
                    &s,
                    b.as_ref(),
                    params.mode,
                    params.group_size,
                    params.bits,
                    Some(*dtype),
                )
            }
        }
    }

    /// Projects hidden states onto the vocabulary with the same table (tied embeddings).
    pub fn as_linear(&self, x: &Array) -> Result<Array> {
        self.table.forward(x)
    }
}

/// Root-mean-square normalisation over the last axis.
pub struct RmsNorm {
    /// The per-channel gain.
    pub weight: Array,
    /// Added to the mean square before the square root.
    pub eps: f32,
}

impl RmsNorm {
    /// Normalises `x`.
    pub fn forward(&self, x: &Array) -> Result<Array> {
        Ok(mlx_rs::fast::rms_norm(x, Some(&self.weight), self.eps)?)
    }
}

/// SwiGLU: `silu(gate) * up`, as Llama-family MLPs use it.
pub fn swiglu(gate: &Array, up: &Array) -> Result<Array> {
    Ok(ops::multiply(&pow_exp::silu(gate)?, up)?)
}

/// gpt-oss's clamped SwiGLU (mlx-lm's `swiglu_oai`): the gate is clipped from above and the
/// linear part to ±7, and the linear part gains one: `(up + 1) * gate * sigmoid(1.702 gate)`.
pub fn swiglu_clamped(gate: &Array, up: &Array) -> Result<Array> {
    // Scalars in the inputs' dtype, as Python's weakly typed ones are: bf16 stays bf16.
    let scalar = |v: f32| Array::from_f32(v).as_dtype(gate.dtype());
    let limit = scalar(7.0)?;
    let gate = ops::minimum(gate, &limit)?;
    let up = ops::clip(up, (&ops::negative(&limit)?, &limit))?;
    let glu = ops::multiply(
        &gate,
        pow_exp::sigmoid(&ops::multiply(&gate, scalar(1.702)?)?)?,
    )?;
    Ok(ops::multiply(&ops::add(&up, scalar(1.0)?)?, &glu)?)
}
