//! One file, resumable: bytes go to `blobs/<etag>.incomplete`, a dropped connection, a stall
//! or a 5xx is retried with exponential backoff from the bytes already on disk (HTTP Range),
//! and the file becomes `blobs/<etag>` only after its hash or size checks out.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Serialize;

use crate::cache_layout::RepoCache;
use crate::config::HubConfig;
use crate::control::PullControl;
use crate::error::{is_disk_full, HubError, Result};
use crate::plan::PlannedFile;
use crate::progress::{PullEvent, Tracker};
use crate::remote::{self, ErrorContext, Subject};
use crate::verify::{Check, RunningHash};

/// Bytes gathered in memory before one write to disk.
const WRITE_CHUNK: usize = 1 << 20;

/// Hard cap on attempts for one file, even when each attempt makes progress.
const MAX_TOTAL_ATTEMPTS: u32 = 1000;

/// How one file's download went.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    /// Path in the repository.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Bytes transferred for it by this pull.
    pub downloaded_bytes: u64,
    /// Offset the first transfer of this pull started at (> 0: resumed a partial file).
    pub resumed_from: Option<u64>,
    /// HTTP requests made for its content.
    pub attempts: u32,
    /// Complete downloads that failed verification and were fetched again.
    pub verify_failures: u32,
    /// Already verified in the cache; nothing transferred.
    pub reused: bool,
}

/// What every file transfer of a pull shares.
pub(crate) struct FetchCtx {
    pub http: reqwest::Client,
    pub token: Option<String>,
    pub config: Arc<HubConfig>,
    pub tracker: Tracker,
    pub control: PullControl,
    pub cache: RepoCache,
    pub repo_id: String,
    pub revision: String,
    pub commit: String,
    pub endpoint: String,
    /// Link finished files into `snapshots/<commit>/` (planning fetches config files without).
    pub link: bool,
}

/// The partial file and the hash of the bytes in it, kept in step.
struct Sink {
    file: File,
    hash: RunningHash,
    len: u64,
}

/// Why one HTTP attempt ended early.
enum Interrupt {
    /// Worth retrying after a delay (server hint in the second field).
    Transient(String, Option<Duration>),
    /// The server sent bytes that cannot be right; start the file over.
    BadBytes(String),
    /// Paused by the caller.
    Paused,
    /// Cancelled by the caller, or a final error.
    Stop(HubError),
}

/// Downloads, verifies and links one file into the snapshot.
pub(crate) async fn fetch_file(ctx: &FetchCtx, file: &PlannedFile) -> Result<FileReport> {
    let mut report = FileReport {
        path: file.path.clone(),
        size: file.size,
        downloaded_bytes: 0,
        resumed_from: None,
        attempts: 0,
        verify_failures: 0,
        reused: false,
    };
    let blob = ctx.cache.blob(&file.etag);
    let complete = || {
        std::fs::metadata(&blob)
            .map(|m| m.len() == file.size)
            .unwrap_or(false)
    };
    // Another pull writing the same blob (this process or another) is waited for; once it
    // is done the blob is shared rather than fetched twice.
    let lock = if complete() {
        None
    } else {
        Some(lock_blob(ctx, file).await?)
    };
    if complete() {
        drop(lock);
        report.reused = true;
        ctx.tracker.set_done(&file.path, file.size);
        if ctx.link {
            ctx.cache.link(&ctx.commit, &file.path, &file.etag)?;
        }
        ctx.tracker.emit(PullEvent::FileDone {
            path: file.path.clone(),
            size: file.size,
        });
        return Ok(report);
    }
    let partial = ctx.cache.incomplete(&file.etag);
    if let Some(dir) = partial.parent() {
        std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
    }
    loop {
        match transfer(ctx, file, &partial, &mut report).await? {
            Ok(()) => break,
            Err(detail) => {
                // Never keep bytes that failed the check: delete and fetch again, a bounded
                // number of times.
                let _ = std::fs::remove_file(&partial);
                ctx.tracker.set_done(&file.path, 0);
                report.verify_failures += 1;
                ctx.tracker.emit(PullEvent::VerifyFailed {
                    path: file.path.clone(),
                    detail: detail.clone(),
                });
                if report.verify_failures >= ctx.config.max_verify_attempts.max(1) {
                    return Err(HubError::Corrupt {
                        repo_id: ctx.repo_id.clone(),
                        path: file.path.clone(),
                        attempts: report.verify_failures,
                        detail,
                    });
                }
            }
        }
    }
    // Written before the blob appears, so no listing sees a size-only blob as checked.
    let marker = ctx.cache.unverified(&file.etag);
    if file.check == Check::Size {
        std::fs::write(&marker, b"").map_err(|e| HubError::io(&marker, e))?;
    } else if marker.exists() {
        std::fs::remove_file(&marker).map_err(|e| HubError::io(&marker, e))?;
    }
    std::fs::rename(&partial, &blob).map_err(|e| HubError::io(&blob, e))?;
    if ctx.link {
        ctx.cache.link(&ctx.commit, &file.path, &file.etag)?;
    }
    ctx.tracker.emit(PullEvent::FileDone {
        path: file.path.clone(),
        size: file.size,
    });
    Ok(report)
}

/// Brings the partial file to full size; the inner result is the verification outcome.
async fn transfer(
    ctx: &FetchCtx,
    file: &PlannedFile,
    partial: &std::path::Path,
    report: &mut FileReport,
) -> Result<std::result::Result<(), String>> {
    let mut sink: Option<Sink> = None;
    let mut failures_in_a_row = 0u32;
    let mut total_attempts = 0u32;
    loop {
        if ctx.control.is_cancelled() {
            return Err(HubError::Cancelled);
        }
        if ctx.control.is_paused() && !ctx.control.wait_while_paused().await {
            return Err(HubError::Cancelled);
        }
        let s = match sink.take() {
            Some(s) => s,
            None => open_sink(partial.to_path_buf(), file.check.clone(), file.size).await?,
        };
        ctx.tracker.set_done(&file.path, s.len);
        if s.len == file.size {
            return finish(s, file, partial).await;
        }
        total_attempts += 1;
        report.attempts += 1;
        report.resumed_from.get_or_insert(s.len);
        let start = s.len;
        ctx.tracker.emit(PullEvent::FileStarted {
            path: file.path.clone(),
            size: file.size,
            resume_from: start,
            partial: partial.to_path_buf(),
        });
        let (back, outcome) = attempt(ctx, file, s).await;
        let Some(s) = back else {
            return Err(match outcome {
                Err(Interrupt::Stop(e)) => e,
                _ => HubError::io(
                    partial,
                    std::io::Error::other("lost the partial file's handle"),
                ),
            });
        };
        report.downloaded_bytes += s.len.saturating_sub(start);
        let (reason, server_delay) = match outcome {
            Ok(()) if s.len == file.size => return finish(s, file, partial).await,
            Ok(()) => (
                format!("connection closed at byte {} of {}", s.len, file.size),
                None,
            ),
            Err(Interrupt::Transient(reason, delay)) => (reason, delay),
            Err(Interrupt::BadBytes(detail)) => return Ok(Err(detail)),
            Err(Interrupt::Paused) => {
                sink = Some(s);
                continue;
            }
            Err(Interrupt::Stop(e)) => return Err(e),
        };
        if s.len > start {
            failures_in_a_row = 0;
        }
        failures_in_a_row += 1;
        if failures_in_a_row >= ctx.config.max_attempts.max(1)
            || total_attempts >= MAX_TOTAL_ATTEMPTS
        {
            return Err(HubError::Transfer {
                path: file.path.clone(),
                attempts: total_attempts,
                last_error: reason,
            });
        }
        let delay = server_delay
            .unwrap_or_else(|| jittered_backoff(&ctx.config, failures_in_a_row))
            .min(ctx.config.max_retry_delay);
        ctx.tracker.emit(PullEvent::Retrying {
            path: file.path.clone(),
            attempt: failures_in_a_row,
            delay_ms: delay.as_millis() as u64,
            reason,
        });
        tokio::select! {
            _ = ctx.control.cancelled() => return Err(HubError::Cancelled),
            _ = tokio::time::sleep(delay) => {}
        }
        sink = Some(s);
    }
}

/// Exponential backoff: base, 2×base, 4×base, ... capped by the config.
fn backoff(config: &HubConfig, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    config
        .base_retry_delay
        .saturating_mul(factor)
        .min(config.max_retry_delay)
}

/// [`backoff`] with jitter: a random delay between half and all of it, so many clients
/// failing together do not retry in lockstep.
pub(crate) fn jittered_backoff(config: &HubConfig, failures: u32) -> Duration {
    let full = backoff(config, failures);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // A cheap mix of the clock's low bits; fairness is all that matters here.
    let r = (nanos as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let frac = r as f64 / (1u64 << 24) as f64;
    full / 2 + full.mul_f64(frac / 2.0)
}

/// One GET from the current length to the end; returns the sink in every case.
async fn attempt(
    ctx: &FetchCtx,
    file: &PlannedFile,
    mut s: Sink,
) -> (Option<Sink>, std::result::Result<(), Interrupt>) {
    let url = match remote::resolve_url(&ctx.endpoint, &ctx.repo_id, &ctx.commit, &file.path) {
        Ok(u) => u,
        Err(e) => return (Some(s), Err(Interrupt::Stop(e))),
    };
    let mut req = ctx.http.get(url);
    if let Some(t) = &ctx.token {
        req = req.bearer_auth(t);
    }
    if s.len > 0 {
        req = req.header(RANGE, format!("bytes={}-", s.len));
    }
    let stall = ctx.config.stall_timeout;
    let mut pause = ctx.control.pause_watch();
    if *pause.borrow_and_update() {
        return (Some(s), Err(Interrupt::Paused));
    }
    let response = tokio::select! {
        biased;
        _ = ctx.control.cancelled() => return (Some(s), Err(Interrupt::Stop(HubError::Cancelled))),
        _ = pause.changed() => return (Some(s), Err(Interrupt::Paused)),
        r = tokio::time::timeout(stall, req.send()) => match r {
            Err(_) => return (Some(s), Err(Interrupt::Transient(format!("no answer within {}s", stall.as_secs_f32()), None))),
            Ok(Err(e)) => return (Some(s), Err(Interrupt::Transient(error_chain(&e), None))),
            Ok(Ok(r)) => r,
        }
    };
    let status = response.status();
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let start = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(content_range_start);
            if start != Some(s.len) {
                // A resume at another offset would splice the file: start it over.
                return match reset(s, file).await {
                    Ok(s) => (
                        Some(s),
                        Err(Interrupt::Transient(
                            "server resumed at the wrong offset".into(),
                            None,
                        )),
                    ),
                    Err(e) => (None, Err(Interrupt::Stop(e))),
                };
            }
        }
        StatusCode::OK => {
            if s.len > 0 {
                // The server ignored the Range header and sends the whole file.
                s = match reset(s, file).await {
                    Ok(s) => s,
                    Err(e) => return (None, Err(Interrupt::Stop(e))),
                };
                ctx.tracker.set_done(&file.path, 0);
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return match reset(s, file).await {
                Ok(s) => (
                    Some(s),
                    Err(Interrupt::Transient(
                        "range not satisfiable; starting the file over".into(),
                        None,
                    )),
                ),
                Err(e) => (None, Err(Interrupt::Stop(e))),
            };
        }
        s_code
            if s_code == StatusCode::TOO_MANY_REQUESTS
                || s_code == StatusCode::REQUEST_TIMEOUT
                || s_code.is_server_error() =>
        {
            let delay = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return (
                Some(s),
                Err(Interrupt::Transient(
                    format!("server answered {status}"),
                    delay,
                )),
            );
        }
        _ => {
            let ectx = ErrorContext {
                endpoint: &ctx.endpoint,
                repo_id: &ctx.repo_id,
                token_sent: ctx.token.is_some(),
                subject: Subject::File {
                    revision: &ctx.revision,
                    path: &file.path,
                },
            };
            let e = remote::response_error(&ectx, response).await;
            return (Some(s), Err(Interrupt::Stop(e)));
        }
    }

    let mut stream = response.bytes_stream();
    let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
    let partial_path = ctx.cache.incomplete(&file.etag);
    loop {
        let next = tokio::select! {
            biased;
            _ = ctx.control.cancelled() => Err(Interrupt::Stop(HubError::Cancelled)),
            _ = pause.changed() => Err(Interrupt::Paused),
            n = tokio::time::timeout(stall, stream.next()) => match n {
                Err(_) => Err(Interrupt::Transient(format!("stalled: no data for {}s", stall.as_secs_f32()), None)),
                Ok(None) => Ok(None),
                Ok(Some(Err(e))) => Err(Interrupt::Transient(error_chain(&e), None)),
                Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            }
        };
        let end = match next {
            Ok(Some(chunk)) => {
                if s.len + (buf.len() + chunk.len()) as u64 > file.size {
                    let detail = format!("server sent more than the {} bytes expected", file.size);
                    return (Some(s), Err(Interrupt::BadBytes(detail)));
                }
                buf.extend_from_slice(&chunk);
                if buf.len() >= WRITE_CHUNK {
                    match write(s, buf.split().freeze(), &partial_path).await {
                        (Some(back), Ok(())) => s = back,
                        (back, Err(e)) => return (back, Err(Interrupt::Stop(e))),
                        (None, Ok(())) => unreachable!("a successful write returns its sink"),
                    }
                }
                ctx.tracker.set_done(&file.path, s.len + buf.len() as u64);
                continue;
            }
            Ok(None) => Ok(()),
            Err(i) => Err(i),
        };
        // Keep every byte that arrived before the interruption.
        if !buf.is_empty() {
            match write(s, buf.split().freeze(), &partial_path).await {
                (Some(back), Ok(())) => s = back,
                (back, Err(e)) => return (back, Err(Interrupt::Stop(e))),
                (None, Ok(())) => unreachable!("a successful write returns its sink"),
            }
            ctx.tracker.set_done(&file.path, s.len);
        }
        return (Some(s), end);
    }
}

/// Appends bytes and feeds the hash, off the async threads; on a full disk the file is cut back
/// to the bytes already hashed so the partial file stays resumable.
async fn write(s: Sink, bytes: bytes::Bytes, path: &std::path::Path) -> (Option<Sink>, Result<()>) {
    let path = path.to_path_buf();
    let path_for_err = path.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let mut s = s;
        match s.file.write_all(&bytes) {
            Ok(()) => {
                s.hash.update(&bytes);
                s.len += bytes.len() as u64;
                (s, Ok(()))
            }
            Err(e) => {
                let _ = s.file.set_len(s.len);
                let _ = s.file.seek(SeekFrom::Start(s.len));
                let err = if is_disk_full(&e) {
                    HubError::DiskFull {
                        path: path.clone(),
                        kept_bytes: s.len,
                    }
                } else {
                    HubError::io(&path, e)
                };
                (s, Err(err))
            }
        }
    })
    .await;
    match joined {
        Ok((s, r)) => (Some(s), r),
        Err(e) => (
            None,
            Err(HubError::io(
                path_for_err,
                std::io::Error::other(e.to_string()),
            )),
        ),
    }
}

/// Opens (or creates) the partial file and hashes the bytes already in it.
async fn open_sink(path: PathBuf, check: Check, size: u64) -> Result<Sink> {
    tokio::task::spawn_blocking(move || {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| HubError::io(&path, e))?;
        let mut len = file.metadata().map_err(|e| HubError::io(&path, e))?.len();
        if len > size {
            // Longer than the file can be: not a prefix of it.
            file.set_len(0).map_err(|e| HubError::io(&path, e))?;
            len = 0;
        }
        let mut hash = RunningHash::new(&check, size);
        if len > 0 && check != Check::Size {
            file.seek(SeekFrom::Start(0))
                .map_err(|e| HubError::io(&path, e))?;
            let mut reader = (&mut file).take(len);
            let mut buf = vec![0u8; WRITE_CHUNK];
            loop {
                let n = reader.read(&mut buf).map_err(|e| HubError::io(&path, e))?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
            }
        }
        file.seek(SeekFrom::Start(len))
            .map_err(|e| HubError::io(&path, e))?;
        Ok(Sink { file, hash, len })
    })
    .await
    .map_err(|e| HubError::io(PathBuf::new(), std::io::Error::other(e.to_string())))?
}

/// Empties the partial file and restarts the hash.
async fn reset(s: Sink, file: &PlannedFile) -> Result<Sink> {
    let check = file.check.clone();
    let size = file.size;
    tokio::task::spawn_blocking(move || {
        let mut s = s;
        s.file
            .set_len(0)
            .map_err(|e| HubError::io(PathBuf::new(), e))?;
        s.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| HubError::io(PathBuf::new(), e))?;
        s.len = 0;
        s.hash = RunningHash::new(&check, size);
        Ok(s)
    })
    .await
    .map_err(|e| HubError::io(PathBuf::new(), std::io::Error::other(e.to_string())))?
}

/// Flushes to stable storage and checks the hash; `Err(detail)` on a mismatch.
async fn finish(
    s: Sink,
    file: &PlannedFile,
    path: &std::path::Path,
) -> Result<std::result::Result<(), String>> {
    let path = path.to_path_buf();
    let check = file.check.clone();
    let size = file.size;
    tokio::task::spawn_blocking(move || {
        if let Err(e) = s.file.sync_all() {
            if is_disk_full(&e) {
                return Err(HubError::DiskFull {
                    path,
                    kept_bytes: s.len,
                });
            }
            return Err(HubError::io(path, e));
        }
        Ok(s.hash.finish(&check, s.len, size))
    })
    .await
    .map_err(|e| HubError::io(PathBuf::new(), std::io::Error::other(e.to_string())))?
}

/// Start offset of a `Content-Range: bytes start-end/total` header.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, _) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

/// The error and its causes on one line (reqwest's top-level message hides the reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Takes the per-blob lock so two pulls never write the same partial file, waiting while
/// another pull holds it (and stopping if this one is cancelled meanwhile).
async fn lock_blob(ctx: &FetchCtx, file: &PlannedFile) -> Result<File> {
    loop {
        match try_lock_blob(ctx, file) {
            Err(HubError::Busy { .. }) => {
                tokio::select! {
                    _ = ctx.control.cancelled() => return Err(HubError::Cancelled),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            other => return other,
        }
    }
}

/// The per-blob lock if nobody holds it.
fn try_lock_blob(ctx: &FetchCtx, file: &PlannedFile) -> Result<File> {
    let path = ctx.cache.lock(&file.etag);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, e))?;
    }
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| HubError::io(&path, e))?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&f) {
        Ok(true) => Ok(f),
        Ok(false) => Err(HubError::Busy {
            path: file.path.clone(),
            lock: path,
        }),
        Err(e) => Err(HubError::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("bytes */200"), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = HubConfig {
            base_retry_delay: Duration::from_millis(100),
            max_retry_delay: Duration::from_millis(500),
            ..HubConfig::default()
        };
        assert_eq!(backoff(&c, 1), Duration::from_millis(100));
        assert_eq!(backoff(&c, 2), Duration::from_millis(200));
        assert_eq!(backoff(&c, 3), Duration::from_millis(400));
        assert_eq!(backoff(&c, 9), Duration::from_millis(500));
        for n in 1..5 {
            let d = jittered_backoff(&c, n);
            assert!(d >= backoff(&c, n) / 2 && d <= backoff(&c, n), "{d:?}");
        }
    }
}
