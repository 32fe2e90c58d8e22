//! # sightline-web
//!
//! `router(state) -> axum::Router`: the local web UI (server-rendered HTML,
//! CSS inside the binary, no JavaScript build, no CDN) and the JSON API under
//! `/api/v1`, over a [`sightline_node::NodeHandle`].
//!
//! - [`api`]: JSON routes with typed bodies ([`api::model`]), the
//!   extractors that check callers and parse bodies ([`api::extract`]), and
//!   one error type ([`ApiError`]) with stable codes that never leaks
//!   internals.
//! - [`boundary`]: the guard in front of every route (own host names only,
//!   no foreign `Origin`, no tokens in URLs) and the security headers.
//! - [`auth`]: who is calling (bearer token, sign-in cookie, or anonymous
//!   where configured), scopes, failed-authentication lockout, per-item
//!   work limits.
//! - [`pages`]: the HTML pages and the sign-in page.
//! - [`metrics`]: Prometheus text and request latency histograms.
//! - [`openapi`]: the OpenAPI 3.1 description served at
//!   `/api/v1/openapi.json`, generated from the API's handlers and types.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sightline_node::NodeHandle;

pub mod api;
pub mod auth;
pub mod boundary;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod taxii;

pub use api::ApiError;

/// `GET /healthz`: 200 `ok` while the node can store what it is sent; 503
/// while its store cannot write (a full disk), until the node has reopened
/// it. No token needed, and nothing in it but that.
async fn healthz(State(state): State<AppState>) -> Response {
    let health = state.node().store_health();
    if health.healthy {
        "ok\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, api::STORE_RETRY_SECS)],
            "store unavailable: it cannot write (is the disk full?); the node retries by itself\n",
        )
            .into_response()
    }
}

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
    hosts: boundary::HostPolicy,
    metrics: metrics::HttpMetrics,
}

impl AppState {
    /// State for a node served on `bind`, with its configured tokens, host
    /// names and limits. Token-less reads follow `web_anonymous_read`, and
    /// only on a loopback `bind`.
    pub fn new(node: NodeHandle, bind: std::net::SocketAddr) -> Self {
        let config = node.config();
        let auth = auth::Auth::new(&auth::AuthSettings {
            tokens: config.tokens.clone(),
            anonymous_read: config.web_anonymous_read && bind.ip().is_loopback(),
            per_second: config.api_requests_per_second,
            session_ttl: config.web_session,
            secure_cookies: config.web_secure_cookies,
        });
        let hosts = boundary::HostPolicy::new(bind, &config.web_hosts);
        AppState {
            inner: Arc::new(StateInner {
                node,
                auth,
                hosts,
                metrics: metrics::HttpMetrics::default(),
            }),
        }
    }

    pub(crate) fn hosts(&self) -> &boundary::HostPolicy {
        &self.inner.hosts
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
    let api = Router::from(api::routes()).fallback(api::not_found);
    Router::new()
        .route("/", get(pages::lookup_form).post(pages::lookup))
        .route("/bulk", post(pages::bulk))
        .route("/message", post(pages::message))
        .route("/report", post(pages::report))
        .route("/export", post(pages::export))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/recent", get(pages::recent))
        .route("/campaigns", get(pages::campaigns))
        .route("/campaigns/{id}", get(pages::campaign))
        .route("/peers", get(pages::peers))
        .route("/status", get(pages::status))
        .route("/style.css", get(pages::stylesheet))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .nest("/api/v1", api)
        .merge(taxii::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            boundary::guard,
        ))
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
    if !addr.ip().is_loopback() && node.config().tokens.is_empty() {
        return Err(ServeError::OpenWithoutTokens(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let app = router(AppState::new(node, local));
    let serve = async move {
        // The peer address feeds the failed-authentication lockout.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    };
    Ok((local, serve))
}
