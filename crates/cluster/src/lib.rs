//! minibar-cluster: several machines as one, by pipeline parallelism over MLX's own
//! distributed engine (the `ring` backend over TCP; `jaccl` over Thunderbolt 5 is MLX's other
//! Mac backend). Each rank holds a contiguous range of layers, in proportion to its node's
//! memory; activations pass rank to rank, the last rank samples, and the token returns to
//! rank 0.
//!
//! Map: [`dist`] is the safe layer over mlx-c's distributed API; [`hostfile`] the ranks'
//! addresses in MLX's format; [`handshake`] what ranks agree on before any token (same build,
//! same model, each node's memory); [`split`] the layer split; [`stage`] a rank's share of
//! the model; [`rank`] one rank's run and the events it reports; [`doorbell`] the side channel
//! that lets a rank sleep, not spin, until a message comes; [`watchdog`] the bound on every
//! wait for another node; [`launch`] starting the ranks as local processes and
//! watching them, and keeping a cluster formed; [`control`] the local socket where a cluster
//! that stays up (`minibar cluster up`) takes jobs; [`discover`] finding the nodes on the LAN
//! by mDNS instead of a hostfile.

pub mod control;
pub mod discover;
pub mod dist;
pub mod doorbell;
mod error;
pub mod handshake;
pub mod hostfile;
pub mod launch;
pub mod rank;
pub mod split;
pub mod stage;
pub mod watchdog;

pub use control::{Ask, Client, Request, Status};
pub use error::{ClusterError, Result};
pub use hostfile::Hostfile;
pub use launch::{keep_up, Finished, Launcher, Running, Upkeep};
pub use rank::{Event, Job, NodePlan, Prompt, RankFigures, Report};
