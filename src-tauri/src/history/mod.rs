//! The chat history: sessions and messages in SQLite (WAL); replies committed in batches as
//! they stream ([`ReplyWriter`]: a kill loses about [`FLUSH_EVERY`] of text at most); full-text
//! search (FTS5) over finished messages; Markdown export. It needs no Tauri runtime, so a plain
//! process (the crash test's helper) drives the same code as the app.

mod export;
mod schema;
mod search;
mod store;
mod writer;

pub use export::to_markdown;
pub use store::{now_ms, History, NewMessage};
pub use writer::{ReplyWriter, FLUSH_EVERY};

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod tests;
