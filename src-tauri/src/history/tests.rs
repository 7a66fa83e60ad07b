//! The history's own guarantees, on a real SQLite file.

use super::*;
use crate::types::{MessageStatus, Role};

fn open(dir: &tempfile::TempDir) -> History {
    History::open(&dir.path().join("h.sqlite3")).unwrap()
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
