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
