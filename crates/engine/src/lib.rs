//! minibar-engine: MLX chat models run natively through mlx-rs (Metal on macOS, the CPU
//! backend on Linux), with no Python at run time.

pub mod backend;
pub mod batch;
pub mod cache;
pub mod config;
pub mod continuous;
pub mod convert;
pub mod cpu_attention;
pub mod error;
pub mod fused;
#[cfg(target_os = "linux")]
pub mod gemv_forward;
pub mod generate;
pub mod layers;
pub mod load;
pub mod mask;
pub mod memory;
pub mod models;
pub mod moe;
pub mod pow_exp;
pub mod quant_ops;
pub mod rope;
pub mod sample;
pub mod session;
pub mod weights;

pub use backend::Backend;
pub use error::{EngineError, Result};
pub use generate::{CancelToken, FinishReason, GenerationStats};
pub use load::{layer_count, load, read_args, Dequantize, LoadOptions, LoadedModel};
pub use minibar_text::Message;
pub use session::{ChatOutcome, ChatParams, Session};
