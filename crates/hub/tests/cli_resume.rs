//! `minibar pull <catalog id>` (the binary) killed with SIGKILL halfway resumes on the next run
//! instead of starting over. The binary is `$MINIBAR_BIN`, else `minibar` next to this test's target dir;
//! build it first with `cargo build -p minibar` (it links MLX).

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use minibar_hub::RepoCache;
use support::hubserver::{model_repo, Fault, TestHub};
use support::minibar_bin;

/// A built-in catalog id and the MLX repo it resolves to (its 4-bit download); the loopback hub
/// serves test data under that repo id.
const CATALOG_ID: &str = "smollm2-135m";
const REPO: &str = "mlx-community/SmolLM2-135M-Instruct-4bit";
const SHARD: &str = "model-00001-of-00001.safetensors";

fn pull_command(bin: &PathBuf, endpoint: &str, dir: &std::path::Path, log: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["pull", CATALOG_ID, "--yes"])
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_CACHE", dir.join("hub"))
        .env("MINIBAR_HOME", dir.join("minibar"))
        .env("MINIBAR_CATALOG", dir.join("no-user-catalog.toml"))
        .env("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("{log}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{log}.err"))).unwrap());
    cmd
}

#[test]
fn minibar_pull_killed_halfway_resumes_on_the_next_run() {
    let Some(bin) = minibar_bin() else {
        eprintln!(
            "SKIPPED minibar_pull_killed_halfway_resumes_on_the_next_run: no minibar binary yet \
             (cargo build -p minibar, or set MINIBAR_BIN)"
        );
        return;
    };
    let served = model_repo(REPO, &[8_000_000]);
    let size = served.file(SHARD).data.len() as u64;
    let server = TestHub::start(vec![served.clone()]);
    // A slow link, so the kill lands mid-file.
    server.set_persistent_fault(
        SHARD,
        Some(Fault::Slow {
            chunk: 64 * 1024,
            pause_ms: 30,
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = RepoCache::new(&dir.path().join("hub"), REPO);
    let partial = cache.incomplete(&served.file(SHARD).sha256());

    let mut child = pull_command(&bin, &server.endpoint(), dir.path(), "first")
        .spawn()
        .unwrap();
    // Poll (bounded) until a quarter of the shard is on disk, then kill -9.
    let mut reached = false;
    for _ in 0..1200 {
        if std::fs::metadata(&partial)
            .map(|m| m.len() >= size / 4)
            .unwrap_or(false)
        {
            reached = true;
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the first pull ended before it was killed ({status}): {}",
                std::fs::read_to_string(dir.path().join("first.err")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reached, "the first pull never got a quarter of the way");
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept >= size / 4 && kept < size, "kept {kept} of {size}");
    assert!(
        !cache.blob(&served.file(SHARD).sha256()).exists(),
        "nothing marked complete"
    );
    let first_err = std::fs::read_to_string(dir.path().join("first.err")).unwrap();
    assert!(
        first_err.contains(&format!("pulling {REPO}")),
        "{first_err}"
    );
    assert!(first_err.contains('%'), "progress was shown: {first_err}");

    server.set_persistent_fault(SHARD, None);
    let before = server.data_requests_for(SHARD).len();
    let sent_before = server.bytes_sent(Some(SHARD));
    let status = pull_command(&bin, &server.endpoint(), dir.path(), "second")
        .status()
        .unwrap();
    let second_err = std::fs::read_to_string(dir.path().join("second.err")).unwrap();
    assert!(status.success(), "second pull failed: {second_err}");

    let second = &server.data_requests_for(SHARD)[before..];
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(
        second[0].range_start,
        Some(kept),
        "resumed from the bytes on disk"
    );
    let sent = server.bytes_sent(Some(SHARD)) - sent_before;
    assert_eq!(sent, size - kept);
    assert!(
        sent < size,
        "the second run transferred less than the whole file"
    );
    assert!(second_err.contains("resuming at"), "{second_err}");
    let snapshot_file = cache.snapshot_file(&served.commit, SHARD);
    assert!(std::fs::read(snapshot_file).unwrap() == served.file(SHARD).data);
    eprintln!("killed at {kept} of {size} bytes; the second run transferred {sent}");
}
