//! Incremental detokenization that only ever emits whole UTF-8 characters.
//!
//! Decoding token by token is wrong twice over: a character can span several byte tokens (emoji,
//! CJK, byte-fallback `<0xE2>` pieces), and SentencePiece decoders strip the leading space of
//! the first token only. So each step decodes a short window that starts a few tokens back and
//! emits only what the new token added, holding back text while it ends in an incomplete
//! character (decoded as U+FFFD).

use tokenizers::Tokenizer;

use crate::error::TextError;

/// Streams text out of token ids as they are generated.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    skip_special_tokens: bool,
    ids: Vec<u32>,
    /// Start of the context window that is decoded but not emitted again.
    prefix_offset: usize,
    /// End of the tokens whose text has been emitted.
    read_offset: usize,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder over `tokenizer`; special tokens are dropped from the text when asked.
    pub fn new(tokenizer: &'t Tokenizer, skip_special_tokens: bool) -> Self {
        StreamDecoder {
            tokenizer,
            skip_special_tokens,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
        }
    }

    fn decode(&self, ids: &[u32]) -> Result<String, TextError> {
        crate::guard::tokenizer_call("decoding", || {
            Ok(self.tokenizer.decode(ids, self.skip_special_tokens)?)
        })
    }

    /// Adds one token; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>, TextError> {
        self.ids.push(id);
        let before = self.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let after = self.decode(&self.ids[self.prefix_offset..])?;
        if after.len() <= before.len() || after.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        let new_text = new_suffix(&before, &after);
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        Ok(Some(new_text.to_string()))
    }

    /// Flushes text still held back (an incomplete character at the very end decodes as U+FFFD,
    /// exactly as a whole-sequence decode would show it).
    pub fn finish(&mut self) -> Result<Option<String>, TextError> {
        if self.read_offset == self.ids.len() {
            return Ok(None);
        }
        let before = self.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let after = self.decode(&self.ids[self.prefix_offset..])?;
        self.prefix_offset = self.read_offset;
        self.read_offset = self.ids.len();
        let new_text = new_suffix(&before, &after);
        Ok((!new_text.is_empty()).then(|| new_text.to_string()))
    }

    /// All ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

/// The part of `after` past the text already emitted as `before`.
fn new_suffix<'a>(before: &str, after: &'a str) -> &'a str {
    if let Some(rest) = after.strip_prefix(before) {
        return rest;
    }
    // A decoder that rewrote earlier text (rare clean-up rules): emit from the first difference.
    let common = before
        .char_indices()
        .zip(after.chars())
        .find(|((_, a), b)| a != b)
        .map_or(before.len().min(after.len()), |((i, _), _)| i);
    after.get(common..).unwrap_or("")
}
