//! Loading Hugging Face folders' tokenizer files, against transformers reading the same folders.

mod common;

use std::path::Path;

use minibar_text::{Message, TextError, TextModel};
use serde_json::{json, Value};
use tokenizers::models::bpe::BPE;
use tokenizers::AddedToken;

const TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn write(dir: &Path, name: &str, v: &Value) {
    std::fs::write(dir.join(name), serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// Three folders that spell the same information the different ways real models do.
fn folders(root: &Path) -> Vec<std::path::PathBuf> {
    let mut tokenizer = tokenizers::Tokenizer::new(BPE::default());
    let specials: Vec<AddedToken> = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<unk>"]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    let mut dirs = Vec::new();
    for name in [
        "strings",
        "dicts_and_named_templates",
        "jinja_file_and_generation_config",
    ] {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        tokenizer.save(d.join("tokenizer.json"), false).unwrap();
        dirs.push(d);
    }
    write(
        &dirs[0],
        "tokenizer_config.json",
        &json!({
        "bos_token": "<s>", "eos_token": "</s>", "chat_template": TEMPLATE,
        "tokenizer_class": "PreTrainedTokenizerFast"}),
    );
    let added = |t: &str| {
        json!({"__type": "AddedToken", "content": t, "lstrip": false,
        "normalized": false, "rstrip": false, "single_word": false, "special": true})
    };
    write(
        &dirs[1],
        "tokenizer_config.json",
        &json!({
        "bos_token": added("<s>"), "eos_token": added("<|im_end|>"), "unk_token": added("<unk>"),
        "chat_template": [
            {"name": "tool_use", "template": "TOOLS {{ messages | length }}"},
            {"name": "default", "template": TEMPLATE}],
        "tokenizer_class": "PreTrainedTokenizerFast"}),
    );
    write(
        &dirs[2],
        "tokenizer_config.json",
        &json!({
        "bos_token": null, "eos_token": "<|im_end|>", "tokenizer_class": "PreTrainedTokenizerFast"}),
    );
    std::fs::write(
        dirs[2].join("chat_template.jinja"),
        TEMPLATE.replace("{{ bos_token }}", ""),
    )
    .unwrap();
    write(
        &dirs[2],
        "generation_config.json",
        &json!({"eos_token_id": [3, 1]}),
    );
    dirs
}

#[test]
fn folders_read_like_transformers_reads_them() {
    let Some(python) = minibar_testkit::reference_python() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let dirs = folders(root.path());
    let conversation = vec![Message::system("Be brief."), Message::user("Hi ☃")];
    let conv_path = root.path().join("conversation.json");
    std::fs::write(&conv_path, serde_json::to_string(&conversation).unwrap()).unwrap();
    let mut args = vec![conv_path.as_os_str()];
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    let reference = common::run_reference(&python, "hf_folder.py", &args);
    for (dir, theirs) in dirs.iter().zip(reference.as_array().unwrap()) {
        let ours = TextModel::from_hf_dir(dir).unwrap();
        let name = dir.file_name().unwrap().to_string_lossy();
        let id = |v: &Value| v.as_u64().map(|x| x as u32);
        assert_eq!(ours.bos, id(&theirs["bos_token_id"]), "{name}: bos");
        if let Some(eos) = id(&theirs["eos_token_id"]) {
            assert!(
                ours.eos.contains(&eos),
                "{name}: eos {eos} not in {:?}",
                ours.eos
            );
        }
        match &theirs["generation_eos"] {
            Value::Array(ids) => {
                for e in ids {
                    assert!(
                        ours.eos.contains(&id(e).unwrap()),
                        "{name}: generation eos {e}"
                    );
                }
            }
            Value::Number(n) => assert!(ours.eos.contains(&(n.as_u64().unwrap() as u32)), "{name}"),
            _ => {}
        }
        assert!(
            theirs["rendered"].is_string(),
            "{name}: every folder has a template: {theirs}"
        );
        let rendered = ours
            .chat_template
            .as_ref()
            .map(|t| t.render(&conversation, true).unwrap());
        assert_eq!(
            rendered.as_deref(),
            theirs["rendered"].as_str(),
            "{name}: rendered template"
        );
    }
}

#[test]
fn folder_without_tokenizer_json_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let err = TextModel::from_hf_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TextError::MissingFile { .. }));
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn malformed_config_is_a_json_error_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = &folders(root.path())[0];
    std::fs::write(dir.join("tokenizer_config.json"), "{ not json").unwrap();
    let err = TextModel::from_hf_dir(dir).unwrap_err();
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}

#[test]
fn model_without_template_falls_back_to_chatml() {
    let root = tempfile::tempdir().unwrap();
    let dir = &folders(root.path())[0];
    write(dir, "tokenizer_config.json", &json!({"eos_token": "</s>"}));
    let model = TextModel::from_hf_dir(dir).unwrap();
    assert!(model.chat_template.is_none());
    let t = model.chat_template();
    assert!(t.is_fallback());
    let text = t.render(&[Message::user("Hi")], true).unwrap();
    assert!(
        text.starts_with("<|im_start|>user\nHi<|im_end|>\n")
            && text.ends_with("<|im_start|>assistant\n"),
        "{text}"
    );
}
