//! The Models view: catalog with fit, memory, disk, downloads, deletion, quantization.

use tauri::{AppHandle, Runtime, State};

use crate::keychain;
use crate::models::downloads::{Checks, HubTarget};
use crate::models::{catalog, folders, hub_search, library, memory, quantize, what_if};
use crate::settings_store;
use crate::state::AppState;
use crate::types::{
    AppError, AppResult, CatalogModel, DiskUsage, DownloadProgress, HubModel, LibraryFolders,
    MachineMemory, QuantizeRequest, WhatIfTable,
};

/// The catalog with fit verdicts for this machine and the saved settings.
#[tauri::command]
#[specta::specta]
pub async fn list_catalog<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> AppResult<Vec<CatalogModel>> {
    let settings = settings_store::load(&app)?;
    let installed = library::installed(&state.catalog, &state.library())?;
    let snap = minibar_fit::snapshot();
    let held = state.engine.loaded().map(|(_, b)| b).unwrap_or(0);
    let downloads = state.downloads.snapshot();
    let cluster = crate::cluster::node_memory();
    Ok(catalog::list(
        &state.catalog,
        &catalog::Context {
            settings: &settings,
            memory: &snap,
            held_by_minibar: held,
            installed: &installed,
            downloads: &downloads,
            cluster: cluster.as_deref(),
        },
    ))
}

/// Which Mac runs what: every runnable catalog model and quantization on every Mac memory
/// size, at `context` tokens and a KV cache of `kv_bits` (null: the model's dtype).
#[tauri::command]
#[specta::specta]
pub async fn what_if_table(
    state: State<'_, AppState>,
    context: u64,
    kv_bits: Option<u8>,
) -> AppResult<WhatIfTable> {
    what_if::table(&state.catalog, context, kv_bits)
}

/// One sample of `memory-update`, for the first paint.
#[tauri::command]
#[specta::specta]
pub async fn memory_status(state: State<'_, AppState>) -> AppResult<MachineMemory> {
    Ok(memory::machine_memory(
        &minibar_fit::snapshot(),
        state.engine.loaded(),
    ))
}

/// The model folders in use (Minibar's store, the Hugging Face cache) and their defaults.
#[tauri::command]
#[specta::specta]
pub async fn library_folders(state: State<'_, AppState>) -> AppResult<LibraryFolders> {
    Ok(folders::describe(&state.library()))
}

/// The models folder's size and its disk's free space.
#[tauri::command]
#[specta::specta]
pub async fn disk_usage(state: State<'_, AppState>) -> AppResult<DiskUsage> {
    let lib = minibar_hub::library::list_models(&state.library())
        .map_err(|e| AppError::io(format!("cannot read the model library: {e}")))?;
    let folder = state.library().hf_cache.clone();
    let probe = if folder.exists() {
        folder.clone()
    } else {
        state.data_dir.clone()
    };
    Ok(DiskUsage {
        folder: folder.display().to_string(),
        models_bytes: lib.total_bytes,
        free_bytes: fs4::available_space(&probe).unwrap_or(0),
        total_bytes: fs4::total_space(&probe).unwrap_or(0),
    })
}

/// Where downloads go: the hub cache; the endpoint from settings (when changed from the
/// default) or `HF_ENDPOINT`; the token from the keychain (a keychain failure is not fatal:
/// public models need no token).
fn hub_target<R: Runtime>(app: &AppHandle<R>, state: &AppState) -> AppResult<HubTarget> {
    let settings = settings_store::load(app)?;
    Ok(HubTarget {
        endpoint: settings_store::hub_endpoint(&settings)?,
        cache_dir: Some(state.library().hf_cache.clone()),
        token: keychain::token().ok().flatten(),
    })
}

/// The checks a download runs first, as `minibar pull` does (memory with the headroom
/// setting, disk); `confirmed` goes ahead despite what they find.
fn checks<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
    confirmed: Option<bool>,
) -> AppResult<Checks> {
    let settings = settings_store::load(app)?;
    Ok(Checks::new(
        settings.memory_headroom_bytes,
        confirmed.unwrap_or(false),
        state.library(),
    ))
}

/// Queues a variant; progress arrives as `download-progress`. A model that won't fit or a
/// disk too full stops it with `needs_confirmation` unless `confirmed`.
#[tauri::command]
#[specta::specta]
pub async fn start_download<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    variant_id: String,
    confirmed: Option<bool>,
) -> AppResult<DownloadProgress> {
    let repo = catalog::repo_of(&state.catalog, &variant_id)?;
    let target = hub_target(&app, &state)?;
    let checks = checks(&app, &state, confirmed)?;
    state
        .downloads
        .start(app, &variant_id, repo, target, checks)
}

/// Models on the hub matching `query` (mlx-community's first), each with its fit on this
/// machine and whether the engine runs it, judged before any download.
#[tauri::command]
#[specta::specta]
pub async fn search_hub<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    query: String,
) -> AppResult<Vec<HubModel>> {
    let settings = settings_store::load(&app)?;
    let target = hub_target(&app, &state)?;
    let snap = minibar_fit::snapshot();
    let held = state.engine.loaded().map(|(_, b)| b).unwrap_or(0);
    let downloads = state.downloads.snapshot();
    let ctx = catalog::Context {
        settings: &settings,
        memory: &snap,
        held_by_minibar: held,
        installed: &[],
        downloads: &downloads,
        cluster: None,
    };
    hub_search::search(&target, &state.catalog, &ctx, &query).await
}

/// Downloads a repository found by `search_hub`; its id is the download's id. Refused, with
/// the reason, when the engine does not run its model_type.
#[tauri::command]
#[specta::specta]
pub async fn download_repo<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    repo_id: String,
    confirmed: Option<bool>,
) -> AppResult<DownloadProgress> {
    let target = hub_target(&app, &state)?;
    hub_search::check_runnable(&target, &state.catalog, &repo_id).await?;
    let checks = checks(&app, &state, confirmed)?;
    state
        .downloads
        .start(app, &repo_id, repo_id.clone(), target, checks)
}

/// Keeps the partial file for a later resume.
#[tauri::command]
#[specta::specta]
pub async fn pause_download(state: State<'_, AppState>, variant_id: String) -> AppResult<()> {
    state.downloads.pause(&variant_id)
}

/// Continues a paused or failed download from where it stopped.
#[tauri::command]
#[specta::specta]
pub async fn resume_download<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    variant_id: String,
) -> AppResult<()> {
    let target = hub_target(&app, &state)?;
    let headroom = settings_store::load(&app)?.memory_headroom_bytes;
    state
        .downloads
        .resume(app, &variant_id, target, headroom, state.library())
}

/// Stops and deletes the partial file.
#[tauri::command]
#[specta::specta]
pub async fn cancel_download(state: State<'_, AppState>, variant_id: String) -> AppResult<()> {
    state.downloads.cancel(&variant_id)
}

/// Removes an installed variant from disk.
#[tauri::command]
#[specta::specta]
pub async fn delete_model(state: State<'_, AppState>, variant_id: String) -> AppResult<()> {
    let installed = library::installed(&state.catalog, &state.library())?;
    let item = installed
        .into_iter()
        .find(|i| i.variant_id == variant_id)
        .ok_or_else(|| AppError::not_found(format!("{variant_id} is not installed")))?;
    let name = item.library_name.ok_or_else(|| {
        AppError::invalid(format!(
            "{variant_id} comes from {} ({}), not from Minibar's library: remove it there.",
            item.path.display(),
            library::DEFAULT_MODEL_ENV
        ))
    })?;
    minibar_hub::library::remove_model(&state.library(), &name)
        .map(|_| ())
        .map_err(|e| AppError::io(format!("cannot delete {variant_id}: {e}")))
}

/// Quantizes an installed variant into a new one in Minibar's store; returns the new variant's
/// id. Progress arrives as `quantize-progress`; the new variant is installed when it says done.
#[tauri::command]
#[specta::specta]
pub async fn quantize_model<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    request: QuantizeRequest,
) -> AppResult<String> {
    quantize::start(app, &state, request)
}

/// Stops the quantization producing `variant_id`, leaving nothing behind.
#[tauri::command]
#[specta::specta]
pub async fn cancel_quantize(state: State<'_, AppState>, variant_id: String) -> AppResult<()> {
    state.quantizations.cancel(&variant_id)
}
