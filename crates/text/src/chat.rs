//! Chat templates: a model's Jinja `chat_template` rendered the way transformers'
//! `apply_chat_template(..., tokenize=False)` renders it, with minijinja.

use std::sync::Arc;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::TextError;
use crate::pyjson::{self, DumpOptions};

/// ChatML, used when a model ships no template (SmolLM2's own template is ChatML too).
pub const CHATML_FALLBACK: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// "system", "user" or "assistant" (templates may accept others, e.g. "tool").
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message with the given role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Extra inputs of one rendering beyond the messages.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Append the header that opens the assistant's turn.
    pub add_generation_prompt: bool,
    /// Template-specific variables, e.g. `enable_thinking` for Qwen 3 or `date_string`.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A compiled chat template plus the special-token strings it may reference.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Arc<Environment<'static>>,
    source: String,
    is_fallback: bool,
    special_tokens: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("is_fallback", &self.is_fallback)
            .field("source_len", &self.source.len())
            .finish()
    }
}

/// Name of the single template in each environment.
const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `source`; `bos_token`/`eos_token` become template variables of the same name.
    pub fn new(
        source: &str,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Self, TextError> {
        let mut env = Environment::new();
        // transformers renders with trim_blocks and lstrip_blocks on.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, strip_generation_tags(source))?;
        let mut special_tokens = serde_json::Map::new();
        if let Some(b) = bos_token {
            special_tokens.insert("bos_token".into(), b.into());
        }
        if let Some(e) = eos_token {
            special_tokens.insert("eos_token".into(), e.into());
        }
        Ok(ChatTemplate {
            env: Arc::new(env),
            source: source.to_string(),
            is_fallback: false,
            special_tokens,
        })
    }

    /// The ChatML template, for models that ship none; [`is_fallback`](Self::is_fallback) says so.
    pub fn chatml_fallback() -> Self {
        let mut t =
            Self::new(CHATML_FALLBACK, None, None).expect("the built-in ChatML template compiles");
        t.is_fallback = true;
        t
    }

    /// Whether this is the built-in ChatML fallback rather than the model's own template.
    pub fn is_fallback(&self) -> bool {
        self.is_fallback
    }

    /// The Jinja source as the model shipped it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Adds another special-token variable (e.g. `pad_token`, `unk_token`).
    pub fn set_special_token(&mut self, name: &str, value: &str) {
        self.special_tokens.insert(name.to_string(), value.into());
    }

    /// Renders `messages`, optionally opening the assistant's turn.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TextError> {
        self.render_with(
            messages,
            &RenderOptions {
                add_generation_prompt,
                ..Default::default()
            },
        )
    }

    /// Renders with template-specific variables; messages may be any JSON objects.
    pub fn render_with<M: Serialize>(
        &self,
        messages: &[M],
        opts: &RenderOptions,
    ) -> Result<String, TextError> {
        let mut ctx = self.special_tokens.clone();
        for (k, v) in &opts.extra {
            ctx.insert(k.clone(), v.clone());
        }
        let messages = serde_json::to_value(messages)
            .map_err(|e| TextError::Template(format!("messages are not serializable: {e}")))?;
        ctx.insert("messages".into(), messages);
        ctx.insert(
            "add_generation_prompt".into(),
            opts.add_generation_prompt.into(),
        );
        // transformers always passes these, as None when the caller gave none.
        ctx.entry("tools").or_insert(serde_json::Value::Null);
        ctx.entry("documents").or_insert(serde_json::Value::Null);
        let tmpl = self.env.get_template(NAME)?;
        Ok(tmpl.render(Value::from_serialize(&ctx))?)
    }
}

/// Turns transformers' `{% generation %}` markers, which only tag assistant spans for training
/// masks, into an always-true `if` block, keeping their whitespace control.
fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        // The closing `%}` is looked for after the opening `{%` (in `{%}` they overlap).
        let Some(len) = rest[start + 2..].find("%}") else {
            break;
        };
        let tag = &rest[start..start + 2 + len + 2];
        let inner = &tag[2..tag.len() - 2];
        let word = inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        let replacement = match word {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(r) => out.push_str(&tag.replacen(word, r, 1)),
            None => out.push_str(tag),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// `raise_exception(message)`: templates call it to reject conversations they cannot format.
fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: the local time formatted with C `strftime` directives.
fn strftime_now(format: String) -> Result<Value, minijinja::Error> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("bad strftime format {format:?}"),
        )
    })?;
    Ok(Value::from(out))
}

/// `tojson`: Python's `json.dumps(value, ensure_ascii=False, ...)`, as transformers defines it
/// (unlike minijinja's own filter, it does not HTML-escape).
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let separators = match separators.as_deref() {
        None => None,
        Some([a, b]) => Some((a.clone(), b.clone())),
        Some(_) => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "separators must be a pair",
            ))
        }
    };
    let opts = DumpOptions {
        indent,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        separators,
    };
    let err = |e: serde_json::Error| {
        minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}"))
    };
    let text = if sort_keys.unwrap_or(false) {
        // Round-trip through serde_json's sorted map to sort keys at every level.
        let v: serde_json::Value = serde_json::to_value(&value).map_err(err)?;
        pyjson::dumps(&sort_json(v), &opts).map_err(err)?
    } else {
        pyjson::dumps(&value, &opts).map_err(err)?
    };
    Ok(Value::from_safe_string(text))
}

/// Recursively sorts object keys.
fn sort_json(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<_> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_json(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sort_json).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_are_stripped_and_broken_tags_are_left_to_the_parser() {
        assert_eq!(
            strip_generation_tags("a{%- generation %}b{% endgeneration -%}c"),
            "a{%- if true %}b{% endif -%}c"
        );
        for broken in ["{%}", "{%}%}", "x{%", "{%%}", "{% generation"] {
            let _ = strip_generation_tags(broken);
            assert!(ChatTemplate::new(broken, None, None).is_err(), "{broken}");
        }
        assert_eq!(strip_generation_tags("{%}%}"), "{%}%}");
    }

    #[test]
    fn raise_exception_surfaces_the_templates_message() {
        let t =
            ChatTemplate::new("{{ raise_exception('Roles must alternate') }}", None, None).unwrap();
        let err = t.render(&[Message::user("x")], false).unwrap_err();
        assert!(err.to_string().contains("Roles must alternate"), "{err}");
    }

    #[test]
    fn strftime_now_formats_the_current_date() {
        let t = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}", None, None).unwrap();
        let out = t.render(&[], false).unwrap();
        let today = chrono::Local::now().format("%Y-%m-%d").to_string();
        let yesterday = (chrono::Local::now() - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string();
        // Rendering may straddle midnight; either date is right.
        assert!(out == today || out == yesterday, "{out}");
    }

    #[test]
    fn generation_tags_render_nothing() {
        // The whitespace control on the markers still applies, as in transformers.
        let src = "{% for m in messages %}{% generation %}{{ m.content }} {%- endgeneration -%} |{% endfor %}";
        let t = ChatTemplate::new(src, None, None).unwrap();
        assert_eq!(
            t.render(&[Message::user("a"), Message::assistant("b")], false)
                .unwrap(),
            "a|b|"
        );
    }

    #[test]
    fn syntax_errors_are_reported_at_compile_time() {
        let err = ChatTemplate::new("{% for m in messages %}", None, None).unwrap_err();
        assert!(matches!(err, TextError::Template(_)), "{err}");
    }
}
