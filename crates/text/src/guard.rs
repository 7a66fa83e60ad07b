//! The tokenizers crate indexes and slices without checks on some of what it reads from
//! `tokenizer.json` (a template naming a special token it does not define, a subword prefix
//! longer than a merged token, ...), and panics. Every call this crate makes into a tokenizer
//! goes through [`tokenizer_call`], so a malformed file is an error the user can read, never a
//! crash of the engine thread. The fuzz tests (tests/fuzz_parsers.rs) drive it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::TextError;

/// Runs `f`, turning a panic inside it into [`TextError::Tokenizer`] naming `what` was done.
pub(crate) fn tokenizer_call<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, TextError>,
) -> Result<T, TextError> {
    // Tokenizers hold no state a panic could leave half-updated that a later call relies on
    // (their caches are cleared or rebuilt), so continuing with the error is sound.
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(TextError::Tokenizer(format!(
            "the tokenizer failed while {what} ({detail}); its tokenizer.json is malformed"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        let e = tokenizer_call::<()>("encoding", || panic!("index out of bounds"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("encoding") && e.contains("index out of bounds"),
            "{e}"
        );
        assert_eq!(tokenizer_call("encoding", || Ok(3)).unwrap(), 3);
    }
}
