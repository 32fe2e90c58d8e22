//! # sightline-node
//!
//! A long-running node that shares sightings with the other members of its
//! network and keeps a correct, explainable local picture.
//!
//! Map of the crate:
//! - [`config`]: `network.toml` and `sightline.toml`, validated.
//! - [`identity`]: the node key (libp2p identity = record signing key).
//! - [`store`]: sled store: every verified record, latest per (number,
//!   origin), per-origin progress, own seq counter.
//! - [`reputation`]: pure scoring with an injected clock.
//! - [`ingest`]: the checks every received record passes (pure), and counters.
//! - [`pipeline`]: the ingest stage ([`pipeline::Ingestor`]): checks, batch
//!   verification, storage of received records.
//! - [`sync`]: catch-up messages and planning (pure).
//! - [`network`]: libp2p; one event loop owns the swarm; a bounded command channel reaches it.
//! - [`node`]: [`start`] and [`NodeHandle`], the API web and cli use.
//! - [`backup`]: backup archives (consistent snapshot + key) and restore.
//! - [`clock`]: the time source.
//! - [`files`]: the data directory and its files, private whatever the umask.

pub mod backup;
pub mod catchup;
pub mod clock;
pub mod config;
pub mod files;
pub mod identity;
pub mod ingest;
pub mod network;
pub mod node;
pub mod pipeline;
pub mod reputation;
pub mod store;
mod task;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{NetworkConfig, NodeConfig};
pub use node::{
    start, ItemError, Lookup, LookupError, NodeHandle, Receipt, RecentSighting, StartError, Status,
    Submission, SubmitError,
};
pub use reputation::Band;
