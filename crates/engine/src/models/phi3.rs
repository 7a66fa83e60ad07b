//! Phi-3 / Phi-4: the Llama layout with fused qkv and gate/up projections (split at load
//! time) and long-rope scaling.

use super::{llama, Transformer};
use crate::{config::ModelArgs, error::Result, weights::Tensors};

/// Loads a Phi-3 model.
pub fn load(mut args: ModelArgs, mut t: Tensors) -> Result<Transformer> {
    let (heads, kv, hd) = (args.num_attention_heads, args.kv_heads(), args.head_dim());
    for i in 0..args.num_hidden_layers {
        let p = format!("model.layers.{i}");
        // Mixed-precision configs name the fused layers; the split ones use their settings.
        let [q, k, v] = ["q_proj", "k_proj", "v_proj"].map(|n| format!("{p}.self_attn.{n}"));
        args.inherit_quantization(&format!("{p}.self_attn.qkv_proj"), &[&q, &k, &v]);
        let [gate, up] = ["gate_proj", "up_proj"].map(|n| format!("{p}.mlp.{n}"));
        args.inherit_quantization(&format!("{p}.mlp.gate_up_proj"), &[&gate, &up]);
        t.split_rows(
            &format!("{p}.self_attn.qkv_proj"),
            &[
                (&format!("{p}.self_attn.q_proj"), heads * hd),
                (&format!("{p}.self_attn.k_proj"), kv * hd),
                (&format!("{p}.self_attn.v_proj"), kv * hd),
            ],
        )?;
        t.split_rows(
            &format!("{p}.mlp.gate_up_proj"),
            &[
                (&format!("{p}.mlp.gate_proj"), args.intermediate_size),
                (&format!("{p}.mlp.up_proj"), args.intermediate_size),
            ],
        )?;
    }
    let spec = llama::Spec {
        qk_norm: false,
        tied_default: args.tie_word_embeddings.unwrap_or(false),
        rotary_fraction: args.partial_rotary_factor.unwrap_or(1.0),
    };
    // Split layers inherit the fused layer's quantization settings.
    llama::load_with(args, t, &spec)
}
