//! A chat session: a loaded model, its tokenizer and chat template, and the conversation's
//! KV cache, turning messages into a stream of text.

use std::path::Path;

use minibar_text::{GgufMetadata, Message, StopMatcher, TextModel};
use serde::{Deserialize, Serialize};

use crate::{
    error::{EngineError, Result},
    generate::{CancelToken, Conversation, FinishReason, GenerateOptions, GenerationStats},
    load::{load, LoadOptions, LoadedModel},
    sample::SamplingParams,
};

/// Settings for one reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatParams {
    /// Sampling.
    pub sampling: SamplingParams,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Extra stop strings.
    pub stop: Vec<String>,
}

impl Default for ChatParams {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::default(),
            max_tokens: 512,
            stop: Vec::new(),
        }
    }
}

/// The result of one reply.
#[derive(Debug, Clone, Serialize)]
pub struct ChatOutcome {
    /// The reply's text (stop strings removed).
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Counts and timings.
    pub stats: GenerationStats,
    /// Oldest messages left out so the conversation fits the context window.
    pub dropped_messages: usize,
}

/// A loaded model ready to chat.
pub struct Session {
    /// The network.
    pub model: LoadedModel,
    /// Tokenizer and template.
    pub text: TextModel,
    conversation: Conversation,
}

impl Session {
    /// Loads the model at `path` (a `.gguf` file or a model folder) with a context window of
    /// `context` tokens (default: the model's trained length, at most 8192).
    /// minibar-fit's gate judges the model at that context (or its default workload's).
    pub fn open(path: &Path, options: &LoadOptions, context: Option<usize>) -> Result<Self> {
        let mut options = options.clone();
        if options.memory.context.is_none() {
            options.memory.context = context.map(|c| c as u64);
        }
        let model = load(path, &options)?;
        let text = if path.is_file() {
            let meta = GgufMetadata::open(path).map_err(|e| EngineError::CorruptFile {
                path: path.to_owned(),
                format: "GGUF",
                detail: e.to_string(),
            })?;
            TextModel::from_gguf(&meta)?
        } else {
            TextModel::from_hf_dir(path)?
        };
        let context = context.unwrap_or_else(|| (model.context_length() as usize).min(8192));
        let conversation = Conversation::new(&model.model, context);
        Ok(Self {
            model,
            text,
            conversation,
        })
    }

    /// The context window in tokens.
    pub fn context(&self) -> usize {
        self.conversation.context
    }

    /// Bytes held by the conversation's KV cache.
    pub fn cache_bytes(&self) -> usize {
        self.conversation.cache_bytes()
    }

    /// Forgets the cached conversation.
    pub fn reset(&mut self) {
        self.conversation.reset(&self.model.model);
    }

    /// Renders `messages` with the chat template and tokenizes them, within this session's
    /// context window (see [`conversation_tokens`]).
    pub fn prompt_tokens(&self, messages: &[Message], reserve: usize) -> Result<(Vec<u32>, usize)> {
        conversation_tokens(&self.text, messages, self.context(), reserve)
    }

    /// Replies to a conversation, streaming text pieces to `on_text` as they are decoded.
    pub fn chat(
        &mut self,
        messages: &[Message],
        params: &ChatParams,
        cancel: &CancelToken,
        mut on_text: impl FnMut(&str),
    ) -> Result<ChatOutcome> {
        let (prompt, dropped) = self.prompt_tokens(messages, params.max_tokens)?;
        let opts = GenerateOptions {
            sampling: params.sampling.clone(),
            max_tokens: params.max_tokens,
            eos: self.text.eos.iter().copied().collect(),
            ignore_eos: false,
        };
        let mut decoder = self.text.stream_decoder(true);
        let mut stops = StopMatcher::new(params.stop.iter().cloned());
        let mut text = String::new();
        let mut error = None;
        let (finish, stats) =
            self.conversation
                .generate(
                    &self.model.model,
                    &prompt,
                    &opts,
                    cancel,
                    |id| match decoder.push(id) {
                        Ok(Some(piece)) => {
                            let out = stops.push(&piece);
                            if !out.text.is_empty() {
                                on_text(&out.text);
                                text.push_str(&out.text);
                            }
                            !out.stopped
                        }
                        Ok(None) => true,
                        Err(e) => {
                            error = Some(e);
                            false
                        }
                    },
                )?;
        if let Some(e) = error {
            return Err(e.into());
        }
        if finish != FinishReason::Stop {
            let mut tail = String::new();
            if let Ok(Some(rest)) = decoder.finish() {
                tail.push_str(&stops.push(&rest).text);
            }
            if !stops.stopped() {
                tail.push_str(&stops.finish());
            }
            if !tail.is_empty() {
                on_text(&tail);
                text.push_str(&tail);
            }
        }
        Ok(ChatOutcome {
            text,
            finish,
            stats,
            dropped_messages: dropped,
        })
    }

    /// Continues raw `prompt` text (no chat template), streaming pieces to `on_text`.
    pub fn complete(
        &mut self,
        prompt: &str,
        params: &ChatParams,
        cancel: &CancelToken,
        mut on_text: impl FnMut(&str),
    ) -> Result<ChatOutcome> {
        let ids = self.text.encode(prompt, true)?;
        self.reset();
        let opts = GenerateOptions {
            sampling: params.sampling.clone(),
            max_tokens: params.max_tokens,
            eos: self.text.eos.iter().copied().collect(),
            ignore_eos: false,
        };
        let mut decoder = self.text.stream_decoder(true);
        let mut text = String::new();
        let (finish, stats) =
            self.conversation
                .generate(&self.model.model, &ids, &opts, cancel, |id| {
                    if let Ok(Some(piece)) = decoder.push(id) {
                        on_text(&piece);
                        text.push_str(&piece);
                    }
                    true
                })?;
        if let Ok(Some(rest)) = decoder.finish() {
            on_text(&rest);
            text.push_str(&rest);
        }
        Ok(ChatOutcome {
            text,
            finish,
            stats,
            dropped_messages: 0,
        })
    }
}

/// Renders `messages` with the chat template and tokenizes them, leaving `reserve` tokens (at
/// most half the window) for the reply; returns the ids and how many messages were left out.
/// Context policy: when the conversation does not fit, the oldest non-system messages are
/// left out, one at a time; if even the last message alone does not fit, that is an error.
/// Every chat, one process or a cluster, asks this.
pub fn conversation_tokens(
    text: &TextModel,
    messages: &[Message],
    context: usize,
    reserve: usize,
) -> Result<(Vec<u32>, usize)> {
    let budget = context.saturating_sub(reserve.min(context / 2)).max(1);
    let system: Vec<&Message> = messages.iter().take_while(|m| m.role == "system").collect();
    let rest = &messages[system.len()..];
    for dropped in 0..rest.len().max(1) {
        let kept: Vec<Message> = system
            .iter()
            .map(|m| (*m).clone())
            .chain(rest[dropped..].iter().cloned())
            .collect();
        let ids = text.encode_chat(&kept, true)?;
        if ids.len() <= budget || dropped + 1 >= rest.len() {
            if ids.len() >= context {
                return Err(EngineError::ContextOverflow {
                    prompt: ids.len(),
                    context,
                });
            }
            return Ok((ids, dropped));
        }
    }
    unreachable!("the loop returns on its last iteration")
}
