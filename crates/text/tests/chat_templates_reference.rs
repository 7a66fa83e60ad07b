//! Chat templates rendered by minibar-text against transformers' `apply_chat_template`.

mod common;

use minibar_text::chat::RenderOptions;
use minibar_text::{ChatTemplate, GgufMetadata, Message, CHATML_FALLBACK};
use serde_json::{json, Value};

/// A template under test with the special-token strings its model defines.
struct Case {
    name: String,
    source: String,
    bos: Option<&'static str>,
    eos: Option<&'static str>,
}

fn fixture_templates() -> Vec<Case> {
    let t = |file: &str, bos, eos| Case {
        name: file.to_string(),
        source: std::fs::read_to_string(common::fixture(&format!("templates/{file}"))).unwrap(),
        bos,
        eos,
    };
    vec![
        t(
            "meta-llama-Llama-3.2-3B-Instruct.jinja",
            Some("<|begin_of_text|>"),
            Some("<|eot_id|>"),
        ),
        t("Qwen-Qwen3-0.6B.jinja", None, Some("<|im_end|>")),
        t("Qwen-Qwen2.5-7B-Instruct.jinja", None, Some("<|im_end|>")),
        t("google-gemma-2-2b-it.jinja", Some("<bos>"), Some("<eos>")),
        t(
            "microsoft-Phi-3.5-mini-instruct.jinja",
            Some("<s>"),
            Some("<|endoftext|>"),
        ),
        t(
            "mistralai-Mistral-Nemo-Instruct-2407.jinja",
            Some("<s>"),
            Some("</s>"),
        ),
        t("HuggingFaceTB-SmolLM3-3B.jinja", None, Some("<|im_end|>")),
        t(
            "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
            Some("<\u{ff5c}begin\u{2581}of\u{2581}sentence\u{ff5c}>"),
            Some("<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>"),
        ),
        t(
            "ibm-granite-granite-3.3-2B-Instruct.jinja",
            None,
            Some("<|end_of_text|>"),
        ),
        Case {
            name: "chatml-fallback".into(),
            source: CHATML_FALLBACK.into(),
            bos: None,
            eos: None,
        },
    ]
}

/// Conversations every template renders, with whether to open the assistant's turn.
fn conversations() -> Vec<(Vec<Message>, bool)> {
    vec![
        (vec![Message::user("Hello! What's 2+2?")], true),
        (
            vec![Message::system("You are terse."), Message::user("Hi")],
            true,
        ),
        (
            vec![
                Message::system("You are a helpful assistant."),
                Message::user("Hi"),
                Message::assistant("Hi! How can I help?"),
                Message::user("Tell me a joke 😀 about \"quotes\" & <tags>\n  indented"),
            ],
            true,
        ),
        (
            vec![
                Message::user("Capital of France?"),
                Message::assistant("Paris."),
            ],
            false,
        ),
        (
            vec![Message::user("only user, no generation prompt")],
            false,
        ),
    ]
}

/// Template-specific variables to try besides none; date_string pins Llama 3's date line.
fn extras(name: &str) -> Vec<Value> {
    let mut v = vec![json!({"date_string": "26 Jul 2024"})];
    if name.starts_with("Qwen-Qwen2.5")
        || name.starts_with("meta-llama")
        || name.starts_with("Qwen-Qwen3")
    {
        // Tool schemas go through the template's tojson, which must print as Python's json.dumps.
        let tool = json!({"type": "function", "function": {
            "name": "get_weather",
            "description": "Météo for a city — returns °C",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "days": {"type": "integer", "minimum": 1, "maximum": 7.5},
                "units": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"]}}});
        v.push(json!({"date_string": "26 Jul 2024", "tools": [tool]}));
    }
    if name.starts_with("Qwen-Qwen3") || name.starts_with("HuggingFaceTB-SmolLM3") {
        v.push(json!({"date_string": "26 Jul 2024", "enable_thinking": false}));
        v.push(json!({"date_string": "26 Jul 2024", "enable_thinking": true}));
    }
    v
}

fn compare(cases: Vec<Case>) {
    let Some(python) = minibar_testkit::reference_python() else {
        return;
    };
    // transformers needs a tokenizer to call apply_chat_template on; any valid one will do.
    let dir = tempfile::tempdir().unwrap();
    let tok_path = dir.path().join("tokenizer.json");
    let tokenizer = minibar_text::Tokenizer::new(tokenizers::models::bpe::BPE::default());
    tokenizer.save(&tok_path, false).unwrap();

    let mut spec_cases = Vec::new();
    let mut ours = Vec::new();
    for case in &cases {
        let template = ChatTemplate::new(&case.source, case.bos, case.eos)
            .unwrap_or_else(|e| panic!("{} does not compile: {e}", case.name));
        for (messages, add_generation_prompt) in conversations() {
            for extra in extras(&case.name) {
                let opts = RenderOptions {
                    add_generation_prompt,
                    extra: extra.as_object().unwrap().clone(),
                };
                ours.push((case.name.clone(), template.render_with(&messages, &opts)));
                spec_cases.push(json!({
                    "template": case.source,
                    "bos_token": case.bos,
                    "eos_token": case.eos,
                    "messages": messages,
                    "add_generation_prompt": add_generation_prompt,
                    "extra": extra,
                }));
            }
        }
    }
    let spec_path = dir.path().join("cases.json");
    std::fs::write(
        &spec_path,
        json!({"tokenizer_json": tok_path, "cases": spec_cases}).to_string(),
    )
    .unwrap();
    let reference = common::run_reference(&python, "chat_templates.py", &[spec_path.as_os_str()]);
    let reference = reference.as_array().unwrap();
    assert_eq!(reference.len(), ours.len());

    let mut failures = Vec::new();
    let mut rendered = 0;
    for (((name, ours), theirs), spec) in ours.iter().zip(reference).zip(&spec_cases) {
        match (
            ours,
            theirs.get("ok").and_then(Value::as_str),
            theirs.get("error").and_then(Value::as_str),
        ) {
            (Ok(a), Some(b), _) if a == b => rendered += 1,
            (Ok(a), Some(b), _) => failures.push(format!(
                "{name} {}:\n--- ours ---\n{a}\n--- transformers ---\n{b}",
                spec["messages"]
            )),
            (Err(e), _, Some(py)) => {
                // Both refuse: the template's own message must come through.
                let msg = py.split_once(": ").map_or(py, |(_, m)| m);
                if !e.to_string().contains(msg) {
                    failures.push(format!(
                        "{name}: both fail, but ours says {e} and transformers {py}"
                    ));
                }
            }
            (a, _, _) => failures.push(format!(
                "{name} {}: ours {a:?}, transformers {theirs}",
                spec["messages"]
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} renderings differ:\n{}",
        failures.len(),
        ours.len(),
        failures.join("\n\n")
    );
    println!(
        "{rendered} of {} renderings equal, the rest refused by both",
        ours.len()
    );
    assert!(
        rendered > 0,
        "no template rendered successfully on either side"
    );
}

#[test]
fn real_templates_match_transformers() {
    compare(fixture_templates());
}

#[test]
fn smollm2_gguf_template_matches_transformers() {
    let Some(path) = minibar_testkit::default_gguf() else {
        return;
    };
    let meta = GgufMetadata::open(path).unwrap();
    let source = meta
        .require_str("tokenizer.chat_template")
        .unwrap()
        .to_string();
    let case = Case {
        name: "smollm2-gguf".into(),
        source,
        bos: Some("<|im_start|>"),
        eos: Some("<|im_end|>"),
    };
    compare(vec![case]);
}
