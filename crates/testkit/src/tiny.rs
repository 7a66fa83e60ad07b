//! The tiny random-weight models mlx-lm builds for the engine's reference tests, made runnable
//! by a chat front end: their 256-token vocabulary gets a byte-level tokenizer (one token per
//! byte, no merges) and a plain chat template, so the CLI and the app can chat with them.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::{reference_python, run_python, script, script_fixture};

/// A copy of the tiny model `name` (a folder of `tiny_models.py`'s fixture, e.g. `gpt_oss`)
/// in `dest/name`, with a byte-level tokenizer and a chat template; `None` (skipped) without
/// the reference Python that builds the fixture.
pub fn tiny_chat_model(name: &str, dest: &Path) -> Option<PathBuf> {
    let python = reference_python()?;
    // The engine's reference tests build the same fixture (same script, same key).
    let tiny = script_fixture("tiny-models", "tiny_models.py", |dir| {
        run_python(&python, &[script("tiny_models.py").as_path(), dir]);
    });
    let model = dest.join(name);
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(tiny.join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    write_byte_tokenizer(&model);
    Some(model)
}

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

fn write_byte_tokenizer(dir: &Path) {
    let vocab: Map<String, Value> = byte_chars()
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
