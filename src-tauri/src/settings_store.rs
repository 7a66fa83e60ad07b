//! The settings the UI saves in tauri-plugin-store, read on the Rust side.

use tauri::{Manager, Runtime};
use tauri_plugin_store::StoreExt;

use crate::types::{AppError, AppResult, Settings, SETTINGS_FILE, SETTINGS_KEY};

/// Reads the saved settings, completed with defaults; defaults when nothing was saved.
pub fn load<R: Runtime, M: Manager<R>>(app: &M) -> AppResult<Settings> {
    let store = app
        .store(SETTINGS_FILE)
        .map_err(|e| AppError::io(format!("cannot open {SETTINGS_FILE}: {e}")))?;
    match store.get(SETTINGS_KEY) {
        None => Ok(Settings::default()),
        Some(value) => serde_json::from_value(value)
            .map_err(|e| AppError::invalid(format!("saved settings are not valid: {e}"))),
    }
}
