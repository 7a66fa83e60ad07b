//! What a pull will fetch: the resolved commit and, per file, its size, its check and what the
//! cache already holds.

use std::path::PathBuf;

use serde::Serialize;

use crate::verify::Check;

/// One file of a plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedFile {
    /// Path in the repository.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Blob name in the cache: the hub's ETag (SHA-256 for LFS files, git SHA-1 otherwise).
    pub etag: String,
    /// What the content must match before it is marked complete.
    pub check: Check,
    /// Bytes in the cache: `size` when complete, the partial length otherwise.
    pub cached_bytes: u64,
    /// Whether a verified blob is already in the cache.
    pub complete: bool,
}

/// Everything a pull needs to know before transferring bytes.
#[derive(Clone, Debug, Serialize)]
pub struct DownloadPlan {
    /// Repository.
    pub repo_id: String,
    /// Revision asked for.
    pub revision: String,
    /// Commit the revision resolved to.
    pub commit: String,
    /// Files to have, smallest first.
    pub files: Vec<PlannedFile>,
    /// Files of the repository left out by the filter.
    pub skipped: Vec<String>,
    /// The model's config.json, for the memory-fit check.
    #[serde(skip)]
    pub config: Option<serde_json::Value>,
    /// Built from the cache alone because the hub could not be reached.
    pub offline: bool,
    /// Where the snapshot folder is (or will be).
    pub snapshot: PathBuf,
}

impl DownloadPlan {
    /// Bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Bytes already in the cache.
    pub fn cached_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.cached_bytes.min(f.size)).sum()
    }

    /// Bytes still to transfer.
    pub fn remaining_bytes(&self) -> u64 {
        self.total_bytes() - self.cached_bytes()
    }

    /// Bytes of weight files (safetensors, gguf, ...).
    pub fn weight_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| is_weight(&f.path))
            .map(|f| f.size)
            .sum()
    }

    /// Whether every file is already verified in the cache.
    pub fn is_complete(&self) -> bool {
        self.files.iter().all(|f| f.complete)
    }
}

/// Whether a path is a weight file.
pub(crate) fn is_weight(path: &str) -> bool {
    path.ends_with(".safetensors") || crate::filter::is_other_weight(path)
}
