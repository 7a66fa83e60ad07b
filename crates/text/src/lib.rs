//! minibar-text: everything between text and token ids, with no MLX dependency.
//!
//! GGUF metadata reading, tokenizers built from GGUF metadata or loaded from Hugging Face
//! folders, chat templates, streaming detokenization and stop strings, and tool calls
//! (definitions into the prompt, calls out of the reply: [`tools`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chat;
pub mod error;
pub mod gguf;
pub mod gguf_tokenizer;
mod guard;
pub mod hf;
pub mod model;
pub mod pretokenize;
mod pyjson;
pub mod stop;
pub mod stream;
pub mod tools;

pub use chat::{ChatTemplate, Message, RenderOptions, CHATML_FALLBACK};
pub use error::TextError;
pub use gguf::{GgufError, GgufMetadata, GgufTensorInfo, GgufValue};
pub use gguf_tokenizer::{gguf_specials, tokenizer_from_gguf, GgufSpecials};
pub use hf::HfTokenizerConfig;
pub use model::TextModel;
pub use stop::{StopMatcher, StopOutput};
pub use stream::StreamDecoder;
pub use tokenizers::Tokenizer;
pub use tools::{ForcedCall, ToolCall, ToolSupport, ToolSyntax, Turn};
