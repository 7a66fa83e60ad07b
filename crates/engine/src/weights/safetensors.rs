//! Loading `*.safetensors` weights from a Hugging Face or mlx-lm folder, sharded or not.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use mlx_rs::Array;

use crate::error::{EngineError, Result};

/// The weight files of a model folder: those the index names, else every `*.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    let mut files: Vec<PathBuf> = if index.exists() {
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
        let mut names: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect()
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

/// Loads every tensor of every weight file into one map.
pub fn load_dir(dir: &Path) -> Result<HashMap<String, Array>> {
    let mut all = HashMap::new();
    for file in weight_files(dir)? {
        if !file.exists() {
            return Err(EngineError::Io {
                path: file,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "listed in the index but missing",
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

/// Checks that the header parses and the data section is as long as the header says, so a
/// truncated download is reported as such instead of failing later inside MLX.
fn check_header(file: &Path) -> Result<()> {
    use std::io::Read;
    let corrupt = |detail: String| EngineError::CorruptFile {
        path: file.to_owned(),
        format: "safetensors",
        detail,
    };
    let io = |source| EngineError::Io {
        path: file.to_owned(),
        source,
    };
    let mut f = std::fs::File::open(file).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| corrupt("shorter than its 8-byte header length".into()))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > size.saturating_sub(8) || header_len > 100 << 20 {
        return Err(corrupt(format!(
            "header of {header_len} bytes does not fit a {size}-byte file"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(io)?;
    let v: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| corrupt(format!("header: {e}")))?;
    let end = v
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let data = size - 8 - header_len;
    if end > data {
        return Err(corrupt(format!(
            "truncated: tensors need {end} bytes of data but the file has {data}"
        )));
    }
    Ok(())
}
