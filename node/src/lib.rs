//! # sightline-node
//!
//! A long-running node that shares sightings with the other members of its
//! network and keeps a correct, explainable local picture.
//!
//! Map of the crate:
//! - [`config`]: `network.toml` and `sightline.toml`, validated.
//! - [`identity`]: the node key (libp2p identity = record signing key).
//! - [`store`]: sled store: each origin's current report per number
//!   (superseded records are deleted), per-origin progress, own seq counter.
//! - [`reputation`]: pure scoring with an injected clock.
//! - [`campaign`]: numbers linked into operations by shared link tokens and
//!   100-block activity (pure, over the store's link index).
//! - [`ingest`]: the checks every received record passes (pure), and counters.
//! - [`pipeline`]: the ingest stage ([`pipeline::Ingestor`]): checks, batch
//!   verification, storage of received records.
//! - [`catchup`]: catch-up messages and planning (pure).
//! - [`reconcile`]: catch-up version 2's set reconciliation (pure).
//! - [`network`]: libp2p; one event loop owns the swarm; a bounded command channel reaches it.
//! - [`node`]: [`start`] and [`NodeHandle`], the API web and cli use.
//! - [`interop`]: exports to STIX 2.1 and MISP, and MISP events read in (pure).
//! - [`backup`]: backup archives (consistent snapshot + key) and restore.
//! - [`clock`]: the time source.
//! - [`files`]: the data directory and its files, private whatever the umask.

// Public: what the web and CLI crates build on. Crate-private by default;
// the `test-util` feature makes public what the integration tests and the
// benchmark drive directly (their items are written `pub` for that build).
/// Declares modules crate-private, or public under the `test-util`
/// feature.
macro_rules! internal_modules {
    ($($name:ident),+) => {$(
        #[cfg(feature = "test-util")]
        pub mod $name;
        #[cfg(not(feature = "test-util"))]
        #[allow(unreachable_pub)]
        mod $name;
    )+};
}

pub mod backup;
pub mod campaign;
pub mod clock;
pub mod config;
pub(crate) mod files;
pub mod identity;
pub mod interop;
internal_modules!(catchup, ingest, pipeline, reconcile);
pub mod network;
pub mod node;
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
