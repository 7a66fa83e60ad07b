//! Builds a Hugging Face `tokenizers::Tokenizer` from a GGUF file's `tokenizer.ggml.*` metadata,
//! matching what llama.cpp does with the same metadata.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
};

use crate::error::TextError;
use crate::gguf::GgufMetadata;
use crate::pretokenize;

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
mod token_type {
    pub const UNKNOWN: i64 = 2;
    pub const CONTROL: i64 = 3;
    pub const USER_DEFINED: i64 = 4;
}

/// SentencePiece's word-boundary marker.
const SPIECE_UNDERLINE: &str = "\u{2581}";

/// The special-token settings of a GGUF vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GgufSpecials {
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id` (end of turn), when the model names one.
    pub eot: Option<u32>,
    /// `tokenizer.ggml.eom_token_id` (end of message), when the model names one.
    pub eom: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// Whether a BOS token is prepended to prompts.
    pub add_bos: bool,
    /// Whether an EOS token is appended to prompts.
    pub add_eos: bool,
}

/// Reads the special token ids and the add-BOS/EOS flags, with llama.cpp's defaults per model.
pub fn gguf_specials(meta: &GgufMetadata) -> Result<GgufSpecials, TextError> {
    let id = |key: &str| -> Result<Option<u32>, TextError> {
        // llama.cpp writes -1 (as u32::MAX or i32 -1) for "no such token".
        Ok(meta
            .get_i64(key)?
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v != u32::MAX))
    };
    let model = meta.require_str("tokenizer.ggml.model")?;
    // SentencePiece vocabularies add BOS unless the file says otherwise; BPE ones only when told.
    let default_bos = model == "llama";
    Ok(GgufSpecials {
        bos: id("tokenizer.ggml.bos_token_id")?,
        eos: id("tokenizer.ggml.eos_token_id")?,
        eot: id("tokenizer.ggml.eot_token_id")?,
        eom: id("tokenizer.ggml.eom_token_id")?,
        unk: id("tokenizer.ggml.unknown_token_id")?,
        pad: id("tokenizer.ggml.padding_token_id")?,
        add_bos: meta
            .get_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(default_bos),
        add_eos: meta
            .get_bool("tokenizer.ggml.add_eos_token")?
            .unwrap_or(false),
    })
}

/// Builds the tokenizer that encodes text to the same ids as llama.cpp does for this GGUF.
///
/// Supports `tokenizer.ggml.model` "gpt2" (byte-level BPE, with the pre-tokenizer named by
/// `tokenizer.ggml.pre`) and "llama" (SentencePiece BPE with byte fallback). The result
/// serializes to a `tokenizer.json` that Python's `tokenizers`/`transformers` load.
pub fn tokenizer_from_gguf(meta: &GgufMetadata) -> Result<Tokenizer, TextError> {
    let model = meta.require_str("tokenizer.ggml.model")?;
    let tokens = meta
        .get_str_array("tokenizer.ggml.tokens")?
        .ok_or_else(|| TextError::Tokenizer("GGUF has no tokenizer.ggml.tokens".into()))?;
    let types = match meta.get_i64_array("tokenizer.ggml.token_type")? {
        Some(t) if t.len() == tokens.len() => t,
        Some(t) => {
            return Err(TextError::Tokenizer(format!(
                "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                t.len(),
                tokens.len()
            )))
        }
        None => vec![1; tokens.len()],
    };
    let specials = gguf_specials(meta)?;
    for (name, id) in [
        ("bos", specials.bos),
        ("eos", specials.eos),
        ("unk", specials.unk),
    ] {
        if let Some(id) = id.filter(|&id| id as usize >= tokens.len()) {
            return Err(TextError::Tokenizer(format!(
                "{name} token id {id} is outside the vocabulary of {} tokens",
                tokens.len()
            )));
        }
    }

    let mut tokenizer = match model {
        "gpt2" => byte_level_bpe(meta, &tokens)?,
        "llama" => sentencepiece_bpe(meta, &tokens, &types, specials.unk)?,
        other => {
            return Err(TextError::Tokenizer(format!(
                "unsupported tokenizer.ggml.model '{other}' (supported: gpt2, llama); \
                 load the model from its Hugging Face folder instead"
            )))
        }
    };

    // Control, user-defined and unknown tokens are matched in raw text before any splitting,
    // as llama.cpp does when it tokenizes with special tokens enabled.
    let mut special = Vec::new();
    let mut user = Vec::new();
    // Only the token type decides, as in llama.cpp: a BOS/EOS typed "normal" stays plain text.
    for (&text, &ty) in tokens.iter().zip(&types) {
        let token = |special| {
            AddedToken::from(text, special)
                .normalized(false)
                .lstrip(false)
                .rstrip(false)
                .single_word(false)
        };
        match ty {
            token_type::CONTROL | token_type::UNKNOWN => special.push(token(true)),
            token_type::USER_DEFINED => user.push(token(false)),
            _ => {}
        }
    }
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&user);

    let bos = specials.bos.map(|id| (tokens[id as usize], id));
    let eos = specials.eos.map(|id| (tokens[id as usize], id));
    let post = bos_eos_template(
        specials.add_bos.then_some(bos).flatten(),
        specials.add_eos.then_some(eos).flatten(),
    )?;
    tokenizer.with_post_processor(post);
    Ok(tokenizer)
}

/// A template that adds BOS/EOS around each sequence, or `None` when neither is added.
fn bos_eos_template(
    bos: Option<(&str, u32)>,
    eos: Option<(&str, u32)>,
) -> Result<Option<TemplateProcessing>, TextError> {
    if bos.is_none() && eos.is_none() {
        return Ok(None);
    }
    let piece = |t: Option<(&str, u32)>| t.map(|(s, _)| s.to_string());
    let mut single = Vec::new();
    single.extend(piece(bos));
    single.push("$A".to_string());
    single.extend(piece(eos));
    let mut pair = single.clone();
    pair.extend(piece(bos));
    pair.push("$B:1".to_string());
    pair.extend(piece(eos));
    let mut ids: Vec<(String, u32)> = Vec::new();
    for (s, id) in bos.into_iter().chain(eos) {
        if !ids.iter().any(|(t, _)| t == s) {
            ids.push((s.to_string(), id));
        }
    }
    TemplateProcessing::builder()
        .try_single(single)
        .and_then(|b| b.try_pair(pair))
        .map_err(|e| TextError::Tokenizer(format!("bos/eos template: {e}")))?
        .special_tokens(ids)
        .build()
        .map(Some)
        .map_err(|e| TextError::Tokenizer(format!("bos/eos template: {e}")))
}

/// The vocabulary as a map; later duplicates win, as in llama.cpp's `token_to_id`.
fn vocab_map(tokens: &[&str]) -> Vocab {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect()
}

/// GPT-2 style byte-level BPE ("gpt2" in GGUF).
fn byte_level_bpe(meta: &GgufMetadata, tokens: &[&str]) -> Result<Tokenizer, TextError> {
    let vocab = vocab_map(tokens);
    let merges_raw = meta
        .get_str_array("tokenizer.ggml.merges")?
        .ok_or_else(|| {
            TextError::Tokenizer("GGUF BPE vocabulary has no tokenizer.ggml.merges".into())
        })?;
    let mut merges = Vec::with_capacity(merges_raw.len());
    for (i, m) in merges_raw.iter().enumerate() {
        // llama.cpp splits at the first space after the first byte, so a merge may start with one.
        let first = m.chars().next().map_or(0, char::len_utf8);
        let split = m[first..].find(' ').map(|p| p + first);
        let Some(p) = split else {
            return Err(TextError::Tokenizer(format!(
                "merge {i} ('{m}') has no space separating its two parts"
            )));
        };
        let (a, b) = (&m[..p], &m[p + 1..]);
        // A merge whose parts or result are not tokens can never fire in llama.cpp; drop it.
        if vocab.contains_key(a) && vocab.contains_key(b) && vocab.contains_key(&format!("{a}{b}"))
        {
            merges.push((a.to_string(), b.to_string()));
        }
    }
    let pre = meta.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let spec = pretokenize::spec_for(pre)?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(spec.ignore_merges)
        .build()?;

    let mut steps: Vec<PreTokenizerWrapper> = Vec::new();
    for re in &spec.regexes {
        let split = Split::new(
            SplitPattern::Regex(re.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(PreSequence::new(steps)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::new(false, false, false)));
    Ok(tokenizer)
}

/// SentencePiece-style BPE with byte fallback ("llama" in GGUF).
///
/// GGUF stores scores instead of merges; llama.cpp merges the adjacent pair whose union has the
/// highest score, so the merge list is every split of every token into two tokens, ranked by the
/// whole token's score.
fn sentencepiece_bpe(
    meta: &GgufMetadata,
    tokens: &[&str],
    types: &[i64],
    unk: Option<u32>,
) -> Result<Tokenizer, TextError> {
    let scores = meta
        .get_f64_array("tokenizer.ggml.scores")?
        .ok_or_else(|| {
            TextError::Tokenizer(
                "GGUF SentencePiece vocabulary has no tokenizer.ggml.scores".into(),
            )
        })?;
    if scores.len() != tokens.len() {
        return Err(TextError::Tokenizer(format!(
            "tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}",
            scores.len(),
            tokens.len()
        )));
    }
    let vocab = vocab_map(tokens);
    let mut ranked: Vec<(f64, u32, u32, &str, &str)> = Vec::new();
    for (id, &tok) in tokens.iter().enumerate() {
        // Only normal tokens are reachable by merging in llama.cpp's SentencePiece tokenizer.
        if types[id] != 1 {
            continue;
        }
        for (p, _) in tok.char_indices().skip(1) {
            let (a, b) = tok.split_at(p);
            if let (Some(&ia), Some(&ib)) = (vocab.get(a), vocab.get(b)) {
                ranked.push((scores[id], ia, ib, a, b));
            }
        }
    }
    // Highest score first; ties keep the smaller ids first so the order is reproducible.
    ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let merges = ranked
        .into_iter()
        .map(|(_, _, _, a, b)| (a.to_string(), b.to_string()))
        .collect::<Vec<_>>();

    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(tokens[unk as usize].to_string());
    }
    let mut tokenizer = Tokenizer::new(builder.build()?);

    let add_space_prefix = meta
        .get_bool("tokenizer.ggml.add_space_prefix")?
        .unwrap_or(true);
    let mut norm: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        norm.push(Prepend::new(SPIECE_UNDERLINE.to_string()).into());
    }
    norm.push(Replace::new(" ", SPIECE_UNDERLINE)?.into());
    tokenizer.with_normalizer(Some(NormalizerSequence::new(norm)));

    let mut dec: Vec<DecoderWrapper> = vec![
        tokenizers::decoders::DecoderWrapper::Replace(Replace::new(SPIECE_UNDERLINE, " ")?),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        dec.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(dec)));
    Ok(tokenizer)
}
