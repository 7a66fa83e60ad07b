//! Which model is loaded: a request naming a model of the library loads it (once the running
//! requests end), the memory-fit verdict runs before every load, and a model without
//! requests for the keep-alive time, or idle when memory pressure turns critical, is
//! unloaded, giving its memory back. A loaded library model is held in use
//! ([`ModelInUse`], as the local server) until it is unloaded, so it cannot be deleted under
//! the engine.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{atomic::Ordering, mpsc, Arc, RwLock},
    time::Duration,
};

use minibar_engine::{LoadOptions, Session};
use minibar_hub::library::{find_model, LibraryPaths, ModelInUse, Use};

use crate::{
    errors::ApiError,
    scheduler::{Engine, Event, Exit, Limits, Load, ModelInfo, PressureSource, Request},
};

/// A model requests can name: its name and where it loads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelTarget {
    /// Name clients use.
    pub name: String,
    /// The model file or folder.
    pub path: PathBuf,
}

/// The model `name` means: the default (by name, case-insensitively, or by path), else the
/// library's model of that name, else, for a catalog id (`qwen3-4b`), the installed model
/// that entry describes (the default model first, then the most recently used). A name
/// never becomes a path unless the library lists it.
pub(crate) fn resolve(
    paths: &LibraryPaths,
    default: &ModelTarget,
    name: &str,
) -> Result<ModelTarget, ApiError> {
    if name.eq_ignore_ascii_case(&default.name) || Path::new(name) == default.path {
        return Ok(default.clone());
    }
    if let Some(found) = find_model(paths, name).ok().filter(|m| m.complete) {
        return Ok(ModelTarget {
            name: found.name,
            path: loadable(&found.path),
        });
    }
    // A user catalog that does not parse leaves the built-in one (the app sets it aside).
    let catalog = minibar_catalog::Catalog::load(None)
        .or_else(|_| minibar_catalog::Catalog::builtin())
        .map_err(|_| ApiError::UnknownModel(name.to_owned()))?;
    let Some(entry) = catalog.get(name) else {
        return Err(ApiError::UnknownModel(name.to_owned()));
    };
    let is_entry = |n: &str| catalog.describing(n).is_some_and(|e| e.id == entry.id);
    let default_file = default.path.file_name().map(|f| f.to_string_lossy());
    if is_entry(&default.name) || default_file.is_some_and(|f| is_entry(&f)) {
        return Ok(default.clone());
    }
    let mut installed: Vec<_> = crate::library::installed(paths)
        .into_iter()
        .filter(|m| is_entry(&m.name))
        .collect();
    installed.sort_by_key(|m| std::cmp::Reverse(m.last_used));
    match installed.into_iter().next() {
        Some(m) => Ok(ModelTarget {
            name: m.name,
            path: loadable(&m.path),
        }),
        None => Err(ApiError::NotInstalled(entry.id.clone())),
    }
}

/// A store folder holding only a GGUF file loads from that file.
fn loadable(dir: &Path) -> PathBuf {
    if dir.join("config.json").is_file() {
        return dir.to_owned();
    }
    let gguf = std::fs::read_dir(dir).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "gguf"))
    });
    gguf.unwrap_or_else(|| dir.to_owned())
}

/// A model loaded on the engine thread. Fields drop in order: the weights go before the
/// in-use hold, so the files stay until nothing reads them.
pub(crate) struct Opened {
    pub session: Session,
    /// `None` for a model outside the library (a loose file).
    _in_use: Option<ModelInUse>,
}

/// The engine thread: one model loaded at a time, or none.
pub(crate) struct EngineThread {
    pub jobs: mpsc::Receiver<Request>,
    /// The library whose models are held in use while loaded.
    pub library: LibraryPaths,
    pub load: Arc<Load>,
    pub loaded: Arc<RwLock<Option<ModelInfo>>>,
    pub limits: Limits,
    pub context: Option<usize>,
    pub keep_alive: Duration,
    pub pressure: PressureSource,
}

impl EngineThread {
    /// Holds `target` in use, checks the fit and loads it, publishing it as the loaded model.
    pub fn open(&self, target: &ModelTarget) -> Result<Opened, ApiError> {
        // Held before loading, so a deletion cannot start under a half-loaded model.
        let in_use = ModelInUse::for_path(&self.library, &target.path, Use::Server)
            .map_err(|e| ApiError::Unavailable(format!("cannot load {}: {e}", target.name)))?;
        crate::fit::check(&target.path, self.context)
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        let session = Session::open(&target.path, &LoadOptions::default(), self.context)
            .map_err(|e| ApiError::Unavailable(format!("cannot load {}: {e}", target.name)))?;
        self.publish(Some(ModelInfo {
            name: target.name.clone(),
            path: target.path.clone(),
            context: session.context(),
            weight_bytes: session.model.weight_bytes(),
        }));
        Ok(Opened {
            session,
            _in_use: in_use,
        })
    }

    fn publish(&self, info: Option<ModelInfo>) {
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = info;
        }
    }

    /// Serves with `current` loaded (if any), then whatever requests ask for, until the
    /// server is gone.
    pub fn run(self, current: Option<(ModelTarget, Opened)>) {
        let mut current = current;
        let mut waiting = VecDeque::new();
        loop {
            if let Some((target, opened)) = &current {
                let mut engine = Engine::new(
                    &opened.session,
                    target.name.clone(),
                    &self.load,
                    self.limits.max_seqs,
                    (self.keep_alive, self.pressure),
                    std::mem::take(&mut waiting),
                );
                let exit = engine.run(&self.jobs);
                waiting = std::mem::take(&mut engine.waiting);
                drop(engine);
                if matches!(exit, Exit::Closed) {
                    return;
                }
                // Idle or another model asked for: unload (and release the model) first, so
                // both never share memory.
                current = None;
                self.publish(None);
                continue;
            }
            let request = match waiting.pop_front() {
                Some(r) => r,
                None => match self.jobs.recv() {
                    Ok(r) => r,
                    Err(_) => return,
                },
            };
            if request.events.is_closed() {
                self.load.queued.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            match self.open(&request.model) {
                Ok(opened) => {
                    current = Some((request.model.clone(), opened));
                    waiting.push_front(request);
                }
                Err(e) => {
                    self.load.queued.fetch_sub(1, Ordering::SeqCst);
                    let _ = request.events.send(Event::Rejected(e));
                }
            }
        }
    }
}
