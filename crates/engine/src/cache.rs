//! Per-layer key/value caches. Storage grows in steps of 256 positions, as mlx-lm's, so a
//! decode step writes in place instead of re-concatenating the whole history.
//!
//! Sliding-window layers rotate: whenever their storage must grow, positions that no future
//! token can see are dropped first, so their memory stays bounded by the window plus one step
//! (mlx-lm's `RotatingKVCache` bounds it by the window alone, with a ring buffer and rolled
//! masks; dropping on growth keeps the storage in temporal order, so masks stay plain).
//!
//! Invariant: a cache can be rewound (`trim`) only to a position every later token can still
//! attend from: for a sliding layer that has dropped positions, no earlier than its oldest
//! stored position plus the window. Callers that must go further back keep a `Clone` of the
//! cache (arrays are immutable in MLX, so a clone shares storage until one side writes).

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
#[derive(Default, Clone)]
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

    /// Forgets the last `n` positions (a regenerated reply, an edited message), at most down
    /// to [`Self::rewind_floor`]; returns how many were forgotten.
    pub fn trim(&mut self, n: i32) -> i32 {
        let n = n.clamp(0, self.offset - self.rewind_floor());
        self.offset -= n;
        n
    }

    /// The earliest position `trim` can return to: a sliding layer that has dropped positions
    /// needs a whole window before the next token.
    pub fn rewind_floor(&self) -> i32 {
        match self.window {
            Some(w) if self.base > 0 => (self.base + w - 1).min(self.offset),
            _ => self.base.min(self.offset),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and values `[1, 1, n, 1]` holding their own absolute positions.
    fn positions(from: i32, n: i32) -> Array {
        let v: Vec<f32> = (from..from + n).map(|p| p as f32).collect();
        Array::from_slice(&v, &[1, 1, n, 1])
    }

    fn seen(view: &CacheView) -> Vec<i32> {
        let k = view.keys.as_dtype(mlx_rs::Dtype::Float32).unwrap();
        k.eval().unwrap();
        k.as_slice::<f32>().iter().map(|&x| x as i32).collect()
    }

    fn push(c: &mut KvCache, n: i32) -> CacheView {
        let x = positions(c.offset, n);
        c.update_and_fetch(&x, &x).unwrap()
    }

    #[test]
    fn a_sliding_cache_drops_old_positions_and_rewinds_no_further_than_a_window() {
        let mut c = KvCache::sliding(4);
        push(&mut c, CACHE_STEP);
        assert_eq!(c.rewind_floor(), 0, "nothing dropped yet");
        let view = push(&mut c, 44);
        // The first new token still sees the three before it.
        assert_eq!(view.start, CACHE_STEP - 3);
        assert_eq!(
            seen(&view),
            (CACHE_STEP - 3..CACHE_STEP + 44).collect::<Vec<_>>()
        );
        assert_eq!(c.base(), CACHE_STEP - 3);
        assert_eq!(c.rewind_floor(), CACHE_STEP);
        assert_eq!(c.trim(100), 44, "trimmed only back to a whole window");
        let view = push(&mut c, 1);
        assert_eq!(
            seen(&view),
            (CACHE_STEP - 3..=CACHE_STEP).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_clone_returns_to_where_it_was_taken() {
        let mut c = KvCache::sliding(4);
        push(&mut c, 10);
        let saved = c.clone();
        push(&mut c, CACHE_STEP);
        push(&mut c, CACHE_STEP);
        assert!(c.rewind_floor() > 10);
        let mut c = saved;
        assert_eq!(c.offset, 10);
        assert_eq!(seen(&push(&mut c, 1)), vec![7, 8, 9, 10]);
    }

    #[test]
    fn a_full_cache_rewinds_to_its_start() {
        let mut c = KvCache::new();
        push(&mut c, 300);
        assert_eq!(c.trim(1000), 300);
        assert_eq!(seen(&push(&mut c, 2)), vec![0, 1]);
    }
}
