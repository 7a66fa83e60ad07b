//! minibar-hub: model downloads that survive anything, and the local library.
//!
//! - [`Hub`] resolves `org/name[@revision]` on a Hugging Face hub (or `HF_ENDPOINT` mirror)
//!   through hf-hub, plans the files a model needs, checks disk space and memory fit, and
//!   downloads into the shared hub cache (`HF_HUB_CACHE`) with our own resumable, verified
//!   downloader: `.incomplete` partial files, HTTP Range resume, retries with backoff, stall
//!   detection, cancel / pause / resume, a clean stop on a full disk.
//! - [`Hub::search`] finds models by name (mlx-community's first), for the same plan and pull.
//! - [`library`] lists the models in that cache and in Minibar's own store, and removes them
//!   unless an engine holds them ([`library::ModelInUse`]).

#![forbid(unsafe_code)]

mod cache_layout;
mod config;
mod control;
mod error;
mod fetch;
mod filter;
pub mod format;
mod hub;
pub mod keychain;
pub mod library;
mod model_ref;
mod plan;
mod preflight;
mod progress;
mod pull;
mod remote;
mod search;
mod verify;

pub use cache_layout::{
    discard_partial, is_blob_name, is_safe_repo_path, repo_folder_name, RepoCache,
    INCOMPLETE_SUFFIX,
};
pub use config::{
    hf_home, hub_cache_dir, resolve_token, validate_endpoint, HubConfig, DEFAULT_ENDPOINT,
};
pub use control::PullControl;
pub use error::{HubError, Result};
pub use fetch::FileReport;
pub use filter::FileFilter;
pub use hub::Hub;
pub use model_ref::{is_commit_hash, ModelRef, DEFAULT_REVISION};
pub use plan::{DownloadPlan, LayerPlan, PlannedFile};
pub use preflight::{
    available_space, memory_check, Concern, FitCheck, FitQuery, FitVerdict, Preflight,
};
pub use progress::{FileAnnounce, PullEvent, Rate};
pub use pull::{PullOptions, PullOutcome};
pub use search::{SearchHit, MLX_COMMUNITY};
pub use verify::{git_blob_sha1, sha256_hex, Check};
