//! What can go wrong running a model across several processes or machines.

use std::path::PathBuf;

/// A cluster failure, worded for the person running it.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// MLX could not form the group.
    #[error("could not join the {backend} group: check MLX_HOSTFILE and MLX_RANK, that every node is started and that its address is free (MLX prints the cause above)")]
    Join {
        /// The MLX backend.
        backend: &'static str,
    },
    /// A send, recv or all_sum could not be built.
    #[error("MLX refused the distributed {op}")]
    Collective {
        /// Which collective.
        op: &'static str,
    },
    /// The hostfile cannot be used.
    #[error("hostfile {path}: {reason}")]
    Hostfile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Ranks do not run the same model, or the same Minibar.
    #[error("rank {rank} ({node}) cannot join: {reason}")]
    Mismatch {
        /// The rank that differs from rank 0.
        rank: usize,
        /// Its address.
        node: String,
        /// What differs.
        reason: String,
    },
    /// The model cannot be split over the ranks.
    #[error("{0}")]
    Split(String),
    /// A node died or a link stalled.
    #[error("{0}")]
    Node(String),
    /// Finding the cluster's nodes on the LAN failed.
    #[error("{0}")]
    Discovery(String),
    /// No cluster is up at a control socket, or one already is.
    #[error("{0}")]
    Control(String),
    /// The job a rank was given is not valid.
    #[error("invalid cluster job: {0}")]
    Job(String),
    /// Starting or watching a rank process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The engine failed (loading, running the model).
    #[error(transparent)]
    Engine(#[from] minibar_engine::EngineError),
    /// Tokenizing or decoding failed.
    #[error(transparent)]
    Text(#[from] minibar_text::TextError),
    /// MLX failed while evaluating.
    #[error("MLX: {0}")]
    Mlx(String),
}

impl From<mlx_rs::error::Exception> for ClusterError {
    fn from(e: mlx_rs::error::Exception) -> Self {
        ClusterError::Mlx(e.what().to_owned())
    }
}

/// Results of this crate.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
