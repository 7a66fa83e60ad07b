//! JSON-schema outputs (OpenAI's `response_format: {"type": "json_schema", ...}`, Ollama's
//! `"format": {schema}`), through llguidance, the structured-output engine of llama.cpp and
//! vLLM: it compiles the schema to a grammar and, at every step, gives the tokens that keep
//! the reply a prefix of a document the schema accepts.
//!
//! A [`SchemaEnv`] is the model's vocabulary as llguidance sees it (every token's bytes, in
//! a trie) and its parser factory: costly to build, so it is made once per loaded model, on
//! its first schema request, and shared by every request's [`SchemaConstraint`]. The reply
//! is still checked at the end as JSON mode's is (`json_mode`, `generation`): a reply the
//! length limit cut comes as it is.
//!
//! Whitespace between tokens of the document is bounded ([`MAX_BLANKS`] characters), as
//! JSON mode bounds it, so a small model cannot idle in blanks until the length limit.

use std::{rc::Rc, sync::Arc};

use llguidance::{
    api::TopLevelGrammar,
    toktrie::{ApproximateTokEnv, TokRxInfo, TokTrie, TokenId},
    Matcher, ParserFactory,
};
use minibar_text::TextModel;
use serde_json::Value;

use crate::json_mode::{TokenTexts, PARTIAL};

/// Blank characters allowed between two tokens of the document.
const MAX_BLANKS: usize = 24;

/// A model's vocabulary and parser factory for schema outputs.
pub(crate) struct SchemaEnv {
    factory: ParserFactory,
}

impl SchemaEnv {
    /// The environment of `model`'s tokenizer: its tokens' bytes, and its end-of-sequence
    /// tokens, allowed once the document is complete.
    pub fn new(model: &TextModel) -> Result<Self, String> {
        let n = model.tokenizer.get_vocab_size(true);
        let words = match token_bytes(model) {
            Ok(words) => words,
            // Not a byte-level or byte-fallback vocabulary: every token's decoded text,
            // specials (empty) never allowed.
            Err(_) => (0..n as u32)
                .map(|id| {
                    let text = model.decode(&[id], true).unwrap_or_default();
                    if text.contains(PARTIAL) {
                        Vec::new()
                    } else {
                        text.into_bytes()
                    }
                })
                .collect(),
        };
        let eos: Vec<u32> = model.eos.iter().copied().collect();
        Self::from_token_bytes(words, n, &eos)
    }

    /// The environment of a vocabulary given as each token's bytes (special tokens begin
    /// with [`TokTrie::SPECIAL_TOKEN_MARKER`]; empty: never allowed), of at least `n` tokens.
    pub fn from_token_bytes(
        mut words: Vec<Vec<u8>>,
        n: usize,
        eos: &[u32],
    ) -> Result<Self, String> {
        if words.len() < n {
            words.resize(n, Vec::new());
        }
        let vocab = words.len();
        let eos: Vec<TokenId> = eos
            .iter()
            .copied()
            .filter(|&e| (e as usize) < vocab)
            .collect();
        let Some(&first) = eos.first() else {
            return Err("the model has no end-of-sequence token".into());
        };
        for &e in &eos {
            // The trie needs bytes for each end token; a special token's stay as they are.
            if words[e as usize].first() != Some(&TokTrie::SPECIAL_TOKEN_MARKER) {
                let mut marked = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                marked.extend_from_slice(format!("<|end {e}|>").as_bytes());
                words[e as usize] = marked;
            }
        }
        let info = TokRxInfo::new(vocab as u32, first);
        // The trie asserts its invariants: a panic is an error here.
        let factory = llguidance::panic_utils::catch_unwind(move || {
            let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos);
            let env: llguidance::toktrie::TokEnv = Arc::new(ApproximateTokEnv::new(trie));
            let mut factory = ParserFactory::new_simple(&env)?;
            factory.quiet();
            Ok(factory)
        })
        .map_err(|e| format!("the vocabulary cannot be constrained: {e}"))?;
        Ok(Self { factory })
    }

    /// A constraint for a reply that starts now and must be a document `schema` accepts;
    /// llguidance's reason when it cannot compile the schema.
    pub fn constraint(&self, schema: &Value) -> Result<SchemaConstraint, String> {
        let mut schema = schema.clone();
        close_objects(&mut schema, true);
        if let Some(map) = schema.as_object_mut() {
            map.entry("x-guidance").or_insert_with(|| {
                serde_json::json!({
                    "whitespace_pattern": format!("[\\x20\\x0A\\x0D\\x09]{{1,{MAX_BLANKS}}}")
                })
            });
        }
        let parser = self
            .factory
            .create_parser(TopLevelGrammar::from_json_schema(schema))
            .map_err(|e| e.to_string())?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(e);
        }
        Ok(SchemaConstraint {
            matcher,
            vocab: self.factory.tok_env().tok_trie().vocab_size(),
        })
    }
}

/// One sequence's schema constraint.
pub(crate) struct SchemaConstraint {
    matcher: Matcher,
    /// Tokens the vocabulary has (logits may have more, never allowed).
    vocab: usize,
}

impl SchemaConstraint {
    /// An additive mask for `vocab` logits, as [`crate::json_mode::JsonConstraint::mask`]:
    /// the end-of-sequence tokens only where the document may end. `None` when the matcher
    /// failed or allows nothing (sampling then goes unconstrained; the check at the end
    /// still applies).
    pub fn mask(&mut self, vocab: usize) -> Option<Vec<f32>> {
        let allowed = self.matcher.compute_mask_or_eos().ok()?;
        let mut mask = vec![f32::NEG_INFINITY; vocab];
        let mut any = false;
        allowed.iter_set_entries(|id| {
            if id < vocab.min(self.vocab) {
                mask[id] = 0.0;
                any = true;
            }
        });
        any.then_some(mask)
    }

    /// Takes the token chosen (a token the mask did not allow puts the matcher in error,
    /// and the rest of the reply goes unconstrained).
    pub fn accept(&mut self, token: u32) {
        let _ = self.matcher.consume_token(token);
    }

    /// Whether the document is complete (may end here).
    #[cfg(test)]
    pub fn accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }
}

/// Gives every object schema with `properties` and no word on other keys
/// `"additionalProperties": false`, as llama.cpp's and Ollama's schema outputs do: JSON
/// Schema's default (any other key allowed) lets a model add keys until the length limit.
/// Not for the direct parts of an `allOf` (each would forbid the others' properties).
fn close_objects(schema: &mut Value, here: bool) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    let open_keys = [
        "additionalProperties",
        "patternProperties",
        "unevaluatedProperties",
    ];
    if here && map.contains_key("properties") && !open_keys.iter().any(|k| map.contains_key(*k)) {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Some(schemas) = value.as_object_mut() {
                    schemas.values_mut().for_each(|s| close_objects(s, true));
                }
            }
            "items" | "prefixItems" | "anyOf" | "oneOf" | "allOf" => {
                let parts = key != "allOf";
                match value {
                    Value::Array(schemas) => {
                        schemas.iter_mut().for_each(|s| close_objects(s, parts))
                    }
                    other => close_objects(other, true),
                }
            }
            "additionalProperties"
            | "additionalItems"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames"
            | "unevaluatedItems" => close_objects(value, true),
            // Data (`const`, `enum`, `default`, `examples`) and everything else as it is.
            _ => {}
        }
    }
}

/// Every token's bytes, from the tokenizer's own description (byte-level and byte-fallback
/// vocabularies), special tokens marked.
fn token_bytes(model: &TextModel) -> Result<Vec<Vec<u8>>, String> {
    let json = model
        .tokenizer
        .to_string(false)
        .map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    // The parser asserts on names it does not expect: a panic is an error here.
    llguidance::panic_utils::catch_unwind(std::panic::AssertUnwindSafe(|| {
        llguidance::token_bytes_from_tokenizer_json(&json)
    }))
    .map_err(|e| e.to_string())
}

/// A loaded model's vocabulary for constrained replies, each part made on the first request
/// that needs it.
#[derive(Default)]
pub(crate) struct Vocabulary {
    texts: Option<Rc<TokenTexts>>,
    schema: Option<Rc<Result<SchemaEnv, String>>>,
}

impl Vocabulary {
    /// Every token's text (JSON mode, forced calls).
    pub fn texts(&mut self, model: &TextModel) -> Rc<TokenTexts> {
        self.texts
            .get_or_insert_with(|| Rc::new(TokenTexts::new(model)))
            .clone()
    }

    /// The schema environment, or why the vocabulary cannot be constrained.
    pub fn schema(&mut self, model: &TextModel) -> Rc<Result<SchemaEnv, String>> {
        self.schema
            .get_or_insert_with(|| Rc::new(SchemaEnv::new(model)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One token per printable ASCII character, a few words, and an end token.
    fn env() -> (SchemaEnv, Vec<Vec<u8>>) {
        let mut words: Vec<Vec<u8>> = (0x20u8..0x7f).map(|b| vec![b]).collect();
        for w in ["{\"", "\":", "red", "green", "\"}", "  "] {
            words.push(w.as_bytes().to_vec());
        }
        words.push(b"\xff<|eos|>".to_vec());
        words.push(b"\n".to_vec());
        let eos = words.len() as u32 - 2;
        (
            SchemaEnv::from_token_bytes(words.clone(), 0, &[eos]).unwrap(),
            words,
        )
    }

    fn id(words: &[Vec<u8>], w: &str) -> u32 {
        words.iter().position(|x| x == w.as_bytes()).unwrap() as u32
    }

    fn allowed(c: &mut SchemaConstraint, words: &[Vec<u8>]) -> Vec<String> {
        let m = c.mask(words.len()).unwrap();
        (0..words.len())
            .filter(|&i| m[i] == 0.0)
            .map(|i| String::from_utf8_lossy(&words[i]).into_owned())
            .collect()
    }

    fn feed(c: &mut SchemaConstraint, words: &[Vec<u8>], text: &[&str]) {
        for t in text {
            let m = c.mask(words.len()).unwrap();
            let i = id(words, t);
            assert_eq!(m[i as usize], 0.0, "{t:?} should be allowed");
            c.accept(i);
        }
    }

    fn schema() -> Value {
        json!({"type": "object",
               "properties": {"color": {"enum": ["red", "green"]}, "n": {"type": "integer"}},
               "required": ["color", "n"], "additionalProperties": false})
    }

    #[test]
    fn the_mask_follows_the_schema_and_allows_the_end_only_when_complete() {
        let (env, words) = env();
        let mut c = env.constraint(&schema()).unwrap();
        let first = allowed(&mut c, &words);
        assert!(first.contains(&"{".to_owned()), "{first:?}");
        assert!(!first.contains(&"r".to_owned()), "{first:?}");
        assert!(!first.contains(&"\u{fffd}<|eos|>".to_owned()));
        feed(
            &mut c,
            &words,
            &["{\"", "c", "o", "l", "o", "r", "\":", "\""],
        );
        let value = allowed(&mut c, &words);
        assert!(value.contains(&"red".to_owned()) && value.contains(&"g".to_owned()));
        assert!(
            !value.contains(&"b".to_owned()),
            "only the enum's values: {value:?}"
        );
        feed(&mut c, &words, &["red", "\"", ",", "\"", "n", "\":", "4"]);
        let number = allowed(&mut c, &words);
        assert!(number.contains(&"2".to_owned()) && !number.contains(&".".to_owned()));
        assert!(!c.accepting());
        feed(&mut c, &words, &["2", "}"]);
        assert!(c.accepting());
        let end = allowed(&mut c, &words);
        assert!(end.contains(&"\u{fffd}<|eos|>".to_owned()), "{end:?}");
        assert!(
            end.iter()
                .all(|t| t.starts_with('\u{fffd}') || t.trim().is_empty()),
            "nothing but blanks after the object: {end:?}"
        );
    }

    #[test]
    fn a_missing_required_property_keeps_the_object_open() {
        let (env, words) = env();
        let mut c = env.constraint(&schema()).unwrap();
        let color = ["{\"", "c", "o", "l", "o", "r", "\":", "\"", "red", "\""];
        feed(&mut c, &words, &color);
        let next = allowed(&mut c, &words);
        assert!(next.contains(&",".to_owned()), "{next:?}");
        assert!(!next.contains(&"}".to_owned()), "n is required: {next:?}");
        assert!(!c.accepting());
    }

    #[test]
    fn objects_without_a_word_on_other_keys_are_closed() {
        let mut schema = json!({
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"x": {"const": {"properties": {}}}}},
                           "b": {"type": "object", "properties": {}, "additionalProperties": true}},
            "$defs": {"d": {"properties": {"y": {}}}},
            "allOf": [{"properties": {"z": {}}}],
        });
        close_objects(&mut schema, true);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["a"]["additionalProperties"], false);
        assert_eq!(schema["properties"]["b"]["additionalProperties"], true);
        assert_eq!(schema["$defs"]["d"]["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["a"]["properties"]["x"]["const"],
            json!({"properties": {}})
        );
        assert!(schema["allOf"][0].get("additionalProperties").is_none());
        let (env, words) = env();
        let mut c = env
            .constraint(&json!({"properties": {"n": {"type": "integer"}}}))
            .unwrap();
        feed(&mut c, &words, &["{\"", "n", "\":", "1", "}"]);
        let mut c = env
            .constraint(&json!({"properties": {"n": {"type": "integer"}}}))
            .unwrap();
        feed(&mut c, &words, &["{\"", "n", "\":", "1"]);
        assert!(
            !allowed(&mut c, &words).contains(&",".to_owned()),
            "no other key"
        );
    }

    #[test]
    fn the_default_models_tokens_spell_a_valid_reply_and_then_may_end() {
        let Some(gguf) = minibar_testkit::default_gguf() else {
            return;
        };
        let model = TextModel::open(&gguf).unwrap();
        let started = std::time::Instant::now();
        let env = SchemaEnv::new(&model).unwrap();
        eprintln!("schema environment built in {:?}", started.elapsed());
        let mut c = env.constraint(&schema()).unwrap();
        let vocab = model.tokenizer.get_vocab_size(true);
        let reply = r#"{"color": "green", "n": -42}"#;
        for id in model.encode(reply, false).unwrap() {
            assert!(!c.accepting());
            let mask = c.mask(vocab).unwrap();
            assert_eq!(mask[id as usize], 0.0, "{:?}", model.decode(&[id], false));
            c.accept(id);
        }
        assert!(c.accepting());
        let mask = c.mask(vocab).unwrap();
        for &eos in &model.eos {
            assert_eq!(mask[eos as usize], 0.0, "end of sequence {eos}");
        }
        let wrong = model.encode(r#"{"color": "blue"#, false).unwrap();
        let mut c = env.constraint(&schema()).unwrap();
        let ok = wrong.iter().all(|&id| {
            let allowed = c.mask(vocab).unwrap()[id as usize] == 0.0;
            c.accept(id);
            allowed
        });
        assert!(!ok, "blue is not in the enum");
        // An emoji is split over tokens that are parts of its bytes: they must be allowed.
        let mut c = env.constraint(&json!({"const": "🙂 ok"})).unwrap();
        let ids = model.encode("\"🙂 ok\"", false).unwrap();
        let partial = |&id: &u32| model.decode(&[id], false).unwrap().contains(PARTIAL);
        assert!(ids.iter().any(partial), "the emoji is split");
        for id in ids {
            assert_eq!(c.mask(vocab).unwrap()[id as usize], 0.0, "token {id}");
            c.accept(id);
        }
        assert!(c.accepting());
    }

    #[test]
    fn blanks_are_bounded() {
        let (env, words) = env();
        let mut c = env.constraint(&schema()).unwrap();
        feed(&mut c, &words, &["{"]);
        for _ in 0..MAX_BLANKS {
            feed(&mut c, &words, &[" "]);
        }
        let next = allowed(&mut c, &words);
        assert!(!next.contains(&" ".to_owned()), "{next:?}");
        assert!(next.contains(&"\"".to_owned()), "{next:?}");
    }

    #[test]
    fn a_schema_llguidance_cannot_compile_is_refused_with_its_reason() {
        let (env, _) = env();
        let err = env
            .constraint(&json!({"type": "object", "properties": {"a": {"type": "nope"}}}))
            .err()
            .expect("an unknown type is refused");
        assert!(err.to_lowercase().contains("nope"), "{err}");
        assert!(env.constraint(&json!({"$ref": "#/$defs/missing"})).is_err());
    }
}
