//! Tool calling: tool definitions into the prompt, and tool calls back out of the reply.
//!
//! The one decision here is [`ToolSupport::of`]: from a model's chat template, how it takes
//! tools and how its replies carry calls. Templates that render `tools` themselves come in
//! three families (the ones in models.toml):
//!
//! - [`ToolSyntax::Hermes`] (Qwen 2.5 and 3, and others after Hermes): each call is
//!   `<tool_call>{"name": .., "arguments": {..}}</tool_call>`, anywhere in the reply.
//! - [`ToolSyntax::Llama3Json`] (Llama 3.1 to 3.3): the whole reply is
//!   `{"name": .., "parameters": {..}}` (several joined by `;`), possibly after
//!   `<|python_tag|>`.
//! - [`ToolSyntax::MistralJson`]: the whole reply is `[TOOL_CALLS][{"name": .., "arguments":
//!   {..}}, ..]`; `[TOOL_CALLS]` is a control token, so the detokenized text may lack it.
//!
//! A template that does not render tools (SmolLM2's, Gemma's) gets them the way LM Studio
//! and others do for such models: described in the system message, with the Hermes
//! instructions Qwen's template uses, and calls in history written as Hermes text
//! ([`ToolSupport::Injected`]).
//!
//! Invariant: text that is not a well-formed call is never dropped; it stays content.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::chat::{ChatTemplate, RenderOptions};
use crate::error::TextError;

/// How a model's replies carry tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSyntax {
    /// `<tool_call>{json}</tool_call>` (Qwen, Hermes).
    Hermes,
    /// The reply is `{"name", "parameters"}` JSON (Llama 3.1+).
    Llama3Json,
    /// The reply is `[TOOL_CALLS]` and a JSON array (Mistral).
    MistralJson,
}

/// How a chat template takes tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSupport {
    /// The template renders `tools` and tool messages itself; replies use this syntax.
    Native(ToolSyntax),
    /// The template ignores tools: they are described in the system message, and replies
    /// use the Hermes syntax asked for there.
    Injected,
}

impl ToolSupport {
    /// How `template` takes tools (the markers its source writes decide).
    pub fn of(template: &ChatTemplate) -> Self {
        let src = template.source();
        if template.is_fallback() || !src.contains("tools") {
            return Self::Injected;
        }
        if src.contains("<tool_call>") {
            Self::Native(ToolSyntax::Hermes)
        } else if src.contains("[TOOL_CALLS]") {
            Self::Native(ToolSyntax::MistralJson)
        } else if src.contains("<|python_tag|>") || src.contains("\"parameters\": ") {
            Self::Native(ToolSyntax::Llama3Json)
        } else {
            Self::Injected
        }
    }

    /// The syntax replies use.
    pub fn syntax(self) -> ToolSyntax {
        match self {
            Self::Native(s) => s,
            Self::Injected => ToolSyntax::Hermes,
        }
    }
}

/// A reply that must be a call (OpenAI's `tool_choice` "required" or a named function):
/// the prompt ends inside the call, so the model writes only what is left of the name and
/// the arguments object, and the server closes the call. Reply text is
/// `opening + head + arguments + closing`, which [`parse`] reads as the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForcedCall {
    /// Appended to the prompt after the generation prompt: the reply starts here.
    pub opening: String,
    /// What the model must write next, one per function it may call, before the arguments
    /// object (empty when there is one function: its name is in `opening`).
    pub heads: Vec<String>,
    /// Written by the server once the arguments object is complete.
    pub closing: &'static str,
}

impl ToolSyntax {
    /// How a reply that must call one of `names` (not empty) begins and ends in this syntax.
    pub fn forced_call(self, names: &[&str]) -> ForcedCall {
        let (open, key, closing) = match self {
            Self::Hermes => ("<tool_call>\n{\"name\":", "arguments", "}\n</tool_call>"),
            Self::Llama3Json => ("{\"name\":", "parameters", "}"),
            Self::MistralJson => ("[TOOL_CALLS][{\"name\":", "arguments", "}]"),
        };
        // The name as a JSON string (escaped), then the arguments' key; the object follows.
        let head = |name: &&str| format!(" {}, \"{key}\":", Value::from(*name));
        match names {
            [one] => ForcedCall {
                opening: format!("{open}{}", head(one)),
                heads: Vec::new(),
                closing,
            },
            _ => ForcedCall {
                opening: open.to_owned(),
                heads: names.iter().map(head).collect(),
                closing,
            },
        }
    }
}

/// A tool call: which function, with which arguments (a JSON object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, as the client will refer to it in the tool's reply.
    pub id: String,
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON object.
    pub arguments: Value,
}

/// One message of a conversation that may involve tools.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turn {
    /// "system", "user", "assistant" or "tool".
    pub role: String,
    /// The text.
    pub content: String,
    /// Calls an assistant message made.
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    pub tool_call_id: Option<String>,
    /// For a tool message: the function that answered.
    pub name: Option<String>,
}

impl Turn {
    /// A message with only a role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            ..Self::default()
        }
    }

    /// The message as transformers' templates read it: `tool_calls` only when there are
    /// some (Llama's template tests for the key), arguments as objects.
    fn to_template(&self) -> Value {
        let mut m = Map::new();
        m.insert("role".into(), self.role.clone().into());
        m.insert("content".into(), self.content.clone().into());
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            m.insert("tool_calls".into(), calls.into());
        }
        if let Some(id) = &self.tool_call_id {
            m.insert("tool_call_id".into(), id.clone().into());
        }
        if let Some(name) = &self.name {
            m.insert("name".into(), name.clone().into());
        }
        Value::Object(m)
    }
}

/// Checks OpenAI-shaped tool definitions (`{"type": "function", "function": {"name", ..}}`);
/// the error says which one is wrong.
pub fn validate_tools(tools: &[Value]) -> Result<(), String> {
    for (i, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str);
        let name = tool
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str);
        if kind != Some("function") || name.is_none_or(str::is_empty) {
            return Err(format!(
                "tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": ..}}}}"
            ));
        }
    }
    Ok(())
}

/// Renders a conversation with its tools (none: `tools` is empty) for the model's turn.
pub fn render(
    template: &ChatTemplate,
    turns: &[Turn],
    tools: &[Value],
    add_generation_prompt: bool,
) -> Result<String, TextError> {
    let mut opts = RenderOptions {
        add_generation_prompt,
        ..RenderOptions::default()
    };
    let messages: Vec<Value> = match ToolSupport::of(template) {
        ToolSupport::Native(_) => {
            if !tools.is_empty() {
                opts.extra.insert("tools".into(), tools.to_vec().into());
            }
            turns.iter().map(Turn::to_template).collect()
        }
        ToolSupport::Injected => injected(turns, tools),
    };
    template.render_with(&messages, &opts)
}

/// Qwen 2.5's tool instructions, for templates without their own.
fn instructions(tools: &[Value]) -> String {
    let mut s = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for tool in tools {
        s.push('\n');
        s.push_str(&tool.to_string());
    }
    s.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and \
         arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    s
}

/// The conversation in plain messages: tools in the system message, calls and results as
/// Hermes text (results as user messages, which every template accepts).
fn injected(turns: &[Turn], tools: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(turns.len() + 1);
    let mut rest = turns;
    if !tools.is_empty() {
        let (system, after) = match turns.first() {
            Some(t) if t.role == "system" => (format!("{}\n\n", t.content), &turns[1..]),
            _ => (String::new(), turns),
        };
        out.push(json!({"role": "system", "content": system + &instructions(tools)}));
        rest = after;
    }
    for turn in rest {
        let (role, content) = match turn.role.as_str() {
            "tool" => (
                "user".to_string(),
                format!("<tool_response>\n{}\n</tool_response>", turn.content),
            ),
            _ => {
                let mut content = turn.content.clone();
                for call in &turn.tool_calls {
                    if !content.is_empty() {
                        content.push('\n');
                    }
                    let body = json!({"name": call.name, "arguments": call.arguments});
                    content.push_str(&format!("<tool_call>\n{body}\n</tool_call>"));
                }
                (turn.role.clone(), content)
            }
        };
        out.push(json!({"role": role, "content": content}));
    }
    out
}

/// A call as parsed from a reply, before the server gives it an id.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCall {
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON object.
    pub arguments: Value,
}

/// A reply split into its text and its calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedReply {
    /// What is not a call.
    pub content: String,
    /// The calls, in order.
    pub calls: Vec<ParsedCall>,
}

/// One call object: `name` and `arguments` (or Llama's `parameters`), the arguments an
/// object or a string holding one.
fn call_from(value: &Value) -> Option<ParsedCall> {
    let name = value.get("name")?.as_str()?.to_owned();
    let args = value.get("arguments").or_else(|| value.get("parameters"));
    let arguments = match args {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok()?,
        Some(v) => v.clone(),
    };
    arguments
        .is_object()
        .then_some(ParsedCall { name, arguments })
}

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";
const MISTRAL_TAG: &str = "[TOOL_CALLS]";

/// Splits a whole reply into text and calls.
pub fn parse(syntax: ToolSyntax, text: &str) -> ParsedReply {
    let mut stream = ToolCallStream::new(syntax);
    let mut reply = ParsedReply::default();
    for piece in stream.push(text).into_iter().chain(stream.finish()) {
        match piece {
            Piece::Text(t) => reply.content.push_str(&t),
            Piece::Call(c) => reply.calls.push(c),
        }
    }
    if !reply.calls.is_empty() {
        reply.content = reply.content.trim().to_owned();
    }
    reply
}

/// The calls in a whole-reply JSON form (Llama's or Mistral's), or `None` if it is not one.
fn whole_reply_calls(syntax: ToolSyntax, text: &str) -> Option<Vec<ParsedCall>> {
    let text = text.trim();
    match syntax {
        ToolSyntax::Hermes => None,
        ToolSyntax::Llama3Json => {
            let body = text.strip_prefix(PYTHON_TAG).unwrap_or(text).trim();
            // Several calls are joined by `;` (vLLM's reading of Llama's format).
            let mut calls = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                calls.push(call_from(&values.next()?.ok()?)?);
                rest = rest[values.byte_offset()..].trim_start();
                rest = rest.strip_prefix(';').unwrap_or(rest).trim_start();
            }
            (!calls.is_empty()).then_some(calls)
        }
        ToolSyntax::MistralJson => {
            let body = text.strip_prefix(MISTRAL_TAG).unwrap_or(text).trim();
            let values: Vec<Value> = serde_json::from_str(body).ok()?;
            let calls: Option<Vec<ParsedCall>> = values.iter().map(call_from).collect();
            calls.filter(|c| !c.is_empty())
        }
    }
}

/// What [`ToolCallStream`] lets out.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Text to show as content.
    Text(String),
    /// A complete call.
    Call(ParsedCall),
}

/// Where a [`ToolCallStream`] is.
#[derive(Debug)]
enum State {
    /// Hermes: outside a call; text flows, except what may begin `<tool_call>`.
    Text,
    /// Hermes: inside `<tool_call>`, collecting until `</tool_call>`.
    InCall,
    /// Whole-reply syntaxes: only whitespace so far; the first other character decides.
    Undecided,
    /// Whole-reply syntaxes: the reply looks like calls; held until the end.
    Holding,
    /// Whole-reply syntaxes: plain text; flows.
    Passing,
}

/// Splits a reply as it streams: text is let out as soon as it cannot be part of a call,
/// each call once it is complete.
#[derive(Debug)]
pub struct ToolCallStream {
    syntax: ToolSyntax,
    state: State,
    held: String,
}

impl ToolCallStream {
    /// A stream for replies in `syntax`.
    pub fn new(syntax: ToolSyntax) -> Self {
        let state = match syntax {
            ToolSyntax::Hermes => State::Text,
            _ => State::Undecided,
        };
        Self {
            syntax,
            state,
            held: String::new(),
        }
    }

    /// Takes the next piece of the reply; returns what can be let out now.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.held.push_str(text);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Text => {
                    if let Some(at) = self.held.find(HERMES_OPEN) {
                        let before: String = self.held.drain(..at).collect();
                        self.held.drain(..HERMES_OPEN.len());
                        emit(&mut out, before);
                        self.state = State::InCall;
                        continue;
                    }
                    let keep = partial_suffix(&self.held, HERMES_OPEN);
                    let free: String = self.held.drain(..self.held.len() - keep).collect();
                    emit(&mut out, free);
                    return out;
                }
                State::InCall => {
                    let Some(at) = self.held.find(HERMES_CLOSE) else {
                        return out;
                    };
                    let body: String = self.held.drain(..at).collect();
                    self.held.drain(..HERMES_CLOSE.len());
                    out.push(hermes_call(&body, true));
                    self.state = State::Text;
                }
                State::Undecided => {
                    let start = self.held.trim_start();
                    if start.is_empty() || is_prefix_of_marker(start) {
                        return out;
                    }
                    let looks_like_calls = match self.syntax {
                        ToolSyntax::Llama3Json => {
                            start.starts_with('{') || start.starts_with(PYTHON_TAG)
                        }
                        _ => start.starts_with('[') || start.starts_with(MISTRAL_TAG),
                    };
                    self.state = if looks_like_calls {
                        State::Holding
                    } else {
                        State::Passing
                    };
                }
                State::Holding => return out,
                State::Passing => {
                    emit(&mut out, std::mem::take(&mut self.held));
                    return out;
                }
            }
        }
    }

    /// The reply has ended: lets out what was held (a call the model left unclosed still
    /// counts when its JSON is complete; anything else is text).
    pub fn finish(&mut self) -> Vec<Piece> {
        let held = std::mem::take(&mut self.held);
        let mut out = Vec::new();
        match self.state {
            State::InCall => out.push(hermes_call(&held, false)),
            State::Holding => match whole_reply_calls(self.syntax, &held) {
                Some(calls) => out.extend(calls.into_iter().map(Piece::Call)),
                None => emit(&mut out, held),
            },
            State::Text | State::Undecided | State::Passing => emit(&mut out, held),
        }
        self.state = State::Passing;
        out
    }
}

/// A Hermes call's body as a call, or as the text it was (tags included) if it is not one.
fn hermes_call(body: &str, closed: bool) -> Piece {
    let parsed = serde_json::from_str::<Value>(body.trim())
        .ok()
        .as_ref()
        .and_then(call_from);
    match parsed {
        Some(call) => Piece::Call(call),
        None => Piece::Text(format!(
            "{HERMES_OPEN}{body}{}",
            if closed { HERMES_CLOSE } else { "" }
        )),
    }
}

fn emit(out: &mut Vec<Piece>, text: String) {
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
}

/// Whether `s` is a proper beginning of a marker a whole-reply syntax may start with.
fn is_prefix_of_marker(s: &str) -> bool {
    [PYTHON_TAG, MISTRAL_TAG]
        .iter()
        .any(|m| m.len() > s.len() && m.starts_with(s))
}

/// The length of the longest end of `s` that begins `marker` (held back: it may be the
/// start of the marker, completed by the next piece).
fn partial_suffix(s: &str, marker: &str) -> usize {
    (1..marker.len().min(s.len() + 1))
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && marker.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, arguments: Value) -> ParsedCall {
        ParsedCall {
            name: name.into(),
            arguments,
        }
    }

    #[test]
    fn hermes_calls_are_found_anywhere_and_other_text_stays() {
        let r = parse(
            ToolSyntax::Hermes,
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>{\"name\": \"now\", \"arguments\": \"{}\"}</tool_call>",
        );
        assert_eq!(r.content, "Let me check.");
        assert_eq!(
            r.calls,
            vec![
                call("get_weather", json!({"city": "Paris"})),
                call("now", json!({}))
            ]
        );
        let plain = parse(ToolSyntax::Hermes, "No tools <tool_ needed.");
        assert_eq!(plain.content, "No tools <tool_ needed.");
        assert!(plain.calls.is_empty());
    }

    #[test]
    fn a_malformed_or_unclosed_call_is_not_lost() {
        let bad = parse(
            ToolSyntax::Hermes,
            "<tool_call>{\"name\": oops}</tool_call>",
        );
        assert_eq!(bad.content, "<tool_call>{\"name\": oops}</tool_call>");
        assert!(bad.calls.is_empty());
        // Stopped at EOS before the closing tag, with complete JSON: still a call.
        let unclosed = parse(
            ToolSyntax::Hermes,
            "<tool_call>{\"name\": \"f\", \"arguments\": {}}",
        );
        assert_eq!(unclosed.calls, vec![call("f", json!({}))]);
        let cut = parse(ToolSyntax::Hermes, "<tool_call>{\"name\": \"f\", \"argu");
        assert_eq!(cut.content, "<tool_call>{\"name\": \"f\", \"argu");
    }

    #[test]
    fn streamed_hermes_text_flows_and_holds_back_only_a_possible_tag() {
        let mut s = ToolCallStream::new(ToolSyntax::Hermes);
        let mut pieces = Vec::new();
        let reply = "Sure <tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1}}</tool_call> done";
        // One character at a time, the hardest split.
        for c in reply.chars() {
            pieces.extend(s.push(&c.to_string()));
        }
        pieces.extend(s.finish());
        let text: String = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.as_str()),
                Piece::Call(_) => None,
            })
            .collect();
        assert_eq!(text, "Sure  done");
        let calls: Vec<_> = pieces
            .iter()
            .filter(|p| matches!(p, Piece::Call(_)))
            .collect();
        assert_eq!(calls, vec![&Piece::Call(call("f", json!({"x": 1})))]);
        // "Sure " was let out before the call completed.
        let mut s = ToolCallStream::new(ToolSyntax::Hermes);
        assert_eq!(s.push("Sure <tool"), vec![Piece::Text("Sure ".into())]);
    }

    #[test]
    fn llama_json_replies_are_calls_and_other_replies_text() {
        let r = parse(
            ToolSyntax::Llama3Json,
            "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
        );
        assert_eq!(r.calls, vec![call("get_weather", json!({"city": "Oslo"}))]);
        assert_eq!(r.content, "");
        let two = parse(
            ToolSyntax::Llama3Json,
            " {\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"k\": [1]}}",
        );
        assert_eq!(two.calls.len(), 2);
        let json_not_call = parse(ToolSyntax::Llama3Json, "{\"answer\": 42}");
        assert_eq!(json_not_call.content, "{\"answer\": 42}");
        assert!(json_not_call.calls.is_empty());
        let prose = parse(ToolSyntax::Llama3Json, "The weather is {sunny}.");
        assert_eq!(prose.content, "The weather is {sunny}.");
        // Prose streams at once; a JSON reply is held to the end.
        let mut s = ToolCallStream::new(ToolSyntax::Llama3Json);
        assert!(s.push("  ").is_empty());
        assert_eq!(s.push("Hi"), vec![Piece::Text("  Hi".into())]);
        let mut s = ToolCallStream::new(ToolSyntax::Llama3Json);
        assert!(s.push("{\"name\": \"a\",").is_empty());
        assert!(s.push(" \"parameters\": {}}").is_empty());
        assert_eq!(s.finish(), vec![Piece::Call(call("a", json!({})))]);
    }

    #[test]
    fn mistral_calls_with_or_without_the_control_token() {
        for text in [
            "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"q\": \"x\"}, \"id\": \"abcdefghi\"}]",
            " [{\"name\": \"f\", \"arguments\": {\"q\": \"x\"}}]",
        ] {
            let r = parse(ToolSyntax::MistralJson, text);
            assert_eq!(r.calls, vec![call("f", json!({"q": "x"}))], "{text}");
        }
        let list = parse(ToolSyntax::MistralJson, "[1, 2]");
        assert_eq!(list.content, "[1, 2]");
    }

    #[test]
    fn a_forced_call_parses_as_the_call_in_every_syntax() {
        for syntax in [
            ToolSyntax::Hermes,
            ToolSyntax::Llama3Json,
            ToolSyntax::MistralJson,
        ] {
            let named = syntax.forced_call(&["get_weather"]);
            assert!(named.heads.is_empty());
            let text = format!("{} {{\"city\": \"Oslo\"}}{}", named.opening, named.closing);
            let r = parse(syntax, &text);
            assert_eq!(
                r.calls,
                vec![call("get_weather", json!({"city": "Oslo"}))],
                "{text}"
            );
            assert_eq!(r.content, "", "{text}");

            let either = syntax.forced_call(&["a", "say \"b\""]);
            assert_eq!(either.heads.len(), 2);
            let text = format!(
                "{}{} {{}}{}",
                either.opening, either.heads[1], either.closing
            );
            let r = parse(syntax, &text);
            assert_eq!(r.calls, vec![call("say \"b\"", json!({}))], "{text}");
        }
    }

    fn template(file: &str) -> ChatTemplate {
        let path = format!(
            "{}/tests/fixtures/templates/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        ChatTemplate::new(
            &std::fs::read_to_string(path).unwrap(),
            Some("<s>"),
            Some("</s>"),
        )
        .unwrap()
    }

    #[test]
    fn the_template_decides_the_syntax() {
        use ToolSupport::*;
        let cases = [
            ("Qwen-Qwen2.5-7B-Instruct.jinja", Native(ToolSyntax::Hermes)),
            ("Qwen-Qwen3-0.6B.jinja", Native(ToolSyntax::Hermes)),
            (
                "meta-llama-Llama-3.2-3B-Instruct.jinja",
                Native(ToolSyntax::Llama3Json),
            ),
            (
                "mistralai-Mistral-Nemo-Instruct-2407.jinja",
                Native(ToolSyntax::MistralJson),
            ),
            ("google-gemma-2-2b-it.jinja", Injected),
        ];
        for (file, expected) in cases {
            assert_eq!(ToolSupport::of(&template(file)), expected, "{file}");
        }
        assert_eq!(ToolSupport::of(&ChatTemplate::chatml_fallback()), Injected);
    }

    fn weather_tool() -> Value {
        json!({"type": "function", "function": {"name": "get_weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
    }

    /// A round trip: user, the assistant's call, the tool's answer.
    fn round_trip(id: &str) -> Vec<Turn> {
        vec![
            Turn::new("user", "Weather in Paris?"),
            Turn {
                role: "assistant".into(),
                tool_calls: vec![ToolCall {
                    id: id.into(),
                    name: "get_weather".into(),
                    arguments: json!({"city": "Paris"}),
                }],
                ..Turn::default()
            },
            Turn {
                role: "tool".into(),
                content: "18 C".into(),
                tool_call_id: Some(id.into()),
                name: Some("get_weather".into()),
                ..Turn::default()
            },
        ]
    }

    #[test]
    fn native_templates_render_tools_calls_and_results() {
        let tools = [weather_tool()];
        for (file, call_text) in [
            (
                "Qwen-Qwen2.5-7B-Instruct.jinja",
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            ),
            (
                "meta-llama-Llama-3.2-3B-Instruct.jinja",
                "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
            ),
            (
                "mistralai-Mistral-Nemo-Instruct-2407.jinja",
                "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcdefghi\"}]",
            ),
        ] {
            let out = render(&template(file), &round_trip("abcdefghi"), &tools, true).unwrap();
            assert!(out.contains("\"name\": \"get_weather\""), "{file}: {out}");
            assert!(out.contains(call_text), "{file}: {out}");
            assert!(out.contains("18 C"), "{file}: {out}");
        }
    }

    #[test]
    fn templates_without_tools_get_them_in_the_system_message() {
        let t = ChatTemplate::chatml_fallback();
        let mut turns = vec![Turn::new("system", "Be brief.")];
        turns.extend(round_trip("call1"));
        let out = render(&t, &turns, &[weather_tool()], true).unwrap();
        assert!(
            out.starts_with("<|im_start|>system\nBe brief.\n\n# Tools\n"),
            "{out}"
        );
        assert!(out.contains("<tools>\n{\"type\":\"function\""), "{out}");
        assert!(out.contains("<|im_start|>assistant\n<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}\n</tool_call><|im_end|>"), "{out}");
        assert!(
            out.contains("<|im_start|>user\n<tool_response>\n18 C\n</tool_response><|im_end|>"),
            "{out}"
        );
        // Without tools, a plain conversation renders as it always did.
        let plain = render(&t, &[Turn::new("user", "Hi")], &[], true).unwrap();
        assert_eq!(
            plain,
            t.render(&[crate::Message::user("Hi")], true).unwrap()
        );
    }

    #[test]
    fn tool_definitions_are_checked() {
        assert!(validate_tools(&[weather_tool()]).is_ok());
        let err = validate_tools(&[weather_tool(), json!({"type": "function"})]).unwrap_err();
        assert!(err.contains("tools[1]"), "{err}");
    }
}
