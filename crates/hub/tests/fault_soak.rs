//! Many pulls in a row against a hub that misbehaves at random (seeded, so reproducible).
//! After every run the pull either finished with a verified snapshot, or failed with a clear
//! error leaving only partial files; nothing corrupt is ever marked complete, and the next run
//! picks up the partial files.

mod support;

use minibar_hub::{HubError, ModelRef, PullOptions, RepoCache};
use support::hubserver::{expected_files, model_repo, Fault, ServedRepo, TestHub};

const RUNS: usize = 40;

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

fn random_fault(rng: &mut Rng, size: u64) -> Fault {
    match rng.below(7) {
        0 | 1 => Fault::DropAfter(rng.below(size.max(2))),
        2 => Fault::Status([500, 502, 503, 504, 429][rng.below(5) as usize]),
        3 => Fault::StallAfter(rng.below(size.max(2))),
        4 => Fault::Corrupt,
        5 => Fault::IgnoreRange,
        _ => Fault::Slow {
            chunk: 256 * 1024,
            pause_ms: 1,
        },
    }
}

/// Checks the invariant: every blob is a verified copy of a served file.
fn assert_blobs_verified(cache: &std::path::Path, served: &ServedRepo) {
    let blobs = RepoCache::new(cache, &served.repo_id).root().join("blobs");
    let Ok(rd) = std::fs::read_dir(&blobs) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".incomplete") {
            continue;
        }
        let f = served
            .files
            .iter()
            .find(|f| f.etag() == name)
            .expect("blob of a served file");
        assert!(
            std::fs::read(e.path()).unwrap() == f.data,
            "corrupt blob {name} marked complete"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_never_leave_a_corrupt_complete_file() {
    let served = model_repo("soak/model", &[1_500_000, 1_000_000]);
    let server = TestHub::start(vec![served.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::config(&server.endpoint(), dir.path());
    config.max_attempts = 4;
    config.stall_timeout = std::time::Duration::from_millis(800);
    let hub = minibar_hub::Hub::new(config).unwrap();
    let model: ModelRef = "soak/model".parse().unwrap();
    let wanted = expected_files(&served);
    let mut rng = Rng(0x5eed_1234_abcd_0001);

    let (mut completed, mut failed, mut fault_runs, mut faults_injected) = (0, 0, 0, 0);
    for run in 0..RUNS {
        // Between one and five faults on random files; sometimes a file that keeps failing.
        let n = 1 + rng.below(5) as usize;
        for _ in 0..n {
            let path = &wanted[rng.below(wanted.len() as u64) as usize];
            let size = served.file(path).data.len() as u64;
            server.push_faults(path, [random_fault(&mut rng, size)]);
            faults_injected += 1;
        }
        let stubborn = rng.below(6) == 0;
        let stubborn_path = wanted[rng.below(wanted.len() as u64) as usize].clone();
        if stubborn {
            let fault = if rng.below(2) == 0 {
                Fault::Status(503)
            } else {
                Fault::Corrupt
            };
            server.set_persistent_fault(&stubborn_path, Some(fault));
        }
        fault_runs += 1;

        let result = hub
            .pull(
                &model,
                PullOptions {
                    assume_yes: true,
                    ..Default::default()
                },
            )
            .await;
        assert_blobs_verified(dir.path(), &served);
        match result {
            Ok(outcome) => {
                completed += 1;
                for path in &wanted {
                    let bytes = std::fs::read(outcome.snapshot.join(path)).unwrap();
                    assert!(bytes == served.file(path).data, "run {run}: {path} differs");
                }
                // Start the next run from an empty cache so it downloads again.
                std::fs::remove_dir_all(dir.path().join("models--soak--model")).unwrap();
            }
            Err(e) => {
                failed += 1;
                assert!(
                    matches!(e, HubError::Transfer { .. } | HubError::Corrupt { .. }),
                    "run {run}: unexpected error {e:?}"
                );
                assert!(!e.to_string().is_empty());
            }
        }
        server.set_persistent_fault(&stubborn_path, None);
    }

    // Whatever the last run left, a run without faults completes from it.
    let leftover: usize = server.pending_faults();
    for path in &wanted {
        server.set_persistent_fault(path, None);
    }
    let mut final_outcome = None;
    for _ in 0..=leftover {
        match hub
            .pull(
                &model,
                PullOptions {
                    assume_yes: true,
                    ..Default::default()
                },
            )
            .await
        {
            Ok(o) => {
                final_outcome = Some(o);
                break;
            }
            Err(e) => assert!(
                matches!(e, HubError::Transfer { .. } | HubError::Corrupt { .. }),
                "{e:?}"
            ),
        }
    }
    let outcome = final_outcome.expect("a fault-free run completes");
    for path in &wanted {
        assert!(std::fs::read(outcome.snapshot.join(path)).unwrap() == served.file(path).data);
    }
    assert_blobs_verified(dir.path(), &served);
    assert_eq!(
        server.refused_over_limit(),
        0,
        "request count stayed bounded"
    );
    eprintln!(
        "fault soak: {fault_runs} fault runs ({faults_injected} faults injected): {completed} completed verified, \
         {failed} stopped with a clear error; {} requests in all",
        server.total_requests()
    );
    assert_eq!(completed + failed, RUNS);
    assert!(
        completed > 0 && failed > 0,
        "both outcomes exercised: {completed} / {failed}"
    );
}
