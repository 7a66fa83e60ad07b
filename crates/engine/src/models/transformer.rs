//! The decoder-only transformer all supported architectures share. Each architecture module
//! describes its differences as a `Spec` (see `spec`), from which its weights are loaded into
//! these blocks.

use mlx_rs::{
    fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask},
    ops, Array,
};

use crate::{
    cache::KvCache,
    config::ModelArgs,
    cpu_attention,
    error::{EngineError, Result},
    fused::Projections,
    layers::{swiglu, swiglu_clamped, Embedding, Linear, RmsNorm},
    mask::{self, Mask},
    moe::Moe,
    pow_exp,
    rope::{Rope, Rotation},
    Backend,
};

/// The MLP's (and experts') gating activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up` (Llama, Qwen, Mistral, Phi-3).
    SwiGlu,
    /// `gelu_tanh(gate) * up` (Gemma).
    GeluTanh,
    /// gpt-oss's clamped SwiGLU (`layers::swiglu_clamped`).
    SwiGluClamped,
}

impl Activation {
    /// Combines the gate and up projections.
    pub fn apply(self, gate: &Array, up: &Array) -> Result<Array> {
        Ok(match self {
            Activation::SwiGlu => swiglu(gate, up)?,
            Activation::GeluTanh => ops::multiply(&pow_exp::gelu_tanh(gate)?, up)?,
            Activation::SwiGluClamped => swiglu_clamped(gate, up)?,
        })
    }
}

/// Attention: projections, optional per-head norms, rotary embedding, cache.
pub struct Attention {
    /// Query, key and value projections (one product when their formats allow).
    pub qkv: Projections,
    /// Output projection.
    pub o: Linear,
    /// Per-head query norm (Qwen 3, Gemma 3).
    pub q_norm: Option<RmsNorm>,
    /// Per-head key norm.
    pub k_norm: Option<RmsNorm>,
    /// Which of the model's rotary embeddings (`Transformer::ropes`) this layer uses.
    pub rope: usize,
    /// Query heads.
    pub heads: i32,
    /// Key/value heads.
    pub kv_heads: i32,
    /// Softmax scale.
    pub scale: f32,
    /// Sliding window, for local layers.
    pub window: Option<i32>,
    /// A learned logit per query head that joins every softmax and contributes no value
    /// (gpt-oss's attention sinks), `[heads]`.
    pub sinks: Option<Array>,
}

impl Attention {
    /// Queries, keys and values `[B, heads, L, D]`, normed and rotated.
    fn project(&self, x: &Array, rotation: &Rotation) -> Result<(Array, Array, Array)> {
        let (b, l) = (x.shape()[0], x.shape()[1]);
        let (h, kv) = (self.heads, self.kv_heads);
        let heads_first = |a: &Array| a.transpose_axes(&[0, 2, 1, 3]);
        let plain = self.q_norm.is_none() && self.k_norm.is_none();
        let stacked = if plain {
            self.qkv.forward_stacked(x)?
        } else {
            None
        };
        if let Some(y) = stacked {
            // Queries and keys are adjacent heads of one product: rotate them together.
            let y = y.reshape(&[b, l, h + 2 * kv, -1])?;
            let qk_v = y.split_at_indices(&[h + kv], 2)?;
            let qk = rotation.apply(&qk_v[0])?.split_at_indices(&[h], 1)?;
            return Ok((qk[0].clone(), qk[1].clone(), heads_first(&qk_v[1])?));
        }
        let heads = |y: &Array, n: i32| y.reshape(&[b, l, n, -1]);
        let parts = self.qkv.forward(x)?;
        let (mut q, mut k, v) = (
            heads(&parts[0], h)?,
            heads(&parts[1], kv)?,
            heads(&parts[2], kv)?,
        );
        if let Some(n) = &self.q_norm {
            q = n.forward(&q)?;
        }
        if let Some(n) = &self.k_norm {
            k = n.forward(&k)?;
        }
        Ok((rotation.apply(&q)?, rotation.apply(&k)?, heads_first(&v)?))
    }

    fn forward(
        &self,
        x: &Array,
        cache: &mut KvCache,
        (padding, masks): (Option<&Array>, &mut mask::Masks),
        rotation: &Rotation,
    ) -> Result<Array> {
        let (b, l) = (x.shape()[0], x.shape()[1]);
        let (q, k, v) = self.project(x, rotation)?;
        let view = cache.update_and_fetch(&k, &v)?;
        let (keys, values, sinks) = (&view.keys, &view.values, self.sinks.as_ref());
        let cpu = cpu_attention::use_for(&q, keys, sinks.is_some());
        let m = masks.get(l, view.start, cache.offset, self.window, padding, cpu)?;
        let out = match &m {
            Mask::Explicit(a) if cpu => {
                cpu_attention::attend(&q, keys, values, self.scale, Some(a))?
            }
            _ if cpu => cpu_attention::attend(&q, keys, values, self.scale, None)?,
            Mask::None => scaled_dot_product_attention(&q, keys, values, self.scale, None, sinks)?,
            Mask::Causal => scaled_dot_product_attention(
                &q,
                keys,
                values,
                self.scale,
                ScaledDotProductAttentionMask::Causal,
                sinks,
            )?,
            Mask::Explicit(a) => {
                scaled_dot_product_attention(&q, keys, values, self.scale, a, sinks)?
            }
        };
        let out = out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[b, l, -1])?;
        self.o.forward(&out)
    }
}

/// The gated MLP.
pub struct Mlp {
    /// Gate and up projections (one product when their formats allow).
    pub gate_up: Projections,
    /// Down projection.
    pub down: Linear,
    /// Gating activation.
    pub activation: Activation,
}

impl Mlp {
    fn forward(&self, x: &Array) -> Result<Array> {
        let gu = self.gate_up.forward(x)?;
        self.down.forward(&self.activation.apply(&gu[0], &gu[1])?)
    }
}

/// A block's feed-forward layer: one MLP, or routed experts.
pub enum Ffn {
    /// One gated MLP.
    Dense(Mlp),
    /// A mixture of experts.
    Experts(Moe),
}

impl Ffn {
    fn forward(&self, x: &Array) -> Result<Array> {
        match self {
            Ffn::Dense(m) => m.forward(x),
            Ffn::Experts(m) => m.forward(x),
        }
    }

    fn linears(&self) -> Vec<&Linear> {
        match self {
            Ffn::Dense(m) => {
                let mut v = m.gate_up.linears();
                v.push(&m.down);
                v
            }
            Ffn::Experts(m) => m.linears(),
        }
    }

    fn dequantized(self) -> Result<Self> {
        Ok(match self {
            Ffn::Dense(m) => Ffn::Dense(Mlp {
                gate_up: m.gate_up.dequantized()?,
                down: m.down.dequantized()?,
                activation: m.activation,
            }),
            Ffn::Experts(m) => Ffn::Experts(m.dequantized()?),
        })
    }
}

/// One decoder block: pre-norm attention and MLP with residuals; Gemma adds post-norms.
pub struct Block {
    /// Self-attention.
    pub attn: Attention,
    /// MLP or experts.
    pub mlp: Ffn,
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
    /// The block's projections in order (q, k, v, o, then the MLP's gate, up, down, or the
    /// router and the stacked experts), with fused ones once.
    pub fn linears(&self) -> Vec<&Linear> {
        let mut v = self.attn.qkv.linears();
        v.push(&self.attn.o);
        v.extend(self.mlp.linears());
        v
    }

    fn forward(
        &self,
        x: &Array,
        cache: &mut KvCache,
        padding: (Option<&Array>, &mut mask::Masks),
        rotation: &Rotation,
    ) -> Result<Array> {
        let mut r = self
            .attn
            .forward(&self.input_norm.forward(x)?, cache, padding, rotation)?;
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
    /// Token embeddings; `None` on a pipeline rank that neither embeds (the first) nor
    /// outputs through them (the last, when tied).
    pub embed: Option<Embedding>,
    /// Multiplier applied to embeddings (Gemma: sqrt(hidden) rounded to bf16).
    pub embed_scale: Option<f32>,
    /// Decoder blocks: the model's `layers`.
    pub blocks: Vec<Block>,
    /// Which of the model's decoder blocks `blocks` holds: all of them, except on a pipeline
    /// rank loaded with a layer range.
    pub layers: std::ops::Range<usize>,
    /// The rotary embeddings the blocks use (Gemma 3 has a local and a global one).
    pub ropes: Vec<Rope>,
    /// Final norm; `None` on a pipeline rank before the last.
    pub norm: Option<RmsNorm>,
    /// Output projection; `None` when tied to the embeddings, or on a pipeline rank before
    /// the last.
    pub lm_head: Option<Linear>,
    /// Whether the output projection is the embeddings'.
    pub tied: bool,
    /// The compute dtype weights were converted to.
    pub dtype: mlx_rs::Dtype,
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
        self.hidden_as_on(ids, caches, left_padding, Backend::detect())
    }

    /// `hidden`, building the graph as it would be built for `backend` (the rotary
    /// embedding's method differs), wherever MLX runs it: tests compare the two on the CPU.
    pub fn hidden_as_on(
        &self,
        ids: &Array,
        caches: &mut [KvCache],
        left_padding: Option<&Array>,
        backend: Backend,
    ) -> Result<Array> {
        let h = self.embed_tokens(ids)?;
        let h = self.run_blocks(h, 0..self.blocks.len(), caches, left_padding, backend)?;
        self.final_norm()?.forward(&h)
    }

    /// The final norm, held by the last pipeline rank (and a whole model) only.
    pub fn final_norm(&self) -> Result<&RmsNorm> {
        self.norm.as_ref().ok_or_else(|| {
            EngineError::InvalidRequest(format!(
                "this part of the model (layers {}..{}) holds no final norm",
                self.layers.start, self.layers.end
            ))
        })
    }

    /// The embeddings of `ids` (`[B, L]`), as the first block takes them.
    pub fn embed_tokens(&self, ids: &Array) -> Result<Array> {
        let h = self.embeddings()?.forward(ids)?;
        Ok(match self.embed_scale {
            Some(s) => ops::multiply(&h, Array::from_f32(s))?,
            None => h,
        })
    }

    /// Runs hidden states `h` (`[B, L, hidden]`) through the blocks in `range` only, extending
    /// their caches (`caches[i]` belongs to block `range.start + i`); no final norm. A pipeline
    /// stage runs its share of the layers this way (minibar-cluster).
    pub fn run_blocks(
        &self,
        mut h: Array,
        range: std::ops::Range<usize>,
        caches: &mut [KvCache],
        left_padding: Option<&Array>,
        backend: Backend,
    ) -> Result<Array> {
        let len = h.shape()[1];
        // One rotation per embedding and offset, shared by the layers that use it.
        let mut rotations: Vec<(usize, i32, Rotation)> = Vec::new();
        let mut masks = mask::Masks::default();
        for (block, cache) in self.blocks[range].iter().zip(caches.iter_mut()) {
            let key = (block.attn.rope, cache.offset);
            let at = match rotations.iter().position(|(r, o, _)| (*r, *o) == key) {
                Some(at) => at,
                None => {
                    let r = self.ropes[key.0].rotation(cache.offset, len, backend)?;
                    rotations.push((key.0, key.1, r));
                    rotations.len() - 1
                }
            };
            h = block.forward(&h, cache, (left_padding, &mut masks), &rotations[at].2)?;
        }
        Ok(h)
    }

    /// Projects hidden states onto the vocabulary.
    pub fn logits(&self, h: &Array) -> Result<Array> {
        match (&self.lm_head, self.tied) {
            (Some(head), _) => head.forward(h),
            (None, true) => self.embeddings()?.as_linear(h),
            (None, false) => Err(EngineError::InvalidRequest(format!(
                "this part of the model (layers {}..{}) holds no output layer",
                self.layers.start, self.layers.end
            ))),
        }
    }

    fn embeddings(&self) -> Result<&Embedding> {
        self.embed.as_ref().ok_or_else(|| {
            EngineError::InvalidRequest(format!(
                "this part of the model (layers {}..{}) holds no embeddings",
                self.layers.start, self.layers.end
            ))
        })
    }

    /// The dtype of the hidden states between blocks (what the embeddings give), known
    /// without the embeddings: a pipeline rank that holds none still receives them.
    pub fn hidden_dtype(&self) -> Result<mlx_rs::Dtype> {
        let h = Array::from_f32(0.0).as_dtype(self.dtype)?;
        Ok(match self.embed_scale {
            Some(s) => ops::multiply(&h, Array::from_f32(s))?.dtype(),
            None => h.dtype(),
        })
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
        self.array_groups().into_iter().flatten().collect()
    }

    /// The weight arrays grouped by layer (embeddings, final norm and output layer first),
    /// so loading can evaluate one layer at a time.
    pub fn array_groups(&self) -> Vec<Vec<&Array>> {
        let mut top = match &self.embed {
            Some(e) => e.table.arrays(),
            None => Vec::new(),
        };
        if let Some(n) = &self.norm {
            top.push(&n.weight);
        }
        if let Some(h) = &self.lm_head {
            top.extend(h.arrays());
        }
        let mut groups = vec![top];
        for b in &self.blocks {
            let mut v = Vec::new();
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
            v.extend(&b.attn.sinks);
            groups.push(v);
        }
        groups
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> usize {
        self.arrays().iter().map(|a| a.nbytes()).sum()
    }

    /// Elements of every weight matrix once dense (embeddings, output layer, projections,
    /// routers and stacked experts; norms and biases left out).
    pub fn dense_elements(&self) -> u64 {
        let mut layers: Vec<&Linear> = self.embed.iter().map(|e| &e.table).collect();
        layers.extend(&self.lm_head);
        for b in &self.blocks {
            layers.extend(b.linears());
        }
        layers.iter().map(|l| l.dense_elements()).sum()
    }

    /// Converts quantized layers to dense compute-dtype weights (see `LoadOptions`).
    pub fn dequantize(self) -> Result<Self> {
        let deq_block = |b: Block| -> Result<Block> {
            Ok(Block {
                attn: Attention {
                    qkv: b.attn.qkv.dequantized()?,
                    o: b.attn.o.dequantized()?,
                    ..b.attn
                },
                mlp: b.mlp.dequantized()?,
                ..b
            })
        };
        Ok(Transformer {
            embed: self
                .embed
                .map(|e| -> Result<Embedding> {
                    Ok(Embedding {
                        table: e.table.dequantized()?,
                    })
                })
                .transpose()?,
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
