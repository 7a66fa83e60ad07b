//! Everything that can stop a benchmark.

use std::path::PathBuf;

/// Errors of the benchmark suite, its history and its exports.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The engine failed (loading or running a model).
    #[error("{0}")]
    Engine(#[from] minibar_engine::EngineError),
    /// An MLX operation of the suite itself failed.
    #[error("MLX: {0}")]
    Mlx(#[from] mlx_rs::error::Exception),
    /// The user cancelled.
    #[error("benchmark cancelled")]
    Cancelled,
    /// The model would not fit in memory, so it was not run.
    #[error("{model}: needs about {needed_gb:.1} GB but only {available_gb:.1} GB is available; close other apps or pick a smaller model")]
    WontFit {
        /// The model.
        model: String,
        /// Estimated need.
        needed_gb: f64,
        /// What the machine has free.
        available_gb: f64,
    },
    /// The history database failed.
    #[error("benchmark history {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record could not be (de)serialized.
    #[error("benchmark record: {0}")]
    Format(String),
    /// A setting is out of range.
    #[error("invalid benchmark setting: {0}")]
    Invalid(String),
}

/// Result with [`BenchError`].
pub type Result<T> = std::result::Result<T, BenchError>;
