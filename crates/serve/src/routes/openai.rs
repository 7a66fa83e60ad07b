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
use minibar_engine::{sample::SamplingParams, ChatParams, Message};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_model, parse, Shared};
use crate::{
    errors::ApiError,
    generation::{collect, finish_reason, response_id, start, unix_now, Started},
    scheduler::{Event, Prompt},
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
}

#[derive(Deserialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: String,
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

fn messages(request: &ChatRequest) -> Result<Vec<Message>, ApiError> {
    if request.messages.is_empty() {
        return Err(ApiError::Invalid("messages must not be empty".into()));
    }
    Ok(request
        .messages
        .iter()
        .map(|m| {
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
            Message::new(m.role.clone(), content)
        })
        .collect())
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat(
    State(state): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ChatRequest = parse(&state, body)?;
    let target = check_model(&state, &request.model)?;
    let params = request.sampling.params(None)?;
    // Refused rather than ignored: a client relying on them would get the wrong shape.
    if request.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::Invalid("tools are not supported yet".into()));
    }
    if let Some(f) = request
        .response_format
        .as_ref()
        .filter(|f| f.kind != "text")
    {
        return Err(ApiError::Invalid(format!(
            "response_format {} is not supported yet",
            f.kind
        )));
    }
    let messages = messages(&request)?;
    let model = target.name.clone();
    let started = start(
        &state.scheduler,
        target,
        Prompt::Chat(messages),
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
        return Ok(sse(
            first,
            started,
            include_usage,
            move |piece| match piece {
                Piece::Text(t) => chunk(
                    json!([{"index": 0, "delta": {"content": t}, "finish_reason": null}]),
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
    let reply = collect(started).await?;
    Ok(Json(json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "logprobs": null, "finish_reason": finish_reason(reply.finish)}],
        "usage": usage(reply.prompt_tokens, reply.completion_tokens),
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
            include_usage,
            move |piece| match piece {
                Piece::Text(t) => chunk(
                    json!([{"index": 0, "text": t, "logprobs": null, "finish_reason": null}]),
                    Value::Null,
                ),
                Piece::End(reason) => chunk(
                    json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": reason}]),
                    Value::Null,
                ),
                Piece::Usage(u) => chunk(json!([]), u),
            },
        ));
    }
    let reply = collect(started).await?;
    Ok(Json(json!({
        "id": id, "object": "text_completion", "created": created, "model": model,
        "choices": [{"index": 0, "text": reply.text, "logprobs": null,
                     "finish_reason": finish_reason(reply.finish)}],
        "usage": usage(reply.prompt_tokens, reply.completion_tokens),
    }))
    .into_response())
}

/// What a streamed chunk carries.
enum Piece {
    Text(String),
    End(&'static str),
    Usage(Value),
}

/// The events of a started request as server-sent events: `first`, one chunk per piece of
/// text, the finish reason, usage if asked for, then `[DONE]`. Dropping the stream (the
/// client went away) drops the receiver, which cancels the sequence.
fn sse(
    first: Value,
    started: Started,
    include_usage: bool,
    chunk: impl Fn(Piece) -> Value + Send + 'static,
) -> Response {
    let head = stream::once(async move { data(&first) });
    let body = stream::unfold(
        (started.events, chunk, false),
        move |(mut events, chunk, done)| async move {
            if done {
                return None;
            }
            loop {
                let items: Vec<SseEvent> = match events.recv().await {
                    Some(Event::Text(t)) => vec![data(&chunk(Piece::Text(t)))],
                    Some(Event::Done {
                        finish,
                        prompt_tokens,
                        completion_tokens,
                    }) => {
                        let mut items = vec![data(&chunk(Piece::End(finish_reason(finish))))];
                        if include_usage {
                            items.push(data(&chunk(Piece::Usage(usage(
                                prompt_tokens,
                                completion_tokens,
                            )))));
                        }
                        items.push(SseEvent::default().data("[DONE]"));
                        return Some((items, (events, chunk, true)));
                    }
                    Some(Event::Failed(e)) => {
                        let items = vec![data(&ApiError::Engine(e).body())];
                        return Some((items, (events, chunk, true)));
                    }
                    Some(_) => continue,
                    None => return None,
                };
                return Some((items, (events, chunk, false)));
            }
        },
    )
    .flat_map(stream::iter);
    let events = head.chain(body).map(Ok::<_, Infallible>);
    Sse::new(events).into_response()
}

fn data(value: &Value) -> SseEvent {
    SseEvent::default().data(value.to_string())
}

/// `GET /v1/models`: the default model, then every other model in the local library.
pub(crate) async fn models(State(state): State<Shared>) -> Json<Value> {
    let served = state.scheduler.default_model().name.clone();
    let mut names = vec![served.clone()];
    names.extend(
        crate::library::installed()
            .into_iter()
            .map(|m| m.name)
            .filter(|n| !n.eq_ignore_ascii_case(&served)),
    );
    let data: Vec<Value> = names
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "minibar"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}
