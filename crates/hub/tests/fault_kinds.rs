//! One pull per injected fault, cycling through the kinds the random soak does not cover:
//! 401/403/404 in the middle of a repository, 416 and a wrong `Content-Range` on a resumed
//! range, a body longer than the file, failing metadata requests (repository info, tree
//! listing, HEAD), a disk that fills mid-transfer (a size-limited tmpfs, so root), and two
//! pulls of the same model at once. Every run ends in a verified
//! snapshot or a clear error; no blob is ever a wrong copy; and a pull after the fault
//! completes. Seeded, so a failure reproduces; prints the count per fault kind.

mod support;

use std::collections::BTreeMap;

use minibar_hub::{HubError, ModelRef, PullOptions, RepoCache};
use support::hubserver::{expected_files, model_repo, Fault, MetaKind, ServedRepo, TestHub};

/// Pulls per fault kind.
const ROUNDS: usize = 19;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every blob in the cache is a byte-exact copy of a served file.
fn assert_blobs_verified(cache: &std::path::Path, served: &ServedRepo) {
    let blobs = RepoCache::new(cache, &served.repo_id).root().join("blobs");
    let Ok(rd) = std::fs::read_dir(&blobs) else {
        return;
    };
    let by_etag: BTreeMap<String, &[u8]> = served
        .files
        .iter()
        .map(|f| (f.etag(), &f.data[..]))
        .collect();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".incomplete") || name.ends_with(".lock") {
            continue;
        }
        let data = by_etag
            .get(&name)
            .unwrap_or_else(|| panic!("blob {name} is no served file"));
        assert!(
            std::fs::read(e.path()).unwrap() == *data,
            "corrupt blob {name} marked complete"
        );
    }
}

fn assert_snapshot(snapshot: &std::path::Path, served: &ServedRepo, wanted: &[String], what: &str) {
    for path in wanted {
        let bytes = std::fs::read(snapshot.join(path)).unwrap();
        assert!(bytes == served.file(path).data, "{what}: {path} differs");
    }
}

fn opts() -> PullOptions {
    PullOptions {
        assume_yes: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_ends_verified_or_clear_and_a_retry_completes() {
    let served = model_repo("kinds/model", &[160_000, 120_000]);
    let dir = tempfile::tempdir().unwrap();
    let model: ModelRef = "kinds/model".parse().unwrap();
    let wanted = expected_files(&served);
    let shards: Vec<String> = wanted
        .iter()
        .filter(|p| p.ends_with(".safetensors"))
        .cloned()
        .collect();
    let repo_dir = dir.path().join("models--kinds--model");
    // A small disk for the disk-full case, grown again for the pull after it.
    let mnt = dir.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    assert!(
        support::mount_tmpfs(&mnt, "8m", false),
        "this test needs a size-limited filesystem: it mounts a tmpfs, which needs root \
         (run the tests as root, as the dev and CI containers do)"
    );
    let _unmount = support::Unmount(mnt.clone());
    let small_cache = mnt.join("hub");
    let mut rng = Rng(0x5eed_4b1d_0002);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut clear_errors = 0;

    let kinds = [
        "http 401",
        "http 403",
        "http 404",
        "416 on resume",
        "wrong content-range",
        "over-long body",
        "metadata: info 5xx",
        "metadata: tree 5xx",
        "metadata: head 5xx",
        "two pulls at once",
        "disk full mid-transfer",
    ];
    let mut requests = 0;
    for round in 0..ROUNDS {
        // A fresh server each round keeps every server under its request bound.
        let server = TestHub::start(vec![served.clone()]);
        let mut config = support::config(&server.endpoint(), dir.path());
        config.max_attempts = 4;
        config.stall_timeout = std::time::Duration::from_millis(800);
        let hub = minibar_hub::Hub::new(config.clone()).unwrap();
        let small_hub = minibar_hub::Hub::new(minibar_hub::HubConfig {
            cache_dir: Some(small_cache.clone()),
            ..config
        })
        .unwrap();
        for kind in kinds {
            let what = format!("round {round}, {kind}");
            let file = shards[rng.below(shards.len() as u64) as usize].clone();
            let size = served.file(&file).data.len() as u64;
            // A first connection cut part-way, so the faulty answer is to a ranged request.
            let cut = Fault::DropAfter(1 + rng.below(size - 1));
            let status_code = [503, 502, 500, 429][rng.below(4) as usize];
            let result = match kind {
                "http 401" | "http 403" | "http 404" => {
                    let code: u16 = kind[5..].parse().unwrap();
                    server.push_faults(&file, [Fault::Status(code)]);
                    let r = hub.pull(&model, opts()).await;
                    let e = r.expect_err(&what);
                    let msg = e.to_string();
                    match code {
                        401 => assert!(
                            matches!(e, HubError::Unauthorized { .. })
                                && msg.contains("kinds/model")
                                && msg.contains(&file),
                            "{what}: {e:?}"
                        ),
                        403 => assert!(msg.contains(&file), "{what}: names the file: {msg}"),
                        _ => assert!(
                            matches!(e, HubError::FileNotFound { .. }) && msg.contains(&file),
                            "{what}: {e:?}"
                        ),
                    }
                    clear_errors += 1;
                    None
                }
                "416 on resume" => {
                    server.push_faults(&file, [cut, Fault::RangeNotSatisfiable]);
                    Some(hub.pull(&model, opts()).await)
                }
                "wrong content-range" => {
                    let back = 1 + rng.below(4096);
                    server.push_faults(&file, [cut, Fault::WrongContentRange(back)]);
                    Some(hub.pull(&model, opts()).await)
                }
                "over-long body" => {
                    let extra = 1 + rng.below(70_000);
                    server.push_faults(&file, [Fault::OverLong(extra)]);
                    Some(hub.pull(&model, opts()).await)
                }
                "metadata: info 5xx" => {
                    server.push_meta_faults(MetaKind::Info, [status_code]);
                    Some(hub.pull(&model, opts()).await)
                }
                "metadata: tree 5xx" => {
                    server.push_meta_faults(MetaKind::Tree, [status_code]);
                    Some(hub.pull(&model, opts()).await)
                }
                "metadata: head 5xx" => {
                    let n = 1 + rng.below(2);
                    server.push_meta_faults(MetaKind::Head, (0..n).map(|_| status_code));
                    Some(hub.pull(&model, opts()).await)
                }
                "disk full mid-transfer" => {
                    let room = 64 + rng.below(200);
                    assert!(support::mount_tmpfs(&mnt, &format!("{room}k"), true));
                    let e = small_hub.pull(&model, opts()).await.expect_err(&what);
                    let HubError::DiskFull { path, kept_bytes } = &e else {
                        panic!("{what}: expected disk full, got {e:?}");
                    };
                    assert!(e.to_string().contains("free some space"), "{what}: {e}");
                    assert_eq!(
                        std::fs::metadata(path).unwrap().len(),
                        *kept_bytes,
                        "{what}: the partial file is consistent"
                    );
                    let etag = path.file_name().unwrap().to_string_lossy();
                    let etag = etag.trim_end_matches(".incomplete");
                    let f = served.files.iter().find(|f| f.etag() == etag).unwrap();
                    assert!(
                        std::fs::read(path).unwrap() == f.data[..*kept_bytes as usize],
                        "{what}: the partial file is a true prefix"
                    );
                    assert_blobs_verified(&small_cache, &served);
                    assert!(support::mount_tmpfs(&mnt, "8m", true), "remount bigger");
                    let outcome = small_hub
                        .pull(&model, opts())
                        .await
                        .unwrap_or_else(|e| panic!("{what}: pull with room again: {e}"));
                    assert_snapshot(&outcome.snapshot, &served, &wanted, &what);
                    assert_blobs_verified(&small_cache, &served);
                    std::fs::remove_dir_all(&small_cache).unwrap();
                    clear_errors += 1;
                    // Nothing in the main cache this time: download it there too.
                    Some(hub.pull(&model, opts()).await)
                }
                _ => {
                    // Both wait on one another's blobs or share them; neither fails.
                    server.push_faults(&file, [cut]);
                    let (a, b) = tokio::join!(hub.pull(&model, opts()), hub.pull(&model, opts()));
                    let b = b.unwrap_or_else(|e| panic!("{what}: second pull: {e}"));
                    assert_snapshot(&b.snapshot, &served, &wanted, &what);
                    Some(a)
                }
            };
            *counts.entry(kind).or_default() += 1;
            assert_blobs_verified(dir.path(), &served);
            match result {
                Some(r) => {
                    let outcome =
                        r.unwrap_or_else(|e| panic!("{what}: retried to completion, got {e}"));
                    assert_snapshot(&outcome.snapshot, &served, &wanted, &what);
                }
                None => {
                    // After a final error, a plain pull completes from the partial files.
                    let outcome = hub
                        .pull(&model, opts())
                        .await
                        .unwrap_or_else(|e| panic!("{what}: pull after the fault: {e}"));
                    assert_snapshot(&outcome.snapshot, &served, &wanted, &what);
                    assert_blobs_verified(dir.path(), &served);
                }
            }
            assert_eq!(server.pending_faults(), 0, "{what}: the fault was served");
            assert_eq!(
                server.pending_meta_faults(),
                0,
                "{what}: the fault was served"
            );
            std::fs::remove_dir_all(&repo_dir).unwrap();
        }
        assert_eq!(
            server.refused_over_limit(),
            0,
            "request count stayed bounded"
        );
        requests += server.total_requests();
    }

    let total: usize = counts.values().sum();
    let per_kind: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    eprintln!(
        "fault kinds: {total} faults injected ({}), {clear_errors} clear errors, 0 corrupt files; {} requests in all",
        per_kind.join(", "),
        requests
    );
    assert!(total >= 200, "{total} faults");
}
