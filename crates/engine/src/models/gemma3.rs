//! Gemma 3 (text): scaled embeddings, (1 + w) RMS norms, norms after attention and MLP,
//! per-head q/k norms, GELU-tanh gating, and five sliding-window layers per global one.

use mlx_rs::{ops, Array};

use super::transformer::{Activation, Attention, Block, Mlp, Transformer};
use crate::{
    config::ModelArgs, error::Result, fused::Projections, layers::RmsNorm, rope::Rope,
    weights::Tensors,
};

/// Gemma stores norm gains as offsets from one.
fn gemma_norm(t: &mut Tensors, name: &str, dim: i32, eps: f32) -> Result<RmsNorm> {
    let n = t.rms_norm(name, dim, eps)?;
    Ok(RmsNorm {
        weight: ops::add(&n.weight, Array::from_f32(1.0))?,
        eps,
    })
}

/// Loads a Gemma 3 text model (also the language half of a multimodal checkpoint).
pub fn load(args: ModelArgs, mut t: Tensors) -> Result<Transformer> {
    // Multimodal checkpoints prefix the language model; vision weights are not ours to load.
    t.rename_prefix("language_model.model.", "model.");
    t.rename_prefix("language_model.lm_head.", "lm_head.");
    t.discard(|k| k.starts_with("vision_tower") || k.starts_with("multi_modal_projector"));
    let (hidden, heads, kv, hd) = (
        args.hidden_size,
        args.num_attention_heads,
        args.kv_heads(),
        args.head_dim(),
    );
    let eps = args.rms_norm_eps;
    let pattern = args.sliding_window_pattern.unwrap_or(6).max(1);
    let scale = args.query_pre_attn_scalar.unwrap_or(256.0).powf(-0.5);
    let global_rope = Rope::from_config(
        hd,
        args.rope_theta,
        false,
        args.rope_scaling.as_ref(),
        args.max_position_embeddings,
        None,
    )?;
    let local_rope = Rope::plain(hd, args.rope_local_base_freq.unwrap_or(10000.0), false);
    let mut blocks = Vec::new();
    for i in 0..args.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let global = i % pattern == pattern - 1;
        let mut lin = |name: &str, out, inp| t.linear(&format!("{p}.{name}"), out, inp, &args);
        let (q, k, v, o) = (
            lin("self_attn.q_proj", heads * hd, hidden)?,
            lin("self_attn.k_proj", kv * hd, hidden)?,
            lin("self_attn.v_proj", kv * hd, hidden)?,
            lin("self_attn.o_proj", hidden, heads * hd)?,
        );
        let (gate, up, down) = (
            lin("mlp.gate_proj", args.intermediate_size, hidden)?,
            lin("mlp.up_proj", args.intermediate_size, hidden)?,
            lin("mlp.down_proj", hidden, args.intermediate_size)?,
        );
        blocks.push(Block {
            attn: Attention {
                qkv: Projections::new(vec![q, k, v])?,
                o,
                q_norm: Some(gemma_norm(
                    &mut t,
                    &format!("{p}.self_attn.q_norm"),
                    hd,
                    eps,
                )?),
                k_norm: Some(gemma_norm(
                    &mut t,
                    &format!("{p}.self_attn.k_norm"),
                    hd,
                    eps,
                )?),
                rope: if global { 0 } else { 1 },
                heads,
                kv_heads: kv,
                scale,
                window: if global { None } else { args.sliding_window },
            },
            mlp: Mlp {
                gate_up: Projections::new(vec![gate, up])?,
                down,
                activation: Activation::GeluTanh,
            },
            input_norm: gemma_norm(&mut t, &format!("{p}.input_layernorm"), hidden, eps)?,
            post_attn_norm: Some(gemma_norm(
                &mut t,
                &format!("{p}.post_attention_layernorm"),
                hidden,
                eps,
            )?),
            pre_mlp_norm: gemma_norm(
                &mut t,
                &format!("{p}.pre_feedforward_layernorm"),
                hidden,
                eps,
            )?,
            post_mlp_norm: Some(gemma_norm(
                &mut t,
                &format!("{p}.post_feedforward_layernorm"),
                hidden,
                eps,
            )?),
        });
    }
    let embed = t.embedding("model.embed_tokens", args.vocab_size, hidden, &args)?;
    let norm = gemma_norm(&mut t, "model.norm", hidden, eps)?;
    let lm_head = if t.contains("lm_head.weight") {
        Some(t.linear("lm_head", args.vocab_size, hidden, &args)?)
    } else {
        None
    };
    // mlx-lm multiplies by sqrt(hidden) rounded to bfloat16; match it exactly.
    let embed_scale = Array::from_f32((hidden as f32).sqrt())
        .as_dtype(mlx_rs::Dtype::Bfloat16)?
        .as_dtype(mlx_rs::Dtype::Float32)?
        .try_item_cast::<f32>()?;
    Ok(Transformer {
        args,
        embed,
        embed_scale: Some(embed_scale),
        blocks,
        ropes: vec![global_rope, local_rope],
        norm,
        lm_head,
    })
}
