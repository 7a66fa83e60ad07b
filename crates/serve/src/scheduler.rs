//! The engine thread and its queue: continuous batching.
//!
//! One thread owns the model (MLX arrays stay on the thread that made them, as the app's
//! engine worker does). Between decode steps it admits waiting requests, up to the
//! configured number of concurrent sequences, prefilling each into the shared
//! [`DecodeBatch`]; every step then decodes one token for all of them, each with its own
//! sampler; finished sequences, and those whose client went away, leave before the next
//! step. Requests beyond the concurrent ones wait in a bounded queue; a full queue is
//! answered at once with [`ApiError::Busy`] (429).

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc,
    },
};

use minibar_engine::{
    continuous::DecodeBatch, generate::CancelToken, ChatParams, FinishReason, LoadOptions, Message,
    Session,
};
use mlx_rs::ops::indexing::IndexOp;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::{errors::ApiError, sequence::Sequence, ServeError};

/// What to continue: a conversation (through the chat template) or raw text.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Messages, rendered with the model's chat template.
    Chat(Vec<Message>),
    /// Text continued as is.
    Text(String),
}

/// A generation request handed to the engine thread.
pub struct Request {
    /// The prompt.
    pub prompt: Prompt,
    /// Sampling, length and stop strings.
    pub params: ChatParams,
    pub(crate) events: UnboundedSender<Event>,
}

/// What the engine thread tells a request's handler, in order: `Started`, `Text`s, `Done`;
/// or `Rejected` instead of all of them; `Failed` may end the stream early.
#[derive(Debug)]
pub enum Event {
    /// Admitted and prefilled.
    Started {
        /// Prompt tokens.
        prompt_tokens: usize,
    },
    /// Refused before generating (a prompt over the context, ...).
    Rejected(ApiError),
    /// Generated text.
    Text(String),
    /// The engine failed mid-generation.
    Failed(String),
    /// Generation ended.
    Done {
        /// Why.
        finish: FinishReason,
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Generated tokens.
        completion_tokens: usize,
    },
}

/// Limits of the scheduler.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sequences decoded together at most.
    pub max_seqs: usize,
    /// Requests waiting for a slot at most.
    pub queue: usize,
}

/// The served model, as the routes describe it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Name clients use.
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Context window in tokens.
    pub context: usize,
    /// Bytes of weights in memory.
    pub weight_bytes: usize,
}

/// Counts the routes and tests can watch.
#[derive(Debug, Default)]
pub struct Load {
    /// Sequences in the decode batch.
    pub active: AtomicUsize,
    /// Requests waiting for a slot.
    pub queued: AtomicUsize,
}

/// The handle the routes use to submit work to the engine thread.
#[derive(Clone)]
pub struct Scheduler {
    jobs: mpsc::Sender<Request>,
    load: Arc<Load>,
    limits: Limits,
    model: Arc<ModelInfo>,
}

impl Scheduler {
    /// Starts the engine thread, loading the model at `path` on it; returns once it is loaded.
    pub fn spawn(
        name: String,
        path: PathBuf,
        context: Option<usize>,
        limits: Limits,
    ) -> Result<Self, ServeError> {
        let (jobs, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready) = mpsc::channel();
        let load = Arc::new(Load::default());
        let thread_load = load.clone();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("minibar-serve-engine".into())
            .spawn(move || {
                let session = match Session::open(&thread_path, &LoadOptions::default(), context) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((session.context(), session.model.weight_bytes())));
                engine_loop(&session, rx, &thread_load, limits);
            })
            .map_err(ServeError::Io)?;
        let (context, weight_bytes) = ready
            .recv()
            .map_err(|_| ServeError::Load("the engine thread stopped while loading".into()))?
            .map_err(|e| ServeError::Load(e.to_string()))?;
        Ok(Self {
            jobs,
            load,
            limits,
            model: Arc::new(ModelInfo {
                name,
                path,
                context,
                weight_bytes,
            }),
        })
    }

    /// The served model.
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// Live counts of active and waiting requests.
    pub fn load(&self) -> &Load {
        &self.load
    }

    /// The scheduler's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Queues a request; its events arrive on the returned channel. Dropping the receiver
    /// cancels the request at the next decode step.
    pub fn submit(
        &self,
        prompt: Prompt,
        params: ChatParams,
    ) -> Result<UnboundedReceiver<Event>, ApiError> {
        let waiting = self.load.queued.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.limits.queue {
            self.load.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::Busy(waiting));
        }
        let (events, rx) = unbounded_channel();
        let request = Request {
            prompt,
            params,
            events,
        };
        if self.jobs.send(request).is_err() {
            self.load.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::Engine("the engine thread has stopped".into()));
        }
        Ok(rx)
    }
}

fn engine_loop(session: &Session, jobs: mpsc::Receiver<Request>, load: &Load, limits: Limits) {
    let model = &session.model.model;
    let max_seqs = if DecodeBatch::can_batch(model) {
        limits.max_seqs.max(1)
    } else {
        1
    };
    let mut batch = DecodeBatch::new(model);
    let mut seqs: Vec<Sequence<'_>> = Vec::new();
    loop {
        // Admit newcomers between steps; block only when there is nothing to decode.
        while seqs.len() < max_seqs {
            let request = if seqs.is_empty() {
                match jobs.recv() {
                    Ok(r) => r,
                    Err(_) => return,
                }
            } else {
                match jobs.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                }
            };
            load.queued.fetch_sub(1, Ordering::SeqCst);
            if request.events.is_closed() {
                continue;
            }
            // A request being prefilled holds a slot already.
            load.active.store(seqs.len() + 1, Ordering::SeqCst);
            match admit(session, &mut batch, &request) {
                Ok((mut seq, logits)) => {
                    let finish = seq.advance(&logits).unwrap_or_else(|e| {
                        seq.events_failed(e);
                        Some(FinishReason::Cancelled)
                    });
                    match finish {
                        Some(finish) => {
                            seq.finish(finish);
                            if let Err(e) = batch.leave(&[batch.len() - 1]) {
                                fail_all(&mut seqs, &e.to_string());
                                batch = DecodeBatch::new(model);
                            }
                        }
                        None => seqs.push(seq),
                    }
                }
                Err(e) => {
                    let _ = request.events.send(Event::Rejected(e));
                }
            }
            load.active.store(seqs.len(), Ordering::SeqCst);
        }
        if seqs.is_empty() {
            continue;
        }
        let tokens: Vec<u32> = seqs.iter().map(|s| s.last).collect();
        let logits = match batch.step(model, &tokens) {
            Ok(l) => l,
            Err(e) => {
                fail_all(&mut seqs, &e.to_string());
                batch = DecodeBatch::new(model);
                load.active.store(0, Ordering::SeqCst);
                continue;
            }
        };
        let mut ended = Vec::new();
        for (row, seq) in seqs.iter_mut().enumerate() {
            let finish = if seq.abandoned() {
                Some(FinishReason::Cancelled)
            } else {
                seq.advance(&logits.index(row as i32)).unwrap_or_else(|e| {
                    seq.events_failed(e);
                    Some(FinishReason::Cancelled)
                })
            };
            if let Some(f) = finish {
                ended.push((row, f));
            }
        }
        if !ended.is_empty() {
            let rows: Vec<usize> = ended.iter().map(|(r, _)| *r).collect();
            for (row, finish) in ended.into_iter().rev() {
                seqs.remove(row).finish(finish);
            }
            if let Err(e) = batch.leave(&rows) {
                fail_all(&mut seqs, &e.to_string());
                batch = DecodeBatch::new(model);
            }
        }
        load.active.store(seqs.len(), Ordering::SeqCst);
    }
}

/// Ends every sequence with an engine failure (the batch is then rebuilt empty).
fn fail_all(seqs: &mut Vec<Sequence<'_>>, error: &str) {
    for seq in seqs.drain(..) {
        seq.events_failed(error.to_string());
    }
}

/// Tokenizes and checks the request, and prefills it into the batch as its last row;
/// returns the sequence and the logits its first token is sampled from.
fn admit<'t>(
    session: &'t Session,
    batch: &mut DecodeBatch,
    request: &Request,
) -> Result<(Sequence<'t>, mlx_rs::Array), ApiError> {
    let text = &session.text;
    let ids = match &request.prompt {
        Prompt::Chat(messages) => text.encode_chat(messages, true),
        Prompt::Text(prompt) => text.encode(prompt, true),
    }
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    if ids.is_empty() {
        return Err(ApiError::Invalid("the prompt is empty".into()));
    }
    let context = session.context();
    if ids.len() >= context {
        return Err(ApiError::ContextOverflow {
            prompt: ids.len(),
            context,
        });
    }
    // A prefill runs to its end; a client that left meanwhile is dropped at the next step.
    let logits = batch.join(&session.model.model, &ids, &CancelToken::new())?;
    let _ = request.events.send(Event::Started {
        prompt_tokens: ids.len(),
    });
    let seq = Sequence::new(
        request,
        ids,
        text.stream_decoder(true),
        text.eos.iter().copied().collect(),
        context,
    );
    Ok((seq, logits))
}
