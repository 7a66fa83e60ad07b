//! What the OpenAI and Ollama routes share: submitting a request and reading its events.

use minibar_engine::{ChatParams, FinishReason};
use minibar_text::{
    tools::{Piece, ToolCallStream},
    ToolCall, ToolSyntax,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{
    errors::ApiError,
    json_mode,
    scheduler::{Event, Format, ModelTarget, Prompt, Scheduler},
};

/// What a reply's content must be, checked once it has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Any text.
    Text,
    /// One JSON object (JSON mode).
    Object,
    /// One JSON document (a schema's; llguidance held it to the schema token by token).
    Document,
}

impl Check {
    /// The check a reply in `format` gets.
    pub fn of(format: &Format) -> Self {
        match format {
            Format::Text => Self::Text,
            Format::Json => Self::Object,
            Format::Schema(_) => Self::Document,
        }
    }
}

/// A request admitted by the engine thread, before its first token.
pub(crate) struct Started {
    /// The rest of its events.
    pub events: UnboundedReceiver<Event>,
    /// How its reply carries tool calls, when it offered tools.
    pub tools: Option<ToolSyntax>,
}

/// Queues the request and waits until it is admitted, so that a refusal (a prompt over the
/// context, a full queue) is answered with its status before any streaming starts.
pub(crate) async fn start(
    scheduler: &Scheduler,
    model: ModelTarget,
    prompt: Prompt,
    params: ChatParams,
    keep_alive: Option<std::time::Duration>,
) -> Result<Started, ApiError> {
    let mut events = scheduler.submit(model, prompt, params, keep_alive)?;
    match events.recv().await {
        Some(Event::Started { tools, .. }) => Ok(Started { events, tools }),
        Some(Event::Rejected(e)) => Err(e),
        Some(Event::Failed(e)) => Err(ApiError::Engine(e)),
        _ => Err(ApiError::Engine("the engine thread stopped".into())),
    }
}

/// A whole reply.
pub(crate) struct Reply {
    /// Its text (without the calls).
    pub text: String,
    /// The tools it called.
    pub calls: Vec<ToolCall>,
    /// Why it ended.
    pub finish: FinishReason,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Prompt tokens reused from the previous request's caches.
    pub cached_tokens: usize,
}

/// What the client gets of a reply, in order.
#[derive(Debug)]
pub(crate) enum Out {
    /// Content text.
    Text(String),
    /// A complete tool call.
    Call(ToolCall),
}

/// Turns a reply's text into what the client gets: tool calls split out (when the request
/// offered tools), and the content held and checked as JSON (when it asked for JSON).
pub(crate) struct Shaper {
    tools: Option<ToolCallStream>,
    /// The content so far, when it must be JSON.
    json: Option<String>,
    check: Check,
    /// Calls let out so far.
    calls: usize,
}

impl Shaper {
    /// A shaper for a started request whose content is checked by `check`.
    pub fn new(started: &Started, check: Check) -> Self {
        Self {
            tools: started.tools.map(ToolCallStream::new),
            json: (check != Check::Text).then(String::new),
            check,
            calls: 0,
        }
    }

    /// Takes the next piece of text; returns what can be let out now.
    pub fn push(&mut self, text: &str) -> Vec<Out> {
        let pieces = match &mut self.tools {
            Some(stream) => stream.push(text),
            None => vec![Piece::Text(text.to_owned())],
        };
        self.shape(pieces)
    }

    /// The reply has ended: lets out the rest, or refuses content that had to be JSON and
    /// is not (unless the length limit cut it, which OpenAI also answers as it is).
    pub fn finish(&mut self, finish: FinishReason) -> Result<Vec<Out>, ApiError> {
        let pieces = match &mut self.tools {
            Some(stream) => stream.finish(),
            None => Vec::new(),
        };
        let mut out = self.shape(pieces);
        if let Some(text) = self.json.take() {
            let cut = matches!(finish, FinishReason::Length | FinishReason::ContextFull);
            if cut || (text.trim().is_empty() && self.calls > 0) {
                out.push(Out::Text(text));
            } else {
                let json = match self.check {
                    Check::Document => json_mode::document_in(&text),
                    _ => json_mode::object_in(&text),
                }
                .ok_or_else(|| ApiError::NotJson(json_mode::excerpt(&text)))?;
                out.push(Out::Text(json));
            }
        }
        out.retain(|o| !matches!(o, Out::Text(t) if t.is_empty()));
        Ok(out)
    }

    /// Whether the reply called a tool (its finish reason is then `tool_calls`).
    pub fn called(&self) -> bool {
        self.calls > 0
    }

    fn shape(&mut self, pieces: Vec<Piece>) -> Vec<Out> {
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => match &mut self.json {
                    Some(held) => held.push_str(&t),
                    None => out.push(Out::Text(t)),
                },
                Piece::Call(c) => {
                    self.calls += 1;
                    out.push(Out::Call(ToolCall {
                        id: call_id(),
                        name: c.name,
                        arguments: c.arguments,
                    }));
                }
            }
        }
        out
    }
}

/// Reads a started request to its end.
pub(crate) async fn collect(mut started: Started, check: Check) -> Result<Reply, ApiError> {
    fn take(outs: Vec<Out>, text: &mut String, calls: &mut Vec<ToolCall>) {
        for o in outs {
            match o {
                Out::Text(t) => text.push_str(&t),
                Out::Call(c) => calls.push(c),
            }
        }
    }
    let mut shaper = Shaper::new(&started, check);
    let (mut text, mut calls) = (String::new(), Vec::new());
    while let Some(event) = started.events.recv().await {
        match event {
            Event::Text(t) => take(shaper.push(&t), &mut text, &mut calls),
            Event::Done {
                finish,
                prompt_tokens,
                completion_tokens,
                cached_tokens,
            } => {
                take(shaper.finish(finish)?, &mut text, &mut calls);
                if !calls.is_empty() {
                    text = text.trim().to_owned();
                }
                return Ok(Reply {
                    text,
                    calls,
                    finish,
                    prompt_tokens,
                    completion_tokens,
                    cached_tokens,
                });
            }
            Event::Failed(e) => return Err(ApiError::Engine(e)),
            Event::Started { .. } | Event::Rejected(_) => {}
        }
    }
    Err(ApiError::Engine("the engine thread stopped".into()))
}

/// A fresh tool-call id: 9 letters and digits, the form Mistral's template insists on.
pub(crate) fn call_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // The counter spreads ids within a process, the clock across runs: a repeat is unlikely.
    let mut n = NEXT
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ nanos;
    (0..9)
        .map(|_| {
            let c = DIGITS[(n % 62) as usize] as char;
            n /= 62;
            c
        })
        .collect()
}

/// OpenAI's and Ollama's name for why a reply ended; `called`: it called a tool.
pub(crate) fn finish_reason_of(finish: FinishReason, called: bool) -> &'static str {
    match finish {
        FinishReason::Eos | FinishReason::Stop if called => "tool_calls",
        other => finish_reason(other),
    }
}

/// OpenAI's and Ollama's name for why a reply ended.
pub(crate) fn finish_reason(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Length | FinishReason::ContextFull => "length",
        FinishReason::Eos | FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh id for a response (`prefix-<hex>`), unique within this process.
pub(crate) fn response_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{:x}{nanos:08x}{n:x}", unix_now())
}
