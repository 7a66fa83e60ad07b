//! GGUF files (llama.cpp's format): tensors through MLX's reader, renamed to the Hugging Face
//! layout, with llama.cpp's rotary permutation of the Q and K rows undone, and the
//! hyperparameters rebuilt as a `config.json` equivalent.

use std::{collections::HashMap, path::Path};

use minibar_text::GgufMetadata;
use mlx_rs::{io::GgufFile, Array};
use serde_json::{json, Value};

use crate::{
    config::{ModelArgs, MAX_DIMENSION},
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

/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: usize = 4;

/// MLX's reader maps the file and trusts it, so a truncated download would fault inside it:
/// check every tensor lies inside the file, has 1 to 4 dimensions, a size that does not
/// overflow and a type MLX loads, first.
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
        if t.dims.is_empty() || t.dims.len() > MAX_DIMS {
            return Err(corrupt(
                path,
                format!(
                    "tensor {} has {} dimensions (1 to {MAX_DIMS} allowed)",
                    t.name,
                    t.dims.len()
                ),
            ));
        }
        // Checked arithmetic: a crafted dimension must not wrap around to a small size.
        let tensor_end = t
            .element_count()
            .filter(|n| n % block == 0)
            .and_then(|n| (n / block).checked_mul(bytes))
            .and_then(|size| t.offset.checked_add(size))
            .ok_or_else(|| {
                corrupt(
                    path,
                    format!("tensor {} has an impossible size {:?}", t.name, t.dims),
                )
            })?;
        end = end.max(tensor_end);
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
    // Sizes divide and multiply below: a whole number from 1 to MAX_DIMENSION, or an error.
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
    let heads = size("attention.head_count", required("attention.head_count")?)?;
    let kv_heads = match number("attention.head_count_kv")? {
        Some(v) => size("attention.head_count_kv", v)?,
        None => heads,
    };
    let hidden = size("embedding_length", required("embedding_length")?)?;
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
        config["head_dim"] = json!(size("attention.key_length", hd)?);
    }
    // The same checks as a config.json (head counts that group, widths that fit), before
    // the head width is used to reshape anything.
    let args = ModelArgs::from_value(config.clone(), path)?;
    let head_dim = args.head_dim();

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
            unpermute(&array, heads, head_dim, path, &name)?
        } else if permuted && base.ends_with("attn_k") {
            unpermute(&array, kv_heads, head_dim, path, &name)?
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
        let bits = packed_bits(&tensors, layer).ok_or_else(|| {
            corrupt(
                path,
                format!("quantized layer {layer} lacks a 2-D weight and scales of matching widths"),
            )
        })?;
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
    ModelArgs::from_value(config.clone(), path)?;
    Ok(GgufModel { tensors, config })
}

/// Bits per weight of a quantized layer, from its packed width against its scales (groups of
/// 32); `None` when a tensor is missing or the shapes cannot be a quantized layer.
fn packed_bits(tensors: &HashMap<String, Array>, layer: &str) -> Option<i32> {
    let w = tensors.get(&format!("{layer}.weight"))?.shape();
    let s = tensors.get(&format!("{layer}.scales"))?.shape();
    let (&[_, packed], &[_, groups]) = (w, s) else {
        return None;
    };
    let inp = groups.checked_mul(32).filter(|&i| i > 0)?;
    packed
        .checked_mul(32)
        .map(|bits| bits / inp)
        .filter(|&b| b > 0)
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
fn unpermute(a: &Array, heads: i32, head_dim: i32, path: &Path, name: &str) -> Result<Array> {
    let shape = a.shape().to_vec();
    if shape.is_empty() {
        return Err(EngineError::TensorShape {
            path: path.to_owned(),
            name: name.to_owned(),
            expected: vec![heads * head_dim],
            actual: shape,
        });
    }
    let mut split = vec![heads, head_dim / 2, 2];
    split.extend_from_slice(&shape[1..]);
    Ok(a.reshape(&split)?.swap_axes(1, 2)?.reshape(&shape)?)
}
