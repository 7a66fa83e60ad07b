//! minibar-sqlite: what every SQLite file Minibar keeps shares, so the app and the `minibar`
//! command line treat a damaged one the same way.
//!
//! A database that cannot be read does not stop Minibar: [`set_aside_if_damaged`] moves it
//! (with its `-wal` and `-shm` files) under a timestamped name, kept so nothing that could
//! still be rescued is deleted, and says what to tell the user; the caller then opens a fresh
//! one. Only damage counts: a busy file or a permission error is left for the real open to
//! report, since moving a healthy file aside would lose the user's data from view.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags};

/// Why the SQLite file at `path` is unreadable, or None when it is fine or absent. Read-only,
/// so the check leaves a WAL as it found it.
fn damage(path: &Path) -> Option<String> {
    if !path.exists() {
        return None;
    }
    let check = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)));
    match check {
        Ok(result) if result == "ok" => None,
        // Its first row may span lines; the last one names the damage.
        Ok(result) => Some(result.lines().last().unwrap_or_default().trim().to_string()),
        Err(rusqlite::Error::SqliteFailure(e, msg))
            if matches!(e.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) =>
        {
            Some(msg.unwrap_or_else(|| e.to_string()))
        }
        Err(_) => None,
    }
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Moves a damaged database at `path` (with its `-wal` and `-shm` files) to
/// `<name>.corrupt-<unix ms>`, and returns what to tell the user; None when it is fine or
/// absent. `what` names it for the user ("Your chat history").
pub fn set_aside_if_damaged(path: &Path, what: &str) -> std::io::Result<Option<String>> {
    let Some(why) = damage(path) else {
        return Ok(None);
    };
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let aside = with_suffix(path, &format!(".corrupt-{ms}"));
    let moved = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot move {}: {e}", from.display()))
        })
    };
    for extra in ["-wal", "-shm"] {
        let from = with_suffix(path, extra);
        if from.exists() {
            moved(&from, &with_suffix(&aside, extra))?;
        }
    }
    moved(path, &aside)?;
    Ok(Some(format!(
        "{what} could not be read ({why}). It was moved to {} and a new one was started.",
        aside.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn garbage_and_its_wal_are_moved_aside_together_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.sqlite");
        let garbage = b"not a database ".repeat(300);
        std::fs::write(&path, &garbage).unwrap();
        std::fs::write(with_suffix(&path, "-wal"), b"junk").unwrap();
        let notice = set_aside_if_damaged(&path, "Your benchmark history")
            .unwrap()
            .expect("damage found");
        assert!(notice.starts_with("Your benchmark history could not be read"));
        // The damaged file and its WAL (and the shared-memory file the check's read-only open
        // may have made beside the WAL) all moved; nothing is left under the old names.
        let after = names(dir.path());
        assert!(after[0].starts_with("bench.sqlite.corrupt-"), "{after:?}");
        assert!(after.contains(&format!("{}-wal", after[0])), "{after:?}");
        assert!(after.iter().all(|n| n.starts_with(&after[0])), "{after:?}");
        assert_eq!(std::fs::read(dir.path().join(&after[0])).unwrap(), garbage);
        assert!(notice.contains(&after[0]), "{notice}");
        // A fresh database opens where the damaged one was.
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t(x)")
            .unwrap();
    }

    #[test]
    fn a_damaged_page_is_found_and_healthy_or_absent_files_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite3");
        assert_eq!(set_aside_if_damaged(&path, "x").unwrap(), None);
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE t(x TEXT); CREATE INDEX tx ON t(x);")
                .unwrap();
            for i in 0..2000 {
                c.execute(
                    "INSERT INTO t VALUES (?1)",
                    [format!("row {i} ").repeat(20)],
                )
                .unwrap();
            }
        }
        assert_eq!(set_aside_if_damaged(&path, "x").unwrap(), None);
        assert!(path.exists());
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 16 * 4096);
        bytes[8 * 4096..9 * 4096].fill(0xA5);
        std::fs::write(&path, bytes).unwrap();
        assert!(set_aside_if_damaged(&path, "x").unwrap().is_some());
        assert!(!path.exists());
    }
}
