//! minibar-fit: how much unified memory a model needs (weights, KV cache, scratch, runtime),
//! how much this machine has, and which models fit. No MLX dependency: the engine reports its
//! measured memory and the GPU limit in, and the same numbers serve the CLI and the app.
//!
//! Map: [`assess`] is the one verdict (fits / tight / won't fit, largest context, thresholds);
//! [`admit`] is the gate before every load (refuse, or admit with MLX's memory limits), and
//! [`ForcedModels`] the models a user loads anyway; [`fits_across`] judges a model split over
//! several nodes, by the pipeline's one split rule [`split_layers`], and [`RankLayers`] which
//! tensors (so which shards) one rank of such a split reads;
//! [`gguf`] reads what a GGUF's weights take once loaded from its tensor table;
//! [`estimate`] predicts a peak from a [`ModelShape`], a [`Quantization`], a [`Workload`] and a
//! [`Runtime`]; [`engine`] holds the engine's load decisions both sides share; [`Budget`] is
//! what a model may use here or on a what-if Mac; [`fit_table`] and [`what_if_table`] judge
//! many candidates at once.

pub mod admit;
pub mod assess;
pub mod cluster;
pub mod engine;
pub mod estimate;
pub mod forced;
pub mod gguf;
pub mod hf_config;
pub mod machine;
pub mod quant;
pub mod rank_tensors;
pub mod shape;
pub mod table;
pub mod tensors;
pub mod validate;
pub mod verdict;
pub mod watch;
pub mod what_if;

pub use admit::{
    admit, judge_share, model_name, Admission, LoadRequest, MemoryLimits, Refusal, Share,
};
pub use assess::{
    assess, assess_bytes, assess_gguf, Assessment, GgufAssessment, Thresholds, Verdict,
    COMFORT_MARGIN,
};
pub use cluster::{fits_across, split_layers, ClusterFit};
pub use estimate::{
    estimate, max_context, Estimate, KvBreakdown, KvFormat, Runtime, WeightBreakdown, Workload,
};
pub use forced::{model_key, ForcedModels};
pub use gguf::{GgufLoad, GgufWeights};
pub use hf_config::model_from_config;
pub use machine::{default_gpu_working_set, snapshot, MemorySampler, MemorySnapshot, Pressure};
pub use quant::{Dtype, MixedRecipe, PathOverride, QuantMode, QuantSpec, Quantization};
pub use rank_tensors::{
    block_index, embeddings_tied, AbsentFile, LayersHeld, RankLayers, LAYERS_HELD_FILE,
};
pub use shape::{AttentionBias, LayerType, MlaShape, ModelShape, MoeShape};
pub use table::{fit_row, fit_table, size_class, Candidate, FitRow};
pub use tensors::{count_params, tensors, ParamCounts, Tensor, TensorKind};
pub use validate::{comparison_table, within_tolerance, Comparison};
pub use verdict::{gb, Budget, BudgetSource, FitLevel};
pub use watch::{watch, Watch};
pub use what_if::{what_if_table, WhatIfCell, WhatIfRow, MAC_MEMORY_SIZES_GB};

/// Everything that can go wrong estimating.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The architecture is not one this crate can enumerate.
    #[error("unknown model_type `{0}` (known: llama, mistral, qwen2, qwen3, qwen3_moe, gemma3, gemma3_text, phi3, gpt_oss, deepseek_v2, deepseek_v3)")]
    UnknownModelType(String),
    /// config.json lacks a field the architecture needs.
    #[error("config.json of this {model_type} model has no `{key}`")]
    MissingConfigKey {
        /// The architecture.
        model_type: String,
        /// The missing key.
        key: String,
    },
    /// config.json is malformed.
    #[error("{0}")]
    InvalidConfig(String),
    /// A shape field is out of range.
    #[error("invalid model shape: `{field}` {reason}")]
    InvalidShape {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// A quantization MLX does not implement.
    #[error("invalid quantization: {0}")]
    InvalidQuantization(String),
    /// A workload with a zero dimension.
    #[error("invalid workload: {0}")]
    InvalidWorkload(String),
}
