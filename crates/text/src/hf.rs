//! Reading a Hugging Face (or mlx-lm) model folder's tokenizer files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::TextError;

/// What `tokenizer_config.json` and its neighbours say beyond `tokenizer.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HfTokenizerConfig {
    /// `bos_token` as text (a plain string or an AddedToken dict's `content`).
    pub bos_token: Option<String>,
    /// `eos_token` as text.
    pub eos_token: Option<String>,
    /// `pad_token` as text.
    pub pad_token: Option<String>,
    /// `unk_token` as text.
    pub unk_token: Option<String>,
    /// `add_bos_token`, when the file states it.
    pub add_bos_token: Option<bool>,
    /// The chat template: `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template`
    /// (the "default" entry of a list of named templates), else `chat_template.json`.
    pub chat_template: Option<String>,
    /// End-of-sequence ids from `generation_config.json` and `config.json` (an int or a list).
    pub eos_token_ids: BTreeSet<u32>,
}

fn read_json(path: &Path) -> Result<Option<Value>, TextError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TextError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| TextError::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// A token given as `"<s>"` or as `{"content": "<s>", ...}`.
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// `chat_template` as a string, or a list of `{name, template}` where "default" wins.
fn template_from(v: Option<&Value>, path: &Path) -> Result<Option<String>, TextError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(items)) => {
            let named: Vec<(&str, &str)> = items
                .iter()
                .filter_map(|i| Some((i.get("name")?.as_str()?, i.get("template")?.as_str()?)))
                .collect();
            Ok(named
                .iter()
                .find(|(n, _)| *n == "default")
                .or(named.first())
                .map(|(_, t)| t.to_string()))
        }
        Some(other) => Err(TextError::Template(format!(
            "{}: chat_template is {}, expected a string or a list of named templates",
            path.display(),
            other
        ))),
    }
}

/// Ids from an `eos_token_id` that may be an int or a list of ints.
fn ids_from(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .into_iter()
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect(),
        _ => Vec::new(),
    }
}

impl HfTokenizerConfig {
    /// Reads the optional files of `dir`; any of them may be absent.
    pub fn read(dir: &Path) -> Result<Self, TextError> {
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg = read_json(&cfg_path)?.unwrap_or(Value::Null);
        let mut out = HfTokenizerConfig {
            bos_token: token_text(cfg.get("bos_token")),
            eos_token: token_text(cfg.get("eos_token")),
            pad_token: token_text(cfg.get("pad_token")),
            unk_token: token_text(cfg.get("unk_token")),
            add_bos_token: cfg.get("add_bos_token").and_then(Value::as_bool),
            chat_template: template_from(cfg.get("chat_template"), &cfg_path)?,
            eos_token_ids: BTreeSet::new(),
        };
        let jinja: PathBuf = dir.join("chat_template.jinja");
        match std::fs::read_to_string(&jinja) {
            Ok(t) => out.chat_template = Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(TextError::Io {
                    path: jinja,
                    source,
                })
            }
        }
        if out.chat_template.is_none() {
            let p = dir.join("chat_template.json");
            if let Some(v) = read_json(&p)? {
                out.chat_template = template_from(v.get("chat_template"), &p)?;
            }
        }
        for file in ["generation_config.json", "config.json"] {
            if let Some(v) = read_json(&dir.join(file))? {
                out.eos_token_ids.extend(ids_from(v.get("eos_token_id")));
            }
        }
        Ok(out)
    }
}
