//! minibar-testkit: what the crates' integration tests share (a dev-dependency only).
//!
//! - [`default_gguf`], [`reference_python`]: the default model and the reference Python that
//!   `make test` provides through environment variables. Where one is missing a test is skipped
//!   with the reason, unless `MINIBAR_REQUIRE_REFERENCE` is set (as `make test` and CI set it),
//!   which fails it: a missing reference never passes silently there.
//! - [`fixture`], [`script_fixture`], [`cached`]: folders and outputs computed once and kept
//!   under `MINIBAR_TEST_FIXTURES`, keyed by content ([`Key`]) so that a cache never answers for
//!   something that changed: a fixture by the script that builds it and the pinned versions, a
//!   reference output by its script, its arguments and every byte of its inputs.
//! - [`run_python`]: a reference script's standard output, or a panic with its errors.
//! - [`GgufWriter`]: GGUF files of a precise small shape, for the readers' tests.
//! - [`tiny_chat_model`]: one of mlx-lm's tiny reference models with a byte-level tokenizer,
//!   for the CLI's and the app's tests that chat with every architecture.
//! - [`sharded_llama`]: a random-weight Llama in one shard per block, for the tests of a node
//!   that holds only its own layers' shards.
//! - [`KillOnDrop`]: a child process (a `minibar cluster up`) ended with the test, and waited
//!   for until its socket answers.

#![forbid(unsafe_code)]

mod cache;
mod env;
mod gguf;
mod process;
mod sharded;
mod tiny;

pub use cache::{cached, fixture, script_fixture, Key};
pub use env::{default_gguf, reference_python, repo_root, required, run_python, script};
pub use gguf::{gguf_string, GgufWriter};
pub use process::KillOnDrop;
pub use sharded::{shard_name, sharded_llama};
pub use tiny::tiny_chat_model;
