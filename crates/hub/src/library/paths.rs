//! Where the local library lives: the shared hub cache, and Minibar's own store and state.

use std::path::PathBuf;

/// The folders the library reads and writes.
#[derive(Clone, Debug)]
pub struct LibraryPaths {
    /// The Hugging Face hub cache (shared with mlx-lm and huggingface-cli).
    pub hf_cache: PathBuf,
    /// Minibar's own model folders (`minibar import` / `quantize` output): `<home>/models/<name>/`.
    pub store: PathBuf,
    /// Minibar's state: last-used record and in-use locks.
    pub state: PathBuf,
}

impl LibraryPaths {
    /// From the environment: `MINIBAR_HOME` (relocates store and state, for tests), else
    /// `$XDG_DATA_HOME/minibar`, else `~/.local/share/minibar`; the hub cache as hf tools find it.
    pub fn from_env() -> Self {
        let home = minibar_home();
        LibraryPaths {
            hf_cache: crate::config::hub_cache_dir(),
            store: home.join("models"),
            state: home,
        }
    }

    /// Paths with an explicit hub cache and Minibar home.
    pub fn new(hf_cache: impl Into<PathBuf>, minibar_home: impl Into<PathBuf>) -> Self {
        let home = minibar_home.into();
        LibraryPaths {
            hf_cache: hf_cache.into(),
            store: home.join("models"),
            state: home,
        }
    }

    /// The JSON record of when each model was last used.
    pub fn last_used_file(&self) -> PathBuf {
        self.state.join("last_used.json")
    }

    /// The lock file an engine holds (shared) while a model is loaded.
    pub fn lock_file(&self, name: &str) -> PathBuf {
        let safe: String = name
            .replace('/', "--")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.state.join("locks").join(format!("{safe}.lock"))
    }
}

/// Minibar's data folder: `MINIBAR_HOME`, else `$XDG_DATA_HOME/minibar`, else `~/.local/share/minibar`.
pub fn minibar_home() -> PathBuf {
    if let Some(h) = std::env::var_os("MINIBAR_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("minibar");
    }
    crate::config::home_dir()
        .join(".local")
        .join("share")
        .join("minibar")
}
