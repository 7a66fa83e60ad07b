//! Builds a [`ModelShape`] from a Hugging Face `config.json`, for the architectures Minibar runs.

use serde_json::Value;

use crate::quant::{Dtype, Quantization};
use crate::shape::{AttentionBias, LayerType, MlaShape, ModelShape, MoeShape};
use crate::FitError;

/// Reads config.json fields with the error naming the missing or malformed key.
struct Config<'a> {
    v: &'a Value,
    model_type: String,
}

impl Config<'_> {
    fn opt_u64(&self, key: &str) -> Result<Option<u64>, FitError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a whole number")),
        }
    }

    fn u64(&self, key: &str) -> Result<u64, FitError> {
        self.opt_u64(key)?
            .ok_or_else(|| FitError::MissingConfigKey {
                model_type: self.model_type.clone(),
                key: key.to_string(),
            })
    }

    fn u64_or(&self, key: &str, default: u64) -> Result<u64, FitError> {
        Ok(self.opt_u64(key)?.unwrap_or(default))
    }

    fn u32(&self, key: &str) -> Result<u32, FitError> {
        u32::try_from(self.u64(key)?).map_err(|_| self.bad(key, "a 32-bit number"))
    }

    fn u32_or(&self, key: &str, default: u32) -> Result<u32, FitError> {
        u32::try_from(self.u64_or(key, u64::from(default))?)
            .map_err(|_| self.bad(key, "a 32-bit number"))
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, FitError> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x.as_bool().ok_or_else(|| self.bad(key, "true or false")),
        }
    }

    fn bad(&self, key: &str, expected: &str) -> FitError {
        FitError::InvalidConfig(format!(
            "`{key}` in this {} config.json should be {expected}",
            self.model_type
        ))
    }
}

impl ModelShape {
    /// Builds the shape from a config.json (`text_config` is used for multimodal Gemma 3).
    pub fn from_hf_config(config: &Value) -> Result<ModelShape, FitError> {
        let model_type = config
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| FitError::InvalidConfig("config.json has no `model_type`".into()))?;
        let shape = match model_type {
            "gemma3" => {
                let text = config.get("text_config").ok_or_else(|| {
                    FitError::InvalidConfig("gemma3 config.json has no `text_config`".into())
                })?;
                let outer = Config {
                    v: config,
                    model_type: "gemma3".into(),
                };
                let inner = Config {
                    v: text,
                    model_type: "gemma3".into(),
                };
                let mut shape = gemma3_text(&inner)?;
                // mlx-lm's gemma3 wrapper supplies these when text_config leaves them out.
                shape.vocab = outer.u64_or("vocab_size", 262_208)?;
                shape.heads = inner.u32_or("num_attention_heads", 8)?;
                shape.kv_heads = inner.u32_or("num_key_value_heads", 4)?;
                shape
            }
            _ => {
                let c = Config {
                    v: config,
                    model_type: model_type.to_string(),
                };
                match model_type {
                    "llama" | "mistral" | "qwen2" | "qwen3" | "phi3" => dense(&c)?,
                    "gemma3_text" => gemma3_text(&c)?,
                    "qwen3_moe" => qwen3_moe(&c)?,
                    "gpt_oss" => gpt_oss(&c)?,
                    "deepseek_v2" | "deepseek_v3" => deepseek(&c)?,
                    other => return Err(FitError::UnknownModelType(other.to_string())),
                }
            }
        };
        shape.validate()?;
        Ok(shape)
    }
}

fn base(c: &Config, tied_default: bool) -> Result<ModelShape, FitError> {
    let heads = c.u32("num_attention_heads")?;
    Ok(ModelShape {
        model_type: c.model_type.clone(),
        layers: c.u32("num_hidden_layers")?,
        hidden: c.u64("hidden_size")?,
        intermediate: c.u64("intermediate_size")?,
        heads,
        kv_heads: c.u32_or("num_key_value_heads", heads)?,
        head_dim: c.opt_u64("head_dim")?,
        vocab: c.u64("vocab_size")?,
        max_context: c.u64_or("max_position_embeddings", 4096)?,
        tied_embeddings: c.bool_or("tie_word_embeddings", tied_default)?,
        attention_bias: AttentionBias::None,
        qk_norm: false,
        norms_per_layer: 2,
        fused_projections: false,
        attention_sinks: false,
        sliding_window: None,
        sliding_window_pattern: None,
        layer_types: None,
        moe: None,
        mla: None,
    })
}

fn dense(c: &Config) -> Result<ModelShape, FitError> {
    let mut s = base(c, false)?;
    match c.model_type.as_str() {
        "qwen2" => s.attention_bias = AttentionBias::Qkv,
        "qwen3" => s.qk_norm = true,
        "phi3" => s.fused_projections = true,
        _ => {
            if c.bool_or("attention_bias", false)? {
                s.attention_bias = AttentionBias::All;
            }
        }
    }
    // Qwen configs carry a sliding_window they do not use unless use_sliding_window is set;
    // mlx-lm's llama/mistral/phi3 ignore it entirely.
    if c.bool_or("use_sliding_window", false)? {
        if let Some(w) = c.opt_u64("sliding_window")? {
            let first_full = c.u32_or("max_window_layers", s.layers)?;
            s.sliding_window = Some(w);
            s.layer_types = Some(
                (0..s.layers)
                    .map(|i| {
                        if i < first_full {
                            LayerType::SlidingAttention
                        } else {
                            LayerType::FullAttention
                        }
                    })
                    .collect(),
            );
        }
    }
    s.layer_types = layer_types(c, s.layer_types.take())?;
    Ok(s)
}

fn gemma3_text(c: &Config) -> Result<ModelShape, FitError> {
    // Defaults are mlx-lm's gemma3_text.ModelArgs (the 1B model's values).
    let heads = c.u32_or("num_attention_heads", 4)?;
    let mut s = ModelShape {
        model_type: c.model_type.clone(),
        layers: c.u32_or("num_hidden_layers", 26)?,
        hidden: c.u64_or("hidden_size", 1152)?,
        intermediate: c.u64_or("intermediate_size", 6912)?,
        heads,
        kv_heads: c.u32_or("num_key_value_heads", 1)?,
        head_dim: Some(c.u64_or("head_dim", 256)?),
        vocab: c.u64_or("vocab_size", 262_144)?,
        max_context: c.u64_or("max_position_embeddings", 32_768)?,
        tied_embeddings: true,
        attention_bias: AttentionBias::None,
        qk_norm: true,
        norms_per_layer: 4,
        fused_projections: false,
        attention_sinks: false,
        sliding_window: Some(c.u64_or("sliding_window", 512)?),
        sliding_window_pattern: Some(c.u32_or("sliding_window_pattern", 6)?),
        layer_types: None,
        moe: None,
        mla: None,
    };
    s.layer_types = layer_types(c, None)?;
    Ok(s)
}

fn qwen3_moe(c: &Config) -> Result<ModelShape, FitError> {
    let mut s = base(c, false)?;
    s.qk_norm = true;
    let dense_layers = match c.v.get("mlp_only_layers") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value::<Vec<u32>>(v.clone())
            .map_err(|_| c.bad("mlp_only_layers", "a list of layer numbers"))?,
    };
    s.moe = Some(MoeShape {
        experts: c.u32("num_experts")?,
        experts_per_token: c.u32("num_experts_per_tok")?,
        moe_intermediate: c.u64("moe_intermediate_size")?,
        shared_experts: 0,
        first_dense_layers: 0,
        bias: false,
        sparse_step: c.u32_or("decoder_sparse_step", 1)?,
        dense_layers,
    });
    Ok(s)
}

fn gpt_oss(c: &Config) -> Result<ModelShape, FitError> {
    let mut s = base(c, false)?;
    s.attention_bias = AttentionBias::All;
    s.attention_sinks = true;
    s.sliding_window = Some(c.u64_or("sliding_window", 128)?);
    s.layer_types = layer_types(c, None)?;
    if s.layer_types.is_none() {
        // mlx-lm's default: sliding and full layers alternate, starting with sliding.
        s.sliding_window_pattern = Some(2);
    }
    s.moe = Some(MoeShape {
        experts: c.u32("num_local_experts")?,
        experts_per_token: c.u32_or("num_experts_per_tok", 4)?,
        moe_intermediate: c.u64("intermediate_size")?,
        shared_experts: 0,
        first_dense_layers: 0,
        bias: true,
        sparse_step: 1,
        dense_layers: Vec::new(),
    });
    Ok(s)
}

fn deepseek(c: &Config) -> Result<ModelShape, FitError> {
    let mut s = base(c, false)?;
    s.mla = Some(MlaShape {
        q_lora_rank: c.opt_u64("q_lora_rank")?,
        kv_lora_rank: c.u64("kv_lora_rank")?,
        qk_rope_head_dim: c.u64("qk_rope_head_dim")?,
        qk_nope_head_dim: c.u64("qk_nope_head_dim")?,
        v_head_dim: c.u64("v_head_dim")?,
    });
    if let Some(experts) = c.opt_u64("n_routed_experts")? {
        s.moe = Some(MoeShape {
            experts: u32::try_from(experts)
                .map_err(|_| c.bad("n_routed_experts", "a 32-bit number"))?,
            experts_per_token: c.u32("num_experts_per_tok")?,
            moe_intermediate: c.u64("moe_intermediate_size")?,
            shared_experts: c.u32_or("n_shared_experts", 0)?,
            first_dense_layers: c.u32_or("first_k_dense_replace", 0)?,
            bias: false,
            sparse_step: 1,
            dense_layers: Vec::new(),
        });
        if c.u32_or("moe_layer_freq", 1)? != 1 {
            return Err(FitError::InvalidConfig(
                "deepseek configs with moe_layer_freq other than 1 are not supported".into(),
            ));
        }
    }
    Ok(s)
}

fn layer_types(
    c: &Config,
    fallback: Option<Vec<LayerType>>,
) -> Result<Option<Vec<LayerType>>, FitError> {
    let Some(list) = c.v.get("layer_types").and_then(Value::as_array) else {
        return Ok(fallback);
    };
    list.iter()
        .map(|t| match t.as_str() {
            Some("full_attention") => Ok(LayerType::FullAttention),
            Some("sliding_attention") => Ok(LayerType::SlidingAttention),
            Some("linear_attention") => Ok(LayerType::LinearAttention),
            _ => Err(c.bad(
                "layer_types",
                "a list of full_attention / sliding_attention / linear_attention",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A model's shape and storage from its config.json: its quantization block when it has one,
/// else the float dtype it names (`torch_dtype` or `dtype`; bf16 when it names none).
pub fn model_from_config(config: &Value) -> Result<(ModelShape, Quantization), FitError> {
    let shape = ModelShape::from_hf_config(config)?;
    let dtype = ["torch_dtype", "dtype"]
        .iter()
        .find_map(|k| config.get(*k).and_then(Value::as_str))
        .and_then(Dtype::from_config_name)
        .unwrap_or(Dtype::Bf16);
    let quant =
        Quantization::from_config(config, dtype)?.unwrap_or_else(|| Quantization::float(dtype));
    Ok((shape, quant))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn qwen3_moe_dense_layers_follow_sparse_step_and_mlp_only_layers() {
        let config = json!({
            "model_type": "qwen3_moe", "hidden_size": 64, "num_hidden_layers": 6,
            "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "vocab_size": 256, "max_position_embeddings": 512,
            "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
            "decoder_sparse_step": 2, "mlp_only_layers": [3],
        });
        let (shape, _) = model_from_config(&config).unwrap();
        // mlx-lm: experts where (i + 1) % step == 0 and i is not in mlp_only_layers.
        let moe: Vec<u32> = (0..6).filter(|&i| shape.is_moe_layer(i)).collect();
        assert_eq!(moe, [1, 5]);
        let paths: Vec<String> = crate::tensors(&shape).into_iter().map(|t| t.path).collect();
        assert!(paths.iter().any(|p| p == "model.layers.3.mlp.gate_proj"));
        assert!(paths.iter().any(|p| p == "model.layers.1.mlp.gate"));
        assert!(!paths.iter().any(|p| p == "model.layers.3.mlp.gate"));
        let mut bad = config.clone();
        bad["mlp_only_layers"] = json!("all");
        assert!(model_from_config(&bad).is_err());
    }
}
