//! A small random-weight Llama in several safetensors shards with an index, as exporters
//! shard a large model: block `i` in shard `i + 1`, the embeddings with block 0, the final
//! norm and the (untied) output layer with the last block. For the tests of a node that holds
//! only its own layers' shards (`minibar pull --layers`): the engine's load and the cluster.

use std::path::Path;

use serde_json::{json, Map, Value};

/// Hidden size of the sharded model.
const HIDDEN: u64 = 16;
/// Vocabulary size.
const VOCAB: u64 = 32;
/// MLP width.
const FFN: u64 = 32;

/// The file name of shard `i` (1-based) of `n`.
pub fn shard_name(i: usize, n: usize) -> String {
    format!("model-{i:05}-of-{n:05}.safetensors")
}

/// Writes a `layers`-block Llama into `dir` (config.json, one shard per block, the index),
/// with weights drawn from `seed`; returns the shard names, block 0's first.
pub fn sharded_llama(dir: &Path, layers: usize, seed: u64) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let config = json!({
        "model_type": "llama", "hidden_size": HIDDEN, "num_hidden_layers": layers,
        "intermediate_size": FFN, "num_attention_heads": 2, "num_key_value_heads": 1,
        "vocab_size": VOCAB, "rms_norm_eps": 1e-5, "max_position_embeddings": 256,
        "tie_word_embeddings": false,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut weight_map = Map::new();
    let mut names = Vec::new();
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        let mut tensors: Vec<(String, Vec<u64>, bool)> = vec![
            (format!("{p}.input_layernorm.weight"), vec![HIDDEN], true),
            (
                format!("{p}.post_attention_layernorm.weight"),
                vec![HIDDEN],
                true,
            ),
            (
                format!("{p}.self_attn.q_proj.weight"),
                vec![HIDDEN, HIDDEN],
                false,
            ),
            (
                format!("{p}.self_attn.k_proj.weight"),
                vec![8, HIDDEN],
                false,
            ),
            (
                format!("{p}.self_attn.v_proj.weight"),
                vec![8, HIDDEN],
                false,
            ),
            (
                format!("{p}.self_attn.o_proj.weight"),
                vec![HIDDEN, HIDDEN],
                false,
            ),
            (
                format!("{p}.mlp.gate_proj.weight"),
                vec![FFN, HIDDEN],
                false,
            ),
            (format!("{p}.mlp.up_proj.weight"), vec![FFN, HIDDEN], false),
            (
                format!("{p}.mlp.down_proj.weight"),
                vec![HIDDEN, FFN],
                false,
            ),
        ];
        if i == 0 {
            tensors.push((
                "model.embed_tokens.weight".into(),
                vec![VOCAB, HIDDEN],
                false,
            ));
        }
        if i + 1 == layers {
            tensors.push(("model.norm.weight".into(), vec![HIDDEN], true));
            tensors.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN], false));
        }
        let name = shard_name(i + 1, layers);
        for (t, _, _) in &tensors {
            weight_map.insert(t.clone(), Value::String(name.clone()));
        }
        write_safetensors(&dir.join(&name), &tensors, &mut rng);
        names.push(name);
    }
    let index = json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    names
}

/// Writes f32 tensors: norms near one, the rest small uniform values.
fn write_safetensors(path: &Path, tensors: &[(String, Vec<u64>, bool)], rng: &mut u64) {
    let mut header = Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, shape, norm) in tensors {
        let count: u64 = shape.iter().product();
        let start = data.len();
        for _ in 0..count {
            // xorshift64: deterministic and dependency-free.
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            let unit = (*rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let v = if *norm { 1.0 + 0.1 * unit } else { 0.5 * unit };
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut head = Value::Object(header).to_string().into_bytes();
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut out = (head.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&head);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}
