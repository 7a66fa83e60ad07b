//! JSON mode (OpenAI's `response_format: {"type": "json_object"}`, Ollama's `"format":
//! "json"`). The client's messages ask for JSON (OpenAI refuses a request whose messages
//! never say "JSON", and so does this server). Generation is then constrained: at every step
//! a token is allowed only if its text keeps the reply a prefix of one JSON object
//! ([`JsonPrefix`]), and end-of-sequence only once the object is closed, so the reply parses
//! whatever the model's size. The reply is still checked at the end ([`object_in`]): a raw
//! prompt (Ollama's `raw`) is not constrained, and a reply cut by the length limit comes as
//! it is, as OpenAI's does; anything else without a JSON object is an error
//! ([`crate::ApiError::NotJson`]) rather than text the client would fail to parse.

use std::rc::Rc;

use serde_json::Value;

/// Whether the conversation mentions JSON, which OpenAI requires of JSON mode (without it,
/// a model may emit whitespace until the length limit).
pub(crate) fn mentions_json<'a>(texts: impl IntoIterator<Item = &'a str>) -> bool {
    texts
        .into_iter()
        .any(|t| t.to_ascii_lowercase().contains("json"))
}

/// The first JSON object in `text`: all of it when it is one, else the first `{` from
/// which a whole object parses (inside code fences or after a sentence).
pub(crate) fn object_in(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if serde_json::from_str::<Value>(trimmed).is_ok_and(|v| v.is_object()) {
        return Some(trimmed.to_owned());
    }
    let mut from = 0;
    while let Some(at) = trimmed[from..].find('{') {
        let start = from + at;
        let mut values = serde_json::Deserializer::from_str(&trimmed[start..]).into_iter::<Value>();
        if let Some(Ok(Value::Object(_))) = values.next() {
            return Some(trimmed[start..start + values.byte_offset()].to_owned());
        }
        from = start + 1;
    }
    None
}

/// The JSON document `text` is (a schema's reply: any value), else its first object.
pub(crate) fn document_in(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if serde_json::from_str::<Value>(trimmed).is_ok() {
        return Some(trimmed.to_owned());
    }
    object_in(text)
}

/// The start of a reply, for an error message.
pub(crate) fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(80).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// Where a JSON object being written is: a pushdown automaton over characters, small enough
/// to copy for every token of the vocabulary at every step (the stack is a bit set).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct JsonPrefix {
    /// Open containers, innermost in bit 0: 1 an object, 0 an array.
    stack: u64,
    depth: u8,
    state: State,
    /// Whitespace characters in a row outside strings (bounded: a model must not idle).
    blanks: u8,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Before the object.
    Start,
    /// A value must come (after `:`, or `,` in an array).
    Value,
    /// Just after `[`: a value or `]`.
    ValueOrClose,
    /// Just after `{`: a key or `}`.
    KeyOrClose,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value in a container: `,` or its closing bracket.
    CommaOrClose,
    /// In a string (a key or a value); `escape`: after `\`, `hex`: \u digits left.
    Str { key: bool, escape: bool, hex: u8 },
    /// In a number.
    Num(Num),
    /// In `true`, `false` or `null`: which, and how many letters are written.
    Literal { word: u8, at: u8 },
    /// The object is closed.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

const LITERALS: [&str; 3] = ["true", "false", "null"];
/// Blank characters in a row allowed outside strings.
const MAX_BLANKS: u8 = 24;
/// Nesting allowed (the stack's bits).
const MAX_DEPTH: u8 = 64;
/// A character a token's text stands for but cannot show (part of a multi-byte character):
/// acceptable only inside a string.
pub(crate) const PARTIAL: char = '\u{FFFD}';

impl JsonPrefix {
    /// Nothing written yet.
    pub fn new() -> Self {
        Self {
            stack: 0,
            depth: 0,
            state: State::Start,
            blanks: 0,
        }
    }

    /// Whether the object is complete.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes `text` if the reply stays a JSON-object prefix; returns false (and is then
    /// unspecified) if it would not.
    pub fn feed(&mut self, text: &str) -> bool {
        text.chars().all(|c| self.push(c))
    }

    fn in_object(&self) -> bool {
        self.stack & 1 == 1
    }

    fn open(&mut self, object: bool) -> bool {
        if self.depth >= MAX_DEPTH {
            return false;
        }
        self.stack = (self.stack << 1) | u64::from(object);
        self.depth += 1;
        self.state = if object {
            State::KeyOrClose
        } else {
            State::ValueOrClose
        };
        true
    }

    fn close(&mut self, object: bool) -> bool {
        if self.depth == 0 || self.in_object() != object {
            return false;
        }
        self.stack >>= 1;
        self.depth -= 1;
        self.after_value();
        true
    }

    fn after_value(&mut self) {
        self.state = if self.depth == 0 {
            State::Done
        } else {
            State::CommaOrClose
        };
    }

    /// A value's first character.
    fn value(&mut self, c: char) -> bool {
        self.state = match c {
            '{' => return self.open(true),
            '[' => return self.open(false),
            '"' => State::Str {
                key: false,
                escape: false,
                hex: 0,
            },
            '-' => State::Num(Num::Minus),
            '0' => State::Num(Num::Zero),
            '1'..='9' => State::Num(Num::Int),
            't' => State::Literal { word: 0, at: 1 },
            'f' => State::Literal { word: 1, at: 1 },
            'n' => State::Literal { word: 2, at: 1 },
            _ => return false,
        };
        true
    }

    fn push(&mut self, c: char) -> bool {
        let blank = matches!(c, ' ' | '\n' | '\r' | '\t');
        let in_token = matches!(
            self.state,
            State::Str { .. } | State::Num(_) | State::Literal { .. }
        );
        if blank && !in_token {
            if self.state == State::Done || self.blanks >= MAX_BLANKS {
                return false;
            }
            self.blanks += 1;
            return true;
        }
        if !in_token {
            self.blanks = 0;
        }
        if c == PARTIAL
            && !matches!(
                self.state,
                State::Str {
                    escape: false,
                    hex: 0,
                    ..
                }
            )
        {
            return false;
        }
        match self.state {
            State::Start => c == '{' && self.open(true),
            State::Value => self.value(c),
            State::ValueOrClose => c == ']' && self.close(false) || self.value(c),
            State::KeyOrClose | State::Key => {
                if c == '"' {
                    self.state = State::Str {
                        key: true,
                        escape: false,
                        hex: 0,
                    };
                    true
                } else {
                    self.state == State::KeyOrClose && c == '}' && self.close(true)
                }
            }
            State::Colon => {
                let ok = c == ':';
                self.state = State::Value;
                ok
            }
            State::CommaOrClose => match c {
                ',' => {
                    self.state = if self.in_object() {
                        State::Key
                    } else {
                        State::Value
                    };
                    true
                }
                '}' => self.close(true),
                ']' => self.close(false),
                _ => false,
            },
            State::Str { key, escape, hex } => {
                if hex > 0 {
                    self.state = State::Str {
                        key,
                        escape: false,
                        hex: hex - 1,
                    };
                    return c.is_ascii_hexdigit();
                }
                if escape {
                    let (ok, hex) = match c {
                        'u' => (true, 4),
                        '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => (true, 0),
                        _ => (false, 0),
                    };
                    self.state = State::Str {
                        key,
                        escape: false,
                        hex,
                    };
                    return ok;
                }
                match c {
                    '"' if key => self.state = State::Colon,
                    '"' => self.after_value(),
                    '\\' => {
                        self.state = State::Str {
                            key,
                            escape: true,
                            hex: 0,
                        }
                    }
                    c if (c as u32) < 0x20 => return false,
                    _ => {}
                }
                true
            }
            State::Num(n) => {
                let next = match (n, c) {
                    (Num::Minus, '0') => Some(Num::Zero),
                    (Num::Minus, '1'..='9') => Some(Num::Int),
                    (Num::Int, '0'..='9') => Some(Num::Int),
                    (Num::Zero | Num::Int, '.') => Some(Num::Dot),
                    (Num::Dot | Num::Frac, '0'..='9') => Some(Num::Frac),
                    (Num::Zero | Num::Int | Num::Frac, 'e' | 'E') => Some(Num::E),
                    (Num::E, '+' | '-') => Some(Num::ESign),
                    (Num::E | Num::ESign | Num::Exp, '0'..='9') => Some(Num::Exp),
                    _ => None,
                };
                match next {
                    Some(n) => {
                        self.state = State::Num(n);
                        true
                    }
                    // The number ended; the character belongs to what follows it.
                    None if matches!(n, Num::Zero | Num::Int | Num::Frac | Num::Exp) => {
                        self.after_value();
                        self.push(c)
                    }
                    None => false,
                }
            }
            State::Literal { word, at } => {
                let text = LITERALS[word as usize].as_bytes();
                if text.get(at as usize) != Some(&(c as u8)) || !c.is_ascii() {
                    return false;
                }
                if at as usize + 1 == text.len() {
                    self.after_value();
                } else {
                    self.state = State::Literal { word, at: at + 1 };
                }
                true
            }
            State::Done => false,
        }
    }
}

/// Every token's text, for the constraint: computed once per loaded model, on its first
/// JSON request.
pub(crate) struct TokenTexts {
    texts: Vec<Box<str>>,
    eos: Vec<u32>,
}

impl TokenTexts {
    /// The texts of `model`'s vocabulary (special tokens are empty: never allowed, except
    /// the end-of-sequence ones once the object is closed).
    pub fn new(model: &minibar_text::TextModel) -> Self {
        let n = model.tokenizer.get_vocab_size(true) as u32;
        let texts = (0..n)
            .map(|id| {
                model
                    .decode(&[id], true)
                    .unwrap_or_default()
                    .into_boxed_str()
            })
            .collect();
        Self {
            texts,
            eos: model.eos.iter().copied().collect(),
        }
    }

    /// Texts given directly (a test's small vocabulary).
    #[cfg(test)]
    pub fn from_texts(texts: &[&str], eos: Vec<u32>) -> Self {
        Self {
            texts: texts.iter().map(|&t| Box::from(t)).collect(),
            eos,
        }
    }

    /// Every token's text, by id.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.texts.iter().map(|t| &**t)
    }

    /// A token's text ("" for a special or unknown one).
    pub fn text(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", |t| t)
    }
}

/// One sequence's constraint: the tokens it may take next.
pub(crate) struct JsonConstraint {
    texts: Rc<TokenTexts>,
    state: JsonPrefix,
}

impl JsonConstraint {
    /// A constraint for a reply that starts now.
    pub fn new(texts: Rc<TokenTexts>) -> Self {
        Self {
            texts,
            state: JsonPrefix::new(),
        }
    }

    /// An additive mask for `vocab` logits: 0 where a token may come next, minus infinity
    /// elsewhere. `None` when no token could (then sampling goes unconstrained rather than
    /// picking among impossibles; the check at the end still applies).
    pub fn mask(&self, vocab: usize) -> Option<Vec<f32>> {
        let mut mask = vec![f32::NEG_INFINITY; vocab];
        let mut any = false;
        if self.state.done() {
            for &id in &self.texts.eos {
                if let Some(m) = mask.get_mut(id as usize) {
                    *m = 0.0;
                    any = true;
                }
            }
            return any.then_some(mask);
        }
        for (id, text) in self.texts.texts.iter().enumerate().take(vocab) {
            let mut state = self.state;
            if !text.is_empty() && state.feed(text) {
                mask[id] = 0.0;
                any = true;
            }
        }
        any.then_some(mask)
    }

    /// Takes the token chosen.
    pub fn accept(&mut self, token: u32) {
        if let Some(text) = self.texts.texts.get(token as usize) {
            self.state.feed(text);
        }
    }

    /// Whether the object is closed.
    pub fn done(&self) -> bool {
        self.state.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_is_found_in_fences_and_prose() {
        assert_eq!(object_in(" {\"a\": 1}\n").as_deref(), Some("{\"a\": 1}"));
        assert_eq!(
            object_in("```json\n{\"a\": [1, {\"b\": \"}\"}]}\n```").as_deref(),
            Some("{\"a\": [1, {\"b\": \"}\"}]}")
        );
        assert_eq!(
            object_in("Sure! {not json} Here: {\"ok\": true} bye").as_deref(),
            Some("{\"ok\": true}")
        );
        assert_eq!(object_in("[1, 2]"), None);
        assert_eq!(object_in("no json here"), None);
        assert_eq!(object_in("{\"cut\": "), None);
    }

    #[test]
    fn a_document_may_be_any_value() {
        assert_eq!(document_in(" [1, \"a\"] ").as_deref(), Some("[1, \"a\"]"));
        assert_eq!(document_in("\"red\"").as_deref(), Some("\"red\""));
        assert_eq!(document_in("ok: {\"a\": 1}").as_deref(), Some("{\"a\": 1}"));
        assert_eq!(document_in("[1, "), None);
    }

    #[test]
    fn json_must_be_asked_for() {
        assert!(mentions_json(["Reply in Json please"]));
        assert!(!mentions_json(["Reply briefly", "ok"]));
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(excerpt("abc"), "abc");
        assert_eq!(excerpt(&"x".repeat(100)).chars().count(), 81);
    }

    fn prefix_ok(text: &str) -> bool {
        JsonPrefix::new().feed(text)
    }

    #[test]
    fn json_object_prefixes_are_accepted_and_nothing_else() {
        for ok in [
            "",
            "  {",
            "{\"a\": 1",
            "{\"a\": -0.5e+3, \"b\": [true, false, null, {\"c\": \"x\\u00e9\\n\"}]",
            "{\"a\": [], \"b\": {}}",
            "{\"k\": \"\u{FFFD}\"",
        ] {
            assert!(prefix_ok(ok), "{ok}");
        }
        for bad in [
            "[1]",
            "\"text\"",
            "Sure! {",
            "{a: 1}",
            "{\"a\" 1}",
            "{\"a\": 01}",
            "{\"a\": tru }",
            "{\"a\": 1,}",
            "{\"a\": [1,]",
            "{\"a\": 1]",
            "{\"a\": \"\\x\"}",
            "{\"a\": \"line\nbreak\"}",
            "{} {",
            "{\"k\": \u{FFFD}",
        ] {
            assert!(!prefix_ok(bad), "{bad}");
        }
        let mut done = JsonPrefix::new();
        assert!(done.feed("{\"a\": {\"b\": 2}}"));
        assert!(done.done());
        let mut after = done;
        assert!(!after.feed(" "), "nothing after the object");
        let mut open = JsonPrefix::new();
        assert!(open.feed("{\"a\": 12"));
        assert!(!open.done());
    }

    #[test]
    fn endless_blanks_are_cut_off() {
        assert!(prefix_ok(&format!("{{{}", " ".repeat(MAX_BLANKS as usize))));
        assert!(!prefix_ok(&format!(
            "{{{}",
            " ".repeat(MAX_BLANKS as usize + 1)
        )));
        // Inside strings spaces are text, not blanks.
        assert!(prefix_ok(&format!("{{\"a\": \"{}\"", " ".repeat(100))));
    }

    #[test]
    fn the_mask_allows_what_continues_the_object_and_eos_only_at_the_end() {
        let texts = Rc::new(TokenTexts {
            texts: ["{", "\"a\"", ":", " 1", "}", "hello", "", "}}"]
                .map(Box::from)
                .to_vec(),
            eos: vec![6],
        });
        let mut c = JsonConstraint::new(texts);
        let allowed = |c: &JsonConstraint| -> Vec<usize> {
            let m = c.mask(9).unwrap();
            (0..9).filter(|&i| m[i] == 0.0).collect()
        };
        assert_eq!(allowed(&c), vec![0]);
        c.accept(0);
        assert_eq!(allowed(&c), vec![1, 4]);
        for t in [1, 2, 3] {
            c.accept(t);
        }
        assert_eq!(allowed(&c), vec![4]);
        c.accept(4);
        assert_eq!(allowed(&c), vec![6], "only the end of sequence");
    }
}
