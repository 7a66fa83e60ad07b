//! Ollama's API: `/api/chat` and `/api/generate` (newline-delimited JSON, streaming unless
//! `"stream": false`), `/api/tags`, `/api/show`, `/api/ps`, `/api/version`.

use std::{
    collections::HashMap,
    convert::Infallible,
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::{rejection::BytesRejection, State},
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use futures_util::stream;
use minibar_engine::{sample::SamplingParams, ChatParams};
use minibar_text::{tools::validate_tools, ToolCall, Turn};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_model, parse, Shared};
use crate::{
    errors::ApiError,
    generation::{call_id, collect, finish_reason, start, Check, Out, Shaper, Started},
    scheduler::{Event, Format, ModelTarget, Prompt},
};

/// The Ollama version clients are told; its API is what this module follows.
const OLLAMA_VERSION: &str = "0.12.0";

/// Ollama's `options` that Minibar honours; others are accepted and ignored, as Ollama does
/// with options a model does not use.
#[derive(Deserialize, Default)]
struct Options {
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<usize>,
    seed: Option<u64>,
    num_predict: Option<i64>,
    stop: Option<Vec<String>>,
    #[serde(flatten)]
    _other: HashMap<String, Value>,
}

impl Options {
    /// The engine's parameters with Ollama's defaults (temperature 0.8, top-k 40, top-p 0.9).
    fn params(&self) -> ChatParams {
        let d = SamplingParams::default();
        ChatParams {
            sampling: SamplingParams {
                temperature: self.temperature.unwrap_or(0.8).max(0.0),
                top_p: self.top_p.unwrap_or(0.9).clamp(f32::MIN_POSITIVE, 1.0),
                top_k: self.top_k.unwrap_or(40),
                min_p: self.min_p.unwrap_or(0.0),
                repetition_penalty: self.repeat_penalty.unwrap_or(d.repetition_penalty),
                repetition_context: self.repeat_last_n.unwrap_or(d.repetition_context),
                seed: self.seed,
            },
            max_tokens: match self.num_predict {
                Some(n) if n > 0 => n as usize,
                _ => usize::MAX,
            },
            stop: self.stop.clone().unwrap_or_default(),
        }
    }
}

/// Ollama's `keep_alive`: seconds, or a duration like "5m"; negative keeps the model
/// loaded, zero unloads it once idle.
#[derive(Deserialize)]
#[serde(untagged)]
enum KeepAlive {
    Seconds(f64),
    Text(String),
}

fn keep_alive(value: Option<&KeepAlive>) -> Result<Option<Duration>, ApiError> {
    let bad = |v: &str| ApiError::Invalid(format!("keep_alive `{v}` is not a duration"));
    let seconds = match value {
        None => return Ok(None),
        Some(KeepAlive::Seconds(s)) => *s,
        Some(KeepAlive::Text(t)) if t.trim_start().starts_with('-') => -1.0,
        Some(KeepAlive::Text(t)) => match t.trim().parse::<f64>() {
            Ok(s) => s,
            Err(_) => humantime::parse_duration(t.trim())
                .map_err(|_| bad(t))?
                .as_secs_f64(),
        },
    };
    if !seconds.is_finite() {
        return Err(bad(&seconds.to_string()));
    }
    Ok(Some(if seconds < 0.0 {
        Duration::MAX
    } else {
        Duration::from_secs_f64(seconds)
    }))
}

/// The reply to a request that only loads (or, with `keep_alive` 0, unloads) the model.
async fn load_only(
    state: &Shared,
    target: ModelTarget,
    keep: Option<Duration>,
    message: bool,
) -> Result<Response, ApiError> {
    let model = target.name.clone();
    let started = start(
        &state.scheduler,
        target,
        Prompt::Load,
        ChatParams::default(),
        keep,
    )
    .await?;
    collect(started, Check::Text).await?;
    let reason = if keep == Some(Duration::ZERO) {
        "unload"
    } else {
        "load"
    };
    let mut reply = json!({"model": model, "created_at": now_rfc3339(), "done": true,
                           "done_reason": reason});
    if let Some(map) = reply.as_object_mut() {
        if message {
            map.insert(
                "message".into(),
                json!({"role": "assistant", "content": ""}),
            );
        } else {
            map.insert("response".into(), json!(""));
        }
    }
    Ok(Json(reply).into_response())
}

/// A message of Ollama's chat: calls carry arguments as objects, a tool's reply names it.
#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<CallIn>>,
    #[serde(default)]
    tool_name: Option<String>,
}

#[derive(Deserialize)]
struct CallIn {
    function: FunctionIn,
}

#[derive(Deserialize)]
struct FunctionIn {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// The conversation; Ollama's calls have no ids, so each gets one and the tool reply that
/// follows answers the earliest call of its name not yet answered.
fn turns(messages: Vec<ChatMessage>) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::with_capacity(messages.len());
    let mut open: Vec<ToolCall> = Vec::new();
    for m in messages {
        let tool_calls: Vec<ToolCall> = m
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|c| ToolCall {
                id: call_id(),
                name: c.function.name,
                arguments: match c.function.arguments {
                    Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(json!({})),
                    Some(v @ Value::Object(_)) => v,
                    _ => json!({}),
                },
            })
            .collect();
        open.extend(tool_calls.iter().cloned());
        let answered = (m.role == "tool").then(|| {
            let at = match &m.tool_name {
                Some(name) => open.iter().position(|c| &c.name == name),
                None => (!open.is_empty()).then_some(0),
            };
            at.map(|i| open.remove(i))
        });
        let answered = answered.flatten();
        turns.push(Turn {
            role: m.role,
            content: m.content.unwrap_or_default(),
            tool_calls,
            tool_call_id: answered.as_ref().map(|c| c.id.clone()),
            name: m.tool_name.or(answered.map(|c| c.name)),
        });
    }
    turns
}

/// Ollama's `format`: "json", or a JSON schema (an object).
fn reply_format(format: Option<&Value>) -> Result<Format, ApiError> {
    match format {
        None | Some(Value::Null) => Ok(Format::Text),
        Some(Value::String(s)) if s.is_empty() => Ok(Format::Text),
        Some(Value::String(s)) if s == "json" => Ok(Format::Json),
        Some(schema @ Value::Object(_)) => Ok(Format::Schema(schema.clone())),
        Some(other) => Err(ApiError::Invalid(format!(
            "format {other} is not supported; \"json\" or a JSON schema object is"
        ))),
    }
}

/// A call as Ollama writes it (arguments as an object).
fn call_out(call: &ToolCall) -> Value {
    json!({"function": {"name": call.name, "arguments": call.arguments}})
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    keep_alive: Option<KeepAlive>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Option<Options>,
}

#[derive(Deserialize)]
struct GenerateRequest {
    model: String,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    raw: Option<bool>,
    #[serde(default)]
    format: Option<Value>,
    #[serde(default)]
    keep_alive: Option<KeepAlive>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Option<Options>,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// An error as Ollama answers it: the status, and `{"error": "<message>"}`.
pub(crate) struct OllamaError(ApiError);

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.0.to_string() });
        // The status and headers (Retry-After) of the OpenAI-shaped answer, Ollama's body.
        let mut response = self.0.into_response();
        *response.body_mut() = Body::from(body.to_string());
        response.headers_mut().remove(header::CONTENT_LENGTH);
        response
    }
}

/// `POST /api/chat`.
pub(crate) async fn chat(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OllamaError> {
    let request: ChatRequest = parse(&state, body)?;
    let target = check_model(&state, &request.model)?;
    let keep = keep_alive(request.keep_alive.as_ref())?;
    if request.messages.is_empty() {
        return Ok(load_only(&state, target, keep, true).await?);
    }
    let params = request.options.unwrap_or_default().params();
    let format = reply_format(request.format.as_ref())?;
    let check = Check::of(&format);
    let tools = request.tools.unwrap_or_default();
    validate_tools(&tools).map_err(ApiError::Invalid)?;
    let began = Instant::now();
    let model = target.name.clone();
    let prompt = Prompt::Chat {
        turns: turns(request.messages),
        tools,
        format,
        // Ollama's API has no tool_choice: the model decides.
        must_call: Vec::new(),
    };
    let started = start(&state.scheduler, target, prompt, params, keep).await?;
    let piece = move |text: &str, calls: &[ToolCall], done: Option<Value>| {
        let mut message = json!({"role": "assistant", "content": text});
        if !calls.is_empty() {
            message["tool_calls"] = calls.iter().map(call_out).collect::<Vec<_>>().into();
        }
        let mut line = json!({
            "model": model, "created_at": now_rfc3339(), "message": message, "done": done.is_some(),
        });
        if let (Some(extra), Some(map)) = (done, line.as_object_mut()) {
            map.extend(extra.as_object().cloned().unwrap_or_default());
        }
        line
    };
    Ok(respond(
        request.stream.unwrap_or(true),
        (started, check),
        began,
        piece,
    )
    .await?)
}

/// `POST /api/generate`: the prompt as a user message through the chat template (with
/// `system` before it), or as raw text with `"raw": true`; no prompt only loads the model
/// (`keep_alive: 0` unloads it).
pub(crate) async fn generate(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OllamaError> {
    let request: GenerateRequest = parse(&state, body)?;
    let target = check_model(&state, &request.model)?;
    let keep = keep_alive(request.keep_alive.as_ref())?;
    let Some(text) = request.prompt.filter(|p| !p.is_empty()) else {
        return Ok(load_only(&state, target, keep, false).await?);
    };
    let format = reply_format(request.format.as_ref())?;
    let check = Check::of(&format);
    let prompt = if request.raw == Some(true) {
        Prompt::Text(text)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = request.system {
            messages.push(Turn::new("system", system));
        }
        messages.push(Turn::new("user", text));
        Prompt::Chat {
            turns: messages,
            tools: Vec::new(),
            format,
            must_call: Vec::new(),
        }
    };
    let params = request.options.unwrap_or_default().params();
    let began = Instant::now();
    let model = target.name.clone();
    let started = start(&state.scheduler, target, prompt, params, keep).await?;
    let piece = move |text: &str, _calls: &[ToolCall], done: Option<Value>| {
        let mut line = json!({
            "model": model, "created_at": now_rfc3339(), "response": text, "done": done.is_some(),
        });
        if let (Some(extra), Some(map)) = (done, line.as_object_mut()) {
            map.extend(extra.as_object().cloned().unwrap_or_default());
        }
        line
    };
    Ok(respond(
        request.stream.unwrap_or(true),
        (started, check),
        began,
        piece,
    )
    .await?)
}

/// The fields of Ollama's last line.
fn done_fields(reason: &str, prompt: usize, completion: usize, began: Instant) -> Value {
    json!({
        "done_reason": reason,
        "total_duration": began.elapsed().as_nanos() as u64,
        "prompt_eval_count": prompt,
        "eval_count": completion,
    })
}

/// Streams NDJSON lines built by `line(text, calls, done_fields)`, or answers one JSON
/// object; content to `check` as JSON is held to the end, then checked.
async fn respond(
    streaming: bool,
    (started, check): (Started, Check),
    began: Instant,
    line: impl Fn(&str, &[ToolCall], Option<Value>) -> Value + Send + 'static,
) -> Result<Response, ApiError> {
    if !streaming {
        let reply = collect(started, check).await?;
        let done = done_fields(
            finish_reason(reply.finish),
            reply.prompt_tokens,
            reply.completion_tokens,
            began,
        );
        return Ok(Json(line(&reply.text, &reply.calls, Some(done))).into_response());
    }
    let shaper = Shaper::new(&started, check);
    let lines = stream::unfold(
        (started.events, line, shaper, false),
        move |(mut events, line, mut shaper, done)| async move {
            if done {
                return None;
            }
            loop {
                let (values, last) = match events.recv().await {
                    Some(Event::Text(t)) => (lines(shaper.push(&t), &line), false),
                    Some(Event::Done {
                        finish,
                        prompt_tokens,
                        completion_tokens,
                        ..
                    }) => match shaper.finish(finish) {
                        Ok(outs) => {
                            let fields = done_fields(
                                finish_reason(finish),
                                prompt_tokens,
                                completion_tokens,
                                began,
                            );
                            let mut values = lines(outs, &line);
                            values.push(line("", &[], Some(fields)));
                            (values, true)
                        }
                        Err(e) => (vec![json!({ "error": e.to_string() })], true),
                    },
                    Some(Event::Failed(e)) => (vec![json!({ "error": e })], true),
                    Some(_) => continue,
                    None => return None,
                };
                if values.is_empty() {
                    continue;
                }
                let mut bytes = Vec::new();
                for value in values {
                    bytes.extend(value.to_string().into_bytes());
                    bytes.push(b'\n');
                }
                return Some((
                    Ok::<_, Infallible>(Bytes::from(bytes)),
                    (events, line, shaper, last),
                ));
            }
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// A line per piece of text or call.
fn lines(outs: Vec<Out>, line: &impl Fn(&str, &[ToolCall], Option<Value>) -> Value) -> Vec<Value> {
    outs.into_iter()
        .map(|o| match o {
            Out::Text(t) => line(&t, &[], None),
            Out::Call(c) => line("", &[c], None),
        })
        .collect()
}

fn details(format: &str) -> Value {
    json!({"format": format, "family": "", "families": null, "parameter_size": "",
           "quantization_level": ""})
}

/// `GET /api/tags`: the local library, or a cluster's model alone.
pub(crate) async fn tags(State(state): State<Shared>) -> Json<Value> {
    if !state.scheduler.serves_library() {
        let models: Vec<Value> = state
            .scheduler
            .loaded()
            .into_iter()
            .map(|m| {
                let format = if m.path.is_file() {
                    "gguf"
                } else {
                    "safetensors"
                };
                json!({
                    "name": m.name, "model": m.name, "modified_at": "0001-01-01T00:00:00Z",
                    "size": m.weight_bytes, "digest": "", "details": details(format),
                })
            })
            .collect();
        return Json(json!({ "models": models }));
    }
    let models: Vec<Value> = crate::library::installed(&state.library)
        .into_iter()
        .map(|m| {
            let modified = m
                .last_used
                .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
                .unwrap_or(std::time::UNIX_EPOCH);
            json!({
                "name": m.name, "model": m.name,
                "modified_at": humantime::format_rfc3339_seconds(modified).to_string(),
                "size": m.size_bytes, "digest": "",
                "details": details(&format!("{:?}", m.format).to_lowercase()),
            })
        })
        .collect();
    Json(json!({ "models": models }))
}

/// `GET /api/ps`: the loaded model, if any, and how many sequences it is decoding.
pub(crate) async fn ps(State(state): State<Shared>) -> Json<Value> {
    use std::sync::atomic::Ordering;
    let load = state.scheduler.load();
    let models: Vec<Value> = state
        .scheduler
        .loaded()
        .into_iter()
        .map(|m| {
            json!({
                "name": m.name, "model": m.name, "size": m.weight_bytes, "digest": "",
                "details": details(""), "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0,
                "context_length": m.context,
                "active_sequences": load.active.load(Ordering::SeqCst),
                "queued_requests": load.queued.load(Ordering::SeqCst),
            })
        })
        .collect();
    Json(json!({ "models": models }))
}

#[derive(Deserialize)]
struct ShowRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/show`: what is known of the served model (Ollama's older clients send `name`).
pub(crate) async fn show(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, OllamaError> {
    let request: ShowRequest = parse(&state, body)?;
    let Some(model) = request.model.or(request.name) else {
        return Err(ApiError::Invalid("model is required".into()).into());
    };
    let target = check_model(&state, &model)?;
    let format = if target.path.is_file() {
        "gguf"
    } else {
        "safetensors"
    };
    let context = state
        .scheduler
        .loaded()
        .filter(|m| m.name == target.name)
        .map(|m| m.context);
    Ok(Json(json!({
        "modelfile": "", "parameters": "", "template": "",
        "details": details(format),
        "model_info": {"general.context_length": context},
        "capabilities": ["completion", "tools"],
    })))
}

/// `GET /api/version`.
pub(crate) async fn version() -> Json<Value> {
    Json(json!({ "version": OLLAMA_VERSION }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Option<Duration>, ApiError> {
        keep_alive(Some(&serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn keep_alive_reads_ollamas_forms() {
        assert_eq!(parse(json!(10)).unwrap(), Some(Duration::from_secs(10)));
        assert_eq!(parse(json!(0)).unwrap(), Some(Duration::ZERO));
        assert_eq!(parse(json!("5m")).unwrap(), Some(Duration::from_secs(300)));
        assert_eq!(parse(json!("30")).unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(parse(json!("-1")).unwrap(), Some(Duration::MAX));
        assert_eq!(parse(json!(-1)).unwrap(), Some(Duration::MAX));
        assert!(parse(json!("soon")).is_err());
        assert_eq!(keep_alive(None).unwrap(), None);
    }
}
