//! A node that pulled only its own layers' shards (`minibar pull --layers`) loads its layer
//! range from that partial folder: the other shards are never opened, and it holds the same
//! weights as a rank loaded from the whole folder. Asking it for layers it lacks names the
//! missing shard and the fix.

use std::{collections::HashMap, path::Path};

use minibar_engine::{load, LoadOptions};
use mlx_rs::Array;

const HIDDEN: i32 = 16;
const LAYERS: usize = 3;

/// Which shard each tensor goes to: block `i` in shard `i + 1`, the embeddings with block 0,
/// the final norm and the (untied) output layer with the last block, as exporters shard.
fn shard_of(name: &str) -> usize {
    match minibar_fit::block_index(name) {
        Some(i) => i + 1,
        None if name.starts_with("model.embed_tokens.") => 1,
        None => LAYERS,
    }
}

fn shard_name(i: usize) -> String {
    format!("model-{i:05}-of-{LAYERS:05}.safetensors")
}

/// A random three-layer Llama, untied, sharded by [`shard_of`] with an index.
fn write_sharded(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({
            "model_type": "llama", "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
            "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
            "vocab_size": 32, "rms_norm_eps": 1e-5, "max_position_embeddings": 64,
            "tie_word_embeddings": false,
        })
        .to_string(),
    )
    .unwrap();
    let rand = |shape: &[i32]| mlx_rs::random::normal::<f32>(shape, None, None, None).unwrap();
    let mut names: Vec<(String, Vec<i32>)> = vec![
        ("model.embed_tokens.weight".into(), vec![32, HIDDEN]),
        ("model.norm.weight".into(), vec![HIDDEN]),
        ("lm_head.weight".into(), vec![32, HIDDEN]),
    ];
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        for (n, shape) in [
            ("input_layernorm", vec![HIDDEN]),
            ("post_attention_layernorm", vec![HIDDEN]),
            ("self_attn.q_proj", vec![HIDDEN, HIDDEN]),
            ("self_attn.k_proj", vec![8, HIDDEN]),
            ("self_attn.v_proj", vec![8, HIDDEN]),
            ("self_attn.o_proj", vec![HIDDEN, HIDDEN]),
            ("mlp.gate_proj", vec![32, HIDDEN]),
            ("mlp.up_proj", vec![32, HIDDEN]),
            ("mlp.down_proj", vec![HIDDEN, 32]),
        ] {
            names.push((format!("{p}.{n}.weight"), shape));
        }
    }
    let mut shards: Vec<HashMap<String, Array>> = vec![HashMap::new(); LAYERS + 1];
    let mut weight_map = serde_json::Map::new();
    for (name, shape) in names {
        let s = shard_of(&name);
        weight_map.insert(name.clone(), shard_name(s).into());
        shards[s].insert(name, rand(&shape));
    }
    for (i, tensors) in shards.iter().enumerate().skip(1) {
        Array::save_safetensors(tensors, None, dir.join(shard_name(i))).unwrap();
    }
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": weight_map}).to_string(),
    )
    .unwrap();
}

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
    write_sharded(&whole);
    for (range, shard) in [(0..1, 1), (1..2, 2), (2..3, 3)] {
        // The folder a `--layers` pull leaves: config, index and this rank's shard alone.
        let part = tmp.path().join(format!("part-{}", range.start));
        std::fs::create_dir_all(&part).unwrap();
        for f in [
            "config.json".to_string(),
            "model.safetensors.index.json".to_string(),
            shard_name(shard),
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
