//! A database file that cannot be read does not stop the app: it is set aside under a
//! timestamped name (minibar-sqlite decides what is damage and how it is moved), a fresh one
//! is started, and the user is told. One check for every SQLite file the app opens at start
//! (the chat history, the benchmark history); the tests prove the app's history then opens.

use std::path::Path;

use crate::types::{AppError, AppResult};

/// Moves a damaged database at `path` aside (minibar-sqlite, shared with `minibar bench`) and
/// returns what to tell the user; None when it is fine. `what` names it ("Your chat history").
pub fn set_aside_if_damaged(path: &Path, what: &str) -> AppResult<Option<String>> {
    let notice = minibar_sqlite::set_aside_if_damaged(path, what)
        .map_err(|e| AppError::io(e.to_string()))?;
    if let Some(n) = &notice {
        eprintln!("minibar: {n}");
    }
    Ok(notice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;
    use std::path::PathBuf;

    /// `path` with `suffix` added to its file name.
    fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        path.with_file_name(name)
    }

    #[test]
    fn a_garbage_history_is_set_aside_and_a_fresh_one_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let garbage = b"this is not a database, just some bytes ".repeat(200);
        std::fs::write(&path, &garbage).unwrap();
        assert!(
            History::open(&path).is_err(),
            "the garbage would stop the app"
        );
        std::fs::write(with_suffix(&path, "-wal"), b"junk").unwrap();

        let notice = set_aside_if_damaged(&path, "Your chat history")
            .unwrap()
            .expect("damage found");
        assert!(notice.starts_with("Your chat history could not be read"));
        assert!(!path.exists());
        let moved: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let kept = moved
            .iter()
            .find(|p| {
                p.extension()
                    .is_some_and(|e| e.to_string_lossy().starts_with("corrupt-"))
                    && !p.to_string_lossy().ends_with("-wal")
                    && !p.to_string_lossy().ends_with("-shm")
            })
            .unwrap();
        assert!(kept.to_string_lossy().contains("history.sqlite3.corrupt-"));
        assert!(
            notice.contains(&*kept.to_string_lossy()),
            "{notice} {moved:?}"
        );
        assert_eq!(std::fs::read(kept).unwrap(), garbage, "kept as it was");
        // Its WAL went along, and nothing is left under the old name.
        assert!(moved.contains(&with_suffix(kept, "-wal")), "{moved:?}");
        let kept_name = kept.to_string_lossy();
        assert!(
            moved
                .iter()
                .all(|p| p.to_string_lossy().starts_with(&*kept_name)),
            "{moved:?}"
        );

        let h = History::open(&path).unwrap();
        assert!(h.list_sessions().unwrap().is_empty());
    }
}
