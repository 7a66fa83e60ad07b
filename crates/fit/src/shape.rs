//! The hyperparameters the memory model needs, as models.toml states them.

use serde::{Deserialize, Serialize};

use crate::FitError;

/// The architectures whose tensors this crate knows how to enumerate (mlx-lm's `model_type`).
pub const KNOWN_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "gemma3",
    "gemma3_text",
    "phi3",
    "gpt_oss",
    "deepseek_v2",
    "deepseek_v3",
];

/// A model's hyperparameters: enough to count its tensors and size its KV cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelShape {
    /// mlx-lm's `model_type` (decides tensor names and layout).
    pub model_type: String,
    /// Number of transformer blocks.
    pub layers: u32,
    /// Width of the residual stream.
    pub hidden: u64,
    /// Width of the dense MLP (also of dense layers in MoE models).
    pub intermediate: u64,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    /// Per-head width; `hidden / heads` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<u64>,
    /// Vocabulary size (rows of the embedding).
    pub vocab: u64,
    /// Longest context the model was trained for.
    pub max_context: u64,
    /// Whether the output layer reuses the token embedding.
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Which attention projections carry a bias.
    #[serde(default)]
    pub attention_bias: AttentionBias,
    /// Per-head RMSNorm on queries and keys (Qwen3, Gemma 3).
    #[serde(default)]
    pub qk_norm: bool,
    /// Hidden-size norms per block (2 for most, 4 for Gemma 3).
    #[serde(default = "default_norms")]
    pub norms_per_layer: u32,
    /// Query, key and value in one matrix, gate and up in another (Phi-3).
    #[serde(default)]
    pub fused_projections: bool,
    /// One learned sink logit per head (gpt-oss).
    #[serde(default)]
    pub attention_sinks: bool,
    /// Tokens a sliding-window layer attends to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<u64>,
    /// Every Nth layer is global, the rest slide (Gemma 3: 6, gpt-oss: 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window_pattern: Option<u32>,
    /// Explicit per-layer attention kinds; overrides the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<LayerType>>,
    /// Mixture-of-experts hyperparameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moe: Option<MoeShape>,
    /// Multi-head latent attention (DeepSeek V2/V3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mla: Option<MlaShape>,
}

fn default_norms() -> u32 {
    2
}

/// Which attention projections carry a bias vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionBias {
    /// No biases (Llama, Qwen3, Gemma).
    #[default]
    None,
    /// Query, key and value (Qwen2).
    Qkv,
    /// All four projections (gpt-oss).
    All,
}

/// How one layer attends, which decides its KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerType {
    /// Attends to the whole context: the cache grows with it.
    FullAttention,
    /// Attends to the last `sliding_window` tokens: the cache is capped.
    SlidingAttention,
    /// Linear or recurrent layer: a fixed-size state, no KV cache.
    LinearAttention,
}

/// Mixture-of-experts hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeShape {
    /// Routed experts per MoE layer.
    pub experts: u32,
    /// Experts each token is routed to.
    pub experts_per_token: u32,
    /// Width of one expert's MLP.
    pub moe_intermediate: u64,
    /// Always-on shared experts (DeepSeek), each `moe_intermediate` wide.
    #[serde(default)]
    pub shared_experts: u32,
    /// Leading layers that keep a dense MLP (DeepSeek's `first_k_dense_replace`).
    #[serde(default)]
    pub first_dense_layers: u32,
    /// Experts and router carry biases (gpt-oss).
    #[serde(default)]
    pub bias: bool,
    /// Every n-th layer has experts, the others a dense MLP (Qwen3-MoE's
    /// `decoder_sparse_step`).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub sparse_step: u32,
    /// Layers that keep a dense MLP (Qwen3-MoE's `mlp_only_layers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dense_layers: Vec<u32>,
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

impl MoeShape {
    /// Whether some layers keep a dense MLP.
    pub fn has_dense_layers(&self) -> bool {
        self.first_dense_layers > 0 || self.sparse_step > 1 || !self.dense_layers.is_empty()
    }
}

/// Multi-head latent attention hyperparameters (DeepSeek V2/V3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlaShape {
    /// Rank of the query compression; `None` for a plain query projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_lora_rank: Option<u64>,
    /// Rank of the key/value latent (what the cache stores).
    pub kv_lora_rank: u64,
    /// Rotary part of each query/key head.
    pub qk_rope_head_dim: u64,
    /// Non-rotary part of each query/key head.
    pub qk_nope_head_dim: u64,
    /// Width of each value head.
    pub v_head_dim: u64,
}

impl ModelShape {
    /// Per-head width, derived from hidden / heads when not stated.
    pub fn head_dim(&self) -> u64 {
        self.head_dim
            .unwrap_or_else(|| self.hidden / u64::from(self.heads.max(1)))
    }

    /// Whether this is a mixture-of-experts model.
    pub fn is_moe(&self) -> bool {
        self.moe.is_some()
    }

    /// Whether layer `i` routes to experts (rather than a dense MLP).
    pub fn is_moe_layer(&self, i: u32) -> bool {
        self.moe.as_ref().is_some_and(|m| {
            i >= m.first_dense_layers
                && !m.dense_layers.contains(&i)
                && (i + 1).is_multiple_of(m.sparse_step.max(1))
        })
    }

    /// How layer `i` attends.
    pub fn layer_type(&self, i: u32) -> LayerType {
        if let Some(types) = &self.layer_types {
            return types
                .get(i as usize)
                .copied()
                .unwrap_or(LayerType::FullAttention);
        }
        match (self.sliding_window, self.sliding_window_pattern) {
            (Some(_), Some(p)) if p > 1 => {
                if i % p == p - 1 {
                    LayerType::FullAttention
                } else {
                    LayerType::SlidingAttention
                }
            }
            (Some(_), Some(_)) => LayerType::FullAttention,
            (Some(_), None) => LayerType::SlidingAttention,
            _ => LayerType::FullAttention,
        }
    }

    /// Bytes one token adds to one layer's cache, per element byte (keys + values elements).
    pub fn kv_elements_per_token(&self) -> u64 {
        match &self.mla {
            // mlx-lm caches the compressed latent and the shared rotary key, not per-head K/V.
            Some(m) => m.kv_lora_rank + m.qk_rope_head_dim,
            None => 2 * u64::from(self.kv_heads) * self.head_dim(),
        }
    }

    /// Checks that the numbers describe a buildable model; the error names the field.
    pub fn validate(&self) -> Result<(), FitError> {
        let bad = |field: &str, why: &str| {
            Err(FitError::InvalidShape {
                field: field.to_string(),
                reason: why.to_string(),
            })
        };
        if !KNOWN_MODEL_TYPES.contains(&self.model_type.as_str()) {
            return Err(FitError::UnknownModelType(self.model_type.clone()));
        }
        for (field, value) in [
            ("layers", u64::from(self.layers)),
            ("hidden", self.hidden),
            ("intermediate", self.intermediate),
            ("heads", u64::from(self.heads)),
            ("kv_heads", u64::from(self.kv_heads)),
            ("vocab", self.vocab),
            ("max_context", self.max_context),
        ] {
            if value == 0 {
                return bad(field, "must be positive");
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return bad("kv_heads", "must divide heads");
        }
        if self.head_dim() == 0 {
            return bad("head_dim", "must be positive");
        }
        if let Some(types) = &self.layer_types {
            if types.len() != self.layers as usize {
                return bad("layer_types", "needs one entry per layer");
            }
        }
        let slides = (0..self.layers).any(|i| self.layer_type(i) == LayerType::SlidingAttention);
        if slides && self.sliding_window.unwrap_or(0) == 0 {
            return bad("sliding_window", "sliding layers need a window size");
        }
        if let Some(m) = &self.moe {
            if m.experts == 0 || m.experts_per_token == 0 || m.moe_intermediate == 0 {
                return bad(
                    "moe",
                    "experts, experts_per_token and moe_intermediate must be positive",
                );
            }
            if m.experts_per_token > m.experts {
                return bad("moe.experts_per_token", "cannot exceed experts");
            }
            if m.sparse_step == 0 {
                return bad("moe.sparse_step", "must be positive");
            }
            if m.first_dense_layers > self.layers {
                return bad("moe.first_dense_layers", "cannot exceed layers");
            }
        }
        Ok(())
    }
}
