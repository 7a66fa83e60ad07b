//! Mixture-of-experts layers, as mlx-lm builds them (`switch_layers.py`): a router picks
//! `top_k` experts per token, and each expert's gated MLP runs through MLX's `gather_mm`
//! (`gather_qmm` when quantized), which multiplies each token by its own experts' matrices
//! straight out of one stacked `[experts, out, in]` tensor, so no expert is copied out.
//!
//! Invariant: results equal mlx-lm's to f32 rounding, and the same experts are chosen: routing
//! runs the same operations in the same order (precise softmax, argpartition, take-along-axis),
//! and tokens are sorted by expert exactly when mlx-lm sorts them (64 or more choices in a
//! call), which changes the order of the sums MLX does.
//!
//! A new architecture plugs in through `models::spec::MlpKind::Experts`: a `Routing` variant
//! for how its router's logits become choices and weights, and an `Activation` for the gate.
//! Expert biases (`[experts, out]`) are taken from the weights when present.

use mlx_rs::{
    ops::{
        self,
        indexing::{Ellipsis, IndexOp},
    },
    Array,
};

use crate::{error::Result, layers::Linear, models::transformer::Activation, quant_ops};

/// From how many routing choices in one call on tokens are sorted by expert (mlx-lm's
/// `indices.size >= 64`): each expert's matrix is then read once per run of its tokens.
pub const SORT_THRESHOLD: usize = 64;

/// How the router's logits become the chosen experts and their weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Softmax over all experts, then the `top_k` largest probabilities (Qwen3-MoE); with
    /// `normalize`, the chosen probabilities are rescaled to sum to one (`norm_topk_prob`).
    SoftmaxTopK {
        /// Rescale the chosen weights to sum to one.
        normalize: bool,
    },
    /// The `top_k` largest logits, then a softmax over just those (gpt-oss).
    TopKSoftmax,
}

impl Routing {
    /// The chosen experts `[..., k]` (u32) and their weights `[..., k]` for router logits
    /// `[..., experts]`.
    pub fn route(self, logits: &Array, k: i32) -> Result<(Array, Array)> {
        let experts = logits.shape()[logits.ndim() - 1];
        match self {
            Routing::SoftmaxTopK { normalize } => {
                let gates = ops::softmax_axis(logits, -1, true)?;
                let inds = ops::argpartition_axis(&gates, experts - k, -1)?
                    .index((Ellipsis, (experts - k)..));
                let mut scores = gates.take_along_axis(&inds, -1)?;
                if normalize {
                    scores = ops::divide(&scores, scores.sum_axis(-1, true)?)?;
                }
                Ok((inds, scores))
            }
            Routing::TopKSoftmax => {
                let inds = ops::argpartition_axis(logits, experts - k, -1)?
                    .index((Ellipsis, (experts - k)..));
                let top = logits.take_along_axis(&inds, -1)?;
                Ok((inds, ops::softmax_axis(&top, -1, true)?))
            }
        }
    }
}

/// One linear layer per expert, stacked: weights `[experts, out, in]` (dense or quantized the
/// same way for every expert) and optional biases `[experts, out]`.
pub struct SwitchLinear(pub Linear);

impl SwitchLinear {
    /// `x @ W[e].T (+ b[e])` for each expert `e` in `indices`: `x` is `[..., 1, in]` and
    /// broadcasts against `indices`; the result is `[..indices, 1, out]`. `sorted` says the
    /// indices are in increasing order, which lets MLX read each expert once.
    pub fn forward(&self, x: &Array, indices: &Array, sorted: bool) -> Result<Array> {
        let (y, bias) = match &self.0 {
            Linear::Dense { weight, bias } => (
                ops::gather_mm(
                    x,
                    weight.swap_axes(-1, -2)?,
                    None::<&Array>,
                    indices,
                    sorted,
                )?,
                bias,
            ),
            Linear::Quantized {
                weight,
                scales,
                biases,
                bias,
                params,
                ..
            } => (
                quant_ops::gather_qmm(
                    x,
                    weight,
                    scales,
                    biases.as_ref(),
                    indices,
                    sorted,
                    params.mode,
                    params.group_size,
                    params.bits,
                )?,
                bias,
            ),
        };
        Ok(match bias {
            Some(b) => ops::add(&y, b.take_axis(indices, 0)?.expand_dims(-2)?)?,
            None => y,
        })
    }

    /// Replaces quantized experts by dense ones (see `Linear::dequantized`).
    pub fn dequantized(self) -> Result<Self> {
        Ok(SwitchLinear(self.0.dequantized()?))
    }
}

/// Every expert's gated MLP (mlx-lm's `SwitchGLU`): `down(act(gate(x), up(x)))`.
pub struct SwitchGlu {
    /// Gate projections `[experts, hidden, in]`.
    pub gate: SwitchLinear,
    /// Up projections `[experts, hidden, in]`.
    pub up: SwitchLinear,
    /// Down projections `[experts, in, hidden]`.
    pub down: SwitchLinear,
    /// The gating activation.
    pub activation: Activation,
}

impl SwitchGlu {
    /// Runs `x` (`[..., dim]`) through the experts `indices` (`[..., k]`) names and returns
    /// each expert's output, `[..., k, dim]`.
    pub fn forward(&self, x: &Array, indices: &Array) -> Result<Array> {
        let x = x.expand_dims_axes(&[-2, -3])?;
        let run = |x: &Array, idx: &Array, sorted: bool| -> Result<Array> {
            let up = self.up.forward(x, idx, sorted)?;
            let gate = self.gate.forward(x, idx, sorted)?;
            self.down
                .forward(&self.activation.apply(&gate, &up)?, idx, sorted)
        };
        let y = if indices.size() >= SORT_THRESHOLD {
            // mlx-lm's `_gather_sort` / `_scatter_unsort`: one row per choice, sorted by expert.
            let k = indices.shape()[indices.ndim() - 1];
            let flat = indices.flatten(None::<i32>, None::<i32>)?;
            let order = ops::argsort_axis(&flat, -1)?;
            let inverse = ops::argsort_axis(&order, -1)?;
            let rows = x
                .flatten(0, -3)?
                .take_axis(ops::floor_divide(&order, Array::from_int(k))?, 0)?;
            let y = run(&rows, &flat.take_axis(&order, 0)?, true)?.take_axis(&inverse, 0)?;
            let mut shape = indices.shape().to_vec();
            shape.extend_from_slice(&y.shape()[1..]);
            y.reshape(&shape)?
        } else {
            run(&x, indices, false)?
        };
        Ok(y.squeeze_axes(&[-2])?)
    }

    /// The three stacked layers.
    pub fn linears(&self) -> [&Linear; 3] {
        [&self.gate.0, &self.up.0, &self.down.0]
    }

    /// Replaces quantized experts by dense ones.
    pub fn dequantized(self) -> Result<Self> {
        Ok(SwitchGlu {
            gate: self.gate.dequantized()?,
            up: self.up.dequantized()?,
            down: self.down.dequantized()?,
            activation: self.activation,
        })
    }
}

/// A mixture-of-experts feed-forward layer (mlx-lm's `Qwen3MoeSparseMoeBlock`): route, run
/// the chosen experts, and sum their outputs weighted by the router.
pub struct Moe {
    /// Router: `[experts, dim]`.
    pub router: Linear,
    /// The experts.
    pub experts: SwitchGlu,
    /// Experts per token.
    pub top_k: i32,
    /// How the router's logits choose.
    pub routing: Routing,
}

impl Moe {
    /// Applies the layer to `x` (`[..., dim]`).
    pub fn forward(&self, x: &Array) -> Result<Array> {
        let (inds, scores) = self.routing.route(&self.router.forward(x)?, self.top_k)?;
        let y = self.experts.forward(x, &inds)?;
        let weighted = ops::multiply(&y, scores.expand_dims(-1)?)?;
        Ok(weighted.sum_axis(-2, false)?.as_dtype(y.dtype())?)
    }

    /// The router and the stacked expert layers.
    pub fn linears(&self) -> Vec<&Linear> {
        let mut v = vec![&self.router];
        v.extend(self.experts.linears());
        v
    }

    /// Replaces quantized weights by dense ones.
    pub fn dequantized(self) -> Result<Self> {
        Ok(Moe {
            router: self.router.dequantized()?,
            experts: self.experts.dequantized()?,
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{layers::QuantParams, quant_ops::QuantMode};

    fn ramp(shape: &[i32], seed: i32) -> Array {
        let n: i32 = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| (((i + seed) * 37 % 101) as f32 - 50.0) / 170.0)
            .collect();
        Array::from_slice(&v, shape)
    }

    fn max_diff(a: &Array, b: &Array) -> f32 {
        ops::abs(ops::subtract(a, b).unwrap())
            .unwrap()
            .max(None)
            .unwrap()
            .item_exact::<f32>()
    }

    /// Each token's output, computed one expert at a time with plain matmuls.
    fn by_hand(glu: &SwitchGlu, x: &Array, indices: &[u32], k: usize) -> Array {
        let w = |l: &SwitchLinear, e: u32| match &l.0 {
            Linear::Dense { weight, .. } => weight.index(e as i32),
            Linear::Quantized { .. } => unreachable!("dense only"),
        };
        let tokens = x.shape()[0];
        let mut rows = Vec::new();
        for t in 0..tokens {
            let xt = x.index(t);
            for &e in &indices[t as usize * k..(t as usize + 1) * k] {
                let g = ops::matmul(&xt, w(&glu.gate, e).t()).unwrap();
                let u = ops::matmul(&xt, w(&glu.up, e).t()).unwrap();
                let h = glu.activation.apply(&g, &u).unwrap();
                rows.push(ops::matmul(&h, w(&glu.down, e).t()).unwrap());
            }
        }
        ops::stack(&rows, 0)
            .unwrap()
            .reshape(&[tokens, k as i32, -1])
            .unwrap()
    }

    fn glu(experts: i32, dim: i32, hidden: i32) -> SwitchGlu {
        let dense = |s: i32, out, inp| {
            SwitchLinear(Linear::Dense {
                weight: ramp(&[experts, out, inp], s),
                bias: None,
            })
        };
        SwitchGlu {
            gate: dense(1, hidden, dim),
            up: dense(2, hidden, dim),
            down: dense(3, dim, hidden),
            activation: Activation::SwiGlu,
        }
    }

    #[test]
    fn gathered_experts_equal_one_matmul_per_expert_sorted_or_not() {
        let g = glu(4, 64, 32);
        // 3 tokens x 2 choices stay unsorted; 40 x 2 cross the sorting threshold.
        for tokens in [3, 40] {
            let x = ramp(&[tokens, 64], 7);
            let idx: Vec<u32> = (0..tokens as u32 * 2)
                .map(|i| (i * 7 + i / 3) % 4)
                .collect();
            let indices = Array::from_slice(&idx, &[tokens, 2]);
            let ours = g.forward(&x, &indices).unwrap();
            assert_eq!(ours.shape(), &[tokens, 2, 64]);
            let d = max_diff(&ours, &by_hand(&g, &x, &idx, 2));
            assert!(d < 1e-5, "{tokens} tokens: off by {d}");
        }
    }

    #[test]
    fn quantized_experts_match_their_dequantized_selves() {
        let dense = glu(4, 64, 64);
        let quantize = |l: &SwitchLinear| {
            let Linear::Dense { weight, .. } = &l.0 else {
                unreachable!()
            };
            let p = QuantParams::affine(4, 32);
            let q = quant_ops::quantize(weight, QuantMode::Affine, 32, 4).unwrap();
            SwitchLinear(Linear::Quantized {
                weight: q.weight,
                scales: q.scales,
                biases: q.biases,
                bias: None,
                params: p,
                dtype: mlx_rs::Dtype::Float32,
            })
        };
        let q = SwitchGlu {
            gate: quantize(&dense.gate),
            up: quantize(&dense.up),
            down: quantize(&dense.down),
            activation: Activation::SwiGlu,
        };
        let x = ramp(&[40, 64], 3);
        let idx: Vec<u32> = (0..80).map(|i| (i * 5 + 1) % 4).collect();
        let indices = Array::from_slice(&idx, &[40, 2]);
        let ours = q.forward(&x, &indices).unwrap();
        let expanded = q.dequantized().unwrap();
        let d = max_diff(&ours, &expanded.forward(&x, &indices).unwrap());
        assert!(d < 1e-4, "gather_qmm and gather_mm differ by {d}");
    }

    #[test]
    fn routing_picks_the_largest_and_normalizes() {
        let logits = Array::from_slice(&[0.1f32, 2.0, -1.0, 1.0, 3.0, 0.0, 0.5, -2.0], &[2, 4]);
        let (inds, scores) = Routing::SoftmaxTopK { normalize: true }
            .route(&logits, 2)
            .unwrap();
        let chosen = ops::sort_axis(&inds, -1).unwrap();
        assert_eq!(chosen.as_slice::<u32>(), &[1, 3, 0, 2]);
        let sums = scores.sum_axis(-1, false).unwrap();
        assert!(max_diff(&sums, &Array::from_slice(&[1.0f32, 1.0], &[2])) < 1e-6);
        let (_, raw) = Routing::SoftmaxTopK { normalize: false }
            .route(&logits, 2)
            .unwrap();
        assert!(
            raw.sum_axis(-1, false)
                .unwrap()
                .index(0)
                .item_exact::<f32>()
                < 0.99
        );
    }

    #[test]
    fn expert_biases_are_added_per_chosen_expert() {
        let weight = ramp(&[3, 8, 64], 1);
        let bias = ramp(&[3, 8], 5);
        let l = SwitchLinear(Linear::Dense {
            weight: weight.clone(),
            bias: Some(bias.clone()),
        });
        let x = ramp(&[1, 1, 64], 2);
        let y = l
            .forward(&x, &Array::from_slice(&[2u32], &[1]), false)
            .unwrap();
        let expected =
            ops::add(ops::matmul(&x, weight.index(2).t()).unwrap(), bias.index(2)).unwrap();
        assert!(max_diff(&y.reshape(&[8]).unwrap(), &expected.reshape(&[8]).unwrap()) < 1e-6);
    }
}
