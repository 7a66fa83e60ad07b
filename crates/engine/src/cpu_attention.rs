//! Attention on MLX's CPU backend as three plain operations: a grouped matmul, a masked
//! softmax through `power` ([`pow_exp`]), and a second matmul.
//!
//! Why: on the CPU, MLX's `fast::scaled_dot_product_attention` has no fused kernel; its
//! general path takes the wheel's slow `exp` and, for one query, a slower layout. Measured
//! with mlx 0.32.2 and OpenBLAS on the 2-core development machine, 9 query heads over 3
//! key/value heads: decoding one token per sequence over 260 positions, 3.2 ms against
//! 1.9 ms per layer for 32 sequences (before the `power` softmax, which halved the softmax
//! again); prefill of 8 prompts of 128 tokens, 15.0 against 7.8 ms per layer, one prompt of
//! 512 tokens 28.4 against 14.8 ms. On Metal the fused kernel wins, so this is the CPU's
//! path only, and only for scores up to [`MAX_SCORES`] ([`use_for`]).
//!
//! Invariant: the same result as `scaled_dot_product_attention` for every query that sees at
//! least one key (grouped-query heads map to key/value head `i / (heads / kv_heads)`; a
//! boolean mask hides what is false), to float rounding; a query that sees none (a padding
//! row) gets zeros. The tests below hold the two together.

use mlx_rs::{ops, Array};

use crate::{backend::Backend, error::Result, pow_exp};

/// The most scores (queries x heads x keys, over the batch) [`attend`] takes on. Its masked
/// softmax keeps about two more score-sized buffers alive than MLX's fallback, which the
/// memory estimate (`minibar-fit`) counts once: at a 256-token chunk over 8,192 positions
/// the default model peaked 144 MB above the estimate this way. Past this size the speed-up
/// is small (2,048 positions: 518 against 455 ms a layer) and MLX's path is used instead;
/// below it the extra buffers stay under 32 MB.
pub const MAX_SCORES: usize = 4 << 20;

/// Whether a layer attends with [`attend`]: on the CPU, without attention sinks, and with at
/// most [`MAX_SCORES`] scores for queries `q` (`[B, heads, L, D]`) over `keys`
/// (`[B, kv_heads, S, D]`).
pub fn use_for(q: &Array, keys: &Array, sinks: bool) -> bool {
    let (shape, keys) = (q.shape(), keys.shape()[2]);
    let scores = [shape[0], shape[1], shape[2], keys]
        .iter()
        .map(|&n| n as usize)
        .product::<usize>();
    !sinks && scores <= MAX_SCORES && Backend::detect() == Backend::Cpu
}

/// Attention of `q` (`[B, heads, L, D]`) over `keys`/`values` (`[B, kv_heads, S, D]`) with an
/// optional boolean `mask` (`[B or 1, 1, L, S]`, true = may attend; none = every query sees
/// every key); returns `[B, heads, L, D]`.
pub fn attend(
    q: &Array,
    keys: &Array,
    values: &Array,
    scale: f32,
    mask: Option<&Array>,
) -> Result<Array> {
    let (b, heads, l, d) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let (kv, s) = (keys.shape()[1], keys.shape()[2]);
    let group = heads / kv;
    // A group's query heads are adjacent, so each group is one [group * L, D] x [D, S] product.
    let grouped = ops::multiply(q, Array::from_f32(scale))?.reshape(&[b, kv, group * l, d])?;
    let scores = ops::matmul(&grouped, &keys.swap_axes(-1, -2)?)?;
    let weights = match mask {
        Some(mask) => {
            let scores = scores.reshape(&[b, kv, group, l, s])?;
            let mask = mask.reshape(&[mask.shape()[0], 1, 1, l, s])?;
            pow_exp::softmax_masked(&scores, &mask)?.reshape(&[b, kv, group * l, s])?
        }
        None => pow_exp::softmax_last(&scores)?,
    };
    Ok(ops::matmul(&weights, values)?.reshape(&[b, heads, l, d])?)
}

#[cfg(test)]
mod tests {
    use mlx_rs::{
        fast::{scaled_dot_product_attention, ScaledDotProductAttentionMask},
        ops::indexing::IndexOp,
        random,
    };

    use super::*;

    fn largest_difference(a: &Array, b: &Array) -> f32 {
        assert_eq!(a.shape(), b.shape());
        ops::abs(ops::subtract(a, b).unwrap())
            .unwrap()
            .max(None)
            .unwrap()
            .item_cast::<f32>()
    }

    #[test]
    fn long_prefill_chunks_are_left_to_mlx() {
        let zeros = |shape: &[i32]| ops::zeros::<f32>(shape).unwrap();
        let cpu = Backend::detect() == Backend::Cpu;
        // 32 sequences decoding over 260 positions: 75k scores.
        assert_eq!(
            use_for(&zeros(&[32, 9, 1, 8]), &zeros(&[32, 3, 260, 8]), false),
            cpu
        );
        assert!(!use_for(
            &zeros(&[32, 9, 1, 8]),
            &zeros(&[32, 3, 260, 8]),
            true
        ));
        // A 256-token chunk over 8,192 positions: 18.9M scores.
        assert!(!use_for(
            &zeros(&[1, 9, 256, 8]),
            &zeros(&[1, 3, 8192, 8]),
            false
        ));
    }

    #[test]
    fn matches_the_fused_attention_with_groups_and_a_padding_mask() {
        let (b, heads, kv, s, d) = (3, 6, 2, 11, 8);
        random::seed(7).unwrap();
        let k = random::normal::<f32>(&[b, kv, s, d], None, None, None).unwrap();
        let v = random::normal::<f32>(&[b, kv, s, d], None, None, None).unwrap();
        // Row i may not see its first i positions (left padding).
        let starts = Array::from_slice(&[0i32, 1, 4], &[b, 1, 1, 1]);
        let positions = ops::arange::<_, i32>(0, s, 1)
            .unwrap()
            .reshape(&[1, 1, 1, s])
            .unwrap();
        let padding = starts.le(&positions).unwrap();
        // One query per sequence (decoding) and three (a chunk after a cached prefix).
        for l in [1, 3] {
            let q = random::normal::<f32>(&[b, heads, l, d], None, None, None).unwrap();
            let queries = ops::arange::<_, i32>(s - l, s, 1)
                .unwrap()
                .reshape(&[1, 1, l, 1])
                .unwrap();
            let causal = positions.le(&queries).unwrap();
            let both = ops::logical_and(&causal, &padding).unwrap();
            for mask in [None, Some(&causal), Some(&both)] {
                let ours = attend(&q, &k, &v, 0.35, mask).unwrap();
                let fused = match mask {
                    Some(m) => scaled_dot_product_attention(&q, &k, &v, 0.35, m, None),
                    None => scaled_dot_product_attention(&q, &k, &v, 0.35, None, None),
                }
                .unwrap();
                let diff = largest_difference(&ours, &fused);
                assert!(diff < 1e-5, "differs from the fused attention by {diff}");
            }
        }
    }

    #[test]
    fn a_prefill_matches_the_fused_causal_attention_and_padding_rows_are_zero() {
        let (b, heads, kv, l, d) = (2, 9, 3, 7, 16);
        random::seed(8).unwrap();
        let q = random::normal::<f32>(&[b, heads, l, d], None, None, None).unwrap();
        let k = random::normal::<f32>(&[b, kv, l, d], None, None, None).unwrap();
        let v = random::normal::<f32>(&[b, kv, l, d], None, None, None).unwrap();
        let positions = ops::arange::<_, i32>(0, l, 1).unwrap();
        let causal = positions
            .reshape(&[1, 1, 1, l])
            .unwrap()
            .le(positions.reshape(&[1, 1, l, 1]).unwrap())
            .unwrap();
        let ours = attend(&q, &k, &v, 0.25, Some(&causal)).unwrap();
        let fused = scaled_dot_product_attention(
            &q,
            &k,
            &v,
            0.25,
            ScaledDotProductAttentionMask::Causal,
            None,
        )
        .unwrap();
        let diff = largest_difference(&ours, &fused);
        assert!(
            diff < 1e-5,
            "differs from the fused causal attention by {diff}"
        );
        // The second sequence is padded by two: its first two queries see nothing.
        let starts = Array::from_slice(&[0i32, 2], &[b, 1, 1, 1]);
        let padded = ops::logical_and(
            &causal,
            starts
                .le(positions.reshape(&[1, 1, 1, l]).unwrap())
                .unwrap(),
        )
        .unwrap();
        let out = attend(&q, &k, &v, 0.25, Some(&padded)).unwrap();
        let hidden: Vec<f32> = out
            .index((1, .., 0..2))
            .flatten(None, None)
            .unwrap()
            .as_slice()
            .to_vec();
        assert!(hidden.iter().all(|&x| x == 0.0), "padding rows: {hidden:?}");
        assert!(!ops::is_nan(&out)
            .unwrap()
            .any(None)
            .unwrap()
            .item_cast::<bool>());
    }
}
