//! GGUF files (llama.cpp's format) as Hugging Face-named MLX tensors and a `config.json`
//! equivalent.
//!
//! - [`blocks`] (the `minibar-ggml` crate): ggml's block formats in plain Rust, and what each
//!   becomes in MLX.
//! - [`tensors`]: reading one tensor's bytes (checked against the file) into MLX arrays.
//! - [`arch`]: per-architecture names, metadata and the converter's edits, undone.
//!
//! The mapping to MLX, per GGUF type (measured in `tests/reference_gguf.rs`; the README
//! has the figures):
//!
//! | GGUF | MLX |
//! |---|---|
//! | F32, F16, BF16 | the same dense type |
//! | Q4_0, Q4_1, Q4_K | affine 4-bit, groups of 32, codes copied |
//! | Q5_0, Q5_1, Q5_K | affine 5-bit, groups of 32, codes copied |
//! | Q8_0, IQ4_NL | affine 8-bit, groups of 32, codes copied |
//! | Q2_K, Q3_K | dequantized, requantized to affine 6-bit, groups of 32 |
//! | Q6_K | dequantized, requantized to affine 8-bit, groups of 32 |
//!
//! Scales and biases are stored in f16 (as mlx-lm stores them).

pub mod arch;
pub mod tensors;

pub use minibar_ggml as blocks;

use std::{collections::BTreeMap, collections::HashMap, fs::File, path::Path};

use minibar_text::GgufMetadata;
use mlx_rs::{ops, Array, Dtype};
use serde_json::{json, Value};

use self::{
    arch::Arch,
    tensors::{corrupt, Loaded, GROUP},
};
use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
};

pub use arch::{llama3_scaling, GGUF_ARCHITECTURES};

/// A GGUF model: weights by Hugging Face name, the equivalent config.json, and the
/// quantization of each quantized layer.
pub struct GgufModel {
    /// Tensors with Hugging Face names.
    pub tensors: HashMap<String, Array>,
    /// The config.json equivalent (with an mlx-lm `quantization` section when quantized).
    pub config: Value,
    /// How many tensors of each GGUF type the file held.
    pub tensor_types: BTreeMap<&'static str, usize>,
}

/// Loads a GGUF model file.
pub fn load(path: &Path) -> Result<GgufModel> {
    load_with_progress(path, &mut |_, _| {})
}

/// Loads a GGUF model file, calling `progress(bytes_done, bytes_total)` after each tensor.
pub fn load_with_progress(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<GgufModel> {
    load_only(path, progress, &|_| true)
}

/// The config.json equivalent of a GGUF file, from its metadata alone.
pub fn config(path: &Path) -> Result<Value> {
    let meta = GgufMetadata::open(path).map_err(|e| corrupt(path, e))?;
    arch_of(&meta, path)?.config(&meta, path)
}

fn arch_of(meta: &GgufMetadata, path: &Path) -> Result<Arch> {
    let name = meta.architecture().map_err(|e| corrupt(path, e))?;
    Arch::find(name).ok_or_else(|| EngineError::UnsupportedArchitecture {
        path: path.to_owned(),
        model_type: name.to_owned(),
        supported: GGUF_ARCHITECTURES.join(", "),
    })
}

/// Loads the tensors of a GGUF file whose GGUF names `keep` accepts; the others are neither
/// read nor decoded (a pipeline rank's foreign blocks).
pub fn load_only(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
    keep: &dyn Fn(&str) -> bool,
) -> Result<GgufModel> {
    let meta = GgufMetadata::open(path).map_err(|e| corrupt(path, e))?;
    let arch = arch_of(&meta, path)?;
    let entries = tensors::check(&meta, path)?;
    let mut config = arch.config(&meta, path)?;
    // The same checks as a config.json (head counts that group, widths that fit), before
    // the head width is used to reshape anything.
    let args = ModelArgs::from_value(config.clone(), path)?;
    let (heads, kv_heads, head_dim) = (args.num_attention_heads, args.kv_heads(), args.head_dim());

    let total: u64 = entries.iter().map(|e| e.len).sum();
    let mut file = File::open(path).map_err(|source| EngineError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut done = 0u64;
    let mut tensors = HashMap::new();
    let mut per_layer = serde_json::Map::new();
    let mut tensor_types = BTreeMap::new();
    let mut long_rope = serde_json::Map::new();
    for entry in &entries {
        let name = entry.info.name.as_str();
        if !keep(name) {
            done += entry.len;
            continue;
        }
        let loaded = tensors::load(&mut file, entry, path)?;
        done += entry.len;
        progress(done, total);
        *tensor_types.entry(entry.ty.name()).or_insert(0) += 1;
        let (base, suffix) = name
            .rsplit_once('.')
            .ok_or_else(|| corrupt(path, format!("unexpected tensor name {name}")))?;
        // Rotary factors: llama 3.x's per-frequency ones go to the model as a tensor; Phi-3's
        // long-rope ones become the config's `rope_scaling`.
        if matches!(
            base,
            "rope_freqs" | "rope_factors_long" | "rope_factors_short"
        ) {
            let Loaded::Dense(a) = loaded else {
                return Err(corrupt(path, format!("{name} is quantized")));
            };
            if base == "rope_freqs" {
                tensors.insert("rope_freqs".to_owned(), a);
            } else {
                let values = a.as_dtype(Dtype::Float32)?;
                values.eval()?;
                let values: Vec<f32> = values.as_slice::<f32>().to_vec();
                let key = if base == "rope_factors_long" {
                    "long_factor"
                } else {
                    "short_factor"
                };
                long_rope.insert(key.into(), json!(values));
            }
            continue;
        }
        let hf = arch
            .hf_name(base)
            .ok_or_else(|| corrupt(path, format!("unknown tensor {name}")))?;
        // ggml quantizes by type, not with extra tensors: a GGUF holds weights and biases.
        if !matches!(suffix, "weight" | "bias") {
            return Err(corrupt(
                path,
                format!("{name} ({hf}.{suffix}) is neither a weight nor a bias"),
            ));
        }
        // llama.cpp permuted Q/K rows only for the architectures it runs interleaved.
        let rows = if arch.permuted_qk && base.ends_with(".attn_q") {
            Some(heads)
        } else if arch.permuted_qk && base.ends_with(".attn_k") {
            Some(kv_heads)
        } else {
            None
        };
        let fix = |a: Array| -> Result<Array> {
            match rows {
                Some(h) => unpermute(&a, h, head_dim, path, name),
                None => Ok(a),
            }
        };
        match loaded {
            Loaded::Dense(a) => {
                let a = fix(a)?;
                let a = if arch.shifted_norms && base.ends_with("norm") && suffix == "weight" {
                    ops::subtract(&a.as_dtype(Dtype::Float32)?, Array::from_f32(1.0))?
                } else {
                    a
                };
                tensors.insert(format!("{hf}.{suffix}"), a);
            }
            Loaded::Quantized {
                weight,
                scales,
                biases,
                bits,
            } => {
                if suffix != "weight" {
                    return Err(corrupt(path, format!("{name}: a quantized bias")));
                }
                tensors.insert(format!("{hf}.weight"), fix(weight)?);
                tensors.insert(format!("{hf}.scales"), fix(scales)?);
                tensors.insert(format!("{hf}.biases"), fix(biases)?);
                per_layer.insert(hf, json!({"group_size": GROUP, "bits": bits}));
            }
        }
    }
    if !long_rope.is_empty() {
        long_rope.insert("type".into(), json!("longrope"));
        config["rope_scaling"] = Value::Object(long_rope);
    }
    if !per_layer.is_empty() {
        let mut q = serde_json::Map::new();
        q.insert("group_size".into(), json!(GROUP));
        q.insert("bits".into(), json!(4));
        q.insert("mode".into(), json!("affine"));
        q.extend(per_layer);
        config["quantization"] = Value::Object(q);
    }
    ModelArgs::from_value(config.clone(), path)?;
    Ok(GgufModel {
        tensors,
        config,
        tensor_types,
    })
}

/// One GGUF tensor, by its GGUF name and in the file's layout (no renaming or permutation),
/// for measuring the mapping: ggml's exact values and the values its MLX form holds.
pub struct Inspected {
    /// The GGUF type's name.
    pub ty: &'static str,
    /// What the type becomes in MLX.
    pub mapping: blocks::Mapping,
    /// Shape in MLX order.
    pub shape: Vec<i32>,
    /// ggml's dequantization (for dense types, the values).
    pub exact: Vec<f32>,
    /// The MLX form, dequantized by MLX.
    pub mapped: Vec<f32>,
}

/// Reads tensors `names` of the GGUF file at `path` both ways (see [`Inspected`]).
pub fn inspect(path: &Path, names: &[&str]) -> Result<Vec<Inspected>> {
    let meta = GgufMetadata::open(path).map_err(|e| corrupt(path, e))?;
    let entries = tensors::check(&meta, path)?;
    let mut file = File::open(path).map_err(|source| EngineError::Io {
        path: path.to_owned(),
        source,
    })?;
    let to_vec = |a: &Array| -> Result<Vec<f32>> {
        let a = a.as_dtype(Dtype::Float32)?;
        a.eval()?;
        Ok(a.as_slice::<f32>().to_vec())
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let entry = entries
            .iter()
            .find(|e| e.info.name == *name)
            .ok_or_else(|| EngineError::MissingTensor {
                path: path.to_owned(),
                name: (*name).to_owned(),
            })?;
        let bytes = tensors::read(&mut file, entry, path)?;
        let mapped = match tensors::convert(entry, &bytes)? {
            Loaded::Dense(a) => to_vec(&a)?,
            Loaded::Quantized {
                weight,
                scales,
                biases,
                bits,
            } => to_vec(&crate::quant_ops::dequantize(
                &weight,
                &scales.as_dtype(Dtype::Float32)?,
                Some(&biases.as_dtype(Dtype::Float32)?),
                crate::quant_ops::QuantMode::Affine,
                GROUP,
                bits,
                Some(Dtype::Float32),
            )?)?,
        };
        let exact = match entry.ty.mapping() {
            blocks::Mapping::Dense => mapped.clone(),
            _ => blocks::dequantize(entry.ty, &bytes),
        };
        out.push(Inspected {
            ty: entry.ty.name(),
            mapping: entry.ty.mapping(),
            shape: entry.shape.clone(),
            exact,
            mapped,
        });
    }
    Ok(out)
}

/// Undoes llama.cpp's permutation of Q/K rows (its rotary layout interleaves the two halves
/// of each head). Rows are independent, so packed quantized rows, scales and biases permute
/// alike; 1-D tensors (biases) permute the same way.
fn unpermute(a: &Array, heads: i32, head_dim: i32, path: &Path, name: &str) -> Result<Array> {
    let shape = a.shape().to_vec();
    if shape.first() != Some(&(heads * head_dim)) || head_dim % 2 != 0 {
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
