//! `minibar import`: a GGUF file becomes an mlx-lm folder. Q4_0/Q4_1/Q8_0 tensors stay as the
//! MLX group-32 quantization they load as (no re-quantization), Q/K rows are un-permuted, and
//! the tokenizer and chat template are written as tokenizer.json / tokenizer_config.json.

use std::path::{Path, PathBuf};

use minibar_text::{GgufMetadata, TextModel};
use mlx_rs::ops;
use serde_json::Value;

use super::write::PendingFolder;
use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
    weights::gguf,
};

/// Import settings.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Write dense f32 weights instead of keeping the GGUF's quantization.
    pub dequantize: bool,
}

/// What an import wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    /// The new model folder.
    pub path: PathBuf,
    /// Bytes of weights written.
    pub weight_bytes: usize,
    /// Parameters in the model.
    pub parameters: u64,
    /// Average bits per weight on disk.
    pub bits_per_weight: f64,
}

/// Converts the GGUF file `src` into an mlx-lm folder at `dest`.
pub fn import_gguf(src: &Path, dest: &Path, options: &ImportOptions) -> Result<ImportReport> {
    let model = gguf::load(src)?;
    if model.tensors.contains_key("rope_freqs") {
        return Err(EngineError::BadConfigValue {
            path: src.to_owned(),
            key: "rope_freqs".into(),
            detail: "this GGUF stores rope scaling as per-frequency factors, which config.json cannot express; run it directly from the .gguf file instead".into(),
        });
    }
    let meta = GgufMetadata::open(src).map_err(|e| EngineError::CorruptFile {
        path: src.to_owned(),
        format: "GGUF",
        detail: e.to_string(),
    })?;
    let text = TextModel::from_gguf(&meta)?;
    let mut config = model.config;
    let mut tensors = model.tensors;
    if options.dequantize {
        let args = ModelArgs::from_value(config.clone(), src)?;
        let layers: Vec<String> = tensors
            .keys()
            .filter_map(|k| k.strip_suffix(".scales").map(str::to_owned))
            .collect();
        for layer in layers {
            let p = args
                .quant_params(&layer)
                .unwrap_or(crate::layers::QuantParams::affine(4, 32));
            let w = tensors
                .remove(&format!("{layer}.weight"))
                .unwrap_or_else(|| unreachable!());
            let s = tensors
                .remove(&format!("{layer}.scales"))
                .unwrap_or_else(|| unreachable!());
            let b = tensors
                .remove(&format!("{layer}.biases"))
                .unwrap_or_else(|| unreachable!());
            let s = s.as_dtype(mlx_rs::Dtype::Float32)?;
            let b = b.as_dtype(mlx_rs::Dtype::Float32)?;
            let dense = ops::dequantize(&w, &s, &b, p.group_size, p.bits)?;
            tensors.insert(format!("{layer}.weight"), dense);
        }
        if let Some(obj) = config.as_object_mut() {
            obj.remove("quantization");
        }
    }
    let parameters = count_parameters(&config, src)?;
    if let Some(obj) = config.as_object_mut() {
        obj.insert(
            "torch_dtype".into(),
            Value::from(if options.dequantize {
                "float32"
            } else {
                "float16"
            }),
        );
        obj.insert(
            "architectures".into(),
            Value::from(vec![format!(
                "{}ForCausalLM",
                capitalized(obj["model_type"].as_str().unwrap_or("Llama"))
            )]),
        );
        if let Some(q) = obj.get("quantization").cloned() {
            obj.insert("quantization_config".into(), q);
        }
    }
    let folder = PendingFolder::new(dest)?;
    folder.write_config(&config)?;
    let weight_bytes = folder.write_weights(&tensors)?;
    text.save_hf_files(folder.path())?;
    let path = folder.commit()?;
    Ok(ImportReport {
        path,
        weight_bytes,
        parameters,
        bits_per_weight: weight_bytes as f64 * 8.0 / parameters.max(1) as f64,
    })
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Parameters of a Llama-like model, for bits-per-weight reports.
fn count_parameters(config: &Value, src: &Path) -> Result<u64> {
    let a = ModelArgs::from_value(config.clone(), src)?;
    let (h, i, v, l) = (
        a.hidden_size as u64,
        a.intermediate_size as u64,
        a.vocab_size as u64,
        a.num_hidden_layers as u64,
    );
    let (q, kv) = (
        a.num_attention_heads as u64 * a.head_dim() as u64,
        a.kv_heads() as u64 * a.head_dim() as u64,
    );
    let per_layer = h * q * 2 + h * kv * 2 + 3 * h * i + 2 * h;
    let tied = a.tie_word_embeddings.unwrap_or(true);
    Ok(per_layer * l + v * h * if tied { 1 } else { 2 } + h)
}
