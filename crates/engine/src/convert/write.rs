//! An mlx-lm-compatible model folder, written into a temporary sibling and renamed into place
//! at the end, so an interrupted conversion never leaves a folder that looks complete.
//!
//! Invariants:
//! - Every file is fsynced, then the folder renamed, then its parent fsynced: after a power
//!   loss the folder is either absent or whole.
//! - A temporary folder holds an exclusive lock on its `.writing` file for as long as its
//!   writer lives, so [`remove_stale`] (run at start) removes what a killed process left and
//!   never what a running conversion, in this process or another, is writing.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use mlx_rs::{Array, Dtype};
use serde_json::{json, Value};

use crate::error::{EngineError, Result};

/// Largest shard mlx-lm writes (it splits weights at 5 GB).
pub const MAX_SHARD_BYTES: usize = 5 << 30;

/// A folder being written; dropped without `commit`, it is removed.
pub struct PendingFolder {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
    /// Locked while the folder is being written (see the module's invariants).
    _writing: std::fs::File,
}

/// The name of a temporary folder's lock file.
const WRITING: &str = ".writing";
/// A temporary folder younger than this without a lock file may be one being created.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary folders (`.<name>.partial-*`) in `dir` that no living writer holds,
/// left by a conversion that was killed; returns what it removed.
pub fn remove_stale(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with('.') && name.contains(".partial-") && path.is_dir()) {
            continue;
        }
        let stale = match std::fs::File::open(path.join(WRITING)) {
            // A held lock means a living writer.
            Ok(f) => f.try_lock().is_ok(),
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER),
        };
        if stale {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Flushes every file under `dir`, then `dir` itself, to the disk.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
    }
    sync_dir(dir)
}

/// Flushes a folder's entries (a rename into it, a new file) to the disk. Only where a folder
/// can be opened as a file (Unix).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))?;
    let _ = dir;
    Ok(())
}

/// safetensors' name for an MLX dtype.
fn dtype_name(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::Bool => "BOOL",
        Dtype::Uint8 => "U8",
        Dtype::Uint16 => "U16",
        Dtype::Uint32 => "U32",
        Dtype::Uint64 => "U64",
        Dtype::Int8 => "I8",
        Dtype::Int16 => "I16",
        Dtype::Int32 => "I32",
        Dtype::Int64 => "I64",
        Dtype::Float16 => "F16",
        Dtype::Bfloat16 => "BF16",
        Dtype::Float32 => "F32",
        Dtype::Float64 => "F64",
        Dtype::Complex64 => "C64",
    }
}

/// Writes one safetensors file holding `names` (taken out of `tensors` as they are written):
/// the header with every tensor's dtype, shape and byte range (padded to 8 bytes, as the
/// format allows), then each tensor's bytes in the same order.
fn write_shard(
    path: &Path,
    names: &[String],
    tensors: &mut HashMap<String, Array>,
    done: &mut (usize, usize),
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<()> {
    use std::io::Write;
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "mlx"}));
    let mut offset = 0usize;
    for n in names {
        let a = &tensors[n];
        let end = offset + a.nbytes();
        header.insert(
            n.clone(),
            json!({"dtype": dtype_name(a.dtype()), "shape": a.shape(), "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::to_vec(&header).map_err(|e| EngineError::Mlx(e.to_string()))?;
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut out = std::io::BufWriter::new(file);
    out.write_all(&(text.len() as u64).to_le_bytes())
        .and_then(|()| out.write_all(&text))
        .map_err(io(path))?;
    for n in names {
        if !progress(done.0, done.1) {
            return Err(EngineError::Cancelled);
        }
        done.0 += 1;
        let Some(a) = tensors.remove(n) else { continue };
        if a.nbytes() == 0 {
            continue;
        }
        let bytes = a.contiguous()?.view::<u8>()?;
        bytes.eval()?;
        let data = bytes
            .try_as_slice::<u8>()
            .map_err(|e| EngineError::Mlx(format!("{n}: {e}")))?;
        out.write_all(data).map_err(io(path))?;
        drop((bytes, a));
        // Freed buffers would otherwise stay in MLX's cache, and the process's memory would
        // grow to the whole model after all.
        mlx_rs::memory::clear_cache()?;
    }
    out.flush().map_err(io(path))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_owned(),
        source,
    }
}

impl PendingFolder {
    /// Starts writing what will become `dest` (which must not exist yet).
    pub fn new(dest: &Path) -> Result<Self> {
        if dest.exists() {
            return Err(EngineError::Io {
                path: dest.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists; remove it first or choose another name",
                ),
            });
        }
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("model");
        let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let lock = tmp.join(WRITING);
        let writing = std::fs::File::create(&lock).map_err(io(&lock))?;
        writing.lock().map_err(io(&lock))?;
        Ok(Self {
            tmp,
            dest: dest.to_owned(),
            committed: false,
            _writing: writing,
        })
    }

    /// Where files go until `commit`.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Writes `config.json` the way mlx-lm's `save_config` does: keys sorted at the top level,
    /// four-space indents.
    pub fn write_config(&self, config: &Value) -> Result<()> {
        use serde::Serialize;
        let path = self.tmp.join("config.json");
        let sorted: Value = match config {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            }
            other => other.clone(),
        };
        let mut text = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut text, formatter);
        sorted
            .serialize(&mut ser)
            .map_err(|e| EngineError::Mlx(e.to_string()))?;
        std::fs::write(&path, text).map_err(io(&path))
    }

    /// Writes the weights as `model.safetensors`, or as shards with an index when large (see
    /// [`PendingFolder::stream_weights`]; arrays the caller still holds keep their memory).
    pub fn write_weights(&self, tensors: &HashMap<String, Array>) -> Result<usize> {
        self.stream_weights(tensors.clone(), &mut |_, _| true)
    }

    /// Writes the weights as `model.safetensors`, or as shards with an index when large, one
    /// tensor at a time: each (lazy) array is evaluated, its bytes written, and the array
    /// dropped before the next, so the memory a conversion needs is about its largest tensor,
    /// not the whole model. Each shard's header is written first, from the arrays' shapes and
    /// dtypes, which MLX knows before evaluating them. `progress(written, total)` is called
    /// before each tensor and returns false to cancel.
    pub fn stream_weights(
        &self,
        mut tensors: HashMap<String, Array>,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<usize> {
        let mut names: Vec<String> = tensors.keys().cloned().collect();
        let mut done = (0, names.len());
        names.sort();
        let mut shards: Vec<Vec<String>> = vec![Vec::new()];
        let mut size = 0;
        let mut total = 0;
        for n in names {
            let bytes = tensors[&n].nbytes();
            if size + bytes > MAX_SHARD_BYTES && !shards.last().is_some_and(Vec::is_empty) {
                shards.push(Vec::new());
                size = 0;
            }
            size += bytes;
            total += bytes;
            if let Some(last) = shards.last_mut() {
                last.push(n);
            }
        }
        let count = shards.len();
        let mut weight_map = BTreeMap::new();
        for (i, shard) in shards.iter().enumerate() {
            let file = if count == 1 {
                "model.safetensors".to_owned()
            } else {
                format!("model-{:05}-of-{:05}.safetensors", i + 1, count)
            };
            write_shard(
                &self.tmp.join(&file),
                shard,
                &mut tensors,
                &mut done,
                progress,
            )?;
            for n in shard {
                weight_map.insert(n.clone(), file.clone());
            }
        }
        progress(done.1, done.1);
        if count > 1 {
            let path = self.tmp.join("model.safetensors.index.json");
            let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&index).unwrap_or_default(),
            )
            .map_err(io(&path))?;
        }
        Ok(total)
    }

    /// Flushes the finished folder to the disk and moves it into place.
    pub fn commit(mut self) -> Result<PathBuf> {
        let lock = self.tmp.join(WRITING);
        std::fs::remove_file(&lock).map_err(io(&lock))?;
        sync_tree(&self.tmp)?;
        std::fs::rename(&self.tmp, &self.dest).map_err(io(&self.dest))?;
        self.committed = true;
        sync_dir(self.dest.parent().unwrap_or(Path::new(".")))?;
        Ok(self.dest.clone())
    }
}

impl Drop for PendingFolder {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writers_folder_is_removed_and_a_living_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // What a killed process leaves: a temporary folder whose lock nobody holds.
        let dead = dir.path().join(".q4.partial-999999");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join(WRITING), b"").unwrap();
        std::fs::write(dead.join("model.safetensors"), b"half").unwrap();
        // A conversion still running in this process.
        let living = PendingFolder::new(&dir.path().join("q8")).unwrap();
        // Someone's own hidden folder that is not ours, and a finished model.
        std::fs::create_dir_all(dir.path().join(".cache")).unwrap();
        std::fs::create_dir_all(dir.path().join("q2")).unwrap();

        let removed = remove_stale(dir.path()).unwrap();
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(living.path().exists(), "a running conversion was removed");
        assert!(dir.path().join(".cache").exists() && dir.path().join("q2").exists());

        let done = living.commit().unwrap();
        assert!(done.exists() && !done.join(WRITING).exists());
        assert!(remove_stale(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_young_folder_without_its_lock_file_may_be_starting_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let starting = dir.path().join(".q4.partial-1");
        std::fs::create_dir_all(&starting).unwrap();
        assert!(remove_stale(dir.path()).unwrap().is_empty());
        assert!(starting.exists());
    }
}
