//! Saved settings (tauri-plugin-store `settings.json`, key `settings`). No secrets.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::SamplingParams;

/// Where tauri-plugin-store keeps [`Settings`]: the file.
pub const SETTINGS_FILE: &str = "settings.json";
/// Where tauri-plugin-store keeps [`Settings`]: the key.
pub const SETTINGS_KEY: &str = "settings";

/// The settings the UI edits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Variant id; null picks the smallest installed model that fits.
    pub default_model: Option<String>,
    /// Sampling defaults.
    pub sampling: SamplingParams,
    /// The system prompt of new chats.
    pub system_prompt: String,
    /// Tokens.
    pub context_length: u64,
    /// Kept free when judging fit.
    pub memory_headroom_bytes: u64,
    /// Minibar's model store (imports, quantizations); empty: `MINIBAR_HOME/models`.
    pub models_folder: String,
    /// The Hugging Face cache downloads go to; empty: `HF_HUB_CACHE`, as hf tools find it.
    pub hf_cache_folder: String,
    /// The Hugging Face endpoint.
    pub hf_endpoint: String,
    /// Start Minibar at login.
    pub launch_at_login: bool,
    /// Serve the OpenAI and Ollama APIs on this machine (loopback) while the app runs.
    pub local_server: bool,
    /// The local server's port (Ollama's by default, so Ollama's clients find it).
    pub local_server_port: u16,
    /// Variant ids the user chose to load although they won't fit ("Use anyway"); MLX's
    /// memory limit still holds them to the budget.
    pub forced_models: Vec<String>,
}

/// The local server, as Settings and the tray show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct LocalServerStatus {
    /// Serving now.
    pub running: bool,
    /// Its address while running (`http://127.0.0.1:11434`), for clients' base URL.
    pub url: Option<String>,
    /// Why the last start failed (the port is taken, no model is installed), if it did.
    pub error: Option<String>,
}

/// The model folders in use, and what an empty setting stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct LibraryFolders {
    /// Minibar's store in use.
    pub models_folder: String,
    /// The Hugging Face cache in use.
    pub hf_cache_folder: String,
    /// The store when the setting is empty.
    pub default_models_folder: String,
    /// The Hugging Face cache when the setting is empty.
    pub default_hf_cache_folder: String,
}

impl Default for Settings {
    /// What a fresh install starts with (as the UI's `DEFAULT_SETTINGS`).
    fn default() -> Self {
        Self {
            default_model: None,
            sampling: SamplingParams::default(),
            system_prompt: "You are a helpful assistant.".into(),
            context_length: 4096,
            memory_headroom_bytes: 2_000_000_000,
            models_folder: String::new(),
            hf_cache_folder: String::new(),
            hf_endpoint: "https://huggingface.co".into(),
            launch_at_login: false,
            local_server: false,
            local_server_port: 11434,
            forced_models: Vec::new(),
        }
    }
}
