//! Where models live, as the user chose in Settings: Minibar's store (default
//! `MINIBAR_HOME/models`) and the Hugging Face cache downloads go to (default `HF_HUB_CACHE`,
//! as hf tools find it). Empty settings mean the defaults.

use std::path::{Path, PathBuf};

use minibar_hub::library::LibraryPaths;

use crate::types::{AppError, AppResult, LibraryFolders, Settings};

/// A folder typed in Settings: `~/` expanded, otherwise absolute; None when empty (default).
fn chosen(text: &str, what: &str) -> AppResult<Option<PathBuf>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let path = match text.strip_prefix("~/").or((text == "~").then_some("")) {
        Some(rest) => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| {
                    AppError::invalid(format!(
                        "The {what} starts with ~ but HOME is not set: give the full path."
                    ))
                })?;
            PathBuf::from(home).join(rest)
        }
        None => PathBuf::from(text),
    };
    if !path.is_absolute() {
        return Err(AppError::invalid(format!(
            "The {what} must be a full path (starting with / or ~/), not {text:?}."
        )));
    }
    Ok(Some(path))
}

/// Creates `dir` so downloads and quantizations can write there, or says why not.
fn usable(dir: &Path, what: &str) -> AppResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        AppError::io(format!(
            "Cannot use {} as the {what}: {e}. Choose a folder you can write to.",
            dir.display()
        ))
    })
}

/// The library's folders for `settings`: the environment's defaults with the user's choices
/// applied; chosen folders are created.
pub fn library_paths(settings: &Settings) -> AppResult<LibraryPaths> {
    let mut paths = LibraryPaths::from_env();
    if let Some(store) = chosen(&settings.models_folder, "models folder")? {
        usable(&store, "models folder")?;
        paths.store = store;
    }
    if let Some(cache) = chosen(&settings.hf_cache_folder, "Hugging Face cache folder")? {
        usable(&cache, "Hugging Face cache folder")?;
        paths.hf_cache = cache;
    }
    Ok(paths)
}

/// The folders in use and the defaults an empty setting means.
pub fn describe(in_use: &LibraryPaths) -> LibraryFolders {
    let defaults = LibraryPaths::from_env();
    let show = |p: &Path| p.display().to_string();
    LibraryFolders {
        models_folder: show(&in_use.store),
        hf_cache_folder: show(&in_use.hf_cache),
        default_models_folder: show(&defaults.store),
        default_hf_cache_folder: show(&defaults.hf_cache),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_default_and_relative_paths_are_refused() {
        assert_eq!(chosen("  ", "x").unwrap(), None);
        assert_eq!(
            chosen("/srv/models", "x").unwrap(),
            Some(PathBuf::from("/srv/models"))
        );
        let err = chosen("models", "models folder").unwrap_err();
        assert!(err.message.contains("full path"), "{}", err.message);
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(
                chosen("~/m", "x").unwrap(),
                Some(PathBuf::from(home).join("m"))
            );
        }
    }

    #[test]
    fn a_folder_that_cannot_be_created_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let settings = Settings {
            models_folder: file.join("models").display().to_string(),
            ..Settings::default()
        };
        let err = library_paths(&settings).unwrap_err();
        assert!(err.message.contains("Choose a folder"), "{}", err.message);
    }
}
