//! The engine, off the UI thread: one dedicated thread owns the loaded model (MLX arrays and
//! streams are thread-affine) and serves jobs from a channel, one at a time: chat turns, and
//! the benchmark and quantization tasks, which must not run MLX beside a chat.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;

pub use minibar_engine::generate::CancelToken;

use crate::types::{AppError, AppErrorKind, GenerationStats, Role, SamplingParams, StopReason};

/// One turn to generate.
pub struct ChatJob {
    /// The variant id, for events and the memory gauge.
    pub model_id: String,
    /// The file or folder to load it from.
    pub model_path: PathBuf,
    /// The conversation so far, system prompt first, ending with the user's message.
    pub messages: Vec<(Role, String)>,
    /// Sampling settings.
    pub params: SamplingParams,
    /// The context window to allow.
    pub context_length: u64,
    /// Set by `stop_generation`.
    pub cancel: CancelToken,
    /// What minibar-fit's gate is asked before loading: whether the user forced the model,
    /// and the headroom to keep (the context is the job's).
    pub memory: minibar_fit::LoadRequest,
    /// The library whose "in use" lock the loaded model holds (so it cannot be deleted
    /// while loaded); `None` holds nothing.
    pub library: Option<minibar_hub::library::LibraryPaths>,
}

/// What the engine reports as a job runs; called on the engine thread.
pub trait ChatSink: Send {
    /// The model is loaded and prefill starts.
    fn started(&mut self);
    /// A piece of detokenized text.
    fn piece(&mut self, text: &str);
    /// The job ended: its figures, or why it failed.
    fn finished(self: Box<Self>, outcome: Result<GenerationStats, AppError>);
}

/// Runs chat jobs; implemented over minibar-engine by [`MlxEngine`]. Not `Send`: an engine is
/// made on the engine thread (see [`EngineFactory`]) and never leaves it.
pub trait ChatEngine: 'static {
    /// Generates one reply, calling `piece` for each piece of text.
    fn chat(
        &mut self,
        job: &ChatJob,
        piece: &mut dyn FnMut(&str),
    ) -> Result<GenerationStats, AppError>;
    /// Bytes the loaded model holds, and its variant id.
    fn loaded(&self) -> Option<(String, u64)>;
    /// Frees the loaded model (before a task that needs the memory and the machine).
    fn unload(&mut self) {}
}

/// Makes the engine on the engine thread.
pub type EngineFactory = Box<dyn FnOnce() -> Box<dyn ChatEngine> + Send>;

/// Work other than chat that runs on the engine thread (the benchmark, quantization), with
/// the engine at hand to unload its model first.
pub type EngineTask = Box<dyn FnOnce(&mut dyn ChatEngine) + Send>;

enum Request {
    Chat(Box<ChatJob>, Box<dyn ChatSink>),
    Task(EngineTask),
}

/// The handle the app keeps; dropping it ends the thread after the job in flight.
pub struct EngineWorker {
    tx: mpsc::Sender<Request>,
    loaded: std::sync::Arc<std::sync::Mutex<Option<(String, u64)>>>,
}

/// Runs one chat turn. A panic (in the engine or the sink) ends this reply with an error and
/// frees the model, whose state it may have left half-updated; the thread and the next chat
/// go on, as for the benchmark and quantization tasks.
fn run_chat(
    engine: &mut dyn ChatEngine,
    job: &ChatJob,
    sink: &mut dyn ChatSink,
) -> Result<GenerationStats, AppError> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.chat(job, &mut |t| sink.piece(t))
    }));
    outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("minibar: the chat engine panicked: {what}");
        engine.unload();
        Err(AppError::engine(
            "The engine crashed while writing this reply; the model was unloaded. Send again to retry.",
        ))
    })
}

impl EngineWorker {
    /// Starts the engine thread and makes its engine there.
    pub fn spawn(make: EngineFactory) -> std::io::Result<EngineWorker> {
        let (tx, rx) = mpsc::channel::<Request>();
        let loaded = std::sync::Arc::new(std::sync::Mutex::new(None));
        let shared = loaded.clone();
        thread::Builder::new()
            .name("minibar-engine".into())
            .spawn(move || {
                let mut engine = make();
                for request in rx {
                    match request {
                        Request::Chat(job, mut sink) => {
                            sink.started();
                            let outcome = run_chat(engine.as_mut(), &job, sink.as_mut());
                            if let Ok(mut l) = shared.lock() {
                                *l = engine.loaded();
                            }
                            sink.finished(outcome);
                        }
                        Request::Task(task) => {
                            task(engine.as_mut());
                            if let Ok(mut l) = shared.lock() {
                                *l = engine.loaded();
                            }
                        }
                    }
                }
            })?;
        Ok(EngineWorker { tx, loaded })
    }

    /// Queues a job; the sink hears about it on the engine thread.
    pub fn submit(&self, job: ChatJob, sink: Box<dyn ChatSink>) -> Result<(), AppError> {
        self.tx
            .send(Request::Chat(Box::new(job), sink))
            .map_err(|_| AppError::engine("the engine thread has stopped"))
    }

    /// Queues a task behind the jobs already waiting.
    pub fn run_task(&self, task: EngineTask) -> Result<(), AppError> {
        self.tx
            .send(Request::Task(task))
            .map_err(|_| AppError::engine("the engine thread has stopped"))
    }

    /// Queues work that needs the machine to itself (the benchmark, quantization): the chat
    /// model is unloaded first, so its memory is free and nothing else runs MLX meanwhile.
    pub fn run_exclusive(&self, work: Box<dyn FnOnce() + Send>) -> Result<(), AppError> {
        self.run_task(Box::new(move |engine: &mut dyn ChatEngine| {
            engine.unload();
            work();
        }))
    }

    /// The loaded model's variant id and bytes, as of the last job.
    pub fn loaded(&self) -> Option<(String, u64)> {
        self.loaded.lock().ok().and_then(|l| l.clone())
    }
}

/// minibar-engine behind [`ChatEngine`]: opens a chat session for the requested model (kept
/// between turns, so the KV cache of the conversation is reused) and generates.
#[derive(Default)]
pub struct MlxEngine {
    session: Option<Loaded>,
}

struct Loaded {
    model_id: String,
    path: PathBuf,
    context: usize,
    session: minibar_engine::Session,
    /// Held while loaded: deleting the model is refused meanwhile.
    _in_use: Option<minibar_hub::library::ModelInUse>,
}

fn engine_error(e: minibar_engine::EngineError) -> AppError {
    AppError::engine(e.to_string())
}

/// Why a model did not load; a refusal by the memory gate says how to load it anyway.
fn load_error(model_id: &str, e: minibar_engine::EngineError) -> AppError {
    match e {
        minibar_engine::EngineError::WontFit(refusal) => AppError::new(
            AppErrorKind::ModelTooLarge,
            format!(
                "{model_id} won't fit: {}. \"Use anyway\" loads it regardless: it may swap, and MLX's memory limit still applies.",
                refusal.verdict.reason
            ),
        ),
        other => AppError::engine(format!("cannot load {model_id}: {other}")),
    }
}

/// The sampling the UI chose, in the engine's types.
pub(crate) fn sampling(p: &SamplingParams) -> minibar_engine::sample::SamplingParams {
    minibar_engine::sample::SamplingParams {
        temperature: p.temperature as f32,
        top_p: p.top_p as f32,
        top_k: p.top_k as usize,
        min_p: p.min_p as f32,
        repetition_penalty: p.repetition_penalty as f32,
        seed: p.seed,
        ..Default::default()
    }
}

/// The engine's figures in the UI's units.
pub fn stats_of(
    stats: &minibar_engine::GenerationStats,
    finish: minibar_engine::FinishReason,
) -> GenerationStats {
    use minibar_engine::FinishReason as F;
    GenerationStats {
        prompt_tokens: stats.prompt_tokens as u64,
        generated_tokens: stats.generated_tokens as u64,
        ttft_ms: stats.time_to_first_token.as_secs_f64() * 1e3,
        tokens_per_second: stats.decode_tps(),
        total_ms: (stats.prefill_time + stats.decode_time).as_secs_f64() * 1e3,
        stop_reason: match finish {
            F::Eos | F::Stop => StopReason::Eos,
            F::Length | F::ContextFull => StopReason::MaxTokens,
            F::Cancelled => StopReason::Stopped,
        },
    }
}

impl MlxEngine {
    fn session_for(&mut self, job: &ChatJob) -> Result<&mut minibar_engine::Session, AppError> {
        let context = job.context_length.max(256) as usize;
        let same =
            matches!(&self.session, Some(l) if l.path == job.model_path && l.context == context);
        if !same {
            // Free the old weights before loading the new ones.
            self.session = None;
            let in_use = job.library.as_ref().and_then(|library| {
                use minibar_hub::library::{ModelInUse, Use};
                ModelInUse::for_path(library, &job.model_path, Use::Chat).unwrap_or_else(|e| {
                    eprintln!("minibar: cannot mark {} in use: {e}", job.model_id);
                    None
                })
            });
            let options = minibar_engine::LoadOptions {
                memory: job.memory.clone(),
                ..Default::default()
            };
            let session = minibar_engine::Session::open(&job.model_path, &options, Some(context))
                .map_err(|e| load_error(&job.model_id, e))?;
            self.session = Some(Loaded {
                model_id: job.model_id.clone(),
                path: job.model_path.clone(),
                context,
                session,
                _in_use: in_use,
            });
        }
        Ok(&mut self.session.as_mut().expect("just opened").session)
    }
}

impl ChatEngine for MlxEngine {
    fn chat(
        &mut self,
        job: &ChatJob,
        piece: &mut dyn FnMut(&str),
    ) -> Result<GenerationStats, AppError> {
        let messages: Vec<minibar_engine::Message> = job
            .messages
            .iter()
            .map(|(role, content)| minibar_engine::Message {
                role: role.as_str().to_string(),
                content: content.clone(),
            })
            .collect();
        let params = minibar_engine::ChatParams {
            sampling: sampling(&job.params),
            max_tokens: job.params.max_tokens.max(1) as usize,
            ..Default::default()
        };
        let session = self.session_for(job)?;
        let outcome = session
            .chat(&messages, &params, &job.cancel, |t| piece(t))
            .map_err(engine_error)?;
        Ok(stats_of(&outcome.stats, outcome.finish))
    }

    fn unload(&mut self) {
        self.session = None;
    }

    fn loaded(&self) -> Option<(String, u64)> {
        self.session.as_ref().map(|l| {
            let bytes = l.session.model.weight_bytes() + l.session.cache_bytes();
            (l.model_id.clone(), bytes as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job for the model at `gguf` (a file or folder) judged against `usable` bytes.
    fn job(gguf: &std::path::Path, usable: u64, force: bool) -> ChatJob {
        ChatJob {
            model_id: "smollm2".into(),
            model_path: gguf.to_owned(),
            messages: vec![(Role::User, "Say hi.".into())],
            params: SamplingParams {
                max_tokens: 2,
                ..SamplingParams::default()
            },
            context_length: 256,
            cancel: CancelToken::new(),
            library: None,
            memory: minibar_fit::LoadRequest {
                force,
                budget: Some(minibar_fit::Budget {
                    total: 4 * usable,
                    gpu_limit: None,
                    available: Some(usable),
                    held_by_minibar: 0,
                    usable,
                    source: minibar_fit::BudgetSource::ThisMachine,
                }),
                ..Default::default()
            },
        }
    }

    /// Holds a "model" until unloaded; reports each step to the test.
    struct Recorder(std::sync::mpsc::Sender<&'static str>, bool);

    impl ChatEngine for Recorder {
        fn chat(
            &mut self,
            _: &ChatJob,
            _: &mut dyn FnMut(&str),
        ) -> Result<GenerationStats, AppError> {
            unreachable!("no chat in this test")
        }
        fn loaded(&self) -> Option<(String, u64)> {
            self.1.then(|| ("m".to_string(), 1))
        }
        fn unload(&mut self) {
            self.1 = false;
            let _ = self.0.send("unloaded");
        }
    }

    #[test]
    fn exclusive_work_runs_after_the_chat_model_is_unloaded() {
        let (tx, rx) = std::sync::mpsc::channel();
        let engine_tx = tx.clone();
        let worker =
            EngineWorker::spawn(Box::new(move || Box::new(Recorder(engine_tx, true)))).unwrap();
        worker
            .run_exclusive(Box::new(move || {
                let _ = tx.send("work");
            }))
            .unwrap();
        let order: Vec<&str> = rx.iter().take(2).collect();
        assert_eq!(order, ["unloaded", "work"]);
        // The worker's record of the loaded model follows once the task is done.
        for _ in 0..200 {
            if worker.loaded().is_none() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("the model still counts as loaded");
    }

    #[test]
    fn the_app_chats_with_the_mixture_of_experts_architectures() {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = MlxEngine::default();
        for name in ["qwen3_moe", "gpt_oss-mxfp4"] {
            let Some(model) = minibar_testkit::tiny_chat_model(name, dir.path()) else {
                return;
            };
            let mut chat = job(&model, 1 << 40, false);
            chat.model_id = name.into();
            chat.params.max_tokens = 8;
            let mut pieces = 0;
            let stats = engine
                .chat(&chat, &mut |t| pieces += usize::from(!t.is_empty()))
                .unwrap_or_else(|e| panic!("{name}: {}", e.message));
            assert_eq!(stats.generated_tokens, 8, "{name}");
            assert_eq!(stats.stop_reason, StopReason::MaxTokens, "{name}");
            assert!(pieces > 0, "{name}: no text reached the UI");
            assert_eq!(engine.loaded().unwrap().0, name);
        }
    }

    #[test]
    fn a_model_that_wont_fit_is_refused_until_the_user_forces_it() {
        let Some(gguf) = std::env::var_os("MINIBAR_DEFAULT_GGUF").map(PathBuf::from) else {
            eprintln!("SKIPPED: MINIBAR_DEFAULT_GGUF is not set; `make test` sets it");
            return;
        };
        let small = std::fs::metadata(&gguf).unwrap().len() / 2;
        let mut engine = MlxEngine::default();
        let err = engine
            .chat(&job(&gguf, small, false), &mut |_| {})
            .unwrap_err();
        assert_eq!(err.kind, AppErrorKind::ModelTooLarge, "{}", err.message);
        assert!(err.message.contains("Use anyway"), "{}", err.message);
        assert!(engine.loaded().is_none());

        let mut text = String::new();
        engine
            .chat(&job(&gguf, small, true), &mut |t| text.push_str(t))
            .unwrap();
        assert!(engine.loaded().is_some());
        assert_eq!(
            minibar_engine::memory::memory_limit().unwrap(),
            small,
            "a forced model is still held to the budget"
        );
    }
}
