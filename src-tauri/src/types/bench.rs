//! The benchmark's runs, results and events.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::{AppError, ComputeBackend};

/// Quick runs in under a minute; full runs the whole ladder with depth and batch scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum BenchMode {
    /// Under a minute.
    Quick,
    /// The whole ladder.
    Full,
}

/// Mean ± standard deviation over `n` repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Repetitions.
    pub n: u32,
}

/// The machine a run was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BenchMachine {
    /// Chip or CPU name.
    pub chip: String,
    /// CPU cores.
    pub cpu_cores: u32,
    /// GPU cores where known.
    pub gpu_cores: Option<u32>,
    /// Installed memory.
    pub memory_bytes: u64,
    /// Operating system.
    pub os: String,
    /// MLX version.
    pub mlx_version: String,
    /// Backend.
    pub backend: ComputeBackend,
    /// Measured copy/triad bandwidth.
    #[serde(rename = "bandwidthGBs")]
    pub bandwidth_gbs: f64,
}

/// One model of the ladder. Speeds in tokens per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BenchModelResult {
    /// The variant.
    pub variant_id: String,
    /// Display name.
    pub name: String,
    /// Effective bits per weight.
    pub bits_per_weight: f64,
    /// Prompt processing, 512 tokens.
    pub pp512: Stat,
    /// Generation, 128 tokens.
    pub tg128: Stat,
    /// tg128 after a 4096-token prompt; null where the model's context is shorter.
    pub tg_depth4096: Option<Stat>,
    /// Time to first token.
    pub ttft_ms: Stat,
    /// Peak memory.
    pub peak_memory_bytes: u64,
    /// bandwidth ÷ bytes read per token.
    pub roofline_tps: f64,
    /// tg128 mean ÷ roofline, 0..1.
    pub efficiency: f64,
}

/// One batch size of the scaling test on the default model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BatchPoint {
    /// Sequences.
    pub batch: u32,
    /// Total generated tokens per second over all sequences.
    pub total_tps: f64,
    /// Wall time.
    pub wall_seconds: f64,
    /// wall time ÷ wall time at batch 1.
    pub time_ratio: f64,
    /// work ÷ work at batch 1.
    pub work_ratio: f64,
}

/// A finished benchmark run as stored in history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BenchRun {
    /// Run id.
    pub id: String,
    /// Unix milliseconds.
    pub started_at_ms: u64,
    /// Unix milliseconds.
    pub finished_at_ms: u64,
    /// Quick or full.
    pub mode: BenchMode,
    /// The machine.
    pub machine: BenchMachine,
    /// The default model's variant id.
    pub default_model: String,
    /// The ladder.
    pub models: Vec<BenchModelResult>,
    /// Empty when the mode skipped it or the default model could not batch.
    pub batch: Vec<BatchPoint>,
}

/// A row of the history list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BenchRunSummary {
    /// Run id.
    pub id: String,
    /// Unix milliseconds.
    pub started_at_ms: u64,
    /// Quick or full.
    pub mode: BenchMode,
    /// Chip.
    pub chip: String,
    /// The default model.
    pub default_model: String,
    /// The default model's pp512.
    pub pp512: f64,
    /// The default model's tg128.
    pub tg128: f64,
}

/// A metric of the published figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum BenchMetric {
    /// Prompt processing, 512 tokens.
    #[serde(rename = "pp512")]
    Pp512,
    /// Generation, 128 tokens.
    #[serde(rename = "tg128")]
    Tg128,
    /// Prompt processing, 2048 tokens.
    #[serde(rename = "pp2048")]
    Pp2048,
}

/// A published figure to compare against, with its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceFigure {
    /// Chip.
    pub chip: String,
    /// Model.
    pub model: String,
    /// Metric.
    pub metric: BenchMetric,
    /// Speed.
    pub tokens_per_second: f64,
    /// Where it was published.
    pub source: String,
}

/// Event `bench-progress`: sent as each step starts and finishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct BenchProgress {
    /// Run id.
    pub run_id: String,
    /// Human text.
    pub step: String,
    /// Step number.
    pub step_index: u32,
    /// Steps in all.
    pub step_count: u32,
    /// 0..1 over the whole run.
    pub fraction: f64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum BenchStatus {
    /// Completed.
    Done,
    /// Cancelled.
    Cancelled,
    /// Failed.
    Failed,
}

/// Event `bench-finished`: exactly once per run. `run` is set when `status` is `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct BenchFinished {
    /// Run id.
    pub run_id: String,
    /// How it ended.
    pub status: BenchStatus,
    /// The run, when done.
    pub run: Option<BenchRun>,
    /// Why it failed.
    pub error: Option<AppError>,
}

/// Export formats with llama-bench-compatible column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum BenchExportFormat {
    /// JSON.
    Json,
    /// CSV.
    Csv,
    /// Markdown table.
    Markdown,
}
