//! One request being generated: its sampler, stop strings and detokenizer, and the channel
//! its text goes out on. The engine thread owns it; it never crosses threads.

use minibar_engine::{sample::Sampler, FinishReason};
use minibar_text::{ForcedCall, StopMatcher, StreamDecoder, ToolSyntax};
use tokio::sync::mpsc::UnboundedSender;

use crate::{
    forced_call::CallConstraint,
    json_mode::JsonConstraint,
    scheduler::{Event, Request},
    schema::SchemaConstraint,
};

/// What a reply must be, token by token.
pub(crate) enum Constraint {
    /// One JSON object (JSON mode).
    Json(JsonConstraint),
    /// The rest of a forced tool call.
    Call(CallConstraint),
    /// A document a JSON schema accepts.
    Schema(Box<SchemaConstraint>),
}

impl Constraint {
    fn mask(&mut self, vocab: usize) -> Option<Vec<f32>> {
        match self {
            Self::Json(c) => c.mask(vocab),
            Self::Call(c) => c.mask(vocab),
            Self::Schema(c) => c.mask(vocab),
        }
    }

    fn accept(&mut self, token: u32) {
        match self {
            Self::Json(c) => c.accept(token),
            Self::Call(c) => c.accept(token),
            Self::Schema(c) => c.accept(token),
        }
    }

    /// Whether a forced call is complete (the server closes it; nothing more is generated).
    fn call_complete(&self) -> bool {
        matches!(self, Self::Call(c) if c.complete())
    }
}

/// How a sequence's reply is shaped.
pub(crate) struct Shape {
    /// How the reply carries tool calls, when the request offered tools.
    pub tools: Option<ToolSyntax>,
    /// What each next token must keep the reply.
    pub constraint: Option<Constraint>,
    /// A forced call: its opening (in the prompt) is the reply's first text, its closing
    /// the last once the arguments are complete.
    pub forced: Option<ForcedCall>,
}

/// A sequence in the decode batch.
pub(crate) struct Sequence<'t> {
    events: UnboundedSender<Event>,
    /// How the reply carries tool calls, when the request offered tools.
    tools: Option<ToolSyntax>,
    /// The constraint on the next token (JSON mode, a schema, a forced call).
    constraint: Option<Constraint>,
    forced: Option<ForcedCall>,
    /// Whether a forced call is complete (its closing is then written).
    closed: bool,
    sampler: Sampler,
    decoder: StreamDecoder<'t>,
    stops: StopMatcher,
    /// Prompt and generated tokens, for the repetition penalty.
    pub history: Vec<u32>,
    prompt_tokens: usize,
    /// Prompt tokens reused from the previous request's caches.
    pub cached_tokens: usize,
    generated: usize,
    max_tokens: usize,
    eos: Vec<u32>,
    context: usize,
    /// The token the next decode step feeds.
    pub last: u32,
}

impl<'t> Sequence<'t> {
    /// A sequence for `request`, whose prompt is `prompt`.
    pub fn new(
        request: &Request,
        shape: Shape,
        prompt: Vec<u32>,
        decoder: StreamDecoder<'t>,
        eos: Vec<u32>,
        context: usize,
    ) -> Self {
        Self {
            events: request.events.clone(),
            tools: shape.tools,
            constraint: shape.constraint,
            forced: shape.forced,
            closed: false,
            sampler: Sampler::new(request.params.sampling.clone()),
            decoder,
            stops: StopMatcher::new(request.params.stop.iter().cloned()),
            prompt_tokens: prompt.len(),
            cached_tokens: 0,
            history: prompt,
            generated: 0,
            max_tokens: request.params.max_tokens,
            eos,
            context,
            last: 0,
        }
    }

    /// Whether the client went away.
    pub fn abandoned(&self) -> bool {
        self.events.is_closed()
    }

    /// Samples the next token from `logits` (`[vocab]`) and handles it; returns why the
    /// sequence ends, if it does.
    pub fn advance(&mut self, logits: &mlx_rs::Array) -> Result<Option<FinishReason>, String> {
        let masked = match &mut self.constraint {
            Some(constraint) => {
                let vocab = logits.shape().last().copied().unwrap_or(0).max(0) as usize;
                match constraint.mask(vocab) {
                    Some(mask) => {
                        let mask = mlx_rs::Array::from_slice(&mask, &[vocab as i32]);
                        Some(mlx_rs::ops::add(logits, &mask).map_err(|e| e.to_string())?)
                    }
                    None => None,
                }
            }
            None => None,
        };
        let token = self
            .sampler
            .sample(masked.as_ref().unwrap_or(logits), &self.history)
            .map_err(|e| e.to_string())?;
        if let Some(constraint) = &mut self.constraint {
            constraint.accept(token);
        }
        let finish = self.accept(token);
        // A complete forced call ends the reply, even on its last allowed token; one a stop
        // string cut stays cut.
        let cut = matches!(finish, Some(FinishReason::Stop | FinishReason::Cancelled));
        if !cut
            && self
                .constraint
                .as_ref()
                .is_some_and(Constraint::call_complete)
        {
            self.closed = true;
            return Ok(Some(FinishReason::Eos));
        }
        Ok(finish)
    }

    /// Whether the next token is the top logit, so the step may pick it for every such row
    /// at once ([`Sequence::take`]) instead of sampling row by row.
    pub fn is_argmax(&self) -> bool {
        self.constraint.is_none() && self.sampler.is_argmax(&self.history)
    }

    /// Handles a token chosen for it (its argmax, when [`Sequence::is_argmax`]); returns why
    /// the sequence ends, if it does.
    pub fn take(&mut self, token: u32) -> Option<FinishReason> {
        self.accept(token)
    }

    /// Mirrors `Conversation::generate`'s stop conditions, so text matches `minibar generate`.
    fn accept(&mut self, token: u32) -> Option<FinishReason> {
        self.generated += 1;
        self.last = token;
        self.history.push(token);
        if self.eos.contains(&token) {
            return Some(FinishReason::Eos);
        }
        match self.decoder.push(token) {
            Ok(Some(piece)) => {
                let out = self.stops.push(&piece);
                self.send_text(out.text);
                if out.stopped {
                    return Some(FinishReason::Stop);
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = self.events.send(Event::Failed(e.to_string()));
                return Some(FinishReason::Cancelled);
            }
        }
        if self.generated >= self.max_tokens {
            return Some(FinishReason::Length);
        }
        if self.history.len() >= self.context {
            return Some(FinishReason::ContextFull);
        }
        if self.abandoned() {
            return Some(FinishReason::Cancelled);
        }
        None
    }

    /// Tells the handler the request is admitted and prefilled (a forced call's reply
    /// begins with the opening the prompt ends with).
    pub fn started(&self) {
        let _ = self.events.send(Event::Started {
            prompt_tokens: self.prompt_tokens,
            tools: self.tools,
        });
        if let Some(forced) = &self.forced {
            self.send_text(forced.opening.clone());
        }
    }

    /// Refuses the request before it started.
    pub fn reject(self, error: crate::errors::ApiError) {
        let _ = self.events.send(Event::Rejected(error));
    }

    /// Reports an engine failure; the sequence ends.
    pub fn events_failed(&self, error: String) {
        let _ = self.events.send(Event::Failed(error));
    }

    fn send_text(&self, text: String) {
        if !text.is_empty() {
            let _ = self.events.send(Event::Text(text));
        }
    }

    /// Flushes held-back text and reports the end.
    pub fn finish(mut self, finish: FinishReason) {
        if finish != FinishReason::Stop {
            let mut tail = String::new();
            if let Ok(Some(rest)) = self.decoder.finish() {
                tail.push_str(&self.stops.push(&rest).text);
            }
            if !self.stops.stopped() {
                tail.push_str(&self.stops.finish());
            }
            if let (true, Some(forced)) = (self.closed, &self.forced) {
                tail.push_str(forced.closing);
            }
            self.send_text(tail);
        }
        let _ = self.events.send(Event::Done {
            finish,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.generated,
            cached_tokens: self.cached_tokens,
        });
    }
}
