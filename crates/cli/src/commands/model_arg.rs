//! Resolving the model a command should run: a path, a name in the store, or the default.

use std::path::PathBuf;

use anyhow::bail;
use minibar_hub::library::LibraryPaths;

/// The model the set-up installs and every command uses when none is named.
pub const DEFAULT_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

/// Finds the model folder or file for `model` (a path, or a name in the model store).
pub fn resolve(model: Option<&str>) -> anyhow::Result<PathBuf> {
    let name = model
        .map(str::to_owned)
        .or_else(|| {
            std::env::var("MINIBAR_MODEL")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
    let as_path = PathBuf::from(&name);
    if as_path.exists() {
        return Ok(as_path);
    }
    let store = LibraryPaths::from_env().store;
    let in_store = store.join(&name);
    if in_store.exists() {
        return Ok(in_store);
    }
    if model.is_none() {
        bail!(
            "the default model {name} is not installed in {}; run `make run` (or `minibar import <file.gguf>`) first",
            store.display()
        );
    }
    bail!(
        "no model named `{name}`: not a file or folder, and not in {} (see `minibar list`)",
        store.display()
    )
}
