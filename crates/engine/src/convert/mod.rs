//! Writing models to disk as mlx-lm folders: importing GGUF files, quantizing (affine,
//! micro-scaling formats, mixed-precision recipes) and dequantizing.

pub mod import;
pub mod quantize;
pub mod recipe;
pub mod write;

pub use import::{import_gguf, import_gguf_with_progress, ImportOptions, ImportReport};
pub use quantize::{quantize_folder, QuantizeReport, Target};
pub use recipe::{MixedPlan, Recipe};
pub use write::remove_stale;
