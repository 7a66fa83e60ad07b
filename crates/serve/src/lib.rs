//! minibar-serve: the local server, OpenAI- and Ollama-compatible, over continuous batching.
//!
//! - [`Server::start`] binds (naming the program that holds a taken port), checks that the
//!   model fits ([`minibar_fit`]), loads it (or leaves it to the first request) on the engine
//!   thread ([`scheduler`]; `lifecycle` loads other library models on request and unloads
//!   idle ones) and serves on the configured address until [`Server::stop`].
//!   [`run`] does the same until Ctrl-C (what `minibar serve` calls).
//!   [`Server::start_cluster`] serves the model of a cluster that is up instead
//!   (`minibar serve --cluster`; `cluster`: a worker hands requests to it one at a time).
//! - `routes`: OpenAI's `/v1/chat/completions`, `/v1/completions`, `/v1/models`; Ollama's
//!   `/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, `/api/ps`, `/api/version`;
//!   `/metrics`.
//! - [`scheduler`]: one engine thread; concurrent requests share decode steps
//!   ([`minibar_engine::continuous::DecodeBatch`]), join between steps and leave when done or
//!   when their client disconnects; a bounded queue answers 429.
//! - [`ApiError`]: every failure as a 4xx/5xx with OpenAI's error JSON (Ollama's
//!   `{"error": ".."}` on its routes).
//! - Tools: `tools` go into the chat template and calls come back as `tool_calls`
//!   ([`minibar_text::tools`] decides the syntax per template); JSON mode constrains each
//!   token to keep the reply one JSON object, and checks it (`json_mode`); a JSON schema
//!   constrains it to a document the schema accepts (`schema`, through llguidance); `tool_choice`
//!   "required" or a named function starts the reply inside a call and constrains the rest
//!   of it (`forced_call`).
//! - A request may name a model by its catalog id (`qwen3-4b`): the installed model that
//!   entry describes, or a 404 that says `minibar pull <id>`.
//!
//! Security: the server binds to loopback unless told otherwise, and any other address needs
//! an API key, checked on every request ([`api_key`]: generated on first use and kept in the
//! OS keychain). No CORS headers are sent unless the user names the origins allowed (`cors`).
//! Bodies are size-limited.

#![forbid(unsafe_code)]

pub mod api_key;
mod cluster;
mod cors;
mod errors;
mod fit;
mod forced_call;
mod generation;
mod json_mode;
mod library;
mod lifecycle;
mod port;
mod routes;
pub mod scheduler;
mod schema;
mod sequence;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

pub use errors::ApiError;
pub use minibar_hub::library::LibraryPaths;
pub use scheduler::{Limits, ModelInfo, ModelTarget};

/// How long a model stays loaded without requests, unless configured otherwise (Ollama's).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5 * 60);

/// Largest request body accepted unless configured otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    /// The default model's file or folder.
    pub model_path: PathBuf,
    /// Load the default model at start (`minibar serve`), or on the first request for it
    /// (the app's switch: a server nobody calls holds no model).
    pub preload: bool,
    /// The name clients use for it.
    pub model_name: String,
    /// Where the other models requests may name are installed (the CLI:
    /// `LibraryPaths::from_env()`; the app: the folders chosen in Settings).
    pub library: LibraryPaths,
    /// Context window in tokens (default: the model's, at most 8192).
    pub context: Option<usize>,
    /// Concurrency and queue bounds.
    pub limits: Limits,
    /// The key clients must send; required off loopback.
    pub api_key: Option<String>,
    /// Web origins allowed to call the server (`scheme://host[:port]`, or `*`); none: no
    /// CORS headers, so browsers refuse every cross-origin call.
    pub cors_origins: Vec<String>,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// How long a model stays loaded without requests.
    pub keep_alive: Duration,
    /// The memory pressure an idle model is unloaded under (at `Critical`):
    /// [`system_pressure`] outside tests.
    pub pressure: scheduler::PressureSource,
}

impl ServeConfig {
    /// `model_path` served as `model_name` within `limits` on a free loopback port, with
    /// `minibar serve`'s defaults for the rest: loaded at start, the store's library, the
    /// model's own context, no key, no CORS, the default body limit and keep-alive, and this
    /// machine's memory pressure. Callers change what they are about with `..`.
    pub fn local(model_path: PathBuf, model_name: String, limits: Limits) -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            model_path,
            preload: true,
            model_name,
            library: LibraryPaths::from_env(),
            context: None,
            limits,
            api_key: None,
            cors_origins: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            keep_alive: DEFAULT_KEEP_ALIVE,
            pressure: system_pressure,
        }
    }
}

/// This machine's memory pressure (minibar-fit's reading: PSI on Linux, the kernel's level
/// on macOS).
pub fn system_pressure() -> minibar_fit::Pressure {
    minibar_fit::snapshot().pressure
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without an API key.
    #[error(
        "serving on {0} (not loopback) needs an API key: pass --api-key or set MINIBAR_API_KEY"
    )]
    KeyRequired(SocketAddr),
    /// The model would not fit in memory.
    #[error("the model does not fit in memory: {0}")]
    WontFit(String),
    /// Loading failed.
    #[error("cannot load the model: {0}")]
    Load(String),
    /// Another program listens on the port.
    #[error("{addr} is in use{}; stop it or choose another port (--port; Ollama also listens on 11434)", holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default())]
    PortTaken {
        /// The address asked for.
        addr: SocketAddr,
        /// The program listening there, when it could be found.
        holder: Option<String>,
    },
    /// An allowed origin that is not `scheme://host[:port]` or `*`.
    #[error("{0:?} is not a web origin: give it as scheme://host[:port], e.g. http://localhost:3000, or * for any")]
    BadOrigin(String),
    /// Binding or threading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    engine: std::thread::JoinHandle<()>,
}

/// How long [`Server::stop`] waits for the engine thread to finish its step and unload.
const ENGINE_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Server {
    /// Checks the fit, loads the model and starts serving; returns once requests are accepted.
    pub async fn start(config: ServeConfig) -> Result<Self, ServeError> {
        let listener = Self::bind(&config).await?;
        if config.preload {
            fit::check(&config.model_path, config.context)?;
        }
        let default = ModelTarget {
            name: config.model_name.clone(),
            path: config.model_path.clone(),
        };
        let library = config.library.clone();
        let (context, limits, keep_alive, pressure, preload) = (
            config.context,
            config.limits,
            config.keep_alive,
            config.pressure,
            config.preload,
        );
        let (scheduler, engine) = tokio::task::spawn_blocking(move || {
            scheduler::Scheduler::spawn(
                default,
                library,
                context,
                limits,
                (keep_alive, pressure),
                preload,
            )
        })
        .await
        .map_err(|e| ServeError::Load(e.to_string()))??;
        Self::serve(listener, config, scheduler, engine)
    }

    /// Serves the model of the cluster that is up at `socket` (minibar-cluster's control
    /// socket on this machine) instead of loading one: the model, its name and context are
    /// the cluster's, so `config`'s model fields, library, context and keep-alive are not
    /// used, and requests run one at a time (the cluster decodes one sequence at a time),
    /// with `config.limits.queue` waiting at most.
    pub async fn start_cluster(config: ServeConfig, socket: &Path) -> Result<Self, ServeError> {
        let listener = Self::bind(&config).await?;
        let (socket, queue) = (socket.to_owned(), config.limits.queue);
        let (scheduler, engine) =
            tokio::task::spawn_blocking(move || scheduler::Scheduler::spawn_cluster(socket, queue))
                .await
                .map_err(|e| ServeError::Load(e.to_string()))??;
        Self::serve(listener, config, scheduler, engine)
    }

    /// Checks the key rule and binds, before any model loads, so a taken port is said at
    /// once.
    async fn bind(config: &ServeConfig) -> Result<tokio::net::TcpListener, ServeError> {
        if !config.addr.ip().is_loopback() && config.api_key.as_deref().is_none_or(str::is_empty) {
            return Err(ServeError::KeyRequired(config.addr));
        }
        cors::layer(&config.cors_origins)?;
        match tokio::net::TcpListener::bind(config.addr).await {
            Ok(l) => Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(ServeError::PortTaken {
                addr: config.addr,
                holder: port::holder(config.addr.port()),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Serves the routes over `scheduler` on `listener`.
    fn serve(
        listener: tokio::net::TcpListener,
        config: ServeConfig,
        scheduler: scheduler::Scheduler,
        engine: std::thread::JoinHandle<()>,
    ) -> Result<Self, ServeError> {
        let cors = cors::layer(&config.cors_origins)?;
        let state = Arc::new(routes::AppState {
            scheduler,
            api_key: config.api_key.filter(|k| !k.is_empty()),
            body_limit: config.body_limit,
            library: config.library,
        });
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel();
        let app = routes::router(state, cors);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            addr,
            shutdown,
            task,
            engine,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests, waits for open ones to end, then for the engine thread to
    /// unload the model. A process must not exit while that thread still runs MLX: its static
    /// destructors would free memory under it (seen as heap corruption at a test's exit).
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        self.task.await.map_err(std::io::Error::other)??;
        // The router, and with it the scheduler's queue, is gone: the engine thread ends.
        let engine = self.engine;
        let joined = tokio::task::spawn_blocking(move || engine.join());
        match tokio::time::timeout(ENGINE_STOP_TIMEOUT, joined).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(_) => Err(std::io::Error::other("the engine thread panicked")),
            Err(_) => Err(std::io::Error::other(format!(
                "the engine thread did not stop within {} s",
                ENGINE_STOP_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// The name clients use for the model at `path`: a folder's name, or a file's without
/// `.gguf`.
pub fn model_name(path: &Path) -> Option<String> {
    if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    }
    .map(|s| s.to_string_lossy().into_owned())
}

/// Serves until Ctrl-C, printing the URL on standard error; with `cluster`, the model of
/// the cluster that is up at that control socket ([`Server::start_cluster`]).
pub async fn run(config: ServeConfig, cluster: Option<&Path>) -> Result<(), ServeError> {
    let server = match cluster {
        Some(socket) => Server::start_cluster(config, socket).await?,
        None => Server::start(config).await?,
    };
    eprintln!(
        "serving on http://{} (OpenAI: /v1, Ollama: /api); Ctrl-C stops",
        server.addr()
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await?;
    Ok(())
}
