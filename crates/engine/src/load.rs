//! Loading a model from a GGUF file or a Hugging Face / mlx-lm folder into memory.

use std::{
    ops::Range,
    path::{Path, PathBuf},
};

use mlx_rs::Dtype;

use crate::{
    backend::Backend,
    config::ModelArgs,
    error::{EngineError, Result},
    models::{self, Transformer},
    weights::{gguf, safetensors, Tensors},
};

/// How quantized weights are kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dequantize {
    /// Decide per model and backend: on the CPU, small models run faster from dense f32
    /// weights (MLX's CPU quantized kernels are single-threaded), so dequantize those, unless
    /// only the quantized form fits the budget. minibar-fit's gate decides it
    /// ([`minibar_fit::Admission::dequantize`]), so the memory it predicted is what loads.
    #[default]
    Auto,
    /// Always expand to dense weights.
    Always,
    /// Keep the quantized weights.
    Never,
}

/// Knobs for loading.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Quantized-weight policy.
    pub dequantize: Dequantize,
    /// Force a compute dtype (default: the backend's policy).
    pub dtype: Option<Dtype>,
    /// What minibar-fit's gate is asked before loading: the context, whether the user forced
    /// the model, the budget (default: this machine now) and the thresholds.
    pub memory: minibar_fit::LoadRequest,
    /// The decoder blocks to load (a pipeline rank's share); `None`: all of them. The other
    /// blocks' weights are never read, and the memory gate judges this share alone.
    pub layers: Option<Range<usize>>,
}

/// The on-disk format a model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Format {
    /// A llama.cpp GGUF file.
    Gguf,
    /// A Hugging Face / mlx-lm safetensors folder.
    Safetensors,
}

/// A network ready to run (its tokenizer and chat template are loaded by `session`).
pub struct LoadedModel {
    /// The network.
    pub model: Transformer,
    /// Where it came from.
    pub path: PathBuf,
    /// Its file format.
    pub format: Format,
    /// The backend it runs on.
    pub backend: Backend,
    /// Whether quantized weights were expanded for speed.
    pub dequantized: bool,
    /// The gate's verdict and the MLX limits set for this model.
    pub admission: minibar_fit::Admission,
}

impl LoadedModel {
    /// Bytes of weights in memory.
    pub fn weight_bytes(&self) -> usize {
        self.model.weight_bytes()
    }

    /// The context length the model was trained for (4096 when it does not say).
    pub fn context_length(&self) -> i32 {
        self.model.args.context_length().unwrap_or(4096)
    }
}

/// Loads a model from a `.gguf` file or a model folder, once minibar-fit's gate admits it:
/// a model that won't fit is refused ([`EngineError::WontFit`]) unless forced, and MLX's
/// memory limits are set from the verdict before any weight is read.
pub fn load(path: &Path, options: &LoadOptions) -> Result<LoadedModel> {
    #[cfg(target_os = "linux")]
    crate::gemv_forward::ensure_linked();
    let backend = Backend::detect();
    // Buffers a model just dropped left in MLX's cache are free memory for the verdict.
    mlx_rs::memory::clear_cache()?;
    let (share, admission) = match &options.layers {
        Some(range) => {
            let of = layer_count(path)?;
            let request = minibar_fit::LoadRequest {
                share: Some(minibar_fit::Share {
                    held: range.len(),
                    of,
                }),
                ..options.memory.clone()
            };
            let share = minibar_fit::RankLayers {
                layers: range.clone(),
                of,
            };
            (Some(share), minibar_fit::admit(path, &request)?)
        }
        None => (None, minibar_fit::admit(path, &options.memory)?),
    };
    crate::memory::apply(&admission.limits)?;
    // A tensor this rank does not use is dropped unread (safetensors arrays are lazy), and a
    // shard holding none of its tensors is not even opened: a node that pulled only its own
    // layers' shards (minibar-fit's one rule, which the hub's partial pull follows) loads.
    // Tied embeddings are what config.json and the index say, else kept for `spec` to decide.
    let tied = match &share {
        Some(s) if !s.whole() && path.is_dir() => safetensors::index_names(path)?.and_then(|n| {
            let config_tie = read_args(path).ok()?.tie_word_embeddings;
            minibar_fit::embeddings_tied(config_tie, n.iter().map(String::as_str))
        }),
        _ => None,
    };
    let keep = |name: &str| share.as_ref().is_none_or(|s| s.needs(name, tied));
    let (args, map, format) = if path.is_file() {
        let g = gguf::load_only(path, &mut |_, _| {}, &keep)?;
        let args = ModelArgs::from_value(g.config, path)?;
        (args, g.tensors, Format::Gguf)
    } else if path.is_dir() {
        let args = ModelArgs::from_file(&path.join("config.json"))?;
        let mut map = safetensors::load_dir_keeping(path, &keep)?;
        map.retain(|name, _| keep(name));
        (args, map, Format::Safetensors)
    } else {
        return Err(EngineError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such model file or folder",
            ),
        });
    };
    let stored = map
        .values()
        .map(|a| a.dtype())
        .find(|d| matches!(d, Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32))
        .unwrap_or(Dtype::Float32);
    let dtype = options
        .dtype
        .unwrap_or_else(|| backend.compute_dtype(stored));
    let all = 0..args.num_hidden_layers.max(0) as usize;
    let layers = share.map_or(all, |s| s.layers);
    let model = models::build_layers(args, Tensors::new(map, path, dtype), layers)?;
    let quantized = model.args.quantization.is_some();
    let dequantize = quantized
        && match options.dequantize {
            Dequantize::Always => true,
            Dequantize::Never => false,
            // The gate predicted the memory with its own decision (minibar_fit::engine:
            // small enough dense, and still fitting the budget dense): the engine keeps to it.
            Dequantize::Auto => backend == Backend::Cpu && admission.dequantize,
        };
    let model = if dequantize {
        model.dequantize()?
    } else {
        model
    };
    // A layer at a time: fused projections are concatenated from their parts here, and one
    // evaluation of every array keeps the parts of many layers alive at once (SmolLM2 f32:
    // 58 MB above the weights, against 9 MB layer by layer).
    for group in model.array_groups() {
        mlx_rs::transforms::eval(group)?;
    }
    Ok(LoadedModel {
        model,
        path: path.to_owned(),
        format,
        backend,
        dequantized: dequantize,
        admission,
    })
}

/// The hyperparameters of the model at `path` (a GGUF file's metadata or a folder's
/// config.json), without reading a weight.
pub fn read_args(path: &Path) -> Result<ModelArgs> {
    if path.is_file() {
        ModelArgs::from_value(gguf::config(path)?, path)
    } else {
        ModelArgs::from_file(&path.join("config.json"))
    }
}

/// The number of decoder blocks of the model at `path`, from its config alone.
pub fn layer_count(path: &Path) -> Result<usize> {
    Ok(read_args(path)?.num_hidden_layers.max(0) as usize)
}
