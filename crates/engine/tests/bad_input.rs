//! Bad input gets a one-line error that says what to do, and never a panic: truncated GGUF
//! and safetensors files, configs with missing keys, unknown architectures, prompts longer
//! than the context.

use std::{collections::HashMap, path::Path};

use minibar_engine::{
    generate::{CancelToken, Conversation, GenerateOptions},
    load, EngineError, LoadOptions,
};
use mlx_rs::Array;

const CONFIG: &str = r#"{"model_type": "llama", "hidden_size": 16, "num_hidden_layers": 1,
  "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
  "vocab_size": 32, "rms_norm_eps": 1e-5, "tie_word_embeddings": true}"#;

/// A complete one-layer llama folder with random weights.
fn tiny_llama(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let rand = |shape: &[i32]| mlx_rs::random::normal::<f32>(shape, None, None, None).unwrap();
    let mut w: HashMap<String, Array> = HashMap::new();
    let p = "model.layers.0";
    for (name, shape) in [
        ("model.embed_tokens.weight", vec![32, 16]),
        ("model.norm.weight", vec![16]),
        (&format!("{p}.input_layernorm.weight"), vec![16]),
        (&format!("{p}.post_attention_layernorm.weight"), vec![16]),
        (&format!("{p}.self_attn.q_proj.weight"), vec![16, 16]),
        (&format!("{p}.self_attn.k_proj.weight"), vec![8, 16]),
        (&format!("{p}.self_attn.v_proj.weight"), vec![8, 16]),
        (&format!("{p}.self_attn.o_proj.weight"), vec![16, 16]),
        (&format!("{p}.mlp.gate_proj.weight"), vec![32, 16]),
        (&format!("{p}.mlp.up_proj.weight"), vec![32, 16]),
        (&format!("{p}.mlp.down_proj.weight"), vec![16, 32]),
    ] {
        w.insert(name.to_string(), rand(&shape));
    }
    Array::save_safetensors(&w, None, dir.join("model.safetensors")).unwrap();
}

fn load_err(path: &Path) -> EngineError {
    match load(path, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded but should not have", path.display()),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "error is not one line: {msg}");
            e
        }
    }
}

#[test]
fn a_complete_tiny_model_loads() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_llama(tmp.path());
    load(tmp.path(), &LoadOptions::default()).unwrap();
}

#[test]
fn truncated_safetensors_is_reported_as_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_llama(tmp.path());
    let file = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(tmp.path());
    assert!(matches!(e, EngineError::CorruptFile { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(
        e.to_string().contains("download or convert it again"),
        "{e}"
    );
}

#[test]
fn truncated_gguf_is_reported_before_mlx_maps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.gguf");
    let mut g = mlx_rs::io::GgufFile::new().unwrap();
    g.insert_metadata("general.architecture", "llama").unwrap();
    g.insert_array(
        "token_embd.weight",
        &mlx_rs::random::normal::<f32>(&[64, 64], None, None, None).unwrap(),
    )
    .unwrap();
    g.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = load_err(&path);
        assert!(
            matches!(e, EngineError::CorruptFile { .. }),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn missing_config_key_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_llama(tmp.path());
    let config = CONFIG.replace(r#""hidden_size": 16,"#, "");
    std::fs::write(tmp.path().join("config.json"), config).unwrap();
    let e = load_err(tmp.path());
    assert!(
        matches!(&e, EngineError::MissingConfigKey { key, .. } if key == "hidden_size"),
        "{e}"
    );
}

#[test]
fn unsupported_architecture_lists_the_supported_ones() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_llama(tmp.path());
    std::fs::write(
        tmp.path().join("config.json"),
        CONFIG.replace("\"llama\"", "\"mamba\""),
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(
        matches!(e, EngineError::UnsupportedArchitecture { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("qwen3"), "{e}");
}

#[test]
fn weights_that_do_not_match_the_config_name_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_llama(tmp.path());
    std::fs::write(
        tmp.path().join("config.json"),
        CONFIG.replace(r#""intermediate_size": 32"#, r#""intermediate_size": 48"#),
    )
    .unwrap();
    let e = load_err(tmp.path());
    assert!(matches!(e, EngineError::TensorShape { .. }), "{e}");
}

#[test]
fn prompt_longer_than_the_context_is_refused_and_the_cache_survives() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_llama(tmp.path());
    let model = load(tmp.path(), &LoadOptions::default()).unwrap();
    let mut conv = Conversation::new(&model.model, 8);
    let opts = GenerateOptions {
        sampling: Default::default(),
        max_tokens: 4,
        eos: vec![],
        ignore_eos: true,
    };
    let cancel = CancelToken::new();
    let e = conv
        .generate(&model.model, &[1; 12], &opts, &cancel, |_| true)
        .unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::ContextOverflow {
                prompt: 12,
                context: 8
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("shorten"), "{e}");
    // The conversation is still usable afterwards.
    let (_, stats) = conv
        .generate(&model.model, &[1, 2, 3], &opts, &cancel, |_| true)
        .unwrap();
    assert!(stats.generated_tokens >= 1);
}

#[test]
fn missing_model_path_says_so() {
    let e = load_err(Path::new("/nonexistent/model"));
    assert!(e.to_string().contains("no such model"), "{e}");
}

/// A llama GGUF with the given numeric metadata and tensors (name, shape), f32 zeros.
fn llama_gguf(path: &Path, numbers: &[(&str, i32)], tensors: &[(&str, &[i32])]) {
    let mut g = mlx_rs::io::GgufFile::new().unwrap();
    g.insert_metadata("general.architecture", "llama").unwrap();
    for (key, v) in numbers {
        g.insert_metadata(format!("llama.{key}"), Array::from_int(*v))
            .unwrap();
    }
    g.insert_metadata(
        "llama.attention.layer_norm_rms_epsilon",
        Array::from_f32(1e-5),
    )
    .unwrap();
    for (name, shape) in tensors {
        g.insert_array(*name, &mlx_rs::ops::zeros::<f32>(shape).unwrap())
            .unwrap();
    }
    g.save(path).unwrap();
}

const LLAMA_SIZES: &[(&str, i32)] = &[
    ("attention.head_count", 4),
    ("embedding_length", 64),
    ("block_count", 1),
    ("feed_forward_length", 128),
];

#[test]
fn gguf_head_counts_of_zero_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.gguf");
    for (key, v) in [
        ("attention.head_count", 0),
        ("attention.head_count_kv", 0),
        ("attention.head_count", -4),
        ("attention.key_length", 0),
        ("embedding_length", 0),
    ] {
        let mut numbers: Vec<(&str, i32)> = LLAMA_SIZES
            .iter()
            .copied()
            .filter(|(k, _)| *k != key)
            .collect();
        numbers.push((key, v));
        llama_gguf(&path, &numbers, &[("token_embd.weight", &[32, 64])]);
        let e = load_err(&path);
        assert!(e.to_string().contains(key), "{key} = {v}: {e}");
    }
}

#[test]
fn gguf_quantized_layers_with_missing_or_flat_tensors_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.gguf");
    for tensors in [
        // Scales without the packed weight they scale.
        &[("blk.0.ffn_up.scales", &[128, 2][..])][..],
        // One-dimensional weight and scales: no packed width to read.
        &[
            ("blk.0.ffn_up.weight", &[128][..]),
            ("blk.0.ffn_up.scales", &[128][..]),
        ][..],
        // Scales of zero width.
        &[
            ("blk.0.ffn_up.weight", &[128, 8][..]),
            ("blk.0.ffn_up.scales", &[128, 0][..]),
        ][..],
    ] {
        let mut all = vec![("token_embd.weight", &[32, 64][..])];
        all.extend_from_slice(tensors);
        llama_gguf(&path, LLAMA_SIZES, &all);
        let e = load_err(&path);
        assert!(
            e.to_string().contains("model.layers.0.mlp.up_proj"),
            "{tensors:?}: {e}"
        );
    }
}

#[test]
fn gguf_tensor_sizes_that_overflow_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.gguf");
    llama_gguf(&path, LLAMA_SIZES, &[("token_embd.weight", &[32, 64])]);
    let mut bytes = std::fs::read(&path).unwrap();
    // The directory entry: name, n_dims (u32), then the dims (u64 each).
    let name = b"token_embd.weight";
    let at = bytes
        .windows(name.len())
        .rposition(|w| w == name)
        .expect("tensor name in the file")
        + name.len();
    assert_eq!(&bytes[at..at + 4], &2u32.to_le_bytes());
    for (i, dim) in [1u64 << 62, 1 << 62].iter().enumerate() {
        let d = at + 4 + 8 * i;
        bytes[d..d + 8].copy_from_slice(&dim.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    let e = load_err(&path);
    assert!(matches!(e, EngineError::CorruptFile { .. }), "{e}");
    assert!(e.to_string().contains("token_embd.weight"), "{e}");
}

#[test]
fn gguf_tensors_without_dimensions_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("model.gguf");
    llama_gguf(
        &path,
        LLAMA_SIZES,
        &[
            ("token_embd.weight", &[32, 64]),
            ("blk.0.ffn_up.weight", &[]),
            ("blk.0.ffn_up.scales", &[]),
        ],
    );
    let e = load_err(&path);
    assert!(matches!(e, EngineError::CorruptFile { .. }), "{e}");
    assert!(e.to_string().contains("0 dimensions"), "{e}");
}
