//! Streaming a reply into the history in batches.
//!
//! Why: a commit per token re-wrote the message once per token and blocked the engine thread
//! on SQLite each time. Invariant: when [`ReplyWriter::push`] returns `Ok`, no text older than
//! [`FLUSH_EVERY`] (counted from when its piece arrived) waits in memory, so a kill loses at
//! most that much streamed text plus the piece in flight; the crash test (`crash_tests.rs`)
//! measures it.

use std::time::{Duration, Instant};

use super::History;
use crate::types::{AppError, AppResult, GenerationStats, MessageStatus};

/// How long streamed text may wait in memory before it is committed. The commit comes with
/// the first piece after this, so a kill loses text spanning up to this plus one token gap:
/// 200 ms leaves 50 ms for the gap under issue #12's 250 ms target.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The part of a streaming reply not yet committed.
pub struct ReplyWriter {
    message_id: String,
    every: Duration,
    pending: String,
    /// When the oldest pending piece arrived (or, after a failed commit, when it failed).
    since: Option<Instant>,
}

impl ReplyWriter {
    /// A writer for the streaming message `message_id`, committing every [`FLUSH_EVERY`].
    pub fn new(message_id: &str) -> Self {
        Self::with_interval(message_id, FLUSH_EVERY)
    }

    /// A writer that commits every `every` (tests use extremes).
    pub fn with_interval(message_id: &str, every: Duration) -> Self {
        ReplyWriter {
            message_id: message_id.to_string(),
            every,
            pending: String::new(),
            since: None,
        }
    }

    /// Adds a piece; commits what is pending once its oldest piece is `every` old. On an error
    /// the text stays pending and the next try waits another interval.
    pub fn push(&mut self, history: &History, text: &str) -> AppResult<()> {
        if text.is_empty() {
            return Ok(());
        }
        self.pending.push_str(text);
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.every {
            self.flush(history)?;
        }
        Ok(())
    }

    /// Commits what is pending now.
    pub fn flush(&mut self, history: &History) -> AppResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match history.append_content(&self.message_id, &self.pending) {
            Ok(()) => {
                self.pending.clear();
                self.since = None;
                Ok(())
            }
            Err(e) => {
                self.since = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Commits the rest of the text with how the reply ended; the reply is searchable after.
    pub fn finish(
        self,
        history: &History,
        status: MessageStatus,
        stats: Option<&GenerationStats>,
        error: Option<&AppError>,
    ) -> AppResult<()> {
        history.finish_message(&self.message_id, &self.pending, status, stats, error)
    }
}
