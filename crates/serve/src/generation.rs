//! What the OpenAI and Ollama routes share: submitting a request and reading its events.

use minibar_engine::{ChatParams, FinishReason};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{
    errors::ApiError,
    scheduler::{Event, ModelTarget, Prompt, Scheduler},
};

/// A request admitted by the engine thread, before its first token.
pub(crate) struct Started {
    /// The rest of its events.
    pub events: UnboundedReceiver<Event>,
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
        Some(Event::Started { .. }) => Ok(Started { events }),
        Some(Event::Rejected(e)) => Err(e),
        Some(Event::Failed(e)) => Err(ApiError::Engine(e)),
        _ => Err(ApiError::Engine("the engine thread stopped".into())),
    }
}

/// A whole reply.
pub(crate) struct Reply {
    /// Its text.
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
}

/// Reads a started request to its end.
pub(crate) async fn collect(mut started: Started) -> Result<Reply, ApiError> {
    let mut text = String::new();
    while let Some(event) = started.events.recv().await {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done {
                finish,
                prompt_tokens,
                completion_tokens,
            } => {
                return Ok(Reply {
                    text,
                    finish,
                    prompt_tokens,
                    completion_tokens,
                })
            }
            Event::Failed(e) => return Err(ApiError::Engine(e)),
            Event::Started { .. } | Event::Rejected(_) => {}
        }
    }
    Err(ApiError::Engine("the engine thread stopped".into()))
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
