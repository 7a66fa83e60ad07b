//! Linear layers that read the same input, stored as one matrix when their formats allow.
//!
//! A decode step is a string of small operations whose fixed cost per operation (MLX's
//! scheduling, OpenBLAS waking its threads) rivals the arithmetic: one product with q, k
//! and v stacked, or gate and up stacked, does the work of three or two for the cost of one.
//! Each output row is the same dot product either way, so results do not change.

use mlx_rs::{ops, Array};

use crate::{error::Result, layers::Linear};

/// Several projections of one input: fused into one `Linear` when they share a format.
pub struct Projections {
    layer: Fusion,
    /// Output size of each projection, in order.
    sizes: Vec<i32>,
}

enum Fusion {
    Fused(Linear),
    Separate(Vec<Linear>),
}

impl Projections {
    /// Stacks `parts` along their output axis if they are all dense, or all quantized with
    /// the same packing, with biases on all or none; otherwise keeps them apart.
    pub fn new(parts: Vec<Linear>) -> Result<Self> {
        let sizes = parts.iter().map(Linear::out_features).collect();
        let layer = match stack(&parts)? {
            Some(fused) => Fusion::Fused(fused),
            None => Fusion::Separate(parts),
        };
        Ok(Self { layer, sizes })
    }

    /// Applies every projection to `x` (`[B, L, in]`), in the order they were given.
    ///
    /// Only single-token steps use the stacked product: for a prompt chunk each projection
    /// multiplies its own rows of the stacked matrix (a view), so no output has to stay
    /// alive until the last of its parts is consumed (3.5 MB of prefill peak for SmolLM2).
    pub fn forward(&self, x: &Array) -> Result<Vec<Array>> {
        match (&self.layer, Self::single_token(x)) {
            (Fusion::Separate(parts), _) => parts.iter().map(|l| l.forward(x)).collect(),
            (Fusion::Fused(l), false) => {
                let mut start = 0;
                self.sizes
                    .iter()
                    .map(|&n| {
                        start += n;
                        l.rows(start - n, start).forward(x)
                    })
                    .collect()
            }
            (Fusion::Fused(l), true) => {
                let y = l.forward(x)?;
                let mut at = 0;
                let bounds: Vec<i32> = self.sizes[..self.sizes.len() - 1]
                    .iter()
                    .map(|s| {
                        at += s;
                        at
                    })
                    .collect();
                Ok(ops::split_at_indices(&y, &bounds, -1)?)
            }
        }
    }

    /// The stacked output `[B, 1, sum(sizes)]` of a single-token step, when fused; callers
    /// that split it themselves use it, and `forward` otherwise.
    pub fn forward_stacked(&self, x: &Array) -> Result<Option<Array>> {
        match &self.layer {
            Fusion::Fused(l) if Self::single_token(x) => Ok(Some(l.forward(x)?)),
            _ => Ok(None),
        }
    }

    fn single_token(x: &Array) -> bool {
        x.ndim() >= 2 && x.shape()[x.ndim() - 2] == 1
    }

    /// Output size of each projection.
    pub fn sizes(&self) -> &[i32] {
        &self.sizes
    }

    /// Whether the projections run as one product.
    pub fn is_fused(&self) -> bool {
        matches!(self.layer, Fusion::Fused(_))
    }

    /// The layers held: one when fused.
    pub fn linears(&self) -> Vec<&Linear> {
        match &self.layer {
            Fusion::Fused(l) => vec![l],
            Fusion::Separate(parts) => parts.iter().collect(),
        }
    }

    /// Converts quantized weights to dense ones (see `Linear::dequantized`); fusion is kept.
    pub fn dequantized(self) -> Result<Self> {
        let layer = match self.layer {
            Fusion::Fused(l) => Fusion::Fused(l.dequantized()?),
            Fusion::Separate(parts) => {
                let dense = parts
                    .into_iter()
                    .map(Linear::dequantized)
                    .collect::<Result<Vec<_>>>()?;
                return Ok(Self {
                    layer: match stack(&dense)? {
                        Some(fused) => Fusion::Fused(fused),
                        None => Fusion::Separate(dense),
                    },
                    sizes: self.sizes,
                });
            }
        };
        Ok(Self {
            layer,
            sizes: self.sizes,
        })
    }
}

fn concat_rows(arrays: &[&Array]) -> Result<Array> {
    Ok(ops::concatenate(arrays, 0)?)
}

/// All-or-none optional arrays, concatenated; `Err(())` when some have one and some not.
fn concat_optional(arrays: &[Option<&Array>]) -> Result<std::result::Result<Option<Array>, ()>> {
    let present: Vec<&Array> = arrays.iter().flatten().copied().collect();
    if present.is_empty() {
        return Ok(Ok(None));
    }
    if present.len() != arrays.len() {
        return Ok(Err(()));
    }
    Ok(Ok(Some(concat_rows(&present)?)))
}

/// One layer equivalent to `parts` stacked on their output axis, when their formats match.
fn stack(parts: &[Linear]) -> Result<Option<Linear>> {
    if parts.len() < 2 {
        return Ok(None);
    }
    let first = &parts[0];
    match first {
        Linear::Dense { weight: w0, .. } => {
            let mut weights = Vec::new();
            let mut biases = Vec::new();
            for p in parts {
                match p {
                    Linear::Dense { weight, bias }
                        if weight.dtype() == w0.dtype()
                            && weight.shape()[1..] == w0.shape()[1..] =>
                    {
                        weights.push(weight);
                        biases.push(bias.as_ref());
                    }
                    _ => return Ok(None),
                }
            }
            let Ok(bias) = concat_optional(&biases)? else {
                return Ok(None);
            };
            Ok(Some(Linear::Dense {
                weight: concat_rows(&weights)?,
                bias,
            }))
        }
        Linear::Quantized {
            weight: w0,
            params: p0,
            dtype: d0,
            ..
        } => {
            let (mut weights, mut scales, mut gbiases, mut biases) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for p in parts {
                match p {
                    Linear::Quantized {
                        weight,
                        scales: s,
                        biases: gb,
                        bias,
                        params,
                        dtype,
                    } if params == p0 && dtype == d0 && weight.shape()[1..] == w0.shape()[1..] => {
                        weights.push(weight);
                        scales.push(s);
                        gbiases.push(gb.as_ref());
                        biases.push(bias.as_ref());
                    }
                    _ => return Ok(None),
                }
            }
            let (Ok(group_biases), Ok(bias)) =
                (concat_optional(&gbiases)?, concat_optional(&biases)?)
            else {
                return Ok(None);
            };
            Ok(Some(Linear::Quantized {
                weight: concat_rows(&weights)?,
                scales: concat_rows(&scales)?,
                biases: group_biases,
                bias,
                params: *p0,
                dtype: *d0,
            }))
        }
    }
}
