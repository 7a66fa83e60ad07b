//! One module per subcommand; each exposes `Args` and `run`.

pub mod fit;
pub mod list;
pub mod pull;
pub mod rm;
