//! `TextModel`: a model's tokenizer, special tokens and chat template, from GGUF or a folder.

use std::collections::BTreeSet;
use std::path::Path;

use tokenizers::Tokenizer;

use crate::chat::{ChatTemplate, Message};
use crate::error::TextError;
use crate::gguf::GgufMetadata;
use crate::gguf_tokenizer::{gguf_specials, tokenizer_from_gguf};
use crate::guard::tokenizer_call;
use crate::hf::HfTokenizerConfig;
use crate::stream::StreamDecoder;

/// Token texts that end a turn when the vocabulary has them as control tokens (llama.cpp's list).
const END_OF_TURN_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eom_id|>",
    "<EOT>",
];

/// Everything text-side the engine needs for one model.
#[derive(Debug, Clone)]
pub struct TextModel {
    /// The tokenizer; its post-processor adds BOS/EOS when `encode(.., true)` asks for them.
    pub tokenizer: Tokenizer,
    /// Beginning-of-sequence id, if the model has one.
    pub bos: Option<u32>,
    /// The model's own EOS id (`eos_token`), the first of the ids in `eos`.
    pub eos_token: Option<u32>,
    /// Ids that end generation (EOS, end-of-turn and the like).
    pub eos: BTreeSet<u32>,
    /// Whether encoding with special tokens prepends BOS.
    pub add_bos: bool,
    /// The model's chat template, or `None` when it ships none (see [`TextModel::chat_template`]).
    pub chat_template: Option<ChatTemplate>,
}

impl TextModel {
    /// Builds the tokenizer, special tokens and template from GGUF metadata.
    pub fn from_gguf(meta: &GgufMetadata) -> Result<Self, TextError> {
        let tokenizer = tokenizer_from_gguf(meta)?;
        let sp = gguf_specials(meta)?;
        let text = |id: Option<u32>| id.and_then(|i| tokenizer.id_to_token(i));
        let mut eos: BTreeSet<u32> = [sp.eos, sp.eot, sp.eom].into_iter().flatten().collect();
        for t in END_OF_TURN_TEXTS {
            if let Some(id) = special_id(&tokenizer, t) {
                eos.insert(id);
            }
        }
        let chat_template = match meta.get_str("tokenizer.chat_template")? {
            Some(src) => Some(ChatTemplate::new(
                src,
                text(sp.bos).as_deref(),
                text(sp.eos).as_deref(),
            )?),
            None => None,
        };
        Ok(TextModel {
            tokenizer,
            bos: sp.bos,
            eos_token: sp.eos,
            eos,
            add_bos: sp.add_bos && sp.bos.is_some(),
            chat_template,
        })
    }

    /// The tokenizer and template of a model at `path`: a `.gguf` file's metadata, or a
    /// model folder's files (see [`from_hf_dir`](Self::from_hf_dir)).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TextError> {
        let path = path.as_ref();
        if path.is_file() {
            Self::from_gguf(&GgufMetadata::open(path)?)
        } else {
            Self::from_hf_dir(path)
        }
    }

    /// Reads `tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja` and the generation
    /// config's EOS ids from a Hugging Face or mlx-lm model folder.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self, TextError> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(TextError::MissingFile { path });
        }
        let tokenizer = tokenizer_call("reading tokenizer.json", || {
            let t = Tokenizer::from_file(&path)
                .map_err(|e| TextError::Tokenizer(format!("{}: {e}", path.display())))?;
            check_post_processor(&t)
                .map_err(|e| TextError::Tokenizer(format!("{}: {e}", path.display())))?;
            Ok(t)
        })?;
        let cfg = HfTokenizerConfig::read(dir)?;
        let id_of = |t: &Option<String>| t.as_deref().and_then(|t| tokenizer.token_to_id(t));
        let bos = id_of(&cfg.bos_token);
        let eos_token = id_of(&cfg.eos_token);
        let mut eos = cfg.eos_token_ids.clone();
        eos.extend(eos_token);
        // What the tokenizer's own post-processor does is what encoding will do.
        let probe = tokenizer_call("encoding", || Ok(tokenizer.encode("a", true)?))?;
        let add_bos = bos.is_some_and(|b| probe.get_ids().first() == Some(&b));
        let chat_template = match &cfg.chat_template {
            Some(src) => {
                let mut t =
                    ChatTemplate::new(src, cfg.bos_token.as_deref(), cfg.eos_token.as_deref())?;
                for (name, v) in [("pad_token", &cfg.pad_token), ("unk_token", &cfg.unk_token)] {
                    if let Some(v) = v {
                        t.set_special_token(name, v);
                    }
                }
                Some(t)
            }
            None => None,
        };
        Ok(TextModel {
            tokenizer,
            bos,
            eos_token,
            eos,
            add_bos,
            chat_template,
        })
    }

    /// The model's template, or the ChatML fallback when it has none (check `is_fallback`).
    pub fn chat_template(&self) -> ChatTemplate {
        self.chat_template
            .clone()
            .unwrap_or_else(ChatTemplate::chatml_fallback)
    }

    /// Renders a conversation with the model's template (or ChatML) and tokenizes it.
    ///
    /// Templates write BOS themselves where the model wants it, so no special tokens are added,
    /// as transformers' `apply_chat_template(tokenize=True)` does.
    pub fn encode_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, TextError> {
        let text = self
            .chat_template()
            .render(messages, add_generation_prompt)?;
        self.encode(&text, false)
    }

    /// Renders a conversation that may involve tools (see [`crate::tools::render`]) for the
    /// assistant's turn and tokenizes it, as [`encode_chat`](Self::encode_chat) does;
    /// `reply_start`: text the assistant's reply begins with (a forced call's opening), or "".
    pub fn encode_conversation(
        &self,
        turns: &[crate::tools::Turn],
        tools: &[serde_json::Value],
        reply_start: &str,
    ) -> Result<Vec<u32>, TextError> {
        let text = crate::tools::render(&self.chat_template(), turns, tools, true)?;
        self.encode(&(text + reply_start), false)
    }

    /// How this model's template takes tools, and how its replies carry calls.
    pub fn tool_support(&self) -> crate::tools::ToolSupport {
        crate::tools::ToolSupport::of(&self.chat_template())
    }

    /// Tokenizes `text`; `add_special` adds BOS/EOS as the model's tokenizer is configured to.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TextError> {
        tokenizer_call("encoding", || {
            Ok(self.tokenizer.encode(text, add_special)?.get_ids().to_vec())
        })
    }

    /// Turns ids back into text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TextError> {
        tokenizer_call("decoding", || {
            Ok(self.tokenizer.decode(ids, skip_special_tokens)?)
        })
    }

    /// Whether `id` ends generation.
    pub fn is_eos(&self, id: u32) -> bool {
        self.eos.contains(&id)
    }

    /// A streaming decoder for generated ids.
    pub fn stream_decoder(&self, skip_special_tokens: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(&self.tokenizer, skip_special_tokens)
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` and `generation_config.json` (all EOS
    /// ids) into `dir`, so that [`from_hf_dir`](Self::from_hf_dir), transformers and mlx-lm
    /// load the same tokenizer, special tokens, stop ids and chat template (used when importing
    /// a GGUF).
    pub fn save_hf_files(&self, dir: impl AsRef<Path>) -> Result<(), TextError> {
        let dir = dir.as_ref();
        let write = |name: &str, value: &serde_json::Value| {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(value).unwrap_or_default();
            std::fs::write(&path, text).map_err(|source| TextError::Io { path, source })
        };
        let json = self.tokenizer.to_string(true)?;
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, json).map_err(|source| TextError::Io { path, source })?;
        let text = |id: Option<u32>| id.and_then(|i| self.tokenizer.id_to_token(i));
        let mut cfg = serde_json::Map::new();
        cfg.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        cfg.insert("bos_token".into(), text(self.bos).into());
        cfg.insert("eos_token".into(), text(self.eos_token).into());
        cfg.insert("add_bos_token".into(), self.add_bos.into());
        cfg.insert("clean_up_tokenization_spaces".into(), false.into());
        if let Some(t) = &self.chat_template {
            cfg.insert("chat_template".into(), t.source().into());
        }
        write("tokenizer_config.json", &cfg.into())?;
        // The model's own EOS first, as transformers treats the first id as the primary one.
        let ids: Vec<u32> = self
            .eos_token
            .into_iter()
            .chain(
                self.eos
                    .iter()
                    .copied()
                    .filter(|&e| Some(e) != self.eos_token),
            )
            .collect();
        let mut generation = serde_json::Map::new();
        if let Some(b) = self.bos {
            generation.insert("bos_token_id".into(), b.into());
        }
        generation.insert("eos_token_id".into(), ids.into());
        write("generation_config.json", &generation.into())
    }
}

/// The id of `text` when it is a special (added) token of `tokenizer`.
fn special_id(tokenizer: &Tokenizer, text: &str) -> Option<u32> {
    tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .find(|(_, t)| t.special && t.content == text)
        .map(|(id, _)| id)
}

/// Refuses a `TemplateProcessing` post-processor that the tokenizers crate would panic on
/// while encoding (it checks these only when one is built in code, not when one is read from
/// `tokenizer.json`): a special token the template names but does not define, a special token
/// with unequal id and token lists, or the second sequence in the single-sequence template.
fn check_post_processor(tokenizer: &Tokenizer) -> Result<(), String> {
    fn check(p: &serde_json::Value) -> Result<(), String> {
        match p.get("type").and_then(serde_json::Value::as_str) {
            Some("Sequence") => p
                .get("processors")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .try_for_each(check),
            Some("TemplateProcessing") => {
                let specials = p
                    .get("special_tokens")
                    .and_then(serde_json::Value::as_object);
                for (id, t) in specials.into_iter().flatten() {
                    let len =
                        |k: &str| t.get(k).and_then(serde_json::Value::as_array).map(Vec::len);
                    if len("ids") != len("tokens") {
                        return Err(format!(
                            "post-processor special token `{id}` has unequal ids and tokens"
                        ));
                    }
                }
                for (template, pair) in [("single", false), ("pair", true)] {
                    let pieces = p.get(template).and_then(serde_json::Value::as_array);
                    for piece in pieces.into_iter().flatten() {
                        if let Some(id) = piece.pointer("/SpecialToken/id").and_then(|v| v.as_str())
                        {
                            if !specials.is_some_and(|s| s.contains_key(id)) {
                                return Err(format!(
                                    "post-processor template `{template}` uses special token `{id}`, which it does not define"
                                ));
                            }
                        }
                        if !pair
                            && piece.pointer("/Sequence/id").and_then(|v| v.as_str()) == Some("B")
                        {
                            return Err(
                                "post-processor template `single` uses the second sequence".into(),
                            );
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    match tokenizer.get_post_processor() {
        None => Ok(()),
        Some(p) => check(&serde_json::to_value(p).map_err(|e| e.to_string())?),
    }
}
