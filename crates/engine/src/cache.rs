//! Per-layer key/value caches. Storage grows in steps of 256 positions, as mlx-lm's, so a
//! decode step writes in place instead of re-concatenating the whole history. Sliding-window
//! layers drop positions that no future token can see whenever their storage grows, so their
//! memory stays bounded by the window.

use mlx_rs::{
    ops::{
        self,
        indexing::{IndexOp, TryIndexMutOp},
    },
    Array,
};

use crate::error::Result;

/// Positions added each time the storage grows.
pub const CACHE_STEP: i32 = 256;

/// What attention sees after an update: keys, values, and the absolute position of the first.
pub struct CacheView {
    /// `[B, H, S, D]`.
    pub keys: Array,
    /// `[B, H, S, D]`.
    pub values: Array,
    /// Absolute position of `keys[.., .., 0, ..]`.
    pub start: i32,
}

/// One attention layer's cache: `[batch, kv_heads, positions, head_dim]` keys and values.
#[derive(Default)]
pub struct KvCache {
    keys: Option<Array>,
    values: Option<Array>,
    /// Tokens seen so far (the absolute position of the next token).
    pub offset: i32,
    /// Absolute position of storage index 0.
    base: i32,
    /// For sliding-window layers: how many positions a token may look back, itself included.
    window: Option<i32>,
}

impl KvCache {
    /// A cache for a full-attention layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache for a sliding-window layer.
    pub fn sliding(window: i32) -> Self {
        Self {
            window: Some(window),
            ..Self::default()
        }
    }

    /// Appends `keys`/`values` (`[B, H, L, D]`) and returns what attention must see.
    pub fn update_and_fetch(&mut self, keys: &Array, values: &Array) -> Result<CacheView> {
        let new = keys.shape()[2];
        let used = self.offset - self.base;
        let capacity = self.keys.as_ref().map_or(0, |k| k.shape()[2]);
        if self.keys.is_none() || used + new > capacity {
            // Positions older than the window can never be attended to again.
            let drop = match self.window {
                Some(w) => (self.offset - (w - 1) - self.base).clamp(0, used),
                None => 0,
            };
            let steps = (new + CACHE_STEP - 1) / CACHE_STEP;
            let grow = |current: Option<&Array>, fresh: &Array| -> Result<Array> {
                let mut shape = fresh.shape().to_vec();
                shape[2] = steps * CACHE_STEP;
                let zeros = ops::zeros_dtype(&shape, fresh.dtype())?;
                Ok(match current {
                    Some(old) if used > drop => {
                        let kept = old.index((.., .., drop..used, ..));
                        ops::concatenate(&[kept, zeros], 2)?
                    }
                    _ => zeros,
                })
            };
            let k = grow(self.keys.as_ref(), keys)?;
            let v = grow(self.values.as_ref(), values)?;
            self.keys = Some(k);
            self.values = Some(v);
            self.base += drop;
        }
        let at = self.offset - self.base;
        let (k, v) = (self.keys.as_mut().unwrap(), self.values.as_mut().unwrap());
        k.try_index_mut((.., .., at..at + new, ..), keys)?;
        v.try_index_mut((.., .., at..at + new, ..), values)?;
        self.offset += new;
        let start = match self.window {
            Some(w) => (self.offset - new - (w - 1)).max(self.base),
            None => self.base,
        };
        let (from, to) = (start - self.base, self.offset - self.base);
        Ok(CacheView {
            keys: k.index((.., .., from..to, ..)),
            values: v.index((.., .., from..to, ..)),
            start,
        })
    }

    /// Forgets the last `n` positions (a regenerated reply, an edited message); returns how
    /// many were forgotten. A sliding-window cache cannot bring back positions it dropped.
    pub fn trim(&mut self, n: i32) -> i32 {
        let n = n.min(self.offset - self.base);
        self.offset -= n;
        n
    }

    /// Bytes held by the cache's storage.
    pub fn nbytes(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.nbytes())
            + self.values.as_ref().map_or(0, |v| v.nbytes())
    }

    /// The sliding window, if this is a sliding-window layer's cache.
    pub fn window(&self) -> Option<i32> {
        self.window
    }

    /// The storage arrays, so callers can evaluate them together with the logits.
    pub fn arrays(&self) -> impl Iterator<Item = &Array> {
        self.keys.iter().chain(self.values.iter())
    }
}
