//! `/metrics` in Prometheus text format: the node's counters and HTTP
//! request latency histograms per route.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sightline_node::config::Scope;

use crate::api::ApiError;
use crate::auth::Caller;
use crate::boundary::Refusal;
use crate::AppState;

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request latency per (method, route, status class), and requests the
/// boundary guard refused.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    routes: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    refused: Mutex<BTreeMap<Refusal, u64>>,
}

impl HttpMetrics {
    /// Counts a request the guard refused.
    pub(crate) fn refused(&self, why: Refusal) {
        *self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(why)
            .or_default() += 1;
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let h = routes
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        h.count += 1;
        h.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
    }
}

/// Middleware timing every request by its route pattern (never the raw
/// path: it may contain a phone number).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    // A fixed label set: any token is a valid HTTP method, and clients
    // must not be able to grow the metrics without bound.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    state.metrics().observe(
        method,
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
#[allow(clippy::too_many_lines)] // one line per exported metric
///
/// # Errors
/// Auth errors; 500 if the store cannot be read.
pub async fn render(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    state.auth().admit(&caller, Scope::Read, 1)?;
    let status = state
        .node()
        .status()
        .await
        .map_err(|e| ApiError::store(&e))?;
    let peers = state.node().peers().await;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    #[allow(clippy::cast_precision_loss)]
    let f = |v: u64| v as f64;
    metric(
        "sightline_records",
        "gauge",
        "Sightings stored.",
        vec![(String::new(), f(status.records as u64))],
    );
    metric(
        "sightline_received_total",
        "counter",
        "Sightings received from peers (gossip and catch-up).",
        vec![(String::new(), f(status.received))],
    );
    metric(
        "sightline_stored_from_peers_total",
        "counter",
        "Sightings from peers that were valid and new.",
        vec![(String::new(), f(status.stored_from_peers))],
    );
    metric(
        "sightline_submitted_total",
        "counter",
        "Own sightings submitted.",
        vec![(String::new(), f(status.submitted))],
    );
    metric(
        "sightline_rejected_total",
        "counter",
        "Sightings from peers rejected or ignored, by reason.",
        status
            .rejected
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), f(*n)))
            .collect(),
    );
    metric(
        "sightline_peers_connected",
        "gauge",
        "Member peers connected.",
        vec![(
            String::new(),
            f(peers.iter().filter(|p| p.connected).count() as u64),
        )],
    );
    metric(
        "sightline_peers_members",
        "gauge",
        "Other members in network.toml.",
        vec![(String::new(), f(peers.len() as u64))],
    );
    let lag: u64 = status
        .origins
        .iter()
        .map(|o| o.max_seq.saturating_sub(o.contiguous))
        .sum();
    metric(
        "sightline_sync_lag_records",
        "gauge",
        "Sequence numbers known to exist but not held (gaps below each origin's highest seq).",
        vec![(String::new(), f(lag))],
    );
    metric(
        "sightline_sync_pages_total",
        "counter",
        "Catch-up pages received.",
        vec![(String::new(), f(status.sync_pages))],
    );
    metric(
        "sightline_sync_throttled_total",
        "counter",
        "Catch-up requests refused by the rate limit.",
        vec![(String::new(), f(status.sync_throttled))],
    );
    metric(
        "sightline_pending_publish",
        "gauge",
        "Own sightings waiting for a subscribed peer.",
        vec![(String::new(), f(status.net.pending_publish as u64))],
    );
    metric(
        "sightline_refused_non_members_total",
        "counter",
        "Connections refused by the allow-list.",
        vec![(String::new(), f(status.net.refused_non_members))],
    );
    metric(
        "sightline_equivocations",
        "gauge",
        "Conflicting records kept as evidence, by origin organization.",
        status
            .equivocations
            .iter()
            .map(|(org, n)| (format!("{{org=\"{}\"}}", org.replace('"', "'")), f(*n)))
            .collect(),
    );
    metric(
        "sightline_origin_over_limit_total",
        "counter",
        "Records refused or evicted because their origin went over its network.toml limits, by origin organization (an origin here is flagged).",
        status
            .over_limit
            .iter()
            .map(|(org, n)| (format!("{{org=\"{}\"}}", org.replace('"', "'")), f(*n)))
            .collect(),
    );
    let auth = state.auth().counters();
    let load = |c: &std::sync::atomic::AtomicU64| f(c.load(std::sync::atomic::Ordering::Relaxed));
    metric(
        "sightline_auth_failures_total",
        "counter",
        "Wrong tokens presented (API and sign-in).",
        vec![(String::new(), load(&auth.failures))],
    );
    metric(
        "sightline_auth_lockouts_total",
        "counter",
        "Authentication attempts refused because the client address made too many failed ones.",
        vec![(String::new(), load(&auth.lockouts))],
    );
    metric(
        "sightline_api_rate_limited_total",
        "counter",
        "Requests refused by the per-token work limit.",
        vec![(String::new(), load(&auth.rate_limited))],
    );
    metric(
        "sightline_web_sign_ins_total",
        "counter",
        "Browser sign-ins.",
        vec![(String::new(), load(&auth.sign_ins))],
    );
    let refused = state
        .metrics()
        .refused
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    metric(
        "sightline_http_refused_total",
        "counter",
        "Requests refused before routing: foreign Host (DNS rebinding), foreign Origin, token in URL.",
        [Refusal::Host, Refusal::Origin, Refusal::TokenInUrl]
            .into_iter()
            .map(|r| {
                (
                    format!("{{reason=\"{}\"}}", r.as_str()),
                    f(refused.get(&r).copied().unwrap_or(0)),
                )
            })
            .collect(),
    );
    metric(
        "sightline_store_healthy",
        "gauge",
        "1 while the store writes; 0 after a write failed (a full disk) until the node has reopened it.",
        vec![(String::new(), f(u64::from(status.store.healthy)))],
    );
    metric(
        "sightline_store_errors_total",
        "counter",
        "Store I/O errors (failed writes, failed reopens).",
        vec![(String::new(), f(status.store.errors))],
    );
    metric(
        "sightline_store_reopens_total",
        "counter",
        "Times the node reopened its store after a failure.",
        vec![(String::new(), f(status.store.reopens))],
    );
    metric(
        "sightline_store_disk_bytes",
        "gauge",
        "Store size on disk.",
        vec![(String::new(), f(status.disk_bytes))],
    );

    let routes = state
        .metrics()
        .routes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let _ = writeln!(out, "# HELP sightline_http_request_duration_seconds HTTP request latency by route.\n# TYPE sightline_http_request_duration_seconds histogram");
    for ((method, route, code), h) in routes {
        let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{code}\"");
        for (bound, count) in BUCKETS.iter().zip(h.counts) {
            let _ = writeln!(
                out,
                "sightline_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "sightline_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "sightline_http_request_duration_seconds_sum{{{labels}}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "sightline_http_request_duration_seconds_count{{{labels}}} {}",
            h.count
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
