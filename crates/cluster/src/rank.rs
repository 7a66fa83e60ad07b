//! One rank of a cluster job: load the model, join the ring, agree on the model and the layer
//! split, then run its stage of the pipeline until rank 0 says stop.
//!
//! The pipeline, per step: rank 0 embeds the tokens and runs its blocks, then sends a header
//! (kind, length, the token ids) and the hidden states to rank 1; each rank runs its blocks
//! and passes both on; the last rank applies the final norm and output layer, samples, and
//! sends the token to rank 0, its right neighbour in the ring (MLX's ring sends only to
//! neighbours, which a pipeline needs). Rank 0 alone decides when to stop. Each rank keeps
//! the KV cache of its own blocks. Every wait for another node is bounded by the watchdog.
//!
//! A rank reports on standard output as JSON lines ([`Event`]), which the launcher reads.

use std::{
    io::Write,
    os::{fd::AsRawFd, unix::net::UnixStream},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use minibar_engine::{
    generate::PREFILL_CHUNK,
    sample::{Sampler, SamplingParams},
    LoadOptions,
};
use minibar_text::{GgufMetadata, Message, StopMatcher, TextModel};
use mlx_rs::{Array, Dtype};
use serde::{Deserialize, Serialize};

use crate::{
    control::{self, Ask, Endpoint, Request},
    dist::{Backend, Group},
    doorbell::{self, Doorbells},
    error::{ClusterError, Result},
    handshake::{self, Announce},
    hostfile::Hostfile,
    split,
    stage::Stage,
    watchdog::Watchdog,
};

/// What a cluster job asks for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Prompt {
    /// Token ids, as they are.
    Tokens(Vec<u32>),
    /// A user message (and optional system prompt) through the model's chat template.
    Chat {
        /// The system prompt.
        system: Option<String>,
        /// The user's message.
        user: String,
    },
    /// Raw text to continue.
    Raw(String),
    /// A whole conversation through the chat template; the oldest messages are left out
    /// when it does not fit, as in a one-process chat.
    Messages(Vec<Message>),
}

/// A job every rank is given (the prompt and limits matter on rank 0 only; the other ranks
/// learn the tokens and sampling settings through the pipeline).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Job {
    /// The model file or folder; the same model on every node.
    pub model: PathBuf,
    /// What to continue.
    pub prompt: Prompt,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Sampling settings (applied by the last rank).
    pub sampling: SamplingParams,
    /// Keep going past end-of-sequence (benchmarks).
    pub ignore_eos: bool,
    /// Stop when one of these appears in the text (left out of it).
    pub stop: Vec<String>,
    /// Context window (default: the model's, at most 8192).
    pub context: Option<usize>,
    /// Seconds a rank waits for another before it gives up and names it.
    pub stall_timeout: f64,
    /// Seconds for every node to load the model and connect.
    pub startup_timeout: f64,
    /// Agree on the model and the split, report the plan, and stop (`minibar cluster status`).
    pub check_only: bool,
    /// Stay up: rank 0 takes jobs from this control socket (see [`crate::control`]) instead
    /// of running `prompt` once, and every rank serves job after job until told to stop.
    pub control: Option<PathBuf>,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            model: PathBuf::new(),
            prompt: Prompt::Tokens(Vec::new()),
            max_tokens: 128,
            sampling: SamplingParams::default(),
            ignore_eos: false,
            stop: Vec::new(),
            context: None,
            stall_timeout: 20.0,
            startup_timeout: 300.0,
            check_only: false,
            control: None,
        }
    }
}

impl Job {
    /// The job's prompt and settings, as a running cluster is asked them.
    pub fn ask(&self) -> Ask {
        Ask {
            prompt: self.prompt.clone(),
            max_tokens: self.max_tokens,
            sampling: self.sampling.clone(),
            ignore_eos: self.ignore_eos,
            stop: self.stop.clone(),
        }
    }
}

/// One node's place in the plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodePlan {
    /// Its rank.
    pub rank: usize,
    /// Its address (or "this machine").
    pub node: String,
    /// Bytes it may use for the model (minibar-fit's budget, shared among ranks on one machine).
    pub budget: u64,
    /// The layers it holds, `[start, end)`.
    pub layers: [usize; 2],
    /// Bytes of the model's weights it holds (its blocks' share of the files).
    #[serde(default)]
    pub held: u64,
}

/// One rank's measured share of the decode phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RankFigures {
    /// Milliseconds per token spent computing.
    pub compute_ms_per_token: f64,
    /// Milliseconds per token spent sending and receiving (after the sender rang, so not
    /// waiting for another rank's compute).
    pub comm_ms_per_token: f64,
    /// Bytes it sent per token.
    pub bytes_per_token: f64,
}

/// What rank 0 reports at the end of a generation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The generated ids.
    pub tokens: Vec<u32>,
    /// Their text.
    pub text: String,
    /// Why generation ended (eos, length, context_full).
    pub finish: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Oldest messages left out so the conversation fits the context window.
    #[serde(default)]
    pub dropped_messages: usize,
    /// Seconds from the start of prefill to the first token.
    pub ttft_s: f64,
    /// Tokens per second after the first.
    pub decode_tps: f64,
    /// Bytes all ranks sent per generated token.
    pub bytes_per_token: f64,
    /// Milliseconds per token all ranks spent sending and receiving.
    pub comm_ms_per_token: f64,
    /// Each rank's figures, rank 0 first.
    pub ranks: Vec<RankFigures>,
}

/// A line a rank writes on standard output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The ranks agreed (rank 0 reports the whole plan).
    Plan {
        /// Every node, rank 0 first.
        nodes: Vec<NodePlan>,
        /// minibar-fit's verdict on the split ("fits across 3 nodes: ...").
        #[serde(default)]
        verdict: String,
    },
    /// A generated token (rank 0).
    Token {
        /// Its id.
        id: u32,
        /// Its text, once decodable.
        text: String,
    },
    /// The generation ended (rank 0).
    Done(Report),
    /// The cluster is formed and this rank serves jobs (rank 0 names its control socket).
    Up {
        /// Rank 0's control socket.
        #[serde(default)]
        socket: Option<PathBuf>,
    },
    /// This rank failed.
    Error {
        /// Which rank.
        rank: usize,
        /// Why, naming the node at fault where known.
        message: String,
    },
}

/// Writes one event line on standard output.
pub fn emit(event: &Event) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(event) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

const STOP: i32 = 0;
const PREFILL: i32 = 1;
const SAMPLE: i32 = 2;
const SETUP: i32 = 3;
/// The cluster is shutting down (after a job's `STOP`, in a cluster that stays up).
const QUIT: i32 = 4;
/// Kind, length, then up to a prefill chunk of token ids.
const HEADER: usize = 2 + PREFILL_CHUNK;
/// The sampling settings' JSON is far below this; anything longer is not from a peer.
const MAX_SETUP: usize = 1 << 16;

/// Where this process stands: its rank and the hostfile, from `MLX_RANK` and `MLX_HOSTFILE`
/// (absent both, a one-process run).
fn place() -> Result<(usize, Option<Hostfile>)> {
    let Some(path) = std::env::var_os("MLX_HOSTFILE") else {
        return Ok((0, None));
    };
    let hosts = Hostfile::read(std::path::Path::new(&path))?;
    let rank: usize = std::env::var("MLX_RANK")
        .ok()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| {
            ClusterError::Job("MLX_HOSTFILE is set but MLX_RANK is not a number".into())
        })?;
    if rank >= hosts.len() {
        return Err(ClusterError::Job(format!(
            "MLX_RANK is {rank} but the hostfile lists {} ranks",
            hosts.len()
        )));
    }
    Ok((rank, Some(hosts)))
}

/// Runs this process's rank of `job`, reporting events on standard output; an error is
/// reported as an [`Event::Error`] too.
pub fn run_and_report(job: &Job) -> Result<()> {
    let rank = place().map(|(r, _)| r).unwrap_or(0);
    let result = run(job);
    if let Err(e) = &result {
        emit(&Event::Error {
            rank,
            message: e.to_string(),
        });
    }
    result
}

/// Runs this process's rank of `job`.
pub fn run(job: &Job) -> Result<()> {
    let (rank, hosts) = place()?;
    let names: Vec<String> = match &hosts {
        Some(h) => (0..h.len()).map(|r| h.name(r)).collect(),
        None => vec!["rank 0 (this machine)".into()],
    };
    let me = names[rank].clone();
    // The client of the job under way (a cluster that stays up) hears of a stall too.
    let client: Arc<Mutex<Option<UnixStream>>> = Arc::default();
    let told = client.clone();
    let dog = Watchdog::start(move |message| {
        let error = Event::Error {
            rank,
            message: format!("{me}: {message}"),
        };
        if let Some(stream) = told.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            control::send(stream, &error);
        }
        emit(&error)
    });
    let serving = rank == 0 && !job.check_only;
    if let (Some(socket), true) = (&job.control, serving) {
        // Before the load: a second cluster on the same socket is refused at once.
        control::check_free(socket)?;
    }
    let startup = Duration::from_secs_f64(job.startup_timeout.max(1.0));
    let stall = Duration::from_secs_f64(job.stall_timeout.max(0.1));

    let snapshot = minibar_fit::snapshot();
    let budget = minibar_fit::Budget::this_machine(&snapshot, 0, None).usable;
    // Rank 0 tokenizes and detokenizes; token prompts run without a tokenizer if there is none.
    let text = match (&job.prompt, serving) {
        (_, false) => None,
        (Prompt::Tokens(_), true) if job.control.is_none() => text_model(&job.model).ok(),
        (_, true) => Some(text_model(&job.model)?),
    };
    // The split comes before the load, so that each node reads only its own layers' weights.
    let args = minibar_engine::read_args(&job.model)?;
    let (weights, bytes) = handshake::weights_fingerprint(&job.model)?;
    let mine = Announce {
        protocol: handshake::PROTOCOL,
        build: handshake::build_hash(),
        shape: handshake::shape_hash(&args),
        bytes,
        weights,
        budget,
        doorbell: 0,
    };
    let layers = args.num_hidden_layers.max(0) as usize;
    let (group, announced, bells) = match &hosts {
        Some(h) => {
            let ip = h
                .machine(rank)
                .expect("a rank of the hostfile has an address");
            let listener = doorbell::listen(ip)?;
            let mine = Announce {
                doorbell: listener.local_addr().map(|a| a.port()).unwrap_or(0),
                ..mine
            };
            let _w = dog.wait(
                startup,
                "joining the cluster (every node must start and connect)",
            );
            let group = Group::init(Backend::Ring)?;
            let announced = handshake::exchange(&group, &mine, h)?;
            let size = announced.len();
            let (prev, next) = ((rank + size - 1) % size, (rank + 1) % size);
            let next_ip = h
                .machine(next)
                .expect("a rank of the hostfile has an address");
            let bells = Doorbells::connect(
                listener,
                rank,
                (prev, names[prev].clone()),
                (
                    std::net::SocketAddr::new(next_ip, announced[next].doorbell),
                    names[next].clone(),
                ),
                startup,
            )?;
            (Some(group), announced, Some(bells))
        }
        None => (None, vec![mine], None),
    };
    let size = announced.len();
    let machines: Vec<_> = (0..size)
        .map(|r| hosts.as_ref().and_then(|h| h.machine(r)))
        .collect();
    let budgets: Vec<u64> = announced.iter().map(|a| a.budget).collect();
    let shares = split::shares(&budgets, &machines);
    let fit = minibar_fit::fits_across(layers, bytes, &shares);
    if !fit.fits {
        return Err(ClusterError::Split(fit.reason));
    }
    let status = control::Status {
        model: job.model.clone(),
        nodes: fit
            .ranges
            .iter()
            .zip(&fit.held)
            .enumerate()
            .map(|(r, (l, &held))| NodePlan {
                rank: r,
                node: names[r].clone(),
                budget: shares[r],
                layers: [l.start, l.end],
                held,
            })
            .collect(),
        verdict: fit.reason.clone(),
    };
    if rank == 0 {
        emit(&Event::Plan {
            nodes: status.nodes.clone(),
            verdict: status.verdict.clone(),
        });
    }
    let ranges = fit.ranges;
    if job.check_only {
        return Ok(());
    }
    let loaded = {
        let _w = dog.wait(startup, "loading this node's layers");
        minibar_engine::load(
            &job.model,
            &LoadOptions {
                layers: Some(ranges[rank].clone()),
                ..LoadOptions::default()
            },
        )?
    };
    let context = job
        .context
        .unwrap_or_else(|| (loaded.context_length() as usize).min(8192));
    if let Some(group) = &group {
        // Every node holds its layers before the first token, so the token timeouts time
        // tokens, not loads.
        let _w = dog.wait(startup, "waiting for every node to load its layers");
        let ready = group.all_sum(&mlx_rs::Array::from_slice(&[1i32], &[1]))?;
        ready.eval()?;
    }
    let stage = Stage::new(loaded.model);
    let dtype = stage.hidden_dtype()?;
    let mut pipe = Pipeline {
        group,
        bells,
        stage,
        dog: &dog,
        names,
        rank,
        size,
        stall,
        dtype,
        figures: Figures::default(),
        step_comm: Default::default(),
    };
    match (&job.control, rank) {
        (None, 0) => {
            let prompt = pipe.prompt_ids(&job.ask(), text.as_ref(), context)?;
            let report = pipe.generate(&prompt, &job.ask(), text.as_ref(), context, &mut |e| {
                emit(e);
                true
            })?;
            emit(&Event::Done(report));
        }
        (None, _) => pipe.serve(false)?,
        (Some(socket), 0) => {
            let endpoint = Endpoint::bind(socket)?;
            emit(&Event::Up {
                socket: Some(endpoint.path().to_owned()),
            });
            pipe.take_jobs(&endpoint, text.as_ref(), context, &client, &status)?;
        }
        (Some(_), _) => {
            emit(&Event::Up { socket: None });
            pipe.serve(true)?;
        }
    }
    Ok(())
}

/// The tokenizer and template of a model file or folder.
fn text_model(path: &std::path::Path) -> Result<TextModel> {
    Ok(if path.is_file() {
        let meta = GgufMetadata::open(path).map_err(|e| {
            ClusterError::Job(format!("{}: not a readable GGUF file: {e}", path.display()))
        })?;
        TextModel::from_gguf(&meta)?
    } else {
        TextModel::from_hf_dir(path)?
    })
}

/// A rank's decode-phase figures.
#[derive(Default)]
struct Figures {
    samples: usize,
    decode_steps: usize,
    decode_compute: Duration,
    decode_comm: Duration,
    decode_bytes: u64,
}

struct Pipeline<'a> {
    group: Option<Group>,
    bells: Option<Doorbells>,
    stage: Stage,
    dog: &'a Watchdog,
    names: Vec<String>,
    rank: usize,
    size: usize,
    stall: Duration,
    dtype: Dtype,
    figures: Figures,
    /// Time spent communicating in the step under way.
    step_comm: std::cell::Cell<Duration>,
}

fn header(kind: i32, len: usize, ids: &[u32]) -> Array {
    let mut words = vec![0i32; HEADER];
    words[0] = kind;
    words[1] = len as i32;
    for (w, &id) in words[2..].iter_mut().zip(ids) {
        *w = id as i32;
    }
    Array::from_slice(&words, &[HEADER as i32])
}

impl Pipeline<'_> {
    fn group(&self) -> &Group {
        self.group
            .as_ref()
            .expect("a multi-rank pipeline has a group")
    }

    /// Evaluates `arrays`, bounded by the watchdog as a wait for `what`.
    /// An error of MLX's (a lost connection) is reported as `what`, which names the node.
    fn eval_waiting(&self, arrays: Vec<&Array>, what: String) -> Result<()> {
        let _w = self.dog.wait(self.stall, what.clone());
        mlx_rs::transforms::eval(arrays)
            .map_err(|e| ClusterError::Node(format!("{what} (MLX: {})", e.what())))
    }

    /// `eval_waiting` for a transfer, timed as communication.
    fn eval_comm(&self, arrays: Vec<&Array>, what: String) -> Result<()> {
        let t = Instant::now();
        self.eval_waiting(arrays, what)?;
        self.step_comm.set(self.step_comm.get() + t.elapsed());
        Ok(())
    }

    /// Rings the next rank's doorbell: messages follow.
    fn ring(&mut self) -> Result<()> {
        self.bells
            .as_mut()
            .expect("a multi-rank pipeline has doorbells")
            .ring()
    }

    /// Sleeps until the previous rank rings, at most the stall bound.
    fn wait_for(&mut self, what: &str) -> Result<()> {
        let stall = self.stall;
        self.bells
            .as_mut()
            .expect("a multi-rank pipeline has doorbells")
            .wait(stall, what)
    }

    /// Sends `arrays` to `dst` in order, one evaluation each (MLX runs the independent sends
    /// of one evaluation in any order, and the receiver expects this one); `with` is
    /// evaluated with the last. Returns the bytes sent.
    fn send_all(
        &self,
        arrays: &[&Array],
        dst: usize,
        with: Vec<&Array>,
        what: &str,
    ) -> Result<usize> {
        let mut with = Some(with);
        for (i, a) in arrays.iter().enumerate() {
            let sent = self.group().send(a, dst)?;
            let mut ev = vec![&sent];
            if i + 1 == arrays.len() {
                ev.extend(with.take().unwrap_or_default());
            }
            self.eval_comm(ev, format!("{} {what}", self.names[dst]))?;
        }
        Ok(arrays.iter().map(|a| a.nbytes()).sum())
    }

    /// Counts a step's compute and communication time and bytes sent, in the decode phase.
    fn account(&mut self, kind: i32, started: Instant, bytes: usize) {
        let comm = self.step_comm.take();
        if kind != SAMPLE {
            return;
        }
        self.figures.samples += 1;
        if self.figures.samples > 1 {
            self.figures.decode_steps += 1;
            self.figures.decode_compute += started.elapsed().saturating_sub(comm);
            self.figures.decode_comm += comm;
            self.figures.decode_bytes += bytes as u64;
        }
    }

    /// Rank 0's step: run `ids` through the first stage, pass them on, and for `SAMPLE` wait
    /// for the token (or, alone, sample it here).
    fn step(
        &mut self,
        kind: i32,
        ids: &[u32],
        local: &mut Option<(Sampler, Vec<u32>)>,
    ) -> Result<Option<u32>> {
        let started = Instant::now();
        let h = self.stage.run(self.stage.embed(ids)?)?;
        if self.size == 1 {
            let token = if kind == SAMPLE {
                let logits = self.stage.last_logits(&h)?;
                let mut ev = vec![&logits];
                ev.extend(self.stage.cache_arrays());
                mlx_rs::transforms::eval(ev)?;
                let (sampler, history) = local.as_mut().expect("a one-rank run samples locally");
                Some(sampler.sample(&logits, history)?)
            } else {
                mlx_rs::transforms::eval(self.stage.cache_arrays())?;
                None
            };
            self.account(kind, started, 0);
            return Ok(token);
        }
        let hdr = header(kind, ids.len(), ids);
        let mut ev = vec![&h];
        ev.extend(self.stage.cache_arrays());
        mlx_rs::transforms::eval(ev)?;
        self.ring()?;
        let bytes = self.send_all(&[&hdr, &h], 1, Vec::new(), "stopped taking activations")?;
        self.account(kind, started, bytes);
        if kind != SAMPLE {
            return Ok(None);
        }
        let last = self.size - 1;
        self.wait_for("the next token")?;
        let token = self.group().recv(&[1], Dtype::Int32, last)?;
        self.eval_comm(
            vec![&token],
            format!(
                "no token from {} (it, or a node before it in the pipeline, stopped)",
                self.names[last]
            ),
        )?;
        Ok(Some(token.item_exact::<i32>() as u32))
    }

    /// Rank 0: the prompt's token ids and the messages left out, checked against the context
    /// window. Nothing is sent yet, so an error here fails the job, not the cluster.
    fn prompt_ids(
        &self,
        ask: &Ask,
        text: Option<&TextModel>,
        context: usize,
    ) -> Result<(Vec<u32>, usize)> {
        let tokenizer = || {
            text.ok_or_else(|| {
                ClusterError::Job("the model has no tokenizer to read a text prompt".into())
            })
        };
        let (prompt, dropped) = match &ask.prompt {
            Prompt::Tokens(t) => (t.clone(), 0),
            Prompt::Chat { system, user } => {
                let mut m = Vec::new();
                if let Some(s) = system {
                    m.push(Message::system(s.clone()));
                }
                m.push(Message::user(user.clone()));
                (tokenizer()?.encode_chat(&m, true)?, 0)
            }
            Prompt::Raw(s) => (tokenizer()?.encode(s, true)?, 0),
            Prompt::Messages(m) => minibar_engine::session::conversation_tokens(
                tokenizer()?,
                m,
                context,
                ask.max_tokens,
            )?,
        };
        if prompt.is_empty() {
            return Err(ClusterError::Job("the prompt is empty".into()));
        }
        if prompt.len() >= context {
            return Err(ClusterError::Job(format!(
                "the prompt has {} tokens but the context window is {context}",
                prompt.len()
            )));
        }
        Ok((prompt, dropped))
    }

    /// Rank 0: prefill the prompt, then generate until a stop condition, passing each token
    /// to `sink` (which returns false when no one listens any more: the job then ends early).
    fn generate(
        &mut self,
        (prompt, dropped): &(Vec<u32>, usize),
        job: &Ask,
        text: Option<&TextModel>,
        context: usize,
        sink: &mut dyn FnMut(&Event) -> bool,
    ) -> Result<Report> {
        let prompt = prompt.clone();
        let mut local = None;
        if self.size == 1 {
            local = Some((Sampler::new(job.sampling.clone()), prompt.clone()));
        } else {
            let setup = serde_json::to_vec(&job.sampling)
                .map_err(|e| ClusterError::Job(format!("sampling settings: {e}")))?;
            let hdr = header(SETUP, setup.len(), &[]);
            let body = Array::from_slice(&setup, &[setup.len() as i32]);
            self.ring()?;
            self.send_all(&[&hdr, &body], 1, Vec::new(), "stopped taking messages")?;
        }

        let start = Instant::now();
        let chunks: Vec<&[u32]> = prompt.chunks(PREFILL_CHUNK).collect();
        let mut token = None;
        for (i, chunk) in chunks.iter().enumerate() {
            let kind = if i + 1 == chunks.len() {
                SAMPLE
            } else {
                PREFILL
            };
            token = self.step(kind, chunk, &mut local)?;
        }
        let mut token = token.ok_or_else(|| ClusterError::Job("no first token".into()))?;
        let eos: Vec<u32> = text
            .map(|t| t.eos.iter().copied().collect())
            .unwrap_or_default();
        let mut decoder = text.map(|t| t.stream_decoder(true));
        let mut stops = StopMatcher::new(job.stop.iter().cloned());
        let mut text_out = String::new();
        let mut tokens = Vec::new();
        let mut cached = prompt.len();
        let (mut ttft, mut first_at) = (Duration::ZERO, None);
        let mut decode_time: Duration;
        let finish = loop {
            let now = Instant::now();
            let first = *first_at.get_or_insert(now);
            if tokens.is_empty() {
                ttft = now - start;
            }
            decode_time = now - first;
            tokens.push(token);
            if let Some((_, history)) = local.as_mut() {
                history.push(token);
            }
            if !job.ignore_eos && eos.contains(&token) {
                break "eos";
            }
            let piece = match decoder.as_mut() {
                Some(d) => d.push(token)?.unwrap_or_default(),
                None => String::new(),
            };
            // As a one-process chat does: text that may begin a stop string is held back.
            let out = stops.push(&piece);
            text_out.push_str(&out.text);
            if !sink(&Event::Token {
                id: token,
                text: out.text,
            }) {
                break "cancelled";
            }
            if out.stopped {
                break "stop";
            }
            if tokens.len() >= job.max_tokens {
                break "length";
            }
            if cached + 1 >= context {
                break "context_full";
            }
            token = self
                .step(SAMPLE, &[token], &mut local)?
                .ok_or_else(|| ClusterError::Job("a sampling step returned no token".into()))?;
            cached += 1;
        };
        if self.size > 1 {
            let stop = header(STOP, 0, &[]);
            self.ring()?;
            self.send_all(&[&stop], 1, Vec::new(), "stopped taking messages")?;
        }
        let ranks = self.exchange_figures()?;
        let steps = tokens.len().saturating_sub(1);
        if finish != "stop" {
            // What the decoder held back, and what the stop strings did.
            if let Some(Ok(Some(rest))) = decoder.as_mut().map(|d| d.finish()) {
                text_out.push_str(&stops.push(&rest).text);
            }
            if !stops.stopped() {
                text_out.push_str(&stops.finish());
            }
        }
        Ok(Report {
            text: text_out,
            finish: finish.into(),
            prompt_tokens: prompt.len(),
            dropped_messages: *dropped,
            ttft_s: ttft.as_secs_f64(),
            decode_tps: if decode_time.is_zero() {
                0.0
            } else {
                steps as f64 / decode_time.as_secs_f64()
            },
            bytes_per_token: ranks.iter().map(|r| r.bytes_per_token).sum(),
            comm_ms_per_token: ranks.iter().map(|r| r.comm_ms_per_token).sum(),
            ranks,
            tokens,
        })
    }

    /// Every rank's decode figures, on every rank (one `all_sum`).
    fn exchange_figures(&self) -> Result<Vec<RankFigures>> {
        let f = &self.figures;
        let per = |x: f64| {
            if f.decode_steps == 0 {
                0.0
            } else {
                x / f.decode_steps as f64
            }
        };
        let mine = [
            per(f.decode_compute.as_secs_f64() * 1e3) as f32,
            per(f.decode_comm.as_secs_f64() * 1e3) as f32,
            per(f.decode_bytes as f64) as f32,
        ];
        let rows: Vec<[f32; 3]> = match &self.group {
            None => vec![mine],
            Some(g) => {
                let mut flat = vec![0f32; self.size * 3];
                flat[self.rank * 3..self.rank * 3 + 3].copy_from_slice(&mine);
                let sum = g.all_sum(&Array::from_slice(&flat, &[flat.len() as i32]))?;
                self.eval_waiting(
                    vec![&sum],
                    "exchanging the figures at the end (a node stopped)".into(),
                )?;
                sum.as_slice::<f32>()
                    .chunks(3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect()
            }
        };
        Ok(rows
            .into_iter()
            .map(|[c, m, b]| RankFigures {
                compute_ms_per_token: c as f64,
                comm_ms_per_token: m as f64,
                bytes_per_token: b as f64,
            })
            .collect())
    }

    /// Ranks after 0: run each step that arrives, until rank 0 says stop (`up`: job after
    /// job, waiting as long as it takes between jobs, until rank 0 says quit).
    fn serve(&mut self, up: bool) -> Result<()> {
        let (prev, next) = (self.rank - 1, (self.rank + 1) % self.size);
        let last = self.rank == self.size - 1;
        let mut sampler = Sampler::new(SamplingParams::default());
        let mut history: Vec<u32> = Vec::new();
        let from_prev = format!("{} stopped sending", self.names[prev]);
        let mut idle = up;
        loop {
            if idle {
                self.bells
                    .as_mut()
                    .expect("a multi-rank pipeline has doorbells")
                    .wait_idle("the next job")?;
                idle = false;
            } else {
                self.wait_for("the next step")?;
            }
            let hdr = self.group().recv(&[HEADER as i32], Dtype::Int32, prev)?;
            self.eval_comm(vec![&hdr], from_prev.clone())?;
            let words: Vec<i32> = hdr.as_slice::<i32>().to_vec();
            let (kind, len) = (words[0], words[1]);
            let bad = |what: &str| {
                ClusterError::Node(format!(
                    "{} sent {what} (kind {kind}, length {len}): is it another Minibar build?",
                    self.names[prev]
                ))
            };
            match kind {
                STOP | QUIT => {
                    if !last {
                        self.ring()?;
                        self.send_all(&[&hdr], next, Vec::new(), "stopped taking messages")?;
                    }
                    if kind == QUIT {
                        return Ok(());
                    }
                    self.exchange_figures()?;
                    if !up {
                        return Ok(());
                    }
                    self.end_job();
                    idle = true;
                }
                SETUP => {
                    if !(1..=MAX_SETUP as i32).contains(&len) {
                        return Err(bad("a malformed setup message"));
                    }
                    let body = self.group().recv(&[len], Dtype::Uint8, prev)?;
                    self.eval_waiting(vec![&body], from_prev.clone())?;
                    if last {
                        let params: SamplingParams = serde_json::from_slice(body.as_slice::<u8>())
                            .map_err(|_| bad("sampling settings this build cannot read"))?;
                        sampler = Sampler::new(params);
                        history.clear();
                    } else {
                        self.ring()?;
                        self.send_all(&[&hdr, &body], next, Vec::new(), "stopped taking messages")?;
                    }
                }
                PREFILL | SAMPLE => {
                    if !(1..=PREFILL_CHUNK as i32).contains(&len) {
                        return Err(bad("a malformed step"));
                    }
                    let started = Instant::now();
                    let x =
                        self.group()
                            .recv(&[1, len, self.stage.hidden_size()], self.dtype, prev)?;
                    let h = self.stage.run(x)?;
                    if !last {
                        // Compute first, then ring and send: the next rank sleeps meanwhile.
                        let mut ev = vec![&h];
                        ev.extend(self.stage.cache_arrays());
                        self.eval_waiting(ev, from_prev.clone())?;
                        self.ring()?;
                        let bytes = self.send_all(
                            &[&hdr, &h],
                            next,
                            Vec::new(),
                            "stopped taking activations",
                        )?;
                        self.account(kind, started, bytes);
                        continue;
                    }
                    history.extend(words[2..2 + len as usize].iter().map(|&w| w as u32));
                    if kind == SAMPLE {
                        let logits = self.stage.last_logits(&h)?;
                        let mut ev = vec![&logits];
                        ev.extend(self.stage.cache_arrays());
                        self.eval_waiting(ev, from_prev.clone())?;
                        let token = sampler.sample(&logits, &history)?;
                        let out = Array::from_slice(&[token as i32], &[1]);
                        self.ring()?;
                        self.send_all(&[&out], next, Vec::new(), "stopped taking tokens")?;
                        self.account(kind, started, out.nbytes());
                    } else {
                        self.eval_waiting(self.stage.cache_arrays(), from_prev.clone())?;
                    }
                }
                _ => return Err(bad("an unknown message")),
            }
        }
    }

    /// Frees the job's KV caches and forgets its figures: the next job starts afresh.
    fn end_job(&mut self) {
        self.stage.reset();
        self.figures = Figures::default();
        let _ = mlx_rs::memory::clear_cache();
    }

    /// Rank 0 of a cluster that stays up: take jobs from `endpoint`, one at a time, until a
    /// client asks to shut down. A job's own error (a prompt too long) is the client's alone;
    /// a node's fault ends the job with the error naming the node, and this rank with it.
    fn take_jobs(
        &mut self,
        endpoint: &Endpoint,
        text: Option<&TextModel>,
        context: usize,
        client: &Mutex<Option<UnixStream>>,
        status: &control::Status,
    ) -> Result<()> {
        loop {
            self.wait_for_client(endpoint)?;
            let Some((mut stream, request)) = endpoint.next_request()? else {
                continue;
            };
            let ask = match request {
                Request::Shutdown => {
                    if self.size > 1 {
                        let quit = header(QUIT, 0, &[]);
                        self.ring()?;
                        self.send_all(&[&quit], 1, Vec::new(), "stopped taking messages")?;
                    }
                    return Ok(());
                }
                Request::Status => {
                    control::send_status(&mut stream, status);
                    continue;
                }
                Request::Generate(ask) => ask,
            };
            let prompt = match self.prompt_ids(&ask, text, context) {
                Ok(p) => p,
                Err(e) => {
                    control::send(
                        &mut stream,
                        &Event::Error {
                            rank: 0,
                            message: e.to_string(),
                        },
                    );
                    continue;
                }
            };
            *client.lock().unwrap_or_else(|e| e.into_inner()) = stream.try_clone().ok();
            let mut listening = true;
            let result = self.generate(&prompt, &ask, text, context, &mut |e| {
                listening =
                    listening && !control::asked_to_stop(&stream) && control::send(&mut stream, e);
                listening
            });
            *client.lock().unwrap_or_else(|e| e.into_inner()) = None;
            self.end_job();
            match result {
                Ok(report) => {
                    control::send(&mut stream, &Event::Done(report));
                }
                Err(e) => {
                    let message = e.to_string();
                    control::send(&mut stream, &Event::Error { rank: 0, message });
                    return Err(e);
                }
            }
        }
    }

    /// Sleeps until a client connects; meanwhile a node that stops (its neighbour closes the
    /// doorbell, and so on round the ring to this rank) ends this rank too, so the cluster
    /// can re-form, and so does the end of the launcher that started it (its lifeline).
    fn wait_for_client(&mut self, endpoint: &Endpoint) -> Result<()> {
        let watch = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut fds = vec![watch(endpoint.listener().as_raw_fd())];
        let bell = self.bells.as_ref().map(|b| {
            fds.push(watch(b.prev_fd()));
            fds.len() - 1
        });
        let lifeline = std::env::var_os(crate::launch::LIFELINE).map(|_| {
            fds.push(watch(std::io::stdin().as_raw_fd()));
            fds.len() - 1
        });
        loop {
            // SAFETY: poll(2) on descriptors this rank owns, for as long as they live.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ClusterError::Io {
                    what: "waiting for a client".into(),
                    source: e,
                });
            }
            if lifeline.is_some_and(|i| fds[i].revents != 0) {
                return Err(ClusterError::Node(
                    "the launcher of this rank (`minibar cluster up`) ended, so the cluster ends"
                        .into(),
                ));
            }
            if bell.is_some_and(|i| fds[i].revents != 0) {
                // Nothing may arrive between jobs: this read sees the close (or a stray byte).
                self.wait_for("the next job")?;
                return Err(ClusterError::Node(format!(
                    "{} rang between jobs: is it another Minibar build?",
                    self.names[self.size - 1]
                )));
            }
            if fds[0].revents != 0 {
                return Ok(());
            }
        }
    }
}
