//! What a model file states about its architecture (a `Spec`), and the one loader that builds
//! the shared decoder (`transformer`) from a spec and the weights.
//!
//! Every architecture is this decoder: pre-norm attention and MLP blocks with residuals. What
//! differs between them is data, so a model file reads like mlx-lm's file of the same name:
//! which norms, which activation, which rotary embeddings, which scales, and whether a layer's
//! MLP is dense or routed experts. Tensor names are mlx-lm's (after its `sanitize`).

use std::ops::Range;

use mlx_rs::{ops, Array};

use super::transformer::{Activation, Attention, Block, Ffn, Mlp, Transformer};
use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
    fused::Projections,
    layers::RmsNorm,
    moe::{Moe, Routing, SwitchGlu},
    rope::Rope,
    weights::Tensors,
};

/// How RMS norm gains are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// The gain itself (Llama and most others).
    Rms,
    /// The gain minus one (Gemma): loaded as `1 + w`.
    RmsPlusOne,
}

/// A block's feed-forward layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MlpKind {
    /// One gated MLP (`mlp.gate_proj`, `mlp.up_proj`, `mlp.down_proj`).
    Dense,
    /// Routed experts (`mlp.<router>` and `mlp.<experts>.{gate,up,down}_proj`, stacked
    /// `[experts, out, in]`).
    Experts(ExpertsSpec),
}

/// A mixture-of-experts layer's shape and routing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExpertsSpec {
    /// Experts in the layer.
    pub experts: i32,
    /// Experts each token is routed to.
    pub top_k: i32,
    /// Width of each expert's MLP.
    pub intermediate: i32,
    /// How router logits become expert choices and weights.
    pub routing: Routing,
    /// The router's module name under `mlp.` (Qwen3-MoE: `gate`).
    pub router: &'static str,
    /// The stacked experts' module name under `mlp.` (Qwen3-MoE: `switch_mlp`).
    pub switch: &'static str,
}

/// One decoder block's attention and MLP kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerSpec {
    /// Index into `Spec::ropes`.
    pub rope: usize,
    /// Sliding-window size, for local layers.
    pub window: Option<i32>,
    /// Dense MLP or experts.
    pub mlp: MlpKind,
}

/// Everything that distinguishes one architecture from the shared decoder.
pub struct Spec {
    /// How norm gains are stored.
    pub norm: Norm,
    /// Per-head RMS norms on queries and keys (`self_attn.q_norm`, `k_norm`).
    pub qk_norm: bool,
    /// Gemma's four norms per block: `post_attention_layernorm` after attention, and
    /// `pre_feedforward_layernorm` / `post_feedforward_layernorm` around the MLP. Otherwise
    /// `post_attention_layernorm` is the norm before the MLP.
    pub post_norms: bool,
    /// The MLP's (and experts') gating activation.
    pub activation: Activation,
    /// Phi-3 stores `qkv_proj` and `gate_up_proj` fused; they are split at load time.
    pub fused_projections: bool,
    /// Whether embeddings are tied when config.json does not say; `None`: tied exactly when
    /// the weights have no `lm_head` (Gemma 3).
    pub tied_default: Option<bool>,
    /// The rotary embeddings layers pick from (`LayerSpec::rope`).
    pub ropes: Vec<Rope>,
    /// Softmax scale of attention.
    pub attention_scale: f32,
    /// Multiplier of the embeddings (Gemma).
    pub embed_scale: Option<f32>,
    /// A learned sink logit per head in every attention softmax (`self_attn.sinks`, gpt-oss).
    pub attention_sinks: bool,
    /// One entry per decoder block.
    pub layers: Vec<LayerSpec>,
}

impl Spec {
    /// The Llama layout: RMS norms, SwiGLU, one rotary embedding over `rotary_dims` of each
    /// head from config.json's settings, `head_dim ** -0.5`, dense MLPs, and sliding windows
    /// where config.json's `layer_types` says.
    pub fn llama(args: &ModelArgs, rotary_dims: i32) -> Result<Spec> {
        let rope = Rope::from_config(
            rotary_dims,
            args.rope_theta,
            args.rope_traditional,
            args.rope_scaling.as_ref(),
            args.max_position_embeddings,
            args.original_max_position_embeddings,
        )?;
        let layers = (0..args.num_hidden_layers)
            .map(|i| LayerSpec {
                rope: 0,
                window: match args.layer_types.as_ref().and_then(|l| l.get(i as usize)) {
                    Some(kind) if kind == "sliding_attention" => args.sliding_window,
                    _ => None,
                },
                mlp: MlpKind::Dense,
            })
            .collect();
        Ok(Spec {
            norm: Norm::Rms,
            qk_norm: false,
            post_norms: false,
            activation: Activation::SwiGlu,
            fused_projections: false,
            tied_default: Some(args.tie_word_embeddings.unwrap_or(false)),
            ropes: vec![rope],
            attention_scale: (args.head_dim() as f32).powf(-0.5),
            embed_scale: None,
            attention_sinks: false,
            layers,
        })
    }
}

/// Builds the decoder `spec` describes from `t` (already sanitized), with the blocks `range`
/// only (all of them but on a pipeline rank).
pub fn build(
    mut args: ModelArgs,
    mut t: Tensors,
    spec: Spec,
    range: Range<usize>,
) -> Result<Transformer> {
    let Spec {
        norm,
        qk_norm,
        post_norms,
        activation,
        fused_projections,
        tied_default,
        mut ropes,
        attention_scale,
        embed_scale,
        attention_sinks,
        layers,
    } = spec;
    let (hidden, heads, kv, hd) = (
        args.hidden_size,
        args.num_attention_heads,
        args.kv_heads(),
        args.head_dim(),
    );
    let eps = args.rms_norm_eps;
    // Checkpoint leftovers: rotary caches some exporters keep.
    t.discard(|k| k.contains("rotary_emb.inv_freq"));
    // llama.cpp stores Llama 3's frequency factors as a tensor.
    if let Some(f) = t.take_optional("rope_freqs")? {
        let first = ropes.remove(0);
        ropes.insert(0, first.with_factors(&f, args.rope_theta)?);
    }
    if fused_projections {
        split_fused(&mut args, &mut t, range.clone())?;
    }
    let norm_of = |t: &mut Tensors, name: &str, dim: i32| -> Result<RmsNorm> {
        let n = t.rms_norm(name, dim, eps)?;
        Ok(match norm {
            Norm::Rms => n,
            Norm::RmsPlusOne => RmsNorm {
                weight: ops::add(&n.weight, Array::from_f32(1.0))?,
                eps,
            },
        })
    };
    if range.end > layers.len() || range.is_empty() {
        return Err(EngineError::InvalidRequest(format!(
            "{}: layers {}..{} asked of a model with {} layers",
            t.source().display(),
            range.start,
            range.end,
            layers.len()
        )));
    }
    let mut blocks = Vec::with_capacity(range.len());
    for (i, layer) in layers
        .iter()
        .enumerate()
        .skip(range.start)
        .take(range.len())
    {
        let p = format!("model.layers.{i}");
        let mut lin = |name: &str, out, inp| t.linear(&format!("{p}.{name}"), out, inp, &args);
        let q = lin("self_attn.q_proj", heads * hd, hidden)?;
        let k = lin("self_attn.k_proj", kv * hd, hidden)?;
        let v = lin("self_attn.v_proj", kv * hd, hidden)?;
        let o = lin("self_attn.o_proj", hidden, heads * hd)?;
        let ffn = match layer.mlp {
            MlpKind::Dense => Ffn::Dense(Mlp {
                gate_up: Projections::new(vec![
                    lin("mlp.gate_proj", args.intermediate_size, hidden)?,
                    lin("mlp.up_proj", args.intermediate_size, hidden)?,
                ])?,
                down: lin("mlp.down_proj", hidden, args.intermediate_size)?,
                activation,
            }),
            MlpKind::Experts(e) => {
                let router = lin(&format!("mlp.{}", e.router), e.experts, hidden)?;
                let s = format!("{p}.mlp.{}", e.switch);
                let mut experts = |name: &str, out, inp| {
                    t.switch_linear(&format!("{s}.{name}"), e.experts, out, inp, &args)
                };
                Ffn::Experts(Moe {
                    router,
                    experts: SwitchGlu {
                        gate: experts("gate_proj", e.intermediate, hidden)?,
                        up: experts("up_proj", e.intermediate, hidden)?,
                        down: experts("down_proj", hidden, e.intermediate)?,
                        activation,
                    },
                    top_k: e.top_k,
                    routing: e.routing,
                })
            }
        };
        let (q_norm, k_norm) = if qk_norm {
            (
                Some(norm_of(&mut t, &format!("{p}.self_attn.q_norm"), hd)?),
                Some(norm_of(&mut t, &format!("{p}.self_attn.k_norm"), hd)?),
            )
        } else {
            (None, None)
        };
        let sinks = if attention_sinks {
            let name = format!("{p}.self_attn.sinks");
            let s = t.take(&name)?;
            if s.shape() != [heads] {
                return Err(EngineError::TensorShape {
                    path: t.source().to_owned(),
                    name,
                    expected: vec![heads],
                    actual: s.shape().to_vec(),
                });
            }
            Some(s)
        } else {
            None
        };
        let input_norm = norm_of(&mut t, &format!("{p}.input_layernorm"), hidden)?;
        let post = format!("{p}.post_attention_layernorm");
        let (post_attn_norm, pre_mlp_norm, post_mlp_norm) = if post_norms {
            (
                Some(norm_of(&mut t, &post, hidden)?),
                norm_of(&mut t, &format!("{p}.pre_feedforward_layernorm"), hidden)?,
                Some(norm_of(
                    &mut t,
                    &format!("{p}.post_feedforward_layernorm"),
                    hidden,
                )?),
            )
        } else {
            (None, norm_of(&mut t, &post, hidden)?, None)
        };
        blocks.push(Block {
            attn: Attention {
                qkv: Projections::new(vec![q, k, v])?,
                o,
                q_norm,
                k_norm,
                rope: layer.rope,
                heads,
                kv_heads: kv,
                scale: attention_scale,
                window: layer.window,
                sinks,
            },
            mlp: ffn,
            input_norm,
            post_attn_norm,
            pre_mlp_norm,
            post_mlp_norm,
        });
    }
    let (first, last) = (range.start == 0, range.end == layers.len());
    // Only the last rank applies the final norm; the others may not even have its shard.
    let final_norm = if last {
        Some(norm_of(&mut t, "model.norm", hidden)?)
    } else {
        t.discard(|k| k.starts_with("model.norm."));
        None
    };
    let has_head = t.contains("lm_head.weight");
    let tied = match tied_default {
        Some(default) => args.tied_embeddings(default) || !has_head,
        None => !has_head,
    };
    // A pipeline rank holds the embeddings if it embeds (the first) or outputs through them
    // (the last, tied), and the output layer if it is the last; the rest is never evaluated.
    let embed = if first || (last && tied) {
        Some(t.embedding("model.embed_tokens", args.vocab_size, hidden, &args)?)
    } else {
        t.discard(|k| k.starts_with("model.embed_tokens."));
        None
    };
    let lm_head = if tied || !last {
        t.discard(|k| k.starts_with("lm_head."));
        None
    } else {
        Some(t.linear("lm_head", args.vocab_size, hidden, &args)?)
    };
    Ok(Transformer {
        args,
        embed,
        embed_scale,
        blocks,
        layers: range,
        ropes,
        norm: final_norm,
        lm_head,
        tied,
        dtype: t.dtype(),
    })
}

/// Splits Phi-3's fused `qkv_proj` and `gate_up_proj` into the separate projections the
/// decoder loads; split layers inherit the fused layer's quantization settings.
fn split_fused(args: &mut ModelArgs, t: &mut Tensors, layers: Range<usize>) -> Result<()> {
    let (heads, kv, hd) = (args.num_attention_heads, args.kv_heads(), args.head_dim());
    for i in layers {
        let p = format!("model.layers.{i}");
        // Mixed-precision configs name the fused layers; the split ones use their settings.
        let [q, k, v] = ["q_proj", "k_proj", "v_proj"].map(|n| format!("{p}.self_attn.{n}"));
        args.inherit_quantization(&format!("{p}.self_attn.qkv_proj"), &[&q, &k, &v]);
        let [gate, up] = ["gate_proj", "up_proj"].map(|n| format!("{p}.mlp.{n}"));
        args.inherit_quantization(&format!("{p}.mlp.gate_up_proj"), &[&gate, &up]);
        t.split_rows(
            &format!("{p}.self_attn.qkv_proj"),
            &[(&q, heads * hd), (&k, kv * hd), (&v, kv * hd)],
        )?;
        t.split_rows(
            &format!("{p}.mlp.gate_up_proj"),
            &[
                (&gate, args.intermediate_size),
                (&up, args.intermediate_size),
            ],
        )?;
    }
    Ok(())
}
