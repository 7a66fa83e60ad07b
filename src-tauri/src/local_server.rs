//! Settings' "Local server" switch: minibar-serve's server, the one `minibar serve` runs,
//! inside the app process, on loopback only (no API key needed there). Turning it on serves
//! the OpenAI and Ollama APIs on the chosen port with the default model (the saved one, else
//! the smallest installed), loaded on the first request rather than at once, so a server
//! nobody calls holds no model; other installed models (in the folders chosen in Settings)
//! load when a request names them. The
//! choice is saved in the settings store (`localServer`, `localServerPort`) and restored at
//! launch; the tray's menu shows whether it is on.

use std::net::{Ipv4Addr, SocketAddr};

use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_store::StoreExt;

use crate::models::library::{self, Installed};
use crate::state::AppState;
use crate::types::{
    AppError, AppErrorKind, AppResult, LocalServerStatus, Settings, SETTINGS_FILE, SETTINGS_KEY,
};

/// The running server, if any, and why the last start failed.
#[derive(Default)]
pub struct LocalServer {
    server: tokio::sync::Mutex<Option<minibar_serve::Server>>,
    last_error: std::sync::Mutex<Option<String>>,
}

impl LocalServer {
    /// What the UI and the tray show.
    pub async fn status(&self) -> LocalServerStatus {
        let server = self.server.lock().await;
        LocalServerStatus {
            running: server.is_some(),
            url: server.as_ref().map(|s| format!("http://{}", s.addr())),
            error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    fn set_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = error;
        }
    }
}

/// The model the server offers by default: the saved default model when installed, else the
/// smallest installed one.
fn default_model<'a>(installed: &'a [Installed], settings: &Settings) -> Option<&'a Installed> {
    settings
        .default_model
        .as_deref()
        .and_then(|id| installed.iter().find(|i| i.variant_id == id))
        .or_else(|| installed.iter().min_by_key(|i| i.size_bytes))
}

/// Starts the server on `port` (0: any free port); already running: its status.
async fn start<R: Runtime>(app: &AppHandle<R>, port: u16) -> AppResult<LocalServerStatus> {
    let local = app.state::<LocalServer>();
    let mut server = local.server.lock().await;
    if server.is_none() {
        let state = app.state::<AppState>();
        let settings = crate::settings_store::load(app)?;
        let installed = library::installed(&state.catalog, &state.library())?;
        let model = default_model(&installed, &settings).ok_or_else(|| {
            AppError::new(
                AppErrorKind::NoModel,
                "No model is installed to serve: download one in Models first.",
            )
        })?;
        // Clients name models as `minibar serve` and the library do: the library name, or
        // the file or folder name of a model offered from elsewhere.
        let name = model.library_name.clone().unwrap_or_else(|| {
            let stem = if model.path.is_file() {
                model.path.file_stem()
            } else {
                model.path.file_name()
            };
            stem.map_or_else(
                || model.variant_id.clone(),
                |s| s.to_string_lossy().into_owned(),
            )
        });
        let limits = minibar_serve::Limits {
            max_seqs: 8,
            queue: 64,
        };
        let config = minibar_serve::ServeConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            preload: false,
            library: state.library(),
            context: usize::try_from(settings.context_length).ok(),
            ..minibar_serve::ServeConfig::local(model.path.clone(), name, limits)
        };
        match minibar_serve::Server::start(config).await {
            Ok(s) => {
                *server = Some(s);
                local.set_error(None);
            }
            Err(e) => {
                let message = format!("The local server could not start: {e}.");
                local.set_error(Some(message.clone()));
                return Err(AppError::io(message));
            }
        }
    }
    drop(server);
    Ok(local.status().await)
}

/// Stops the server, waiting for open requests and for its model to unload.
async fn stop<R: Runtime>(app: &AppHandle<R>) -> AppResult<LocalServerStatus> {
    let local = app.state::<LocalServer>();
    let running = local.server.lock().await.take();
    local.set_error(None);
    if let Some(server) = running {
        server
            .stop()
            .await
            .map_err(|e| AppError::io(format!("The local server did not stop cleanly: {e}.")))?;
    }
    Ok(local.status().await)
}

/// Saves the switch and port in the settings store, leaving every other setting as it is.
fn remember<R: Runtime>(app: &AppHandle<R>, enabled: bool, port: u16) -> AppResult<()> {
    let store = app
        .store(SETTINGS_FILE)
        .map_err(|e| AppError::io(format!("cannot open {SETTINGS_FILE}: {e}")))?;
    let mut value = store
        .get(SETTINGS_KEY)
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    value["localServer"] = enabled.into();
    value["localServerPort"] = port.into();
    store.set(SETTINGS_KEY, value);
    store
        .save()
        .map_err(|e| AppError::io(format!("cannot save {SETTINGS_FILE}: {e}")))
}

/// Turns the server on (on `port`) or off, saves the choice, and shows it in the tray. A
/// start that fails saves "off", so the next launch does not fail the same way unasked.
pub async fn set<R: Runtime>(
    app: &AppHandle<R>,
    enabled: bool,
    port: u16,
) -> AppResult<LocalServerStatus> {
    let result = if enabled {
        start(app, port).await
    } else {
        stop(app).await
    };
    let on = result.as_ref().is_ok_and(|s| s.running);
    remember(app, on, port)?;
    crate::tray::show_local_server(app, &app.state::<LocalServer>().status().await);
    result
}

/// At launch: starts the server when it was left on, before the UI asks (starting binds the
/// port and starts the engine thread; no model loads until a request comes).
pub fn restore<R: Runtime>(app: &AppHandle<R>) {
    match crate::settings_store::load(app) {
        Ok(s) if s.local_server => {
            let status = tauri::async_runtime::block_on(async {
                if let Err(e) = start(app, s.local_server_port).await {
                    eprintln!("minibar: {}", e.message);
                }
                app.state::<LocalServer>().status().await
            });
            crate::tray::show_local_server(app, &status);
        }
        _ => {}
    }
}

/// Stops the server as the app exits, so its engine thread unloads before MLX's statics go;
/// a client still streaming holds the exit for a few seconds at most. Waits on a channel, not
/// `block_on`, so it is safe from whichever thread the exit event comes on.
pub fn shutdown<R: Runtime>(app: &AppHandle<R>) {
    if app.try_state::<LocalServer>().is_none() {
        return;
    }
    let (done, stopped) = std::sync::mpsc::channel();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let running = app.state::<LocalServer>().server.lock().await.take();
        if let Some(server) = running {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server.stop()).await;
        }
        let _ = done.send(());
    });
    let _ = stopped.recv_timeout(std::time::Duration::from_secs(6));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(id: &str, size: u64) -> Installed {
        Installed {
            variant_id: id.into(),
            model_id: id.into(),
            name: id.into(),
            quant: "4bit".into(),
            path: id.into(),
            size_bytes: size,
            bits_per_weight: None,
            library_name: None,
            unverified: Vec::new(),
        }
    }

    #[test]
    fn the_saved_default_model_is_served_else_the_smallest() {
        let models = [installed("big@4bit", 100), installed("small@4bit", 10)];
        let mut settings = Settings::default();
        assert_eq!(
            default_model(&models, &settings).unwrap().variant_id,
            "small@4bit"
        );
        settings.default_model = Some("big@4bit".into());
        assert_eq!(
            default_model(&models, &settings).unwrap().variant_id,
            "big@4bit"
        );
        settings.default_model = Some("gone@4bit".into());
        assert_eq!(
            default_model(&models, &settings).unwrap().variant_id,
            "small@4bit"
        );
        assert!(default_model(&[], &settings).is_none());
    }
}
