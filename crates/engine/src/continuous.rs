//! Continuous batching: a decode batch that sequences join and leave between steps, the basis
//! of serving concurrent requests.
//!
//! Why not [`crate::batch::generate_batch`]: it left-pads every prompt to the longest one
//! before the first step, so nobody can join later. Here a newcomer is prefilled alone into
//! caches placed so that its last prompt token sits at the batch's current position (its
//! first token may lie at a negative position); its rows are then appended to the batch's
//! caches, with zeros where it has no positions. Invariant: every row ends at the batch's
//! offset, and row `i` attends only to positions `>= starts[i]` (the left-padding mask), so
//! each sequence computes what it would alone, shifted by a constant: rotary embeddings only
//! see relative positions. Sliding-window caches cannot be realigned this way, so models with
//! them decode one sequence at a time ([`DecodeBatch::can_batch`]).
//!
//! A long prompt need not stall the others: [`DecodeBatch::begin_join`] plans its positions
//! for the number of decode steps its remaining chunks will be interleaved with, and
//! [`Joiner::prefill_chunk`] runs one chunk between steps.
//!
//! Newcomers that arrive together need not be prefilled one by one either:
//! [`DecodeBatch::join_many`] prefills them in one pass, left-padded to the longest of them,
//! which is the same invariant again (each row ends at the batch's offset and is masked
//! before its own start), so a server answering many clients at once pays one prefill per
//! group instead of one per client.
//!
//! And a conversation's next turn need not prefill its history again: when the last sequence
//! leaves, [`DecodeBatch::finish_last`] keeps its caches ([`KeptPrefix`]), and
//! [`DecodeBatch::join_reusing`] starts the next batch from them, trimmed to the prefix they
//! share with the new prompt, prefilling only the rest (mlx_lm.server's prompt cache,
//! Ollama's kept slot). The kept row stays where it was (its first token possibly after
//! the storage's first position, masked as before), so this too is a constant shift.

use mlx_rs::{ops::indexing::IndexOp, Array};

use crate::{
    cache::KvCache,
    error::{EngineError, Result},
    generate::{CancelToken, PREFILL_CHUNK},
    models::Transformer,
};

/// The caches of the sequences being decoded together, one row each.
pub struct DecodeBatch {
    caches: Vec<KvCache>,
    /// Absolute position of each row's first token.
    starts: Vec<i32>,
}

impl DecodeBatch {
    /// An empty batch for `model`.
    pub fn new(model: &Transformer) -> Self {
        Self {
            caches: model.make_caches(),
            starts: Vec::new(),
        }
    }

    /// Whether `model` can decode more than one sequence at once here (no sliding windows).
    pub fn can_batch(model: &Transformer) -> bool {
        model.make_caches().iter().all(|c| c.window().is_none())
    }

    /// Sequences in the batch.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether no sequence is in the batch.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Bytes held by the caches.
    pub fn cache_bytes(&self) -> usize {
        self.caches.iter().map(KvCache::nbytes).sum()
    }

    /// Prefills `prompt` as a new last row and returns its last position's logits (`[vocab]`,
    /// evaluated). A cancelled prefill leaves the batch as it was.
    pub fn join(
        &mut self,
        model: &Transformer,
        prompt: &[u32],
        cancel: &CancelToken,
    ) -> Result<Array> {
        let mut joiner = self.begin_join(model, prompt, 0)?;
        while !joiner.is_complete() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            joiner.prefill_chunk(model)?;
        }
        self.finish_join(joiner)
    }

    /// Prefills `prompts` together as new last rows, in order (left-padded to the longest,
    /// in chunks of [`PREFILL_CHUNK`] positions); returns each one's last position's logits
    /// (`[vocab]`, evaluated). Several prompts need a model that [`DecodeBatch::can_batch`].
    pub fn join_many(&mut self, model: &Transformer, prompts: &[Vec<u32>]) -> Result<Vec<Array>> {
        if prompts.iter().any(Vec::is_empty) {
            return Err(EngineError::EmptyPrompt);
        }
        match prompts {
            [] => return Ok(Vec::new()),
            [one] => return Ok(vec![self.join(model, one, &CancelToken::new())?]),
            _ if !Self::can_batch(model) => {
                return Err(EngineError::InvalidRequest(
                    "sliding-window models decode one sequence at a time".into(),
                ))
            }
            _ => {}
        }
        let rows = prompts.len() as i32;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let end = if self.is_empty() {
            longest as i32
        } else {
            self.caches[0].offset
        };
        let start = end - longest as i32;
        let mut caches: Vec<KvCache> = (0..self.caches.len())
            .map(|_| KvCache::starting_at(start))
            .collect();
        let mut ids = Vec::with_capacity(prompts.len() * longest);
        let mut starts = Vec::with_capacity(prompts.len());
        for p in prompts {
            let pad = longest - p.len();
            starts.push(start + pad as i32);
            ids.extend(std::iter::repeat_n(0u32, pad));
            ids.extend_from_slice(p);
        }
        let ids = Array::from_slice(&ids, &[rows, longest as i32]);
        let starts_array = Array::from_slice(&starts, &[rows]);
        let padded = starts.iter().any(|&s| s > start);
        let mut logits = None;
        for from in (0..longest).step_by(PREFILL_CHUNK) {
            let to = (from + PREFILL_CHUNK).min(longest);
            let chunk = ids.index((.., from as i32..to as i32));
            let h = model.hidden(&chunk, &mut caches, padded.then_some(&starts_array))?;
            let mut eval: Vec<&Array> = caches.iter().flat_map(KvCache::arrays).collect();
            let last = (to == longest).then(|| model.logits(&h.index((.., -1.., ..))));
            let last = last.transpose()?;
            eval.extend(last.as_ref());
            mlx_rs::transforms::eval(eval)?;
            logits = last;
        }
        let logits = logits
            .ok_or(EngineError::EmptyPrompt)?
            .reshape(&[rows, -1])?;
        if self.is_empty() {
            self.caches = caches;
        } else {
            for (cache, new) in self.caches.iter_mut().zip(&caches) {
                cache.append_rows(new)?;
            }
        }
        self.starts.extend(starts);
        Ok((0..rows).map(|r| logits.index(r)).collect())
    }

    /// Removes the batch's only sequence, whose caches hold `tokens`, and keeps those caches
    /// for [`DecodeBatch::join_reusing`] when they can be rewound (no sliding windows).
    pub fn finish_last(&mut self, tokens: Vec<u32>) -> Result<Option<KeptPrefix>> {
        if self.len() != 1 {
            return Err(EngineError::InvalidRequest(format!(
                "only a batch's last sequence can be kept: {} are decoding",
                self.len()
            )));
        }
        let start = self.starts[0];
        let keepable = self.caches.iter().all(|c| c.window().is_none())
            && self
                .caches
                .first()
                .is_some_and(|c| c.offset - start == tokens.len() as i32);
        let fresh: Vec<KvCache> = (0..self.caches.len()).map(|_| KvCache::new()).collect();
        let caches = std::mem::replace(&mut self.caches, fresh);
        self.starts.clear();
        Ok(keepable.then_some(KeptPrefix {
            caches,
            start,
            tokens,
        }))
    }

    /// Starts an empty batch with `prompt`, reusing `kept`'s caches for the tokens they share
    /// with it; returns its last position's logits (`[vocab]`) and how many prompt tokens
    /// were reused (none: prefilled as [`DecodeBatch::join`] does).
    pub fn join_reusing(
        &mut self,
        model: &Transformer,
        kept: KeptPrefix,
        prompt: &[u32],
        cancel: &CancelToken,
    ) -> Result<(Array, usize)> {
        if !self.is_empty() {
            return Err(EngineError::InvalidRequest(
                "a kept prefix starts an empty batch".into(),
            ));
        }
        let reused = kept.common_prefix(prompt);
        if reused == 0 {
            return Ok((self.join(model, prompt, cancel)?, 0));
        }
        let KeptPrefix {
            mut caches, start, ..
        } = kept;
        for cache in &mut caches {
            let extra = cache.offset - (start + reused as i32);
            if cache.trim(extra) != extra {
                return Ok((self.join(model, prompt, cancel)?, 0));
            }
        }
        let base = caches[0].base();
        let starts = Array::from_slice(&[start], &[1]);
        let mut logits = None;
        for chunk in prompt[reused..].chunks(PREFILL_CHUNK) {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let ids = Array::from_slice(chunk, &[1, chunk.len() as i32]);
            let h = model.hidden(&ids, &mut caches, (start > base).then_some(&starts))?;
            let l = model.logits(&h.index((.., -1.., ..)))?;
            let mut eval: Vec<&Array> = vec![&l];
            eval.extend(caches.iter().flat_map(KvCache::arrays));
            mlx_rs::transforms::eval(eval)?;
            logits = Some(l);
        }
        let logits = logits.ok_or(EngineError::EmptyPrompt)?.reshape(&[-1])?;
        self.caches = caches;
        self.starts = vec![start];
        Ok((logits, reused))
    }

    /// Starts prefilling `prompt` apart from the batch, to join it after `steps_ahead` more
    /// decode steps: its positions are planned so that it then ends where the batch does.
    /// The caller interleaves [`Joiner::prefill_chunk`] with the steps (for a prompt of
    /// `n` chunks, `steps_ahead = n - 1` and one chunk per step), then calls
    /// [`DecodeBatch::finish_join`]. A batch that empties meanwhile takes the joiner as it is.
    pub fn begin_join(
        &self,
        model: &Transformer,
        prompt: &[u32],
        steps_ahead: usize,
    ) -> Result<Joiner> {
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let caches = if self.is_empty() {
            model.make_caches()
        } else if Self::can_batch(model) {
            let start = self.caches[0].offset + steps_ahead as i32 - prompt.len() as i32;
            (0..self.caches.len())
                .map(|_| KvCache::starting_at(start))
                .collect()
        } else {
            return Err(EngineError::InvalidRequest(
                "sliding-window models decode one sequence at a time".into(),
            ));
        };
        Ok(Joiner {
            start: caches[0].offset,
            caches,
            prompt: prompt.to_vec(),
            done: 0,
            logits: None,
        })
    }

    /// Appends a fully prefilled joiner as the last row; returns its last position's logits.
    pub fn finish_join(&mut self, joiner: Joiner) -> Result<Array> {
        let Some(logits) = joiner.logits.filter(|_| joiner.done == joiner.prompt.len()) else {
            return Err(EngineError::InvalidRequest(
                "a sequence joins once its whole prompt is prefilled".into(),
            ));
        };
        let end = joiner.caches[0].offset;
        if self.is_empty() {
            self.caches = joiner.caches;
        } else {
            if end != self.caches[0].offset {
                return Err(EngineError::InvalidRequest(format!(
                    "a joiner planned to end at position {end} met the batch at {}",
                    self.caches[0].offset
                )));
            }
            for (cache, new) in self.caches.iter_mut().zip(&joiner.caches) {
                cache.append_rows(new)?;
            }
        }
        self.starts.push(joiner.start);
        Ok(logits.reshape(&[-1])?)
    }

    /// One decode step: row `i` takes `tokens[i]`. Returns `[rows, vocab]` logits, evaluated.
    pub fn step(&mut self, model: &Transformer, tokens: &[u32]) -> Result<Array> {
        if tokens.len() != self.len() || tokens.is_empty() {
            return Err(EngineError::InvalidRequest(format!(
                "a step needs one token per sequence: {} tokens for {} sequences",
                tokens.len(),
                self.len()
            )));
        }
        let b = tokens.len() as i32;
        let base = self.caches[0].base();
        let padded = self.starts.iter().any(|&s| s > base);
        let starts = Array::from_slice(&self.starts, &[b]);
        let input = Array::from_slice(tokens, &[b, 1]);
        let logits = model
            .forward(&input, &mut self.caches, padded.then_some(&starts))?
            .reshape(&[b, -1])?;
        let mut eval: Vec<&Array> = vec![&logits];
        eval.extend(self.caches.iter().flat_map(KvCache::arrays));
        mlx_rs::transforms::eval(eval)?;
        Ok(logits)
    }

    /// Removes the rows at `rows` (indices into the batch); the others keep their order.
    pub fn leave(&mut self, rows: &[usize]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let kept: Vec<i32> = (0..self.len())
            .filter(|i| !rows.contains(i))
            .map(|i| i as i32)
            .collect();
        for cache in &mut self.caches {
            cache.keep_rows(&kept)?;
        }
        self.starts = kept.iter().map(|&i| self.starts[i as usize]).collect();
        if let Some(&first) = self.starts.iter().min() {
            for cache in &mut self.caches {
                cache.drop_before(first);
            }
        }
        Ok(())
    }
}

/// A finished sequence's caches and the tokens they hold, kept for the next prompt that
/// starts with the same tokens.
pub struct KeptPrefix {
    caches: Vec<KvCache>,
    /// Absolute position of its first token.
    start: i32,
    tokens: Vec<u32>,
}

impl KeptPrefix {
    /// How many of `prompt`'s first tokens the caches hold (at most all but its last, whose
    /// logits the next token needs).
    pub fn common_prefix(&self, prompt: &[u32]) -> usize {
        let same = self
            .tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count();
        same.min(prompt.len().saturating_sub(1))
    }

    /// Bytes its caches hold.
    pub fn nbytes(&self) -> usize {
        self.caches.iter().map(KvCache::nbytes).sum()
    }
}

/// A sequence being prefilled, chunk by chunk, before it joins a [`DecodeBatch`].
pub struct Joiner {
    caches: Vec<KvCache>,
    start: i32,
    prompt: Vec<u32>,
    /// Prompt tokens prefilled so far.
    done: usize,
    logits: Option<Array>,
}

impl Joiner {
    /// Whether the whole prompt is prefilled.
    pub fn is_complete(&self) -> bool {
        self.done == self.prompt.len()
    }

    /// Prefill chunks still to run.
    pub fn chunks_left(&self) -> usize {
        (self.prompt.len() - self.done).div_ceil(PREFILL_CHUNK)
    }

    /// Runs the next chunk of the prompt (at most [`PREFILL_CHUNK`] tokens), evaluated.
    pub fn prefill_chunk(&mut self, model: &Transformer) -> Result<()> {
        let end = (self.done + PREFILL_CHUNK).min(self.prompt.len());
        let chunk = &self.prompt[self.done..end];
        if chunk.is_empty() {
            return Ok(());
        }
        let ids = Array::from_slice(chunk, &[1, chunk.len() as i32]);
        let h = model.hidden(&ids, &mut self.caches, None)?;
        let l = model.logits(&h.index((.., -1.., ..)))?;
        let mut eval: Vec<&Array> = vec![&l];
        eval.extend(self.caches.iter().flat_map(KvCache::arrays));
        mlx_rs::transforms::eval(eval)?;
        self.done = end;
        self.logits = Some(l);
        Ok(())
    }
}
