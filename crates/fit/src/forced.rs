//! The models a user chose to load although they won't fit, remembered in a small JSON file
//! (the CLI's and the server's; the app keeps its list in its settings store). Only the
//! refusal is lifted: [`crate::admit`] still bounds a forced model's memory.
//!
//! A missing or unreadable file means "none forced": a damaged list must never force a model.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Models the user forced, by key (the CLI uses the model's canonical path).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForcedModels {
    models: BTreeSet<String>,
}

impl ForcedModels {
    /// Reads the list at `path`; none forced when it is missing or not valid.
    pub fn load(path: &Path) -> ForcedModels {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Whether `key` was forced.
    pub fn contains(&self, key: &str) -> bool {
        self.models.contains(key)
    }

    /// Remembers `key`; returns whether it was new.
    pub fn insert(&mut self, key: impl Into<String>) -> bool {
        self.models.insert(key.into())
    }

    /// Writes the list to `path` (through a temporary file and a rename, so a crash leaves
    /// the old list or the new one).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

/// The key a model path is remembered by: its canonical form, so `./m` and `/abs/m` agree.
pub fn model_key(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_model_is_remembered_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cfg/forced-models.json");
        assert_eq!(ForcedModels::load(&file), ForcedModels::default());
        let mut f = ForcedModels::default();
        assert!(f.insert(model_key(dir.path())));
        assert!(!f.insert(model_key(dir.path())));
        f.save(&file).unwrap();
        let back = ForcedModels::load(&file);
        assert!(back.contains(&model_key(dir.path())));
        assert!(!back.contains("/elsewhere"));
    }

    #[test]
    fn a_damaged_list_forces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("forced-models.json");
        std::fs::write(&file, b"{\"models\": [\"/a\"").unwrap();
        assert!(!ForcedModels::load(&file).contains("/a"));
    }
}
