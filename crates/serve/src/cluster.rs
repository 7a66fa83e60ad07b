//! A cluster's model behind the scheduler's queue (`minibar serve --cluster`): instead of
//! an engine thread holding a model, a worker hands each request to a cluster that is up
//! (minibar-cluster's control socket on this machine), one at a time, as the cluster decodes
//! one sequence at a time.
//!
//! Only the sampling happens elsewhere. The worker tokenizes with the model's own tokenizer
//! and template (the model's files are on this machine: the cluster's rank 0 reads them),
//! sends the prompt's tokens as one job, and hands each token that comes back to the
//! request's [`Sequence`], as the local engine hands it an argmax it chose
//! ([`Sequence::take`]). So detokenizing, stop strings, end of sequence, the length limit,
//! usage and tool calls are the local server's own, and greedy text is the same.
//!
//! Invariant: a sequence sees each generated token once, in order, and nothing after it
//! ended; when it ends first (a stop string, a client gone), the cluster's job is stopped.
//! Replies held to a grammar token by token (JSON mode, a forced tool call) cannot be
//! served: the cluster's last rank samples, and a mask from here cannot reach it.

use std::{path::PathBuf, sync::atomic::Ordering, sync::mpsc, time::Duration};

use minibar_cluster::{Ask, Client, ClusterError, Event as ClusterEvent, Prompt as ClusterPrompt};
use minibar_engine::FinishReason;
use minibar_text::TextModel;

use crate::{
    errors::ApiError,
    scheduler::{per_token, prepare, Event, Load, ModelInfo, PerToken, Prompt, Request},
    sequence::Sequence,
    ServeError,
};

/// How long the cluster may take to say what it holds at start (it answers between jobs).
const STATUS_WAIT: Duration = Duration::from_secs(30);

/// The worker: the cluster's client and the model's tokenizer.
pub(crate) struct Worker {
    client: Client,
    text: TextModel,
    info: ModelInfo,
}

impl Worker {
    /// Asks the cluster at `socket` what it holds and reads that model's tokenizer.
    pub fn connect(socket: PathBuf) -> Result<Self, ServeError> {
        let client = Client::new(socket);
        // (Its errors name the socket.)
        let status = client
            .status(STATUS_WAIT)
            .map_err(|e| ServeError::Load(e.to_string()))?;
        let path = status.model;
        let unreadable =
            |e: &dyn std::fmt::Display| ServeError::Load(format!("{}: {e}", path.display()));
        let text = TextModel::open(&path).map_err(|e| unreadable(&e))?;
        let context = default_context(&path).map_err(|e| unreadable(&e))?;
        let info = ModelInfo {
            name: crate::model_name(&path).unwrap_or_else(|| "cluster".into()),
            weight_bytes: file_bytes(&path),
            path,
            context,
        };
        Ok(Self { client, text, info })
    }

    /// The model, as the routes describe it.
    pub fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    /// Serves requests one at a time until the server is gone.
    pub fn run(self, jobs: &mpsc::Receiver<Request>, load: &Load) {
        let mut vocabulary = Default::default();
        while let Ok(request) = jobs.recv() {
            load.queued.fetch_sub(1, Ordering::SeqCst);
            if request.events.is_closed() {
                continue;
            }
            if let Some(refusal) = self.refusal(&request) {
                let _ = request.events.send(Event::Rejected(refusal));
                continue;
            }
            if matches!(request.prompt, Prompt::Load) {
                // The cluster holds its model until `minibar cluster down`.
                request.answer_loaded();
                continue;
            }
            // (The texts are made only for constrained replies, which are refused above.)
            match prepare(&self.text, self.info.context, &request, &mut vocabulary) {
                Ok((seq, ids)) => {
                    load.active.store(1, Ordering::SeqCst);
                    self.generate(&request, seq, ids);
                    load.active.store(0, Ordering::SeqCst);
                }
                Err(e) => {
                    let _ = request.events.send(Event::Rejected(e));
                }
            }
        }
    }

    /// Why the cluster cannot serve `request`, if it cannot.
    fn refusal(&self, request: &Request) -> Option<ApiError> {
        if request.model.path != self.info.path {
            return Some(ApiError::UnknownModel(request.model.name.clone()));
        }
        refusal(&request.prompt)
    }

    /// Runs one request's prompt on the cluster, feeding each token to its sequence.
    fn generate(&self, request: &Request, seq: Sequence<'_>, ids: Vec<u32>) {
        let ask = Ask {
            prompt: ClusterPrompt::Tokens(ids),
            max_tokens: request.params.max_tokens,
            sampling: request.params.sampling.clone(),
            ..Ask::default()
        };
        let mut feed = Feed {
            seq,
            started: false,
            taken: 0,
            finish: None,
        };
        let result = self.client.generate(&ask, |event| match event {
            ClusterEvent::Token { id, .. } => feed.take(*id),
            _ => feed.finish.is_none(),
        });
        match result {
            Ok(report) => {
                // The tokens rank 0 ended on without streaming them: the end of sequence.
                for &id in report.tokens.iter().skip(feed.taken) {
                    feed.take(id);
                }
                let Feed {
                    seq,
                    started,
                    finish,
                    ..
                } = feed;
                if !started {
                    seq.started();
                }
                seq.finish(finish.unwrap_or_else(|| finish_of(&report.finish)));
            }
            Err(e) if !feed.started => feed.seq.reject(ApiError::Unavailable(self.failure(&e))),
            Err(e) => feed.seq.events_failed(self.failure(&e)),
        }
    }

    /// A cluster's error as the client reads it: what failed, naming the node where known.
    fn failure(&self, e: &ClusterError) -> String {
        match e {
            // "no cluster is up at <socket>" (it is forming again, or down).
            ClusterError::Control(_) => e.to_string(),
            _ => format!("the cluster failed: {e}"),
        }
    }
}

/// Why a cluster's model cannot answer `prompt`, if it cannot: its reply would be held to a
/// grammar token by token, and the cluster samples on its last node, out of reach.
pub(crate) fn refusal(prompt: &Prompt) -> Option<ApiError> {
    let why = match per_token(prompt)? {
        PerToken::Json => "JSON mode (response_format json_object, Ollama's format \"json\")",
        PerToken::Schema => "a JSON schema (response_format json_schema, Ollama's format {..})",
        PerToken::Call => "a forced tool call (tool_choice \"required\" or a named function)",
    };
    Some(ApiError::Invalid(format!(
        "{why} is not available on a cluster's model: it constrains each token as it is \
         sampled, and the cluster samples on its last node; ask for JSON or the call in the \
         messages instead"
    )))
}

/// A sequence and the tokens it has taken from the cluster.
struct Feed<'t> {
    seq: Sequence<'t>,
    /// Whether the request was told it started: on its first token, so that an error before
    /// it (a node down) is the request's status, not a stream cut short.
    started: bool,
    /// Tokens taken.
    taken: usize,
    /// Why the sequence ended, once it has.
    finish: Option<FinishReason>,
}

impl Feed<'_> {
    /// Hands the next token to the sequence (nothing once it ended); whether to go on.
    fn take(&mut self, id: u32) -> bool {
        if self.finish.is_some() {
            return false;
        }
        if !self.started {
            self.started = true;
            self.seq.started();
        }
        self.taken += 1;
        self.finish = self.seq.take(id);
        self.finish.is_none()
    }
}

/// The local reason for a cluster's `finish` (the sequence usually decides first).
fn finish_of(finish: &str) -> FinishReason {
    match finish {
        "eos" => FinishReason::Eos,
        "length" => FinishReason::Length,
        "context_full" => FinishReason::ContextFull,
        "stop" => FinishReason::Stop,
        _ => FinishReason::Cancelled,
    }
}

/// The context window a cluster gives the model at `path` (`minibar cluster up` sets none):
/// the model's own, at most 8192, as a local load does.
fn default_context(path: &std::path::Path) -> Result<usize, minibar_engine::EngineError> {
    let args = minibar_engine::read_args(path)?;
    Ok((args.context_length().unwrap_or(4096).max(1) as usize).min(8192))
}

/// Bytes of the model's files: its weights, spread over the cluster's nodes.
fn file_bytes(path: &std::path::Path) -> usize {
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len()) as usize;
    if path.is_file() {
        return size(path);
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size(&e.path())).sum())
        .unwrap_or(0)
}
