//! Fuzzing: GGUF metadata, `tokenizer.json` and chat templates, each fed mutations of a real,
//! valid input, must give a result or an error and never panic. Seeded and reproducible (see
//! minibar-fuzz); `MINIBAR_FUZZ_CASES` sets the cases per format (10,000 by default).

mod common;

use std::path::Path;

use minibar_fuzz::proptest::prelude::*;
use minibar_fuzz::{byte_mutations, fuzz, json_mutations, spliced_text};
use minibar_testkit::{gguf_string as string, GgufWriter as Writer};
use minibar_text::{ChatTemplate, GgufMetadata, Message, RenderOptions, TextModel};
use serde_json::json;

const TEMPLATE: &str = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn gguf_string(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    string(&mut v, s);
    v
}

fn gguf_array(elem_ty: u32, items: &[Vec<u8>]) -> Vec<u8> {
    let mut v = elem_ty.to_le_bytes().to_vec();
    v.extend((items.len() as u64).to_le_bytes());
    for item in items {
        v.extend(item);
    }
    v
}

/// A small but complete GGUF: llama hyperparameters, a byte-level BPE vocabulary with merges
/// and special tokens, a chat template, and three tensors (F32, F16, Q8_0) with their data.
fn small_gguf() -> Vec<u8> {
    let tokens = [
        "<|im_start|>",
        "<|im_end|>",
        "h",
        "e",
        "l",
        "o",
        "Ġ",
        "he",
        "ll",
        "hello",
        "hell",
    ];
    let mut w = Writer::default();
    w.key("general.architecture", 8, &gguf_string("llama"))
        .key("general.alignment", 4, &32u32.to_le_bytes())
        .key("llama.block_count", 4, &1u32.to_le_bytes())
        .key("llama.embedding_length", 4, &32u32.to_le_bytes())
        .key("llama.attention.head_count", 4, &4u32.to_le_bytes())
        .key("llama.rope.freq_base", 6, &10000f32.to_le_bytes())
        .key("tokenizer.ggml.model", 8, &gguf_string("gpt2"))
        .key("tokenizer.ggml.pre", 8, &gguf_string("smollm"))
        .key(
            "tokenizer.ggml.tokens",
            9,
            &gguf_array(8, &tokens.map(gguf_string)),
        )
        .key(
            "tokenizer.ggml.token_type",
            9,
            &gguf_array(
                5,
                &[3i32, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1].map(|t| t.to_le_bytes().to_vec()),
            ),
        )
        .key(
            "tokenizer.ggml.merges",
            9,
            &gguf_array(8, &["h e", "l l", "he ll", "hell o"].map(gguf_string)),
        )
        .key("tokenizer.ggml.bos_token_id", 4, &0u32.to_le_bytes())
        .key("tokenizer.ggml.eos_token_id", 4, &1u32.to_le_bytes())
        .key("tokenizer.ggml.add_bos_token", 7, &[1])
        .key("tokenizer.chat_template", 8, &gguf_string(TEMPLATE))
        .tensor("token_embd.weight", &[32, 10], 0, 0)
        .tensor("output_norm.weight", &[32], 1, 1280)
        .tensor("blk.0.attn_q.weight", &[32, 32], 8, 1344);
    // 1280 + 64 bytes, then 32 blocks of Q8_0 (34 bytes each).
    w.bytes(1344 + 32 * 34)
}

/// Parses, and when the metadata reads, builds the tokenizer and template and uses them;
/// true when the metadata was accepted.
fn use_gguf(bytes: &[u8]) -> bool {
    let Ok(meta) = GgufMetadata::from_reader(bytes, bytes.len() as u64, Path::new("fuzz.gguf"))
    else {
        return false;
    };
    for t in &meta.tensors {
        let _ = t.byte_size();
    }
    let _ = meta.architecture();
    if let Ok(model) = TextModel::from_gguf(&meta) {
        exercise(&model, true);
    }
    true
}

/// What the app does with a loaded tokenizer: encode, decode, stream (and, with `chat`,
/// render the template and encode the result).
fn exercise(model: &TextModel, chat: bool) {
    if let Ok(ids) = model.encode("hello <|im_end|> héllo", true) {
        let _ = model.decode(&ids, false);
        let mut stream = model.stream_decoder(true);
        for id in ids {
            let _ = stream.push(id);
        }
        let _ = stream.finish();
    }
    if chat {
        let _ = model.encode_chat(&[Message::user("hello")], true);
    }
}

#[test]
fn the_seeds_are_valid() {
    let bytes = small_gguf();
    let meta =
        GgufMetadata::from_reader(&bytes[..], bytes.len() as u64, Path::new("s.gguf")).unwrap();
    let model = TextModel::from_gguf(&meta).unwrap();
    assert_eq!(model.encode("hello", false).unwrap(), [9]);
    let dir = tempfile::tempdir().unwrap();
    let model = hf_model(dir.path(), &tokenizer_json().to_string()).unwrap();
    assert_eq!(model.encode("hello", false).unwrap(), [9]);
    for (name, source) in templates() {
        let t = ChatTemplate::new(&source, Some("<s>"), Some("</s>")).unwrap();
        t.render_with(&messages(), &RenderOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn fuzz_gguf_metadata() {
    fuzz("GGUF", byte_mutations(small_gguf()), |bytes| {
        use_gguf(&bytes)
    });
}

/// The same vocabulary as [`small_gguf`], as a Hugging Face `tokenizer.json`.
fn tokenizer_json() -> serde_json::Value {
    let added = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(0, "<|im_start|>"), added(1, "<|im_end|>")],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [0], "tokens": ["<|im_start|>"]}}
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": {"<|im_start|>": 0, "<|im_end|>": 1, "h": 2, "e": 3, "l": 4, "o": 5, "Ġ": 6,
                      "he": 7, "ll": 8, "hello": 9, "hell": 10},
            "merges": ["h e", "l l", "he ll", "hell o"]
        }
    })
}

/// A model folder with this `tokenizer.json` and a fixed `tokenizer_config.json` (no chat
/// template: compiling one per case would cost more than the tokenizer), loaded.
fn hf_model(dir: &Path, tokenizer: &str) -> Result<TextModel, minibar_text::TextError> {
    let config = dir.join("tokenizer_config.json");
    if !config.exists() {
        let text = json!({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"});
        std::fs::write(config, text.to_string()).unwrap();
    }
    std::fs::write(dir.join("tokenizer.json"), tokenizer).unwrap();
    TextModel::from_hf_dir(dir)
}

#[test]
fn post_processors_the_tokenizers_crate_would_panic_on_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (pointer, value, needle) in [
        (
            "/post_processor/single/0/SpecialToken/id",
            json!("<missing>"),
            "does not define",
        ),
        (
            "/post_processor/single/1/Sequence/id",
            json!("B"),
            "second sequence",
        ),
        (
            "/post_processor/special_tokens/<|im_start|>/tokens",
            json!(["a", "b"]),
            "unequal",
        ),
    ] {
        let mut t = tokenizer_json();
        *t.pointer_mut(pointer).unwrap() = value;
        let e = hf_model(dir.path(), &t.to_string()).expect_err("refused");
        assert!(e.to_string().contains(needle), "{pointer}: {e}");
    }
}

#[test]
fn fuzz_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    // Panics inside the tokenizers crate that minibar-text turned into errors.
    let contained = std::cell::Cell::new(0u32);
    fuzz("tokenizer.json", json_mutations(tokenizer_json()), |text| {
        let contain = |e: &minibar_text::TextError| {
            if e.to_string().contains("the tokenizer failed while") {
                contained.set(contained.get() + 1);
            }
        };
        match hf_model(dir.path(), &text) {
            Ok(model) => {
                if let Err(e) = model.encode("hello <|im_end|> héllo", true) {
                    contain(&e);
                }
                // Templates are fuzzed on their own; here only the tokenizer is.
                exercise(&model, false);
                true
            }
            Err(e) => {
                contain(&e);
                false
            }
        }
    });
    println!(
        "fuzz tokenizer.json: {} panics inside the tokenizers crate became errors",
        contained.get()
    );
}

/// The real templates of public models the reference tests use.
fn templates() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jinja"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// A conversation every seed template accepts (Gemma's refuses a system message).
fn messages() -> Vec<Message> {
    vec![
        Message::user("Hi {{ there }}"),
        Message::assistant("Hello."),
        Message::user("Bye"),
    ]
}

/// Pieces of Jinja that reach the template engine's corners: blocks left open, filters,
/// indexing, loops, macros (a recursive one), the functions Minibar adds.
const JINJA: &[&str] = &[
    "{%",
    "%}",
    "{{",
    "}}",
    "{#",
    "#}",
    "{%-",
    "-%}",
    "(",
    ")",
    "[",
    "]",
    "'",
    "\"",
    "|",
    "{% for m in messages %}",
    "{% endfor %}",
    "{% if messages %}",
    "{% else %}",
    "{% endif %}",
    "{{ messages[0]['content'] }}",
    "{{ messages[-1].role }}",
    "{{ messages[99] }}",
    "| tojson",
    "| length",
    "| trim",
    "| upper",
    "[::-1]",
    "[1:]",
    "{{ raise_exception('stop') }}",
    "{{ strftime_now('%Y-%m-%d') }}",
    "{{ loop.index0 }}",
    "{% set ns = namespace(x=0) %}",
    "{% set ns.x = ns.x + 1 %}",
    "{{ 1 / 0 }}",
    "{{ 'a' ~ 1 }}",
    "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}",
    "{% break %}",
    "{% continue %}",
    "{{ bos_token }}",
    "{{ tools | tojson }}",
    "{{ x.y.z }}",
    "{% generation %}",
    "{% endgeneration %}",
    "{{ messages | map(attribute='content') | join(',') }}",
];

#[test]
fn fuzz_chat_templates() {
    let seeds = templates();
    let strategy = (0..seeds.len()).prop_flat_map(move |i| spliced_text(&seeds[i].1, JINJA));
    let msgs = messages();
    fuzz("chat template", strategy, |source| match ChatTemplate::new(
        &source,
        Some("<s>"),
        Some("</s>"),
    ) {
        Ok(t) => t.render(&msgs, true).is_ok(),
        Err(_) => false,
    });
}
