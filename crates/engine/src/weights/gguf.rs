//! GGUF files (llama.cpp's format): tensors through MLX's reader, renamed to the Hugging Face
//! layout, with llama.cpp's rotary permutation of the Q and K rows undone, and the
//! hyperparameters rebuilt as a `config.json` equivalent.

use std::{collections::HashMap, path::Path};

use minibar_text::GgufMetadata;
use mlx_rs::{io::GgufFile, Array};
use serde_json::{json, Value};

use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
};

/// A GGUF model: weights by Hugging Face name, the equivalent config.json, and the
/// quantization of each quantized layer.
pub struct GgufModel {
    /// Tensors with Hugging Face names.
    pub tensors: HashMap<String, Array>,
    /// The config.json equivalent (with an mlx-lm `quantization` section when quantized).
    pub config: Value,
}

fn corrupt(path: &Path, detail: impl ToString) -> EngineError {
    EngineError::CorruptFile {
        path: path.to_owned(),
        format: "GGUF",
        detail: detail.to_string(),
    }
}

/// GGUF tensor types MLX 0.32 loads, with (name, elements per block, bytes per block).
fn tensor_layout(kind: u32) -> Option<(u64, u64)> {
    Some(match kind {
        0 => (1, 4),   // F32
        1 => (1, 2),   // F16
        2 => (32, 18), // Q4_0
        3 => (32, 20), // Q4_1
        8 => (32, 34), // Q8_0
        _ => return None,
    })
}

/// MLX's reader maps the file and trusts it, so a truncated download would fault inside it:
/// check every tensor lies inside the file and has a type MLX loads, first.
fn check_extents(meta: &GgufMetadata, path: &Path) -> Result<()> {
    let size = std::fs::metadata(path)
        .map_err(|source| EngineError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut end = 0u64;
    for t in &meta.tensors {
        let (block, bytes) =
            tensor_layout(t.ggml_type).ok_or_else(|| EngineError::UnsupportedTensorType {
                path: path.to_owned(),
                name: t.name.clone(),
                kind: format!("#{}", t.ggml_type),
            })?;
        let elements = t.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d));
        end = end.max(t.offset.saturating_add(elements / block * bytes));
    }
    let needed = meta.data_offset.saturating_add(end);
    if needed > size {
        return Err(corrupt(
            path,
            format!("truncated: its tensors need {needed} bytes but the file has {size}"),
        ));
    }
    Ok(())
}

/// Architectures whose GGUF layout this loader maps onto Hugging Face names.
const GGUF_ARCHITECTURES: &[&str] = &["llama", "mistral", "qwen2", "qwen3"];

/// Loads a GGUF model file.
pub fn load(path: &Path) -> Result<GgufModel> {
    let meta = GgufMetadata::open(path).map_err(|e| corrupt(path, e))?;
    check_extents(&meta, path)?;
    let arch = meta
        .architecture()
        .map_err(|e| corrupt(path, e))?
        .to_owned();
    if !GGUF_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(EngineError::UnsupportedArchitecture {
            path: path.to_owned(),
            model_type: arch,
            supported: GGUF_ARCHITECTURES.join(", "),
        });
    }
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
            model_type: arch.clone(),
            key: key(k),
        })
    };
    let heads = required("attention.head_count")? as i32;
    let kv_heads = number("attention.head_count_kv")?.map_or(heads, |v| v as i32);
    let hidden = required("embedding_length")? as i32;
    let has = |name: &str| meta.tensors.iter().any(|t| t.name == name);
    let vocab = match number("vocab_size")? {
        Some(v) => v as i32,
        None => meta
            .tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or_else(|| corrupt(path, "no token_embd.weight"))? as i32,
    };
    let mut config = json!({
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": required("block_count")? as i32,
        "intermediate_size": required("feed_forward_length")? as i32,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": required("attention.layer_norm_rms_epsilon")? as f32,
        "vocab_size": vocab,
        "rope_theta": number("rope.freq_base")?.unwrap_or(10000.0) as f32,
        "tie_word_embeddings": !has("output.weight"),
    });
    if let Some(ctx) = number("context_length")? {
        config["max_position_embeddings"] = json!(ctx as i32);
    }
    if let Some(hd) = number("attention.key_length")? {
        config["head_dim"] = json!(hd as i32);
    }
    let head_dim = config
        .get("head_dim")
        .and_then(Value::as_i64)
        .map_or(hidden / heads, |v| v as i32);

    let file = GgufFile::load(path).map_err(|e| corrupt(path, e))?;
    let raw = file.arrays().map_err(|e| corrupt(path, e))?;
    let mut tensors = HashMap::new();
    let mut quant = serde_json::Map::new();
    for (name, array) in raw {
        if name == "rope_freqs.weight" {
            // llama 3.x stores its rope scaling as per-frequency factors; keep them.
            tensors.insert("rope_freqs".to_owned(), array);
            continue;
        }
        let (base, suffix) = match name.rsplit_once('.') {
            Some(x) => x,
            None => return Err(corrupt(path, format!("unexpected tensor name {name}"))),
        };
        let hf = hf_name(base).ok_or_else(|| corrupt(path, format!("unknown tensor {name}")))?;
        // llama.cpp permutes Q/K only for the architectures it runs with interleaved rotary.
        let permuted = matches!(arch.as_str(), "llama" | "mistral");
        let array = if permuted && base.ends_with("attn_q") {
            unpermute(&array, heads, head_dim)?
        } else if permuted && base.ends_with("attn_k") {
            unpermute(&array, kv_heads, head_dim)?
        } else {
            array
        };
        if suffix == "scales" {
            quant.insert(hf.clone(), Value::Null);
        }
        tensors.insert(format!("{hf}.{suffix}"), array);
    }
    // MLX maps Q4_0/Q4_1 onto 4-bit and Q8_0 onto 8-bit affine groups of 32; the packed
    // width tells which.
    let mut per_layer = serde_json::Map::new();
    for layer in quant.keys() {
        let w = &tensors[&format!("{layer}.weight")];
        let s = &tensors[&format!("{layer}.scales")];
        let inp = s.shape()[1] * 32;
        let bits = w.shape()[1] * 32 / inp;
        per_layer.insert(layer.clone(), json!({"group_size": 32, "bits": bits}));
    }
    if !per_layer.is_empty() {
        let mut q = serde_json::Map::new();
        q.insert("group_size".into(), json!(32));
        q.insert("bits".into(), json!(4));
        q.insert("mode".into(), json!("affine"));
        q.extend(per_layer);
        config["quantization"] = Value::Object(q);
    }
    let _ = ModelArgs::from_value(config.clone(), path)?;
    Ok(GgufModel { tensors, config })
}

/// Maps a GGUF tensor base name onto the Hugging Face one.
fn hf_name(base: &str) -> Option<String> {
    Some(match base {
        "token_embd" => "model.embed_tokens".into(),
        "output_norm" => "model.norm".into(),
        "output" => "lm_head".into(),
        _ => {
            let rest = base.strip_prefix("blk.")?;
            let (layer, part) = rest.split_once('.')?;
            let hf = match part {
                "attn_norm" => "input_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "attn_q_norm" => "self_attn.q_norm",
                "attn_k_norm" => "self_attn.k_norm",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            format!("model.layers.{layer}.{hf}")
        }
    })
}

/// Undoes llama.cpp's permutation of Q/K rows (its rotary layout interleaves the two halves
/// of each head). Rows are independent, so packed quantized rows, scales and biases permute
/// alike; 1-D tensors (biases) permute the same way.
fn unpermute(a: &Array, heads: i32, head_dim: i32) -> Result<Array> {
    let shape = a.shape().to_vec();
    let mut split = vec![heads, head_dim / 2, 2];
    split.extend_from_slice(&shape[1..]);
    Ok(a.reshape(&split)?.swap_axes(1, 2)?.reshape(&shape)?)
}
