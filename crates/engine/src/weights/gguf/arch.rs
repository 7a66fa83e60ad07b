//! What llama.cpp's converter did to each architecture, undone: GGUF tensor names back to
//! Hugging Face ones, GGUF metadata back to a `config.json`, and the weight edits it made
//! (Q/K row permutation for Llama, `1 + w` norms for Gemma 3, fused Phi-3 projections).

use std::path::Path;

use minibar_text::GgufMetadata;
use serde_json::{json, Value};

use super::tensors::corrupt;
use crate::{
    config::MAX_DIMENSION,
    error::{EngineError, Result},
};

/// GGUF architectures this loader maps onto Hugging Face names.
pub const GGUF_ARCHITECTURES: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3"];

/// How one GGUF architecture differs from the Hugging Face layout.
#[derive(Debug, Clone, Copy)]
pub struct Arch {
    /// `general.architecture`.
    pub name: &'static str,
    /// llama.cpp permuted the Q and K rows for its interleaved rotary layout
    /// (`LlamaModel.permute` in convert_hf_to_gguf.py).
    pub permuted_qk: bool,
    /// Norm gains were stored as `1 + w` (Gemma3Model's `norm_shift`).
    pub shifted_norms: bool,
}

impl Arch {
    /// The architecture named `name`, if this loader reads it.
    pub fn find(name: &str) -> Option<Self> {
        let name = *GGUF_ARCHITECTURES.iter().find(|a| **a == name)?;
        Some(Arch {
            name,
            permuted_qk: matches!(name, "llama" | "mistral"),
            shifted_norms: name == "gemma3",
        })
    }

    /// The Hugging Face name of GGUF tensor base name `base` (without `.weight`/`.bias`).
    pub fn hf_name(&self, base: &str) -> Option<String> {
        Some(match base {
            "token_embd" => "model.embed_tokens".into(),
            "output_norm" => "model.norm".into(),
            "output" => "lm_head".into(),
            _ => {
                let rest = base.strip_prefix("blk.")?;
                let (layer, part) = rest.split_once('.')?;
                layer.parse::<u32>().ok()?;
                let gemma = self.name == "gemma3";
                let phi3 = self.name == "phi3";
                let hf = match part {
                    "attn_norm" => "input_layernorm",
                    // Gemma 3 has norms before and after each half; llama.cpp calls the one
                    // before the MLP `ffn_norm` in both layouts.
                    "ffn_norm" if gemma => "pre_feedforward_layernorm",
                    "ffn_norm" => "post_attention_layernorm",
                    "post_attention_norm" if gemma => "post_attention_layernorm",
                    "post_ffw_norm" if gemma => "post_feedforward_layernorm",
                    "attn_q" => "self_attn.q_proj",
                    "attn_k" => "self_attn.k_proj",
                    "attn_v" => "self_attn.v_proj",
                    "attn_qkv" if phi3 => "self_attn.qkv_proj",
                    "attn_output" => "self_attn.o_proj",
                    "attn_q_norm" => "self_attn.q_norm",
                    "attn_k_norm" => "self_attn.k_norm",
                    "ffn_gate" => "mlp.gate_proj",
                    // Phi-3 keeps gate and up fused, gate first, under llama.cpp's `ffn_up`.
                    "ffn_up" if phi3 => "mlp.gate_up_proj",
                    "ffn_up" => "mlp.up_proj",
                    "ffn_down" => "mlp.down_proj",
                    _ => return None,
                };
                format!("model.layers.{layer}.{hf}")
            }
        })
    }

    /// The `config.json` equivalent of the file's metadata (without quantization).
    pub fn config(&self, meta: &GgufMetadata, path: &Path) -> Result<Value> {
        let arch = self.name;
        let key = |k: &str| format!("{arch}.{k}");
        // Numbers may be stored as any integer or float type.
        let number = |k: &str| -> Result<Option<f64>> {
            match meta.get(&key(k)) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .or_else(|| v.as_i64().map(|i| i as f64))
                    .map(Some)
                    .ok_or_else(|| corrupt(path, format!("{} is not a number", key(k)))),
            }
        };
        let required = |k: &str| -> Result<f64> {
            number(k)?.ok_or_else(|| EngineError::MissingConfigKey {
                path: path.to_owned(),
                model_type: arch.to_owned(),
                key: key(k),
            })
        };
        // Sizes divide and multiply later: a whole number from 1 to MAX_DIMENSION, or an error.
        let size = |k: &str, v: f64| -> Result<i32> {
            if v.fract() == 0.0 && v >= 1.0 && v <= f64::from(MAX_DIMENSION) {
                Ok(v as i32)
            } else {
                Err(corrupt(
                    path,
                    format!("{} is {v}, not a size from 1 to {MAX_DIMENSION}", key(k)),
                ))
            }
        };
        let req_size = |k: &str| -> Result<i32> { size(k, required(k)?) };
        let heads = req_size("attention.head_count")?;
        let kv_heads = match number("attention.head_count_kv")? {
            Some(v) => size("attention.head_count_kv", v)?,
            None => heads,
        };
        let hidden = req_size("embedding_length")?;
        let layers = req_size("block_count")?;
        let has = |name: &str| meta.tensors.iter().any(|t| t.name == name);
        // The embedding table's rows are the vocabulary (Gemma's converter trims the table to
        // the tokenizer, so its config's vocab_size would be wrong).
        let vocab = match meta
            .tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
        {
            Some(v) => size("vocab_size", v as f64)?,
            None => return Err(corrupt(path, "no token_embd.weight")),
        };
        let eps = required("attention.layer_norm_rms_epsilon")? as f32;
        let mut config = json!({
            "model_type": arch,
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "intermediate_size": req_size("feed_forward_length")?,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "rms_norm_eps": eps,
            "vocab_size": vocab,
            "tie_word_embeddings": !has("output.weight"),
        });
        if let Some(theta) = number("rope.freq_base")? {
            config["rope_theta"] = json!(theta as f32);
        }
        if let Some(ctx) = number("context_length")? {
            config["max_position_embeddings"] = json!(size("context_length", ctx)?);
        }
        if let Some(hd) = number("attention.key_length")? {
            config["head_dim"] = json!(size("attention.key_length", hd)?);
        }
        let head_dim = config["head_dim"]
            .as_i64()
            .map(|h| h as i32)
            .unwrap_or(hidden / heads);
        match meta.get_str(&key("rope.scaling.type")).ok().flatten() {
            None | Some("none") => {}
            Some("linear") => {
                config["rope_scaling"] = json!({
                    "type": "linear",
                    "factor": required("rope.scaling.factor")?,
                });
            }
            // Written as found: the rotary builder names what it cannot run.
            Some(other) => {
                config["rope_scaling"] = json!({
                    "type": other,
                    "factor": number("rope.scaling.factor")?,
                });
            }
        }
        match arch {
            "gemma3" => {
                config["model_type"] = json!("gemma3_text");
                // llama.cpp's Gemma 3 constants: five local layers per global one, local
                // rope base 10000, and the 27B model (62 layers) scales queries by
                // hidden / heads instead of the head width.
                config["sliding_window_pattern"] = json!(6);
                config["rope_local_base_freq"] = json!(10000.0);
                let scalar = if layers == 62 {
                    hidden / heads
                } else {
                    head_dim
                };
                config["query_pre_attn_scalar"] = json!(scalar as f32);
                if let Some(w) = number("attention.sliding_window")? {
                    config["sliding_window"] = json!(size("attention.sliding_window", w)?);
                }
                if config.get("rope_theta").is_none() {
                    config["rope_theta"] = json!(1_000_000.0);
                }
            }
            "phi3" => {
                if let Some(dims) = number("rope.dimension_count")? {
                    let dims = size("rope.dimension_count", dims)?;
                    if dims < head_dim {
                        config["partial_rotary_factor"] = json!(dims as f32 / head_dim as f32);
                    }
                }
                if let Some(orig) = number("rope.scaling.original_context_length")? {
                    config["original_max_position_embeddings"] =
                        json!(size("rope.scaling.original_context_length", orig)?);
                }
            }
            _ => {}
        }
        Ok(config)
    }
}

/// The `rope_scaling` of Llama 3.1/3.2 (`llama3`, low 1, high 4, 8192 original positions,
/// the only settings Meta ships) that gives exactly the per-frequency factors a GGUF stores as
/// `rope_freqs`, if one does: so an imported folder can say in config.json what the GGUF
/// said with a tensor.
pub fn llama3_scaling(factors: &[f32], head_dim: i32, base: f32) -> Option<Value> {
    let half = usize::try_from(head_dim / 2).ok()?;
    if factors.len() != half || half == 0 {
        return None;
    }
    let factor = factors.iter().copied().fold(f32::MIN, f32::max);
    if !(factor.is_finite() && factor > 1.0) {
        return None;
    }
    let (low, high, old) = (1.0f64, 4.0f64, 8192.0f64);
    let (low_wavelen, high_wavelen) = (old / low, old / high);
    let factor64 = f64::from(factor);
    for (i, &f) in factors.iter().enumerate() {
        let wavelen =
            2.0 * std::f64::consts::PI * f64::from(base).powf(2.0 * i as f64 / f64::from(head_dim));
        let expected = if wavelen < high_wavelen {
            1.0
        } else if wavelen > low_wavelen {
            factor64
        } else {
            let smooth = (old / wavelen - low) / (high - low);
            1.0 / ((1.0 - smooth) / factor64 + smooth)
        };
        if ((f64::from(f) - expected) / expected).abs() > 1e-4 {
            return None;
        }
    }
    Some(json!({
        "rope_type": "llama3",
        "factor": factor,
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": old as i32,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_each_architecture() {
        let llama = Arch::find("llama").unwrap();
        let gemma = Arch::find("gemma3").unwrap();
        let phi3 = Arch::find("phi3").unwrap();
        assert_eq!(
            llama.hf_name("blk.3.ffn_norm").unwrap(),
            "model.layers.3.post_attention_layernorm"
        );
        assert_eq!(
            gemma.hf_name("blk.3.ffn_norm").unwrap(),
            "model.layers.3.pre_feedforward_layernorm"
        );
        assert_eq!(
            gemma.hf_name("blk.0.post_attention_norm").unwrap(),
            "model.layers.0.post_attention_layernorm"
        );
        assert_eq!(
            phi3.hf_name("blk.1.ffn_up").unwrap(),
            "model.layers.1.mlp.gate_up_proj"
        );
        assert_eq!(
            llama.hf_name("blk.1.ffn_up").unwrap(),
            "model.layers.1.mlp.up_proj"
        );
        assert!(llama.hf_name("blk.1.attn_qkv").is_none());
        assert!(llama.hf_name("blk.x.attn_q").is_none());
        assert!(Arch::find("gpt2").is_none());
    }

    #[test]
    fn llama3_factors_round_trip_and_others_are_refused() {
        // Llama 3.1's settings: factor 8, computed as transformers does.
        let (hd, base) = (64, 500000.0f32);
        let factors: Vec<f32> = (0..hd / 2)
            .map(|i| {
                let wl =
                    2.0 * std::f64::consts::PI * f64::from(base).powf(2.0 * i as f64 / hd as f64);
                if wl < 2048.0 {
                    1.0
                } else if wl > 8192.0 {
                    8.0
                } else {
                    let s = (8192.0 / wl - 1.0) / 3.0;
                    (1.0 / ((1.0 - s) / 8.0 + s)) as f32
                }
            })
            .collect();
        let v = llama3_scaling(&factors, hd, base).unwrap();
        assert_eq!(v["factor"], json!(8.0));
        let mut odd = factors.clone();
        odd[3] *= 1.5;
        assert!(llama3_scaling(&odd, hd, base).is_none());
        assert!(llama3_scaling(&factors[1..], hd, base).is_none());
    }
}
