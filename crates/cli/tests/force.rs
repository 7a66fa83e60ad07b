//! `minibar generate` asks minibar-fit's gate before loading: a model that won't fit is
//! refused with the numbers and how to force it; `--force` gets it past the gate and is
//! remembered for that model, so the next run needs no flag.

use std::path::Path;
use std::process::{Command, Output};

fn generate(config_home: &Path, model: &Path, force: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_minibar"));
    cmd.env("XDG_CONFIG_HOME", config_home)
        .env("MINIBAR_HOME", config_home)
        .args(["generate", "-p", "hi", "--max-tokens", "1", "-m"])
        .arg(model);
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_model_that_wont_fit_is_refused_until_forced_and_the_force_is_remembered() {
    let home = tempfile::tempdir().unwrap();
    // Llama 3.1 405B's shape in bf16 (~800 GB), with no weights: past the gate, loading fails
    // for want of tensors, an error that is not a refusal.
    let model = home.path().join("huge");
    std::fs::create_dir_all(&model).unwrap();
    let config = serde_json::json!({"model_type": "llama", "hidden_size": 16384,
        "intermediate_size": 53248, "num_hidden_layers": 126, "num_attention_heads": 128,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
        "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "tie_word_embeddings": false});
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();

    let refused = stderr(&generate(home.path(), &model, false));
    assert!(refused.contains("huge won't fit: needs"), "{refused}");
    assert!(refused.contains(" GB"), "the numbers: {refused}");
    assert!(refused.contains("--force"), "how to load anyway: {refused}");

    let forced = stderr(&generate(home.path(), &model, true));
    assert!(!forced.contains("won't fit"), "{forced}");
    let remembered =
        std::fs::read_to_string(home.path().join("minibar/forced-models.json")).unwrap();
    assert!(remembered.contains("huge"), "{remembered}");

    let again = stderr(&generate(home.path(), &model, false));
    assert!(
        !again.contains("won't fit"),
        "the force was forgotten: {again}"
    );
}
