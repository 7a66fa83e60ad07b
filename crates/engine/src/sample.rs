//! Choosing the next token from logits: greedy, temperature, top-k, top-p, min-p and a
//! repetition penalty, with a seeded generator so runs are reproducible.
//!
//! The semantics are mlx-lm's (`sample_utils.py`), checked against it by
//! `tests/reference_sampling.rs`: the repetition penalty changes the logits first; top-p, min-p
//! and top-k then each choose a set of tokens from the *untempered* distribution (temperature
//! 1), and the kept set is what all three keep; the temperature only reshapes the
//! probabilities among the kept tokens. Top-p and min-p compare values, so tokens tied with the
//! last one kept are kept too.

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
    /// Keep the most likely tokens until their probability reaches this (off unless in (0, 1)).
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

/// The distribution the next token is drawn from: the kept tokens, most likely first, and
/// their probabilities, which sum to one.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Probability of each token in `tokens`.
    pub probs: Vec<f64>,
}

/// A sampler with its own random state.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler for `params`; unseeded samplers seed from the operating system.
    pub fn new(params: SamplingParams) -> Self {
        let rng = match params.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self { params, rng }
    }

    /// Whether the next token is simply the top logit (greedy, no penalty), so a caller
    /// decoding many sequences can take every such row's argmax in one evaluation.
    pub fn is_argmax(&self, history: &[u32]) -> bool {
        self.params.temperature <= 0.0 && !self.penalizes(history)
    }

    /// Picks the next token from `logits` (`[vocab]`) given the tokens so far.
    pub fn sample(&mut self, logits: &Array, history: &[u32]) -> Result<u32> {
        if self.is_argmax(history) {
            // Greedy without a penalty needs one number back from the device, not the vocabulary.
            return Ok(ops::indexing::argmax(logits, None)?.try_item_cast::<u32>()?);
        }
        let d = self.distribution(logits, history)?;
        Ok(self.draw(&d))
    }

    /// The filtered, tempered distribution `sample` draws from (one token, for greedy).
    pub fn distribution(&self, logits: &Array, history: &[u32]) -> Result<Distribution> {
        let logits = logits.as_dtype(mlx_rs::Dtype::Float32)?;
        logits.eval()?;
        // A NaN logit (a broken model) must not sort above every real one.
        let mut values: Vec<f32> = logits
            .as_slice::<f32>()
            .iter()
            .map(|&x| if x.is_nan() { f32::NEG_INFINITY } else { x })
            .collect();
        if self.penalizes(history) {
            let p = &self.params;
            penalize(
                &mut values,
                history,
                p.repetition_penalty,
                p.repetition_context,
            );
        }
        Ok(filter(&values, &self.params))
    }

    /// Draws a token from `d` with this sampler's random state.
    pub fn draw(&mut self, d: &Distribution) -> u32 {
        let total: f64 = d.probs.iter().sum();
        let mut r = self.rng.random::<f64>() * total;
        for (&t, &p) in d.tokens.iter().zip(&d.probs) {
            if r < p {
                return t;
            }
            r -= p;
        }
        // Rounding left `r` just above the last probability.
        *d.tokens
            .last()
            .expect("a distribution keeps at least one token")
    }

    fn penalizes(&self, history: &[u32]) -> bool {
        let p = self.params.repetition_penalty;
        p > 0.0 && p != 1.0 && self.params.repetition_context > 0 && !history.is_empty()
    }
}

/// mlx-lm's repetition penalty: positive logits of the last `context` tokens are divided by
/// the penalty, negative ones multiplied, once per distinct token.
fn penalize(values: &mut [f32], history: &[u32], penalty: f32, context: usize) {
    let mut recent: Vec<usize> = history[history.len().saturating_sub(context)..]
        .iter()
        .map(|&t| t as usize)
        .filter(|&t| t < values.len())
        .collect();
    recent.sort_unstable();
    recent.dedup();
    for t in recent {
        let x = values[t];
        values[t] = if x < 0.0 { x * penalty } else { x / penalty };
    }
}

/// Applies top-p, min-p and top-k to `values` (the logits) and the temperature to what is kept.
fn filter(values: &[f32], p: &SamplingParams) -> Distribution {
    let mut order: Vec<u32> = (0..values.len() as u32).collect();
    // Most likely first; ties in id order, so the result does not depend on the sort.
    order.sort_by(|&a, &b| {
        values[b as usize]
            .total_cmp(&values[a as usize])
            .then(a.cmp(&b))
    });
    let sorted: Vec<f64> = order.iter().map(|&i| values[i as usize] as f64).collect();
    let max = sorted[0];
    if p.temperature <= 0.0 {
        return Distribution {
            tokens: vec![order[0]],
            probs: vec![1.0],
        };
    }
    // Probabilities at temperature 1, which the filters judge.
    let weights: Vec<f64> = sorted.iter().map(|&x| (x - max).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut keep = sorted.len();
    if p.top_p > 0.0 && p.top_p < 1.0 {
        // A token stays while the tokens more likely than it hold less than `top_p`.
        let mut above = 0.0;
        let mut cut = 0;
        for &w in &weights {
            if above >= p.top_p as f64 * total {
                break;
            }
            above += w;
            cut += 1;
        }
        keep = keep.min(tied_with(&sorted, cut));
    }
    if p.min_p != 0.0 {
        let floor = max + (p.min_p as f64).ln();
        keep = keep.min(sorted.iter().take_while(|&&x| x >= floor).count());
    }
    if p.top_k > 0 {
        keep = keep.min(p.top_k);
    }
    let keep = keep.max(1);
    let t = p.temperature as f64;
    let tempered: Vec<f64> = sorted[..keep]
        .iter()
        .map(|&x| ((x - max) / t).exp())
        .collect();
    let sum: f64 = tempered.iter().sum();
    Distribution {
        tokens: order[..keep].to_vec(),
        probs: tempered.iter().map(|x| x / sum).collect(),
    }
}

/// `n` extended over the values equal to the `n`-th (sorted descending).
fn tied_with(sorted: &[f64], n: usize) -> usize {
    let n = n.max(1);
    let last = sorted[n - 1];
    n + sorted[n..].iter().take_while(|&&x| x == last).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            seed: Some(1),
            ..SamplingParams::default()
        }
    }

    fn ln(probs: &[f64]) -> Vec<f32> {
        probs.iter().map(|p| p.ln() as f32).collect()
    }

    #[test]
    fn top_p_keeps_tokens_until_the_mass_above_reaches_it() {
        // 0.5 + 0.3 reaches 0.75 before the third token.
        let v = ln(&[0.5, 0.3, 0.15, 0.05]);
        let d = filter(
            &v,
            &SamplingParams {
                top_p: 0.75,
                ..params(1.0)
            },
        );
        assert_eq!(d.tokens, vec![0, 1]);
        assert!((d.probs[0] - 0.625).abs() < 1e-6);
        // Top-p judges the untempered distribution: a high temperature keeps the same set.
        let hot = filter(
            &v,
            &SamplingParams {
                top_p: 0.75,
                ..params(3.0)
            },
        );
        assert_eq!(hot.tokens, vec![0, 1]);
    }

    #[test]
    fn top_p_keeps_ties_of_the_last_kept_token() {
        let v = ln(&[0.4, 0.2, 0.2, 0.2]);
        let d = filter(
            &v,
            &SamplingParams {
                top_p: 0.5,
                ..params(1.0)
            },
        );
        assert_eq!(d.tokens, vec![0, 1, 2, 3]);
    }

    #[test]
    fn min_p_is_relative_to_the_top_token_before_temperature() {
        let v = ln(&[0.5, 0.2, 0.04, 0.26]);
        let d = filter(
            &v,
            &SamplingParams {
                min_p: 0.1,
                ..params(2.0)
            },
        );
        assert_eq!(d.tokens, vec![0, 3, 1]);
    }

    #[test]
    fn filters_keep_what_all_of_them_keep_and_at_least_one() {
        let v = ln(&[0.5, 0.3, 0.15, 0.05]);
        let all = SamplingParams {
            top_p: 0.9,
            min_p: 0.35,
            top_k: 3,
            ..params(1.0)
        };
        assert_eq!(filter(&v, &all).tokens, vec![0, 1]);
        let none = SamplingParams {
            min_p: 1.0,
            ..params(1.0)
        };
        assert_eq!(filter(&v, &none).tokens, vec![0]);
    }

    #[test]
    fn penalty_divides_positive_and_multiplies_negative_logits_once() {
        let mut v = vec![2.0, -2.0, 1.0, 4.0];
        penalize(&mut v, &[3, 0, 1, 0, 9], 2.0, 4);
        // Token 3 is outside the last four; 9 is outside the vocabulary.
        assert_eq!(v, vec![1.0, -4.0, 1.0, 4.0]);
    }

    /// Pearson's chi-square of `draws` against `expected` probabilities.
    fn chi_square(draws: &[u32], expected: &[f64]) -> f64 {
        let mut counts = vec![0usize; expected.len()];
        for &t in draws {
            counts[t as usize] += 1;
        }
        let n = draws.len() as f64;
        counts
            .iter()
            .zip(expected)
            .map(|(&c, &p)| (c as f64 - n * p).powi(2) / (n * p))
            .sum()
    }

    #[test]
    fn sampled_frequencies_follow_the_distribution() {
        // A fixed seed makes this deterministic; the bound is the 0.1% critical value, so a
        // correct sampler passes it for nearly every seed, and a biased one fails it.
        let probs = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04];
        let logits = Array::from_slice(&ln(&probs), &[6]);
        let mut s = Sampler::new(params(1.0));
        let draws: Vec<u32> = (0..6000).map(|_| s.sample(&logits, &[]).unwrap()).collect();
        let chi2 = chi_square(&draws, &probs);
        eprintln!("6000 draws: chi-square {chi2:.2} (5 degrees of freedom, 0.1% bound 20.52)");
        assert!(
            chi2 < 20.52,
            "chi-square {chi2:.1} over 5 degrees of freedom"
        );

        // Top-k 3 at temperature 0.5: p^2 renormalised over the three kept, nothing else drawn.
        let mut s = Sampler::new(SamplingParams {
            top_k: 3,
            ..params(0.5)
        });
        let draws: Vec<u32> = (0..6000).map(|_| s.sample(&logits, &[]).unwrap()).collect();
        assert!(draws.iter().all(|&t| t < 3));
        let kept = [0.16f64, 0.0625, 0.0225];
        let sum: f64 = kept.iter().sum();
        let expected: Vec<f64> = kept.iter().map(|p| p / sum).collect();
        let chi2 = chi_square(&draws, &expected);
        eprintln!("6000 draws, top-k 3: chi-square {chi2:.2} (2 degrees of freedom, bound 13.82)");
        assert!(
            chi2 < 13.82,
            "chi-square {chi2:.1} over 2 degrees of freedom"
        );
    }

    #[test]
    fn a_seed_reproduces_draws_and_another_seed_does_not() {
        let logits = Array::from_slice(&ln(&[0.3, 0.3, 0.2, 0.2]), &[4]);
        let run = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed: Some(seed),
                ..params(1.0)
            });
            (0..64)
                .map(|_| s.sample(&logits, &[]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn greedy_ignores_the_random_state() {
        let logits = Array::from_slice(&[0.1f32, 3.0, 2.9], &[3]);
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&logits, &[]).unwrap(), 1);
        // With a penalty on token 1, greedy picks the next best.
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 1.5,
            ..SamplingParams::default()
        });
        assert_eq!(s.sample(&logits, &[1]).unwrap(), 2);
    }
}
