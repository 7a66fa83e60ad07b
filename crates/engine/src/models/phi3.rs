//! Phi-3 / Phi-4 (mlx-lm's `phi3.py`): the Llama layout with fused qkv and gate/up projections
//! (split at load time), partial rotation and long-rope scaling.

use super::spec::Spec;
use crate::{config::ModelArgs, error::Result};

/// Phi-3: fused projections; `partial_rotary_factor` of each head is rotated.
pub fn spec(args: &ModelArgs) -> Result<Spec> {
    let fraction = args.partial_rotary_factor.unwrap_or(1.0);
    Ok(Spec {
        fused_projections: true,
        ..Spec::llama(args, (args.head_dim() as f32 * fraction) as i32)?
    })
}
