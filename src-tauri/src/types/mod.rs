//! The types of the UI contract: every command argument, result and event payload. The
//! TypeScript side (`ui/src/lib/bindings.ts`) is generated from these by tauri-specta.

pub mod bench;
pub mod chat;
pub mod cluster;
pub mod error;
pub mod models;
pub mod settings;

pub use bench::*;
pub use chat::*;
pub use cluster::*;
pub use error::*;
pub use models::*;
pub use settings::*;

use serde::{Deserialize, Serialize};
use specta::Type;

/// The compute backend MLX runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum ComputeBackend {
    /// Apple GPU through Metal.
    Metal,
    /// MLX's CPU backend (Linux).
    Cpu,
}

/// Versions and platform, for the About line and the bench view.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    /// The app's version.
    pub version: String,
    /// The operating system.
    pub os: String,
    /// The backend MLX runs on.
    pub backend: ComputeBackend,
    /// The MLX version the engine is built against.
    pub mlx_version: String,
}

/// The UI's routes; the shell opens windows at `index.html#/<view>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// The chat.
    Chat,
    /// The model catalog and library.
    Models,
    /// The benchmark.
    Bench,
    /// The settings.
    Settings,
}

impl View {
    /// The hash route the UI reads.
    pub fn route(self) -> &'static str {
        match self {
            View::Chat => "#/chat",
            View::Models => "#/models",
            View::Bench => "#/bench",
            View::Settings => "#/settings",
        }
    }
}
