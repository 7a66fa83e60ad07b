//! minibar-bench: what this machine does with local models, in the figures people already
//! compare (llama-bench's pp512 and tg128), with history and export.
//!
//! The app and the CLI call [`run_suite`] with a [`SuiteConfig`], receive [`Progress`] events
//! through a callback, may stop it with a [`CancelToken`], then save the [`BenchRun`] with
//! [`History`] and export it with [`export`].

pub mod error;
pub mod export;
pub mod history;
pub mod ladder;
pub mod machine;
pub mod record;
pub mod reference;
pub mod stats;
pub mod suite;
pub mod table;
mod timefmt;

pub use error::{BenchError, Result};
pub use history::{History, RunSummary};
pub use ladder::{ladder, Installed};
pub use machine::{measure_bandwidth, MachineInfo};
pub use minibar_engine::{batch, CancelToken};
pub use record::{BatchPoint, BatchScaling, BenchRun, ModelResult, Summary, TestResult};
pub use reference::{apple_reference, ReferenceData};
pub use suite::{run_suite, Mode, Progress, SuiteConfig};
