//! Peak memory of running a model: weights, KV cache, prefill scratch and runtime overhead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::quant::{Dtype, Quantization};
use crate::shape::{LayerType, ModelShape};
use crate::tensors::{count_params, tensors, ParamCounts, TensorKind};
use crate::FitError;

/// How the KV cache stores keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KvFormat {
    /// The model's activation dtype (mlx-lm's default).
    #[default]
    Model,
    /// A given float dtype.
    Float {
        /// The dtype.
        dtype: Dtype,
    },
    /// mlx-lm's QuantizedKVCache: affine, scales and biases in the activation dtype.
    Quantized {
        /// Bits per element.
        bits: u8,
        /// Elements per scale.
        group: u32,
    },
}

/// What will be run: context length, batch, cache format and prefill chunk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Tokens per sequence (prompt plus generated).
    pub context: u64,
    /// Sequences run together.
    pub batch: u32,
    /// KV cache storage.
    pub kv: KvFormat,
    /// Prompt tokens processed per forward pass: Minibar's engine uses
    /// [`crate::engine::PREFILL_CHUNK`] (256), mlx-lm's `prefill_step_size` is 2048.
    pub prefill_chunk: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            context: 4096,
            batch: 1,
            kv: KvFormat::Model,
            prefill_chunk: crate::engine::PREFILL_CHUNK,
        }
    }
}

impl Workload {
    /// The default workload at another context length.
    pub fn with_context(context: u64) -> Workload {
        Workload {
            context,
            ..Workload::default()
        }
    }
}

/// What the runtime adds beyond the model's own arrays.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// Bytes the runtime holds whatever the model (allocator pools, kernels, command buffers).
    pub fixed_overhead: u64,
    /// Tokens a KV cache grows by (mlx-lm's `KVCache.step`).
    pub kv_step: u64,
    /// Whether attention runs as a fused kernel that never materializes the score matrix
    /// (MLX's Metal `scaled_dot_product_attention`); the CPU fallback materializes it.
    pub fused_attention: bool,
    /// Activation dtype; `None` follows the weights' float dtype.
    pub activation_dtype: Option<Dtype>,
    /// Float dtype the engine converts unquantized weights and quantization scales to on load;
    /// `None` keeps the checkpoint's.
    pub weight_dtype: Option<Dtype>,
    /// Copies of the `[tokens, hidden]` activations alive at the prefill peak besides the
    /// attention scores and the MLP's expansion.
    pub hidden_copies: u64,
    /// Whether quantized models small enough for [`crate::engine::cpu_dequantizes`] are
    /// expanded to dense `weight_dtype` weights on load, as Minibar's engine does on the CPU.
    #[serde(default)]
    pub cpu_dequantize: bool,
}

/// Bytes MLX on Metal holds beyond weights, cache and scratch; calibrated against mlx-lm's
/// published M4 Max peaks (crates/fit/data/mlx_lm_peaks.toml), which it reproduces within 3%.
pub const METAL_FIXED_OVERHEAD: u64 = 520_000_000;

impl Runtime {
    /// MLX on Apple silicon (Metal), as mlx-lm runs it.
    pub fn metal() -> Runtime {
        Runtime {
            fixed_overhead: METAL_FIXED_OVERHEAD,
            kv_step: 256,
            fused_attention: true,
            activation_dtype: None,
            weight_dtype: None,
            // The residual stream, its norm, the block's output and their sum.
            hidden_copies: 4,
            cpu_dequantize: false,
        }
    }

    /// MLX's CPU backend (Linux) as Minibar's engine runs it: everything in f32 (half-precision
    /// compute is 10-40x slower there), attention scores materialized, no GPU-side pools, and
    /// quantized models under [`crate::engine::CPU_DEQUANTIZE_LIMIT`] expanded to f32. Checked
    /// against the engine's measured peaks (`make bench-memory`).
    pub fn cpu() -> Runtime {
        Runtime {
            cpu_dequantize: true,
            ..Runtime::mlx_cpu()
        }
    }

    /// MLX's CPU backend with quantized weights kept as stored, as mlx-lm runs it (and the
    /// engine when told not to dequantize). Checked against mlx-lm's peaks on this machine kind
    /// (crates/fit/data/cpu_peaks.toml).
    pub fn mlx_cpu() -> Runtime {
        Runtime {
            fixed_overhead: 0,
            kv_step: 256,
            fused_attention: false,
            activation_dtype: Some(Dtype::F32),
            weight_dtype: Some(Dtype::F32),
            // Measured with Minibar's engine on SmolLM2-135M (hidden 576) and the tiny models
            // (hidden 64): 21 per token either way. MLX's CPU RoPE and attention fallbacks are
            // unfused, so q, k and their rotations, scaled copies and transposes coexist.
            hidden_copies: 21,
            cpu_dequantize: false,
        }
    }

    /// The runtime of the platform this code is built for.
    pub fn native() -> Runtime {
        if cfg!(target_os = "macos") {
            Runtime::metal()
        } else {
            Runtime::cpu()
        }
    }
}

/// Weight bytes per tensor kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeightBreakdown {
    /// Bytes per kind (kinds the model lacks left out), in [`TensorKind::ALL`] order.
    pub by_kind: BTreeMap<TensorKind, u64>,
    /// All weight bytes (tied embeddings once).
    pub total: u64,
}

/// The KV cache at the workload's context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KvBreakdown {
    /// Layers whose cache grows with the context.
    pub full_layers: u32,
    /// Layers whose cache is capped at the sliding window.
    pub sliding_layers: u32,
    /// Layers without a KV cache (linear/recurrent).
    pub stateless_layers: u32,
    /// Tokens allocated per full-attention layer (rounded up to the cache's step).
    pub full_tokens: u64,
    /// Tokens allocated per sliding layer at the peak (window plus one prefill chunk).
    pub sliding_tokens: u64,
    /// Bytes one token costs across all full-attention layers, whole batch.
    pub bytes_per_token: u64,
    /// All cache bytes.
    pub total: u64,
}

/// A memory estimate with its breakdown. Bytes throughout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Parameter counts.
    pub params: ParamCounts,
    /// Mean storage bits per parameter.
    pub bits_per_weight: f64,
    /// Weights.
    pub weights: WeightBreakdown,
    /// KV cache.
    pub kv_cache: KvBreakdown,
    /// Prefill scratch: activations of the largest layer over one chunk, and the last logits.
    pub activations: u64,
    /// The runtime's fixed overhead.
    pub overhead: u64,
    /// Predicted peak.
    pub total: u64,
    /// The workload estimated.
    pub workload: Workload,
    /// The storage the weights take in memory (`f32` when the runtime expands them).
    pub loaded_as: String,
    /// Whether the runtime expands the quantized weights to dense ones on load.
    pub dequantized: bool,
}

fn round_up(n: u64, step: u64) -> u64 {
    if step <= 1 {
        n
    } else {
        n.div_ceil(step) * step
    }
}

/// Predicts the peak memory of running `shape` stored as `quant` under `work` on `runtime`.
pub fn estimate(
    shape: &ModelShape,
    quant: &Quantization,
    work: &Workload,
    runtime: &Runtime,
) -> Result<Estimate, FitError> {
    shape.validate()?;
    quant.validate()?;
    let (loaded, dequantized) = loaded_quantization(shape, quant, runtime);
    let quant = &loaded;
    if work.context == 0 || work.batch == 0 || work.prefill_chunk == 0 {
        return Err(FitError::InvalidWorkload(
            "context, batch and prefill chunk must be positive".into(),
        ));
    }
    let ts = tensors(shape);
    let mut by_kind = BTreeMap::new();
    for kind in TensorKind::ALL {
        let bytes: u64 = ts
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| quant.tensor_bytes(t, shape.layers))
            .sum();
        if ts.iter().any(|t| t.kind == kind) {
            by_kind.insert(kind, bytes);
        }
    }
    let weights_total = by_kind.values().sum();
    let act_dtype = runtime.activation_dtype.unwrap_or(quant.dtype);
    let kv_cache = kv_cache(shape, work, runtime, act_dtype);
    let activations = activations(shape, work, runtime, act_dtype);
    let overhead = runtime.fixed_overhead;
    Ok(Estimate {
        params: count_params(shape),
        bits_per_weight: quant.mean_bits(&ts, shape.layers),
        weights: WeightBreakdown {
            by_kind,
            total: weights_total,
        },
        total: weights_total + kv_cache.total + activations + overhead,
        kv_cache,
        activations,
        overhead,
        workload: *work,
        loaded_as: quant.to_string(),
        dequantized,
    })
}

/// The storage `quant` takes once `runtime` has loaded it: floats and scales converted to the
/// runtime's weight dtype, and small quantized models expanded where the engine does that.
/// Returns it and whether it was expanded.
fn loaded_quantization(
    shape: &ModelShape,
    quant: &Quantization,
    runtime: &Runtime,
) -> (Quantization, bool) {
    let dtype = runtime.weight_dtype.unwrap_or(quant.dtype);
    if runtime.cpu_dequantize && quant.is_quantized() {
        let dense = Quantization::float(dtype);
        let dense_bytes: u64 = tensors(shape)
            .iter()
            .map(|t| dense.tensor_bytes(t, shape.layers))
            .sum();
        if crate::engine::cpu_dequantizes(dense_bytes) {
            return (dense, true);
        }
    }
    (quant.clone().with_dtype(dtype), false)
}

/// Bytes per cached element, scales included, as (numerator bits per element × 1000).
fn kv_millibits(kv: KvFormat, act: Dtype) -> u64 {
    match kv {
        KvFormat::Model => act.bits() * 1000,
        KvFormat::Float { dtype } => dtype.bits() * 1000,
        KvFormat::Quantized { bits, group } => {
            (u64::from(bits) * 1000) + 2 * act.bits() * 1000 / u64::from(group.max(1))
        }
    }
}

fn kv_cache(shape: &ModelShape, work: &Workload, rt: &Runtime, act: Dtype) -> KvBreakdown {
    let batch = u64::from(work.batch);
    let full_tokens = round_up(work.context, rt.kv_step);
    let chunk = work.prefill_chunk.min(work.context);
    // A rotating cache keeps window-1 tokens and appends a whole prefill chunk before trimming.
    let sliding_tokens = shape
        .sliding_window
        .map(|w| full_tokens.min(w.saturating_sub(1) + chunk))
        .unwrap_or(0);
    let per_token_layer = shape.kv_elements_per_token() * kv_millibits(work.kv, act);
    let (mut full, mut sliding, mut none) = (0u32, 0u32, 0u32);
    for i in 0..shape.layers {
        match shape.layer_type(i) {
            LayerType::FullAttention => full += 1,
            LayerType::SlidingAttention => sliding += 1,
            LayerType::LinearAttention => none += 1,
        }
    }
    let bits = batch
        * per_token_layer
        * (u64::from(full) * full_tokens + u64::from(sliding) * sliding_tokens);
    KvBreakdown {
        full_layers: full,
        sliding_layers: sliding,
        stateless_layers: none,
        full_tokens,
        sliding_tokens,
        bytes_per_token: (batch * per_token_layer * u64::from(full)).div_ceil(8000),
        total: bits.div_ceil(8000),
    }
}

fn activations(shape: &ModelShape, work: &Workload, rt: &Runtime, act: Dtype) -> u64 {
    let batch = u64::from(work.batch);
    let t = batch * work.prefill_chunk.min(work.context);
    let h = shape.hidden;
    let heads = u64::from(shape.heads);
    let residual = rt.hidden_copies * t * h;
    let (q, kv_out) = match &shape.mla {
        Some(m) => {
            let qh = m.qk_nope_head_dim + m.qk_rope_head_dim;
            (heads * qh, heads * (qh + m.v_head_dim))
        }
        None => {
            let d = shape.head_dim();
            (heads * d, 2 * u64::from(shape.kv_heads) * d)
        }
    };
    // Fused attention keeps its projections; unfused, they are among the hidden copies.
    let mut attention = if rt.fused_attention {
        t * (2 * q + kv_out)
    } else {
        0
    };
    // Without a fused kernel (MLX's CPU fallback) the last chunk's scores over everything it
    // attends to are materialized once: the mask and softmax reuse the buffer (MLX donates
    // it), and the causal mask is a bool per score row and column. Measured by the engine:
    // `cargo bench -p minibar --bench memory_fit`.
    let mut mask_bytes = 0;
    if !rt.fused_attention {
        let attended = match shape.sliding_window {
            Some(w)
                if (0..shape.layers).all(|i| shape.layer_type(i) != LayerType::FullAttention) =>
            {
                work.context.min(w + work.prefill_chunk)
            }
            _ => work.context,
        };
        attention += t * heads * attended;
        mask_bytes = t * attended;
    }
    let mlp = match &shape.moe {
        Some(m) => {
            let k = u64::from(m.experts_per_token);
            // SwitchGLU gathers one copy of the input per chosen expert, and one output each.
            let routed = t * k * (2 * h + 3 * m.moe_intermediate);
            let shared = 3 * t * m.moe_intermediate * u64::from(m.shared_experts);
            let dense = if m.has_dense_layers() {
                3 * t * shape.intermediate
            } else {
                0
            };
            (routed + shared).max(dense)
        }
        None => 3 * t * shape.intermediate,
    };
    let logits = batch * shape.vocab * 4;
    (residual + attention.max(mlp)) * act.bytes() + mask_bytes + logits
}

/// The largest context (up to the model's maximum) whose estimate fits `budget` bytes;
/// `None` when not even one token does.
pub fn max_context(
    shape: &ModelShape,
    quant: &Quantization,
    work: &Workload,
    runtime: &Runtime,
    budget: u64,
) -> Result<Option<u64>, FitError> {
    // Weights and overhead do not depend on the context: compute them once.
    let base = estimate(shape, quant, work, runtime)?;
    let fixed = base.weights.total + base.overhead;
    let act = runtime
        .activation_dtype
        .or(runtime.weight_dtype)
        .unwrap_or(quant.dtype);
    let at = |context: u64| -> Result<u64, FitError> {
        let w = Workload { context, ..*work };
        Ok(fixed + kv_cache(shape, &w, runtime, act).total + activations(shape, &w, runtime, act))
    };
    if at(1)? > budget {
        return Ok(None);
    }
    let (mut lo, mut hi) = (1u64, shape.max_context.max(1));
    if at(hi)? <= budget {
        return Ok(Some(hi));
    }
    // Invariant: at(lo) fits, at(hi) does not.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if at(mid)? <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo))
}
