//! The database layout and its connection settings.

use rusqlite::Connection;

/// Bumped when the layout changes; stored in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

/// WAL lets readers run beside the writer that appends tokens; `synchronous = NORMAL` keeps
/// every committed write across a process kill (only a power loss can drop the last commits).
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Creates the tables on a fresh database and brings an older one up to date.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    if version < 1 {
        conn.execute_batch(V1)?;
    }
    conn.execute_batch(V2)
}

/// Tables, and an FTS index that version 1 kept in step with every content change.
const V1: &str = "BEGIN;
    CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        model TEXT,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS messages (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        model TEXT,
        created_at_ms INTEGER NOT NULL,
        status TEXT NOT NULL,
        stats TEXT,
        error TEXT
    );
    CREATE INDEX IF NOT EXISTS messages_by_session ON messages(session_id, seq);
    -- External-content FTS index over message text.
    CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
        content, content='messages', content_rowid='rowid', tokenize='unicode61'
    );
    PRAGMA user_version = 1;
    COMMIT;";

/// Invariant: the FTS index holds exactly the messages that are not `streaming`, with their
/// current text. A streaming reply grows by many small commits; indexing each one rewrote the
/// whole message's postings every time (quadratic in its length), so a reply is indexed once,
/// when its status leaves `streaming` (done, stopped, error, or stopped at the next start).
/// Version 1 indexed every message, streaming ones included: those are marked stopped first,
/// which makes the index already agree with the invariant.
const V2: &str = "BEGIN;
    UPDATE messages SET status = 'stopped' WHERE status = 'streaming';
    DROP TRIGGER IF EXISTS messages_ai;
    DROP TRIGGER IF EXISTS messages_ad;
    DROP TRIGGER IF EXISTS messages_au;
    CREATE TRIGGER messages_ai AFTER INSERT ON messages
    WHEN new.status != 'streaming' BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages
    WHEN old.status != 'streaming' BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
            VALUES ('delete', old.rowid, old.content);
    END;
    -- One trigger, so the old text leaves the index before the new text enters it.
    CREATE TRIGGER messages_au AFTER UPDATE OF content, status ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
            SELECT 'delete', old.rowid, old.content WHERE old.status != 'streaming';
        INSERT INTO messages_fts(rowid, content)
            SELECT new.rowid, new.content WHERE new.status != 'streaming';
    END;
    PRAGMA user_version = 2;
    COMMIT;";
