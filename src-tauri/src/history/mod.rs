//! The chat history: sessions and messages in SQLite (WAL), written as replies stream so a
//! crash or a kill loses at most the token in flight; full-text search (FTS5); Markdown export.

mod export;
mod schema;
mod search;
mod store;

pub use export::to_markdown;
pub use store::{now_ms, History, NewMessage};

#[cfg(test)]
mod tests;
