//! The supported architectures, one module each (as mlx-lm organises them), all built on the
//! shared decoder in `transformer`.

pub mod gemma3;
pub mod llama;
pub mod phi3;
pub mod qwen2;
pub mod qwen3;
pub mod transformer;

use crate::{config::ModelArgs, error::Result, weights::Tensors};
pub use transformer::Transformer;

/// Builds the model `args.model_type` names from its weights.
pub fn build(args: ModelArgs, tensors: Tensors) -> Result<Transformer> {
    match args.model_type.as_str() {
        "llama" | "mistral" => llama::load(args, tensors),
        "qwen2" => qwen2::load(args, tensors),
        "qwen3" => qwen3::load(args, tensors),
        "gemma3_text" | "gemma3" => gemma3::load(args, tensors),
        "phi3" => phi3::load(args, tensors),
        other => Err(crate::error::EngineError::UnsupportedArchitecture {
            path: tensors.source().to_owned(),
            model_type: other.to_owned(),
            supported: crate::config::SUPPORTED_ARCHITECTURES.join(", "),
        }),
    }
}
