//! The settings the UI saves in tauri-plugin-store, read on the Rust side. The webview can
//! write anything there, so what Rust uses is checked here: the endpoint by minibar-hub's
//! rule (https, or http on this machine) before a download or a token goes to it, the folders
//! by `models::folders`.

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

/// The hub endpoint downloads use: `None` for the default (then `HF_ENDPOINT`, else
/// huggingface.co), else the setting once minibar-hub accepts it, so neither a download nor
/// the token goes to an address it refuses (plain http to another machine, credentials in it).
pub fn hub_endpoint(settings: &Settings) -> AppResult<Option<String>> {
    let text = settings.hf_endpoint.trim().trim_end_matches('/');
    if text.is_empty() || text == minibar_hub::DEFAULT_ENDPOINT {
        return Ok(None);
    }
    minibar_hub::validate_endpoint(text)
        .map(Some)
        .map_err(|e| AppError::invalid(format!("Settings: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_endpoint(e: &str) -> Settings {
        Settings {
            hf_endpoint: e.into(),
            ..Settings::default()
        }
    }

    #[test]
    fn the_endpoint_setting_is_checked_before_use() {
        assert_eq!(hub_endpoint(&with_endpoint("")).unwrap(), None);
        assert_eq!(
            hub_endpoint(&with_endpoint("https://huggingface.co/")).unwrap(),
            None
        );
        assert_eq!(
            hub_endpoint(&with_endpoint(" https://hf-mirror.com/ ")).unwrap(),
            Some("https://hf-mirror.com".into())
        );
        assert_eq!(
            hub_endpoint(&with_endpoint("http://127.0.0.1:8080")).unwrap(),
            Some("http://127.0.0.1:8080".into())
        );
        for bad in [
            "http://hf-mirror.com",
            "https://user:secret@hf-mirror.com",
            "file:///etc",
            "javascript:alert(1)",
        ] {
            let e = hub_endpoint(&with_endpoint(bad)).unwrap_err();
            assert!(e.message.contains("cannot be used"), "{bad}: {}", e.message);
        }
    }
}
