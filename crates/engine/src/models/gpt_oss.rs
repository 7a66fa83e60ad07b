//! gpt-oss (mlx-lm's `gpt_oss.py`): biased attention projections with a learned sink logit
//! per head, layers alternating between a sliding window and full attention, YaRN rotary
//! scaling, and routed experts in every layer. The router keeps the `num_experts_per_tok`
//! largest logits and softmaxes over those; experts gate with a clamped SwiGLU and carry
//! biases. Released checkpoints hold the experts in mxfp4.

use super::{
    spec::{ExpertsSpec, MlpKind, Spec},
    transformer::Activation,
};
use mlx_rs::ops::indexing::{Ellipsis, IndexOp, IntoStrideBy};

use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
    layers::QuantParams,
    moe::Routing,
    weights::Tensors,
};

/// Every layer routed; sliding and full attention alternate as `layer_types` says (by
/// default sliding first, as mlx-lm assumes).
pub fn spec(args: &ModelArgs) -> Result<Spec> {
    let missing = |key: &str| EngineError::MissingConfigKey {
        path: "config.json".into(),
        model_type: args.model_type.clone(),
        key: key.into(),
    };
    let experts = ExpertsSpec {
        experts: args
            .num_experts
            .ok_or_else(|| missing("num_local_experts"))?,
        top_k: args
            .num_experts_per_tok
            .ok_or_else(|| missing("num_experts_per_tok"))?,
        intermediate: args.intermediate_size,
        routing: Routing::TopKSoftmax,
        router: "router",
        switch: "experts",
    };
    let window = args.sliding_window.unwrap_or(128);
    let mut spec = Spec {
        activation: Activation::SwiGluClamped,
        attention_sinks: true,
        ..Spec::llama(args, args.head_dim())?
    };
    for (i, layer) in spec.layers.iter_mut().enumerate() {
        let sliding = match args.layer_types.as_ref().and_then(|l| l.get(i)) {
            Some(kind) => kind == "sliding_attention",
            None => i % 2 == 0,
        };
        layer.window = sliding.then_some(window);
        layer.mlp = MlpKind::Experts(experts);
    }
    Ok(spec)
}

/// OpenAI's checkpoints (as on Hugging Face) store each layer's expert gate and up projections
/// interleaved row by row in one `gate_up_proj`, mxfp4 experts as `_blocks` (bytes, 16 per
/// group of 32) and `_scales`, and biases as `_bias`; mlx-lm's `sanitize` splits and renames
/// them to `gate_proj`, `up_proj` and `down_proj` with `.weight` (u32), `.scales`, `.bias`.
pub fn sanitize(_: &ModelArgs, t: &mut Tensors) -> Result<()> {
    let names = t.remaining();
    if names.iter().any(|k| k.contains("gate_proj.weight")) {
        return Ok(());
    }
    for k in names {
        let gate_up = k.contains("gate_up_proj");
        if !gate_up && !k.contains("down_proj") {
            continue;
        }
        let mut v = t.take_raw(&k)?;
        let name = if let Some(base) = k.strip_suffix("_blocks") {
            v = v.view::<u32>()?.flatten(-2, -1)?;
            format!("{base}.weight")
        } else if let Some(base) = k.strip_suffix("_scales") {
            format!("{base}.scales")
        } else if let Some(base) = k.strip_suffix("_bias") {
            format!("{base}.bias")
        } else if k.ends_with("_proj") {
            format!("{k}.weight")
        } else {
            k.clone()
        };
        if !gate_up {
            t.insert(&name, v);
            continue;
        }
        // Rows (or bias entries) alternate gate, up, gate, up...
        let (gate, up) = if name.ends_with(".bias") {
            (
                v.index((Ellipsis, (0..).stride_by(2))),
                v.index((Ellipsis, (1..).stride_by(2))),
            )
        } else {
            (
                v.index((Ellipsis, (0..).stride_by(2), ..)),
                v.index((Ellipsis, (1..).stride_by(2), ..)),
            )
        };
        t.insert(
            &name.replace("gate_up_proj", "gate_proj"),
            gate.contiguous()?,
        );
        t.insert(&name.replace("gate_up_proj", "up_proj"), up.contiguous()?);
    }
    Ok(())
}

/// mlx-lm's `quant_predicate`: the router keeps 8 bits in groups of 64.
pub fn quant_override(path: &str) -> Option<QuantParams> {
    path.ends_with("mlp.router")
        .then_some(QuantParams::affine(8, 64))
}

#[cfg(test)]
mod tests {
    use mlx_rs::{
        fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask},
        ops, Array,
    };

    use crate::layers::swiglu_clamped;

    fn max_diff(a: &Array, b: &Array) -> f32 {
        ops::abs(ops::subtract(a, b).unwrap())
            .unwrap()
            .max(None)
            .unwrap()
            .try_item_cast::<f32>()
            .unwrap()
    }

    fn ramp(shape: &[i32], seed: i32) -> Array {
        let n: i32 = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| (((i + seed) * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        Array::from_slice(&v, shape)
    }

    #[test]
    fn clamped_swiglu_clips_the_gate_above_and_the_linear_part_both_ways() {
        let gate = Array::from_slice(&[-9.0f32, 0.5, 9.0, 7.0], &[4]);
        let up = Array::from_slice(&[-9.0f32, 2.0, 9.0, -0.5], &[4]);
        let y = swiglu_clamped(&gate, &up).unwrap();
        let expected: Vec<f32> = [(-9.0f32, -7.0f32), (0.5, 2.0), (7.0, 7.0), (7.0, -0.5)]
            .iter()
            .map(|&(g, u)| (u + 1.0) * g / (1.0 + (-1.702 * g).exp()))
            .collect();
        let d = max_diff(&y, &Array::from_slice(&expected, &[4]));
        assert!(d < 1e-5, "off by {d}");
    }

    /// Attention with a sink: the softmax's denominator gains `exp(sink)` per head, and the
    /// sink contributes no value.
    fn by_hand(q: &Array, k: &Array, v: &Array, sinks: &Array, scale: f32) -> Array {
        let (h, l, s) = (q.shape()[1], q.shape()[2], k.shape()[2]);
        let scores = ops::multiply(
            ops::matmul(q, k.transpose_axes(&[0, 1, 3, 2]).unwrap()).unwrap(),
            Array::from_f32(scale),
        )
        .unwrap();
        // Causal, aligned to the end.
        let qi = ops::arange::<_, i32>(s - l, s, 1)
            .unwrap()
            .reshape(&[l, 1])
            .unwrap();
        let ki = ops::arange::<_, i32>(0, s, 1)
            .unwrap()
            .reshape(&[1, s])
            .unwrap();
        let scores = ops::select(
            qi.ge(&ki).unwrap(),
            &scores,
            Array::from_f32(f32::NEG_INFINITY),
        )
        .unwrap();
        let sink = ops::broadcast_to(sinks.reshape(&[1, h, 1, 1]).unwrap(), &[1, h, l, 1]).unwrap();
        let p = ops::softmax_axis(ops::concatenate(&[scores, sink], 3).unwrap(), -1, true).unwrap();
        let p = p.index((.., .., .., ..s));
        ops::matmul(&p, v).unwrap()
    }

    use mlx_rs::ops::indexing::IndexOp;

    #[test]
    fn attention_sinks_take_probability_mass_per_head() {
        let (h, l, s, d) = (4, 3, 5, 8);
        let q = ramp(&[1, h, l, d], 1);
        let k = ramp(&[1, h, s, d], 2);
        let v = ramp(&[1, h, s, d], 3);
        let sinks = Array::from_slice(&[-1.0f32, 0.0, 2.0, 5.0], &[h]);
        let scale = 0.35;
        let ours = scaled_dot_product_attention(
            &q,
            &k,
            &v,
            scale,
            ScaledDotProductAttentionMask::Causal,
            &sinks,
        )
        .unwrap();
        let d = max_diff(&ours, &by_hand(&q, &k, &v, &sinks, scale));
        assert!(d < 1e-5, "MLX's attention with sinks differs by {d}");
        let plain = scaled_dot_product_attention(
            &q,
            &k,
            &v,
            scale,
            ScaledDotProductAttentionMask::Causal,
            None,
        )
        .unwrap();
        assert!(max_diff(&ours, &plain) > 1e-3, "the sinks changed nothing");
    }
}
