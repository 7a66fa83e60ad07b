//! Tokenizer metadata that is missing or inconsistent gives an error that names the problem.

use std::collections::BTreeMap;
use std::path::PathBuf;

use minibar_text::{tokenizer_from_gguf, GgufMetadata, GgufValue, TextError};

fn strs(v: &[&str]) -> GgufValue {
    GgufValue::Array(v.iter().map(|s| GgufValue::String(s.to_string())).collect())
}

/// A tiny but complete byte-level BPE vocabulary: "a", "b", "ab" and one control token.
fn meta() -> GgufMetadata {
    let mut kv = BTreeMap::new();
    kv.insert(
        "tokenizer.ggml.model".into(),
        GgufValue::String("gpt2".into()),
    );
    kv.insert(
        "tokenizer.ggml.pre".into(),
        GgufValue::String("smollm".into()),
    );
    kv.insert(
        "tokenizer.ggml.tokens".into(),
        strs(&["<|end|>", "a", "b", "ab"]),
    );
    kv.insert(
        "tokenizer.ggml.token_type".into(),
        GgufValue::Array([3, 1, 1, 1].into_iter().map(GgufValue::I32).collect()),
    );
    kv.insert("tokenizer.ggml.merges".into(), strs(&["a b"]));
    kv.insert("tokenizer.ggml.eos_token_id".into(), GgufValue::U32(0));
    GgufMetadata {
        path: PathBuf::from("tiny.gguf"),
        version: 3,
        kv,
        tensors: vec![],
        data_offset: 0,
    }
}

fn error_with(change: impl FnOnce(&mut BTreeMap<String, GgufValue>)) -> String {
    let mut m = meta();
    change(&mut m.kv);
    match tokenizer_from_gguf(&m) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("metadata should have been rejected"),
    }
}

#[test]
fn the_tiny_vocabulary_works() {
    let t = tokenizer_from_gguf(&meta()).unwrap();
    let ids = t.encode("ab<|end|>ba", false).unwrap().get_ids().to_vec();
    assert_eq!(ids, vec![3, 0, 2, 1]);
}

#[test]
fn missing_or_inconsistent_metadata_is_named() {
    let e = error_with(|kv| {
        kv.remove("tokenizer.ggml.tokens");
    });
    assert!(e.contains("tokenizer.ggml.tokens"), "{e}");
    let e = error_with(|kv| {
        kv.remove("tokenizer.ggml.model");
    });
    assert!(e.contains("tokenizer.ggml.model"), "{e}");
    let e = error_with(|kv| {
        kv.insert(
            "tokenizer.ggml.model".into(),
            GgufValue::String("t5".into()),
        );
    });
    assert!(e.contains("unsupported tokenizer.ggml.model 't5'"), "{e}");
    let e = error_with(|kv| {
        kv.insert(
            "tokenizer.ggml.pre".into(),
            GgufValue::String("martian".into()),
        );
    });
    assert!(e.contains("unsupported pre-tokenizer 'martian'"), "{e}");
    let e = error_with(|kv| {
        kv.insert(
            "tokenizer.ggml.token_type".into(),
            GgufValue::Array(vec![GgufValue::I32(1)]),
        );
    });
    assert!(e.contains("token_type has 1 entries"), "{e}");
    let e = error_with(|kv| {
        kv.insert("tokenizer.ggml.eos_token_id".into(), GgufValue::U32(99));
    });
    assert!(e.contains("eos token id 99"), "{e}");
    let e = error_with(|kv| {
        kv.insert("tokenizer.ggml.merges".into(), strs(&["ab"]));
    });
    assert!(e.contains("merge 0"), "{e}");
    let e = error_with(|kv| {
        kv.insert("tokenizer.ggml.tokens".into(), GgufValue::U32(5));
    });
    assert!(
        e.contains("tokenizer.ggml.tokens") && e.contains("uint32"),
        "{e}"
    );
    let e = error_with(|kv| {
        kv.insert(
            "tokenizer.ggml.model".into(),
            GgufValue::String("llama".into()),
        );
    });
    assert!(e.contains("tokenizer.ggml.scores"), "{e}");
}

#[test]
fn errors_are_tokenizer_or_gguf_errors() {
    let mut m = meta();
    m.kv.remove("tokenizer.ggml.model");
    assert!(matches!(tokenizer_from_gguf(&m), Err(TextError::Gguf(_))));
}
