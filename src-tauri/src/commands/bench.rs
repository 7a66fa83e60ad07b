//! The benchmark commands, over minibar-bench (see [`crate::bench`]).

use tauri::{AppHandle, Runtime, State};

use crate::bench;
use crate::state::AppState;
use crate::types::{
    AppResult, BenchExportFormat, BenchMode, BenchRun, BenchRunSummary, ReferenceFigure,
};

/// Starts a run, returns its id; progress as `bench-progress`, end as `bench-finished`.
#[tauri::command]
#[specta::specta]
pub async fn start_benchmark<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    mode: BenchMode,
) -> AppResult<String> {
    bench::start(app, &state, mode)
}

/// Stops a run within one generation step; it ends with a `cancelled` `bench-finished`.
#[tauri::command]
#[specta::specta]
pub async fn cancel_benchmark(state: State<'_, AppState>, run_id: String) -> AppResult<()> {
    state.bench.cancel(&run_id)
}

/// The history, oldest first.
#[tauri::command]
#[specta::specta]
pub async fn list_bench_runs(state: State<'_, AppState>) -> AppResult<Vec<BenchRunSummary>> {
    bench::with_names(&state, |who| state.bench.list(who))?
}

/// One run with every figure.
#[tauri::command]
#[specta::specta]
pub async fn get_bench_run(state: State<'_, AppState>, id: String) -> AppResult<BenchRun> {
    bench::with_names(&state, |who| state.bench.get(&id, who))?
}

/// Published Apple figures, with their sources.
#[tauri::command]
#[specta::specta]
pub async fn bench_reference() -> AppResult<Vec<ReferenceFigure>> {
    bench::reference()
}

/// A run as JSON, CSV or Markdown (llama-bench column names).
#[tauri::command]
#[specta::specta]
pub async fn export_bench_run(
    state: State<'_, AppState>,
    id: String,
    format: BenchExportFormat,
) -> AppResult<String> {
    state.bench.export(&id, format)
}
