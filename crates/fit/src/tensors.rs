//! Every weight tensor a model loads, named as mlx-lm names it, so quantization rules that match
//! on paths (mixed recipes, per-layer overrides in config.json) apply exactly as mlx-lm applies them.

use serde::Serialize;

use crate::quant::QuantSpec;
use crate::shape::{AttentionBias, ModelShape};

/// The groups a weight breakdown reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorKind {
    /// Token embedding (also the output layer when tied).
    Embedding,
    /// Attention projections, their biases and sinks.
    Attention,
    /// Dense MLPs and shared experts.
    Mlp,
    /// Routed experts.
    Experts,
    /// The MoE router.
    Router,
    /// RMSNorm weights.
    Norm,
    /// The untied output layer.
    LmHead,
}

impl TensorKind {
    /// All kinds, in breakdown order.
    pub const ALL: [TensorKind; 7] = [
        TensorKind::Embedding,
        TensorKind::Attention,
        TensorKind::Mlp,
        TensorKind::Experts,
        TensorKind::Router,
        TensorKind::Norm,
        TensorKind::LmHead,
    ];

    /// A short lowercase label.
    pub fn label(self) -> &'static str {
        match self {
            TensorKind::Embedding => "embedding",
            TensorKind::Attention => "attention",
            TensorKind::Mlp => "mlp",
            TensorKind::Experts => "experts",
            TensorKind::Router => "router",
            TensorKind::Norm => "norms",
            TensorKind::LmHead => "lm_head",
        }
    }
}

/// How a tensor may be stored when the model is quantized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantizable {
    /// A matrix of a quantizable module (Linear, Embedding, SwitchLinear).
    Yes,
    /// Always kept in the float dtype (norms, biases, sinks, custom gates).
    No,
    /// The architecture pins its own format whenever the model is quantized (routers at 8 bits).
    Pinned(QuantSpec),
}

/// One weight tensor: `copies` stacked matrices of `rows` × `cols` (cols is the input size,
/// the dimension quantization groups run along).
#[derive(Debug, Clone)]
pub struct Tensor {
    /// mlx-lm's module path, e.g. `model.layers.3.self_attn.v_proj`.
    pub path: String,
    /// The breakdown group.
    pub kind: TensorKind,
    /// Output rows.
    pub rows: u64,
    /// Input columns (the last dimension).
    pub cols: u64,
    /// Stacked copies (experts).
    pub copies: u64,
    /// Whether and how quantization applies.
    pub quantizable: Quantizable,
    /// Copies a token reads (top-k experts); equals `copies` for everything else.
    pub active_copies: u64,
}

impl Tensor {
    /// Number of scalar parameters.
    pub fn params(&self) -> u64 {
        self.rows * self.cols * self.copies
    }

    /// Parameters a single token reads.
    pub fn active_params(&self) -> u64 {
        self.rows * self.cols * self.active_copies
    }
}

struct Builder {
    tensors: Vec<Tensor>,
}

impl Builder {
    fn push(&mut self, path: String, kind: TensorKind, rows: u64, cols: u64, q: Quantizable) {
        self.stack(path, kind, rows, cols, 1, 1, q);
    }

    #[allow(clippy::too_many_arguments)]
    fn stack(
        &mut self,
        path: String,
        kind: TensorKind,
        rows: u64,
        cols: u64,
        copies: u64,
        active: u64,
        q: Quantizable,
    ) {
        self.tensors.push(Tensor {
            path,
            kind,
            rows,
            cols,
            copies,
            quantizable: q,
            active_copies: active,
        });
    }

    /// A Linear layer and, when present, its bias (kept in the float dtype).
    fn linear(&mut self, path: String, kind: TensorKind, out: u64, inp: u64, bias: bool) {
        if bias {
            self.push(format!("{path}.bias"), kind, 1, out, Quantizable::No);
        }
        self.push(path, kind, out, inp, Quantizable::Yes);
    }

    fn norm(&mut self, path: String, width: u64) {
        self.push(path, TensorKind::Norm, 1, width, Quantizable::No);
    }
}

/// Lists the model's weight tensors as mlx-lm loads them (vision towers and MTP layers excluded).
pub fn tensors(shape: &ModelShape) -> Vec<Tensor> {
    let mut b = Builder {
        tensors: Vec::new(),
    };
    let h = shape.hidden;
    b.push(
        "model.embed_tokens".into(),
        TensorKind::Embedding,
        shape.vocab,
        h,
        Quantizable::Yes,
    );
    for i in 0..shape.layers {
        let p = format!("model.layers.{i}");
        attention(&mut b, shape, &p);
        for n in 0..shape.norms_per_layer {
            b.norm(format!("{p}.norm{n}"), h);
        }
        if shape.is_moe_layer(i) {
            experts(&mut b, shape, &p);
        } else {
            mlp(
                &mut b,
                shape,
                &format!("{p}.mlp"),
                shape.intermediate,
                TensorKind::Mlp,
            );
        }
    }
    b.norm("model.norm".into(), h);
    if !shape.tied_embeddings {
        b.push(
            "lm_head".into(),
            TensorKind::LmHead,
            shape.vocab,
            h,
            Quantizable::Yes,
        );
    }
    b.tensors
}

fn attention(b: &mut Builder, s: &ModelShape, p: &str) {
    let h = s.hidden;
    let a = TensorKind::Attention;
    let heads = u64::from(s.heads);
    if let Some(m) = &s.mla {
        let q_head = m.qk_nope_head_dim + m.qk_rope_head_dim;
        match m.q_lora_rank {
            Some(r) => {
                b.linear(format!("{p}.self_attn.q_a_proj"), a, r, h, false);
                b.norm(format!("{p}.self_attn.q_a_layernorm"), r);
                b.linear(
                    format!("{p}.self_attn.q_b_proj"),
                    a,
                    heads * q_head,
                    r,
                    false,
                );
            }
            None => b.linear(format!("{p}.self_attn.q_proj"), a, heads * q_head, h, false),
        }
        b.linear(
            format!("{p}.self_attn.kv_a_proj_with_mqa"),
            a,
            m.kv_lora_rank + m.qk_rope_head_dim,
            h,
            false,
        );
        b.norm(format!("{p}.self_attn.kv_a_layernorm"), m.kv_lora_rank);
        // mlx-lm splits kv_b_proj into per-head embed_q / unembed_out (MultiLinear, quantizable).
        b.stack(
            format!("{p}.self_attn.embed_q"),
            a,
            m.kv_lora_rank,
            m.qk_nope_head_dim,
            heads,
            heads,
            Quantizable::Yes,
        );
        b.stack(
            format!("{p}.self_attn.unembed_out"),
            a,
            m.v_head_dim,
            m.kv_lora_rank,
            heads,
            heads,
            Quantizable::Yes,
        );
        b.linear(
            format!("{p}.self_attn.o_proj"),
            a,
            h,
            heads * m.v_head_dim,
            false,
        );
        return;
    }
    let d = s.head_dim();
    let q = heads * d;
    let kv = u64::from(s.kv_heads) * d;
    let qkv_bias = s.attention_bias != AttentionBias::None;
    if s.fused_projections {
        b.linear(
            format!("{p}.self_attn.qkv_proj"),
            a,
            q + 2 * kv,
            h,
            qkv_bias,
        );
    } else {
        b.linear(format!("{p}.self_attn.q_proj"), a, q, h, qkv_bias);
        b.linear(format!("{p}.self_attn.k_proj"), a, kv, h, qkv_bias);
        b.linear(format!("{p}.self_attn.v_proj"), a, kv, h, qkv_bias);
    }
    b.linear(
        format!("{p}.self_attn.o_proj"),
        a,
        h,
        q,
        s.attention_bias == AttentionBias::All,
    );
    if s.qk_norm {
        b.norm(format!("{p}.self_attn.q_norm"), d);
        b.norm(format!("{p}.self_attn.k_norm"), d);
    }
    if s.attention_sinks {
        b.push(format!("{p}.self_attn.sinks"), a, 1, heads, Quantizable::No);
    }
}

fn mlp(b: &mut Builder, s: &ModelShape, p: &str, width: u64, kind: TensorKind) {
    let h = s.hidden;
    if s.fused_projections {
        b.linear(format!("{p}.gate_up_proj"), kind, 2 * width, h, false);
    } else {
        b.linear(format!("{p}.gate_proj"), kind, width, h, false);
        b.linear(format!("{p}.up_proj"), kind, width, h, false);
    }
    b.linear(format!("{p}.down_proj"), kind, h, width, false);
}

fn experts(b: &mut Builder, s: &ModelShape, p: &str) {
    let Some(m) = &s.moe else { return };
    let h = s.hidden;
    let n = u64::from(m.experts);
    let k = u64::from(m.experts_per_token);
    let w = m.moe_intermediate;
    let router_pin = Quantizable::Pinned(QuantSpec::affine(8, 64));
    let (router_path, switch) = match s.model_type.as_str() {
        "gpt_oss" => (format!("{p}.mlp.router"), format!("{p}.mlp.experts")),
        _ => (format!("{p}.mlp.gate"), format!("{p}.mlp.switch_mlp")),
    };
    let router_q = match s.model_type.as_str() {
        // DeepSeek's MoEGate is a bare parameter, which nn.quantize leaves alone.
        "deepseek_v2" | "deepseek_v3" => Quantizable::No,
        _ => router_pin,
    };
    if m.bias {
        b.push(
            format!("{router_path}.bias"),
            TensorKind::Router,
            1,
            n,
            Quantizable::No,
        );
    }
    b.push(router_path, TensorKind::Router, n, h, router_q);
    for (name, rows, cols) in [("gate_proj", w, h), ("up_proj", w, h), ("down_proj", h, w)] {
        let path = format!("{switch}.{name}");
        if m.bias {
            b.stack(
                format!("{path}.bias"),
                TensorKind::Experts,
                1,
                rows,
                n,
                k,
                Quantizable::No,
            );
        }
        b.stack(
            path,
            TensorKind::Experts,
            rows,
            cols,
            n,
            k,
            Quantizable::Yes,
        );
    }
    if m.shared_experts > 0 {
        let width = w * u64::from(m.shared_experts);
        mlp(
            b,
            s,
            &format!("{p}.mlp.shared_experts"),
            width,
            TensorKind::Mlp,
        );
    }
}

/// Parameter counts of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParamCounts {
    /// Every parameter loaded (tied embeddings once).
    pub total: u64,
    /// Parameters one token reads, embedding included.
    pub active: u64,
    /// The input embedding (a lookup, not a matmul: some publishers leave it out of "active").
    pub embedding: u64,
}

/// Counts the parameters of a shape.
pub fn count_params(shape: &ModelShape) -> ParamCounts {
    let ts = tensors(shape);
    ParamCounts {
        total: ts.iter().map(Tensor::params).sum(),
        active: ts.iter().map(Tensor::active_params).sum(),
        embedding: ts
            .iter()
            .filter(|t| t.kind == TensorKind::Embedding)
            .map(Tensor::params)
            .sum(),
    }
}
