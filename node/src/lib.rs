//! # sightline-node
//!
//! **Not built yet** (issue "Node: sled store, trust-weighted reputation,
//! libp2p gossip and catch-up sync"). This crate will hold config and
//! identity, the sled store, pure reputation scoring, the libp2p network
//! (swarm owned by one event-loop task), catch-up sync and `NodeHandle`.
//! It exists now so the workspace layout of ARCHITECTURE.md is in place;
//! it exports nothing.
