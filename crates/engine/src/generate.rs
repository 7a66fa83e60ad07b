//! The token loop: chunked prefill, then one token at a time with sampling, stop conditions
//! and cancellation, reusing the KV cache across the turns of a chat.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use mlx_rs::{ops::indexing::IndexOp, Array};

use crate::{
    cache::KvCache,
    error::{EngineError, Result},
    models::Transformer,
    sample::{Sampler, SamplingParams},
};

/// Prompt tokens processed per forward pass during prefill; bounds activation memory. 256
/// rather than 512: a 512-token prompt of SmolLM2 f32 prefills 10% faster (the attention
/// scores of a chunk stay in cache) with an 18 MB lower peak (examples/peak_probe.rs).
pub const PREFILL_CHUNK: usize = minibar_fit::engine::PREFILL_CHUNK as usize;

/// A flag another thread sets to stop generation between tokens.
#[derive(Clone, Default, Debug)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, unset token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the generation to stop after the token in flight.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// A stop string appeared (checked by the caller's text layer).
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The context window is full.
    ContextFull,
    /// The caller cancelled.
    Cancelled,
}

/// Timings and counts of one generation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenerationStats {
    /// Prompt tokens actually processed (after reusing the cached prefix).
    pub prompt_tokens: usize,
    /// Prompt tokens served from the cache.
    pub cached_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time from the call to the first generated token.
    pub time_to_first_token: Duration,
    /// Time spent processing the prompt.
    pub prefill_time: Duration,
    /// Time spent generating after the first token.
    pub decode_time: Duration,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prefill_tps(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill_time)
    }

    /// Generated tokens per second (excluding the first token, which prefill produces).
    pub fn decode_tps(&self) -> f64 {
        rate(self.generated_tokens.saturating_sub(1), self.decode_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// What a generation needs besides the prompt.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Tokens that end generation.
    pub eos: Vec<u32>,
    /// Keep going past EOS (benchmarks).
    pub ignore_eos: bool,
}

/// The KV cache of one conversation and the tokens it holds, kept between turns.
///
/// A later turn reuses the longest prefix it shares with the cached tokens. Sliding-window
/// layers cannot rewind past what they dropped (see [`crate::cache`]), so for models that have
/// them the conversation also keeps those layers' caches as they were before the latest
/// prompt's last token (as mlx-lm's server keeps a cache per message): a turn that diverges
/// earlier than the layers can rewind (a regenerated reply, a template that leaves out the
/// last reply's reasoning) restarts from there instead of prefilling the whole chat again.
pub struct Conversation {
    caches: Vec<KvCache>,
    /// Tokens whose keys and values are in the cache, in order.
    history: Vec<u32>,
    /// Where the sliding-window layers can be rewound to; its tokens are `history[..len]`.
    checkpoint: Option<Checkpoint>,
    /// The context window in tokens.
    pub context: usize,
}

/// The sliding-window layers' caches after the first `len` tokens of the history.
struct Checkpoint {
    len: usize,
    /// (layer index, its cache then).
    sliding: Vec<(usize, KvCache)>,
}

impl Conversation {
    /// An empty conversation for `model` with a `context`-token window.
    pub fn new(model: &Transformer, context: usize) -> Self {
        Self {
            caches: model.make_caches(),
            history: Vec::new(),
            checkpoint: None,
            context,
        }
    }

    /// Tokens currently cached.
    pub fn cached(&self) -> &[u32] {
        &self.history
    }

    /// Bytes held by the KV cache (the checkpoint included: it shares storage with the live
    /// cache only until the next token is written).
    pub fn cache_bytes(&self) -> usize {
        let saved = self.checkpoint.iter().flat_map(|c| &c.sliding);
        self.caches.iter().map(KvCache::nbytes).sum::<usize>()
            + saved.map(|(_, c)| c.nbytes()).sum::<usize>()
    }

    /// Forgets everything (a new chat).
    pub fn reset(&mut self, model: &Transformer) {
        self.caches = model.make_caches();
        self.history.clear();
        self.checkpoint = None;
    }

    /// Reuses the longest cached prefix of `prompt` that every layer can rewind to, and
    /// returns how many tokens were reused. A follow-up chat turn then prefills only its new
    /// tokens.
    fn reuse_prefix(&mut self, model: &Transformer, prompt: &[u32]) -> usize {
        let common = self
            .history
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        // Always recompute at least the last prompt token: its logits start the reply.
        let keep = common.min(prompt.len().saturating_sub(1));
        if keep == self.history.len() {
            return keep;
        }
        let floor = self.caches.iter().map(KvCache::rewind_floor).max();
        if floor.is_none_or(|f| f <= keep as i32) {
            let drop = (self.history.len() - keep) as i32;
            for cache in &mut self.caches {
                cache.trim(drop);
            }
            self.history.truncate(keep);
            if self.checkpoint.as_ref().is_some_and(|cp| cp.len > keep) {
                self.checkpoint = None;
            }
            return keep;
        }
        // The sliding-window layers dropped what `keep` needs: back to the checkpoint.
        let Some(cp) = self.checkpoint.as_ref().filter(|cp| cp.len <= keep) else {
            self.reset(model);
            return 0;
        };
        let back = (self.history.len() - cp.len) as i32;
        let mut whole = true;
        for (i, cache) in self.caches.iter_mut().enumerate() {
            match cp.sliding.iter().find(|(at, _)| *at == i) {
                Some((_, saved)) => *cache = saved.clone(),
                None => whole &= cache.trim(back) == back,
            }
        }
        if !whole {
            self.reset(model);
            return 0;
        }
        self.history.truncate(cp.len);
        cp.len
    }

    /// Runs the prompt through the model (in chunks) and returns the last position's logits.
    /// With sliding-window layers, the last token runs alone after a checkpoint (mlx-lm's
    /// prefill also runs the last token on its own).
    fn prefill(
        &mut self,
        model: &Transformer,
        tokens: &[u32],
        cancel: &CancelToken,
    ) -> Result<Array> {
        let sliding: Vec<usize> = (self.caches.iter().enumerate())
            .filter(|(_, c)| c.window().is_some())
            .map(|(i, _)| i)
            .collect();
        let split = if sliding.is_empty() {
            tokens.len()
        } else {
            tokens.len().saturating_sub(1)
        };
        let mut logits = None;
        for chunk in tokens[..split].chunks(PREFILL_CHUNK) {
            logits = Some(self.prefill_chunk(model, chunk, cancel)?);
        }
        if split < tokens.len() {
            self.checkpoint = Some(Checkpoint {
                len: self.history.len(),
                sliding: sliding
                    .into_iter()
                    .map(|i| (i, self.caches[i].clone()))
                    .collect(),
            });
            logits = Some(self.prefill_chunk(model, &tokens[split..], cancel)?);
        }
        match logits {
            Some(l) => Ok(l.reshape(&[-1])?),
            None => Err(EngineError::Mlx("prefill of an empty prompt".into())),
        }
    }

    /// One forward pass over `chunk`, extending the cache; the last position's logits.
    fn prefill_chunk(
        &mut self,
        model: &Transformer,
        chunk: &[u32],
        cancel: &CancelToken,
    ) -> Result<Array> {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let ids = Array::from_slice(chunk, &[1, chunk.len() as i32]);
        let h = model.hidden(&ids, &mut self.caches, None)?;
        let last = h.index((.., -1.., ..));
        let l = model.logits(&last)?;
        let mut eval: Vec<&Array> = vec![&l];
        eval.extend(self.caches.iter().flat_map(KvCache::arrays));
        mlx_rs::transforms::eval(eval)?;
        self.history.extend_from_slice(chunk);
        Ok(l)
    }

    /// Generates a continuation of `prompt` (the whole conversation's tokens), calling
    /// `on_token` for each new token; `on_token` returns false to stop (a stop string).
    pub fn generate(
        &mut self,
        model: &Transformer,
        prompt: &[u32],
        opts: &GenerateOptions,
        cancel: &CancelToken,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<(FinishReason, GenerationStats)> {
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if prompt.len() >= self.context {
            return Err(EngineError::ContextOverflow {
                prompt: prompt.len(),
                context: self.context,
            });
        }
        let start = Instant::now();
        let reused = self.reuse_prefix(model, prompt);
        let mut stats = GenerationStats {
            prompt_tokens: prompt.len() - reused,
            cached_tokens: reused,
            ..Default::default()
        };
        let mut sampler = Sampler::new(opts.sampling.clone());
        let mut logits = self.prefill(model, &prompt[reused..], cancel)?;
        stats.prefill_time = start.elapsed();
        let mut first_at = None;
        let mut recent: Vec<u32> = prompt.to_vec();
        let reason = loop {
            let token = sampler.sample(&logits, &recent)?;
            let now = Instant::now();
            let first = *first_at.get_or_insert(now);
            if stats.generated_tokens == 0 {
                stats.time_to_first_token = now - start;
            }
            stats.generated_tokens += 1;
            stats.decode_time = now - first;
            recent.push(token);
            if !opts.ignore_eos && opts.eos.contains(&token) {
                break FinishReason::Eos;
            }
            if !on_token(token) {
                break FinishReason::Stop;
            }
            if stats.generated_tokens >= opts.max_tokens {
                break FinishReason::Length;
            }
            if self.history.len() + 1 >= self.context {
                break FinishReason::ContextFull;
            }
            if cancel.is_cancelled() {
                break FinishReason::Cancelled;
            }
            let ids = Array::from_slice(&[token], &[1, 1]);
            let l = model.forward(&ids, &mut self.caches, None)?;
            mlx_rs::transforms::eval([&l])?;
            self.history.push(token);
            logits = l.reshape(&[-1])?;
        };
        Ok((reason, stats))
    }
}
