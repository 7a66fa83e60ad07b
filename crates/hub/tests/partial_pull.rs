//! `minibar pull --layers A..B`: a cluster node fetches only the shards its layers read (by
//! minibar-fit's one rule), plus config, tokenizer and index; the folder is marked with the
//! layers it holds, so the library does not show it as a whole model; a later pull of other
//! layers or of the whole model fills in the rest, and a whole model stays whole.

mod support;

use std::path::Path;

use minibar_hub::library::{self, LibraryPaths};
use minibar_hub::{HubError, PullOptions, PullOutcome};
use support::hubserver::{safetensors_bytes, ServedFile, ServedRepo, TestHub};
use support::minibar_bin;

const REPO: &str = "test-org/three-shards";
const LAYERS: usize = 6;

fn shard(i: usize) -> String {
    format!("model-{i:05}-of-00003.safetensors")
}

/// A six-layer Llama in three shards: the embeddings and layers 0-1, layers 2-3, layers 4-5
/// with the final norm and (untied) output layer; tied, it has no output layer.
fn three_shard_repo(tied: bool) -> ServedRepo {
    let mut map = serde_json::Map::new();
    let mut put = |tensor: String, s: usize| {
        map.insert(tensor, shard(s).into());
    };
    put("model.embed_tokens.weight".into(), 1);
    for i in 0..LAYERS {
        for part in ["self_attn.q_proj.weight", "mlp.down_proj.weight"] {
            put(format!("model.layers.{i}.{part}"), i / 2 + 1);
        }
    }
    put("model.norm.weight".into(), 3);
    if !tied {
        put("lm_head.weight".into(), 3);
    }
    let config = serde_json::json!({
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": LAYERS,
        "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
        "vocab_size": 256, "tie_word_embeddings": tied,
    });
    let mut files = vec![
        ServedFile::new("config.json", config.to_string().into_bytes(), false),
        ServedFile::new("tokenizer.json", b"{}".to_vec(), false),
        ServedFile::new(
            "model.safetensors.index.json",
            serde_json::json!({"metadata": {}, "weight_map": map})
                .to_string()
                .into_bytes(),
            false,
        ),
    ];
    for i in 1..=3 {
        files.push(ServedFile::new(
            &shard(i),
            safetensors_bytes(i as u64, 30_000),
            true,
        ));
    }
    ServedRepo::new(REPO, files)
}

async fn pull(
    server: &TestHub,
    cache: &Path,
    layers: Option<std::ops::Range<usize>>,
) -> Result<PullOutcome, HubError> {
    support::hub(&server.endpoint(), cache)
        .pull(
            &REPO.parse().unwrap(),
            PullOptions {
                assume_yes: true,
                layers,
                ..Default::default()
            },
        )
        .await
}

/// The shards (1, 2, 3) in the snapshot.
fn shards_in(snapshot: &Path) -> Vec<usize> {
    (1..=3)
        .filter(|&i| snapshot.join(shard(i)).exists())
        .collect()
}

fn listed(dir: &Path) -> library::LocalModel {
    let paths = LibraryPaths::new(dir.join("hub"), dir.join("minibar"));
    library::find_model(&paths, REPO).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_range_fetches_its_shards_and_a_later_pull_fills_in_the_rest() {
    let served = three_shard_repo(false);
    let last_shard = served.file(&shard(3)).data.len() as u64;
    let server = TestHub::start(vec![served]);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");

    // The middle rank: its shard alone, with config, tokenizer and index.
    let out = pull(&server, &cache, Some(2..4)).await.unwrap();
    let snap = out.snapshot.clone();
    assert_eq!(shards_in(&snap), [2]);
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors.index.json",
    ] {
        assert!(snap.join(f).is_file(), "{f}");
    }
    assert!(server.data_requests_for(&shard(1)).is_empty());
    assert!(server.data_requests_for(&shard(3)).is_empty());
    let m = listed(dir.path());
    assert!(!m.complete);
    let held = m.layers_held.expect("a partial folder is marked");
    assert_eq!(held.describe(), "layers 2..4 only");
    let missing: Vec<&str> = held.missing.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(missing, [shard(1), shard(3)]);
    // The hub's SHA-256 of each absent shard, for the cluster's fingerprint.
    assert!(held.missing.iter().all(|f| f.sha256.is_some()));

    // The first rank adds the embeddings' shard; the last, untied, needs only its own.
    pull(&server, &cache, Some(0..2)).await.unwrap();
    assert_eq!(shards_in(&snap), [1, 2]);
    let held = listed(dir.path()).layers_held.unwrap();
    assert_eq!(held.describe(), "layers 0..4 only");

    // A whole pull fills in the rest and the mark goes.
    let out = pull(&server, &cache, None).await.unwrap();
    assert_eq!(shards_in(&snap), [1, 2, 3]);
    assert_eq!(out.downloaded_bytes, last_shard);
    let m = listed(dir.path());
    assert!(m.complete && m.layers_held.is_none());

    // A whole model stays whole: a layer pull fetches nothing and marks nothing.
    let out = pull(&server, &cache, Some(4..6)).await.unwrap();
    assert_eq!(out.downloaded_bytes, 0);
    let m = listed(dir.path());
    assert!(m.complete && m.layers_held.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tied_last_rank_fetches_the_embeddings_and_a_bad_range_is_refused() {
    let server = TestHub::start(vec![three_shard_repo(true)]);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let out = pull(&server, &cache, Some(4..6)).await.unwrap();
    // The output layer is the embeddings, which live in the first shard.
    assert_eq!(shards_in(&out.snapshot), [1, 3]);

    let err = pull(&server, &cache, Some(4..7)).await.unwrap_err();
    assert!(
        matches!(err, HubError::InvalidLayers { .. }) && err.to_string().contains("0..6"),
        "{err}"
    );
}

#[test]
fn minibar_pull_layers_fetches_the_share_and_list_says_so() {
    let Some(bin) = minibar_bin() else {
        eprintln!(
            "SKIPPED minibar_pull_layers_fetches_the_share_and_list_says_so: no minibar binary \
             yet (cargo build -p minibar, or set MINIBAR_BIN)"
        );
        return;
    };
    let server = TestHub::start(vec![three_shard_repo(false)]);
    let dir = tempfile::tempdir().unwrap();
    let minibar = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .args(args)
            .env("HF_ENDPOINT", server.endpoint())
            .env("HF_HUB_CACHE", dir.path().join("hub"))
            .env("MINIBAR_HOME", dir.path().join("minibar"))
            .env("MINIBAR_CATALOG", dir.path().join("no-user-catalog.toml"))
            .env("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
            .env_remove("HF_TOKEN")
            .env_remove("HF_HUB_OFFLINE")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "minibar {args:?}: {text}");
        text
    };
    minibar(&["pull", REPO, "--layers", "2-4", "--yes"]);
    assert!(server.data_requests_for(&shard(1)).is_empty());
    assert!(server.data_requests_for(&shard(3)).is_empty());
    assert_eq!(server.data_requests_for(&shard(2)).len(), 1);
    let list = minibar(&["list"]);
    let row = list
        .lines()
        .find(|l| l.starts_with(REPO))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("layers 2..4 only"), "{row}");
    assert!(!row.contains("incomplete"), "{row}");
}
