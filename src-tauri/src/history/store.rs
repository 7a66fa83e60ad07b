//! Reading and writing sessions and messages.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::schema;
use crate::types::{
    AppError, AppResult, ChatMessage, ChatSession, GenerationStats, MessageStatus, Role,
    SessionSummary,
};

/// The title a session has until its first user message names it.
pub const UNTITLED: &str = "New chat";
/// Characters of the first user message kept as a title.
const TITLE_CHARS: usize = 60;
/// Characters of the last message shown in the session list.
const PREVIEW_CHARS: usize = 120;

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A message about to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text so far.
    pub content: String,
    /// The variant that writes it (replies only).
    pub model: Option<String>,
    /// `Streaming` for a reply about to be generated.
    pub status: MessageStatus,
}

/// The chat history database. One connection behind a mutex: writes are short (one row).
pub struct History {
    conn: Mutex<Connection>,
}

fn cut(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut s: String = flat.chars().take(max).collect();
        s.push('…');
        s
    }
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    let role: String = row.get("role")?;
    let status: String = row.get("status")?;
    let stats: Option<String> = row.get("stats")?;
    let error: Option<String> = row.get("error")?;
    Ok(ChatMessage {
        id: row.get("id")?,
        role: Role::parse(&role).unwrap_or(Role::User),
        content: row.get("content")?,
        model: row.get("model")?,
        created_at_ms: row.get::<_, i64>("created_at_ms")? as u64,
        status: MessageStatus::parse(&status).unwrap_or(MessageStatus::Error),
        stats: stats.and_then(|s| serde_json::from_str(&s).ok()),
        error: error.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

const SUMMARY_SQL: &str = "SELECT s.id, s.title, s.model, s.updated_at_ms,
        (SELECT COUNT(*) FROM messages m WHERE m.session_id = s.id) AS message_count,
        COALESCE((SELECT m.content FROM messages m WHERE m.session_id = s.id
                  ORDER BY m.seq DESC LIMIT 1), '') AS last_content
    FROM sessions s";

/// Builds a summary from a row of [`SUMMARY_SQL`].
fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<SessionSummary> {
    let last: String = row.get("last_content")?;
    Ok(SessionSummary {
        id: row.get("id")?,
        title: row.get("title")?,
        model: row.get("model")?,
        updated_at_ms: row.get::<_, i64>("updated_at_ms")? as u64,
        message_count: row.get::<_, i64>("message_count")? as u32,
        preview: cut(&last, PREVIEW_CHARS),
    })
}

impl History {
    /// Opens (creating if needed) the database at `path`, and marks replies that were
    /// streaming when the app last stopped as stopped: nothing generates them any more.
    pub fn open(path: &Path) -> AppResult<History> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| AppError::io(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        schema::configure(&conn)?;
        schema::migrate(&conn)?;
        conn.execute(
            "UPDATE messages SET status = 'stopped' WHERE status = 'streaming'",
            [],
        )?;
        Ok(History {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (each write is atomic).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an empty session.
    pub fn create_session(&self, model: Option<String>) -> AppResult<ChatSession> {
        let now = now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        self.conn().execute(
            "INSERT INTO sessions (id, title, model, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![id, UNTITLED, model, now as i64],
        )?;
        Ok(ChatSession {
            id,
            title: UNTITLED.into(),
            model,
            created_at_ms: now,
            updated_at_ms: now,
            messages: Vec::new(),
        })
    }

    /// Every session, most recently updated first.
    pub fn list_sessions(&self) -> AppResult<Vec<SessionSummary>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "{SUMMARY_SQL} ORDER BY s.updated_at_ms DESC, s.rowid DESC"
        ))?;
        let rows = stmt.query_map([], summary_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One session's summary.
    pub fn summary(&self, id: &str) -> AppResult<SessionSummary> {
        let conn = self.conn();
        conn.query_row(
            &format!("{SUMMARY_SQL} WHERE s.id = ?1"),
            [id],
            summary_from_row,
        )
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("no chat with id {id}")))
    }

    /// A session with its messages in order.
    pub fn open_session(&self, id: &str) -> AppResult<ChatSession> {
        let conn = self.conn();
        let session = conn
            .query_row(
                "SELECT id, title, model, created_at_ms, updated_at_ms FROM sessions WHERE id = ?1",
                [id],
                |r| {
                    Ok(ChatSession {
                        id: r.get(0)?,
                        title: r.get(1)?,
                        model: r.get(2)?,
                        created_at_ms: r.get::<_, i64>(3)? as u64,
                        updated_at_ms: r.get::<_, i64>(4)? as u64,
                        messages: Vec::new(),
                    })
                },
            )
            .optional()?
            .ok_or_else(|| AppError::not_found(format!("no chat with id {id}")))?;
        let mut stmt = conn.prepare("SELECT * FROM messages WHERE session_id = ?1 ORDER BY seq")?;
        let messages = stmt
            .query_map([id], message_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ChatSession {
            messages,
            ..session
        })
    }

    /// Removes a session and its messages.
    pub fn delete_session(&self, id: &str) -> AppResult<()> {
        let n = self
            .conn()
            .execute("DELETE FROM sessions WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(AppError::not_found(format!("no chat with id {id}")));
        }
        Ok(())
    }

    /// Appends a message to a session; the first user message names an untitled session.
    pub fn add_message(&self, session_id: &str, m: NewMessage) -> AppResult<ChatMessage> {
        let now = now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let title: String = tx
            .query_row(
                "SELECT title FROM sessions WHERE id = ?1",
                [session_id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| AppError::not_found(format!("no chat with id {session_id}")))?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE session_id = ?1",
            [session_id],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO messages (id, session_id, seq, role, content, model, created_at_ms, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                session_id,
                seq,
                m.role.as_str(),
                m.content,
                m.model,
                now as i64,
                m.status.as_str()
            ],
        )?;
        let new_title = if title == UNTITLED && m.role == Role::User && !m.content.trim().is_empty()
        {
            cut(&m.content, TITLE_CHARS)
        } else {
            title
        };
        tx.execute(
            "UPDATE sessions SET updated_at_ms = ?2, title = ?3 WHERE id = ?1",
            params![session_id, now as i64, new_title],
        )?;
        tx.commit()?;
        Ok(ChatMessage {
            id,
            role: m.role,
            content: m.content,
            model: m.model,
            created_at_ms: now,
            status: m.status,
            stats: None,
            error: None,
        })
    }

    /// Appends streamed text to a message, in one commit. Replies go through
    /// [`ReplyWriter`](super::ReplyWriter), which batches these.
    pub fn append_content(&self, message_id: &str, text: &str) -> AppResult<()> {
        let n = self.conn().execute(
            "UPDATE messages SET content = content || ?2 WHERE id = ?1",
            params![message_id, text],
        )?;
        if n == 0 {
            return Err(AppError::not_found(format!(
                "no message with id {message_id}"
            )));
        }
        Ok(())
    }

    /// Records how a reply ended, with the text not yet stored (`tail`), in one commit; the
    /// reply enters the search index here.
    pub fn finish_message(
        &self,
        message_id: &str,
        tail: &str,
        status: MessageStatus,
        stats: Option<&GenerationStats>,
        error: Option<&AppError>,
    ) -> AppResult<()> {
        let stats = stats.map(serde_json::to_string).transpose().ok().flatten();
        let error = error.map(serde_json::to_string).transpose().ok().flatten();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE messages SET content = content || ?2, status = ?3, stats = ?4, error = ?5
             WHERE id = ?1",
            params![message_id, tail, status.as_str(), stats, error],
        )?;
        if n == 0 {
            return Err(AppError::not_found(format!(
                "no message with id {message_id}"
            )));
        }
        tx.execute(
            "UPDATE sessions SET updated_at_ms = ?2
             WHERE id = (SELECT session_id FROM messages WHERE id = ?1)",
            params![message_id, now_ms() as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces a message's text (edit and resend).
    pub fn set_content(&self, message_id: &str, content: &str) -> AppResult<()> {
        let n = self.conn().execute(
            "UPDATE messages SET content = ?2 WHERE id = ?1",
            params![message_id, content],
        )?;
        if n == 0 {
            return Err(AppError::not_found(format!(
                "no message with id {message_id}"
            )));
        }
        Ok(())
    }

    /// One message.
    pub fn message(&self, message_id: &str) -> AppResult<(String, ChatMessage)> {
        let conn = self.conn();
        conn.query_row("SELECT * FROM messages WHERE id = ?1", [message_id], |r| {
            Ok((r.get::<_, String>("session_id")?, message_from_row(r)?))
        })
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("no message with id {message_id}")))
    }

    /// Deletes every message of the session that comes after `message_id`.
    pub fn truncate_after(&self, session_id: &str, message_id: &str) -> AppResult<()> {
        self.conn().execute(
            "DELETE FROM messages WHERE session_id = ?1
               AND seq > (SELECT seq FROM messages WHERE id = ?2 AND session_id = ?1)",
            params![session_id, message_id],
        )?;
        Ok(())
    }

    /// Deletes one message.
    pub fn delete_message(&self, message_id: &str) -> AppResult<()> {
        self.conn()
            .execute("DELETE FROM messages WHERE id = ?1", [message_id])?;
        Ok(())
    }

    /// Sets the model a session uses.
    pub fn set_session_model(&self, session_id: &str, model: &str) -> AppResult<()> {
        self.conn().execute(
            "UPDATE sessions SET model = ?2 WHERE id = ?1",
            params![session_id, model],
        )?;
        Ok(())
    }
}
