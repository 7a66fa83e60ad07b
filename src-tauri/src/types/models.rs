//! Memory, fit verdicts, the catalog, downloads and quantization.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::AppError;

/// The verdict of the memory estimator for one model at one quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum FitVerdict {
    /// Fits with room to spare.
    Fits,
    /// Fits, barely.
    Tight,
    /// Does not fit.
    WontFit,
}

/// Where the bytes of a model would go, against this machine's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MemoryBreakdown {
    /// Quantized weights, tied embeddings counted once.
    pub weights_bytes: u64,
    /// KV cache at the configured context length.
    pub kv_cache_bytes: u64,
    /// Activations, prefill scratch and runtime overhead.
    pub overhead_bytes: u64,
    /// Memory already in use on the machine.
    pub in_use_bytes: u64,
    /// The budget the verdict is judged against.
    pub budget_bytes: u64,
}

/// What "fits comfortably" asked for: the memory kept free besides the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct FitThresholds {
    /// Share of the budget kept free.
    pub comfort_margin: f64,
    /// Bytes kept free whatever the share (the memory-headroom setting).
    pub headroom_bytes: u64,
}

/// The estimator's answer for one model variant on this machine, decided by minibar-fit's
/// `assess`; the UI shows it and does not judge again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct FitReport {
    /// The verdict.
    pub verdict: FitVerdict,
    /// One sentence a user understands.
    pub reason: String,
    /// What a model may use minus what this one needs; negative when it won't fit.
    pub headroom_bytes: i64,
    /// Largest context length that still fits, in tokens (0: unknown, or none).
    pub max_context: u64,
    /// Bytes this model needs (weights, KV cache, activations, runtime).
    pub needed_bytes: u64,
    /// Bytes a model may use here now.
    pub usable_bytes: u64,
    /// The most a model may need and still fit comfortably.
    pub comfortable_bytes: u64,
    /// The thresholds the verdict was judged by.
    pub thresholds: FitThresholds,
    /// Where the bytes go.
    pub breakdown: MemoryBreakdown,
    /// When it won't fit here: whether it fits across the running cluster's nodes (null when
    /// it fits here, no cluster is up, or it fits there neither).
    pub across: Option<super::AcrossNodes>,
}

/// How hard the machine is pressed for memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum MemoryPressure {
    /// Plenty free.
    Normal,
    /// Getting low.
    Warning,
    /// Swapping or about to.
    Critical,
}

/// This machine's memory, sent every second as `memory-update` and by `memory_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MachineMemory {
    /// Installed memory.
    pub total_bytes: u64,
    /// Free for new allocations.
    pub available_bytes: u64,
    /// Used by everything on the machine, Minibar included.
    pub used_bytes: u64,
    /// Swap in use.
    pub swap_used_bytes: u64,
    /// The pressure level.
    pub pressure: MemoryPressure,
    /// Metal's recommendedMaxWorkingSetSize on macOS; null where the platform has none.
    pub gpu_limit_bytes: Option<u64>,
    /// Held by models Minibar has loaded (measured by the engine).
    pub minibar_model_bytes: u64,
    /// Variant id of the loaded model, if any.
    pub loaded_model: Option<String>,
    /// When this sample was taken (Unix milliseconds).
    pub timestamp_ms: u64,
}

/// Payload of `memory-update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(transparent)]
pub struct MemoryUpdate(pub MachineMemory);

/// The state machine of a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    /// Waiting its turn.
    Queued,
    /// Bytes are arriving.
    Downloading,
    /// Stopped; the partial file is kept.
    Paused,
    /// Checking sizes and hashes.
    Verifying,
    /// Installed.
    Done,
    /// Failed; can be resumed.
    Failed,
    /// Stopped and removed.
    Cancelled,
}

/// A download's progress; event `download-progress`, a few times a second per download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct DownloadProgress {
    /// The variant.
    pub variant_id: String,
    /// Where it is.
    pub state: DownloadState,
    /// Bytes on disk.
    pub downloaded_bytes: u64,
    /// Bytes in all; null until the hub has said (never a made-up 0).
    pub total_bytes: Option<u64>,
    /// Smoothed over the last few seconds; 0 when paused.
    pub bytes_per_second: f64,
    /// null when unknown (paused, stalled, just started).
    pub eta_seconds: Option<f64>,
    /// Why it failed.
    pub error: Option<AppError>,
}

/// One quantization of a catalog model. `id` is `<modelId>@<quant>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ModelVariant {
    /// `<modelId>@<quant>`.
    pub id: String,
    /// The catalog model.
    pub model_id: String,
    /// Short label: `f32`, `bf16`, `4bit`, `q4_1`...
    pub quant: String,
    /// Effective bits per weight including scales.
    pub bits_per_weight: f64,
    /// Download size.
    pub size_bytes: u64,
    /// Whether it fits this machine.
    pub fit: FitReport,
    /// Whether it is on disk.
    pub installed: bool,
    /// Installed files accepted on their size alone (the hub gave no hash to check them
    /// against); empty when every file was hash-checked or nothing is installed.
    pub unverified_files: Vec<String>,
    /// The running or last download of this variant; null when none.
    pub download: Option<DownloadProgress>,
}

/// A model of the curated catalog with its quantizations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct CatalogModel {
    /// Catalog id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Model family.
    pub family: String,
    /// Parameters in billions.
    pub params_b: f64,
    /// One line about it.
    pub description: String,
    /// Trained context length in tokens.
    pub context_length: u64,
    /// Whether Minibar's engine runs it (its table of architectures decides).
    pub support: ModelSupport,
    /// Its quantizations.
    pub variants: Vec<ModelVariant>,
}

/// Whether Minibar's engine runs a model; one it does not is shown "not supported yet" and
/// cannot be downloaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ModelSupport {
    /// The engine runs its architecture.
    pub runs: bool,
    /// Why not, when it does not.
    pub reason: Option<String>,
}

/// Quantize an installed variant into a new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct QuantizeRequest {
    /// The installed variant to start from.
    pub source_variant_id: String,
    /// 2, 3, 4, 5, 6 or 8.
    pub bits: u8,
    /// 32, 64 or 128.
    pub group_size: u32,
}

/// A quantization job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum QuantizeState {
    /// Working.
    Running,
    /// Finished.
    Done,
    /// Failed.
    Failed,
    /// Stopped by `cancel_quantize`; nothing was left behind.
    Cancelled,
}

/// A quantization job's progress; event `quantize-progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(rename_all = "camelCase")]
pub struct QuantizeProgress {
    /// The variant being produced.
    pub variant_id: String,
    /// The variant it comes from.
    pub source_variant_id: String,
    /// Where it is.
    pub state: QuantizeState,
    /// 0..1.
    pub fraction: f64,
    /// What it is doing, for display.
    pub step: String,
    /// Why it failed.
    pub error: Option<AppError>,
}

/// The models folder and its disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct DiskUsage {
    /// The folder.
    pub folder: String,
    /// Bytes of models in it.
    pub models_bytes: u64,
    /// Free bytes on its disk.
    pub free_bytes: u64,
    /// Size of its disk.
    pub total_bytes: u64,
}

/// "Which Mac runs what": the catalog's runnable models on every Mac memory size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfTable {
    /// Context length judged, in tokens.
    pub context: u64,
    /// KV cache bits; null for the model's own dtype.
    pub kv_bits: Option<u8>,
    /// The columns: unified memory in GB (2^30 bytes), smallest first.
    pub sizes_gb: Vec<u64>,
    /// The thresholds every cell was judged by.
    pub thresholds: FitThresholds,
    /// One row per model and quantization.
    pub rows: Vec<WhatIfRow>,
}

/// One model format across the Mac sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfRow {
    /// Catalog id.
    pub model_id: String,
    /// Display name.
    pub name: String,
    /// Quantization.
    pub quant: String,
    /// Parameters in billions.
    pub params_b: f64,
    /// Bytes it needs at the table's context.
    pub needed_bytes: u64,
    /// One cell per size, in `sizesGb` order.
    pub cells: Vec<WhatIfCell>,
}

/// One model format on one Mac size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct WhatIfCell {
    /// Unified memory, GB.
    pub ram_gb: u64,
    /// The verdict.
    pub verdict: FitVerdict,
    /// Largest context that fits, in tokens (0: none).
    pub max_context: u64,
}

/// A model found on the hub, judged before any download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct HubModel {
    /// `org/name`; also the id of its download.
    pub repo_id: String,
    /// Downloads the hub reports.
    pub downloads: u64,
    /// Weight formats its tags name (`mlx`, `safetensors`, `gguf`).
    pub formats: Vec<String>,
    /// `model_type` from its config.json.
    pub model_type: Option<String>,
    /// Bytes of the weight files a download fetches.
    pub weights_bytes: Option<u64>,
    /// Whether Minibar's engine runs it.
    pub support: ModelSupport,
    /// The fit on this machine (null when its config.json is not a model Minibar can size).
    pub fit: Option<FitReport>,
    /// Why it could not be looked at (no weights Minibar downloads by default, ...).
    pub note: Option<String>,
}
