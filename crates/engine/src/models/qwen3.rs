//! Qwen 3 (dense): the Llama layout with per-head RMS norms on queries and keys.

use super::{llama, Transformer};
use crate::{config::ModelArgs, error::Result, weights::Tensors};

/// Loads a Qwen 3 model.
pub fn load(args: ModelArgs, tensors: Tensors) -> Result<Transformer> {
    let tied = args.tie_word_embeddings.unwrap_or(false);
    llama::load_with(
        args,
        tensors,
        &llama::Spec {
            qk_norm: true,
            tied_default: tied,
            rotary_fraction: 1.0,
        },
    )
}
