//! Loading `*.safetensors` weights from a Hugging Face or mlx-lm folder, sharded or not.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use mlx_rs::Array;

use crate::error::{EngineError, Result};

/// The weight files of a model folder: those the index names, else every `*.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    weight_files_holding(dir, &|_| true)
}

/// The tensor names the folder's index lists, `None` without an index.
pub fn index_names(dir: &Path) -> Result<Option<Vec<String>>> {
    Ok(read_index(dir)?.map(|(_, map)| map.into_iter().map(|(name, _)| name).collect()))
}

/// An index's path and its `weight_map` as (tensor name, file name) pairs.
type Index = (PathBuf, Vec<(String, String)>);

/// The folder's index, `None` without one.
fn read_index(dir: &Path) -> Result<Option<Index>> {
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&index).map_err(|source| EngineError::Io {
        path: index.clone(),
        source,
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EngineError::CorruptFile {
            path: index.clone(),
            format: "JSON",
            detail: e.to_string(),
        })?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| EngineError::CorruptFile {
            path: index.clone(),
            format: "safetensors index",
            detail: "no `weight_map`".into(),
        })?;
    let map = map
        .iter()
        .filter_map(|(t, f)| Some((t.clone(), f.as_str()?.to_owned())))
        .collect();
    Ok(Some((index, map)))
}

/// The weight files of a model folder that hold a tensor `keep` accepts, by the index's
/// `weight_map`; without an index, every `*.safetensors` (nothing says what each holds).
fn weight_files_holding(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = if let Some((index, map)) = read_index(dir)? {
        let mut names: Vec<&str> = map
            .iter()
            .filter(|(tensor, _)| keep(tensor))
            .map(|(_, f)| f.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|n| {
                inside(dir, n).ok_or_else(|| EngineError::CorruptFile {
                    path: index.clone(),
                    format: "safetensors index",
                    detail: format!("shard `{n}` is not a file inside the model folder"),
                })
            })
            .collect::<Result<_>>()?
    } else {
        let entries = std::fs::read_dir(dir).map_err(|source| EngineError::Io {
            path: dir.to_owned(),
            source,
        })?;
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect()
    };
    files.sort();
    if files.is_empty() {
        return Err(EngineError::MissingTensor {
            path: dir.to_owned(),
            name: "*.safetensors (no weight files in the folder)".into(),
        });
    }
    Ok(files)
}

/// `dir/name` when `name` is a relative path that stays inside `dir` (no `..`, no root, no
/// drive): the index comes with the download, so it must not name files elsewhere.
fn inside(dir: &Path, name: &str) -> Option<PathBuf> {
    use std::path::Component;
    let relative = Path::new(name);
    let plain = !name.is_empty()
        && !name.contains('\\')
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| dir.join(relative))
}

/// Loads every tensor of every weight file into one map.
pub fn load_dir(dir: &Path) -> Result<HashMap<String, Array>> {
    load_dir_keeping(dir, &|_| true)
}

/// Loads the weight files that hold a tensor `keep` accepts (all of them without an index):
/// a folder holding only one pipeline rank's shards loads that rank. The map may hold more
/// than `keep` accepts (the rest of those files).
pub fn load_dir_keeping(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<HashMap<String, Array>> {
    let mut all = HashMap::new();
    for file in weight_files_holding(dir, keep)? {
        if !file.exists() {
            return Err(EngineError::Io {
                path: file,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "listed in the index but missing (a folder pulled with `--layers` holds \
                     only those layers' shards: pull the layers this node needs)",
                ),
            });
        }
        check_header(&file)?;
        let map = Array::load_safetensors(&file).map_err(|e| EngineError::CorruptFile {
            path: file.clone(),
            format: "safetensors",
            detail: e.to_string(),
        })?;
        all.extend(map);
    }
    Ok(all)
}

/// Largest header accepted (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// Checks the header before MLX reads the file (see [`check_header_bytes`]).
fn check_header(file: &Path) -> Result<()> {
    use std::io::Read;
    let io = |source| EngineError::Io {
        path: file.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(file).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut head = vec![0u8; 8];
    if f.read_exact(&mut head).is_ok() {
        // Only the header itself is read: bounded by the file and the format's limit.
        let header_len = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let want = header_len.min(size.saturating_sub(8)).min(MAX_HEADER);
        (&mut f).take(want).read_to_end(&mut head).map_err(io)?;
    }
    check_header_bytes(&head, size, file)
}

/// Checks a safetensors header, so a truncated or corrupt file is reported as such instead of
/// failing (or reading past its data) inside MLX: `head` is the start of the file (at least
/// the length field and the header), `size` the file's length. Every tensor must have a
/// known dtype, a shape whose byte size matches its data offsets, and data inside the file.
pub fn check_header_bytes(head: &[u8], size: u64, file: &Path) -> Result<()> {
    let corrupt = |detail: String| EngineError::CorruptFile {
        path: file.to_owned(),
        format: "safetensors",
        detail,
    };
    let len: [u8; 8] = head
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("shorter than its 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > size.saturating_sub(8) || header_len > MAX_HEADER {
        return Err(corrupt(format!(
            "header of {header_len} bytes does not fit a {size}-byte file"
        )));
    }
    let header = head
        .get(8..8 + header_len as usize)
        .ok_or_else(|| corrupt("the header is cut short".into()))?;
    let v: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| corrupt(format!("header: {e}")))?;
    let tensors = v
        .as_object()
        .ok_or_else(|| corrupt("the header is not a JSON object".into()))?;
    let data = size - 8 - header_len;
    let mut end = 0u64;
    for (name, t) in tensors.iter().filter(|(name, _)| *name != "__metadata__") {
        let bad = |what: &str| corrupt(format!("tensor `{name}`: {what}"));
        let item = t
            .get("dtype")
            .and_then(serde_json::Value::as_str)
            .and_then(dtype_bytes)
            .ok_or_else(|| bad("missing or unknown dtype"))?;
        let shape = t
            .get("shape")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| bad("no shape"))?;
        let bytes = shape
            .iter()
            .try_fold(item, |acc, d| acc.checked_mul(d.as_u64()?))
            .ok_or_else(|| bad("a shape of non-negative integers whose size fits"))?;
        let offsets = t
            .get("data_offsets")
            .and_then(serde_json::Value::as_array)
            .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
            .filter(|(start, stop)| start <= stop)
            .ok_or_else(|| bad("data_offsets are not [start, end]"))?;
        if offsets.1 - offsets.0 != bytes {
            return Err(bad(&format!(
                "shape {shape:?} needs {bytes} bytes but its data_offsets span {}",
                offsets.1 - offsets.0
            )));
        }
        end = end.max(offsets.1);
    }
    if end > data {
        return Err(corrupt(format!(
            "truncated: tensors need {end} bytes of data but the file has {data}"
        )));
    }
    Ok(())
}

/// Bytes per element of a safetensors dtype MLX reads (sub-byte types round up).
fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_naming(shard: &str) -> Result<Vec<PathBuf>> {
        let dir = tempfile::tempdir().unwrap();
        let index = serde_json::json!({ "weight_map": { "a.weight": shard, "b.weight": "ok.safetensors" } });
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            index.to_string(),
        )
        .unwrap();
        weight_files(dir.path()).map(|files| {
            files
                .iter()
                .map(|f| f.strip_prefix(dir.path()).unwrap().to_owned())
                .collect()
        })
    }

    #[test]
    fn shards_named_by_the_index_stay_inside_the_model_folder() {
        assert_eq!(
            index_naming("sub/model-1.safetensors").unwrap(),
            [
                PathBuf::from("ok.safetensors"),
                PathBuf::from("sub/model-1.safetensors")
            ]
        );
        for bad in [
            "../other/model.safetensors",
            "sub/../../x.safetensors",
            "/etc/passwd",
            "..\\x.safetensors",
            "",
        ] {
            let e = index_naming(bad).unwrap_err().to_string();
            assert!(
                e.contains("not a file inside the model folder"),
                "{bad}: {e}"
            );
        }
    }
}
