//! Downloads through minibar-hub: one pull per variant, its progress re-sent as
//! `download-progress` events (at most every 250 ms), pause / resume / cancel.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minibar_hub::{Hub, HubConfig, HubError, ModelRef, PullControl, PullEvent, PullOptions};
use tauri::{AppHandle, Runtime};
use tauri_specta::Event;

use crate::types::{AppError, AppErrorKind, AppResult, DownloadProgress, DownloadState};

/// Least time between two progress events of one download.
const EMIT_EVERY: Duration = Duration::from_millis(250);

struct Active {
    control: PullControl,
    progress: DownloadProgress,
    repo: String,
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
        total_bytes: 0,
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
    ) -> AppResult<DownloadProgress> {
        let model = ModelRef::new(&repo, None)
            .map_err(|e| AppError::invalid(format!("bad repository {repo}: {e}")))?;
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
            map.insert(
                variant_id.to_string(),
                Active {
                    control: control.clone(),
                    progress: progress.clone(),
                    repo: repo.clone(),
                },
            );
        }
        let this = self.clone();
        let id = variant_id.to_string();
        tauri::async_runtime::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut config = HubConfig::from_env().with_token(target.token);
            if let Some(e) = target.endpoint {
                config = config.with_endpoint(e);
            }
            if let Some(d) = target.cache_dir {
                config = config.with_cache_dir(d);
            }
            let options = PullOptions {
                assume_yes: true,
                fit: None,
                control: control.clone(),
                events: Some(tx),
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
                p.total_bytes = *total_bytes;
                p.downloaded_bytes = *cached_bytes;
            }
            PullEvent::Progress { overall, .. } => {
                if p.state != DownloadState::Paused {
                    p.state = DownloadState::Downloading;
                }
                p.downloaded_bytes = overall.done;
                p.total_bytes = overall.total;
                p.bytes_per_second = overall.bytes_per_sec;
                p.eta_seconds = overall.eta_secs;
            }
            PullEvent::Paused => {
                p.state = DownloadState::Paused;
                p.bytes_per_second = 0.0;
                p.eta_seconds = None;
            }
            PullEvent::Resumed => p.state = DownloadState::Downloading,
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
                p.downloaded_bytes = p.total_bytes.max(p.downloaded_bytes);
            }
            Err(HubError::Cancelled) => p.state = DownloadState::Cancelled,
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

    fn control(&self, id: &str) -> AppResult<(PullControl, String, DownloadState)> {
        self.lock()
            .get(id)
            .map(|a| (a.control.clone(), a.repo.clone(), a.progress.state))
            .ok_or_else(|| AppError::not_found(format!("no download of {id}")))
    }

    /// Pauses a running download; partial files stay.
    pub fn pause(&self, id: &str) -> AppResult<()> {
        self.control(id)?.0.pause();
        Ok(())
    }

    /// Resumes a paused download, or restarts a failed one from its partial files.
    pub fn resume<R: Runtime>(
        &self,
        app: AppHandle<R>,
        id: &str,
        target: HubTarget,
    ) -> AppResult<()> {
        let (control, repo, state) = self.control(id)?;
        match state {
            DownloadState::Failed | DownloadState::Cancelled => {
                self.start(app, id, repo, target).map(|_| ())
            }
            _ => {
                control.resume();
                Ok(())
            }
        }
    }

    /// Cancels a download and deletes its partial files from the hub cache.
    pub fn cancel(&self, id: &str, cache_dir: &std::path::Path) -> AppResult<()> {
        let (control, repo, _) = self.control(id)?;
        control.cancel();
        let blobs = cache_dir
            .join(minibar_hub::repo_folder_name(&repo))
            .join("blobs");
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .ends_with(minibar_hub::INCOMPLETE_SUFFIX)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
