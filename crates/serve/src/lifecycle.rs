//! Which model is loaded: a request naming a model of the library loads it (once the running
//! requests end), the memory-fit verdict runs before every load, and a model without
//! requests for the keep-alive time, or idle when memory pressure turns critical, is
//! unloaded, giving its memory back.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{atomic::Ordering, mpsc, Arc, RwLock},
    time::Duration,
};

use minibar_engine::{LoadOptions, Session};
use minibar_hub::library::{find_model, LibraryPaths};

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
/// library's model of that name. A name never becomes a path unless the library lists it.
pub(crate) fn resolve(default: &ModelTarget, name: &str) -> Result<ModelTarget, ApiError> {
    if name.eq_ignore_ascii_case(&default.name) || Path::new(name) == default.path {
        return Ok(default.clone());
    }
    let found = find_model(&LibraryPaths::from_env(), name)
        .ok()
        .filter(|m| m.complete)
        .ok_or_else(|| ApiError::UnknownModel(name.to_owned()))?;
    Ok(ModelTarget {
        name: found.name,
        path: loadable(&found.path),
    })
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

/// The engine thread: one model loaded at a time, or none.
pub(crate) struct EngineThread {
    pub jobs: mpsc::Receiver<Request>,
    pub load: Arc<Load>,
    pub loaded: Arc<RwLock<Option<ModelInfo>>>,
    pub limits: Limits,
    pub context: Option<usize>,
    pub keep_alive: Duration,
    pub pressure: PressureSource,
}

impl EngineThread {
    /// Checks the fit and loads `target`, publishing it as the loaded model.
    pub fn open(&self, target: &ModelTarget) -> Result<Session, ApiError> {
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
        Ok(session)
    }

    fn publish(&self, info: Option<ModelInfo>) {
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = info;
        }
    }

    /// Serves with `session` (for `target`) loaded, then whatever requests ask for, until
    /// the server is gone.
    pub fn run(self, target: ModelTarget, session: Session) {
        let mut current = Some((target, session));
        let mut waiting = VecDeque::new();
        loop {
            if let Some((target, session)) = &current {
                let mut engine = Engine::new(
                    session,
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
                // Idle or another model asked for: unload first, so both never share memory.
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
                Ok(session) => {
                    current = Some((request.model.clone(), session));
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
