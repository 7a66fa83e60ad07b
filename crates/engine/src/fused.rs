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
        match self.layer {
            Fusion::Fused(l) => Ok(Self {
                layer: Fusion::Fused(l.dequantized()?),
                sizes: self.sizes,
            }),
            // Parts kept apart for their packing may stack once they are all dense.
            Fusion::Separate(parts) => Self::new(
                parts
                    .into_iter()
                    .map(Linear::dequantized)
                    .collect::<Result<_>>()?,
            ),
        }
    }
}

fn concat_rows(arrays: &[&Array]) -> Result<Array> {
    Ok(ops::concatenate(arrays, 0)?)
}

/// The optional arrays concatenated, when present (callers check all or none have one).
fn concat_present(arrays: &[Option<&Array>]) -> Result<Option<Array>> {
    let present: Vec<&Array> = arrays.iter().flatten().copied().collect();
    Ok(if present.is_empty() {
        None
    } else {
        Some(concat_rows(&present)?)
    })
}

/// One layer equivalent to `parts` stacked on their output axis, when their formats match:
/// the same kind, dtype, packing and input size, and biases on all or none.
fn stack(parts: &[Linear]) -> Result<Option<Linear>> {
    if parts.len() < 2 {
        return Ok(None);
    }
    match &parts[0] {
        Linear::Dense {
            weight: w0,
            bias: b0,
        } => {
            let (mut weights, mut biases) = (Vec::new(), Vec::new());
            for p in parts {
                match p {
                    Linear::Dense { weight, bias }
                        if weight.dtype() == w0.dtype()
                            && weight.shape()[1..] == w0.shape()[1..]
                            && bias.is_some() == b0.is_some() =>
                    {
                        weights.push(weight);
                        biases.push(bias.as_ref());
                    }
                    _ => return Ok(None),
                }
            }
            Ok(Some(Linear::Dense {
                weight: concat_rows(&weights)?,
                bias: concat_present(&biases)?,
            }))
        }
        Linear::Quantized {
            weight: w0,
            biases: gb0,
            bias: b0,
            params: p0,
            dtype: d0,
            ..
        } => {
            let (mut weights, mut scales, mut group_biases, mut biases) =
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
                    } if params == p0
                        && dtype == d0
                        && weight.shape()[1..] == w0.shape()[1..]
                        && gb.is_some() == gb0.is_some()
                        && bias.is_some() == b0.is_some() =>
                    {
                        weights.push(weight);
                        scales.push(s);
                        group_biases.push(gb.as_ref());
                        biases.push(bias.as_ref());
                    }
                    _ => return Ok(None),
                }
            }
            Ok(Some(Linear::Quantized {
                weight: concat_rows(&weights)?,
                scales: concat_rows(&scales)?,
                biases: concat_present(&group_biases)?,
                bias: concat_present(&biases)?,
                params: *p0,
                dtype: *d0,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        layers::QuantParams,
        quant_ops::{quantize, QuantMode},
    };
    use mlx_rs::Dtype;

    fn matrix(rows: i32, cols: i32, seed: i32) -> Array {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| (((i + seed) * 37 % 101) as f32 - 50.0) / 170.0)
            .collect();
        Array::from_slice(&v, &[rows, cols])
    }

    fn dense(rows: i32, seed: i32, bias: bool) -> Linear {
        Linear::Dense {
            weight: matrix(rows, 64, seed),
            bias: bias.then(|| matrix(1, rows, seed + 1).reshape(&[rows]).unwrap()),
        }
    }

    fn quantized(rows: i32, seed: i32, bits: i32) -> Linear {
        let p = quantize(&matrix(rows, 64, seed), QuantMode::Affine, 32, bits).unwrap();
        Linear::Quantized {
            weight: p.weight,
            scales: p.scales,
            biases: p.biases,
            bias: None,
            params: QuantParams::affine(bits, 32),
            dtype: Dtype::Float32,
        }
    }

    fn max_difference(a: &[Array], b: &[Array]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                assert_eq!(x.shape(), y.shape());
                ops::abs(&(x - y))
                    .unwrap()
                    .max(None)
                    .unwrap()
                    .item_exact::<f32>()
            })
            .fold(0.0, f32::max)
    }

    /// The same projections fused and apart give the same outputs, for one token and a chunk.
    fn check_matches_separate(make: impl Fn() -> Vec<Linear>, expect_fused: bool) {
        let fused = Projections::new(make()).unwrap();
        assert_eq!(fused.is_fused(), expect_fused);
        let apart = make();
        for tokens in [1, 5] {
            let x = matrix(tokens, 64, 3).reshape(&[1, tokens, 64]).unwrap();
            let want: Vec<Array> = apart.iter().map(|l| l.forward(&x).unwrap()).collect();
            let got = fused.forward(&x).unwrap();
            let d = max_difference(&got, &want);
            assert!(d <= 1e-5, "{tokens} tokens: differs by {d}");
        }
    }

    #[test]
    fn dense_projections_fuse_with_and_without_biases() {
        check_matches_separate(
            || {
                vec![
                    dense(48, 0, false),
                    dense(16, 1, false),
                    dense(16, 2, false),
                ]
            },
            true,
        );
        check_matches_separate(
            || vec![dense(48, 0, true), dense(16, 1, true), dense(16, 2, true)],
            true,
        );
    }

    #[test]
    fn quantized_projections_fuse_only_with_the_same_packing() {
        check_matches_separate(|| vec![quantized(32, 0, 4), quantized(32, 1, 4)], true);
        // A mixed recipe gives v more bits than q and k: those stay apart.
        check_matches_separate(
            || {
                vec![
                    quantized(32, 0, 4),
                    quantized(16, 1, 4),
                    quantized(16, 2, 8),
                ]
            },
            false,
        );
        check_matches_separate(|| vec![dense(32, 0, false), quantized(32, 1, 4)], false);
        check_matches_separate(|| vec![dense(32, 0, true), dense(32, 1, false)], false);
    }

    #[test]
    fn dequantizing_keeps_the_fusion_and_the_outputs() {
        let p = Projections::new(vec![quantized(32, 0, 8), quantized(32, 1, 8)]).unwrap();
        let x = matrix(1, 64, 5).reshape(&[1, 1, 64]).unwrap();
        let before = p.forward(&x).unwrap();
        let d = p.dequantized().unwrap();
        assert!(d.is_fused());
        assert!(matches!(d.linears()[0], Linear::Dense { .. }));
        let after = d.forward(&x).unwrap();
        let diff = max_difference(&before, &after);
        assert!(diff <= 1e-4, "dequantized outputs differ by {diff}");
    }
}
