//! Choosing the next token from logits: greedy, temperature, top-k, top-p, min-p and a
//! repetition penalty, with a seeded generator so runs are reproducible.

use mlx_rs::{ops, Array};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Sampling settings, as users of mlx-lm, Ollama and LM Studio know them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability reaches this (1 = off).
    pub top_p: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens less likely than this fraction of the most likely one (0 = off).
    pub min_p: f32,
    /// Divide (or multiply, if negative) logits of tokens seen recently (1 = off).
    pub repetition_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repetition_context: usize,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repetition_context: 64,
            seed: None,
        }
    }
}

/// A sampler with its own random state.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler for `params`; unseeded samplers seed from the clock.
    pub fn new(params: SamplingParams) -> Self {
        let rng = match params.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self { params, rng }
    }

    /// Picks the next token from `logits` (`[vocab]`, f32) given the tokens so far.
    pub fn sample(&mut self, logits: &Array, history: &[u32]) -> Result<u32> {
        let p = &self.params;
        let mut logits = logits.as_dtype(mlx_rs::Dtype::Float32)?;
        if p.repetition_penalty != 1.0 && !history.is_empty() {
            logits = penalize(&logits, history, p.repetition_penalty, p.repetition_context)?;
        }
        if p.temperature <= 0.0 {
            return Ok(ops::indexing::argmax(&logits, None)?.try_item_cast::<u32>()?);
        }
        // The filters are applied on the host: the vocabulary is small next to the model, and
        // exact cumulative sums keep top-p deterministic across backends.
        logits.eval()?;
        let values: &[f32] = logits.as_slice();
        let mut order: Vec<u32> = (0..values.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| values[b as usize].total_cmp(&values[a as usize]));
        if p.top_k > 0 {
            order.truncate(p.top_k.max(1));
        }
        let max = values[order[0] as usize];
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| (((values[i as usize] - max) / p.temperature) as f64).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);
        let mut keep = probs.len();
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p as f64;
            keep = keep.min(probs.iter().take_while(|&&x| x >= floor).count().max(1));
        }
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            let mut n = 0;
            for &x in &probs[..keep] {
                acc += x;
                n += 1;
                if acc >= p.top_p as f64 {
                    break;
                }
            }
            keep = n.max(1);
        }
        let kept: f64 = probs[..keep].iter().sum();
        let mut r = self.rng.random::<f64>() * kept;
        for (i, &x) in probs[..keep].iter().enumerate() {
            if r < x {
                return Ok(order[i]);
            }
            r -= x;
        }
        Ok(order[keep - 1])
    }
}

/// mlx-lm's repetition penalty: positive logits of recent tokens are divided by the penalty,
/// negative ones multiplied.
fn penalize(logits: &Array, history: &[u32], penalty: f32, context: usize) -> Result<Array> {
    let mut recent: Vec<u32> = history[history.len().saturating_sub(context)..].to_vec();
    recent.sort_unstable();
    recent.dedup();
    let ids = Array::from_slice(&recent, &[recent.len() as i32]);
    let selected = logits.take_axis(&ids, 0)?;
    let scaled = ops::select(
        &selected.lt(Array::from_f32(0.0))?,
        &ops::multiply(&selected, Array::from_f32(penalty))?,
        &ops::divide(&selected, Array::from_f32(penalty))?,
    )?;
    Ok(logits.put_along_axis(&ids, &scaled, 0)?)
}
