//! Qwen 2 / 2.5: the Llama layout with biases on the query, key and value projections
//! (picked up from the weights).

use super::{llama, Transformer};
use crate::{config::ModelArgs, error::Result, weights::Tensors};

/// Loads a Qwen 2 model.
pub fn load(args: ModelArgs, tensors: Tensors) -> Result<Transformer> {
    let tied = args.tie_word_embeddings.unwrap_or(false);
    llama::load_with(
        args,
        tensors,
        &llama::Spec {
            qk_norm: false,
            tied_default: tied,
            rotary_fraction: 1.0,
        },
    )
}
