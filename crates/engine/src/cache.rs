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

    /// A full-attention cache whose first position is `start`, which may be negative: a
    /// sequence joining a decode batch is placed so that it ends where the batch does (see
    /// [`crate::continuous`]); rotary embeddings only see relative positions.
    pub fn starting_at(start: i32) -> Self {
        Self {
            offset: start,
            base: start,
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

    /// Absolute position of the oldest stored position.
    pub fn base(&self) -> i32 {
        self.base
    }

    /// Appends the rows (batch entries) of `other`, which must end at the same position;
    /// positions one of them lacks are zeros, for the caller's left-padding mask to hide.
    pub fn append_rows(&mut self, other: &KvCache) -> Result<()> {
        let (Some(ok), Some(ov)) = (&other.keys, &other.values) else {
            return Ok(());
        };
        let (Some(sk), Some(sv)) = (&self.keys, &self.values) else {
            self.keys = Some(ok.index((.., .., ..other.offset - other.base, ..)));
            self.values = Some(ov.index((.., .., ..other.offset - other.base, ..)));
            self.offset = other.offset;
            self.base = other.base;
            return Ok(());
        };
        debug_assert_eq!(self.offset, other.offset, "rows must end together");
        let base = self.base.min(other.base);
        let aligned = |a: &Array, from: i32| -> Result<Array> {
            let used = a.index((.., .., ..self.offset - from, ..));
            if from == base {
                return Ok(used);
            }
            let mut shape = a.shape().to_vec();
            shape[2] = from - base;
            let zeros = ops::zeros_dtype(&shape, a.dtype())?;
            Ok(ops::concatenate(&[zeros, used], 2)?)
        };
        let keys = ops::concatenate(&[aligned(sk, self.base)?, aligned(ok, other.base)?], 0)?;
        let values = ops::concatenate(&[aligned(sv, self.base)?, aligned(ov, other.base)?], 0)?;
        self.keys = Some(keys);
        self.values = Some(values);
        self.base = base;
        Ok(())
    }

    /// Keeps only the rows `rows` (batch indices, in that order); no rows empties the cache.
    pub fn keep_rows(&mut self, rows: &[i32]) -> Result<()> {
        if rows.is_empty() {
            *self = Self {
                window: self.window,
                ..Self::default()
            };
            return Ok(());
        }
        let idx = Array::from_slice(rows, &[rows.len() as i32]);
        if let (Some(k), Some(v)) = (&self.keys, &self.values) {
            let (k, v) = (k.take_axis(&idx, 0)?, v.take_axis(&idx, 0)?);
            self.keys = Some(k);
            self.values = Some(v);
        }
        Ok(())
    }

    /// Forgets the storage of positions before `from`, which no remaining row attends to.
    pub fn drop_before(&mut self, from: i32) {
        let cut = (from - self.base).clamp(0, self.offset - self.base);
        if cut == 0 {
            return;
        }
        if let (Some(k), Some(v)) = (&self.keys, &self.values) {
            let (k, v) = (k.index((.., .., cut.., ..)), v.index((.., .., cut.., ..)));
            self.keys = Some(k);
            self.values = Some(v);
        }
        self.base += cut;
    }

    /// The storage arrays, so callers can evaluate them together with the logits.
    pub fn arrays(&self) -> impl Iterator<Item = &Array> {
        self.keys.iter().chain(self.values.iter())
    }
}
