//! # sightline-node
//!
//! A long-running node that shares sightings with the other members of its
//! network and keeps a correct, explainable local picture.
//!
//! Map of the crate:
//! - [`config`]: `network.toml` and `sightline.toml`, validated.
//! - [`identity`]: the node key (libp2p identity = record signing key).
//! - [`store`]: sled store, one owner of all on-disk state.
//! - [`reputation`]: pure scoring with an injected clock.
//! - [`clock`]: the time source.

pub mod clock;
pub mod config;
pub mod identity;
pub mod reputation;
pub mod store;
