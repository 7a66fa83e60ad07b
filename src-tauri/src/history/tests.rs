//! The history's own guarantees, on a real SQLite file.

use super::*;
use crate::types::{MessageStatus, Role};

fn open(dir: &tempfile::TempDir) -> std::sync::Arc<History> {
    std::sync::Arc::new(History::open(&dir.path().join("h.sqlite3")).unwrap())
}

fn msg(role: Role, content: &str, status: MessageStatus) -> NewMessage {
    NewMessage {
        role,
        content: content.into(),
        model: None,
        status,
    }
}

#[test]
fn streamed_text_survives_a_kill_and_is_marked_stopped_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    let session;
    {
        let h = open(&dir);
        session = h.create_session(None).unwrap().id;
        h.add_message(&session, msg(Role::User, "hi", MessageStatus::Done))
            .unwrap();
        id = h
            .add_message(&session, msg(Role::Assistant, "", MessageStatus::Streaming))
            .unwrap()
            .id;
        h.append_content(&id, "Hel").unwrap();
        h.append_content(&id, "lo").unwrap();
        // Dropped without finishing, as a killed process would leave it.
    }
    let h = open(&dir);
    let s = h.open_session(&session).unwrap();
    assert_eq!(s.messages[1].content, "Hello");
    assert_eq!(s.messages[1].status, MessageStatus::Stopped);
}

#[test]
fn the_database_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let mode: String = h
        .conn()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn search_follows_edits_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let s = h.create_session(None).unwrap().id;
    let m = h
        .add_message(&s, msg(Role::User, "about otters", MessageStatus::Done))
        .unwrap();
    assert_eq!(h.search("otter").unwrap().len(), 1);
    h.set_content(&m.id, "about beavers").unwrap();
    // Only the title (named after the first version of the message) still says otters.
    let hits = h.search("otters").unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message_id, "");
    assert_eq!(h.search("beaver").unwrap()[0].message_id, m.id);
    h.delete_session(&s).unwrap();
    assert!(h.search("beaver").unwrap().is_empty());
}

#[test]
fn the_first_user_message_names_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let s = h.create_session(None).unwrap().id;
    let long = "word ".repeat(40);
    h.add_message(&s, msg(Role::User, &long, MessageStatus::Done))
        .unwrap();
    let title = h.summary(&s).unwrap().title;
    assert!(title.ends_with('…'));
    assert!(title.chars().count() <= 61);
    h.add_message(&s, msg(Role::User, "second", MessageStatus::Done))
        .unwrap();
    assert_eq!(h.summary(&s).unwrap().title, title);
}

#[test]
fn unknown_ids_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let e = h
        .add_message("missing", msg(Role::User, "x", MessageStatus::Done))
        .unwrap_err();
    assert_eq!(e.kind, crate::types::AppErrorKind::NotFound);
    assert_eq!(
        h.delete_session("missing").unwrap_err().kind,
        crate::types::AppErrorKind::NotFound
    );
}

/// A session with a user question and an empty streaming reply; returns (session, reply id).
fn streaming_reply(h: &History) -> (String, String) {
    let s = h.create_session(None).unwrap().id;
    h.add_message(&s, msg(Role::User, "tell me", MessageStatus::Done))
        .unwrap();
    let id = h
        .add_message(&s, msg(Role::Assistant, "", MessageStatus::Streaming))
        .unwrap()
        .id;
    (s, id)
}

fn content(h: &History, id: &str) -> String {
    h.message(id).unwrap().1.content
}

#[test]
fn streamed_text_is_committed_in_batches_and_at_the_end() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let (_, id) = streaming_reply(&h);
    // An interval that never passes during the test: nothing is written until the end.
    let mut w = ReplyWriter::with_interval(h.clone(), &id, Duration::from_secs(3600));
    let before = h.conn().total_changes();
    for i in 0..100 {
        w.push(&format!("w{i} ")).unwrap();
    }
    assert_eq!(h.conn().total_changes(), before, "no write per token");
    assert_eq!(content(&h, &id), "");
    w.finish(MessageStatus::Done, None, None).unwrap();
    let want: String = (0..100).map(|i| format!("w{i} ")).collect();
    let (_, m) = h.message(&id).unwrap();
    assert_eq!(m.content, want);
    assert_eq!(m.status, MessageStatus::Done);

    // An interval already over: each piece is committed as it comes.
    let (_, id) = streaming_reply(&h);
    let mut w = ReplyWriter::with_interval(h.clone(), &id, Duration::ZERO);
    w.push("a").unwrap();
    w.push("b").unwrap();
    assert_eq!(content(&h, &id), "ab");
}

#[test]
fn text_is_committed_within_the_bound_when_the_stream_stalls() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let (_, id) = streaming_reply(&h);
    let mut w = ReplyWriter::new(h.clone(), &id);
    w.push("stalled ").unwrap();
    w.push("here").unwrap();
    // No further piece: the timer, not a next token, must commit it. Read as another
    // process would, through its own connection.
    let other = rusqlite::Connection::open(dir.path().join("h.sqlite3")).unwrap();
    let stored = || -> String {
        other
            .query_row("SELECT content FROM messages WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .unwrap()
    };
    std::thread::sleep(FLUSH_EVERY);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stored().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stored(), "stalled here");
    w.finish(MessageStatus::Done, None, None).unwrap();
    assert_eq!(stored(), "stalled here");
}

#[test]
fn a_reply_is_searchable_once_it_ends_not_while_it_streams() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (session, id);
    {
        let h = open(&dir);
        (session, id) = streaming_reply(&h);
        let mut w = ReplyWriter::with_interval(h.clone(), &id, Duration::ZERO);
        w.push("otters ").unwrap();
        w.push("hold hands").unwrap();
        assert_eq!(content(&h, &id), "otters hold hands");
        assert!(h.search("otters").unwrap().is_empty(), "indexed per commit");
        w.finish(MessageStatus::Done, None, None).unwrap();
        assert_eq!(h.search("otters").unwrap()[0].message_id, id);
        // A reply cut off by a kill is indexed when the next start marks it stopped.
        let (_, cut) = streaming_reply(&h);
        let mut w = ReplyWriter::with_interval(h.clone(), &cut, Duration::ZERO);
        w.push("beavers build").unwrap();
        assert!(h.search("beavers").unwrap().is_empty());
    }
    let h = open(&dir);
    assert_eq!(h.search("beavers").unwrap().len(), 1);
    // Deleting finished and stopped replies leaves the index consistent.
    h.delete_session(&session).unwrap();
    assert!(h.search("otters").unwrap().is_empty());
    // FTS5 checks its index against the messages table and fails on any difference.
    h.conn()
        .execute(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
}

#[test]
fn a_failed_commit_is_reported_and_its_text_kept_for_the_next() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let h = open(&dir);
    let (_, id) = streaming_reply(&h);
    let mut w = ReplyWriter::with_interval(h.clone(), &id, Duration::ZERO);
    h.conn().pragma_update(None, "query_only", true).unwrap();
    let e = w.push("lost? ").unwrap_err();
    assert_eq!(e.kind, crate::types::AppErrorKind::Io);
    h.conn().pragma_update(None, "query_only", false).unwrap();
    w.push("no").unwrap();
    assert_eq!(content(&h, &id), "lost? no");
}

#[test]
fn a_version_1_history_is_migrated_with_its_index_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite3");
    {
        // Version 1 as it shipped: every content change re-indexed by triggers.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, title TEXT NOT NULL, model TEXT,
                created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL);
            CREATE TABLE messages (id TEXT PRIMARY KEY,
                session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                seq INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, model TEXT,
                created_at_ms INTEGER NOT NULL, status TEXT NOT NULL, stats TEXT, error TEXT);
            CREATE INDEX messages_by_session ON messages(session_id, seq);
            CREATE VIRTUAL TABLE messages_fts USING fts5(
                content, content='messages', content_rowid='rowid', tokenize='unicode61');
            CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
                INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
            END;
            CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
                INSERT INTO messages_fts(messages_fts, rowid, content)
                    VALUES ('delete', old.rowid, old.content);
            END;
            CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
                INSERT INTO messages_fts(messages_fts, rowid, content)
                    VALUES ('delete', old.rowid, old.content);
                INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
            END;
            PRAGMA user_version = 1;
            INSERT INTO sessions VALUES ('s', 'Otters', NULL, 1, 1);
            INSERT INTO messages VALUES ('u', 's', 0, 'user', 'otters?', NULL, 1, 'done', NULL, NULL);
            INSERT INTO messages VALUES ('a', 's', 1, 'assistant', '', 'm', 2, 'streaming', NULL, NULL);
            UPDATE messages SET content = 'beavers too' WHERE id = 'a';",
        )
        .unwrap();
    }
    let h = History::open(&path).unwrap();
    let version: i64 = h
        .conn()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(h.message("a").unwrap().1.status, MessageStatus::Stopped);
    assert_eq!(h.search("beavers").unwrap()[0].message_id, "a");
    h.set_content("u", "walruses?").unwrap();
    assert_eq!(h.search("walruses").unwrap()[0].message_id, "u");
    h.delete_message("a").unwrap();
    assert!(h.search("beavers").unwrap().is_empty());
    h.conn()
        .execute(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
}
