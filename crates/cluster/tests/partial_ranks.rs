//! Ranks whose folders hold only their own layers' shards (as `minibar pull --layers` leaves
//! them: config, index, the shard, and the mark naming the shards it lacks with the hub's
//! SHA-256) form a cluster: the handshake takes them, and a node holding the whole model, for
//! the same model; each loads from its own shard; the tokens are one process's. A partial
//! folder of another model is refused with the reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use minibar_cluster::{Job, Launcher, Prompt};
use minibar_engine::{
    generate::{Conversation, GenerateOptions},
    CancelToken, LoadOptions,
};
use minibar_fit::{AbsentFile, LayersHeld};
use minibar_testkit::sharded_llama;
use sha2::{Digest, Sha256};

const LAYERS: usize = 3;

fn launcher() -> Launcher {
    Launcher {
        program: PathBuf::from(env!("CARGO_BIN_EXE_minibar-rank")),
        args: Vec::new(),
        grace: Duration::ZERO,
    }
}

fn job(model: &Path, ids: &[u32]) -> Job {
    Job {
        model: model.to_owned(),
        prompt: Prompt::Tokens(ids.to_vec()),
        max_tokens: 8,
        ignore_eos: true,
        stall_timeout: 10.0,
        startup_timeout: 120.0,
        ..Job::default()
    }
}

/// The whole model's greedy tokens in one process.
fn one_process(model: &Path, ids: &[u32]) -> Vec<u32> {
    let loaded = minibar_engine::load(model, &LoadOptions::default()).unwrap();
    let mut conversation = Conversation::new(&loaded.model, 8192);
    let opts = GenerateOptions {
        sampling: Default::default(),
        max_tokens: 8,
        eos: Vec::new(),
        ignore_eos: true,
    };
    let mut tokens = Vec::new();
    conversation
        .generate(&loaded.model, ids, &opts, &CancelToken::new(), |id| {
            tokens.push(id);
            true
        })
        .unwrap();
    tokens
}

/// What a `--layers r..r+1` pull of `whole` leaves in `part`.
fn partial_copy(whole: &Path, shards: &[String], rank: usize, part: &Path) {
    std::fs::create_dir_all(part).unwrap();
    for f in ["config.json", "model.safetensors.index.json", &shards[rank]] {
        std::fs::copy(whole.join(f), part.join(f)).unwrap();
    }
    let missing = shards
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != rank)
        .map(|(_, s)| {
            let bytes = std::fs::read(whole.join(s)).unwrap();
            AbsentFile {
                path: s.clone(),
                size: bytes.len() as u64,
                sha256: Some(hex(&Sha256::digest(&bytes))),
            }
        })
        .collect();
    LayersHeld {
        layers: vec![[rank, rank + 1]],
        of: LAYERS,
        missing,
    }
    .write(part)
    .unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn ranks_on_their_own_shards_give_one_process_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let shards = sharded_llama(&whole, LAYERS, 11);
    let parts: Vec<PathBuf> = (0..LAYERS)
        .map(|r| {
            let part = tmp.path().join(format!("rank{r}"));
            partial_copy(&whole, &shards, r, &part);
            part
        })
        .collect();
    let ids = [1, 5, 9, 3, 17];
    let expected = one_process(&whole, &ids);

    // Three ranks on three equal shares of this machine: one layer each, its own shard.
    // Rank 0 holds the whole model, the others their shard alone.
    let jobs = vec![
        job(&whole, &ids),
        job(&parts[1], &ids),
        job(&parts[2], &ids),
    ];
    let done = launcher()
        .start(&jobs)
        .unwrap()
        .wait(|_, _| {})
        .unwrap_or_else(|e| panic!("whole and partial folders: {e}"));
    assert_eq!(done.report.unwrap().tokens, expected);

    // Another model's shard where rank 1's mark says this one's should be: refused.
    let other = tmp.path().join("other");
    let other_shards = sharded_llama(&other, LAYERS, 12);
    let mut held = LayersHeld::read(&parts[1]).unwrap();
    let bytes = std::fs::read(other.join(&other_shards[0])).unwrap();
    held.missing[0].sha256 = Some(hex(&Sha256::digest(&bytes)));
    held.write(&parts[1]).unwrap();
    let jobs: Vec<Job> = parts.iter().map(|p| job(p, &ids)).collect();
    let Err(err) = launcher().start(&jobs).unwrap().wait(|_, _| {}) else {
        panic!("a rank with another model's files was taken");
    };
    let err = err.to_string();
    assert!(err.contains("model files differ"), "{err}");
}
