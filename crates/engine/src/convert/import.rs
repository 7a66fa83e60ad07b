//! `minibar import`: a GGUF file becomes an mlx-lm folder. Each tensor takes the MLX form its
//! GGUF type maps to (see `weights::gguf`: most keep their codes, Q2_K/Q3_K/Q6_K are
//! requantized), Q/K rows are un-permuted, Llama 3's `rope_freqs` become config.json's
//! `rope_scaling`, and the tokenizer and chat template are written as tokenizer.json /
//! tokenizer_config.json.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

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
    /// How many tensors of each GGUF type the file held.
    pub source_types: BTreeMap<String, usize>,
}

/// Converts the GGUF file `src` into an mlx-lm folder at `dest`.
pub fn import_gguf(src: &Path, dest: &Path, options: &ImportOptions) -> Result<ImportReport> {
    import_gguf_with_progress(src, dest, options, &mut |_, _| {})
}

/// [`import_gguf`], calling `progress(bytes_read, bytes_total)` as the tensors are converted.
pub fn import_gguf_with_progress(
    src: &Path,
    dest: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ImportReport> {
    let mut model = gguf::load_with_progress(src, progress)?;
    if let Some(factors) = model.tensors.remove("rope_freqs") {
        let args = ModelArgs::from_value(model.config.clone(), src)?;
        let values = factors.as_dtype(mlx_rs::Dtype::Float32)?;
        values.eval()?;
        let scaling = gguf::llama3_scaling(values.as_slice::<f32>(), args.head_dim(), args.rope_theta)
            .ok_or_else(|| EngineError::BadConfigValue {
                path: src.to_owned(),
                key: "rope_freqs".into(),
                detail: "this GGUF's per-frequency rope factors are not Llama 3's, which config.json cannot express; run it directly from the .gguf file instead".into(),
            })?;
        model.config["rope_scaling"] = scaling;
    }
    let meta = GgufMetadata::open(src).map_err(|e| EngineError::CorruptFile {
        path: src.to_owned(),
        format: "GGUF",
        detail: e.to_string(),
    })?;
    let text = TextModel::from_gguf(&meta)?;
    let source_types = model
        .tensor_types
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
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
            Value::from(vec![hf_class(
                obj["model_type"].as_str().unwrap_or("llama"),
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
        source_types,
    })
}

/// The Hugging Face class name config.json gives the architecture.
fn hf_class(model_type: &str) -> String {
    let name = match model_type {
        "gemma3_text" => "Gemma3",
        "phi3" => "Phi3",
        "qwen2" => "Qwen2",
        "qwen3" => "Qwen3",
        "mistral" => "Mistral",
        _ => "Llama",
    };
    format!("{name}ForCausalLM")
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
