//! Qwen3-MoE (mlx-lm's `qwen3_moe.py`): Qwen 3's attention, with routed experts in place of
//! the dense MLP in every `decoder_sparse_step`-th layer not listed in `mlp_only_layers`. The
//! router's softmax picks `num_experts_per_tok` experts, rescaled to sum to one when
//! `norm_topk_prob` says so.

use super::spec::{ExpertsSpec, MlpKind, Spec};
use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
    layers::QuantParams,
    moe::Routing,
    weights::Tensors,
};

fn required(args: &ModelArgs, key: &str, value: Option<i32>) -> Result<i32> {
    value.ok_or_else(|| EngineError::MissingConfigKey {
        path: "config.json".into(),
        model_type: args.model_type.clone(),
        key: key.into(),
    })
}

/// Qwen 3's attention; experts in the sparse layers.
pub fn spec(args: &ModelArgs) -> Result<Spec> {
    let experts = ExpertsSpec {
        experts: required(args, "num_experts", args.num_experts)?,
        top_k: required(args, "num_experts_per_tok", args.num_experts_per_tok)?,
        intermediate: required(args, "moe_intermediate_size", args.moe_intermediate_size)?,
        routing: Routing::SoftmaxTopK {
            normalize: args.norm_topk_prob.unwrap_or(false),
        },
        router: "gate",
        switch: "switch_mlp",
    };
    let step = args.decoder_sparse_step.unwrap_or(1);
    let dense_only = args.mlp_only_layers.clone().unwrap_or_default();
    let mut spec = Spec {
        qk_norm: true,
        ..Spec::llama(args, args.head_dim())?
    };
    for (i, layer) in spec.layers.iter_mut().enumerate() {
        let i = i as i32;
        if !dense_only.contains(&i) && (i + 1) % step == 0 {
            layer.mlp = MlpKind::Experts(experts);
        }
    }
    Ok(spec)
}

/// Hugging Face checkpoints store one matrix per expert (`mlp.experts.{e}.gate_proj.weight`);
/// mlx-lm stacks them into `mlp.switch_mlp.gate_proj.weight` (`[experts, out, in]`).
pub fn sanitize(args: &ModelArgs, t: &mut Tensors) -> Result<()> {
    // Without a count, `spec` refuses the config with a reason.
    let Some(experts) = args.num_experts else {
        return Ok(());
    };
    for l in 0..args.num_hidden_layers {
        let p = format!("model.layers.{l}.mlp");
        if !t.contains(&format!("{p}.experts.0.up_proj.weight")) {
            continue;
        }
        for n in ["up_proj", "down_proj", "gate_proj"] {
            for suffix in ["weight", "scales", "biases"] {
                if !t.contains(&format!("{p}.experts.0.{n}.{suffix}")) {
                    continue;
                }
                let parts: Vec<String> = (0..experts)
                    .map(|e| format!("{p}.experts.{e}.{n}.{suffix}"))
                    .collect();
                t.stack(&parts, &format!("{p}.switch_mlp.{n}.{suffix}"))?;
            }
        }
    }
    Ok(())
}

/// mlx-lm's `quant_predicate`: the router keeps 8 bits in groups of 64.
pub fn quant_override(path: &str) -> Option<QuantParams> {
    path.ends_with("mlp.gate")
        .then_some(QuantParams::affine(8, 64))
}
