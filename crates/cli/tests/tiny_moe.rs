//! `minibar generate` runs the tiny mixture-of-experts models (gpt-oss in f32 and with mxfp4
//! experts, Qwen3-MoE) that mlx-lm builds for the engine's reference tests, given a byte-level
//! tokenizer whose 256 tokens fit their vocabulary.

use std::path::Path;
use std::process::Command;

use minibar_testkit::{reference_python, run_python, script, script_fixture};
use serde_json::{json, Value};

/// GPT-2's byte-to-character map, which byte-level tokenizers use for their vocabulary.
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

/// A byte-level BPE tokenizer with one token per byte and no merges, and a plain template.
fn write_tokenizer(dir: &Path) {
    let vocab: serde_json::Map<String, Value> = byte_chars()
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), json!(i)))
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
        "trim_offsets": true, "use_regex": true});
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "vocab": vocab, "merges": []}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:";
    std::fs::write(
        dir.join("tokenizer_config.json"),
        json!({"chat_template": template}).to_string(),
    )
    .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn generate_runs_the_tiny_mixture_of_experts_models() {
    let Some(python) = reference_python() else {
        return;
    };
    // The engine's reference tests build the same fixture (same script, same key).
    let tiny = script_fixture("tiny-models", "tiny_models.py", |dir| {
        run_python(&python, &[script("tiny_models.py").as_path(), dir]);
    });
    let home = tempfile::tempdir().unwrap();
    for name in ["gpt_oss", "gpt_oss-mxfp4", "qwen3_moe"] {
        let model = home.path().join(name);
        copy_dir(&tiny.join(name), &model);
        write_tokenizer(&model);
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
