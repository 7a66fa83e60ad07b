//! Attention masks: causal, sliding-window, and left padding for batched sequences.

use mlx_rs::{ops, Array};

use crate::error::Result;

/// What a layer's attention needs to mask, beyond plain causality.
#[derive(Clone)]
pub enum Mask {
    /// Nothing to mask (one new token seeing all of a full cache).
    None,
    /// Lower-right-aligned causal masking, done inside the attention kernel.
    Causal,
    /// An explicit boolean mask `[B or 1, 1, L, S]` (true = may attend).
    Explicit(Array),
}

/// The masks of one forward pass, built once for all the layers that need the same one (a
/// padded batch's mask is several operations; 30 layers would build it 30 times a step).
#[derive(Default)]
pub struct Masks(Vec<(MaskKey, Mask)>);

/// What a mask depends on within one pass: queries, first and end position, window, and
/// whether a causal mask must be explicit.
type MaskKey = (i32, i32, i32, Option<i32>, bool);

impl Masks {
    /// [`build`]'s mask for these arguments, built on first use in this pass; `left_padding`
    /// must be the same for every call of one pass. With `always_explicit`, for an attention that
    /// masks only explicitly, a causal mask comes as its boolean array, never as
    /// [`Mask::Causal`].
    pub fn get(
        &mut self,
        queries: i32,
        start: i32,
        end: i32,
        window: Option<i32>,
        left_padding: Option<&Array>,
        always_explicit: bool,
    ) -> Result<Mask> {
        let key = (queries, start, end, window, always_explicit);
        if let Some((_, m)) = self.0.iter().find(|(k, _)| *k == key) {
            return Ok(m.clone());
        }
        let m = match build(queries, start, end, window, left_padding)? {
            Mask::Causal if always_explicit => {
                Mask::Explicit(explicit(queries, start, end, window, None)?)
            }
            m => m,
        };
        self.0.push((key, m.clone()));
        Ok(m)
    }
}

/// Builds the mask for `queries` new tokens ending at absolute position `end` (exclusive),
/// attending to keys at absolute positions `start..end`, with an optional sliding window and
/// per-sequence left padding (padded positions are never attended).
pub fn build(
    queries: i32,
    start: i32,
    end: i32,
    window: Option<i32>,
    left_padding: Option<&Array>,
) -> Result<Mask> {
    let keys = end - start;
    let window_binds = window.is_some_and(|w| queries + (keys - queries) > w);
    if left_padding.is_none() && !window_binds {
        return Ok(if queries == 1 {
            Mask::None
        } else {
            Mask::Causal
        });
    }
    Ok(Mask::Explicit(explicit(
        queries,
        start,
        end,
        window,
        left_padding,
    )?))
}

/// [`build`]'s mask as a boolean array `[B or 1, 1, queries, end - start]`, even where plain
/// causality would do.
fn explicit(
    queries: i32,
    start: i32,
    end: i32,
    window: Option<i32>,
    left_padding: Option<&Array>,
) -> Result<Array> {
    let keys = end - start;
    let q = ops::arange::<_, i32>(end - queries, end, 1)?.reshape(&[queries, 1])?;
    let k = ops::arange::<_, i32>(start, end, 1)?.reshape(&[1, keys])?;
    let mut mask = q.ge(&k)?;
    if let Some(w) = window {
        mask = ops::logical_and(&mask, &q.lt(&ops::add(&k, Array::from_int(w))?)?)?;
    }
    let mut mask = mask.reshape(&[1, 1, queries, keys])?;
    if let Some(pad) = left_padding {
        let b = pad.shape()[0];
        let pad = pad.reshape(&[b, 1, 1, 1])?;
        mask = ops::logical_and(&mask, &pad.le(&k.reshape(&[1, 1, 1, keys])?)?)?;
    }
    Ok(mask)
}
