//! Gemma 3, text (mlx-lm's `gemma3_text.py`, and `gemma3.py` for the language half of a
//! multimodal checkpoint): scaled embeddings, (1 + w) RMS norms, norms after attention and MLP,
//! per-head q/k norms, GELU-tanh gating, and `sliding_window_pattern - 1` sliding-window layers
//! per global one, each kind with its own rotary embedding.

use mlx_rs::{Array, Dtype};

use super::{
    spec::{LayerSpec, MlpKind, Norm, Spec},
    transformer::Activation,
};
use crate::{config::ModelArgs, error::Result, rope::Rope, weights::Tensors};

/// Gemma 3's differences from the Llama layout.
pub fn spec(args: &ModelArgs) -> Result<Spec> {
    let hd = args.head_dim();
    let pattern = args.sliding_window_pattern.unwrap_or(6).max(1);
    let global = Rope::from_config(
        hd,
        args.rope_theta,
        false,
        args.rope_scaling.as_ref(),
        args.max_position_embeddings,
        None,
    )?;
    let local = Rope::plain(hd, args.rope_local_base_freq.unwrap_or(10000.0), false);
    let layers = (0..args.num_hidden_layers)
        .map(|i| {
            let is_global = i % pattern == pattern - 1;
            LayerSpec {
                rope: if is_global { 0 } else { 1 },
                window: if is_global { None } else { args.sliding_window },
                mlp: MlpKind::Dense,
            }
        })
        .collect();
    // mlx-lm multiplies by sqrt(hidden) rounded to bfloat16; match it exactly.
    let embed_scale = Array::from_f32((args.hidden_size as f32).sqrt())
        .as_dtype(Dtype::Bfloat16)?
        .as_dtype(Dtype::Float32)?
        .try_item_cast::<f32>()?;
    Ok(Spec {
        norm: Norm::RmsPlusOne,
        qk_norm: true,
        post_norms: true,
        activation: Activation::GeluTanh,
        fused_projections: false,
        tied_default: None,
        ropes: vec![global, local],
        attention_scale: args.query_pre_attn_scalar.unwrap_or(256.0).powf(-0.5),
        embed_scale: Some(embed_scale),
        attention_sinks: false,
        layers,
    })
}

/// Multimodal checkpoints prefix the language model; vision weights are not ours to load.
pub fn sanitize(_: &ModelArgs, t: &mut Tensors) -> Result<()> {
    t.rename_prefix("language_model.model.", "model.");
    t.rename_prefix("language_model.lm_head.", "lm_head.");
    t.discard(|k| k.starts_with("vision_tower") || k.starts_with("multi_modal_projector"));
    Ok(())
}
