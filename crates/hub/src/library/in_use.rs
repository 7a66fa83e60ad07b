//! Models in use: an engine holds a shared lock on `<state>/locks/<name>.lock` while a model is
//! loaded; `rm` needs the exclusive lock. The OS drops the lock if the engine dies.

use std::fs::{File, OpenOptions};

use crate::error::{HubError, Result};
use crate::library::LibraryPaths;

/// Held while a model is loaded; dropping it releases the model.
#[derive(Debug)]
pub struct ModelInUse {
    _file: File,
    name: String,
}

impl ModelInUse {
    /// Marks `name` as in use (several engines may hold it at once).
    pub fn acquire(paths: &LibraryPaths, name: &str) -> Result<Self> {
        let file = open_lock(paths, name)?;
        fs4::fs_std::FileExt::lock_shared(&file)
            .map_err(|e| HubError::io(paths.lock_file(name), e))?;
        Ok(ModelInUse {
            _file: file,
            name: name.to_string(),
        })
    }

    /// The model held.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Whether some process holds `name` in use right now.
pub fn is_in_use(paths: &LibraryPaths, name: &str) -> bool {
    match exclusive(paths, name) {
        Ok(Some(_)) => false,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Takes the exclusive lock if nobody uses the model; `None` if someone does.
pub(crate) fn exclusive(paths: &LibraryPaths, name: &str) -> Result<Option<File>> {
    let path = paths.lock_file(name);
    if !path.exists() {
        // Nobody ever loaded it; create the lock so a loader that starts now waits for us.
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
        }
    }
    let file = open_lock(paths, name)?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(Some(file)),
        Ok(false) => Ok(None),
        Err(e) => Err(HubError::io(path, e)),
    }
}

fn open_lock(paths: &LibraryPaths, name: &str) -> Result<File> {
    let path = paths.lock_file(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| HubError::io(&path, e))
}
