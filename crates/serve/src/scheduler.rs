//! The engine thread and its queue: continuous batching.
//!
//! One thread owns the model (MLX arrays stay on the thread that made them, as the app's
//! engine worker does). Between decode steps it admits waiting requests, up to the
//! configured number of concurrent sequences: short prompts that arrived together are
//! prefilled as one group (up to [`PREFILL_GROUP`] of them, one pass, like mlx_lm.server's
//! prompt concurrency) into the shared [`DecodeBatch`], and the next group waits for the
//! next step, so newcomers' prefill is interleaved with the others' decoding; a prompt
//! longer than one prefill chunk is prefilled one chunk per step, so it does not stall the
//! others' streams either. Every step then decodes one token for all of
//! them, each with its own sampler; finished sequences, and those whose client went away,
//! leave before the next step. Requests beyond the concurrent ones wait in a bounded
//! queue; a full queue is
//! answered at once with [`ApiError::Busy`] (429).

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc, RwLock,
    },
    time::{Duration, Instant},
};

use minibar_fit::Pressure;

use minibar_engine::{
    continuous::{DecodeBatch, Joiner, KeptPrefix},
    generate::{CancelToken, PREFILL_CHUNK},
    ChatParams, FinishReason, Session,
};
use minibar_text::{TextModel, ToolSyntax, Turn};
use mlx_rs::ops::indexing::IndexOp;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

pub use crate::lifecycle::ModelTarget;
use crate::{
    errors::ApiError,
    forced_call::CallConstraint,
    json_mode::JsonConstraint,
    lifecycle,
    schema::Vocabulary,
    sequence::{Constraint, Sequence, Shape},
    ServeError,
};

/// What to continue: a conversation (through the chat template) or raw text.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Messages, rendered with the model's chat template, with the tools the model may call
    /// (none: empty).
    Chat {
        /// The conversation.
        turns: Vec<Turn>,
        /// OpenAI-shaped tool definitions.
        tools: Vec<serde_json::Value>,
        /// What the reply must be (generation is constrained to it).
        format: Format,
        /// Functions the reply must call one of (OpenAI's `tool_choice` "required" or a
        /// named function; generation is constrained to the call); none: the model decides.
        must_call: Vec<String>,
    },
    /// Text continued as is.
    Text(String),
    /// Nothing to generate: only load the model (and apply the request's keep-alive).
    Load,
}

/// What a chat reply must be.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Format {
    /// Any text.
    #[default]
    Text,
    /// One JSON object (JSON mode).
    Json,
    /// A JSON document the schema accepts (structured outputs).
    Schema(serde_json::Value),
}

/// A generation request handed to the engine thread.
pub struct Request {
    /// The model it is for.
    pub model: ModelTarget,
    /// The prompt.
    pub prompt: Prompt,
    /// Sampling, length and stop strings.
    pub params: ChatParams,
    /// How long the model stays loaded after this request (the server's default if none).
    pub keep_alive: Option<Duration>,
    pub(crate) events: UnboundedSender<Event>,
}

impl Request {
    /// Answers a request that only loads the model (it is loaded): started, then done with
    /// nothing generated.
    pub(crate) fn answer_loaded(&self) {
        let _ = self.events.send(Event::Started {
            prompt_tokens: 0,
            tools: None,
        });
        let _ = self.events.send(Event::Done {
            finish: FinishReason::Stop,
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
        });
    }
}

/// What the engine thread tells a request's handler, in order: `Started`, `Text`s, `Done`;
/// or `Rejected` instead of all of them; `Failed` may end the stream early.
#[derive(Debug)]
pub enum Event {
    /// Admitted and prefilled.
    Started {
        /// Prompt tokens.
        prompt_tokens: usize,
        /// How the reply carries tool calls, when the request offered tools.
        tools: Option<ToolSyntax>,
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
        /// Prompt tokens whose caches were reused from the previous request, not prefilled.
        cached_tokens: usize,
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

/// A loaded model, as the routes describe it.
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
    default: ModelTarget,
    loaded: Arc<RwLock<Option<ModelInfo>>>,
    /// Whether requests may name the library's other models (not on a cluster's model).
    library: bool,
}

impl Scheduler {
    /// Starts the engine thread with `default` loaded on it (with `preload`; else nothing is
    /// loaded until a request comes); returns once it is ready, with the thread's handle (it ends when the scheduler is dropped and its queue closes). Other
    /// models of the library load when a request names them (after the running requests
    /// end), and the loaded model is unloaded after `keep_alive` without requests. A loaded
    /// model of `library` is held in use until it is unloaded.
    pub fn spawn(
        default: ModelTarget,
        library: minibar_hub::library::LibraryPaths,
        context: Option<usize>,
        limits: Limits,
        (keep_alive, pressure): (Duration, PressureSource),
        preload: bool,
    ) -> Result<(Self, std::thread::JoinHandle<()>), ServeError> {
        let (jobs, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready) = mpsc::channel();
        let load = Arc::new(Load::default());
        let loaded = Arc::new(RwLock::new(None));
        let thread = lifecycle::EngineThread {
            jobs: rx,
            library,
            load: load.clone(),
            loaded: loaded.clone(),
            limits,
            context,
            keep_alive,
            pressure,
        };
        let first = default.clone();
        let engine = std::thread::Builder::new()
            .name("minibar-serve-engine".into())
            .spawn(move || {
                if !preload {
                    let _ = ready_tx.send(Ok(()));
                    return thread.run(None);
                }
                match thread.open(&first) {
                    Ok(opened) => {
                        let _ = ready_tx.send(Ok(()));
                        thread.run(Some((first, opened)));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(ServeError::Io)?;
        ready
            .recv()
            .map_err(|_| ServeError::Load("the engine thread stopped while loading".into()))?
            .map_err(|e| match e {
                ApiError::Unavailable(reason) => ServeError::Load(reason),
                other => ServeError::Load(other.to_string()),
            })?;
        let scheduler = Self {
            jobs,
            load,
            limits,
            default,
            loaded,
            library: true,
        };
        Ok((scheduler, engine))
    }

    /// Starts a worker that serves the model of the cluster that is up at `socket`
    /// ([`crate::cluster`]), one request at a time, with at most `queue` waiting; returns
    /// once the cluster has said what it holds, with the worker's handle (it ends when the
    /// scheduler is dropped).
    pub fn spawn_cluster(
        socket: PathBuf,
        queue: usize,
    ) -> Result<(Self, std::thread::JoinHandle<()>), ServeError> {
        let worker = crate::cluster::Worker::connect(socket)?;
        let (jobs, rx) = mpsc::channel::<Request>();
        let load = Arc::new(Load::default());
        let info = worker.info();
        let default = ModelTarget {
            name: info.name.clone(),
            path: info.path.clone(),
        };
        let limits = Limits { max_seqs: 1, queue };
        let loaded = Arc::new(RwLock::new(Some(info)));
        let engine = std::thread::Builder::new()
            .name("minibar-serve-cluster".into())
            .spawn({
                let load = load.clone();
                move || worker.run(&rx, &load)
            })
            .map_err(ServeError::Io)?;
        let scheduler = Self {
            jobs,
            load,
            limits,
            default,
            loaded,
            library: false,
        };
        Ok((scheduler, engine))
    }

    /// Whether requests may name models of the library besides the default one (not when
    /// serving a cluster's model: the cluster holds one model).
    pub fn serves_library(&self) -> bool {
        self.library
    }

    /// The model loaded now, if any.
    pub fn loaded(&self) -> Option<ModelInfo> {
        self.loaded.read().ok().and_then(|m| m.clone())
    }

    /// The model served when none other is asked for.
    pub fn default_model(&self) -> &ModelTarget {
        &self.default
    }

    /// The model a request names: the default one (by name or path) or one in the library.
    pub fn resolve(
        &self,
        library: &minibar_hub::library::LibraryPaths,
        name: &str,
    ) -> Result<ModelTarget, ApiError> {
        let target = lifecycle::resolve(library, &self.default, name)?;
        if !self.library && target != self.default {
            return Err(ApiError::UnknownModel(name.to_owned()));
        }
        Ok(target)
    }

    /// Live counts of active and waiting requests.
    pub fn load(&self) -> &Load {
        &self.load
    }

    /// The scheduler's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Queues a request for `model`; its events arrive on the returned channel. Dropping the
    /// receiver cancels the request at the next decode step.
    pub fn submit(
        &self,
        model: ModelTarget,
        prompt: Prompt,
        params: ChatParams,
        keep_alive: Option<Duration>,
    ) -> Result<UnboundedReceiver<Event>, ApiError> {
        if !self.library {
            // Refused at once, not after the requests ahead of it.
            if let Some(refusal) = crate::cluster::refusal(&prompt) {
                return Err(refusal);
            }
        }
        let waiting = self.load.queued.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.limits.queue {
            self.load.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::Busy(waiting));
        }
        let (events, rx) = unbounded_channel();
        let request = Request {
            model,
            prompt,
            params,
            keep_alive,
            events,
        };
        if self.jobs.send(request).is_err() {
            self.load.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::Engine("the engine thread has stopped".into()));
        }
        Ok(rx)
    }
}

/// Short prompts prefilled together between two decode steps at most: more would delay the
/// running streams' next token by more than a few prompts' prefill.
pub const PREFILL_GROUP: usize = 8;

/// How often an idle engine asks for the memory pressure.
const PRESSURE_POLL: Duration = Duration::from_secs(2);

/// Reads the machine's memory pressure (a parameter so tests can stand in for the OS).
pub type PressureSource = fn() -> Pressure;

/// Why [`Engine::run`] returned.
pub(crate) enum Exit {
    /// The server is gone.
    Closed,
    /// No request came for the keep-alive time.
    Idle,
    /// The first waiting request names another model, and nothing else is running.
    Switch,
}

/// The engine thread's state between steps, for one loaded model.
pub(crate) struct Engine<'t> {
    session: &'t Session,
    /// The loaded model's name; requests for another wait until the batch drains.
    model_name: String,
    batch: DecodeBatch,
    /// The batch's sequences, in row order.
    seqs: Vec<Sequence<'t>>,
    /// A long prompt being prefilled a chunk per step, and its sequence.
    pending: Option<(Joiner, Sequence<'t>)>,
    /// The last sequence's caches once the batch emptied: the next request reuses the prefix
    /// it shares with them (a conversation's next turn prefills only its new messages).
    kept: Option<KeptPrefix>,
    /// Requests taken off the channel that wait (for the pending prefill, or for another
    /// model).
    pub waiting: VecDeque<Request>,
    load: &'t Load,
    max_seqs: usize,
    /// Idle time before the model is unloaded; the latest request may change it.
    keep_alive: Duration,
    /// This machine's memory pressure, asked while idle.
    pressure: PressureSource,
    /// The vocabulary for constrained replies, once a request needed it.
    vocabulary: Vocabulary,
}

impl<'t> Engine<'t> {
    /// An engine for `session`, with `waiting` requests first in line.
    pub fn new(
        session: &'t Session,
        model_name: String,
        load: &'t Load,
        max_seqs: usize,
        (keep_alive, pressure): (Duration, PressureSource),
        waiting: VecDeque<Request>,
    ) -> Self {
        let model = &session.model.model;
        Self {
            session,
            model_name,
            batch: DecodeBatch::new(model),
            seqs: Vec::new(),
            pending: None,
            kept: None,
            waiting,
            load,
            keep_alive,
            pressure,
            vocabulary: Vocabulary::default(),
            max_seqs: if DecodeBatch::can_batch(model) {
                max_seqs.max(1)
            } else {
                1
            },
        }
    }

    /// Decodes until the server goes, the model idles for `keep_alive`, or another model
    /// is asked for.
    pub fn run(&mut self, jobs: &mpsc::Receiver<Request>) -> Exit {
        loop {
            self.advance_pending();
            if let Some(exit) = self.admit(jobs) {
                self.publish();
                return exit;
            }
            self.step();
            self.publish();
        }
    }

    /// Runs the pending prompt's next chunk (all of them if nothing else is decoding) and
    /// lets it join when done.
    fn advance_pending(&mut self) {
        let Some((mut joiner, seq)) = self.pending.take() else {
            return;
        };
        if seq.abandoned() {
            return;
        }
        let model = &self.session.model.model;
        let result = loop {
            if let Err(e) = joiner.prefill_chunk(model) {
                break Err(e);
            }
            if joiner.is_complete() || !self.batch.is_empty() {
                break Ok(());
            }
        };
        match result {
            Err(e) => seq.events_failed(e.to_string()),
            Ok(()) if joiner.is_complete() => match self.batch.finish_join(joiner) {
                Ok(logits) => self.joined(vec![(seq, logits)]),
                Err(e) => seq.events_failed(e.to_string()),
            },
            Ok(()) => self.pending = Some((joiner, seq)),
        }
    }

    /// Takes new requests while there are free slots, and prefills the short ones that came
    /// together as one group; blocks (up to `keep_alive`) only when there is nothing to
    /// decode. Returns why to stop, if it is time to.
    fn admit(&mut self, jobs: &mpsc::Receiver<Request>) -> Option<Exit> {
        let model = &self.session.model.model;
        let mut group: Vec<(Sequence<'t>, Vec<u32>)> = Vec::new();
        let mut exit = None;
        while self.seqs.len() + usize::from(self.pending.is_some()) + group.len() < self.max_seqs
            && group.len() < PREFILL_GROUP
        {
            let idle = self.seqs.is_empty() && self.pending.is_none() && group.is_empty();
            let request = match self.waiting.pop_front() {
                Some(r) => r,
                None if idle => match self.wait(jobs) {
                    Ok(r) => r,
                    Err(e) => {
                        exit = Some(e);
                        break;
                    }
                },
                None => match jobs.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            if request.events.is_closed() {
                self.load.queued.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            if request.model.name != self.model_name {
                // Another model: it loads once the running requests end; those behind it wait.
                self.waiting.push_front(request);
                if idle {
                    exit = Some(Exit::Switch);
                }
                break;
            }
            if let Some(keep_alive) = request.keep_alive {
                self.keep_alive = keep_alive;
            }
            if matches!(request.prompt, Prompt::Load) {
                self.load.queued.fetch_sub(1, Ordering::SeqCst);
                request.answer_loaded();
                continue;
            }
            let (mut seq, ids) = match prepare(
                &self.session.text,
                self.session.context(),
                &request,
                &mut self.vocabulary,
            ) {
                Ok(p) => p,
                Err(e) => {
                    self.load.queued.fetch_sub(1, Ordering::SeqCst);
                    let _ = request.events.send(Event::Rejected(e));
                    continue;
                }
            };
            if self.batch.is_empty() && group.is_empty() && self.pending.is_none() {
                if let Some(kept) = self.kept.take() {
                    self.load.queued.fetch_sub(1, Ordering::SeqCst);
                    match self
                        .batch
                        .join_reusing(model, kept, &ids, &CancelToken::new())
                    {
                        Ok((logits, reused)) => {
                            seq.cached_tokens = reused;
                            self.joined(vec![(seq, logits)]);
                        }
                        Err(e) => seq.reject(e.into()),
                    }
                    self.publish();
                    continue;
                }
            }
            let chunks = ids.len().div_ceil(PREFILL_CHUNK);
            if chunks == 1 {
                // As short as one step's work: prefilled with the others that came with it.
                self.load.queued.fetch_sub(1, Ordering::SeqCst);
                group.push((seq, ids));
            } else if self.batch.is_empty() && group.is_empty() {
                // Nothing to interleave with.
                self.load.queued.fetch_sub(1, Ordering::SeqCst);
                match self.batch.join(model, &ids, &CancelToken::new()) {
                    Ok(logits) => self.joined(vec![(seq, logits)]),
                    Err(e) => seq.reject(e.into()),
                }
            } else if self.pending.is_none() && !self.batch.is_empty() {
                self.load.queued.fetch_sub(1, Ordering::SeqCst);
                let begun = self.batch.begin_join(model, &ids, chunks - 1);
                match begun.and_then(|mut j| j.prefill_chunk(model).map(|()| j)) {
                    Ok(joiner) => self.pending = Some((joiner, seq)),
                    Err(e) => seq.reject(e.into()),
                }
            } else {
                // One long prefill at a time, so each keeps its planned position; and one
                // planned only against a batch that is already decoding.
                self.waiting.push_front(request);
                break;
            }
            self.publish();
        }
        self.join_group(group);
        exit
    }

    /// Prefills the group in one pass and lets each take its first token.
    fn join_group(&mut self, group: Vec<(Sequence<'t>, Vec<u32>)>) {
        if group.is_empty() {
            return;
        }
        let (seqs, prompts): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        match self.batch.join_many(&self.session.model.model, &prompts) {
            Ok(logits) => self.joined(seqs.into_iter().zip(logits).collect()),
            Err(e) => {
                for seq in seqs {
                    seq.reject(ApiError::Engine(e.to_string()));
                }
            }
        }
    }

    /// Waits for a request while nothing runs; gives up after the keep-alive time, or at
    /// once when memory pressure turns critical (an idle model is the cheapest memory to
    /// give back: the next request loads it again).
    fn wait(&self, jobs: &mpsc::Receiver<Request>) -> Result<Request, Exit> {
        let deadline = Instant::now().checked_add(self.keep_alive);
        loop {
            let slice = deadline.map_or(PRESSURE_POLL, |d| {
                d.saturating_duration_since(Instant::now())
                    .min(PRESSURE_POLL)
            });
            match jobs.recv_timeout(slice) {
                Ok(r) => return Ok(r),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Exit::Closed),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if deadline.is_some_and(|d| Instant::now() >= d)
                        || (self.pressure)() == Pressure::Critical
                    {
                        return Err(Exit::Idle);
                    }
                }
            }
        }
    }

    /// Prefilled sequences, the batch's last rows in order, take their first token and stay
    /// (or end at once and leave).
    fn joined(&mut self, newcomers: Vec<(Sequence<'t>, mlx_rs::Array)>) {
        // Counted before their handlers hear of them, so the counts never lag a started stream.
        let first_row = self.seqs.len();
        let active = first_row + usize::from(self.pending.is_some()) + newcomers.len();
        self.load.active.store(active, Ordering::SeqCst);
        let mut ended = Vec::new();
        for (i, (mut seq, logits)) in newcomers.into_iter().enumerate() {
            seq.started();
            let finish = seq.advance(&logits).unwrap_or_else(|e| {
                seq.events_failed(e);
                Some(FinishReason::Cancelled)
            });
            match finish {
                Some(finish) => {
                    seq.finish(finish);
                    ended.push(first_row + i);
                }
                None => self.seqs.push(seq),
            }
        }
        if let Err(e) = self.batch.leave(&ended) {
            self.fail_all(&e.to_string());
        }
    }

    /// One decode step for every sequence; the finished and the abandoned leave.
    fn step(&mut self) {
        if self.seqs.is_empty() {
            return;
        }
        let model = &self.session.model.model;
        let tokens: Vec<u32> = self.seqs.iter().map(|s| s.last).collect();
        let logits = match self.batch.step(model, &tokens) {
            Ok(l) => l,
            Err(e) => return self.fail_all(&e.to_string()),
        };
        // Greedy rows take their argmax from one evaluation for the whole batch, not one each.
        let argmax = match self.seqs.iter().any(Sequence::is_argmax) {
            true => match argmax_rows(&logits) {
                Ok(ids) => Some(ids),
                Err(e) => return self.fail_all(&e.to_string()),
            },
            false => None,
        };
        let mut ended = Vec::new();
        for (row, seq) in self.seqs.iter_mut().enumerate() {
            let finish = if seq.abandoned() {
                Some(FinishReason::Cancelled)
            } else if let (Some(ids), true) = (&argmax, seq.is_argmax()) {
                seq.take(ids[row])
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
        if ended.is_empty() {
            return;
        }
        // When the last sequence ends, its caches stay for the next request.
        let last = ended.len() == self.seqs.len() && self.pending.is_none();
        let kept_row = ended.last().map(|(r, _)| *r).filter(|_| last);
        let mut kept_tokens = None;
        let leaving: Vec<usize> = ended
            .iter()
            .map(|(r, _)| *r)
            .filter(|&r| Some(r) != kept_row)
            .collect();
        for (row, finish) in ended.into_iter().rev() {
            let seq = self.seqs.remove(row);
            if Some(row) == kept_row {
                // Every token but the last sampled one has been fed, so the caches hold them.
                kept_tokens = Some(seq.history[..seq.history.len() - 1].to_vec());
            }
            seq.finish(finish);
        }
        if let Err(e) = self.batch.leave(&leaving) {
            return self.fail_all(&e.to_string());
        }
        if let Some(tokens) = kept_tokens {
            match self.batch.finish_last(tokens) {
                Ok(kept) => self.kept = kept,
                Err(e) => self.fail_all(&e.to_string()),
            }
        }
    }

    /// Ends every sequence in the batch with an engine failure and starts an empty batch.
    /// A pending prefill is dropped too: its planned position referred to the old batch.
    fn fail_all(&mut self, error: &str) {
        for seq in self.seqs.drain(..) {
            seq.events_failed(error.to_string());
        }
        if let Some((_, seq)) = self.pending.take() {
            seq.events_failed(error.to_string());
        }
        self.batch = DecodeBatch::new(&self.session.model.model);
    }

    /// Publishes the counts the routes report (a pending prefill holds a slot).
    fn publish(&self) {
        let active = self.seqs.len() + usize::from(self.pending.is_some());
        self.load.active.store(active, Ordering::SeqCst);
    }
}

/// The top token of each row of `[rows, vocab]` logits, in one evaluation.
fn argmax_rows(logits: &mlx_rs::Array) -> Result<Vec<u32>, mlx_rs::error::Exception> {
    let ids = mlx_rs::ops::indexing::argmax_axis(logits, -1, false)?.as_type::<u32>()?;
    ids.eval()?;
    Ok(ids.as_slice::<u32>().to_vec())
}

/// What a request's reply is held to token by token, as each token is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PerToken {
    /// The rest of a forced tool call (`tool_choice` "required" or a named function).
    Call,
    /// One JSON object (JSON mode without tools: with tools, a call must stay possible, so
    /// the reply is only checked once it is complete).
    Json,
    /// A document a JSON schema accepts (without tools, as JSON mode).
    Schema,
}

/// Whether `prompt`'s reply is constrained token by token, and how.
pub(crate) fn per_token(prompt: &Prompt) -> Option<PerToken> {
    match prompt {
        Prompt::Chat {
            tools, must_call, ..
        } if !tools.is_empty() && !must_call.is_empty() => Some(PerToken::Call),
        Prompt::Chat {
            format: Format::Json,
            tools,
            ..
        } if tools.is_empty() => Some(PerToken::Json),
        Prompt::Chat {
            format: Format::Schema(_),
            tools,
            ..
        } if tools.is_empty() => Some(PerToken::Schema),
        _ => None,
    }
}

/// Tokenizes and checks a request for a model of `context` tokens whose tokenizer and
/// template are `text`; returns its sequence and prompt tokens. `vocabulary`: the model's
/// vocabulary for constrained replies (JSON mode, schemas, forced calls), made on the first
/// request that needs it.
pub(crate) fn prepare<'t>(
    text: &'t TextModel,
    context: usize,
    request: &Request,
    vocabulary: &mut Vocabulary,
) -> Result<(Sequence<'t>, Vec<u32>), ApiError> {
    let kind = per_token(&request.prompt);
    let forced = match (&request.prompt, kind) {
        (Prompt::Chat { must_call, .. }, Some(PerToken::Call)) => {
            let names: Vec<&str> = must_call.iter().map(String::as_str).collect();
            Some(text.tool_support().syntax().forced_call(&names))
        }
        _ => None,
    };
    let ids = match &request.prompt {
        Prompt::Chat { turns, tools, .. } => {
            let reply_start = forced.as_ref().map_or("", |f| f.opening.as_str());
            text.encode_conversation(turns, tools, reply_start)
        }
        Prompt::Text(prompt) => text.encode(prompt, true),
        Prompt::Load => Ok(Vec::new()),
    }
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    if ids.is_empty() {
        return Err(ApiError::Invalid("the prompt is empty".into()));
    }
    if ids.len() >= context {
        return Err(ApiError::ContextOverflow {
            prompt: ids.len(),
            context,
        });
    }
    let tools = match &request.prompt {
        Prompt::Chat { tools, .. } if !tools.is_empty() => Some(text.tool_support().syntax()),
        _ => None,
    };
    let constraint = match (&forced, kind, &request.prompt) {
        (Some(f), ..) => Some(Constraint::Call(CallConstraint::new(
            vocabulary.texts(text),
            f.heads.clone(),
        ))),
        (None, Some(PerToken::Json), _) => Some(Constraint::Json(JsonConstraint::new(
            vocabulary.texts(text),
        ))),
        (
            None,
            Some(PerToken::Schema),
            Prompt::Chat {
                format: Format::Schema(schema),
                ..
            },
        ) => {
            let env = vocabulary.schema(text);
            let env = env.as_ref().as_ref().map_err(|e| {
                ApiError::Invalid(format!("this model cannot give schema outputs: {e}"))
            })?;
            let constraint = env.constraint(schema).map_err(|e| {
                ApiError::Invalid(format!("the JSON schema cannot be used (llguidance): {e}"))
            })?;
            Some(Constraint::Schema(Box::new(constraint)))
        }
        _ => None,
    };
    let seq = Sequence::new(
        request,
        Shape {
            tools,
            constraint,
            forced,
        },
        ids.clone(),
        text.stream_decoder(true),
        text.eos.iter().copied().collect(),
        context,
    );
    Ok((seq, ids))
}
