//! Fuzzing: safetensors headers and config.json, each fed mutations of a real, valid file,
//! must be accepted or refused with an error and never panic. Seeded and reproducible
//! (minibar-fuzz); `MINIBAR_FUZZ_CASES` sets the cases per format (10,000 by default).

use std::collections::HashMap;
use std::path::Path;

use minibar_engine::config::ModelArgs;
use minibar_engine::weights::safetensors::check_header_bytes;
use minibar_fuzz::{byte_mutations, fuzz, json_mutations};
use mlx_rs::{Array, Dtype};
use serde_json::json;

/// A real safetensors file as MLX writes it: several dtypes and ranks, and metadata.
fn small_safetensors() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let z = |shape: &[i32], dtype: Dtype| {
        mlx_rs::ops::zeros::<f32>(shape)
            .unwrap()
            .as_dtype(dtype)
            .unwrap()
    };
    // In a fixed order (not a HashMap's), so the seed file is the same bytes on every run.
    let tensors = [
        ("model.embed_tokens.weight", z(&[16, 8], Dtype::Float32)),
        (
            "model.layers.0.mlp.up_proj.weight",
            z(&[8, 2], Dtype::Uint32),
        ),
        (
            "model.layers.0.mlp.up_proj.scales",
            z(&[8, 1], Dtype::Bfloat16),
        ),
        ("model.norm.weight", z(&[8], Dtype::Float16)),
    ];
    let metadata = HashMap::from([("format".to_string(), "mlx".to_string())]);
    Array::save_safetensors(tensors, Some(&metadata), &path).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn fuzz_safetensors_header() {
    let seed = small_safetensors();
    check_header_bytes(&seed, seed.len() as u64, Path::new("seed")).unwrap();
    fuzz("safetensors header", byte_mutations(seed), |bytes| {
        check_header_bytes(&bytes, bytes.len() as u64, Path::new("fuzz.safetensors")).is_ok()
    });
}

/// Real config shapes: a quantized llama with a per-layer override, and Gemma 3's nested
/// multimodal config.
fn configs() -> Vec<serde_json::Value> {
    vec![
        json!({
            "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
            "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "vocab_size": 256, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
            "max_position_embeddings": 131072, "tie_word_embeddings": true,
            "quantization": {"group_size": 64, "bits": 4, "mode": "affine",
                             "model.layers.0.mlp.down_proj": {"group_size": 32, "bits": 8}},
        }),
        json!({
            "model_type": "gemma3",
            "text_config": {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
                            "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,
                            "sliding_window": 512, "sliding_window_pattern": 6,
                            "query_pre_attn_scalar": 16.0},
            "quantization_config": {"group_size": 32, "bits": 8},
        }),
        json!({
            "model_type": "phi3", "hidden_size": 64, "num_hidden_layers": 2,
            "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 256,
            "partial_rotary_factor": 0.75, "original_max_position_embeddings": 4096,
            "rope_scaling": {"type": "longrope", "long_factor": [1.0, 2.0], "short_factor": [1.0, 1.0]},
        }),
    ]
}

#[test]
fn fuzz_config_json() {
    use minibar_fuzz::proptest::prelude::*;
    let seeds = configs();
    for seed in &seeds {
        ModelArgs::from_value(seed.clone(), Path::new("config.json")).unwrap();
    }
    let strategy = (0..seeds.len()).prop_flat_map(move |i| json_mutations(seeds[i].clone()));
    fuzz("config.json", strategy, |text| {
        let Ok(value) = serde_json::from_str(&text) else {
            return false;
        };
        let Ok(args) = ModelArgs::from_value(value, Path::new("config.json")) else {
            return false;
        };
        // What loading asks of a validated config before any tensor is read.
        let (heads, kv, hd) = (args.num_attention_heads, args.kv_heads(), args.head_dim());
        let _ = (heads * hd, kv * hd, heads / kv, args.hidden_size * 8 / 32);
        for layer in [
            "model.layers.0.mlp.down_proj",
            "model.embed_tokens",
            "lm_head",
        ] {
            if let Some(p) = args.quant_params(layer) {
                let _ = args.hidden_size / p.group_size * p.bits;
            }
        }
        let _ = (
            args.quant_mode(),
            args.context_length(),
            args.tied_embeddings(true),
        );
        true
    });
}
