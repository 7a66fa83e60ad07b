//! One module per subcommand; each exposes `Args` and `run`.

pub mod bench;
pub mod chat;
pub mod cluster;
pub mod fit;
mod force;
pub mod generate;
pub mod import;
mod interrupt;
pub mod list;
pub mod model_arg;
pub mod pull;
pub mod quantize;
mod repl;
mod report;
pub mod rm;
mod sampling;
pub mod search;
pub mod serve;
