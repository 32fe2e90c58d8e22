//! # sightline-web
//!
//! `router(state) -> axum::Router`: the local web UI (server-rendered HTML,
//! CSS inside the binary, no JavaScript build, no CDN) and the JSON API under
//! `/api/v1`, over a [`sightline_node::NodeHandle`].
//!
//! - [`api`]: JSON routes, one error type ([`ApiError`]) that renders
//!   `{"error", "detail"}` and never leaks internals.
//! - [`auth`]: bearer tokens with `read` / `submit` scopes, per-token rate limit.
//! - [`pages`]: the HTML pages.
//! - [`metrics`]: Prometheus text and request latency histograms.
//! - [`openapi`]: the OpenAPI 3.1 description served at `/api/v1/openapi.json`.

// The OpenAPI document is one `json!` literal.
#![recursion_limit = "512"]

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use sightline_node::NodeHandle;

pub mod api;
pub mod auth;
pub mod metrics;
pub mod openapi;
pub mod pages;

pub use api::ApiError;

/// Largest request body: a 10,000-item batch with long brands fits.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Everything handlers need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    node: NodeHandle,
    auth: auth::Auth,
    metrics: metrics::HttpMetrics,
}

impl AppState {
    /// State for a node, with its configured tokens and rate limit. `loopback`
    /// says whether the server is bound to a loopback address (then reading
    /// needs no token).
    pub fn new(node: NodeHandle, loopback: bool) -> Self {
        let config = node.config();
        let auth = auth::Auth::new(
            config.tokens.clone(),
            loopback,
            config.api_requests_per_second,
        );
        AppState {
            inner: Arc::new(StateInner {
                node,
                auth,
                metrics: metrics::HttpMetrics::default(),
            }),
        }
    }

    /// The node.
    pub fn node(&self) -> &NodeHandle {
        &self.inner.node
    }

    pub(crate) fn auth(&self) -> &auth::Auth {
        &self.inner.auth
    }

    pub(crate) fn metrics(&self) -> &metrics::HttpMetrics {
        &self.inner.metrics
    }
}

/// The whole web surface: pages, API, health and metrics.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/lookup/{number}", get(api::lookup_one))
        .route("/lookup", post(api::lookup_bulk))
        .route("/sightings", post(api::submit))
        .route("/sightings/withdraw", post(api::withdraw))
        .route("/sightings/recent", get(api::recent))
        .route("/peers", get(api::peers))
        .route("/status", get(api::status))
        .route("/backup", get(api::backup))
        .route("/openapi.json", get(api::openapi))
        .fallback(api::not_found);
    Router::new()
        .route("/", get(pages::lookup))
        .route("/recent", get(pages::recent))
        .route("/peers", get(pages::peers))
        .route("/status", get(pages::status))
        .route("/style.css", get(pages::stylesheet))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::render))
        .nest("/api/v1", api)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding a non-loopback address without any API token.
    #[error("refusing to serve on non-loopback address {0} without API tokens configured")]
    OpenWithoutTokens(std::net::SocketAddr),
    /// The socket.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds the web server; returns the bound address and a future that serves
/// until `shutdown` resolves.
///
/// # Errors
/// [`ServeError`] when the address is refused or cannot be bound.
pub async fn bind(
    node: NodeHandle,
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<
    (
        std::net::SocketAddr,
        impl std::future::Future<Output = std::io::Result<()>>,
    ),
    ServeError,
> {
    let loopback = addr.ip().is_loopback();
    if !loopback && node.config().tokens.is_empty() {
        return Err(ServeError::OpenWithoutTokens(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let app = router(AppState::new(node, loopback));
    let serve = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    };
    Ok((local, serve))
}
