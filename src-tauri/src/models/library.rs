//! Installed models: minibar-hub's library (the Hugging Face cache and Minibar's store) plus
//! the `MINIBAR_DEFAULT_MODEL` override, each matched to a catalog variant id.

use std::path::{Path, PathBuf};

use minibar_catalog::Catalog;
use minibar_hub::library::{self, LibraryPaths, ModelInUse, ModelSource, Use};

use crate::types::{AppError, AppResult};

/// Environment variable naming a model file or folder to offer as installed (tests, `make run`).
pub const DEFAULT_MODEL_ENV: &str = "MINIBAR_DEFAULT_MODEL";

/// A model on disk, named the way the UI names variants.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    /// `<modelId>@<quant>`.
    pub variant_id: String,
    /// The catalog model id, or `local-<name>` for a model the catalog does not know.
    pub model_id: String,
    /// Display name when the catalog does not know the model.
    pub name: String,
    /// Quantization label.
    pub quant: String,
    /// Where to load it from.
    pub path: PathBuf,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Bits per weight, when known.
    pub bits_per_weight: Option<f64>,
    /// The library name (`org/name` or store folder), to delete it; None for the override.
    pub library_name: Option<String>,
    /// Files accepted on their size alone (the hub gave no hash to check them against).
    pub unverified: Vec<String>,
}

/// Lowercase letters and digits only, to compare names across spellings.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The quantization a GGUF file name ends with (`Model.Q4_1.gguf` → `q4_1`).
fn gguf_quant(file_stem: &str) -> Option<String> {
    let last = file_stem.rsplit(['.', '-']).next()?;
    let l = last.to_ascii_lowercase();
    (l.starts_with('q') || l.starts_with("f16") || l.starts_with("bf16") || l.starts_with("f32"))
        .then_some(l)
}

/// The GGUF file inside `dir`, or `dir` itself when it is a file.
fn gguf_in(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        })
}

/// The quantization label minibar-fit and the catalog use: `4bit` for affine 4 bits in groups
/// of 64 (mlx-lm's default), `4bit-g32` for other group sizes.
pub fn quant_label(bits: u32, group_size: u32) -> String {
    if group_size == 64 {
        format!("{bits}bit")
    } else {
        format!("{bits}bit-g{group_size}")
    }
}

/// Names a model at `path` (a file or folder called `name`, installed or not) the way the
/// library would, from its name alone.
pub fn describe(catalog: &Catalog, name: &str, path: &Path) -> Installed {
    describe_local(catalog, name, path, 0, None, None)
}

/// Names a model found at `path` (file or folder called `name`) after the catalog entry whose
/// original repo name it contains; `quant` is its (bits, group size) when quantized.
fn describe_local(
    catalog: &Catalog,
    name: &str,
    path: &Path,
    size: u64,
    bits: Option<f64>,
    quant: Option<(u32, u32)>,
) -> Installed {
    let gguf = gguf_in(path);
    let stem = gguf
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| name.to_string());
    let quant = gguf_quant(&stem)
        .or_else(|| quant.map(|(b, g)| quant_label(b, g)))
        .unwrap_or_else(|| "local".into());
    let key = squash(&stem);
    let entry = catalog.entries().iter().find(|e| {
        let repo_name = e.hf_repo.rsplit('/').next().unwrap_or(&e.hf_repo);
        key.contains(&squash(repo_name))
    });
    let model_id = entry
        .map(|e| e.id.clone())
        .unwrap_or_else(|| format!("local-{}", squash(name)));
    Installed {
        variant_id: format!("{model_id}@{quant}"),
        model_id,
        name: entry
            .map(|e| e.name.clone())
            .unwrap_or_else(|| name.to_string()),
        quant,
        // GGUF models load from the file, folders from the folder.
        path: gguf.unwrap_or_else(|| path.to_path_buf()),
        size_bytes: size,
        bits_per_weight: bits,
        library_name: None,
        unverified: Vec::new(),
    }
}

/// Every installed model: the override first, then the library.
pub fn installed(catalog: &Catalog, paths: &LibraryPaths) -> AppResult<Vec<Installed>> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(DEFAULT_MODEL_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(p);
        if path.exists() {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            out.push(describe_local(catalog, &name, &path, size, None, None));
        }
    }
    let lib = library::list_models(paths)
        .map_err(|e| AppError::io(format!("cannot read the model library: {e}")))?;
    for m in lib.models.into_iter().filter(|m| m.complete) {
        let mut item = match &m.source {
            ModelSource::HfCache { repo_id, .. } => {
                let hit = catalog.entries().iter().find_map(|e| {
                    e.mlx
                        .iter()
                        .find(|r| r.repo.eq_ignore_ascii_case(repo_id))
                        .map(|r| (e, r.quant.clone()))
                });
                match hit {
                    Some((e, quant)) => Installed {
                        variant_id: format!("{}@{quant}", e.id),
                        model_id: e.id.clone(),
                        name: e.name.clone(),
                        quant,
                        path: m.path.clone(),
                        size_bytes: m.size_bytes,
                        bits_per_weight: m.bits_per_weight,
                        library_name: None,
                        unverified: Vec::new(),
                    },
                    None => describe_local(
                        catalog,
                        repo_id,
                        &m.path,
                        m.size_bytes,
                        m.bits_per_weight,
                        m.quantization.as_ref().map(|q| (q.bits, q.group_size)),
                    ),
                }
            }
            ModelSource::Store => describe_local(
                catalog,
                &m.name,
                &m.path,
                m.size_bytes,
                m.bits_per_weight,
                m.quantization.as_ref().map(|q| (q.bits, q.group_size)),
            ),
        };
        item.library_name = Some(m.name.clone());
        item.unverified = m.unverified;
        if !out
            .iter()
            .any(|o: &Installed| o.variant_id == item.variant_id)
        {
            out.push(item);
        }
    }
    Ok(out)
}

/// Marks the library models at `paths` in use for `what` until the guards drop, so deleting
/// one meanwhile is refused with the reason. A path outside the library, or a lock that
/// cannot be taken, holds nothing: the work itself goes on.
pub fn hold(library: &LibraryPaths, paths: &[PathBuf], what: Use) -> Vec<ModelInUse> {
    paths
        .iter()
        .filter_map(|p| match ModelInUse::for_path(library, p, what) {
            Ok(held) => held,
            Err(e) => {
                eprintln!("minibar: cannot mark {} in use: {e}", p.display());
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_file_names_give_the_catalog_model_and_quant() {
        let catalog = Catalog::builtin().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
        std::fs::write(&file, b"GGUF").unwrap();
        let m = describe_local(&catalog, "SmolLM2-135M-Instruct.Q4_1", &file, 4, None, None);
        assert_eq!(m.variant_id, "smollm2-135m@q4_1");
        assert_eq!(m.path, file);
    }

    #[test]
    fn unknown_models_get_a_local_id() {
        let catalog = Catalog::builtin().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let m = describe_local(
            &catalog,
            "my-finetune",
            dir.path(),
            10,
            Some(4.5),
            Some((4, 64)),
        );
        assert_eq!(m.model_id, "local-myfinetune");
        assert_eq!(m.quant, "4bit");
    }

    #[test]
    fn quantized_store_folders_are_named_by_bits_and_group() {
        let catalog = Catalog::builtin().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let name = "SmolLM2-135M-Instruct.Q4_1-6bit-g32";
        let m = describe_local(&catalog, name, dir.path(), 10, None, Some((6, 32)));
        assert_eq!(m.variant_id, "smollm2-135m@6bit-g32");
        let name = "SmolLM2-135M-Instruct.Q4_1-4bit";
        let m = describe_local(&catalog, name, dir.path(), 10, None, Some((4, 64)));
        assert_eq!(m.variant_id, "smollm2-135m@4bit");
    }

    #[test]
    fn files_checked_by_size_alone_are_named_in_the_installed_info() {
        let catalog = Catalog::builtin().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = LibraryPaths::new(dir.path().join("hub"), dir.path().join("minibar"));
        let root = paths.hf_cache.join("models--org--tiny");
        let commit = "c".repeat(40);
        let snapshot = root.join("snapshots").join(&commit);
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(root.join("blobs")).unwrap();
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs").join("main"), &commit).unwrap();
        for (file, etag, checked) in [
            ("config.json", "a".repeat(40), true),
            ("model.safetensors", "b".repeat(32), false),
        ] {
            std::fs::write(root.join("blobs").join(&etag), b"{}").unwrap();
            if !checked {
                std::fs::write(root.join("blobs").join(format!("{etag}.unverified")), b"").unwrap();
            }
            std::os::unix::fs::symlink(format!("../../blobs/{etag}"), snapshot.join(file)).unwrap();
        }
        let all = installed(&catalog, &paths).unwrap();
        let m = all
            .iter()
            .find(|m| m.library_name.as_deref() == Some("org/tiny"))
            .expect("listed");
        assert_eq!(m.unverified, vec!["model.safetensors".to_string()]);
    }
}
