//! Several sequences decoded together (left-padded, masked), greedy: the basis of the
//! benchmark's batch scaling and of serving concurrent requests.

use std::time::{Duration, Instant};

use mlx_rs::{ops, ops::indexing::IndexOp, Array};

use crate::{
    cache::KvCache,
    error::{EngineError, Result},
    generate::CancelToken,
    models::Transformer,
};

/// The tokens each sequence produced and how long the two phases took.
#[derive(Debug, Clone)]
pub struct BatchOutput {
    /// Generated tokens, one list per prompt, in prompt order.
    pub tokens: Vec<Vec<u32>>,
    /// Time of the batched prompt pass (including the first token).
    pub prefill_time: Duration,
    /// Time of the remaining `max_tokens - 1` batched decode steps.
    pub decode_time: Duration,
}

/// Greedily generates `max_tokens` tokens for every prompt at once. Prompts of different
/// lengths are left-padded; padded positions are masked, so each sequence gets the tokens it
/// would get alone. EOS is ignored (benchmark semantics).
pub fn generate_batch(
    model: &Transformer,
    prompts: &[Vec<u32>],
    max_tokens: usize,
    cancel: &CancelToken,
) -> Result<BatchOutput> {
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(EngineError::EmptyPrompt);
    }
    if max_tokens == 0 {
        return Err(EngineError::InvalidRequest(
            "a batch must generate at least one token".into(),
        ));
    }
    let b = prompts.len();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(b * longest);
    let mut pads = Vec::with_capacity(b);
    for p in prompts {
        let pad = longest - p.len();
        pads.push(pad as i32);
        ids.extend(std::iter::repeat_n(0u32, pad));
        ids.extend_from_slice(p);
    }
    let any_padding = pads.iter().any(|&p| p > 0);
    let pad_array = Array::from_slice(&pads, &[b as i32]);
    let padding = any_padding.then_some(&pad_array);
    let mut caches = model.make_caches();
    let mut tokens: Vec<Vec<u32>> = vec![Vec::with_capacity(max_tokens); b];

    let start = Instant::now();
    let input = Array::from_slice(&ids, &[b as i32, longest as i32]);
    let h = model.hidden(&input, &mut caches, padding)?;
    // Only the last position's logits are needed: projecting every position onto the
    // vocabulary would cost B·L·vocab floats.
    let logits = model.logits(&h.index((.., -1.., ..)))?;
    let mut next = greedy(&logits, &caches)?;
    push(&mut tokens, &next);
    let prefill_time = start.elapsed();

    let start = Instant::now();
    for _ in 1..max_tokens {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let input = Array::from_slice(&next, &[b as i32, 1]);
        let logits = model.forward(&input, &mut caches, padding)?;
        next = greedy(&logits, &caches)?;
        push(&mut tokens, &next);
    }
    Ok(BatchOutput {
        tokens,
        prefill_time,
        decode_time: start.elapsed(),
    })
}

/// The argmax token of each row of `[B, 1, vocab]` logits, evaluating the caches with it.
fn greedy(logits: &Array, caches: &[KvCache]) -> Result<Vec<u32>> {
    let ids = ops::indexing::argmax_axis(logits, -1, false)?.reshape(&[-1])?;
    let mut eval: Vec<&Array> = vec![&ids];
    eval.extend(caches.iter().flat_map(KvCache::arrays));
    mlx_rs::transforms::eval(eval)?;
    let ids = ids.as_type::<u32>()?;
    Ok(ids.as_slice::<u32>().to_vec())
}

fn push(tokens: &mut [Vec<u32>], next: &[u32]) {
    for (seq, &t) in tokens.iter_mut().zip(next) {
        seq.push(t);
    }
}
