//! The crate's error type.

use std::path::PathBuf;

use crate::gguf::GgufError;

/// Why a tokenizer, template or vocabulary could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Reading GGUF metadata failed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A JSON file is malformed.
    #[error("{path} is not valid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The model folder lacks a file the tokenizer needs.
    #[error("{path} is missing; a Hugging Face model folder needs tokenizer.json")]
    MissingFile {
        /// The expected file.
        path: PathBuf,
    },
    /// The model's tokenizer metadata is inconsistent or of a kind we do not support.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A chat template failed to parse or render.
    #[error("chat template: {0}")]
    Template(String),
}

impl From<tokenizers::Error> for TextError {
    fn from(e: tokenizers::Error) -> Self {
        TextError::Tokenizer(e.to_string())
    }
}

impl From<minijinja::Error> for TextError {
    fn from(e: minijinja::Error) -> Self {
        // The alternate form includes the template source line, which is what a user needs.
        TextError::Template(format!("{e:#}"))
    }
}
