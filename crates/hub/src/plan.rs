//! What a pull will fetch: the resolved commit and, per file, its size, its check and what the
//! cache already holds.

use std::{collections::BTreeMap, ops::Range, path::PathBuf};

use minibar_fit::{AbsentFile, LayersHeld, RankLayers};
use serde::Serialize;

use crate::{
    error::{HubError, Result},
    verify::Check,
};

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
    /// A sharded checkpoint's index: tensor name to shard file.
    #[serde(skip)]
    pub weight_map: Option<BTreeMap<String, String>>,
    /// The layers this plan is restricted to ([`DownloadPlan::restrict_to_layers`]).
    pub layers: Option<LayerPlan>,
}

/// A plan restricted to one pipeline rank's layers.
#[derive(Clone, Debug, Serialize)]
pub struct LayerPlan {
    /// The blocks, `[start, end)`.
    pub layers: Range<usize>,
    /// Blocks in the model.
    pub of: usize,
    /// The shards left out: they hold no tensor these layers read.
    pub left_out: Vec<PlannedFile>,
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

    /// Keeps only the shards that hold a tensor a pipeline rank of `layers` reads (by
    /// minibar-fit's one rule, which the engine's load follows too); config, tokenizer, index
    /// and other files stay. A checkpoint without an index is one file every rank needs.
    pub fn restrict_to_layers(&mut self, layers: Range<usize>) -> Result<()> {
        let invalid = |detail: String| HubError::InvalidLayers {
            repo_id: self.repo_id.clone(),
            detail,
        };
        let config = self.config.as_ref();
        let of = config
            .and_then(|c| c.get("num_hidden_layers"))
            .and_then(|n| n.as_u64())
            .ok_or_else(|| invalid("its config.json gives no num_hidden_layers".into()))?
            as usize;
        if layers.is_empty() || layers.end > of {
            return Err(invalid(format!(
                "layers {}..{} asked of a model with {of} layers (0..{of})",
                layers.start, layers.end
            )));
        }
        let share = RankLayers {
            layers: layers.clone(),
            of,
        };
        let mut left_out = Vec::new();
        if let Some(map) = &self.weight_map {
            let config_tie = config
                .and_then(|c| c.get("tie_word_embeddings"))
                .and_then(|t| t.as_bool());
            let tied = minibar_fit::embeddings_tied(config_tie, map.keys().map(String::as_str));
            let needed: std::collections::HashSet<&str> = map
                .iter()
                .filter(|(tensor, _)| share.needs(tensor, tied))
                .map(|(_, file)| file.as_str())
                .collect();
            let shards: std::collections::HashSet<&str> =
                map.values().map(String::as_str).collect();
            let (keep, drop): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.files).into_iter().partition(|f| {
                    !shards.contains(f.path.as_str()) || needed.contains(f.path.as_str())
                });
            self.files = keep;
            left_out = drop;
        }
        self.layers = Some(LayerPlan {
            layers,
            of,
            left_out,
        });
        Ok(())
    }

    /// After this plan was downloaded: a folder that still lacks some of the model's shards is
    /// marked with the layers it holds ([`LayersHeld`]); a whole model loses any such mark.
    pub(crate) fn mark_layers_held(&self) -> Result<()> {
        let io = |e| HubError::io(&self.snapshot, e);
        let Some(plan) = &self.layers else {
            let whole = LayersHeld {
                layers: Vec::new(),
                of: 0,
                missing: Vec::new(),
            };
            return whole.write(&self.snapshot).map_err(io);
        };
        let missing: Vec<AbsentFile> = plan
            .left_out
            .iter()
            .filter(|f| !self.snapshot.join(&f.path).exists())
            .map(|f| AbsentFile {
                path: f.path.clone(),
                size: f.size,
                sha256: match &f.check {
                    Check::Sha256(h) => Some(h.clone()),
                    _ => None,
                },
            })
            .collect();
        // A folder that was whole before (no mark, nothing missing) stays whole.
        let mut held = LayersHeld::read(&self.snapshot)
            .filter(|h| h.of == plan.of)
            .unwrap_or(LayersHeld {
                layers: Vec::new(),
                of: plan.of,
                missing: Vec::new(),
            });
        held.add(plan.layers.clone());
        held.missing = missing;
        held.write(&self.snapshot).map_err(io)
    }
}

/// Whether a path is a weight file.
pub(crate) fn is_weight(path: &str) -> bool {
    path.ends_with(".safetensors") || crate::filter::is_other_weight(path)
}
