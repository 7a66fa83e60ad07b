//! What a command does before it loads a model: `--force` (load a model that minibar-fit's
//! gate says won't fit; remembered per model in `forced-models.json` in Minibar's config
//! folder, so later runs need no flag; MLX's memory limit still holds the model to the budget
//! either way), and the "in use" mark that keeps the model from being deleted meanwhile.

use std::path::{Path, PathBuf};

use anyhow::Context;
use minibar_engine::{EngineError, LoadOptions, Session};
use minibar_fit::{model_key, ForcedModels, LoadRequest};
use minibar_hub::library::{LibraryPaths, ModelInUse, Use};

/// Where the CLI remembers forced models.
fn forced_file() -> Option<PathBuf> {
    minibar_catalog::config_dir().map(|d| d.join("forced-models.json"))
}

/// Whether `model` may load past a "won't fit": forced now (then remembered), or before.
pub fn forced(model: &Path, flag: bool) -> anyhow::Result<bool> {
    let Some(file) = forced_file() else {
        return Ok(flag);
    };
    let key = model_key(model);
    let mut list = ForcedModels::load(&file);
    if flag && list.insert(key.clone()) {
        list.save(&file)
            .with_context(|| format!("cannot remember the forced model in {}", file.display()))?;
    }
    Ok(flag || list.contains(&key))
}

/// Load options whose gate lets `model` past a "won't fit" when it was forced.
pub fn load_options(model: &Path, flag: bool) -> anyhow::Result<LoadOptions> {
    Ok(LoadOptions {
        memory: LoadRequest {
            force: forced(model, flag)?,
            ..LoadRequest::default()
        },
        ..LoadOptions::default()
    })
}

/// Marks the library model at `model` in use for `what` while the guard lives, so `minibar rm`
/// (or the app) refuses to delete it meanwhile; a path outside the library holds nothing.
pub fn hold(model: &Path, what: Use) -> anyhow::Result<Option<ModelInUse>> {
    ModelInUse::for_path(&LibraryPaths::from_env(), model, what)
        .with_context(|| format!("cannot mark {} in use", model.display()))
}

/// The engine's error, with how to load anyway when the gate refused the model.
pub fn explain(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::WontFit(refusal) => anyhow::anyhow!(
            "{refusal}. To load it anyway, pass --force (remembered for this model): it may swap, and MLX's memory limit still applies"
        ),
        other => other.into(),
    }
}

/// Opens a chat session on `model` as `chat` and `generate` do: marked in use (the guard must
/// live as long as the session), past a remembered or given `--force`, with the refusal
/// explained.
pub fn open_session(
    model: &Path,
    flag: bool,
    context: Option<usize>,
) -> anyhow::Result<(Option<ModelInUse>, Session)> {
    let in_use = hold(model, Use::Chat)?;
    let session = Session::open(model, &load_options(model, flag)?, context).map_err(explain)?;
    Ok((in_use, session))
}
