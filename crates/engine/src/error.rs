//! The engine's errors: each says what went wrong and what the user can do about it.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A weights or metadata file is not what it claims to be (truncated, corrupt).
    #[error("{path} is not a valid {format} file ({detail}); download or convert it again")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// GGUF, safetensors, JSON...
        format: &'static str,
        /// What the reader reported.
        detail: String,
    },
    /// config.json (or GGUF metadata) lacks a key the architecture needs.
    #[error("{path}: missing key `{key}` needed by the {model_type} architecture")]
    MissingConfigKey {
        /// The config file.
        path: PathBuf,
        /// The architecture.
        model_type: String,
        /// The missing key.
        key: String,
    },
    /// A config value has the wrong type or an impossible value.
    #[error("{path}: bad value for `{key}`: {detail}")]
    BadConfigValue {
        /// The config file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Why it is wrong.
        detail: String,
    },
    /// The architecture is not one Minibar implements.
    #[error("{path}: model_type `{model_type}` is not supported (supported: {supported})")]
    UnsupportedArchitecture {
        /// The config file.
        path: PathBuf,
        /// The architecture named by the file.
        model_type: String,
        /// The ones we support.
        supported: String,
    },
    /// A tensor the architecture needs is not in the weight files.
    #[error("{path}: tensor `{name}` is missing; the weights do not match the config")]
    MissingTensor {
        /// The model folder or file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor has a shape the config does not allow.
    #[error("{path}: tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    TensorShape {
        /// The model folder or file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// What the config implies.
        expected: Vec<i32>,
        /// What the file holds.
        actual: Vec<i32>,
    },
    /// A GGUF tensor type we cannot map onto MLX.
    #[error("{path}: tensor `{name}` uses GGUF type {kind}, which Minibar cannot load (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL)")]
    UnsupportedTensorType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The GGUF type.
        kind: String,
    },
    /// The prompt does not fit the context window.
    #[error("the prompt is {prompt} tokens but the context holds {context}; shorten it, start a new chat, or raise the context length")]
    ContextOverflow {
        /// Prompt tokens.
        prompt: usize,
        /// Context length.
        context: usize,
    },
    /// Nothing to generate from.
    #[error("the prompt is empty; type a message first")]
    EmptyPrompt,
    /// Tokenizer or chat template problems.
    #[error(transparent)]
    Text(#[from] minibar_text::TextError),
    /// An error raised inside MLX.
    #[error("MLX: {0}")]
    Mlx(String),
    /// The caller cancelled the operation.
    #[error("cancelled")]
    Cancelled,
    /// A request the engine cannot carry out as asked.
    #[error("{0}")]
    InvalidRequest(String),
    /// minibar-fit's gate refused the model: it won't fit the memory, by the numbers given.
    #[error(transparent)]
    WontFit(#[from] minibar_fit::Refusal),
}

impl From<mlx_rs::error::Exception> for EngineError {
    fn from(e: mlx_rs::error::Exception) -> Self {
        EngineError::Mlx(e.what().to_string())
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl From<mlx_rs::error::ConversionError> for EngineError {
    fn from(e: mlx_rs::error::ConversionError) -> Self {
        EngineError::Mlx(e.to_string())
    }
}
