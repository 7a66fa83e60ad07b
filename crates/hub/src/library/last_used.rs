//! When each model was last used: a small JSON record the engine updates on load.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{HubError, Result};
use crate::library::LibraryPaths;

/// Model name -> seconds since the Unix epoch of its last use.
pub type LastUsed = BTreeMap<String, u64>;

/// Reads the record; a missing or unreadable file is an empty record.
pub fn read_last_used(paths: &LibraryPaths) -> LastUsed {
    std::fs::read(paths.last_used_file())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Records that `name` was used now (the engine calls this when it loads a model).
pub fn touch_last_used(paths: &LibraryPaths, name: &str) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    update(paths, |record| {
        record.insert(name.to_string(), now);
    })
}

/// Drops `name` from the record (after `rm`).
pub(crate) fn forget(paths: &LibraryPaths, name: &str) -> Result<()> {
    update(paths, |record| {
        record.remove(name);
    })
}

/// Read-modify-write under a lock, replacing the file atomically.
fn update(paths: &LibraryPaths, change: impl FnOnce(&mut LastUsed)) -> Result<()> {
    let file = paths.last_used_file();
    std::fs::create_dir_all(&paths.state).map_err(|e| HubError::io(&paths.state, e))?;
    let lock_path = paths.state.join("last_used.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| HubError::io(&lock_path, e))?;
    fs4::fs_std::FileExt::lock_exclusive(&lock).map_err(|e| HubError::io(&lock_path, e))?;
    let mut record = read_last_used(paths);
    change(&mut record);
    let tmp = paths
        .state
        .join(format!(".last_used.{}.tmp", std::process::id()));
    let json = serde_json::to_vec_pretty(&record).map_err(|e| HubError::Json {
        path: file.clone(),
        source: e,
    })?;
    std::fs::write(&tmp, json).map_err(|e| HubError::io(&tmp, e))?;
    std::fs::rename(&tmp, &file).map_err(|e| HubError::io(&file, e))?;
    Ok(())
}
