//! The decoder-only transformer all supported architectures share. Each architecture module
//! describes its differences as a `Spec` and loads its weights into these blocks.

use mlx_rs::{
    fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask},
    ops, Array,
};

use crate::{
    cache::KvCache,
    config::ModelArgs,
    error::Result,
    layers::{swiglu, Embedding, Linear, RmsNorm},
    mask::{self, Mask},
    rope::Rope,
};

/// The MLP's gating activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up` (Llama, Qwen, Mistral, Phi-3).
    SwiGlu,
    /// `gelu_tanh(gate) * up` (Gemma).
    GeluTanh,
}

/// Attention: projections, optional per-head norms, rotary embedding, cache.
pub struct Attention {
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection.
    pub o: Linear,
    /// Per-head query norm (Qwen 3, Gemma 3).
    pub q_norm: Option<RmsNorm>,
    /// Per-head key norm.
    pub k_norm: Option<RmsNorm>,
    /// Rotary embedding for this layer.
    pub rope: Rope,
    /// Query heads.
    pub heads: i32,
    /// Key/value heads.
    pub kv_heads: i32,
    /// Softmax scale.
    pub scale: f32,
    /// Sliding window, for local layers.
    pub window: Option<i32>,
}

impl Attention {
    fn forward(&self, x: &Array, cache: &mut KvCache, padding: Option<&Array>) -> Result<Array> {
        let (b, l) = (x.shape()[0], x.shape()[1]);
        let split = |y: Array, heads: i32| -> Result<Array> {
            Ok(y.reshape(&[b, l, heads, -1])?
                .transpose_axes(&[0, 2, 1, 3])?)
        };
        let mut q = split(self.q.forward(x)?, self.heads)?;
        let mut k = split(self.k.forward(x)?, self.kv_heads)?;
        let v = split(self.v.forward(x)?, self.kv_heads)?;
        if let Some(n) = &self.q_norm {
            q = n.forward(&q)?;
        }
        if let Some(n) = &self.k_norm {
            k = n.forward(&k)?;
        }
        let q = self.rope.apply(&q, cache.offset)?;
        let k = self.rope.apply(&k, cache.offset)?;
        let view = cache.update_and_fetch(&k, &v)?;
        let m = mask::build(l, view.start, cache.offset, self.window, padding)?;
        let out = match &m {
            Mask::None => {
                scaled_dot_product_attention(&q, &view.keys, &view.values, self.scale, None, None)?
            }
            Mask::Causal => scaled_dot_product_attention(
                &q,
                &view.keys,
                &view.values,
                self.scale,
                ScaledDotProductAttentionMask::Causal,
                None,
            )?,
            Mask::Explicit(a) => {
                scaled_dot_product_attention(&q, &view.keys, &view.values, self.scale, a, None)?
            }
        };
        let out = out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, l, -1])?;
        self.o.forward(&out)
    }
}

/// The gated MLP.
pub struct Mlp {
    /// Gate projection.
    pub gate: Linear,
    /// Up projection.
    pub up: Linear,
    /// Down projection.
    pub down: Linear,
    /// Gating activation.
    pub activation: Activation,
}

impl Mlp {
    fn forward(&self, x: &Array) -> Result<Array> {
        let g = self.gate.forward(x)?;
        let u = self.up.forward(x)?;
        let h = match self.activation {
            Activation::SwiGlu => swiglu(&g, &u)?,
            Activation::GeluTanh => ops::multiply(&mlx_rs::nn::gelu_approximate(&g)?, &u)?,
        };
        self.down.forward(&h)
    }
}

/// One decoder block: pre-norm attention and MLP with residuals; Gemma adds post-norms.
pub struct Block {
    /// Self-attention.
    pub attn: Attention,
    /// MLP.
    pub mlp: Mlp,
    /// Norm before attention.
    pub input_norm: RmsNorm,
    /// Norm after attention (Gemma) — applied to the attention output.
    pub post_attn_norm: Option<RmsNorm>,
    /// Norm before the MLP.
    pub pre_mlp_norm: RmsNorm,
    /// Norm after the MLP (Gemma).
    pub post_mlp_norm: Option<RmsNorm>,
}

impl Block {
    /// The block's seven projections: q, k, v, o, gate, up, down.
    pub fn linears(&self) -> [&Linear; 7] {
        [
            &self.attn.q,
            &self.attn.k,
            &self.attn.v,
            &self.attn.o,
            &self.mlp.gate,
            &self.mlp.up,
            &self.mlp.down,
        ]
    }

    fn forward(&self, x: &Array, cache: &mut KvCache, padding: Option<&Array>) -> Result<Array> {
        let mut r = self
            .attn
            .forward(&self.input_norm.forward(x)?, cache, padding)?;
        if let Some(n) = &self.post_attn_norm {
            r = n.forward(&r)?;
        }
        let h = ops::add(x, &r)?;
        let mut r = self.mlp.forward(&self.pre_mlp_norm.forward(&h)?)?;
        if let Some(n) = &self.post_mlp_norm {
            r = n.forward(&r)?;
        }
        Ok(ops::add(&h, &r)?)
    }
}

/// A complete decoder-only language model.
pub struct Transformer {
    /// Hyperparameters.
    pub args: ModelArgs,
    /// Token embeddings.
    pub embed: Embedding,
    /// Multiplier applied to embeddings (Gemma: sqrt(hidden) rounded to bf16).
    pub embed_scale: Option<f32>,
    /// Decoder blocks.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub norm: RmsNorm,
    /// Output projection; `None` when tied to the embeddings.
    pub lm_head: Option<Linear>,
}

impl Transformer {
    /// Runs `ids` (`[B, L]`) through the model, extending `caches`, and returns logits
    /// `[B, L, vocab]`. `left_padding` (`[B]` i32) masks padded positions of batched prompts.
    pub fn forward(
        &self,
        ids: &Array,
        caches: &mut [KvCache],
        left_padding: Option<&Array>,
    ) -> Result<Array> {
        let h = self.hidden(ids, caches, left_padding)?;
        self.logits(&h)
    }

    /// The final hidden states `[B, L, hidden]`.
    pub fn hidden(
        &self,
        ids: &Array,
        caches: &mut [KvCache],
        left_padding: Option<&Array>,
    ) -> Result<Array> {
        let mut h = self.embed.forward(ids)?;
        if let Some(s) = self.embed_scale {
            h = ops::multiply(&h, Array::from_f32(s))?;
        }
        for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
            h = block.forward(&h, cache, left_padding)?;
        }
        self.norm.forward(&h)
    }

    /// Projects hidden states onto the vocabulary.
    pub fn logits(&self, h: &Array) -> Result<Array> {
        match &self.lm_head {
            Some(head) => head.forward(h),
            None => self.embed.as_linear(h),
        }
    }

    /// Fresh caches, one per layer, sliding where the layer is local.
    pub fn make_caches(&self) -> Vec<KvCache> {
        self.blocks
            .iter()
            .map(|b| match b.attn.window {
                Some(w) => KvCache::sliding(w),
                None => KvCache::new(),
            })
            .collect()
    }

    /// Every weight array, for evaluation and memory accounting.
    pub fn arrays(&self) -> Vec<&Array> {
        let mut v = self.embed.table.arrays();
        v.push(&self.norm.weight);
        if let Some(h) = &self.lm_head {
            v.extend(h.arrays());
        }
        for b in &self.blocks {
            for l in b.linears() {
                v.extend(l.arrays());
            }
            for n in [
                Some(&b.input_norm),
                b.post_attn_norm.as_ref(),
                Some(&b.pre_mlp_norm),
                b.post_mlp_norm.as_ref(),
                b.attn.q_norm.as_ref(),
                b.attn.k_norm.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                v.push(&n.weight);
            }
        }
        v
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        self.arrays().iter().map(|a| a.nbytes()).sum()
    }

    /// Converts quantized layers to dense compute-dtype weights (see `LoadOptions`).
    pub fn dequantize(self) -> Result<Self> {
        let deq_block = |b: Block| -> Result<Block> {
            Ok(Block {
                attn: Attention {
                    q: b.attn.q.dequantized()?,
                    k: b.attn.k.dequantized()?,
                    v: b.attn.v.dequantized()?,
                    o: b.attn.o.dequantized()?,
                    ..b.attn
                },
                mlp: Mlp {
                    gate: b.mlp.gate.dequantized()?,
                    up: b.mlp.up.dequantized()?,
                    down: b.mlp.down.dequantized()?,
                    activation: b.mlp.activation,
                },
                ..b
            })
        };
        Ok(Transformer {
            embed: Embedding {
                table: self.embed.table.dequantized()?,
            },
            lm_head: self.lm_head.map(Linear::dequantized).transpose()?,
            blocks: self
                .blocks
                .into_iter()
                .map(deq_block)
                .collect::<Result<_>>()?,
            ..self
        })
    }
}
