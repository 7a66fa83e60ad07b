//! Llama (SmolLM2, Llama 3.x with llama3 rope scaling) and Mistral, which shares its layout.

use super::transformer::{Activation, Attention, Block, Mlp, Transformer};
use crate::{config::ModelArgs, error::Result, fused::Projections, rope::Rope, weights::Tensors};

/// What differs between the Llama-like architectures.
pub struct Spec {
    /// Per-head RMS norms on queries and keys (Qwen 3).
    pub qk_norm: bool,
    /// Whether embeddings are tied when the config does not say.
    pub tied_default: bool,
    /// Fraction of each head that is rotated (Phi-3 may rotate part of it).
    pub rotary_fraction: f32,
}

/// Loads a Llama or Mistral model.
pub fn load(args: ModelArgs, tensors: Tensors) -> Result<Transformer> {
    let spec = Spec {
        qk_norm: false,
        tied_default: args.model_type == "llama",
        rotary_fraction: 1.0,
    };
    load_with(args, tensors, &spec)
}

/// Loads any Llama-like model described by `spec`.
pub fn load_with(args: ModelArgs, mut t: Tensors, spec: &Spec) -> Result<Transformer> {
    t.discard(|k| k.contains("rotary_emb.inv_freq"));
    let (hidden, heads, kv, hd) = (
        args.hidden_size,
        args.num_attention_heads,
        args.kv_heads(),
        args.head_dim(),
    );
    let factors = t.take_optional("rope_freqs")?;
    let tied = args.tied_embeddings(spec.tied_default) || !t.contains("lm_head.weight");
    let mut rope = Rope::from_config(
        (hd as f32 * spec.rotary_fraction) as i32,
        args.rope_theta,
        args.rope_traditional,
        args.rope_scaling.as_ref(),
        args.max_position_embeddings,
        args.original_max_position_embeddings,
    )?;
    if let Some(f) = &factors {
        rope = rope.with_factors(f, args.rope_theta)?;
    }
    let mut blocks = Vec::with_capacity(args.num_hidden_layers as usize);
    for i in 0..args.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut lin = |name: &str, out, inp| t.linear(&format!("{p}.{name}"), out, inp, &args);
        let q = lin("self_attn.q_proj", heads * hd, hidden)?;
        let k = lin("self_attn.k_proj", kv * hd, hidden)?;
        let v = lin("self_attn.v_proj", kv * hd, hidden)?;
        let o = lin("self_attn.o_proj", hidden, heads * hd)?;
        let gate = lin("mlp.gate_proj", args.intermediate_size, hidden)?;
        let up = lin("mlp.up_proj", args.intermediate_size, hidden)?;
        let down = lin("mlp.down_proj", hidden, args.intermediate_size)?;
        let (q_norm, k_norm) = if spec.qk_norm {
            (
                Some(t.rms_norm(&format!("{p}.self_attn.q_norm"), hd, args.rms_norm_eps)?),
                Some(t.rms_norm(&format!("{p}.self_attn.k_norm"), hd, args.rms_norm_eps)?),
            )
        } else {
            (None, None)
        };
        let window = match args.layer_types.as_ref().and_then(|l| l.get(i as usize)) {
            Some(kind) if kind == "sliding_attention" => args.sliding_window,
            _ => None,
        };
        blocks.push(Block {
            attn: Attention {
                qkv: Projections::new(vec![q, k, v])?,
                o,
                q_norm,
                k_norm,
                rope: 0,
                heads,
                kv_heads: kv,
                scale: (hd as f32).powf(-0.5),
                window,
            },
            mlp: Mlp {
                gate_up: Projections::new(vec![gate, up])?,
                down,
                activation: Activation::SwiGlu,
            },
            input_norm: t.rms_norm(&format!("{p}.input_layernorm"), hidden, args.rms_norm_eps)?,
            post_attn_norm: None,
            pre_mlp_norm: t.rms_norm(
                &format!("{p}.post_attention_layernorm"),
                hidden,
                args.rms_norm_eps,
            )?,
            post_mlp_norm: None,
        });
    }
    let embed = t.embedding("model.embed_tokens", args.vocab_size, hidden, &args)?;
    let norm = t.rms_norm("model.norm", hidden, args.rms_norm_eps)?;
    let lm_head = if tied {
        t.discard(|k| k.starts_with("lm_head."));
        None
    } else {
        Some(t.linear("lm_head", args.vocab_size, hidden, &args)?)
    };
    Ok(Transformer {
        args,
        embed,
        embed_scale: None,
        blocks,
        ropes: vec![rope],
        norm,
        lm_head,
    })
}
