//! A whole pull: plan, check, download every file in parallel, link the snapshot, record the ref.

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::cache_layout::RepoCache;
use crate::control::PullControl;
use crate::error::{HubError, Result};
use crate::fetch::{self, FetchCtx, FileReport};
use crate::hub::Hub;
use crate::model_ref::ModelRef;
use crate::plan::DownloadPlan;
use crate::preflight::{FitCheck, Preflight};
use crate::progress::{FileAnnounce, PullEvent, Tracker};

/// How a pull behaves beyond the hub configuration.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Download even when the checks found concerns (`--yes`).
    pub assume_yes: bool,
    /// The memory-fit hook (the CLI passes one over `minibar-fit`).
    pub fit: Option<FitCheck>,
    /// Cancel / pause / resume handle.
    pub control: PullControl,
    /// Where progress events go.
    pub events: Option<UnboundedSender<PullEvent>>,
    /// Fetch only the shards these decoder blocks need (`--layers`: a cluster node's share);
    /// `None`: the whole model.
    pub layers: Option<std::ops::Range<usize>>,
}

/// What a finished pull did.
#[derive(Clone, Debug, Serialize)]
pub struct PullOutcome {
    /// Repository.
    pub repo_id: String,
    /// Revision asked for.
    pub revision: String,
    /// Commit it resolved to.
    pub commit: String,
    /// The snapshot folder: load the model from here.
    pub snapshot: PathBuf,
    /// Per-file reports (empty when served from the cache offline).
    pub files: Vec<FileReport>,
    /// Bytes transferred by this pull.
    pub downloaded_bytes: u64,
    /// Served from the cache because the hub could not be reached.
    pub offline: bool,
    /// The checks that ran before downloading, if any did.
    pub preflight: Option<Preflight>,
}

impl Hub {
    /// Plans, checks (asking for confirmation through [`HubError::NeedsConfirmation`] unless
    /// `assume_yes`), and downloads a model into the cache.
    pub async fn pull(&self, model: &ModelRef, options: PullOptions) -> Result<PullOutcome> {
        let mut plan = self.plan(model).await?;
        if let (Some(layers), false) = (options.layers.clone(), plan.offline) {
            plan.restrict_to_layers(layers)?;
        }
        if plan.offline {
            return Ok(PullOutcome {
                repo_id: plan.repo_id,
                revision: plan.revision,
                commit: plan.commit,
                snapshot: plan.snapshot,
                files: Vec::new(),
                downloaded_bytes: 0,
                offline: true,
                preflight: None,
            });
        }
        let preflight = self.preflight(&plan, options.fit.as_ref());
        if !preflight.concerns.is_empty() && !options.assume_yes && !plan.is_complete() {
            return Err(HubError::NeedsConfirmation {
                concerns: preflight.concerns,
            });
        }
        let mut outcome = self.download(&plan, options).await?;
        outcome.preflight = Some(preflight);
        Ok(outcome)
    }

    /// Downloads the files of a plan (no checks), several at a time; the first real error stops
    /// the others, and partial files stay for the next pull.
    pub async fn download(&self, plan: &DownloadPlan, options: PullOptions) -> Result<PullOutcome> {
        let tracker = Tracker::new(options.events.clone());
        let announce: Vec<FileAnnounce> = plan
            .files
            .iter()
            .map(|f| FileAnnounce {
                path: f.path.clone(),
                size: f.size,
                cached_bytes: f.cached_bytes,
            })
            .collect();
        tracker.start(&announce);
        tracker.emit(PullEvent::Planned {
            repo_id: plan.repo_id.clone(),
            revision: plan.revision.clone(),
            commit: plan.commit.clone(),
            files: announce,
            total_bytes: plan.total_bytes(),
            cached_bytes: plan.cached_bytes(),
        });
        let cache = RepoCache::new(&self.cache_dir, &plan.repo_id);
        // Siblings stop on the first failure; the caller's own cancel still reaches them.
        let control = options.control.child();
        let ctx = Arc::new(FetchCtx {
            http: self.http.clone(),
            token: self.token.clone(),
            config: self.config.clone(),
            tracker: tracker.clone(),
            control: control.clone(),
            cache: cache.clone(),
            repo_id: plan.repo_id.clone(),
            revision: plan.revision.clone(),
            commit: plan.commit.clone(),
            endpoint: self.endpoint.clone(),
            link: true,
        });
        let pause_events = watch_pauses(options.control.clone(), tracker.clone());
        // Owned futures (no closure over borrowed files) keep the pull spawnable on any runtime.
        let transfers = plan.files.iter().cloned().map(|file| {
            let ctx = ctx.clone();
            async move { fetch::fetch_file(&ctx, &file).await }
        });
        let mut results =
            futures::stream::iter(transfers).buffer_unordered(self.config.parallel_files.max(1));
        let mut reports = Vec::new();
        let mut first_error: Option<HubError> = None;
        while let Some(r) = results.next().await {
            match r {
                Ok(report) => reports.push(report),
                Err(e) => {
                    control.cancel();
                    // A sibling's "cancelled" must not hide the error that caused it.
                    let replace = match &first_error {
                        None => true,
                        Some(HubError::Cancelled) => !matches!(e, HubError::Cancelled),
                        Some(_) => false,
                    };
                    if replace {
                        first_error = Some(e);
                    }
                }
            }
        }
        drop(results);
        pause_events.abort();
        if let Some(e) = first_error {
            return Err(e);
        }
        if !plan.revision.eq_ignore_ascii_case(&plan.commit) {
            cache.write_ref(&plan.revision, &plan.commit)?;
        }
        plan.mark_layers_held()?;
        reports.sort_by(|a, b| a.path.cmp(&b.path));
        let downloaded = tracker.downloaded();
        tracker.emit(PullEvent::Done {
            commit: plan.commit.clone(),
            snapshot: plan.snapshot.clone(),
            downloaded_bytes: downloaded,
        });
        Ok(PullOutcome {
            repo_id: plan.repo_id.clone(),
            revision: plan.revision.clone(),
            commit: plan.commit.clone(),
            snapshot: plan.snapshot.clone(),
            files: reports,
            downloaded_bytes: downloaded,
            offline: false,
            preflight: None,
        })
    }
}

/// Turns pause / resume of the caller's control into events.
fn watch_pauses(control: PullControl, tracker: Tracker) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            control.paused().await;
            tracker.emit(PullEvent::Paused);
            if !control.wait_while_paused().await {
                return;
            }
            tracker.emit(PullEvent::Resumed);
        }
    })
}
