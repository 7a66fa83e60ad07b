//! Attention for one new token per sequence on MLX's CPU backend, as three plain operations.
//!
//! Why: decoding asks attention for a single query per sequence. On the CPU, MLX's
//! `fast::scaled_dot_product_attention` has no fused kernel and takes a general path that
//! costs about 1.6x a grouped matmul, a softmax and a second matmul (measured with mlx 0.32.2
//! and OpenBLAS on the 2-core development machine, 9 query heads over 3 key/value heads,
//! 260 positions: 3.2 ms against 1.9 ms per layer for 32 sequences, 0.77 against 0.49 ms
//! for 8, 0.16 against 0.13 ms for one). At 32 concurrent streams attention was the largest
//! cost of a decode step after the projections. On Metal the fused kernel wins, so this is
//! the CPU's path only ([`use_for`]).
//!
//! Invariant: the same result as `scaled_dot_product_attention` (grouped-query heads map to
//! key/value head `i / (heads / kv_heads)`; a boolean mask hides what is false), to float
//! rounding; the test below holds the two together.

use mlx_rs::{ops, Array};

use crate::{backend::Backend, error::Result, pow_exp};

/// Whether a layer attends with [`attend`]: one query per sequence, no attention sinks,
/// on the CPU.
pub fn use_for(queries: i32, sinks: bool) -> bool {
    queries == 1 && !sinks && Backend::detect() == Backend::Cpu
}

/// Attention of `q` (`[B, heads, 1, D]`) over `keys`/`values` (`[B, kv_heads, S, D]`) with an
/// optional boolean `mask` (`[B or 1, 1, 1, S]`, true = may attend); returns `[B, heads, 1, D]`.
pub fn attend(
    q: &Array,
    keys: &Array,
    values: &Array,
    scale: f32,
    mask: Option<&Array>,
) -> Result<Array> {
    let (b, heads, d) = (q.shape()[0], q.shape()[1], q.shape()[3]);
    let kv = keys.shape()[1];
    // A group's query heads are adjacent, so each group is one [heads/kv, D] x [D, S] product.
    let grouped = ops::multiply(q, Array::from_f32(scale))?.reshape(&[b, kv, heads / kv, d])?;
    let mut scores = ops::matmul(&grouped, &keys.swap_axes(-1, -2)?)?;
    if let Some(mask) = mask {
        let hidden = Array::from_f32(f32::MIN);
        scores = ops::select(mask, &scores, &hidden)?;
    }
    let weights = pow_exp::softmax_last(&scores)?;
    Ok(ops::matmul(&weights, values)?.reshape(&[b, heads, 1, d])?)
}

#[cfg(test)]
mod tests {
    use mlx_rs::{fast::scaled_dot_product_attention, random};

    use super::*;

    #[test]
    fn matches_the_fused_attention_with_groups_and_a_padding_mask() {
        let (b, heads, kv, s, d) = (3, 6, 2, 11, 8);
        random::seed(7).unwrap();
        let q = random::normal::<f32>(&[b, heads, 1, d], None, None, None).unwrap();
        let k = random::normal::<f32>(&[b, kv, s, d], None, None, None).unwrap();
        let v = random::normal::<f32>(&[b, kv, s, d], None, None, None).unwrap();
        // Row i may not see its first i positions (left padding).
        let starts = Array::from_slice(&[0i32, 1, 4], &[b, 1, 1, 1]);
        let positions = ops::arange::<_, i32>(0, s, 1)
            .unwrap()
            .reshape(&[1, 1, 1, s])
            .unwrap();
        let mask = starts.le(&positions).unwrap();
        for mask in [None, Some(&mask)] {
            let ours = attend(&q, &k, &v, 0.35, mask).unwrap();
            let fused = match mask {
                Some(m) => scaled_dot_product_attention(&q, &k, &v, 0.35, m, None),
                None => scaled_dot_product_attention(&q, &k, &v, 0.35, None, None),
            }
            .unwrap();
            assert_eq!(ours.shape(), fused.shape());
            let diff = ops::abs(ops::subtract(&ours, &fused).unwrap())
                .unwrap()
                .max(None)
                .unwrap()
                .item_cast::<f32>();
            assert!(diff < 1e-5, "differs from the fused attention by {diff}");
        }
    }
}
