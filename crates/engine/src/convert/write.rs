//! An mlx-lm-compatible model folder, written into a temporary sibling and renamed into place
//! at the end, so an interrupted conversion never leaves a folder that looks complete.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use mlx_rs::Array;
use serde_json::{json, Value};

use crate::error::{EngineError, Result};

/// Largest shard mlx-lm writes (it splits weights at 5 GB).
pub const MAX_SHARD_BYTES: usize = 5 << 30;

/// A folder being written; dropped without `commit`, it is removed.
pub struct PendingFolder {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
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
        Ok(Self {
            tmp,
            dest: dest.to_owned(),
            committed: false,
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

    /// Writes the weights as `model.safetensors`, or as shards with an index when large.
    pub fn write_weights(&self, tensors: &HashMap<String, Array>) -> Result<usize> {
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let mut shards: Vec<Vec<&String>> = vec![Vec::new()];
        let mut size = 0;
        let mut total = 0;
        for n in names {
            let bytes = tensors[n].nbytes();
            if size + bytes > MAX_SHARD_BYTES && !shards.last().unwrap().is_empty() {
                shards.push(Vec::new());
                size = 0;
            }
            size += bytes;
            total += bytes;
            shards.last_mut().unwrap().push(n);
        }
        let metadata = HashMap::from([("format".to_owned(), "mlx".to_owned())]);
        let count = shards.len();
        let mut weight_map = BTreeMap::new();
        for (i, shard) in shards.iter().enumerate() {
            let file = if count == 1 {
                "model.safetensors".to_owned()
            } else {
                format!("model-{:05}-of-{:05}.safetensors", i + 1, count)
            };
            let path = self.tmp.join(&file);
            let arrays = shard.iter().map(|n| (n.as_str(), &tensors[*n]));
            Array::save_safetensors(arrays, &metadata, &path).map_err(|e| EngineError::Io {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            for n in shard {
                weight_map.insert((*n).clone(), file.clone());
            }
        }
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

    /// Moves the finished folder into place.
    pub fn commit(mut self) -> Result<PathBuf> {
        std::fs::rename(&self.tmp, &self.dest).map_err(io(&self.dest))?;
        self.committed = true;
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
