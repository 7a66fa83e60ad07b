//! Qwen 2 / 2.5 (mlx-lm's `qwen2.py`): the Llama layout with biases on the query, key and value
//! projections (picked up from the weights).

use super::spec::Spec;
use crate::{config::ModelArgs, error::Result};

/// Qwen 2: the Llama layout.
pub fn spec(args: &ModelArgs) -> Result<Spec> {
    Spec::llama(args, args.head_dim())
}
