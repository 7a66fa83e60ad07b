//! minibar-catalog: the curated models.toml (built into the binary) with a user catalog merged
//! over it, lookup by id, and the consistency rules every entry must pass.

#![forbid(unsafe_code)]

mod entry;
mod paths;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use entry::{CatalogEntry, MlxRepo};
pub use paths::{config_dir, user_catalog_path};
pub use support::Support;

/// The built-in catalog's text.
pub const BUILTIN_CATALOG: &str = include_str!("../../../models.toml");

/// Everything that can go wrong loading a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read catalog {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML does not have the catalog's layout.
    #[error("catalog {origin} is not valid: {message}")]
    Parse {
        /// Where the text came from.
        origin: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// An entry breaks a consistency rule.
    #[error("catalog entry `{id}` ({origin}): {reason}")]
    Invalid {
        /// Where the entry came from.
        origin: String,
        /// The entry.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    models: Vec<CatalogEntry>,
    /// Why the engine does not run an architecture yet, by `model_type`.
    #[serde(default)]
    not_yet: BTreeMap<String, String>,
}

/// A set of catalog entries, in file order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    not_yet: BTreeMap<String, String>,
}

impl Catalog {
    /// The catalog built into Minibar.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::parse(BUILTIN_CATALOG, "built-in models.toml")
    }

    /// Parses and checks catalog text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut seen = std::collections::HashSet::new();
        for entry in &file.models {
            if !seen.insert(entry.id.as_str()) {
                return Err(CatalogError::Invalid {
                    origin: origin.to_string(),
                    id: entry.id.clone(),
                    reason: "the id appears twice".into(),
                });
            }
            entry.validate().map_err(|reason| CatalogError::Invalid {
                origin: origin.to_string(),
                id: entry.id.clone(),
                reason,
            })?;
        }
        Ok(Catalog {
            entries: file.models,
            not_yet: file.not_yet,
        })
    }

    /// Reads and checks a catalog file.
    pub fn from_file(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Catalog::parse(&text, &path.display().to_string())
    }

    /// The built-in catalog with the user's merged over it: the file at `user` when given,
    /// else [`user_catalog_path`] when that file exists.
    pub fn load(user: Option<&Path>) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::builtin()?;
        let path = match user {
            Some(p) => Some(p.to_path_buf()),
            None => user_catalog_path().filter(|p| p.is_file()),
        };
        if let Some(path) = path {
            catalog.merge(Catalog::from_file(&path)?);
        }
        Ok(catalog)
    }

    /// The built-in catalog with the user's merged over it, for a program that must start
    /// whatever the user's file holds (the app): a user catalog that is not valid is moved to
    /// `models.toml.invalid-<unix ms>` (kept for the user to mend) and the built-in catalog is
    /// used alone. Returns the catalog and, when a file was set aside, what to tell the user.
    /// A file that cannot be read or moved is still an error: nothing is lost by stopping.
    pub fn load_or_set_aside(
        user: Option<&Path>,
    ) -> Result<(Catalog, Option<String>), CatalogError> {
        let path = match user {
            Some(p) => Some(p.to_path_buf()),
            None => user_catalog_path().filter(|p| p.is_file()),
        };
        let mut catalog = Catalog::builtin()?;
        let Some(path) = path else {
            return Ok((catalog, None));
        };
        match Catalog::from_file(&path) {
            Ok(user) => {
                catalog.merge(user);
                Ok((catalog, None))
            }
            Err(e @ (CatalogError::Parse { .. } | CatalogError::Invalid { .. })) => {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(format!(".invalid-{ms}"));
                let aside = path.with_file_name(name);
                std::fs::rename(&path, &aside).map_err(|source| CatalogError::Io {
                    path: path.clone(),
                    source,
                })?;
                let notice = format!(
                    "Your models.toml could not be used ({e}). It was moved to {} and the \
                     built-in catalog is used until it is mended.",
                    aside.display()
                );
                Ok((catalog, Some(notice)))
            }
            Err(e) => Err(e),
        }
    }

    /// Merges `other` over this catalog: same ids are replaced in place, new ids appended.
    pub fn merge(&mut self, other: Catalog) {
        self.not_yet.extend(other.not_yet);
        for entry in other.entries {
            match self.entries.iter_mut().find(|e| e.id == entry.id) {
                Some(slot) => *slot = entry,
                None => self.entries.push(entry),
            }
        }
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&CatalogEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The entry a local model is, from its name: a Hugging Face repo id (one of an entry's
    /// MLX repos or its original repo), or a file or folder name that contains the original
    /// repo's name (`SmolLM2-135M-Instruct.Q4_1.gguf`), compared in letters and digits only;
    /// the longest such name wins, so `Qwen3-4B` does not claim `Qwen3-4B-Thinking`'s files.
    /// The app's library and the server's model names both ask this.
    pub fn describing(&self, name: &str) -> Option<&CatalogEntry> {
        let by_repo = self.entries.iter().find(|e| {
            e.hf_repo.eq_ignore_ascii_case(name)
                || e.mlx.iter().any(|r| r.repo.eq_ignore_ascii_case(name))
        });
        if by_repo.is_some() {
            return by_repo;
        }
        let key = squash(name.rsplit('/').next().unwrap_or(name));
        self.entries
            .iter()
            .map(|e| {
                (
                    e,
                    squash(e.hf_repo.rsplit('/').next().unwrap_or(&e.hf_repo)),
                )
            })
            .filter(|(_, repo)| !repo.is_empty() && key.contains(repo.as_str()))
            .max_by_key(|(_, repo)| repo.len())
            .map(|(e, _)| e)
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    /// Whether the engine, which runs the architectures `engine_runs` lists (pass
    /// `minibar_engine::models::supported_architectures()`), runs `entry`, and why not.
    pub fn support(&self, entry: &CatalogEntry, engine_runs: &[&str]) -> Support {
        self.support_of_type(entry.model_type(), engine_runs)
    }

    /// The same for any `model_type` (a model found on the hub, outside the catalog).
    pub fn support_of_type(&self, model_type: &str, engine_runs: &[&str]) -> Support {
        Support::of(model_type, engine_runs, &self.not_yet)
    }

    /// Every entry in every format it can be downloaded in, for minibar-fit's table.
    pub fn candidates(&self) -> Vec<minibar_fit::Candidate> {
        self.entries
            .iter()
            .flat_map(CatalogEntry::candidates)
            .collect()
    }
}

/// Lowercase letters and digits only, to compare names across spellings.
fn squash(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}
