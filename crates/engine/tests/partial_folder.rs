//! A node that pulled only its own layers' shards (`minibar pull --layers`) loads its layer
//! range from that partial folder: the other shards are never opened, and it holds the same
//! weights as a rank loaded from the whole folder. Asking it for layers it lacks names the
//! missing shard and the fix.

use minibar_engine::{load, LoadOptions};
use minibar_testkit::{shard_name, sharded_llama};

const LAYERS: usize = 3;

fn with_layers(layers: std::ops::Range<usize>) -> LoadOptions {
    LoadOptions {
        layers: Some(layers),
        ..LoadOptions::default()
    }
}

/// Every weight of a loaded model, as f32 values in order.
fn weights(model: &minibar_engine::LoadedModel) -> Vec<Vec<f32>> {
    model
        .model
        .arrays()
        .into_iter()
        .map(|a| {
            a.as_dtype(mlx_rs::Dtype::Float32)
                .unwrap()
                .as_slice()
                .to_vec()
        })
        .collect()
}

#[test]
fn a_rank_loads_from_a_folder_holding_only_its_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    // Block i in shard i + 1, the embeddings with block 0, norm and output layer with the last.
    sharded_llama(&whole, LAYERS, 7);
    for (range, shard) in [(0..1, 1), (1..2, 2), (2..3, 3)] {
        // The folder a `--layers` pull leaves: config, index and this rank's shard alone.
        let part = tmp.path().join(format!("part-{}", range.start));
        std::fs::create_dir_all(&part).unwrap();
        for f in [
            "config.json".to_string(),
            "model.safetensors.index.json".to_string(),
            shard_name(shard, LAYERS),
        ] {
            std::fs::copy(whole.join(&f), part.join(&f)).unwrap();
        }
        let from_part = load(&part, &with_layers(range.clone()))
            .unwrap_or_else(|e| panic!("layers {range:?} from their own shard: {e}"));
        let from_whole = load(&whole, &with_layers(range.clone())).unwrap();
        assert_eq!(from_part.model.layers, range);
        let (first, last) = (range.start == 0, range.end == LAYERS);
        assert_eq!(from_part.model.embed.is_some(), first);
        assert_eq!(from_part.model.norm.is_some(), last);
        assert_eq!(from_part.model.lm_head.is_some(), last);
        assert_eq!(weights(&from_part), weights(&from_whole), "{range:?}");

        // Layers this folder lacks: refused with the shard that is missing and the fix.
        let other = if range.start == 0 { 1..2 } else { 0..1 };
        let err = load(&part, &with_layers(other.clone()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("missing") && err.contains("--layers"),
            "{other:?} from {range:?}'s folder: {err}"
        );
    }
}
