//! Shared set-up for the command tests: the real `configure` on Tauri's mock runtime, with
//! the real context (capabilities included), a scripted engine, and every folder in a temp dir.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use minibar_app::engine_worker::{ChatEngine, ChatJob};
use minibar_app::types::{AppError, AppErrorKind, GenerationStats, StopReason};
use minibar_app::{configure, AppOptions};
use serde_json::Value;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::MockRuntime;
use tauri::test::{get_ipc_response, mock_builder, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{App, Listener, WebviewWindow, WebviewWindowBuilder};

/// The variant id the fake installed model gets (from its file name).
pub const MODEL: &str = "smollm2-135m@q4_1";

/// A process-wide sandbox for what the app finds through the environment: the store's app
/// data folder, Minibar's library, the hub cache, and an "installed" model file (a stand-in
/// with the default model's name: the scripted engine never reads it).
pub fn sandbox() -> &'static PathBuf {
    sandbox_with(None)
}

/// The sandbox with `model` (a real model file) as the installed model; the first call in a
/// test binary decides for the whole process.
pub fn sandbox_with(model: Option<&std::path::Path>) -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let model = match model {
            Some(real) => real.to_path_buf(),
            None => {
                let fake = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
                std::fs::write(&fake, b"GGUF").unwrap();
                fake
            }
        };
        // Set once, before any app starts, from the first test that gets here.
        std::env::set_var("XDG_DATA_HOME", dir.join("xdg"));
        std::env::set_var("MINIBAR_HOME", dir.join("minibar"));
        std::env::set_var("HF_HUB_CACHE", dir.join("hf"));
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var("MINIBAR_DEFAULT_MODEL", &model);
        dir
    })
}

/// Replies with fixed pieces, one by one; a prompt containing "/slow" waits for cancellation
/// between pieces so stop can be tested; "/fail" fails; "/panic" panics after one piece.
pub struct ScriptedEngine {
    /// Every job's messages, for assertions.
    pub seen: mpsc::Sender<Vec<(String, String)>>,
}

/// The pieces the scripted engine sends.
pub const PIECES: [&str; 3] = ["Hello", ", ", "world"];

impl ChatEngine for ScriptedEngine {
    fn chat(
        &mut self,
        job: &ChatJob,
        piece: &mut dyn FnMut(&str),
    ) -> Result<GenerationStats, AppError> {
        let _ = self.seen.send(
            job.messages
                .iter()
                .map(|(r, c)| (r.as_str().to_string(), c.clone()))
                .collect(),
        );
        let last = job.messages.last().map(|m| m.1.clone()).unwrap_or_default();
        if last.contains("/fail") {
            return Err(AppError::new(AppErrorKind::Engine, "scripted failure"));
        }
        if last.contains("/panic") {
            piece(PIECES[0]);
            panic!("scripted panic");
        }
        let mut sent = 0;
        for p in PIECES {
            if job.cancel.is_cancelled() {
                break;
            }
            piece(p);
            sent += 1;
            if last.contains("/slow") {
                // Waits for a stop (bounded so a broken stop fails the test instead of hanging).
                for _ in 0..2000 {
                    if job.cancel.is_cancelled() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        Ok(GenerationStats {
            prompt_tokens: 7,
            generated_tokens: sent,
            ttft_ms: 1.0,
            tokens_per_second: 100.0,
            total_ms: 0.0,
            stop_reason: if job.cancel.is_cancelled() {
                StopReason::Stopped
            } else {
                StopReason::Eos
            },
        })
    }

    fn loaded(&self) -> Option<(String, u64)> {
        None
    }
}

/// A running test app.
pub struct TestApp {
    /// The app.
    pub app: App<MockRuntime>,
    /// The popover window the UI would run in.
    pub window: WebviewWindow<MockRuntime>,
    /// The data folder.
    pub data_dir: PathBuf,
    /// Every engine job's messages.
    pub jobs: mpsc::Receiver<Vec<(String, String)>>,
}

/// Builds the app over `data_dir` (a fresh one when None).
pub fn app_in(data_dir: Option<PathBuf>) -> TestApp {
    sandbox();
    app_with_sandbox(data_dir)
}

/// Builds the app in a sandbox already set up (by [`sandbox_with`]).
pub fn app_with_sandbox(data_dir: Option<PathBuf>) -> TestApp {
    let data_dir = data_dir.unwrap_or_else(|| tempfile::tempdir().unwrap().keep());
    let (tx, rx) = mpsc::channel();
    let app = configure(
        mock_builder(),
        minibar_app::specta_builder!(MockRuntime),
        AppOptions {
            data_dir: Some(data_dir.clone()),
            engine: Box::new(move || Box::new(ScriptedEngine { seen: tx })),
            then: None,
        },
    )
    .build(tauri::generate_context!())
    .expect("the app builds on the mock runtime");
    let mut app = app;
    // Setup (state, events, history) runs with the first turn of the event loop. One turn, not
    // a loop (what the deprecation warns about); `run_return` would block the test.
    #[allow(deprecated)]
    app.run_iteration(|_, _| {});
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    TestApp {
        app,
        window,
        data_dir,
        jobs: rx,
    }
}

/// A fresh app.
pub fn app() -> TestApp {
    app_in(None)
}

/// Calls a command from `window` as the UI would.
pub fn call_from(
    window: &WebviewWindow<MockRuntime>,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    get_ipc_response(
        window,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

impl TestApp {
    /// Calls a command from the main window.
    pub fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        call_from(&self.window, cmd, args)
    }

    /// Collects the payloads of `event` into a channel.
    pub fn listen(&self, event: &str) -> mpsc::Receiver<Value> {
        let (tx, rx) = mpsc::channel();
        self.app.listen_any(event.to_string(), move |e| {
            let _ = tx.send(serde_json::from_str::<Value>(e.payload()).unwrap());
        });
        rx
    }
}

/// Waits for the next event of a stream (generously: the engine thread is real).
pub fn next(rx: &mpsc::Receiver<Value>) -> Value {
    rx.recv_timeout(Duration::from_secs(30))
        .expect("an event within 30 s")
}

/// Waits for the next event of a long job (a benchmark or a quantization on a real model):
/// a bound that only stops a hung test, not a timing assertion.
pub fn next_slow(rx: &mpsc::Receiver<Value>) -> Value {
    rx.recv_timeout(Duration::from_secs(900))
        .expect("an event within 15 minutes")
}

/// The default model's GGUF from `MINIBAR_DEFAULT_GGUF` (`make test` sets it); None skips the
/// test, unless `MINIBAR_REQUIRE_REFERENCE` is set, which fails it.
pub fn default_gguf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MINIBAR_DEFAULT_GGUF").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if std::env::var_os("MINIBAR_REQUIRE_REFERENCE").is_some() {
        panic!("MINIBAR_DEFAULT_GGUF is not set (MINIBAR_REQUIRE_REFERENCE is set)");
    }
    eprintln!("SKIPPED: MINIBAR_DEFAULT_GGUF is not set; `make test` sets it");
    None
}
