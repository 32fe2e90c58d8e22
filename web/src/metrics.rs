//! `/metrics` in the `OpenMetrics` text format, encoded by `prometheus-client`
//! (which escapes label values): the node's counters, read from its status
//! at scrape time, and HTTP request latency histograms per route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sightline_node::network::PeerInfo;
use sightline_node::Status;

use crate::api::extract::{Authorized, Read};
use crate::api::ApiError;
use crate::boundary::Refusal;
use crate::AppState;

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Labels of a request: method (a fixed set), route pattern, status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// A reason label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

/// Request latency per (method, route, status), and requests the boundary
/// guard refused. Cloning shares the counts.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Histogram>,
    refused: Family<Reason, Counter>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        let refused: Family<Reason, Counter> = Family::default();
        // Every reason is listed from the start, zero or not, so that
        // alerts can use rate().
        for r in [Refusal::Host, Refusal::Origin, Refusal::TokenInUrl] {
            let _ = refused.get_or_create(&Reason {
                reason: r.as_str().to_owned(),
            });
        }
        HttpMetrics {
            requests: Family::new_with_constructor(latency_histogram),
            refused,
        }
    }
}

impl HttpMetrics {
    /// Counts a request the guard refused.
    pub(crate) fn refused(&self, why: Refusal) {
        self.refused
            .get_or_create(&Reason {
                reason: why.as_str().to_owned(),
            })
            .inc();
    }

    fn observe(&self, method: &'static str, route: String, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .observe(seconds);
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
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// The metrics of one scrape; the encoder adds `_total` to counters, as
/// `OpenMetrics` asks.
struct Scrape {
    registry: Registry,
}

impl Scrape {
    /// Registers `metric`, declared even while it has no samples (a
    /// histogram before the first request), so that alert rules and
    /// dashboards find it.
    fn register<M>(&mut self, name: &'static str, help: &'static str, metric: M)
    where
        M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static,
    {
        self.registry
            .register_collector(Box::new(Declared { name, help, metric }));
    }

    fn gauge(&mut self, name: &'static str, help: &'static str, value: u64) {
        let gauge: Gauge = Gauge::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        self.register(name, help, gauge);
    }

    /// `name` without `_total`: the encoder appends it.
    fn counter(&mut self, name: &'static str, help: &'static str, value: u64) {
        let counter: Counter = Counter::default();
        counter.inc_by(value);
        self.register(name, help, counter);
    }

    /// A family of one label read at scrape time. It is declared even
    /// when empty (a healthy node has no equivocations), so that alert
    /// rules and dashboards find it.
    fn labelled(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
        label: &'static str,
        values: Vec<(String, u64)>,
    ) {
        self.registry.register_collector(Box::new(Labelled {
            name,
            help,
            kind,
            label,
            values,
        }));
    }
}

/// See [`Scrape::register`].
#[derive(Debug)]
struct Declared<M> {
    name: &'static str,
    help: &'static str,
    metric: M,
}

impl<M> Collector for Declared<M>
where
    M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metric =
            encoder.encode_descriptor(self.name, self.help, None, self.metric.metric_type())?;
        self.metric.encode(metric)
    }
}

/// See [`Scrape::labelled`].
#[derive(Debug)]
struct Labelled {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    label: &'static str,
    values: Vec<(String, u64)>,
}

impl Collector for Labelled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (value, n) in &self.values {
            let labels = [(self.label, value.as_str())];
            let sample = metric.encode_family(&labels)?;
            match self.kind {
                MetricType::Counter => ConstCounter::new(*n).encode(sample)?,
                _ => ConstGauge::new(i64::try_from(*n).unwrap_or(i64::MAX)).encode(sample)?,
            }
        }
        Ok(())
    }
}

/// The node's own counters and gauges, from its status and peer list.
fn node_metrics(m: &mut Scrape, status: &Status, peers: &[PeerInfo]) {
    m.gauge("sightline_records", "Sightings stored.", status.records);
    m.counter(
        "sightline_received",
        "Sightings received from peers (gossip and catch-up).",
        status.received,
    );
    m.counter(
        "sightline_stored_from_peers",
        "Sightings from peers that were valid and new.",
        status.stored_from_peers,
    );
    m.counter(
        "sightline_submitted",
        "Own sightings submitted.",
        status.submitted,
    );
    m.labelled(
        "sightline_rejected",
        "Sightings from peers rejected or ignored, by reason.",
        MetricType::Counter,
        "reason",
        status
            .rejected
            .iter()
            .map(|(reason, n)| (reason.clone(), *n))
            .collect(),
    );
    m.gauge(
        "sightline_peers_connected",
        "Member peers connected.",
        peers.iter().filter(|p| p.connected).count() as u64,
    );
    m.gauge(
        "sightline_peers_members",
        "Other members in network.toml.",
        peers.len() as u64,
    );
    m.gauge(
        "sightline_sync_lag_records",
        "Records connected peers hold that this node lacks, as the last reconciliation with each found them, less those received since (largest over peers).",
        status.sync_lag,
    );
    m.counter(
        "sightline_sync_rounds",
        "Catch-up reconciliation rounds run (as the asking side).",
        status.sync_rounds,
    );
    m.counter(
        "sightline_sync_received_bytes",
        "Bytes of catch-up answers received.",
        status.sync_bytes,
    );
    m.counter(
        "sightline_sync_received_records",
        "Records received through catch-up (each one verified).",
        status.sync_records,
    );
    m.counter(
        "sightline_sync_pages",
        "Catch-up pages received.",
        status.sync_pages,
    );
    m.counter(
        "sightline_sync_throttled",
        "Catch-up requests refused by the rate limit.",
        status.sync_throttled,
    );
    m.gauge(
        "sightline_pending_publish",
        "Own sightings waiting for a subscribed peer.",
        status.net.pending_publish as u64,
    );
    m.counter(
        "sightline_refused_non_members",
        "Connections refused by the allow-list.",
        status.net.refused_non_members,
    );
    m.labelled(
        "sightline_equivocations",
        "Conflicting records kept as evidence, by origin organization.",
        MetricType::Gauge,
        "org",
        status.equivocations.clone(),
    );
    m.labelled(
        "sightline_origin_over_limit",
        "Records refused or evicted because their origin went over its network.toml limits, by origin organization (an origin here is flagged).",
        MetricType::Counter,
        "org",
        status.over_limit.clone(),
    );
    store_metrics(m, status);
}

/// The store's health and size.
fn store_metrics(m: &mut Scrape, status: &Status) {
    m.gauge(
        "sightline_store_healthy",
        "1 while the store writes; 0 after a write failed (a full disk) until the node has reopened it.",
        u64::from(status.store.healthy),
    );
    m.counter(
        "sightline_store_errors",
        "Store I/O errors (failed writes, failed reopens).",
        status.store.errors,
    );
    m.counter(
        "sightline_store_reopens",
        "Times the node reopened its store after a failure.",
        status.store.reopens,
    );
    m.gauge(
        "sightline_store_disk_bytes",
        "Store size on disk.",
        status.disk_bytes,
    );
}

/// `GET /metrics`.
///
/// # Errors
/// Auth errors; 500 if the store cannot be read.
pub async fn render(
    State(state): State<AppState>,
    _: Authorized<Read>,
) -> Result<Response, ApiError> {
    let status = crate::api::node_status(&state).await?;
    let peers = state.node().peers().await;
    let mut m = Scrape {
        registry: Registry::default(),
    };
    node_metrics(&mut m, &status, &peers);
    let auth = state.auth().counters();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, value) in [
        (
            "sightline_auth_failures",
            "Wrong tokens presented (API and sign-in).",
            &auth.failures,
        ),
        (
            "sightline_auth_lockouts",
            "Authentication attempts refused because the client address made too many failed ones.",
            &auth.lockouts,
        ),
        (
            "sightline_api_rate_limited",
            "Requests refused by the per-token work limit.",
            &auth.rate_limited,
        ),
        (
            "sightline_web_sign_ins",
            "Browser sign-ins.",
            &auth.sign_ins,
        ),
    ] {
        m.counter(name, help, load(value));
    }
    m.register(
        "sightline_http_refused",
        "Requests refused before routing: foreign Host (DNS rebinding), foreign Origin, token in URL.",
        state.metrics().refused.clone(),
    );
    m.register(
        "sightline_http_request_duration_seconds",
        "HTTP request latency by route.",
        state.metrics().requests.clone(),
    );
    let mut out = String::new();
    encode(&mut out, &m.registry).map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(build: impl FnOnce(&mut Scrape)) -> String {
        let mut m = Scrape {
            registry: Registry::default(),
        };
        build(&mut m);
        let mut out = String::new();
        encode(&mut out, &m.registry).unwrap();
        out
    }

    #[test]
    fn label_values_are_escaped() {
        let out = scrape(|m| {
            m.labelled(
                "sightline_equivocations",
                "Conflicting records.",
                MetricType::Gauge,
                "org",
                vec![("Bank \"North\" \\ Co\nLtd".to_owned(), 2)],
            );
        });
        assert!(
            out.contains(r#"sightline_equivocations{org="Bank \"North\" \\ Co\nLtd"} 2"#),
            "{out}"
        );
    }

    #[test]
    fn empty_families_are_declared_and_counters_end_in_total() {
        let out = scrape(|m| {
            m.labelled(
                "sightline_rejected",
                "Rejected.",
                MetricType::Counter,
                "reason",
                Vec::new(),
            );
            m.register(
                "sightline_http_request_duration_seconds",
                "Latency.",
                HttpMetrics::default().requests,
            );
            m.counter("sightline_received", "Received.", 7);
        });
        for line in [
            "# TYPE sightline_rejected counter",
            "# TYPE sightline_http_request_duration_seconds histogram",
            "sightline_received_total 7",
            "# EOF",
        ] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
    }
}
