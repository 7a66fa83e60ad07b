//! Progress of a pull as a stream of events: the CLI draws bars from them, the app forwards
//! them to its window, `--json` prints them one per line.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

/// One file of a plan as announced before downloading.
#[derive(Clone, Debug, Serialize)]
pub struct FileAnnounce {
    /// Path in the repository.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Bytes already in the cache (complete or partial).
    pub cached_bytes: u64,
}

/// Bytes done out of a total, with the recent speed and the time left at that speed.
#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    /// Bytes on disk so far.
    pub done: u64,
    /// Bytes when finished.
    pub total: u64,
    /// Average over the last few seconds.
    pub bytes_per_sec: f64,
    /// Seconds left at that speed; `None` while the speed is unknown.
    pub eta_secs: Option<f64>,
}

/// Something that happened during a pull.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PullEvent {
    /// The revision was resolved and the files chosen.
    Planned {
        /// Repository.
        repo_id: String,
        /// Revision asked for.
        revision: String,
        /// Commit it resolved to.
        commit: String,
        /// Files to have.
        files: Vec<FileAnnounce>,
        /// Sum of their sizes.
        total_bytes: u64,
        /// Bytes already cached.
        cached_bytes: u64,
    },
    /// A file transfer (re)started; `resume_from` > 0 means an HTTP Range resume.
    FileStarted {
        /// Path in the repository.
        path: String,
        /// Size in bytes.
        size: u64,
        /// Offset the transfer starts at.
        resume_from: u64,
        /// The partial file it writes (`blobs/<etag>.incomplete`), so a caller that discards
        /// this download deletes its own partial files and no other's.
        partial: PathBuf,
    },
    /// Bytes arrived.
    Progress {
        /// Path in the repository.
        path: String,
        /// This file.
        file: Rate,
        /// The whole pull.
        overall: Rate,
    },
    /// An attempt failed and will be retried after a delay.
    Retrying {
        /// Path in the repository.
        path: String,
        /// Failed attempts in a row so far.
        attempt: u32,
        /// Wait before the next attempt.
        delay_ms: u64,
        /// What failed.
        reason: String,
    },
    /// A complete download did not match its hash or size; it was deleted and is fetched again.
    VerifyFailed {
        /// Path in the repository.
        path: String,
        /// The mismatch.
        detail: String,
    },
    /// A file was verified and linked into the snapshot.
    FileDone {
        /// Path in the repository.
        path: String,
        /// Size in bytes.
        size: u64,
    },
    /// Transfers stopped at the caller's request; partial files are kept.
    Paused,
    /// Transfers continue.
    Resumed,
    /// Every file is verified and the snapshot is complete.
    Done {
        /// Commit of the snapshot.
        commit: String,
        /// Snapshot folder.
        snapshot: PathBuf,
        /// Bytes transferred by this pull (not counting the cache).
        downloaded_bytes: u64,
    },
}

/// Speed over a sliding window of recent samples.
#[derive(Debug)]
struct RateMeter {
    samples: VecDeque<(Instant, u64)>,
}

const WINDOW: Duration = Duration::from_secs(5);

impl RateMeter {
    fn new() -> Self {
        RateMeter {
            samples: VecDeque::new(),
        }
    }

    fn record(&mut self, now: Instant, done: u64) -> f64 {
        self.samples.push_back((now, done));
        while self.samples.len() > 2 && now.duration_since(self.samples[0].0) > WINDOW {
            self.samples.pop_front();
        }
        let (t0, d0) = self.samples[0];
        let secs = now.duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        done.saturating_sub(d0) as f64 / secs
    }
}

fn rate(done: u64, total: u64, bytes_per_sec: f64) -> Rate {
    let eta_secs = (bytes_per_sec > 0.0).then(|| total.saturating_sub(done) as f64 / bytes_per_sec);
    Rate {
        done,
        total,
        bytes_per_sec,
        eta_secs,
    }
}

#[derive(Debug)]
struct FileState {
    done: u64,
    total: u64,
    meter: RateMeter,
    last_emit: Option<Instant>,
}

#[derive(Debug)]
struct State {
    files: HashMap<String, FileState>,
    overall_done: u64,
    overall_total: u64,
    overall_meter: RateMeter,
    downloaded: u64,
}

/// Shared progress book-keeping of one pull, and the channel its events go to.
#[derive(Clone, Debug)]
pub(crate) struct Tracker {
    state: Arc<Mutex<State>>,
    events: Option<UnboundedSender<PullEvent>>,
}

/// Progress events of one file are sent at most this often.
const EMIT_EVERY: Duration = Duration::from_millis(100);

impl Tracker {
    pub(crate) fn new(events: Option<UnboundedSender<PullEvent>>) -> Self {
        Tracker {
            state: Arc::new(Mutex::new(State {
                files: HashMap::new(),
                overall_done: 0,
                overall_total: 0,
                overall_meter: RateMeter::new(),
                downloaded: 0,
            })),
            events,
        }
    }

    pub(crate) fn emit(&self, event: PullEvent) {
        if let Some(tx) = &self.events {
            // A caller that dropped its receiver just doesn't watch; the pull goes on.
            let _ = tx.send(event);
        }
    }

    /// Registers the files of the plan with what the cache already holds.
    pub(crate) fn start(&self, files: &[FileAnnounce]) {
        let mut s = self.lock();
        for f in files {
            s.files.insert(
                f.path.clone(),
                FileState {
                    done: f.cached_bytes,
                    total: f.size,
                    meter: RateMeter::new(),
                    last_emit: None,
                },
            );
            s.overall_done += f.cached_bytes;
            s.overall_total += f.size;
        }
    }

    /// Sets a file's bytes on disk (after a resume, a truncation or new bytes).
    pub(crate) fn set_done(&self, path: &str, done: u64) {
        let now = Instant::now();
        let event = {
            let mut s = self.lock();
            let Some(f) = s.files.get_mut(path) else {
                return;
            };
            let old = f.done;
            f.done = done;
            let total = f.total;
            let file_bps = f.meter.record(now, done);
            let due = f
                .last_emit
                .is_none_or(|t| now.duration_since(t) >= EMIT_EVERY)
                || done == total;
            if due {
                f.last_emit = Some(now);
            }
            if done > old {
                s.downloaded += done - old;
            }
            s.overall_done = (s.overall_done + done).saturating_sub(old);
            let overall_done = s.overall_done;
            let overall_bps = s.overall_meter.record(now, overall_done);
            due.then(|| PullEvent::Progress {
                path: path.to_string(),
                file: rate(done, total, file_bps),
                overall: rate(overall_done, s.overall_total, overall_bps),
            })
        };
        if let Some(e) = event {
            self.emit(e);
        }
    }

    /// Bytes transferred by this pull so far.
    pub(crate) fn downloaded(&self) -> u64 {
        self.lock().downloaded
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_overall_and_emits() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let t = Tracker::new(Some(tx));
        t.start(&[
            FileAnnounce {
                path: "a".into(),
                size: 100,
                cached_bytes: 40,
            },
            FileAnnounce {
                path: "b".into(),
                size: 50,
                cached_bytes: 0,
            },
        ]);
        t.set_done("a", 100);
        t.set_done("b", 50);
        assert_eq!(t.downloaded(), 110);
        let mut last = None;
        while let Ok(e) = rx.try_recv() {
            last = Some(e);
        }
        match last {
            Some(PullEvent::Progress { overall, .. }) => {
                assert_eq!(overall.done, 150);
                assert_eq!(overall.total, 150);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn truncation_lowers_overall() {
        let t = Tracker::new(None);
        t.start(&[FileAnnounce {
            path: "a".into(),
            size: 100,
            cached_bytes: 60,
        }]);
        t.set_done("a", 0);
        t.set_done("a", 100);
        assert_eq!(t.lock().overall_done, 100);
        assert_eq!(t.downloaded(), 100);
    }
}
