//! Errors a user can act on: each message says what went wrong and what to do next.

use std::path::PathBuf;

use crate::preflight::Concern;

/// Result type of this crate.
pub type Result<T, E = HubError> = std::result::Result<T, E>;

/// Everything that can stop a pull, a listing or a removal.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The OS keychain could not be read or written.
    #[error("{0}")]
    Keychain(String),
    /// The model id is not `org/name[@revision]` (or a catalog id).
    #[error("`{0}` is not a model id: use `org/name` or `org/name@revision` (for example mlx-community/Qwen3-0.6B-4bit)")]
    InvalidModelId(String),

    /// 401: the hub wants a token, or rejected the one we sent.
    #[error(
        "{endpoint} refused access to {repo_id}{} (401): {}. Create a read token at {endpoint}/settings/tokens and set it with `export HF_TOKEN=hf_...` (or save it in Minibar's settings), then retry",
        .file.as_ref().map(|f| format!(" (file `{f}`)")).unwrap_or_default(),
        if *.token_sent { "the token that was sent is wrong or expired" } else { "no token was sent" }
    )]
    Unauthorized {
        /// Repository asked for.
        repo_id: String,
        /// The file whose request was refused, when it was one file's.
        file: Option<String>,
        /// Hub base URL.
        endpoint: String,
        /// Whether a token was sent with the request.
        token_sent: bool,
    },

    /// 401/403 on a gated repository whose license this account has not accepted.
    #[error(
        "{repo_id} is gated: accept the license at {url} then retry{}",
        if *.token_sent { "" } else { " (and set HF_TOKEN to a token of the account that accepted it)" }
    )]
    Gated {
        /// Repository asked for.
        repo_id: String,
        /// Page where the license is accepted.
        url: String,
        /// Whether a token was sent with the request.
        token_sent: bool,
    },

    /// 404 on the repository itself.
    #[error("no such model repository: {repo_id} on {endpoint} (check the spelling; a private repo also needs HF_TOKEN)")]
    RepoNotFound {
        /// Repository asked for.
        repo_id: String,
        /// Hub base URL.
        endpoint: String,
    },

    /// 404 on a revision of an existing repository.
    #[error("{repo_id} has no revision `{revision}` (use a branch, tag or commit that exists, or leave it out for main)")]
    RevisionNotFound {
        /// Repository asked for.
        repo_id: String,
        /// Revision asked for.
        revision: String,
    },

    /// 404 on one file of an existing revision.
    #[error("{repo_id}@{revision} has no file `{path}`")]
    FileNotFound {
        /// Repository asked for.
        repo_id: String,
        /// Revision asked for.
        revision: String,
        /// File asked for.
        path: String,
    },

    /// The repository has nothing Minibar can load with the default file selection.
    #[error("{repo_id} has no safetensors weights{}", if .other_weights.is_empty() { String::new() } else { format!("; it has {}: pass --include <file> to fetch one of them", .other_weights.join(", ")) })]
    NoWeights {
        /// Repository asked for.
        repo_id: String,
        /// Weight files of other formats that exist (gguf, bin, ...).
        other_weights: Vec<String>,
    },

    /// The hub cannot be reached and the cache has no complete copy.
    #[error("cannot reach {endpoint} ({reason}) and {} — connect to the network and retry", match .partial { Some(p) => format!("the cached copy of {repo_id} at {} is incomplete", p.display()), None => format!("{repo_id} is not in the cache") })]
    Offline {
        /// Hub base URL.
        endpoint: String,
        /// Repository asked for.
        repo_id: String,
        /// Why the hub could not be reached.
        reason: String,
        /// A partial snapshot in the cache, if there is one.
        partial: Option<PathBuf>,
    },

    /// The disk filled up; the partial file is kept and the next pull resumes it.
    #[error("disk full while writing {} ({} of the file kept); free some space on that disk and run the pull again to resume", .path.display(), crate::format::bytes(*.kept_bytes))]
    DiskFull {
        /// Partial file that was being written.
        path: PathBuf,
        /// Bytes of it already on disk.
        kept_bytes: u64,
    },

    /// The pre-download checks found concerns; the caller must confirm (`--yes`).
    #[error("{} — pass --yes to download anyway", .concerns.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; "))]
    NeedsConfirmation {
        /// What the checks found.
        concerns: Vec<Concern>,
    },

    /// A file kept failing verification; nothing corrupt was kept.
    #[error("{path} of {repo_id} failed verification {attempts} times ({detail}); the bad copy was deleted — retry later or report it to the repository owner")]
    Corrupt {
        /// Repository.
        repo_id: String,
        /// File in the repository.
        path: String,
        /// Downloads that failed verification.
        attempts: u32,
        /// Last mismatch.
        detail: String,
    },

    /// A file could not be transferred after all retries; the partial file is kept.
    #[error("giving up on {path} after {attempts} attempts: {last_error}; the partial file was kept, run the pull again to resume")]
    Transfer {
        /// File in the repository.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// Last failure.
        last_error: String,
    },

    /// A `--layers` pull that cannot be planned (bad range, no layer count).
    #[error("cannot pull only some layers of {repo_id}: {detail}")]
    InvalidLayers {
        /// Repository.
        repo_id: String,
        /// Why.
        detail: String,
    },

    /// The hub answered with an error we have no better name for.
    #[error("{url} answered {status}: {message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Request URL.
        url: String,
        /// Server's message, if any.
        message: String,
    },

    /// The hub's answer did not make sense (missing headers, bad JSON).
    #[error("unexpected answer from {url}: {detail}")]
    Protocol {
        /// Request URL.
        url: String,
        /// What was wrong.
        detail: String,
    },

    /// The hub sent a name (ETag, commit id, file path) that could not safely become a path
    /// in the cache; nothing was written under it.
    #[error("refusing the {what} `{value}` sent by {url}: it must be {expected}, so it cannot escape the model cache; check HF_ENDPOINT (this server is not behaving like the Hugging Face hub)")]
    UnsafeName {
        /// Request URL (or cache folder) it came with.
        url: String,
        /// What the name was.
        what: &'static str,
        /// The name, shortened.
        value: String,
        /// The shape it must have.
        expected: &'static str,
    },

    /// The hub endpoint (settings or `HF_ENDPOINT`) is not one a token may be sent to.
    #[error("the hub endpoint `{endpoint}` cannot be used: {reason}. Use an https:// address (plain http:// only for this machine, e.g. http://127.0.0.1:8080), or unset HF_ENDPOINT for https://huggingface.co")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The caller cancelled the pull; partial files are kept.
    #[error("download cancelled; the partial files were kept and the next pull resumes them")]
    Cancelled,

    /// Another process is downloading the same file right now.
    #[error("another download of {} is running (lock {}); wait for it to finish", .path, .lock.display())]
    Busy {
        /// File in the repository.
        path: String,
        /// Lock file held by the other process.
        lock: PathBuf,
    },

    /// No model of that name in the local library.
    #[error("no model named `{0}` in the local library (see `minibar list`)")]
    ModelNotFound(String),

    /// The model is in use (loaded, benchmarked, quantized or downloaded), so it cannot be
    /// removed.
    #[error("`{name}` is in use by {by}; stop that (or unload the model) and retry")]
    ModelInUse {
        /// The model.
        name: String,
        /// What holds it: "a chat", "a download and a benchmark".
        by: String,
    },

    /// A filesystem operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON record (state file, config.json) could not be read.
    #[error("{}: {source}", .path.display())]
    Json {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },

    /// The HTTP client could not be built (bad endpoint URL, TLS set-up).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl HubError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HubError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub(crate) fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
