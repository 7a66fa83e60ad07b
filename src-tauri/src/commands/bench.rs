//! The benchmark commands. The benchmark crate (minibar-bench) does not exist yet, so runs
//! cannot start and there is no history; every call says so rather than inventing figures.

use crate::types::{
    AppError, AppErrorKind, AppResult, BenchExportFormat, BenchMode, BenchRun, BenchRunSummary,
    ReferenceFigure,
};

fn unavailable() -> AppError {
    AppError::new(
        AppErrorKind::Engine,
        "The benchmark is not available yet in this build (minibar-bench is not part of it).",
    )
}

/// Starts a run, returns its id; progress as `bench-progress`, end as `bench-finished`.
#[tauri::command]
#[specta::specta]
pub async fn start_benchmark(mode: BenchMode) -> AppResult<String> {
    let _ = mode;
    Err(unavailable())
}

/// Stops a run at the next repetition.
#[tauri::command]
#[specta::specta]
pub async fn cancel_benchmark(run_id: String) -> AppResult<()> {
    Err(AppError::not_found(format!("no benchmark run {run_id}")))
}

/// The history, oldest first: empty, since no run can have happened.
#[tauri::command]
#[specta::specta]
pub async fn list_bench_runs() -> AppResult<Vec<BenchRunSummary>> {
    Ok(Vec::new())
}

/// One run with every figure.
#[tauri::command]
#[specta::specta]
pub async fn get_bench_run(id: String) -> AppResult<BenchRun> {
    Err(AppError::not_found(format!("no benchmark run {id}")))
}

/// Published Apple figures, with their sources.
#[tauri::command]
#[specta::specta]
pub async fn bench_reference() -> AppResult<Vec<ReferenceFigure>> {
    Err(unavailable())
}

/// A run as JSON, CSV or Markdown (llama-bench column names).
#[tauri::command]
#[specta::specta]
pub async fn export_bench_run(id: String, format: BenchExportFormat) -> AppResult<String> {
    let _ = format;
    Err(AppError::not_found(format!("no benchmark run {id}")))
}
