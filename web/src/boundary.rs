//! The guard in front of every route: the first thing a request meets and
//! the last thing that touches its response.
//!
//! - **Host.** Only the node's own names are served: its bind address,
//!   `localhost`, `127.0.0.1`, `[::1]` and the `web_hosts` of
//!   `sightline.toml`. Any other `Host` gets 421 before routing. A page on
//!   `attacker.example` whose name the attacker re-points at 127.0.0.1 (DNS
//!   rebinding) sends `Host: attacker.example`, so it reads nothing.
//! - **Origin.** A request whose `Origin` is not one of those names gets
//!   403 on every route: no other site's script can post to the node, sign
//!   a browser in, or read an answer. `Origin: null` passes only with
//!   `Sec-Fetch-Site: same-origin` (the node's own form posts under
//!   `no-referrer`).
//! - **Tokens in URLs** get 400: they end up in history, proxy logs and
//!   `Referer`.
//! - **Response headers** on everything: a `Content-Security-Policy` with no
//!   script at all and `frame-ancestors 'none'`, `Referrer-Policy:
//!   no-referrer`, `X-Content-Type-Options: nosniff`, `X-Frame-Options:
//!   DENY`, and `Cache-Control: no-store` unless a route chose otherwise.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::{ApiError, ErrorCode};
use crate::AppState;

/// The policy every page and API response carries: no script, styles and
/// images from the node itself, forms post only to the node, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The host names a node answers to.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    names: HashSet<String>,
}

impl HostPolicy {
    /// The loopback names, the bind address (unless it is a wildcard) and
    /// `extra` (from `web_hosts`).
    pub fn new(bind: SocketAddr, extra: &[String]) -> Self {
        let mut names: HashSet<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !bind.ip().is_unspecified() {
            names.insert(bind.ip().to_string());
        }
        for name in extra {
            names.insert(normalize(name));
        }
        HostPolicy { names }
    }

    /// Whether a `Host` header value (name or address, optional port) is one
    /// of the node's names.
    pub fn allows(&self, host: &str) -> bool {
        self.names.contains(&normalize(strip_port(host)))
    }

    /// Whether an `Origin` header value is one of the node's own origins.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
            && !authority.contains(['/', '@'])
            && self.allows(authority)
    }
}

/// `host[:port]` or `[v6]:port` → the host part.
fn strip_port(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(inner, _)| inner);
    }
    match host.rsplit_once(':') {
        // One colon: a port. More than one: a bare IPv6 address.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Lower case, no trailing dot, no brackets, IPv6 addresses in canonical form.
fn normalize(host: &str) -> String {
    let host = host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host,
    }
}

/// Whether the query string carries a `token` parameter.
fn token_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("token"))
        })
    })
}

/// Why the guard refused a request (a `/metrics` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// `Host` is not one of the node's names.
    Host,
    /// `Origin` is another site.
    Origin,
    /// A token in the query string.
    TokenInUrl,
}

impl Refusal {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Host => "host",
            Refusal::Origin => "origin",
            Refusal::TokenInUrl => "token_in_url",
        }
    }
}

fn check(policy: &HostPolicy, request: &Request) -> Result<(), (Refusal, ApiError)> {
    let headers = request.headers();
    // HTTP/1.1 carries the name in Host; HTTP/2 in the URI's authority.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(axum::http::uri::Authority::as_str)
        });
    match host {
        Some(host) if policy.allows(host) => {}
        Some(_) => {
            return Err((
                Refusal::Host,
                ApiError::new(
                    ErrorCode::UnknownHost,
                    "this node does not answer to that host name; list it in web_hosts in sightline.toml",
                ),
            ))
        }
        None => {
            return Err((
                Refusal::Host,
                ApiError::new(
                    ErrorCode::MissingHost,
                    "the request has no Host header",
                ),
            ))
        }
    }
    // Browsers send `Origin: null` on their own pages' form posts when the
    // referrer policy is no-referrer (ours is); `Sec-Fetch-Site`, which no
    // page script can set, then says whether the post came from the node's
    // own page.
    let same_origin_fetch = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"same-origin");
    for origin in headers.get_all(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| policy.allows_origin(o) || (o == "null" && same_origin_fetch));
        if !allowed {
            return Err((
                Refusal::Origin,
                ApiError::new(
                    ErrorCode::ForeignOrigin,
                    "requests from other sites' pages are refused",
                ),
            ));
        }
    }
    if token_in_query(request.uri().query()) {
        return Err((
            Refusal::TokenInUrl,
            ApiError::new(
                ErrorCode::TokenInUrl,
                "tokens are not accepted in URLs (they leak into history, logs and Referer): \
                 send Authorization: Bearer <token>, or sign in at /login",
            ),
        ));
    }
    Ok(())
}

/// The middleware: refuse foreign hosts, origins and URL tokens; add the
/// security headers to every response.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = match check(state.hosts(), &request) {
        Ok(()) => next.run(request).await,
        Err((refusal, error)) => {
            state.metrics().refused(refusal);
            error.into_response()
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_names_are_hosts() {
        let p = HostPolicy::new(
            "127.0.0.1:7300".parse().unwrap(),
            &["Sightline.Example.org".into()],
        );
        for ok in [
            "127.0.0.1:7300",
            "127.0.0.1",
            "localhost:7300",
            "LOCALHOST.",
            "[::1]:7300",
            "[0:0:0:0:0:0:0:1]:80",
            "sightline.example.org",
            "sightline.example.org.:443",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:7300",
            "127.0.0.1.attacker.example",
            "localhost.attacker.example",
            "10.0.0.5:7300",
            "",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        let wildcard = HostPolicy::new("0.0.0.0:7300".parse().unwrap(), &[]);
        assert!(!wildcard.allows("0.0.0.0:7300"));
        let lan = HostPolicy::new("10.0.0.5:7300".parse().unwrap(), &[]);
        assert!(lan.allows("10.0.0.5:7300"));
    }

    #[test]
    fn only_own_origins() {
        let p = HostPolicy::new("127.0.0.1:7300".parse().unwrap(), &[]);
        assert!(p.allows_origin("http://127.0.0.1:7300"));
        assert!(p.allows_origin("http://localhost:7300"));
        for bad in [
            "null",
            "http://attacker.example",
            "http://127.0.0.1@attacker.example",
            "file://",
            "chrome-extension://abc",
        ] {
            assert!(!p.allows_origin(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_in_queries_are_found() {
        assert!(token_in_query(Some("token=abc")));
        assert!(token_in_query(Some("limit=5&TOKEN=abc")));
        assert!(!token_in_query(Some("tokens_seen=1")));
        assert!(!token_in_query(None));
    }
}
