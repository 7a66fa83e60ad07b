//! Chat sessions, messages, generation requests and the `chat-event` stream.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::AppError;

/// Sampling parameters; `seed` null means random.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SamplingParams {
    /// Softmax temperature; 0 is greedy.
    pub temperature: f64,
    /// Nucleus sampling mass.
    pub top_p: f64,
    /// Keep the k most likely tokens; 0 keeps all.
    pub top_k: u32,
    /// Drop tokens below this fraction of the best one's probability.
    pub min_p: f64,
    /// Penalty on tokens already in the context; 1 is none.
    pub repetition_penalty: f64,
    /// Tokens to generate at most.
    pub max_tokens: u32,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    /// mlx-lm's and llama.cpp's usual defaults (as the UI's `DEFAULT_SAMPLING`).
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            repetition_penalty: 1.1,
            max_tokens: 1024,
            seed: None,
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    Eos,
    /// The token limit was reached.
    MaxTokens,
    /// The user stopped it.
    Stopped,
    /// It failed.
    Error,
}

/// Figures shown under each reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct GenerationStats {
    /// Prompt tokens processed.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Time to first token: from the request to the first generated token.
    pub ttft_ms: f64,
    /// Decode speed: generated tokens ÷ time after the first token.
    pub tokens_per_second: f64,
    /// Wall time of the whole request.
    pub total_ms: f64,
    /// Why it ended.
    pub stop_reason: StopReason,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The name stored in SQLite and given to chat templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Parses a stored role.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Complete.
    Done,
    /// Being generated (or cut off by a crash before the app restarted).
    Streaming,
    /// Stopped by the user.
    Stopped,
    /// The generation failed.
    Error,
}

impl MessageStatus {
    /// The name stored in SQLite.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Done => "done",
            MessageStatus::Streaming => "streaming",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Error => "error",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<MessageStatus> {
        match s {
            "done" => Some(MessageStatus::Done),
            "streaming" => Some(MessageStatus::Streaming),
            "stopped" => Some(MessageStatus::Stopped),
            "error" => Some(MessageStatus::Error),
            _ => None,
        }
    }
}

/// A message as stored in the SQLite history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Stable id.
    pub id: String,
    /// Who wrote it.
    pub role: Role,
    /// Its text (Markdown for replies).
    pub content: String,
    /// Variant id that wrote an assistant message; null for user messages.
    pub model: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    /// `streaming` only while a generation is running (or was cut off by a crash).
    pub status: MessageStatus,
    /// Figures of the generation, for replies.
    pub stats: Option<GenerationStats>,
    /// Why the generation failed.
    pub error: Option<AppError>,
}

/// A chat with its messages, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ChatSession {
    /// Stable id.
    pub id: String,
    /// From the first message, or "New chat".
    pub title: String,
    /// The variant id the chat uses.
    pub model: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: u64,
    /// Unix milliseconds.
    pub updated_at_ms: u64,
    /// Every message, oldest first.
    pub messages: Vec<ChatMessage>,
}

/// A row of the session list, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// Stable id.
    pub id: String,
    /// The session's title.
    pub title: String,
    /// The variant id the chat uses.
    pub model: Option<String>,
    /// Unix milliseconds.
    pub updated_at_ms: u64,
    /// How many messages it holds.
    pub message_count: u32,
    /// The start of the last message, for the list.
    pub preview: String,
}

/// A search result: the session and the matching text around the hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// The session the hit is in.
    pub session: SessionSummary,
    /// The message that matched.
    pub message_id: String,
    /// The text around the match.
    pub snippet: String,
}

/// A chat exported as Markdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MarkdownExport {
    /// A suggested file name.
    pub file_name: String,
    /// The chat.
    pub markdown: String,
}

/// Ask for a reply to a new user message. `params` null uses the saved sampling defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    /// The session to add to.
    pub session_id: String,
    /// The user's text.
    pub content: String,
    /// The variant id to answer with.
    pub model: String,
    /// Sampling for this reply.
    pub params: Option<SamplingParams>,
}

/// What a generation request started: the ids to match `chat-event`s against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct GenerationStarted {
    /// The request's id.
    pub request_id: String,
    /// The session.
    pub session_id: String,
    /// The stored user message (new or edited); null for a regenerate.
    pub user_message_id: Option<String>,
    /// The assistant message that will receive the tokens.
    pub assistant_message_id: String,
}

/// Event `chat-event`: the stream of a generation. In order, per request: one `started`, any
/// number of `token` (with `index` counting from 0), then exactly one of `done` or `error`.
/// A stop ends with `done` whose stats say `stopped`. `saveFailed` may come anywhere before
/// the end: the reply streams on but the history could not store it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, tauri_specta::Event)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ChatEvent {
    /// The model is loaded and the prompt is being processed.
    #[serde(rename_all = "camelCase")]
    Started {
        /// The request.
        request_id: String,
        /// The session.
        session_id: String,
        /// The assistant message.
        message_id: String,
        /// The variant id.
        model: String,
    },
    /// A piece of text.
    #[serde(rename_all = "camelCase")]
    Token {
        /// The request.
        request_id: String,
        /// The session.
        session_id: String,
        /// The assistant message.
        message_id: String,
        /// Counts from 0, so the UI can drop duplicates.
        index: u32,
        /// The text.
        text: String,
    },
    /// The reply is complete (or was stopped).
    #[serde(rename_all = "camelCase")]
    Done {
        /// The request.
        request_id: String,
        /// The session.
        session_id: String,
        /// The assistant message.
        message_id: String,
        /// Its figures.
        stats: GenerationStats,
    },
    /// The history could not store the reply (disk full, database unwritable).
    #[serde(rename_all = "camelCase")]
    SaveFailed {
        /// The request.
        request_id: String,
        /// The session.
        session_id: String,
        /// The assistant message.
        message_id: String,
        /// What went wrong, to show.
        error: AppError,
    },
    /// The generation failed.
    #[serde(rename_all = "camelCase")]
    Error {
        /// The request.
        request_id: String,
        /// The session.
        session_id: String,
        /// The assistant message.
        message_id: String,
        /// What went wrong.
        error: AppError,
        /// Figures up to the failure, when there are any.
        stats: Option<GenerationStats>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_events_serialize_as_the_ui_reads_them() {
        let e = ChatEvent::Token {
            request_id: "r".into(),
            session_id: "s".into(),
            message_id: "m".into(),
            index: 3,
            text: "hi".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "kind": "token", "requestId": "r", "sessionId": "s", "messageId": "m", "index": 3, "text": "hi" })
        );
        assert_eq!(<ChatEvent as tauri_specta::Event>::NAME, "chat-event");
    }
}
