//! Llama (SmolLM2, Llama 3.x with llama3 rope scaling) and Mistral, which shares its layout:
//! mlx-lm's `llama.py`. The spec every other Llama-like architecture starts from.

use super::spec::Spec;
use crate::{config::ModelArgs, error::Result};

/// Llama and Mistral: the plain layout; Llama ties embeddings unless config.json says not.
pub fn spec(args: &ModelArgs) -> Result<Spec> {
    Ok(Spec {
        tied_default: Some(args.model_type == "llama"),
        ..Spec::llama(args, args.head_dim())?
    })
}
