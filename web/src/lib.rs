//! # sightline-web
//!
//! **Not built yet** (issue "Interfaces"). This crate will hold
//! `router(state) -> axum::Router`: the HTML pages and the `/api/v1` JSON
//! API over `sightline_node::NodeHandle`. It exports nothing yet.
