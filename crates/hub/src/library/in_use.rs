//! Models in use: whatever needs a model's files (a chat or server that has it loaded, a
//! benchmark, a quantization reading it, a download writing it) holds a shared lock on
//! `<state>/locks/<name>.lock`; deleting needs the exclusive lock. The OS drops a lock when its
//! process dies. Each holder also leaves a marker saying what it is, so a refused deletion can
//! say why.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{HubError, Result};
use crate::library::LibraryPaths;

/// What holds a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// A chat (or `minibar generate`) has it loaded.
    Chat,
    /// The local server has it loaded.
    Server,
    /// A benchmark runs it.
    Benchmark,
    /// A quantization reads it.
    Quantization,
    /// A download writes it.
    Download,
}

impl Use {
    /// How a refusal names the holder.
    pub fn label(self) -> &'static str {
        match self {
            Use::Chat => "a chat",
            Use::Server => "the local server",
            Use::Benchmark => "a benchmark",
            Use::Quantization => "a quantization",
            Use::Download => "a download",
        }
    }
}

/// Held while a model is in use; dropping it releases the model.
#[derive(Debug)]
pub struct ModelInUse {
    _file: File,
    name: String,
    marker: PathBuf,
}

impl ModelInUse {
    /// Marks `name` as in use for `what` (several holders may hold it at once).
    pub fn acquire(paths: &LibraryPaths, name: &str, what: Use) -> Result<Self> {
        let file = open_lock(paths, name)?;
        fs4::fs_std::FileExt::lock_shared(&file)
            .map_err(|e| HubError::io(paths.lock_file(name), e))?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let markers = markers_dir(paths, name);
        std::fs::create_dir_all(&markers).map_err(|e| HubError::io(&markers, e))?;
        let marker = markers.join(format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // Only the explanation depends on it: a marker that cannot be written costs nothing.
        let _ = std::fs::write(&marker, what.label());
        Ok(ModelInUse {
            _file: file,
            name: name.to_string(),
            marker,
        })
    }

    /// Holds the library model that `path` (its folder, or a file in it) belongs to, for
    /// `what`; `None` when the path is not in the library (a loose file).
    pub fn for_path(paths: &LibraryPaths, path: &Path, what: Use) -> Result<Option<Self>> {
        let Some(name) = library_name(paths, path) else {
            return Ok(None);
        };
        Self::acquire(paths, &name, what).map(Some)
    }

    /// The model held.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ModelInUse {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.marker);
    }
}

/// The library name of the model at `path`, if the library has it. Paths are compared both
/// as given (a file in a cache snapshot is a link into `blobs/`) and with links resolved.
fn library_name(paths: &LibraryPaths, path: &Path) -> Option<String> {
    let forms = |p: &Path| -> Vec<PathBuf> {
        [std::path::absolute(p).ok(), std::fs::canonicalize(p).ok()]
            .into_iter()
            .flatten()
            .collect()
    };
    let wanted = forms(path);
    crate::library::list_models(paths)
        .ok()?
        .models
        .into_iter()
        .find(|m| {
            let folder = forms(&m.path);
            wanted
                .iter()
                .any(|w| folder.iter().any(|f| w.starts_with(f)))
        })
        .map(|m| m.name)
}

/// Whether some process holds `name` in use right now.
pub fn is_in_use(paths: &LibraryPaths, name: &str) -> bool {
    match exclusive(paths, name) {
        Ok(Some(_)) => false,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// What holds `name` now, from the holders' markers: "a chat and a download".
pub(crate) fn holders(paths: &LibraryPaths, name: &str) -> String {
    let mut labels: Vec<String> = std::fs::read_dir(markers_dir(paths, name))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter(|l| !l.is_empty() && l.len() < 64)
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    labels.dedup();
    match labels.len() {
        0 => "a running Minibar".to_string(),
        _ => labels.join(" and "),
    }
}

/// Takes the exclusive lock if nobody uses the model; `None` if someone does. With the lock
/// taken, markers left by killed holders are cleared.
pub(crate) fn exclusive(paths: &LibraryPaths, name: &str) -> Result<Option<File>> {
    let file = open_lock(paths, name)?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
        Ok(true) => {
            let _ = std::fs::remove_dir_all(markers_dir(paths, name));
            Ok(Some(file))
        }
        Ok(false) => Ok(None),
        Err(e) => Err(HubError::io(paths.lock_file(name), e)),
    }
}

fn markers_dir(paths: &LibraryPaths, name: &str) -> PathBuf {
    paths.lock_file(name).with_extension("users")
}

fn open_lock(paths: &LibraryPaths, name: &str) -> Result<File> {
    let path = paths.lock_file(name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| HubError::io(&path, e))
}
