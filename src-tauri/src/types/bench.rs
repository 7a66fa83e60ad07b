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
    /// Logical CPU cores (the threads MLX and BLAS may use).
    pub cpu_cores: u32,
    /// Physical CPU cores (0 when the OS does not say).
    pub physical_cores: u32,
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
    /// Architecture (`llama`, `qwen3`, ...).
    pub model_type: String,
    /// Parameters.
    pub params: u64,
    /// Bits per weight on disk (the variant's quantization, tokenizer metadata included).
    pub bits_per_weight: f64,
    /// Bytes of weights in memory: what decoding reads per token, and the roofline's divisor.
    pub weight_bytes: u64,
    /// Whether quantized weights were expanded to dense ones for speed (MLX's CPU backend).
    pub dequantized: bool,
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
    /// The history's id of the run.
    pub id: String,
    /// Unix milliseconds.
    pub started_at_ms: u64,
    /// Quick or full.
    pub mode: BenchMode,
    /// The machine.
    pub machine: BenchMachine,
    /// Minibar's version.
    pub minibar_version: String,
    /// Timed repetitions per test (after one warm-up).
    pub repetitions: u32,
    /// The default model's variant id.
    pub default_model: String,
    /// The ladder.
    pub models: Vec<BenchModelResult>,
    /// Empty when the mode skipped it or the default model could not batch.
    pub batch: Vec<BatchPoint>,
    /// Tokens each sequence generated in the batch test.
    pub batch_gen_tokens: u32,
    /// Models not run, each with why (would not fit, failed to load).
    pub skipped: Vec<String>,
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
    /// Weights format (`Q4_0`, `4-bit`).
    pub quant: String,
    /// What measured it (`llama.cpp`, `mlx-lm`).
    pub engine: String,
    /// Speed.
    pub tokens_per_second: f64,
    /// Where it was published: the document's title.
    pub source: String,
    /// Where to read it.
    pub url: String,
}

/// One timed measurement, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BenchSample {
    /// Model name.
    pub model: String,
    /// Test label (`pp512`, `tg128`, `batch 4`).
    pub test: String,
    /// Tokens per second.
    pub tokens_per_second: f64,
}

/// Event `bench-progress`: sent as each step starts and with each timed sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct BenchProgress {
    /// Run id.
    pub run_id: String,
    /// Human text.
    pub step: String,
    /// Step number, from 0.
    pub step_index: u32,
    /// Steps in all.
    pub step_count: u32,
    /// 0..1 over the whole run.
    pub fraction: f64,
    /// The latest measurement of the run so far (kept across steps); null before the first.
    pub last_sample: Option<BenchSample>,
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

/// Event `bench-finished`: exactly once per run. `run` is set when `status` is `done`; its
/// `id` is the history's id, not the `run_id` that `start_benchmark` returned.
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
