//! Qwen 3, dense (mlx-lm's `qwen3.py`): the Llama layout with per-head RMS norms on queries and
//! keys.

use super::spec::Spec;
use crate::{config::ModelArgs, error::Result};

/// Qwen 3: per-head query and key norms.
pub fn spec(args: &ModelArgs) -> Result<Spec> {
    Ok(Spec {
        qk_norm: true,
        ..Spec::llama(args, args.head_dim())?
    })
}
