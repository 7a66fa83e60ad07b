//! App-level commands: versions, windows, links, keychain, launch at login, settings.

use tauri::{AppHandle, Runtime, State, WebviewWindow};

use crate::state::AppState;

use crate::types::{
    AppError, AppInfo, AppResult, ClusterStatus, ComputeBackend, LocalServerStatus, View,
};
use crate::{keychain, windows};

/// Versions and platform.
#[tauri::command]
#[specta::specta]
pub async fn app_info() -> AppResult<AppInfo> {
    Ok(AppInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        os: std::env::consts::OS.into(),
        backend: match minibar_engine::Backend::detect() {
            minibar_engine::Backend::Metal => ComputeBackend::Metal,
            minibar_engine::Backend::Cpu => ComputeBackend::Cpu,
        },
        mlx_version: env!("MINIBAR_MLX_VERSION").into(),
    })
}

/// What went wrong at start that the user should know (a damaged history set aside).
#[tauri::command]
#[specta::specta]
pub async fn startup_notices(state: State<'_, AppState>) -> AppResult<Vec<String>> {
    Ok(state.notices.clone())
}

/// Stores the Hugging Face token in the OS keychain; null deletes it.
#[tauri::command]
#[specta::specta]
pub async fn set_hub_token(token: Option<String>) -> AppResult<()> {
    keychain::set_token(token.as_deref())
}

/// Whether the keychain holds a token (the token itself never comes back).
#[tauri::command]
#[specta::specta]
pub async fn has_hub_token() -> AppResult<bool> {
    Ok(keychain::token()?.is_some())
}

/// Turns launch at login on or off (tauri-plugin-autostart).
#[tauri::command]
#[specta::specta]
pub async fn set_launch_at_login<R: Runtime>(app: AppHandle<R>, enabled: bool) -> AppResult<()> {
    use tauri::Manager;
    let manager = app
        .try_state::<tauri_plugin_autostart::AutoLaunchManager>()
        .ok_or_else(|| AppError::io("Launch at login is not available in this build."))?;
    let result = if enabled {
        manager.enable()
    } else {
        manager.disable()
    };
    result.map_err(|e| AppError::io(format!("cannot change launch at login: {e}")))
}

/// Turns the local server (the OpenAI and Ollama APIs on loopback) on at `port` or off;
/// the choice is saved and restored at launch.
#[tauri::command]
#[specta::specta]
pub async fn set_local_server<R: Runtime>(
    app: AppHandle<R>,
    enabled: bool,
    port: u16,
) -> AppResult<LocalServerStatus> {
    crate::local_server::set(&app, enabled, port).await
}

/// Whether the local server runs, and its address.
#[tauri::command]
#[specta::specta]
pub async fn local_server_status(
    server: State<'_, crate::local_server::LocalServer>,
) -> AppResult<LocalServerStatus> {
    Ok(server.status().await)
}

/// The UI saved settings: read them again so the next request uses them, and move the model
/// library to the chosen folders (what is already running keeps its folders).
#[tauri::command]
#[specta::specta]
pub async fn settings_changed<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> AppResult<()> {
    // Settings are read from the store on every use; reading now reports bad values early.
    let settings = crate::settings_store::load(&app)?;
    crate::settings_store::hub_endpoint(&settings)?;
    state.set_library(crate::models::folders::library_paths(&settings)?);
    Ok(())
}

/// Hides the calling window (Esc in the popover).
#[tauri::command]
#[specta::specta]
pub async fn hide_window<R: Runtime>(window: WebviewWindow<R>) -> AppResult<()> {
    window
        .hide()
        .map_err(|e| AppError::io(format!("cannot hide the window: {e}")))
}

/// Opens or focuses the large window at a view.
#[tauri::command]
#[specta::specta]
pub async fn open_view<R: Runtime>(app: AppHandle<R>, view: View) -> AppResult<()> {
    windows::show_large(&app, view)
}

/// Opens an http(s) link from a reply in the default browser.
#[tauri::command]
#[specta::specta]
pub async fn open_external<R: Runtime>(app: AppHandle<R>, url: String) -> AppResult<()> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(AppError::invalid(
            "Only http and https links can be opened.",
        ));
    }
    use tauri_plugin_opener::OpenerExt;
    app.opener()
        .open_url(url, None::<&str>)
        .map_err(|e| AppError::io(format!("cannot open the link: {e}")))
}

/// Whether a cluster (`minibar cluster up`) is up on this machine, and if so its nodes, the
/// model it holds and each node's layers; when none is, how to start one.
#[tauri::command]
#[specta::specta]
pub async fn cluster_status() -> AppResult<ClusterStatus> {
    let socket = crate::cluster::socket()?;
    // Rank 0 may take a moment to answer (it answers between jobs).
    tauri::async_runtime::spawn_blocking(move || crate::cluster::status(&socket))
        .await
        .map_err(|e| AppError::io(format!("cannot ask the cluster: {e}")))
}
