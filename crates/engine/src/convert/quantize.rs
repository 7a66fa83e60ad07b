//! `minibar quantize`: an f32/f16/bf16 model folder to MLX quantization (affine 2-8 bits in
//! groups of 32, 64 or 128; mxfp4, mxfp8, nvfp4; or one of mlx-lm's mixed-precision recipes),
//! choosing the same tensors mlx-lm does (every linear, embedding and stacked-experts weight
//! whose input size is a multiple of the group, with the architecture's fixed exceptions) and
//! writing the same config.json, or back to dense weights.

use std::{collections::HashMap, path::Path};

use mlx_rs::{Array, Dtype};
use serde_json::{json, Map, Value};

use super::{
    recipe::{MixedPlan, Recipe},
    write::PendingFolder,
};
use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
    layers::QuantParams,
    models,
    quant_ops::{self, QuantMode},
    weights::{safetensors, Tensors},
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
    /// Every quantizable layer in one of MLX's modes (affine, mxfp4, mxfp8, nvfp4).
    Quantized(QuantParams),
    /// An mlx-lm mixed-precision recipe (affine, with per-layer bits in config.json).
    Mixed {
        /// The recipe.
        recipe: Recipe,
        /// Weights per scale/bias pair: 32, 64 or 128.
        group_size: i32,
    },
    /// Dense weights in this dtype (undoing quantization).
    Dense(Dtype),
}

impl Target {
    /// The global settings written to config.json (what mlx-lm's `quantize_model` records;
    /// a recipe's layers all carry their own), or `None` for dense weights.
    pub fn global_params(self) -> Option<QuantParams> {
        match self {
            Target::Affine { bits, group_size } => Some(QuantParams::affine(bits, group_size)),
            Target::Quantized(p) => Some(p),
            Target::Mixed { group_size, .. } => Some(QuantParams::affine(
                QuantMode::Affine.defaults().1,
                group_size,
            )),
            Target::Dense(_) => None,
        }
    }

    /// A short name for the settings, for folder names: `4bit-g64`, `mxfp4`, `mixed_3_6-g64`.
    pub fn label(self) -> String {
        match self {
            Target::Mixed { recipe, group_size } => format!("{recipe}-g{group_size}"),
            Target::Dense(dtype) => format!("{dtype:?}").to_lowercase(),
            Target::Affine { bits, group_size } => format!("{bits}bit-g{group_size}"),
            Target::Quantized(p) if p.mode == QuantMode::Affine => {
                format!("{}bit-g{}", p.bits, p.group_size)
            }
            Target::Quantized(p) => p.mode.name().to_owned(),
        }
    }
}

fn params_json(p: QuantParams) -> Value {
    json!({"group_size": p.group_size, "bits": p.bits, "mode": p.mode.name()})
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
    if let Some(global) = target.global_params() {
        global
            .mode
            .check(global.group_size, global.bits)
            .map_err(|detail| EngineError::BadConfigValue {
                path: dest.to_owned(),
                key: "quantization".into(),
                detail,
            })?;
        if args.quantization.is_some() {
            return Err(EngineError::BadConfigValue {
                path: config_path,
                key: "quantization".into(),
                detail: "the model is already quantized; dequantize it first (--dequantize) or start from the original weights".into(),
            });
        }
    }
    // mlx_lm.convert quantizes the model it loaded, so the architecture's sanitize comes first
    // (Qwen3-MoE's per-expert matrices are quantized stacked, as mlx-lm writes them).
    let mut checkpoint = Tensors::new(safetensors::load_dir(src)?, src, Dtype::Float32);
    models::sanitize(&args, &mut checkpoint)?;
    let mut tensors = checkpoint.into_map();
    let quant_override = models::architecture(&args.model_type).and_then(|a| a.quant_override);
    let mut names: Vec<String> = tensors.keys().cloned().collect();
    names.sort();
    let plan = match target {
        Target::Mixed { recipe, group_size } => Some(
            MixedPlan::new(
                recipe,
                group_size,
                names.iter().filter_map(|n| n.strip_suffix(".weight")),
                args.num_hidden_layers,
            )
            .map_err(|detail| EngineError::BadConfigValue {
                path: config_path.clone(),
                key: "quantization".into(),
                detail,
            })?,
        ),
        _ => None,
    };
    let dense_dtype = match target {
        Target::Dense(dtype) => dtype,
        _ => Dtype::Float32,
    };
    // This loop only builds MLX's lazy graph (no tensor is computed yet): the progress and
    // the cancellation are the writer's, below.
    let mut out: HashMap<String, Array> = HashMap::new();
    let mut layers = Map::new();
    let mut converted = 0;
    let mut parameters = 0u64;
    for name in &names {
        let packed_part = name.ends_with(".scales") || name.ends_with(".biases");
        if packed_part && matches!(target, Target::Dense(_)) {
            // Consumed together with their `.weight`.
            continue;
        }
        let Some(w) = tensors.remove(name) else {
            continue;
        };
        if let Some(global) = target.global_params() {
            parameters += w.size() as u64;
            // mlx-lm's test: the global group size divides the input size. Linear and
            // embedding weights are matrices; stacked experts (`[experts, out, in]`) too.
            let quantizable = name.ends_with(".weight")
                && matches!(w.ndim(), 2 | 3)
                && w.shape()[w.ndim() - 1] % global.group_size == 0;
            if !quantizable {
                out.insert(name.clone(), w);
                continue;
            }
            let base = name.trim_end_matches(".weight");
            let p = match &plan {
                Some(plan) => {
                    let p = plan.params(base);
                    layers.insert(base.to_owned(), params_json(p));
                    p
                }
                // The architecture's fixed settings (mlx-lm's model `quant_predicate`).
                None => match quant_override.and_then(|f| f(base)) {
                    Some(p) => {
                        // Recorded as mlx-lm records its predicate's answer, which names no
                        // mode: `to_quantized`'s default, affine.
                        let mut entry = params_json(p);
                        if p.mode == QuantMode::Affine {
                            entry.as_object_mut().map(|o| o.remove("mode"));
                        }
                        layers.insert(base.to_owned(), entry);
                        p
                    }
                    None => global,
                },
            };
            // Lazy: the writer evaluates one tensor at a time (see `stream_weights`).
            let packed = quant_ops::quantize(&w, p.mode, p.group_size, p.bits)?;
            out.insert(format!("{base}.scales"), packed.scales);
            if let Some(b) = packed.biases {
                out.insert(format!("{base}.biases"), b);
            }
            out.insert(name.clone(), packed.weight);
            converted += 1;
            continue;
        }
        let base = name.trim_end_matches(".weight");
        let scales = tensors.get(&format!("{base}.scales")).cloned();
        let dense = match (scales, name.ends_with(".weight")) {
            (Some(s), true) => {
                let p = args
                    .quant_params(base)
                    .ok_or_else(|| EngineError::BadConfigValue {
                        path: config_path.clone(),
                        key: "quantization".into(),
                        detail: format!("no settings for `{base}`"),
                    })?;
                let b = if p.mode.has_biases() {
                    let b = tensors
                        .get(&format!("{base}.biases"))
                        .cloned()
                        .ok_or_else(|| EngineError::MissingTensor {
                            path: src.to_owned(),
                            name: format!("{base}.biases"),
                        })?;
                    Some(b.as_dtype(Dtype::Float32)?)
                } else {
                    None
                };
                let s = if s.dtype().is_float() {
                    s.as_dtype(Dtype::Float32)?
                } else {
                    s
                };
                converted += 1;
                quant_ops::dequantize(
                    &w,
                    &s,
                    b.as_ref(),
                    p.mode,
                    p.group_size,
                    p.bits,
                    Some(Dtype::Float32),
                )?
                .as_dtype(dense_dtype)?
            }
            _ if w.dtype().is_float() => w.as_dtype(dense_dtype)?,
            _ => w,
        };
        parameters += dense.size() as u64;
        out.insert(name.clone(), dense);
    }
    let obj = config
        .as_object_mut()
        .ok_or_else(|| EngineError::CorruptFile {
            path: src.join("config.json"),
            format: "JSON",
            detail: "not an object".into(),
        })?;
    match target.global_params() {
        Some(global) => {
            // mlx-lm: the global settings, then one entry per layer a predicate chose.
            let mut q = Map::new();
            q.insert("group_size".into(), global.group_size.into());
            q.insert("bits".into(), global.bits.into());
            q.insert("mode".into(), global.mode.name().into());
            q.extend(layers);
            obj.insert("quantization".into(), Value::Object(q.clone()));
            obj.insert("quantization_config".into(), Value::Object(q));
        }
        None => {
            obj.remove("quantization");
            obj.remove("quantization_config");
            obj.insert(
                "torch_dtype".into(),
                Value::from(format!("{dense_dtype:?}").to_lowercase()),
            );
        }
    }
    let folder = PendingFolder::new(dest)?;
    folder.write_config(&config)?;
    // The work happens here, a tensor at a time: the progress counts tensors written.
    let weight_bytes = folder.stream_weights(out, &mut progress)?;
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
    let path = folder.commit()?;
    Ok(QuantizeReport {
        path,
        weight_bytes,
        parameters,
        bits_per_weight: weight_bytes as f64 * 8.0 / parameters.max(1) as f64,
        converted,
    })
}
