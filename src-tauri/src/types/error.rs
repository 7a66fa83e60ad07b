//! The error every fallible command returns: a kind the UI branches on and a message it shows.

use serde::{Deserialize, Serialize};
use specta::Type;

/// The classes of failure the UI distinguishes; each has its own empty or error state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum AppErrorKind {
    /// No model is installed (or the requested one is gone).
    NoModel,
    /// The model will not fit in memory.
    ModelTooLarge,
    /// The engine failed while loading or generating.
    Engine,
    /// Network, disk or checksum failure while downloading.
    Download,
    /// A check before downloading (memory fit, disk space) found a concern: nothing was
    /// downloaded, and the user may go ahead anyway.
    NeedsConfirmation,
    /// An id (session, run, model) that does not exist.
    NotFound,
    /// A bad argument.
    InvalidInput,
    /// The user cancelled.
    Cancelled,
    /// The file system, the keychain or SQLite failed.
    Io,
}

/// What went wrong, in a form the UI can act on (`kind`) and show (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    /// The class of failure.
    pub kind: AppErrorKind,
    /// One sentence a user understands.
    pub message: String,
}

impl AppError {
    /// An error of `kind` with `message`.
    pub fn new(kind: AppErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A file system, keychain or database failure.
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(AppErrorKind::Io, message)
    }

    /// An unknown id.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(AppErrorKind::NotFound, message)
    }

    /// A bad argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(AppErrorKind::InvalidInput, message)
    }

    /// An engine failure.
    pub fn engine(message: impl Into<String>) -> Self {
        Self::new(AppErrorKind::Engine, message)
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::io(format!("chat history database: {e}"))
    }
}

/// The result type of commands.
pub type AppResult<T> = Result<T, AppError>;
