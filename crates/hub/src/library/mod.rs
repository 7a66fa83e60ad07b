//! The local library: models in the shared hub cache and in Minibar's own store, their format,
//! size and last use; removal that respects models in use.

mod format;
mod in_use;
mod last_used;
mod paths;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use format::{ModelFormat, Quantization};
pub use in_use::{is_in_use, ModelInUse, Use};
pub use last_used::{read_last_used, touch_last_used, LastUsed};
pub use paths::{minibar_home, LibraryPaths};

use crate::cache_layout::{self, INCOMPLETE_SUFFIX, UNVERIFIED_SUFFIX};
use crate::error::{HubError, Result};

/// Where a local model came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSource {
    /// The shared Hugging Face cache (pulled by Minibar, mlx-lm or huggingface-cli).
    HfCache {
        /// Repository id.
        repo_id: String,
        /// Commit of the snapshot described.
        commit: String,
    },
    /// Minibar's own store (imported or quantized).
    Store,
}

/// One model of the library.
#[derive(Clone, Debug, Serialize)]
pub struct LocalModel {
    /// Name to use with `minibar rm`, `chat`, ...: `org/name` or the store folder name.
    pub name: String,
    /// Where it came from.
    pub source: ModelSource,
    /// The folder to load it from.
    pub path: PathBuf,
    /// Weight format.
    pub format: ModelFormat,
    /// Quantization from config.json, if quantized.
    pub quantization: Option<Quantization>,
    /// Stored bits per weight of the quantized layers, if quantized.
    pub bits_per_weight: Option<f64>,
    /// Bytes on disk (for a cache entry: all its blobs and partial downloads).
    pub size_bytes: u64,
    /// Seconds since the Unix epoch of its last use by Minibar.
    pub last_used: Option<u64>,
    /// Loaded by a running engine.
    pub in_use: bool,
    /// Every file is present (no partial download, every index shard there).
    pub complete: bool,
    /// Files accepted on their size alone, with no hash from the hub to check them against.
    pub unverified: Vec<String>,
    /// Set when the folder holds only some layers' shards (`minibar pull --layers`): not a
    /// whole model, but a cluster node's share of one.
    pub layers_held: Option<minibar_fit::LayersHeld>,
}

/// All local models and the disk they use.
#[derive(Clone, Debug, Serialize)]
pub struct Library {
    /// Models, by name.
    pub models: Vec<LocalModel>,
    /// Bytes used by all of them.
    pub total_bytes: u64,
}

/// What `rm` did.
#[derive(Clone, Debug, Serialize)]
pub struct Removal {
    /// Model removed.
    pub name: String,
    /// Folder deleted.
    pub path: PathBuf,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Bytes the remaining library uses.
    pub total_bytes: u64,
}

/// Lists the models in the hub cache and in Minibar's store.
pub fn list_models(paths: &LibraryPaths) -> Result<Library> {
    let last_used = read_last_used(paths);
    let mut models = Vec::new();
    for (repo_id, root) in cache_repos(&paths.hf_cache) {
        if let Some(m) = describe_cache_repo(paths, &repo_id, &root, &last_used) {
            models.push(m);
        }
    }
    if let Ok(entries) = std::fs::read_dir(&paths.store) {
        for e in entries.flatten() {
            let dir = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !dir.is_dir() {
                continue;
            }
            if !dir.join("config.json").is_file() && !has_gguf(&dir) {
                continue;
            }
            let config = read_config(&dir);
            let (format, quantization) = format::detect(&dir, config.as_ref());
            models.push(LocalModel {
                bits_per_weight: quantization.as_ref().map(Quantization::bits_per_weight),
                size_bytes: dir_size(&dir),
                last_used: last_used.get(&name).copied(),
                in_use: is_in_use(paths, &name),
                complete: snapshot_complete(&dir),
                unverified: Vec::new(),
                layers_held: minibar_fit::LayersHeld::read(&dir),
                source: ModelSource::Store,
                path: dir,
                format,
                quantization,
                name,
            });
        }
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    let total_bytes = models.iter().map(|m| m.size_bytes).sum();
    Ok(Library {
        models,
        total_bytes,
    })
}

/// Finds a model by name (`org/name` for the cache, the folder name for the store).
pub fn find_model(paths: &LibraryPaths, name: &str) -> Result<LocalModel> {
    list_models(paths)?
        .models
        .into_iter()
        .find(|m| m.name == name || m.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| HubError::ModelNotFound(name.to_string()))
}

/// Deletes a model, unless an engine has it loaded; a cache entry goes with all its revisions.
pub fn remove_model(paths: &LibraryPaths, name: &str) -> Result<Removal> {
    let model = find_model(paths, name)?;
    // Held while deleting, so an engine cannot start loading a half-deleted folder.
    let Some(_lock) = in_use::exclusive(paths, &model.name)? else {
        let by = in_use::holders(paths, &model.name);
        return Err(HubError::ModelInUse {
            name: model.name,
            by,
        });
    };
    let folder = match &model.source {
        ModelSource::HfCache { repo_id, .. } => {
            paths.hf_cache.join(cache_layout::repo_folder_name(repo_id))
        }
        ModelSource::Store => model.path.clone(),
    };
    std::fs::remove_dir_all(&folder).map_err(|e| HubError::io(&folder, e))?;
    if let ModelSource::HfCache { repo_id, .. } = &model.source {
        let locks = paths
            .hf_cache
            .join(".locks")
            .join(cache_layout::repo_folder_name(repo_id));
        let _ = std::fs::remove_dir_all(locks);
    }
    last_used::forget(paths, &model.name)?;
    let total_bytes = list_models(paths)?.total_bytes;
    Ok(Removal {
        name: model.name,
        path: folder,
        freed_bytes: model.size_bytes,
        total_bytes,
    })
}

/// `(repo_id, folder)` of every model repository in the hub cache.
fn cache_repos(cache: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(cache) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(repo_id) = cache_layout::repo_id_from_folder(&name) {
                out.push((repo_id, e.path()));
            }
        }
    }
    out
}

fn describe_cache_repo(
    paths: &LibraryPaths,
    repo_id: &str,
    root: &Path,
    last_used: &LastUsed,
) -> Option<LocalModel> {
    let (commit, snapshot) = pick_snapshot(root)?;
    if !snapshot.join("config.json").exists() && !has_gguf(&snapshot) {
        return None; // a tokenizer-only or dataset-like cache entry, not a model
    }
    let config = read_config(&snapshot);
    let (format, quantization) = format::detect(&snapshot, config.as_ref());
    let partial = has_partial(&root.join("blobs"));
    Some(LocalModel {
        name: repo_id.to_string(),
        source: ModelSource::HfCache {
            repo_id: repo_id.to_string(),
            commit,
        },
        bits_per_weight: quantization.as_ref().map(Quantization::bits_per_weight),
        size_bytes: dir_size(root),
        last_used: last_used.get(repo_id).copied(),
        in_use: is_in_use(paths, repo_id),
        complete: !partial && snapshot_complete(&snapshot),
        unverified: unverified_files(&snapshot, &root.join("blobs")),
        layers_held: minibar_fit::LayersHeld::read(&snapshot),
        path: snapshot,
        format,
        quantization,
    })
}

/// The snapshot `refs/main` points at, else the most recently modified one.
fn pick_snapshot(root: &Path) -> Option<(String, PathBuf)> {
    let snapshots = root.join("snapshots");
    if let Ok(main) = std::fs::read_to_string(root.join("refs").join("main")) {
        let commit = main.trim().to_string();
        let dir = snapshots.join(&commit);
        if dir.is_dir() {
            return Some((commit, dir));
        }
    }
    std::fs::read_dir(&snapshots)
        .ok()?
        .flatten()
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
}

/// Files of a snapshot (following the blob links) with their sizes; dangling links are left out.
pub(crate) fn snapshot_files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        // Minibar's notes beside the model (hash cache, layers held) are not its files.
        if e.file_name().to_string_lossy().starts_with(".minibar-") {
            continue;
        }
        let p = e.path();
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk(root, &p, out),
            Ok(m) => {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push((rel.to_string_lossy().replace('\\', "/"), m.len()));
                }
            }
            Err(_) => {}
        }
    }
}

/// Whether a model folder has config.json (or a GGUF) and every weight it names: all shards of
/// a safetensors index, or at least one weight file.
pub(crate) fn snapshot_complete(dir: &Path) -> bool {
    let files: HashSet<String> = snapshot_files(dir).into_iter().map(|(p, _)| p).collect();
    let gguf = files
        .iter()
        .any(|f| f.to_ascii_lowercase().ends_with(".gguf"));
    if !files.contains("config.json") && !gguf {
        return false;
    }
    if let Some(index) = read_json(&dir.join("model.safetensors.index.json")) {
        if let Some(map) = index.get("weight_map").and_then(|m| m.as_object()) {
            return map
                .values()
                .filter_map(|v| v.as_str())
                .all(|shard| files.contains(shard));
        }
    }
    gguf || files.iter().any(|f| f.ends_with(".safetensors"))
}

/// Snapshot files whose blob carries the size-only marker the download left beside it.
fn unverified_files(snapshot: &Path, blobs: &Path) -> Vec<String> {
    snapshot_files(snapshot)
        .into_iter()
        .filter(|(rel, _)| {
            std::fs::canonicalize(snapshot.join(rel))
                .ok()
                .and_then(|blob| blob.file_name().map(|n| n.to_os_string()))
                .is_some_and(|name| {
                    let mut marker = name;
                    marker.push(UNVERIFIED_SUFFIX);
                    blobs.join(marker).exists()
                })
        })
        .map(|(rel, _)| rel)
        .collect()
}

fn has_partial(blobs: &Path) -> bool {
    std::fs::read_dir(blobs)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(INCOMPLETE_SUFFIX))
        })
        .unwrap_or(false)
}

fn has_gguf(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .to_ascii_lowercase()
                    .ends_with(".gguf")
            })
        })
        .unwrap_or(false)
}

fn read_config(dir: &Path) -> Option<serde_json::Value> {
    read_json(&dir.join("config.json"))
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Bytes of the regular files under a folder (links not followed, so blobs count once).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}
