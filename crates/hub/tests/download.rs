//! End-to-end pulls against the loopback hub, clean and with injected faults.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minibar_hub::{
    Concern, FitVerdict, HubError, ModelRef, PullControl, PullEvent, PullOptions, PullOutcome,
    RepoCache,
};
use support::hubserver::{expected_files, model_repo, Access, Fault, ServedRepo, TestHub};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const REPO: &str = "test-org/tiny-model";
const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";

fn repo() -> ServedRepo {
    model_repo(REPO, &[3_000_000, 2_000_000])
}

fn model(id: &str) -> ModelRef {
    id.parse().unwrap()
}

async fn pull_with(
    hub: &minibar_hub::Hub,
    id: &str,
    options: PullOptions,
) -> (Result<PullOutcome, HubError>, Vec<PullEvent>) {
    let (tx, mut rx) = unbounded_channel();
    let r = hub
        .pull(
            &model(id),
            PullOptions {
                events: Some(tx),
                ..options
            },
        )
        .await;
    (r, drain(&mut rx))
}

fn drain(rx: &mut UnboundedReceiver<PullEvent>) -> Vec<PullEvent> {
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        v.push(e);
    }
    v
}

fn yes() -> PullOptions {
    PullOptions {
        assume_yes: true,
        ..Default::default()
    }
}

/// Every snapshot file equals the served bytes, and every blob in the cache is a verified copy
/// of some served file: nothing corrupt is ever marked complete.
fn assert_cache_sound(cache: &Path, served: &ServedRepo, commit: &str, expect_complete: bool) {
    let rc = RepoCache::new(cache, &served.repo_id);
    let blobs = rc.root().join("blobs");
    if let Ok(rd) = std::fs::read_dir(&blobs) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".incomplete") {
                continue;
            }
            let f = served
                .files
                .iter()
                .find(|f| f.etag() == name)
                .unwrap_or_else(|| panic!("blob {name} names no served file"));
            let bytes = std::fs::read(e.path()).unwrap();
            assert!(
                bytes == f.data,
                "blob {name} ({}) is not the served content",
                f.path
            );
        }
    }
    if expect_complete {
        for path in expected_files(served) {
            let p = rc.snapshot_file(commit, &path);
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(
                bytes == served.file(&path).data,
                "{path} differs from the served file"
            );
        }
        assert!(support::files_with_suffix(&blobs, ".incomplete").is_empty());
    }
}

fn retries(events: &[PullEvent], path: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Retrying {
                path: p, reason, ..
            } if p == path => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn verify_failures(events: &[PullEvent], path: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, PullEvent::VerifyFailed { path: p, .. } if p == path))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_pull_fills_the_shared_cache_with_only_the_needed_files() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let plan = hub.plan(&model(REPO)).await.unwrap();
    let mut planned: Vec<String> = plan.files.iter().map(|f| f.path.clone()).collect();
    planned.sort();
    assert_eq!(planned, expected_files(&served));
    assert_eq!(plan.commit, served.commit);
    assert_eq!(
        plan.total_bytes(),
        expected_files(&served)
            .iter()
            .map(|p| served.file(p).data.len() as u64)
            .sum::<u64>()
    );
    assert!(plan.skipped.contains(&"pytorch_model.bin".to_string()));
    assert!(plan.config.as_ref().unwrap()["model_type"] == "llama");

    let (outcome, events) = pull_with(&hub, REPO, yes()).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.commit, served.commit);
    // Planning already fetched config.json and the index (verified, into the cache).
    assert_eq!(outcome.downloaded_bytes, plan.remaining_bytes());
    assert!(plan
        .files
        .iter()
        .filter(|f| f.complete)
        .all(|f| f.path.ends_with(".json")));
    assert_cache_sound(dir.path(), &served, &served.commit, true);

    // The hub cache layout: symlinks into blobs named by ETag, and refs/main.
    let rc = RepoCache::new(dir.path(), REPO);
    let pointer = rc.snapshot_file(&served.commit, SHARD1);
    let target = std::fs::read_link(&pointer).unwrap();
    assert_eq!(
        target,
        PathBuf::from("../../blobs").join(served.file(SHARD1).sha256())
    );
    let cfg_target = std::fs::read_link(rc.snapshot_file(&served.commit, "config.json")).unwrap();
    assert_eq!(
        cfg_target,
        PathBuf::from("../../blobs").join(served.file("config.json").git_sha1())
    );
    assert_eq!(rc.read_ref("main").as_deref(), Some(served.commit.as_str()));

    // Skipped files never crossed the wire.
    for r in server.data_requests() {
        assert!(
            expected_files(&served).contains(&r.path),
            "fetched {}",
            r.path
        );
    }
    assert!(matches!(events.first(), Some(PullEvent::Planned { .. })));
    assert!(matches!(events.last(), Some(PullEvent::Done { .. })));
    let done = events
        .iter()
        .filter(|e| matches!(e, PullEvent::FileDone { .. }))
        .count();
    assert_eq!(done, expected_files(&served).len());
    let last_progress = events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Progress { overall, .. } => Some(overall.clone()),
            _ => None,
        })
        .next_back()
        .unwrap();
    assert_eq!(last_progress.done, last_progress.total);

    // A second pull transfers nothing.
    let before = server.data_requests().len();
    let (again, _) = pull_with(&hub, REPO, yes()).await;
    let again = again.unwrap();
    assert!(again.files.iter().all(|f| f.reused));
    assert_eq!(again.downloaded_bytes, 0);
    assert_eq!(server.data_requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_hub_reads_the_cache_we_write() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());
    hub.pull(&model(REPO), yes()).await.unwrap();

    let client = hf_hub::HFClient::builder()
        .endpoint(server.endpoint())
        .cache_dir(dir.path())
        .build()
        .unwrap();
    let info = client.scan_cache().send().await.unwrap();
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    assert_eq!(info.repos.len(), 1);
    let r = &info.repos[0];
    assert_eq!(r.repo_id, REPO);
    assert_eq!(r.revisions.len(), 1);
    assert_eq!(r.revisions[0].commit_hash, served.commit);
    assert_eq!(r.revisions[0].refs, vec!["main".to_string()]);
    assert_eq!(r.revisions[0].files.len(), expected_files(&served).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_resume_from_the_bytes_on_disk() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(
        SHARD1,
        [
            Fault::DropAfter(500_000),
            Fault::DropAfter(700_000),
            Fault::DropAfter(300_000),
        ],
    );
    server.push_faults(SHARD2, [Fault::DropAfter(1_000_000)]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let (outcome, events) = pull_with(&hub, REPO, yes()).await;
    outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);

    let reqs = server.data_requests_for(SHARD1);
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    assert_eq!(reqs[0].range_start, None);
    let starts: Vec<u64> = reqs[1..]
        .iter()
        .map(|r| r.range_start.expect("a Range resume"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    assert!(starts[0] > 0);
    // Resumed, not restarted: the last request carries exactly the bytes still missing.
    let size = served.file(SHARD1).data.len() as u64;
    let last = reqs.last().unwrap();
    assert_eq!(
        last.bytes_sent.load(std::sync::atomic::Ordering::SeqCst),
        size - last.range_start.unwrap()
    );
    assert_eq!(retries(&events, SHARD1).len(), 3);
    assert_eq!(server.data_requests_for(SHARD2).len(), 2);
    assert!(server.data_requests_for(SHARD2)[1].range_start.unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_server_errors_is_retried_with_backoff() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(
        SHARD2,
        [Fault::Status(503), Fault::Status(500), Fault::Status(502)],
    );
    server.push_faults("tokenizer.json", [Fault::Status(504)]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let (outcome, events) = pull_with(&hub, REPO, yes()).await;
    outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    assert_eq!(server.data_requests_for(SHARD2).len(), 4);
    assert_eq!(retries(&events, SHARD2).len(), 3);
    let delays: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Retrying { path, delay_ms, .. } if path == SHARD2 => Some(*delay_ms),
            _ => None,
        })
        .collect();
    assert!(
        delays.windows(2).all(|w| w[0] <= w[1]),
        "backoff grows: {delays:?}"
    );
    assert!(delays[2] > delays[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_in_the_middle_of_a_pull_names_the_file() {
    let server = TestHub::start(vec![repo()]);
    server.push_faults(SHARD2, [Fault::Status(401)]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());
    let e = hub.pull(&model(REPO), yes()).await.unwrap_err();
    assert!(matches!(e, HubError::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(REPO) && msg.contains(SHARD2), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_keeps_failing_gives_a_clear_error_and_the_next_run_completes() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(SHARD1, [Fault::DropAfter(600_000)]);
    server.set_persistent_fault(SHARD1, Some(Fault::Status(503)));
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let (outcome, _) = pull_with(&hub, REPO, yes()).await;
    match outcome {
        Err(HubError::Transfer { path, attempts, .. }) => {
            assert_eq!(path, SHARD1);
            assert!(attempts <= 8, "bounded: {attempts}");
        }
        other => panic!("expected a transfer error, got {other:?}"),
    }
    assert!(server.data_requests_for(SHARD1).len() <= 8);
    let rc = RepoCache::new(dir.path(), REPO);
    let partial = rc.incomplete(&served.file(SHARD1).sha256());
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0, "the partial file is kept");
    assert!(!rc.blob(&served.file(SHARD1).sha256()).exists());
    assert_cache_sound(dir.path(), &served, &served.commit, false);

    server.set_persistent_fault(SHARD1, None);
    let (outcome, _) = pull_with(&hub, REPO, yes()).await;
    outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    let last = server.data_requests_for(SHARD1).pop().unwrap();
    assert_eq!(
        last.range_start,
        Some(kept),
        "the next run resumes the partial file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_is_dropped_and_resumed() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(SHARD1, [Fault::StallAfter(800_000)]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::config(&server.endpoint(), dir.path());
    config.stall_timeout = std::time::Duration::from_millis(500);
    let hub = minibar_hub::Hub::new(config).unwrap();

    let (outcome, events) = pull_with(&hub, REPO, yes()).await;
    outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    let reasons = retries(&events, SHARD1);
    assert!(reasons[0].contains("stalled"), "{reasons:?}");
    let reqs = server.data_requests_for(SHARD1);
    assert!(reqs.len() >= 2);
    assert!(reqs[1].range_start.unwrap() >= 800_000 - 65_536, "{reqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_completes_without_restarting() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(
        SHARD2,
        [Fault::Slow {
            chunk: 128 * 1024,
            pause_ms: 5,
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let (outcome, _) = pull_with(&hub, REPO, yes()).await;
    outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    let reqs = server.data_requests_for(SHARD2);
    assert!(
        reqs[1..].iter().all(|r| r.range_start.unwrap_or(0) > 0),
        "never restarted: {reqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_are_deleted_and_fetched_again() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(SHARD1, [Fault::Corrupt]);
    server.push_faults("tokenizer.json", [Fault::Corrupt]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let (outcome, events) = pull_with(&hub, REPO, yes()).await;
    let outcome = outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    assert_eq!(verify_failures(&events, SHARD1), 1);
    assert_eq!(verify_failures(&events, "tokenizer.json"), 1);
    let reqs = server.data_requests_for(SHARD1);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].range_start, None, "a failed file starts over");
    let report = outcome.files.iter().find(|f| f.path == SHARD1).unwrap();
    assert_eq!(report.verify_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_never_verifies_fails_and_is_never_kept() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.set_persistent_fault(SHARD2, Some(Fault::Corrupt));
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let (outcome, events) = pull_with(&hub, REPO, yes()).await;
    match outcome {
        Err(HubError::Corrupt { path, attempts, .. }) => {
            assert_eq!(path, SHARD2);
            assert_eq!(attempts, 3);
        }
        other => panic!("expected corrupt, got {other:?}"),
    }
    assert_eq!(verify_failures(&events, SHARD2), 3);
    assert_eq!(server.data_requests_for(SHARD2).len(), 3);
    let rc = RepoCache::new(dir.path(), REPO);
    let sha = served.file(SHARD2).sha256();
    assert!(!rc.blob(&sha).exists());
    assert!(!rc.incomplete(&sha).exists());
    assert!(std::fs::symlink_metadata(rc.snapshot_file(&served.commit, SHARD2)).is_err());
    assert_cache_sound(dir.path(), &served, &served.commit, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_range_restarts_the_file_cleanly() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(SHARD1, [Fault::DropAfter(400_000), Fault::IgnoreRange]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let (outcome, _) = pull_with(&hub, REPO, yes()).await;
    outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    let reqs = server.data_requests_for(SHARD1);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_file_left_by_a_killed_process_is_resumed() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let rc = RepoCache::new(dir.path(), REPO);
    let sha = served.file(SHARD1).sha256();
    std::fs::create_dir_all(rc.blob("x").parent().unwrap()).unwrap();
    std::fs::write(rc.incomplete(&sha), &served.file(SHARD1).data[..1_000_000]).unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let plan = hub.plan(&model(REPO)).await.unwrap();
    let f = plan.files.iter().find(|f| f.path == SHARD1).unwrap();
    assert_eq!(f.cached_bytes, 1_000_000);
    let (outcome, _) = pull_with(&hub, REPO, yes()).await;
    let outcome = outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    let reqs = server.data_requests_for(SHARD1);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].range_start, Some(1_000_000));
    assert_eq!(
        server.bytes_sent(Some(SHARD1)),
        served.file(SHARD1).data.len() as u64 - 1_000_000
    );
    let report = outcome.files.iter().find(|f| f.path == SHARD1).unwrap();
    assert_eq!(report.resumed_from, Some(1_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_partial_file_is_caught_by_the_hash_and_replaced() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let rc = RepoCache::new(dir.path(), REPO);
    let sha = served.file(SHARD1).sha256();
    std::fs::create_dir_all(rc.blob("x").parent().unwrap()).unwrap();
    std::fs::write(rc.incomplete(&sha), vec![0u8; 1_000_000]).unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());

    let (outcome, events) = pull_with(&hub, REPO, yes()).await;
    outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    assert_eq!(verify_failures(&events, SHARD1), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_refusals_become_actionable_errors() {
    let private = model_repo("test-org/private", &[100_000]).with_access(Access::Private {
        token: "hf_good".into(),
    });
    let gated = model_repo("test-org/gated", &[100_000]).with_access(Access::Gated {
        token: "hf_good".into(),
        accepted: false,
    });
    let mut phantom = model_repo("test-org/phantom", &[100_000]);
    phantom.phantom_files.push("tokenizer.model".into());
    let server = TestHub::start(vec![repo(), private, gated, phantom]);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = server.endpoint();
    let anon = support::hub(&endpoint, dir.path());
    let with = |token: &str| {
        minibar_hub::Hub::new(
            support::config(&endpoint, dir.path()).with_token(Some(token.to_string())),
        )
        .unwrap()
    };

    let e = anon.pull(&model("test-org/nope"), yes()).await.unwrap_err();
    assert!(matches!(e, HubError::RepoNotFound { .. }), "{e:?}");
    let e = anon
        .pull(&model(&format!("{REPO}@v9")), yes())
        .await
        .unwrap_err();
    assert!(
        matches!(e, HubError::RevisionNotFound { ref revision, .. } if revision == "v9"),
        "{e:?}"
    );
    assert!(e.to_string().contains("no revision `v9`"));
    let e = anon
        .pull(&model("test-org/phantom"), yes())
        .await
        .unwrap_err();
    assert!(
        matches!(e, HubError::FileNotFound { ref path, .. } if path == "tokenizer.model"),
        "{e:?}"
    );

    // A private repo: hidden without a token (the hub's 401 RepoNotFound), 401 with a bad one.
    let e = anon
        .pull(&model("test-org/private"), yes())
        .await
        .unwrap_err();
    assert!(matches!(e, HubError::RepoNotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("HF_TOKEN"));
    let e = with("hf_bad")
        .pull(&model("test-org/private"), yes())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            HubError::Unauthorized {
                token_sent: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("export HF_TOKEN="));
    with("hf_good")
        .pull(&model("test-org/private"), yes())
        .await
        .unwrap();

    // A gated repo: 401 without a token, 403 until the license is accepted.
    let e = anon
        .pull(&model("test-org/gated"), yes())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            HubError::Gated {
                token_sent: false,
                ..
            }
        ),
        "{e:?}"
    );
    let e = with("hf_good")
        .pull(&model("test-org/gated"), yes())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            HubError::Gated {
                token_sent: true,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&format!(
            "accept the license at {endpoint}/test-org/gated then retry"
        )),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_uses_the_cache_and_says_so() {
    let served = repo();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = {
        let server = TestHub::start(vec![served.clone()]);
        let hub = support::hub(&server.endpoint(), dir.path());
        hub.pull(&model(REPO), yes()).await.unwrap();
        server.endpoint()
    }; // the server is gone now
    let hub = support::hub(&endpoint, dir.path());
    let outcome = hub.pull(&model(REPO), yes()).await.unwrap();
    assert!(outcome.offline);
    assert_eq!(outcome.commit, served.commit);
    assert!(outcome.snapshot.join("config.json").exists());

    let e = hub
        .pull(&model("test-org/never-pulled"), yes())
        .await
        .unwrap_err();
    assert!(
        matches!(e, HubError::Offline { partial: None, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("cannot reach"));

    // A cached copy with a missing shard is not passed off as complete.
    let rc = RepoCache::new(dir.path(), REPO);
    std::fs::remove_file(rc.snapshot_file(&served.commit, SHARD2)).unwrap();
    let e = hub.pull(&model(REPO), yes()).await.unwrap_err();
    assert!(
        matches!(
            e,
            HubError::Offline {
                partial: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
}

/// Waits until the pull has some bytes of `path` on disk, reading events as they come.
async fn wait_for_bytes(
    rx: &mut UnboundedReceiver<PullEvent>,
    path: &str,
    at_least: u64,
) -> Vec<PullEvent> {
    let mut seen = Vec::new();
    while let Some(e) = rx.recv().await {
        let enough = matches!(&e, PullEvent::Progress { path: p, file, .. } if p == path && file.done >= at_least);
        seen.push(e);
        if enough {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_keeps_partial_files_and_the_next_pull_resumes() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(
        SHARD1,
        [Fault::Slow {
            chunk: 32 * 1024,
            pause_ms: 20,
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(support::hub(&server.endpoint(), dir.path()));
    let control = PullControl::new();
    let (tx, mut rx) = unbounded_channel();
    let task = {
        let hub = hub.clone();
        let options = PullOptions {
            assume_yes: true,
            control: control.clone(),
            events: Some(tx),
            ..Default::default()
        };
        tokio::spawn(async move { hub.pull(&model(REPO), options).await })
    };
    wait_for_bytes(&mut rx, SHARD1, 300_000).await;
    control.cancel();
    let e = task.await.unwrap().unwrap_err();
    assert!(matches!(e, HubError::Cancelled), "{e:?}");
    let rc = RepoCache::new(dir.path(), REPO);
    let kept = std::fs::metadata(rc.incomplete(&served.file(SHARD1).sha256()))
        .unwrap()
        .len();
    assert!((300_000..3_000_000).contains(&kept), "{kept}");
    assert_cache_sound(dir.path(), &served, &served.commit, false);

    let (outcome, _) = pull_with(&hub, REPO, yes()).await;
    outcome.unwrap();
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    let last = server.data_requests_for(SHARD1).pop().unwrap();
    assert_eq!(last.range_start, Some(kept));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_closes_the_connection_and_resume_continues_with_range() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    server.push_faults(
        SHARD1,
        [Fault::Slow {
            chunk: 32 * 1024,
            pause_ms: 20,
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(support::hub(&server.endpoint(), dir.path()));
    let control = PullControl::new();
    let (tx, mut rx) = unbounded_channel();
    let task = {
        let hub = hub.clone();
        let options = PullOptions {
            assume_yes: true,
            control: control.clone(),
            events: Some(tx),
            ..Default::default()
        };
        tokio::spawn(async move { hub.pull(&model(REPO), options).await })
    };
    let mut events = wait_for_bytes(&mut rx, SHARD1, 200_000).await;
    control.pause();
    // Wait for the pause to be acknowledged, then resume.
    while let Some(e) = rx.recv().await {
        let paused = matches!(e, PullEvent::Paused);
        events.push(e);
        if paused {
            break;
        }
    }
    assert!(control.is_paused());
    control.resume();
    task.await.unwrap().unwrap();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    assert!(events.iter().any(|e| matches!(e, PullEvent::Resumed)));
    assert_cache_sound(dir.path(), &served, &served.commit, true);
    let reqs = server.data_requests_for(SHARD1);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs[1].range_start.unwrap() >= 200_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_will_not_fit_asks_before_downloading() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());
    let seen = Arc::new(std::sync::Mutex::new(None));
    let fit: minibar_hub::FitCheck = {
        let seen = seen.clone();
        Arc::new(move |q: &minibar_hub::FitQuery<'_>| {
            *seen.lock().unwrap() = Some((
                q.repo_id.to_string(),
                q.weight_bytes,
                q.config.map(|c| c["model_type"].clone()),
            ));
            FitVerdict::WontFit("needs 9 GiB, 4 GiB free".into())
        })
    };
    let e = hub
        .pull(
            &model(REPO),
            PullOptions {
                fit: Some(fit.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match &e {
        HubError::NeedsConfirmation { concerns } => {
            assert_eq!(
                concerns,
                &vec![Concern::WontFit {
                    detail: "needs 9 GiB, 4 GiB free".into()
                }]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("--yes"));
    // Only the small JSON files the checks read; no weights before confirmation.
    assert!(
        server
            .data_requests()
            .iter()
            .all(|r| r.path.ends_with(".json")),
        "nothing downloaded before confirmation"
    );
    let (repo_id, weight_bytes, model_type) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(repo_id, REPO);
    assert_eq!(
        weight_bytes,
        served.file(SHARD1).data.len() as u64 + served.file(SHARD2).data.len() as u64
    );
    assert_eq!(model_type, Some(serde_json::json!("llama")));

    let outcome = hub
        .pull(
            &model(REPO),
            PullOptions {
                fit: Some(fit),
                assume_yes: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome.preflight.unwrap().fit,
        FitVerdict::WontFit(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_cleanly_and_the_next_run_resumes() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    if !support::mount_tmpfs(&mnt, "3m", false) {
        panic!(
            "this test needs a size-limited filesystem: it mounts a 3 MiB tmpfs, which needs root \
             (run the tests as root, as the dev and CI containers do)"
        );
    }
    let _unmount = support::Unmount(mnt.clone());
    let cache = mnt.join("hub");
    let hub = support::hub(&server.endpoint(), &cache);

    // The preflight sees it coming and asks.
    let e = hub
        .pull(&model(REPO), PullOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, HubError::NeedsConfirmation { concerns } if matches!(concerns[0], Concern::NotEnoughDisk { .. })),
        "{e:?}"
    );

    // Told to go ahead anyway, it stops cleanly when the disk fills.
    let e = hub.pull(&model(REPO), yes()).await.unwrap_err();
    let (path, kept) = match &e {
        HubError::DiskFull { path, kept_bytes } => (path.clone(), *kept_bytes),
        other => panic!("expected disk full, got {other:?}"),
    };
    assert!(e.to_string().contains("free some space"));
    assert!(path.to_string_lossy().ends_with(".incomplete"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        kept,
        "the partial file is consistent"
    );
    let etag = path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".incomplete")
        .to_string();
    let file = served.files.iter().find(|f| f.etag() == etag).unwrap();
    assert!(
        std::fs::read(&path).unwrap() == file.data[..kept as usize],
        "the partial file is a true prefix"
    );
    assert_cache_sound(&cache, &served, &served.commit, false);

    // More room, and the next run finishes from the kept bytes.
    assert!(support::mount_tmpfs(&mnt, "20m", true), "remount bigger");
    let before = server.data_requests_for(&file.path).len();
    hub.pull(&model(REPO), yes()).await.unwrap();
    assert_cache_sound(&cache, &served, &served.commit, true);
    let resumed = &server.data_requests_for(&file.path)[before..];
    if kept > 0 {
        assert_eq!(resumed[0].range_start, Some(kept));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gguf_only_repo_names_its_files_and_include_fetches_one() {
    use support::hubserver::ServedFile;
    let gguf = ServedRepo::new(
        "test-org/gguf-only",
        vec![
            ServedFile::new("README.md", b"gguf".to_vec(), false),
            ServedFile::new(
                "model-Q4_0.gguf",
                support::hubserver::pseudo_random(7, 300_000),
                true,
            ),
            ServedFile::new(
                "model-Q8_0.gguf",
                support::hubserver::pseudo_random(8, 500_000),
                true,
            ),
        ],
    );
    let server = TestHub::start(vec![gguf.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), dir.path());
    let e = hub
        .pull(&model("test-org/gguf-only"), yes())
        .await
        .unwrap_err();
    assert!(matches!(e, HubError::NoWeights { .. }), "{e:?}");
    assert!(
        e.to_string().contains("model-Q4_0.gguf") && e.to_string().contains("--include"),
        "{e}"
    );

    let mut config = support::config(&server.endpoint(), dir.path());
    config.filter = minibar_hub::FileFilter::default().include("*Q4_0.gguf");
    let hub = minibar_hub::Hub::new(config).unwrap();
    let outcome = hub.pull(&model("test-org/gguf-only"), yes()).await.unwrap();
    let paths: Vec<&str> = outcome.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, vec!["model-Q4_0.gguf"]);
    let bytes = std::fs::read(outcome.snapshot.join("model-Q4_0.gguf")).unwrap();
    assert!(bytes == gguf.file("model-Q4_0.gguf").data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_hub_offline_never_touches_the_network() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    support::hub(&server.endpoint(), dir.path())
        .pull(&model(REPO), yes())
        .await
        .unwrap();
    let before = server.total_requests();
    let mut config = support::config(&server.endpoint(), dir.path());
    config.offline = true;
    let outcome = minibar_hub::Hub::new(config)
        .unwrap()
        .pull(&model(REPO), yes())
        .await
        .unwrap();
    assert!(outcome.offline);
    assert_eq!(server.total_requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pulls_of_the_same_file_at_once_both_end_with_the_correct_file() {
    let served = repo();
    let server = TestHub::start(vec![served.clone()]);
    // Slow enough that the second pull asks while the first still writes the shard.
    server.set_persistent_fault(
        SHARD1,
        Some(Fault::Slow {
            chunk: 256 << 10,
            pause_ms: 20,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    // Two hubs over one cache: as two processes (the app and `minibar pull`) would be.
    let (a, b) = (
        support::hub(&server.endpoint(), dir.path()),
        support::hub(&server.endpoint(), dir.path()),
    );
    let (first, second) = tokio::join!(pull_with(&a, REPO, yes()), pull_with(&b, REPO, yes()));
    let (first, second) = (first.0.unwrap(), second.0.unwrap());
    assert_eq!(first.commit, second.commit);
    assert_cache_sound(dir.path(), &served, &first.commit, true);
    // The shard was written once: the later pull waited for the blob and shared it.
    let reused = |o: &PullOutcome| o.files.iter().any(|f| f.path == SHARD1 && f.reused);
    assert!(
        reused(&first) ^ reused(&second),
        "exactly one pull reused the shard"
    );
}
