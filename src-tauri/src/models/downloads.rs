//! Downloads through minibar-hub: one pull per variant, its progress re-sent as
//! `download-progress` events (at most every 250 ms), pause / resume / cancel. Each runs the
//! same checks as `minibar pull` first (memory fit, disk space); a concern stops it with
//! `needs_confirmation` until the user says "Download anyway".

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minibar_hub::library::{LibraryPaths, ModelInUse, Use};
use minibar_hub::{
    FitCheck, Hub, HubConfig, HubError, ModelRef, PullControl, PullEvent, PullOptions,
};
use tauri::{AppHandle, Runtime};
use tauri_specta::Event;

use crate::types::{AppError, AppErrorKind, AppResult, DownloadProgress, DownloadState};

/// Least time between two progress events of one download.
const EMIT_EVERY: Duration = Duration::from_millis(250);

struct Active {
    control: PullControl,
    progress: DownloadProgress,
    repo: String,
    confirmed: bool,
    /// The partial files this download wrote (from its `FileStarted` events): cancelling
    /// deletes these and no other download's.
    partials: BTreeSet<PathBuf>,
    /// Cancelled by the user: its partial files go once the pull has stopped.
    discard: bool,
}

/// The checks a download runs before it starts, as `minibar pull` does, and the library
/// whose "in use" lock it holds while it runs (so the model cannot be deleted under it).
#[derive(Clone)]
pub struct Checks {
    /// The memory check (minibar-hub's [`minibar_hub::memory_check`] with the headroom setting).
    pub fit: FitCheck,
    /// The user confirmed: download despite the concerns the checks find.
    pub confirmed: bool,
    /// The library the model goes into.
    pub library: LibraryPaths,
}

impl Checks {
    /// minibar-fit's memory check keeping `headroom` bytes free, as the catalog judges.
    pub fn new(headroom: u64, confirmed: bool, library: LibraryPaths) -> Checks {
        Checks {
            fit: minibar_hub::memory_check(minibar_fit::Thresholds::with_headroom(headroom)),
            confirmed,
            library,
        }
    }
}

/// Where downloads go and which hub they come from. `Debug` says whether a token is set,
/// never the token.
#[derive(Clone)]
pub struct HubTarget {
    /// The endpoint (None: `HF_ENDPOINT`, else huggingface.co).
    pub endpoint: Option<String>,
    /// The hub cache (None: as hf tools find it).
    pub cache_dir: Option<PathBuf>,
    /// The token from the keychain.
    pub token: Option<String>,
}

impl std::fmt::Debug for HubTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubTarget")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Every download this run started, running or finished.
#[derive(Default, Clone)]
pub struct Downloads {
    inner: Arc<Mutex<HashMap<String, Active>>>,
}

fn fresh(variant_id: &str, state: DownloadState) -> DownloadProgress {
    DownloadProgress {
        variant_id: variant_id.to_string(),
        state,
        downloaded_bytes: 0,
        total_bytes: None,
        bytes_per_second: 0.0,
        eta_seconds: None,
        error: None,
    }
}

impl Downloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last progress of every download, by variant id.
    pub fn snapshot(&self) -> HashMap<String, DownloadProgress> {
        self.lock()
            .iter()
            .map(|(k, a)| (k.clone(), a.progress.clone()))
            .collect()
    }

    /// Starts (or restarts, resuming partial files) the download of `repo` as `variant_id`.
    pub fn start<R: Runtime>(
        &self,
        app: AppHandle<R>,
        variant_id: &str,
        repo: String,
        target: HubTarget,
        checks: Checks,
    ) -> AppResult<DownloadProgress> {
        let model = ModelRef::new(&repo, None)
            .map_err(|e| AppError::invalid(format!("bad repository {repo}: {e}")))?;
        // Held until the pull ends: deleting the model meanwhile is refused with the reason.
        let in_use = ModelInUse::acquire(&checks.library, &repo, Use::Download)
            .map_err(|e| AppError::io(format!("cannot mark {repo} in use: {e}")))?;
        let control = PullControl::new();
        let progress = fresh(variant_id, DownloadState::Queued);
        {
            let mut map = self.lock();
            if let Some(a) = map.get(variant_id) {
                if matches!(
                    a.progress.state,
                    DownloadState::Queued | DownloadState::Downloading | DownloadState::Verifying
                ) {
                    return Ok(a.progress.clone());
                }
            }
            // A restart keeps the record of the partial files the earlier tries wrote.
            let partials = map
                .get(variant_id)
                .map(|a| a.partials.clone())
                .unwrap_or_default();
            map.insert(
                variant_id.to_string(),
                Active {
                    control: control.clone(),
                    progress: progress.clone(),
                    repo: repo.clone(),
                    confirmed: checks.confirmed,
                    partials,
                    discard: false,
                },
            );
        }
        let this = self.clone();
        let id = variant_id.to_string();
        tauri::async_runtime::spawn(async move {
            let _in_use = in_use;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut config = HubConfig::from_env().with_token(target.token);
            if let Some(e) = target.endpoint {
                config = config.with_endpoint(e);
            }
            if let Some(d) = target.cache_dir {
                config = config.with_cache_dir(d);
            }
            let options = PullOptions {
                assume_yes: checks.confirmed,
                fit: Some(checks.fit),
                control: control.clone(),
                events: Some(tx),
                layers: None,
            };
            let pull = async {
                match Hub::new(config) {
                    Ok(hub) => hub.pull(&model, options).await,
                    Err(e) => Err(e),
                }
            };
            let relay = async {
                let mut last = Instant::now() - EMIT_EVERY;
                while let Some(event) = rx.recv().await {
                    let urgent = !matches!(event, PullEvent::Progress { .. });
                    this.apply(&id, &event);
                    if urgent || last.elapsed() >= EMIT_EVERY {
                        last = Instant::now();
                        this.emit(&app, &id);
                    }
                }
            };
            let (result, ()) = tokio::join!(pull, relay);
            this.finish(&id, result.map(|_| ()));
            this.emit(&app, &id);
        });
        Ok(progress)
    }

    fn apply(&self, id: &str, event: &PullEvent) {
        let mut map = self.lock();
        let Some(a) = map.get_mut(id) else { return };
        let p = &mut a.progress;
        match event {
            PullEvent::Planned {
                total_bytes,
                cached_bytes,
                ..
            } => {
                p.state = DownloadState::Downloading;
                p.total_bytes = Some(*total_bytes);
                p.downloaded_bytes = *cached_bytes;
            }
            PullEvent::Progress { overall, .. } => {
                if p.state != DownloadState::Paused {
                    p.state = DownloadState::Downloading;
                }
                p.downloaded_bytes = overall.done;
                p.total_bytes = Some(overall.total);
                p.bytes_per_second = overall.bytes_per_sec;
                p.eta_seconds = overall.eta_secs;
            }
            PullEvent::Paused => {
                p.state = DownloadState::Paused;
                p.bytes_per_second = 0.0;
                p.eta_seconds = None;
            }
            PullEvent::Resumed => p.state = DownloadState::Downloading,
            PullEvent::FileStarted { partial, .. } => {
                a.partials.insert(partial.clone());
            }
            PullEvent::Done { .. } => {
                p.state = DownloadState::Verifying;
            }
            _ => {}
        }
    }

    fn finish(&self, id: &str, result: Result<(), HubError>) {
        let mut map = self.lock();
        let Some(a) = map.get_mut(id) else { return };
        let p = &mut a.progress;
        p.bytes_per_second = 0.0;
        p.eta_seconds = None;
        match result {
            Ok(()) => {
                p.state = DownloadState::Done;
                if let Some(total) = p.total_bytes {
                    p.downloaded_bytes = total.max(p.downloaded_bytes);
                }
            }
            Err(HubError::Cancelled) => {
                p.state = DownloadState::Cancelled;
                if a.discard {
                    discard(std::mem::take(&mut a.partials));
                }
            }
            Err(HubError::NeedsConfirmation { concerns }) => {
                p.state = DownloadState::Failed;
                let found: Vec<String> = concerns.iter().map(|c| c.to_string()).collect();
                p.error = Some(AppError::new(
                    AppErrorKind::NeedsConfirmation,
                    format!(
                        "{}. Nothing was downloaded; \"Download anyway\" goes ahead.",
                        found.join("; ")
                    ),
                ));
            }
            Err(e) => {
                p.state = DownloadState::Failed;
                p.error = Some(AppError::new(AppErrorKind::Download, e.to_string()));
            }
        }
    }

    fn emit<R: Runtime>(&self, app: &AppHandle<R>, id: &str) {
        let progress = self.lock().get(id).map(|a| a.progress.clone());
        if let Some(p) = progress {
            // A closed window must not stop the download.
            let _ = p.emit(app);
        }
    }

    fn control(&self, id: &str) -> AppResult<(PullControl, String, DownloadState, bool)> {
        self.lock()
            .get(id)
            .map(|a| {
                let p = &a.progress;
                (a.control.clone(), a.repo.clone(), p.state, a.confirmed)
            })
            .ok_or_else(|| AppError::not_found(format!("no download of {id}")))
    }

    /// Pauses a running download; partial files stay.
    pub fn pause(&self, id: &str) -> AppResult<()> {
        self.control(id)?.0.pause();
        Ok(())
    }

    /// Resumes a paused download, or restarts a failed one from its partial files (with the
    /// checks it was started with: a confirmed download stays confirmed).
    pub fn resume<R: Runtime>(
        &self,
        app: AppHandle<R>,
        id: &str,
        target: HubTarget,
        headroom: u64,
        library: LibraryPaths,
    ) -> AppResult<()> {
        let (control, repo, state, confirmed) = self.control(id)?;
        match state {
            DownloadState::Failed | DownloadState::Cancelled => self
                .start(
                    app,
                    id,
                    repo,
                    target,
                    Checks::new(headroom, confirmed, library),
                )
                .map(|_| ()),
            _ => {
                control.resume();
                Ok(())
            }
        }
    }

    /// Cancels a download and deletes its own partial files: at once when it is not running,
    /// else once its pull has stopped (it holds them until then). Another download's partial
    /// files, of the same repository or not, stay.
    pub fn cancel(&self, id: &str) -> AppResult<()> {
        let mut map = self.lock();
        let a = map
            .get_mut(id)
            .ok_or_else(|| AppError::not_found(format!("no download of {id}")))?;
        match a.progress.state {
            DownloadState::Queued
            | DownloadState::Downloading
            | DownloadState::Paused
            | DownloadState::Verifying => {
                a.discard = true;
                a.control.cancel();
            }
            _ => discard(std::mem::take(&mut a.partials)),
        }
        Ok(())
    }
}

/// Deletes partial files no running download writes (minibar-hub checks each one's lock).
fn discard(partials: BTreeSet<PathBuf>) {
    for p in partials {
        if let Err(e) = minibar_hub::discard_partial(&p) {
            eprintln!(
                "minibar: cannot delete the partial download {}: {e}",
                p.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_unknown_until_the_plan_gives_it() {
        let downloads = Downloads::default();
        downloads.lock().insert(
            "a".into(),
            Active {
                control: PullControl::new(),
                progress: fresh("a", DownloadState::Queued),
                repo: "org/model".into(),
                confirmed: false,
                partials: BTreeSet::new(),
                discard: false,
            },
        );
        let total = |d: &Downloads| d.lock()["a"].progress.total_bytes;
        assert_eq!(total(&downloads), None, "not a made-up 0");
        let json = serde_json::to_value(&downloads.lock()["a"].progress).unwrap();
        assert!(json["totalBytes"].is_null());
        downloads.apply(
            "a",
            &PullEvent::Planned {
                repo_id: "org/model".into(),
                revision: "main".into(),
                commit: "c".repeat(40),
                files: Vec::new(),
                total_bytes: 1234,
                cached_bytes: 0,
            },
        );
        assert_eq!(total(&downloads), Some(1234));
    }

    #[test]
    fn cancelling_a_download_deletes_only_its_own_partial_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = minibar_hub::RepoCache::new(dir.path(), "org/model");
        std::fs::create_dir_all(cache.root().join("blobs")).unwrap();
        let downloads = Downloads::default();
        // Two downloads of the same repository (two variants), both stopped by a failure.
        let mut files = Vec::new();
        for (id, etag) in [("a", "a".repeat(64)), ("b", "b".repeat(64))] {
            let partial = cache.incomplete(&etag);
            std::fs::write(&partial, b"half").unwrap();
            downloads.lock().insert(
                id.into(),
                Active {
                    control: PullControl::new(),
                    progress: fresh(id, DownloadState::Failed),
                    repo: "org/model".into(),
                    confirmed: false,
                    partials: BTreeSet::from([partial.clone()]),
                    discard: false,
                },
            );
            files.push(partial);
        }
        downloads.cancel("a").unwrap();
        assert!(!files[0].exists(), "its own partial file stays");
        assert!(
            files[1].exists(),
            "the other download's partial file was deleted"
        );

        // A running one keeps its file until its pull stops, then deletes it.
        downloads.lock().get_mut("b").unwrap().progress.state = DownloadState::Downloading;
        downloads.cancel("b").unwrap();
        assert!(files[1].exists());
        downloads.finish("b", Err(HubError::Cancelled));
        assert!(!files[1].exists());
        assert_eq!(downloads.snapshot()["b"].state, DownloadState::Cancelled);
    }

    #[test]
    fn debug_never_prints_the_token() {
        let t = HubTarget {
            endpoint: None,
            cache_dir: None,
            token: Some("hf_SECRET".into()),
        };
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("SECRET") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
