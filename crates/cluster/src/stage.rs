//! One rank's share of the model: a contiguous range of decoder blocks and their KV caches
//! (only those blocks' weights are loaded); the first rank embeds and the last applies the
//! final norm and output layer.
//!
//! Invariant: a stage computes exactly what the one-process model computes for its blocks
//! (the same graph as `Transformer::hidden` and `Conversation`'s prefill and decode), so a
//! pipeline's greedy tokens equal one process's.

use std::ops::Range;

use minibar_engine::{cache::KvCache, models::Transformer, Backend};
use mlx_rs::{ops::indexing::IndexOp, Array, Dtype};

use crate::error::Result;

/// A rank's blocks and caches.
pub struct Stage {
    model: Transformer,
    /// The model's layers this stage runs.
    pub layers: Range<usize>,
    caches: Vec<KvCache>,
    backend: Backend,
}

impl Stage {
    /// A stage of `model`, loaded with its layer range (`LoadOptions::layers`): it holds those
    /// blocks' weights only.
    pub fn new(model: Transformer) -> Stage {
        let layers = model.layers.clone();
        let caches = model.make_caches();
        Stage {
            model,
            layers,
            caches,
            backend: Backend::detect(),
        }
    }

    /// The width of the hidden states between stages.
    pub fn hidden_size(&self) -> i32 {
        self.model.args.hidden_size
    }

    /// The dtype of the hidden states between stages (the embeddings').
    pub fn hidden_dtype(&self) -> Result<Dtype> {
        Ok(self.model.hidden_dtype()?)
    }

    /// Embeds `ids` (first stage only).
    pub fn embed(&self, ids: &[u32]) -> Result<Array> {
        let ids = Array::from_slice(ids, &[1, ids.len() as i32]);
        Ok(self.model.embed_tokens(&ids)?)
    }

    /// Runs `h` (`[1, L, hidden]`) through this stage's blocks, extending their caches.
    pub fn run(&mut self, h: Array) -> Result<Array> {
        let n = self.model.blocks.len();
        Ok(self
            .model
            .run_blocks(h, 0..n, &mut self.caches, None, self.backend)?)
    }

    /// The logits `[vocab]` of the last position of `h` (last stage only): the final norm,
    /// then the output layer, as the one-process prefill takes them.
    pub fn last_logits(&self, h: &Array) -> Result<Array> {
        let h = self.model.final_norm()?.forward(h)?;
        let last = h.index((.., -1.., ..));
        Ok(self.model.logits(&last)?.reshape(&[-1])?)
    }

    /// Drops the caches (their memory goes back): the next job starts from nothing.
    pub fn reset(&mut self) {
        self.caches = self.model.make_caches();
    }

    /// The caches' arrays, to evaluate with a step.
    pub fn cache_arrays(&self) -> Vec<&Array> {
        self.caches.iter().flat_map(KvCache::arrays).collect()
    }

    /// Tokens held in the caches.
    pub fn cached_tokens(&self) -> i32 {
        self.caches.first().map_or(0, |c| c.offset)
    }
}
