//! The local library: listing the hub cache and Minibar's store, last use, in-use guard, rm.

mod support;

use std::path::Path;

use minibar_hub::library::{self, LibraryPaths, ModelFormat, ModelInUse, ModelSource, Use};
use minibar_hub::{HubError, PullOptions};
use support::hubserver::{expected_files, model_repo, safetensors_bytes, ServedRepo, TestHub};

const REPO: &str = "test-org/tiny-model";

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A fresh library in a temporary folder with `served` pulled into its hub cache.
async fn pulled_library(served: ServedRepo) -> (tempfile::TempDir, LibraryPaths) {
    let server = TestHub::start(vec![served]);
    let dir = tempfile::tempdir().unwrap();
    let paths = LibraryPaths::new(dir.path().join("hub"), dir.path().join("minibar"));
    let hub = support::hub(&server.endpoint(), &paths.hf_cache);
    hub.pull(
        &REPO.parse().unwrap(),
        PullOptions {
            assume_yes: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (dir, paths)
}

/// A library with one pulled model, one quantized store folder, one GGUF folder, and clutter
/// that is not a model.
async fn populated() -> (tempfile::TempDir, LibraryPaths, u64) {
    let served = model_repo(REPO, &[600_000, 400_000]);
    let (dir, paths) = pulled_library(served.clone()).await;
    // Blobs plus the 40-byte refs/main file.
    let pulled: u64 = expected_files(&served)
        .iter()
        .map(|p| served.file(p).data.len() as u64)
        .sum::<u64>()
        + served.commit.len() as u64;

    let q = paths.store.join("my-qwen-3bit");
    write(
        &q.join("config.json"),
        br#"{"model_type": "qwen3", "quantization": {"group_size": 64, "bits": 3}}"#,
    );
    write(&q.join("model.safetensors"), &safetensors_bytes(5, 10_000));
    write(
        &paths.store.join("gguf-thing").join("model-Q4_0.gguf"),
        b"GGUF\x03\x00\x00\x00",
    );
    write(&paths.store.join("not-a-model").join("notes.txt"), b"hello");
    write(
        &paths
            .hf_cache
            .join("datasets--x--y")
            .join("blobs")
            .join("abc"),
        b"data",
    );
    (dir, paths, pulled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_cache_and_store_models_with_format_bits_and_size() {
    let (_dir, paths, pulled) = populated().await;
    let lib = library::list_models(&paths).unwrap();
    let names: Vec<&str> = lib.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["gguf-thing", "my-qwen-3bit", REPO]);

    let hf = &lib.models[2];
    assert!(matches!(&hf.source, ModelSource::HfCache { repo_id, .. } if repo_id == REPO));
    assert_eq!(hf.format, ModelFormat::Mlx);
    assert_eq!(hf.quantization.as_ref().unwrap().bits, 4);
    assert_eq!(hf.bits_per_weight, Some(4.5));
    assert_eq!(
        hf.size_bytes, pulled,
        "blobs counted once, links not followed"
    );
    assert!(hf.complete);
    assert!(!hf.in_use);
    assert_eq!(hf.last_used, None);
    assert!(hf.path.join("config.json").exists());

    let q = &lib.models[1];
    assert_eq!(q.source, ModelSource::Store);
    assert_eq!(q.format, ModelFormat::Mlx);
    assert_eq!(q.bits_per_weight, Some(3.5));
    let g = &lib.models[0];
    assert_eq!(g.format, ModelFormat::Gguf);
    assert_eq!(g.bits_per_weight, None);

    assert_eq!(
        lib.total_bytes,
        lib.models.iter().map(|m| m.size_bytes).sum::<u64>()
    );
    let json = serde_json::to_value(&lib).unwrap();
    assert_eq!(json["models"][2]["source"]["kind"], "hf_cache");
    assert_eq!(json["models"][2]["format"], "mlx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_use_is_recorded() {
    let (_dir, paths, _) = populated().await;
    library::touch_last_used(&paths, REPO).unwrap();
    let m = library::find_model(&paths, REPO).unwrap();
    let t = m.last_used.expect("recorded");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(t <= now && t + 3600 > now);
    assert_eq!(
        library::find_model(&paths, "my-qwen-3bit")
            .unwrap()
            .last_used,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rm_refuses_a_model_in_use_and_frees_the_space_otherwise() {
    let (_dir, paths, pulled) = populated().await;
    let before = library::list_models(&paths).unwrap().total_bytes;
    library::touch_last_used(&paths, REPO).unwrap();

    // Held by path (a file inside the snapshot), as the engines and converters take it.
    let model = library::find_model(&paths, REPO).unwrap();
    let inside = std::fs::read_dir(&model.path)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let chat = ModelInUse::for_path(&paths, &inside, Use::Chat)
        .unwrap()
        .expect("the library has it");
    assert_eq!(chat.name(), REPO);
    let download = ModelInUse::acquire(&paths, REPO, Use::Download).unwrap();
    assert!(library::find_model(&paths, REPO).unwrap().in_use);
    let e = library::remove_model(&paths, REPO).unwrap_err();
    assert!(
        matches!(e, HubError::ModelInUse { ref name, .. } if name == REPO),
        "{e:?}"
    );
    let why = e.to_string();
    assert!(why.contains("in use by a chat and a download"), "{why}");
    assert!(library::find_model(&paths, REPO).is_ok(), "nothing deleted");
    drop(chat);
    let e = library::remove_model(&paths, REPO).unwrap_err();
    assert!(e.to_string().contains("in use by a download;"), "{e}");
    drop(download);
    // A path outside the library holds nothing.
    assert!(ModelInUse::for_path(&paths, _dir.path(), Use::Chat)
        .unwrap()
        .is_none());

    let removal = library::remove_model(&paths, REPO).unwrap();
    assert_eq!(removal.freed_bytes, pulled);
    assert_eq!(removal.total_bytes, before - pulled);
    assert!(!paths.hf_cache.join("models--test-org--tiny-model").exists());
    assert!(!library::read_last_used(&paths).contains_key(REPO));
    assert!(matches!(
        library::remove_model(&paths, REPO),
        Err(HubError::ModelNotFound(_))
    ));

    let removal = library::remove_model(&paths, "my-qwen-3bit").unwrap();
    assert!(!removal.path.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_pull_is_listed_as_incomplete() {
    let (_dir, paths, _) = populated().await;
    let root = paths.hf_cache.join("models--test-org--tiny-model");
    let snapshot = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let shard = snapshot.join("model-00002-of-00002.safetensors");
    let blob = std::fs::canonicalize(&shard).unwrap();
    std::fs::rename(&blob, format!("{}.incomplete", blob.display())).unwrap();
    std::fs::remove_file(&shard).unwrap();
    let m = library::find_model(&paths, REPO).unwrap();
    assert!(!m.complete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_the_hub_gave_no_hash_for_are_listed_as_unverified() {
    // An ETag of hash shape but no hash Minibar can check (32 hex digits): size only.
    let mut served = model_repo(REPO, &[60_000]);
    for f in &mut served.files {
        if f.path == "tokenizer_config.json" {
            *f = f
                .clone()
                .with_served_etag("0123456789abcdef0123456789abcdef");
        }
    }
    let (_dir, paths) = pulled_library(served).await;
    let lib = library::list_models(&paths).unwrap();
    let m = lib.models.iter().find(|m| m.name == REPO).unwrap();
    assert!(m.complete);
    assert_eq!(m.unverified, vec!["tokenizer_config.json".to_string()]);
    let json = serde_json::to_value(m).unwrap();
    assert_eq!(json["unverified"][0], "tokenizer_config.json");
}
