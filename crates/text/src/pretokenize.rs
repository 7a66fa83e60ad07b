//! The pre-tokenizer regexes that llama.cpp applies for each `tokenizer.ggml.pre` name.
//!
//! llama.cpp splits text with a list of regexes applied one after the other, keeping both the
//! matches and the text between them (Hugging Face's `Split` with `Isolated` behaviour), then
//! byte-encodes each piece. The patterns below are llama.cpp's (`llama-vocab.cpp`), which
//! Oniguruma, the regex engine `tokenizers` uses, accepts unchanged.

use crate::error::TextError;

/// GPT-2's split pattern.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's pattern with llama.cpp's case-insensitive contractions spelled out.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's pattern: like Llama 3's but digits one at a time.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 3.5's pattern: Qwen 2's with combining marks kept inside words.
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Mistral's Tekken pattern as llama.cpp adapts it.
const TEKKEN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a byte-level BPE vocabulary splits text before merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreTokenizerSpec {
    /// Regexes applied in order; each splits the pieces the previous one produced.
    pub regexes: Vec<&'static str>,
    /// Whether a piece found whole in the vocabulary skips merging (llama.cpp's `ignore_merges`).
    pub ignore_merges: bool,
}

/// Names accepted by [`spec_for`], for error messages.
const KNOWN: &str = "default, gpt2/gpt-2, smollm, starcoder, llama3/llama-bpe, qwen2, qwen35, tekken, falcon, \
     refact, command-r, codeshell, exaone, minerva-7b, mpt, olmo, dbrx, smaug-bpe, stablelm2, phi-2";

/// The split rules llama.cpp uses for a `tokenizer.ggml.pre` value (empty means "default").
pub fn spec_for(pre: &str) -> Result<PreTokenizerSpec, TextError> {
    let (regexes, ignore_merges): (Vec<&'static str>, bool) = match pre {
        "" | "default" => (
            vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
            false,
        ),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => (vec![LLAMA3], true),
        "dbrx" | "smaug-bpe" => (vec![LLAMA3], false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (vec![r"\p{N}", GPT2], false)
        }
        "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "exaone4" => (vec![GPT2], false),
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "megrez" | "hunyuan" => (vec![QWEN2], false),
        "qwen35" => (vec![QWEN35], false),
        "tekken" => (vec![TEKKEN], true),
        "falcon" => (
            vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
            false,
        ),
        other => {
            return Err(TextError::Tokenizer(format!(
                "unsupported pre-tokenizer '{other}' in tokenizer.ggml.pre (supported: {KNOWN}); \
                 load the model from its Hugging Face folder instead"
            )))
        }
    };
    Ok(PreTokenizerSpec {
        regexes,
        ignore_merges,
    })
}
