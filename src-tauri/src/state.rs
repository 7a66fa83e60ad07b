//! What every command shares: the history, the engine thread, running generations, downloads,
//! the catalog and the library's folders.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use minibar_catalog::Catalog;
use minibar_hub::library::LibraryPaths;

use crate::bench::Bench;
use crate::engine_worker::{CancelToken, EngineWorker};
use crate::history::History;
use crate::models::downloads::Downloads;
use crate::models::quantize::Quantizations;

/// A generation in flight.
#[derive(Clone)]
pub struct Running {
    /// Its session.
    pub session_id: String,
    /// Stops it.
    pub cancel: CancelToken,
}

/// Generations in flight, by request id.
pub type Generations = Arc<Mutex<HashMap<String, Running>>>;

/// The app's shared state, managed by Tauri.
pub struct AppState {
    /// Chat history.
    pub history: Arc<History>,
    /// The engine thread.
    pub engine: EngineWorker,
    /// Generations in flight.
    pub generations: Generations,
    /// Downloads started this run.
    pub downloads: Downloads,
    /// Quantizations in flight.
    pub quantizations: Quantizations,
    /// The benchmark's history and the run in flight.
    pub bench: Arc<Bench>,
    /// The curated catalog merged with the user's.
    pub catalog: Catalog,
    /// Where installed models live: the settings' folders, changed by `settings_changed`.
    pub library: RwLock<LibraryPaths>,
    /// The app's data folder (the chat history database).
    pub data_dir: PathBuf,
    /// What went wrong at start that the user should hear about (a damaged database set
    /// aside), for `startup_notices`.
    pub notices: Vec<String>,
}

impl AppState {
    /// Where installed models live now (a copy: a settings change applies to what starts
    /// after it).
    pub fn library(&self) -> LibraryPaths {
        self.library
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Moves the library to the folders of `paths`.
    pub fn set_library(&self, paths: LibraryPaths) {
        *self.library.write().unwrap_or_else(|e| e.into_inner()) = paths;
    }

    /// Stops every generation of a session.
    pub fn stop_session(&self, session_id: &str) {
        if let Ok(g) = self.generations.lock() {
            for r in g.values().filter(|r| r.session_id == session_id) {
                r.cancel.cancel();
            }
        }
    }
}
