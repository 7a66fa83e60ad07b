//! `minibar quantize`: an f32/f16/bf16 model folder to MLX affine quantization (2-8 bits,
//! groups of 32, 64 or 128), choosing the same tensors mlx-lm does (every linear and embedding
//! weight whose input size is a multiple of the group), or back to dense weights.

use std::{collections::HashMap, path::Path};

use mlx_rs::{ops, Array, Dtype};
use serde_json::{json, Value};

use super::write::PendingFolder;
use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
    weights::safetensors,
};

/// What to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// MLX affine quantization.
    Affine {
        /// Bits per weight: 2, 3, 4, 5, 6 or 8.
        bits: i32,
        /// Weights per scale/bias pair: 32, 64 or 128.
        group_size: i32,
    },
    /// Dense weights in this dtype (undoing quantization).
    Dense(Dtype),
}

/// What a conversion wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantizeReport {
    /// The new folder.
    pub path: std::path::PathBuf,
    /// Bytes of weights written.
    pub weight_bytes: usize,
    /// Weights (elements of the dense model's matrices and vectors).
    pub parameters: u64,
    /// Bits per weight on disk.
    pub bits_per_weight: f64,
    /// Tensors quantized (or dequantized).
    pub converted: usize,
}

/// Files copied unchanged from the source folder.
fn is_side_file(name: &str) -> bool {
    name.starts_with("tokenizer")
        || name.starts_with("chat_template")
        || name.ends_with(".jinja")
        || matches!(
            name,
            "generation_config.json" | "special_tokens_map.json" | "vocab.json" | "merges.txt"
        )
}

/// Converts the model folder `src` into `dest`, calling `progress(done, total)` per tensor;
/// `progress` returns false to cancel (nothing is left behind).
pub fn quantize_folder(
    src: &Path,
    dest: &Path,
    target: Target,
    mut progress: impl FnMut(usize, usize) -> bool,
) -> Result<QuantizeReport> {
    let config_path = src.join("config.json");
    let args = ModelArgs::from_file(&config_path)?;
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).map_err(|source| {
            EngineError::Io {
                path: config_path.clone(),
                source,
            }
        })?)
        .map_err(|e| EngineError::CorruptFile {
            path: config_path.clone(),
            format: "JSON",
            detail: e.to_string(),
        })?;
    if let Target::Affine { bits, group_size } = target {
        if ![2, 3, 4, 5, 6, 8].contains(&bits) || ![32, 64, 128].contains(&group_size) {
            return Err(EngineError::BadConfigValue {
                path: dest.to_owned(),
                key: "quantization".into(),
                detail: format!("{bits} bits with groups of {group_size}: choose 2, 3, 4, 5, 6 or 8 bits and groups of 32, 64 or 128"),
            });
        }
        if args.quantization.is_some() {
            return Err(EngineError::BadConfigValue {
                path: config_path,
                key: "quantization".into(),
                detail: "the model is already quantized; dequantize it first (--dequantize) or start from the original weights".into(),
            });
        }
    }
    let mut tensors = safetensors::load_dir(src)?;
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    let total = names.len();
    let mut out: HashMap<String, Array> = HashMap::new();
    let mut converted = 0;
    let mut parameters = 0u64;
    for (i, name) in names.iter().enumerate() {
        if !progress(i, total) {
            return Err(EngineError::Cancelled);
        }
        let packed_part = name.ends_with(".scales") || name.ends_with(".biases");
        if packed_part && matches!(target, Target::Dense(_)) {
            // Consumed together with their `.weight`.
            continue;
        }
        let Some(w) = tensors.remove(name) else {
            continue;
        };
        match target {
            Target::Affine { bits, group_size } => {
                parameters += w.size() as u64;
                let quantizable =
                    name.ends_with(".weight") && w.ndim() == 2 && w.shape()[1] % group_size == 0;
                if quantizable {
                    let (q, s, b) = ops::quantize(&w, group_size, bits)?;
                    mlx_rs::transforms::eval([&q, &s, &b])?;
                    let base = name.trim_end_matches(".weight");
                    out.insert(name.clone(), q);
                    out.insert(format!("{base}.scales"), s);
                    out.insert(format!("{base}.biases"), b);
                    converted += 1;
                } else {
                    out.insert(name.clone(), w);
                }
            }
            Target::Dense(dtype) => {
                let base = name.trim_end_matches(".weight");
                let scales = tensors.get(&format!("{base}.scales")).cloned();
                let dense =
                    match (scales, name.ends_with(".weight")) {
                        (Some(s), true) => {
                            let p = args.quant_params(base).ok_or_else(|| {
                                EngineError::BadConfigValue {
                                    path: config_path.clone(),
                                    key: "quantization".into(),
                                    detail: format!("no settings for `{base}`"),
                                }
                            })?;
                            let b = tensors.get(&format!("{base}.biases")).cloned().ok_or_else(
                                || EngineError::MissingTensor {
                                    path: src.to_owned(),
                                    name: format!("{base}.biases"),
                                },
                            )?;
                            converted += 1;
                            let s = s.as_dtype(Dtype::Float32)?;
                            let b = b.as_dtype(Dtype::Float32)?;
                            ops::dequantize(&w, &s, &b, p.group_size, p.bits)?.as_dtype(dtype)?
                        }
                        _ if w.dtype().is_float() => w.as_dtype(dtype)?,
                        _ => w,
                    };
                parameters += dense.size() as u64;
                out.insert(name.clone(), dense);
            }
        }
    }
    let obj = config
        .as_object_mut()
        .ok_or_else(|| EngineError::CorruptFile {
            path: src.join("config.json"),
            format: "JSON",
            detail: "not an object".into(),
        })?;
    match target {
        Target::Affine { bits, group_size } => {
            let q = json!({"group_size": group_size, "bits": bits, "mode": "affine"});
            obj.insert("quantization".into(), q.clone());
            obj.insert("quantization_config".into(), q);
        }
        Target::Dense(dtype) => {
            obj.remove("quantization");
            obj.remove("quantization_config");
            obj.insert(
                "torch_dtype".into(),
                Value::from(format!("{dtype:?}").to_lowercase()),
            );
        }
    }
    let folder = PendingFolder::new(dest)?;
    folder.write_config(&config)?;
    let weight_bytes = folder.write_weights(&out)?;
    let entries = std::fs::read_dir(src).map_err(|source| EngineError::Io {
        path: src.to_owned(),
        source,
    })?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_side_file(&name) {
            let to = folder.path().join(&name);
            std::fs::copy(e.path(), &to).map_err(|source| EngineError::Io { path: to, source })?;
        }
    }
    progress(total, total);
    let path = folder.commit()?;
    Ok(QuantizeReport {
        path,
        weight_bytes,
        parameters,
        bits_per_weight: weight_bytes as f64 * 8.0 / parameters.max(1) as f64,
        converted,
    })
}
