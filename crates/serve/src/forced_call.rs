//! Forced tool calls (OpenAI's `tool_choice` "required" or a named function). The prompt
//! ends inside a call ([`minibar_text::ForcedCall`]'s opening, after the generation prompt),
//! so generation continues it: first one of the heads (the rest of the call up to its
//! arguments, when several functions may be called), then the arguments, constrained to one
//! JSON object as JSON mode constrains a reply. Once the object closes the call is complete:
//! the sequence ends without waiting for the model, and the server writes the closing.
//!
//! Invariant: unless the length limit or a stop string cuts it, the reply is
//! `opening + head + object + closing`, which parses as a call of an offered function with
//! an object for arguments.

use std::rc::Rc;

use crate::json_mode::{JsonConstraint, TokenTexts};

/// One sequence's constraint while it writes a forced call.
pub(crate) struct CallConstraint {
    texts: Rc<TokenTexts>,
    /// What may come before the arguments, one per function (empty: already in the prompt).
    heads: Vec<String>,
    /// Written of the head so far.
    written: String,
    /// Whether the head is complete (the arguments are being written).
    in_arguments: bool,
    arguments: JsonConstraint,
}

impl CallConstraint {
    /// A constraint for a call whose reply starts now and must begin with one of `heads`.
    pub fn new(texts: Rc<TokenTexts>, heads: Vec<String>) -> Self {
        Self {
            arguments: JsonConstraint::new(texts.clone()),
            texts,
            in_arguments: heads.is_empty(),
            heads,
            written: String::new(),
        }
    }

    /// An additive mask for `vocab` logits, as [`JsonConstraint::mask`]: within the head, a
    /// token is allowed when the head written so far and its text begin one of the heads
    /// (tokens never straddle the head and the arguments: byte-level vocabularies have a
    /// token for every character of ASCII names).
    pub fn mask(&self, vocab: usize) -> Option<Vec<f32>> {
        if self.in_arguments {
            return self.arguments.mask(vocab);
        }
        let mut mask = vec![f32::NEG_INFINITY; vocab];
        let mut any = false;
        let continues = |text: &str| {
            self.heads.iter().any(|h| {
                h.strip_prefix(self.written.as_str())
                    .is_some_and(|rest| rest.starts_with(text))
            })
        };
        for (id, text) in self.texts.iter().enumerate().take(vocab) {
            if !text.is_empty() && continues(text) {
                mask[id] = 0.0;
                any = true;
            }
        }
        any.then_some(mask)
    }

    /// Takes the token chosen.
    pub fn accept(&mut self, token: u32) {
        if self.in_arguments {
            return self.arguments.accept(token);
        }
        self.written.push_str(self.texts.text(token));
        self.in_arguments = self.heads.contains(&self.written);
    }

    /// Whether the arguments object is closed: the call is complete.
    pub fn complete(&self) -> bool {
        self.in_arguments && self.arguments.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(c: &CallConstraint, vocab: usize) -> Vec<usize> {
        let m = c.mask(vocab).unwrap();
        (0..vocab).filter(|&i| m[i] == 0.0).collect()
    }

    #[test]
    fn the_head_is_one_of_the_names_then_an_object_closes_the_call() {
        let vocab = [
            " \"",
            "a",
            "b",
            "ab",
            "\",",
            " \"arguments\":",
            " {",
            "}",
            "x",
            "",
        ];
        let texts = Rc::new(TokenTexts::from_texts(&vocab, vec![9]));
        let heads = ["a", "ab"].map(|n| format!(" \"{n}\", \"arguments\":"));
        let mut c = CallConstraint::new(texts, heads.to_vec());
        assert_eq!(allowed(&c, 10), vec![0], "only the opening quote");
        c.accept(0);
        assert_eq!(allowed(&c, 10), vec![1, 3], "a name's start, nothing else");
        c.accept(1);
        assert_eq!(
            allowed(&c, 10),
            vec![2, 4],
            "\"a\" ends here or goes on to \"ab\""
        );
        for t in [4, 5] {
            c.accept(t);
        }
        assert!(!c.complete());
        assert_eq!(
            allowed(&c, 10),
            vec![6],
            "the arguments object, not its end"
        );
        c.accept(6);
        c.accept(7);
        assert!(c.complete());
    }

    #[test]
    fn a_named_call_starts_in_its_arguments() {
        let texts = Rc::new(TokenTexts::from_texts(&["{", "}", "x"], vec![]));
        let mut c = CallConstraint::new(texts, Vec::new());
        assert_eq!(allowed(&c, 3), vec![0]);
        c.accept(0);
        c.accept(1);
        assert!(c.complete());
    }
}
