//! OpenAI's API: `/v1/chat/completions`, `/v1/completions` (streaming as server-sent events
//! ending with `data: [DONE]`), `/v1/models`.

use std::convert::Infallible;

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    response::{
        sse::{Event as SseEvent, Sse},
        IntoResponse, Response,
    },
    Json,
};
use futures_util::stream::{self, StreamExt};
use minibar_engine::{sample::SamplingParams, ChatParams};
use minibar_text::{tools::validate_tools, ToolCall, Turn};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_model, parse, Shared};
use crate::{
    errors::ApiError,
    generation::{
        call_id, collect, finish_reason, finish_reason_of, response_id, start, unix_now, Check,
        Out, Shaper, Started,
    },
    json_mode,
    scheduler::{Event, Format, Prompt},
};

/// `stop`: one string or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A message's content: a string, or parts of which the text ones are joined.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Option<Vec<CallIn>>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// A call in an assistant message of the history.
#[derive(Deserialize)]
struct CallIn {
    #[serde(default)]
    id: Option<String>,
    function: FunctionIn,
}

#[derive(Deserialize)]
struct FunctionIn {
    name: String,
    /// OpenAI sends a JSON string; an object is taken too.
    #[serde(default)]
    arguments: Option<Value>,
}

/// `tool_choice`: "auto", "none", "required", or a named function.
#[derive(Deserialize)]
#[serde(untagged)]
enum ToolChoice {
    Mode(String),
    Named(Value),
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The sampling and length fields both endpoints share.
#[derive(Deserialize)]
struct Sampling {
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<u32>,
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    #[serde(flatten)]
    sampling: Sampling,
    #[serde(default)]
    response_format: Option<ResponseFormat>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<ToolChoice>,
}

#[derive(Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
    /// With `json_schema`: `{"name", "schema", "strict"}` (the schema is enforced whether
    /// `strict` or not: a stricter reply is still a valid one).
    #[serde(default)]
    json_schema: Option<JsonSchemaFormat>,
}

#[derive(Deserialize)]
struct JsonSchemaFormat {
    #[serde(default)]
    schema: Option<Value>,
}

#[derive(Deserialize)]
struct CompletionRequest {
    model: String,
    prompt: String,
    #[serde(flatten)]
    sampling: Sampling,
}

impl Sampling {
    /// The engine's parameters, with OpenAI's defaults (temperature 1, no length limit but
    /// the context's, or `default_max` where the endpoint has one).
    fn params(&self, default_max: Option<u32>) -> Result<ChatParams, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::Invalid("only n = 1 is supported".into()));
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::Invalid(format!(
                "temperature must be between 0 and 2, not {temperature}"
            )));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::Invalid(format!(
                "top_p must be in (0, 1], not {top_p}"
            )));
        }
        let max = self
            .max_completion_tokens
            .or(self.max_tokens)
            .or(default_max);
        if max == Some(0) {
            return Err(ApiError::Invalid("max_tokens must be at least 1".into()));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        Ok(ChatParams {
            sampling: SamplingParams {
                temperature,
                top_p,
                seed: self.seed,
                ..SamplingParams::default()
            },
            max_tokens: max.map_or(usize::MAX, |m| m as usize),
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
        })
    }

    fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

/// The conversation, with calls' arguments as objects and each tool result's function
/// name looked up from the call it answers.
fn turns(request: &ChatRequest) -> Result<Vec<Turn>, ApiError> {
    if request.messages.is_empty() {
        return Err(ApiError::Invalid("messages must not be empty".into()));
    }
    let mut turns: Vec<Turn> = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.iter().enumerate() {
        let content = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => parts
                .iter()
                .filter(|p| p.kind == "text")
                .filter_map(|p| p.text.clone())
                .collect::<Vec<_>>()
                .join(""),
        };
        let mut tool_calls = Vec::new();
        for (j, call) in m.tool_calls.iter().flatten().enumerate() {
            let arguments = match &call.function.arguments {
                None => json!({}),
                Some(Value::String(s)) if s.trim().is_empty() => json!({}),
                Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                    ApiError::Invalid(format!(
                        "messages[{i}].tool_calls[{j}].function.arguments is not JSON: {e}"
                    ))
                })?,
                Some(v) => v.clone(),
            };
            tool_calls.push(ToolCall {
                id: call.id.clone().unwrap_or_else(call_id),
                name: call.function.name.clone(),
                arguments,
            });
        }
        let name = m.name.clone().or_else(|| {
            let id = m.tool_call_id.as_deref()?;
            turns
                .iter()
                .flat_map(|t| &t.tool_calls)
                .find(|c| c.id == id)
                .map(|c| c.name.clone())
        });
        turns.push(Turn {
            role: m.role.clone(),
            content,
            tool_calls,
            tool_call_id: m.tool_call_id.clone(),
            name: (m.role == "tool").then_some(name).flatten(),
        });
    }
    Ok(turns)
}

/// The tools the model is offered (none when `tool_choice` is "none"), and the functions
/// its reply must call one of (none: the model decides): every offered one for
/// "required", the one named for `{"type": "function", "function": {"name": ..}}`.
fn offered_tools(request: &ChatRequest) -> Result<(Vec<Value>, Vec<String>), ApiError> {
    let tools = request.tools.clone().unwrap_or_default();
    validate_tools(&tools).map_err(ApiError::Invalid)?;
    let names: Vec<String> = tools
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .map(str::to_owned)
        .collect();
    match &request.tool_choice {
        None => Ok((tools, Vec::new())),
        Some(ToolChoice::Mode(m)) if m == "auto" => Ok((tools, Vec::new())),
        Some(ToolChoice::Mode(m)) if m == "none" => Ok((Vec::new(), Vec::new())),
        Some(ToolChoice::Mode(m)) if m == "required" => {
            if tools.is_empty() {
                return Err(ApiError::Invalid(
                    "tool_choice \"required\" needs tools to call, and none were given".into(),
                ));
            }
            Ok((tools, names))
        }
        Some(ToolChoice::Mode(m)) => Err(ApiError::Invalid(format!(
            "tool_choice must be \"auto\", \"none\", \"required\" or {{\"type\": \
             \"function\", \"function\": {{\"name\": ..}}}}, not {m:?}"
        ))),
        Some(ToolChoice::Named(v)) => {
            let name = (v["type"] == "function")
                .then(|| v["function"]["name"].as_str())
                .flatten()
                .ok_or_else(|| {
                    ApiError::Invalid(format!(
                        "tool_choice must be {{\"type\": \"function\", \"function\": \
                         {{\"name\": ..}}}}, not {v}"
                    ))
                })?;
            if !names.iter().any(|n| n == name) {
                let offered = match names.is_empty() {
                    true => "no tools are offered".to_owned(),
                    false => format!("the tools offered are {}", names.join(", ")),
                };
                return Err(ApiError::Invalid(format!(
                    "tool_choice names the function {name:?}, which is not among the tools: \
                     {offered}"
                )));
            }
            Ok((tools, vec![name.to_owned()]))
        }
    }
}

/// What the reply must be (`response_format`), refusing the formats this server does not
/// produce.
fn reply_format(request: &ChatRequest, turns: &[Turn]) -> Result<Format, ApiError> {
    let Some(format) = &request.response_format else {
        return Ok(Format::Text);
    };
    match format.kind.as_str() {
        "text" => Ok(Format::Text),
        "json_object" => {
            if !json_mode::mentions_json(turns.iter().map(|t| t.content.as_str())) {
                return Err(ApiError::Invalid(
                    "'messages' must contain the word 'json' in some form, to use \
                     'response_format' of type 'json_object'"
                        .into(),
                ));
            }
            Ok(Format::Json)
        }
        "json_schema" => match format.json_schema.as_ref().and_then(|f| f.schema.as_ref()) {
            Some(schema @ Value::Object(_)) => Ok(Format::Schema(schema.clone())),
            _ => Err(ApiError::Invalid(
                "response_format of type 'json_schema' needs 'json_schema.schema', a JSON \
                 schema object"
                    .into(),
            )),
        },
        other => Err(ApiError::Invalid(format!(
            "response_format {other} is not supported; text, json_object and json_schema are"
        ))),
    }
}

/// A call as OpenAI writes it (arguments as a JSON string); streamed calls carry `index`.
fn call_out(call: &ToolCall, index: Option<usize>) -> Value {
    let mut v = json!({"id": call.id, "type": "function",
                       "function": {"name": call.name, "arguments": call.arguments.to_string()}});
    if let (Some(i), Some(map)) = (index, v.as_object_mut()) {
        map.insert("index".into(), i.into());
    }
    v
}

/// OpenAI's usage; `cached`: prompt tokens served from the previous request's caches.
fn usage(prompt: usize, completion: usize, cached: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}})
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ChatRequest = parse(&state, body)?;
    let target = check_model(&state, &request.model)?;
    let params = request.sampling.params(None)?;
    let turns = turns(&request)?;
    let (tools, must_call) = offered_tools(&request)?;
    let format = reply_format(&request, &turns)?;
    let check = Check::of(&format);
    let model = target.name.clone();
    let started = start(
        &state.scheduler,
        target,
        Prompt::Chat {
            turns,
            tools,
            format,
            must_call,
        },
        params,
        None,
    )
    .await?;
    let (id, created) = (response_id("chatcmpl"), unix_now());
    if request.sampling.stream {
        let chunk = move |choices: Value, usage: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created,
                   "model": model, "choices": choices, "usage": usage})
        };
        let first = chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
            Value::Null,
        );
        let include_usage = request.sampling.include_usage();
        let delta = |d: Value| json!([{"index": 0, "delta": d, "finish_reason": null}]);
        return Ok(sse(
            first,
            started,
            (include_usage, check),
            move |piece| match piece {
                Piece::Text(t) => chunk(delta(json!({"content": t})), Value::Null),
                Piece::Call(i, c) => chunk(
                    delta(json!({"tool_calls": [call_out(&c, Some(i))]})),
                    Value::Null,
                ),
                Piece::End(reason) => chunk(
                    json!([{"index": 0, "delta": {}, "finish_reason": reason}]),
                    Value::Null,
                ),
                Piece::Usage(u) => chunk(json!([]), u),
            },
        ));
    }
    let reply = collect(started, check).await?;
    let mut message = json!({"role": "assistant", "content": reply.text});
    if !reply.calls.is_empty() {
        let calls: Vec<Value> = reply.calls.iter().map(|c| call_out(c, None)).collect();
        message["tool_calls"] = calls.into();
        if reply.text.is_empty() {
            message["content"] = Value::Null;
        }
    }
    let finish = finish_reason_of(reply.finish, !reply.calls.is_empty());
    Ok(Json(json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage(reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens),
    }))
    .into_response())
}

/// `POST /v1/completions`.
pub(crate) async fn completions(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: CompletionRequest = parse(&state, body)?;
    let target = check_model(&state, &request.model)?;
    // OpenAI's legacy endpoint generates 16 tokens unless told otherwise.
    let params = request.sampling.params(Some(16))?;
    if request.prompt.is_empty() {
        return Err(ApiError::Invalid("prompt must not be empty".into()));
    }
    let model = target.name.clone();
    let started = start(
        &state.scheduler,
        target,
        Prompt::Text(request.prompt),
        params,
        None,
    )
    .await?;
    let (id, created) = (response_id("cmpl"), unix_now());
    if request.sampling.stream {
        let chunk = move |choices: Value, usage: Value| {
            json!({"id": id, "object": "text_completion", "created": created,
                   "model": model, "choices": choices, "usage": usage})
        };
        let include_usage = request.sampling.include_usage();
        let first = chunk(
            json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": null}]),
            Value::Null,
        );
        return Ok(sse(
            first,
            started,
            (include_usage, Check::Text),
            move |piece| match piece {
                Piece::Text(t) => chunk(
                    json!([{"index": 0, "text": t, "logprobs": null, "finish_reason": null}]),
                    Value::Null,
                ),
                // A raw completion offers no tools.
                Piece::Call(..) => Value::Null,
                Piece::End(reason) => chunk(
                    json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": reason}]),
                    Value::Null,
                ),
                Piece::Usage(u) => chunk(json!([]), u),
            },
        ));
    }
    let reply = collect(started, Check::Text).await?;
    Ok(Json(json!({
        "id": id, "object": "text_completion", "created": created, "model": model,
        "choices": [{"index": 0, "text": reply.text, "logprobs": null,
                     "finish_reason": finish_reason(reply.finish)}],
        "usage": usage(reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens),
    }))
    .into_response())
}

/// What a streamed chunk carries.
enum Piece {
    Text(String),
    /// The reply's `index`th tool call.
    Call(usize, ToolCall),
    End(&'static str),
    Usage(Value),
}

/// The events of a started request as server-sent events: `first`, one chunk per piece of
/// text or tool call, the finish reason, usage if asked for, then `[DONE]`. Dropping the
/// stream (the client went away) drops the receiver, which cancels the sequence. With
/// JSON to `check`, the content comes in one piece at the end, once checked; a reply that
/// is not JSON ends the stream with an error instead.
fn sse(
    first: Value,
    started: Started,
    (include_usage, check): (bool, Check),
    chunk: impl Fn(Piece) -> Value + Send + 'static,
) -> Response {
    let head = stream::once(async move { data(&first) });
    let shaper = Shaper::new(&started, check);
    let state = (started.events, chunk, shaper, 0usize, false);
    let body = stream::unfold(
        state,
        move |(mut events, chunk, mut shaper, mut calls, done)| async move {
            if done {
                return None;
            }
            loop {
                let items: Vec<SseEvent> = match events.recv().await {
                    Some(Event::Text(t)) => pieces(shaper.push(&t), &mut calls, &chunk),
                    Some(Event::Done {
                        finish,
                        prompt_tokens,
                        completion_tokens,
                        cached_tokens,
                    }) => {
                        let mut items = match shaper.finish(finish) {
                            Ok(outs) => pieces(outs, &mut calls, &chunk),
                            Err(e) => {
                                let items = vec![data(&e.body())];
                                return Some((items, (events, chunk, shaper, calls, true)));
                            }
                        };
                        let reason = finish_reason_of(finish, shaper.called());
                        items.push(data(&chunk(Piece::End(reason))));
                        if include_usage {
                            items.push(data(&chunk(Piece::Usage(usage(
                                prompt_tokens,
                                completion_tokens,
                                cached_tokens,
                            )))));
                        }
                        items.push(SseEvent::default().data("[DONE]"));
                        return Some((items, (events, chunk, shaper, calls, true)));
                    }
                    Some(Event::Failed(e)) => {
                        let items = vec![data(&ApiError::Engine(e).body())];
                        return Some((items, (events, chunk, shaper, calls, true)));
                    }
                    Some(_) => continue,
                    None => return None,
                };
                if items.is_empty() {
                    continue;
                }
                return Some((items, (events, chunk, shaper, calls, false)));
            }
        },
    )
    .flat_map(stream::iter);
    let events = head.chain(body).map(Ok::<_, Infallible>);
    Sse::new(events).into_response()
}

/// A chunk per piece of text or call; `calls` counts the calls so far (their `index`).
fn pieces(outs: Vec<Out>, calls: &mut usize, chunk: &impl Fn(Piece) -> Value) -> Vec<SseEvent> {
    outs.into_iter()
        .map(|o| match o {
            Out::Text(t) => data(&chunk(Piece::Text(t))),
            Out::Call(c) => {
                *calls += 1;
                data(&chunk(Piece::Call(*calls - 1, c)))
            }
        })
        .collect()
}

fn data(value: &Value) -> SseEvent {
    SseEvent::default().data(value.to_string())
}

/// `GET /v1/models`: the default model, then every other model in the local library (none
/// on a cluster's model: the cluster holds one).
pub(crate) async fn models(State(state): State<Shared>) -> Json<Value> {
    let served = state.scheduler.default_model().name.clone();
    let mut names = vec![served.clone()];
    if state.scheduler.serves_library() {
        names.extend(
            crate::library::installed(&state.library)
                .into_iter()
                .map(|m| m.name)
                .filter(|n| !n.eq_ignore_ascii_case(&served)),
        );
    }
    let data: Vec<Value> = names
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "minibar"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}
