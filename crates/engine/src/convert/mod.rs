//! Writing models to disk as mlx-lm folders: importing GGUF files (and, later, quantizing).

pub mod import;
pub mod quantize;
pub mod write;

pub use import::{import_gguf, ImportOptions, ImportReport};
pub use quantize::{quantize_folder, QuantizeReport, Target};
