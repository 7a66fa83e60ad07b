//! A hub that lies: names that would leave the cache, redirects to another host, endpoints a
//! token must not go to. Every refusal is an error that names the problem, and nothing is
//! written outside the cache folder.

mod support;

use std::path::Path;

use minibar_hub::{HubError, ModelRef, PullOptions};
use support::hubserver::{model_repo, Access, ServedFile, TestHub};

const REPO: &str = "test-org/evil";

fn yes() -> PullOptions {
    PullOptions {
        assume_yes: true,
        ..Default::default()
    }
}

fn model(id: &str) -> ModelRef {
    id.parse().unwrap()
}

/// Every file or folder under `root` that is not inside `root/hub`, the cache.
fn outside_cache(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "hub")
        .collect()
}

/// Pulls `repo` into `<tmp>/hub` and returns the error it must end with.
async fn refused(repo: support::hubserver::ServedRepo) -> (HubError, Vec<String>) {
    let id = repo.repo_id.clone();
    let server = TestHub::start(vec![repo]);
    let root = tempfile::tempdir().unwrap();
    let hub = support::hub(&server.endpoint(), &root.path().join("hub"));
    let e = hub
        .pull(&model(&id), yes())
        .await
        .expect_err("the pull must be refused");
    (e, outside_cache(root.path()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etag_that_is_not_a_hash_never_becomes_a_file_name() {
    // Blobs live at <root>/hub/models--test-org--evil/blobs/<etag>: three `..` reach <root>.
    for (path, lfs) in [
        ("config.json", false),
        ("model-00001-of-00001.safetensors", true),
    ] {
        let mut repo = model_repo(REPO, &[100_000]);
        let f = repo.files.iter_mut().find(|f| f.path == path).unwrap();
        assert_eq!(f.lfs, lfs);
        *f = f.clone().with_served_etag("../../../escaped");
        let (e, outside) = refused(repo).await;
        assert!(
            matches!(e, HubError::UnsafeName { what: "ETag", .. }),
            "{path}: {e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("../../../escaped") && msg.contains("content hash"),
            "{msg}"
        );
        assert!(
            outside.is_empty(),
            "{path}: written outside the cache: {outside:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_id_that_is_not_a_hash_never_becomes_a_folder() {
    // Snapshots live at <root>/hub/models--test-org--evil/snapshots/<commit>.
    let mut repo = model_repo(REPO, &[100_000]);
    repo.commit = "../../../escaped".into();
    let (e, outside) = refused(repo).await;
    assert!(
        matches!(
            e,
            HubError::UnsafeName {
                what: "commit id",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("40 hex digits"), "{e}");
    assert!(outside.is_empty(), "written outside the cache: {outside:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_file_path_that_leaves_the_snapshot_is_refused() {
    let mut repo = model_repo(REPO, &[100_000]);
    repo.files.push(ServedFile::new(
        "../../../../escaped.json",
        b"{}".to_vec(),
        false,
    ));
    let (e, outside) = refused(repo).await;
    assert!(
        matches!(
            e,
            HubError::UnsafeName {
                what: "file path",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(outside.is_empty(), "written outside the cache: {outside:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_follows_a_redirect_to_another_host() {
    let repo = model_repo(REPO, &[300_000, 200_000]).with_access(Access::Private {
        token: "hf_secret".into(),
    });
    let server = TestHub::start(vec![repo]);
    let port = server.addr().port();
    // The endpoint is 127.0.0.1; `localhost` is the same server under another host name, so
    // a token sent there is a token sent to a host it was not meant for. Both an absolute and
    // a scheme-relative (`//host/...`) redirect must lose it.
    for base in [
        format!("//localhost:{port}"),
        format!("http://localhost:{port}"),
    ] {
        server.set_cdn_base(Some(base.clone()));
        let root = tempfile::tempdir().unwrap();
        let hub = minibar_hub::Hub::new(
            support::config(&server.endpoint(), &root.path().join("hub"))
                .with_token(Some("hf_secret".into())),
        )
        .unwrap();
        let before = server.cdn_requests();
        let outcome = hub.pull(&model(REPO), yes()).await;
        assert!(outcome.is_ok(), "{base}: {outcome:?}");
        let after = server.cdn_requests();
        assert!(after.0 > before.0, "{base}: the CDN was never asked");
        assert_eq!(after.1, before.1, "{base}: the token reached another host");
    }
}

#[test]
fn an_endpoint_a_token_must_not_go_to_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for endpoint in [
        "http://hf-mirror.example",
        "http://10.0.0.2:8080",
        "ftp://huggingface.co",
    ] {
        let e = minibar_hub::Hub::new(support::config(endpoint, dir.path())).unwrap_err();
        assert!(
            matches!(e, HubError::InvalidEndpoint { .. }),
            "{endpoint}: {e:?}"
        );
        assert!(e.to_string().contains(endpoint), "{e}");
    }
    // Plain http on this machine stays allowed (local mirrors, this test suite's own hub).
    assert!(minibar_hub::Hub::new(support::config("http://127.0.0.1:9", dir.path())).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_unknown_size_is_refused_not_taken_for_empty() {
    // An LFS redirect without X-Linked-Size (its own Content-Length is 0) and no tree entry.
    let mut repo = model_repo(REPO, &[100_000]);
    let shard = "model-00001-of-00001.safetensors";
    repo.files
        .iter_mut()
        .find(|f| f.path == shard)
        .unwrap()
        .hide_size = true;
    let (e, outside) = refused(repo).await;
    assert!(matches!(e, HubError::Protocol { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("no size") && msg.contains(shard), "{msg}");
    assert!(outside.is_empty(), "{outside:?}");
}
