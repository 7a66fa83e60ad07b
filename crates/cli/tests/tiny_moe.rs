//! `minibar generate` runs the tiny mixture-of-experts models (gpt-oss in f32 and with mxfp4
//! experts, Qwen3-MoE) that mlx-lm builds for the engine's reference tests, given a byte-level
//! tokenizer whose 256 tokens fit their vocabulary.

use std::process::Command;

use minibar_testkit::tiny_chat_model;
use serde_json::Value;

#[test]
fn generate_runs_the_tiny_mixture_of_experts_models() {
    let home = tempfile::tempdir().unwrap();
    for name in ["gpt_oss", "gpt_oss-mxfp4", "qwen3_moe"] {
        let Some(model) = tiny_chat_model(name, home.path()) else {
            return;
        };
        let out = Command::new(env!("CARGO_BIN_EXE_minibar"))
            .env("XDG_CONFIG_HOME", home.path())
            .env("MINIBAR_HOME", home.path())
            .args(["generate", "-p", "hi", "--max-tokens", "12", "--json", "-m"])
            .arg(&model)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(report["finish_reason"], "length", "{name}: {report}");
        assert_eq!(report["generated_tokens"], 12, "{name}: {report}");
    }
}
