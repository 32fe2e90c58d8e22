//! Server-rendered HTML: lookup, recent sightings, peers, node status. The
//! CSS is compiled into the binary; there is no JavaScript. Every value
//! shown is HTML-escaped.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use sightline_node::config::Scope;
use sightline_node::{Lookup, LookupError};
use sightline_protocol::Verdict;

use crate::AppState;

const CSS: &str = include_str!("style.css");

/// `GET /style.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// HTML-escapes text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(ts: u64) -> String {
    let days = i64::try_from(ts / 86_400).unwrap_or(0);
    let secs = ts % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

fn page(title: &str, token: Option<&str>, body: &str) -> Html<String> {
    let t = token
        .map(|t| format!("?token={}", escape(t)))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Sightline</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><header><a class=\"brand\" href=\"/{t}\">Sightline</a><nav>\
         <a href=\"/{t}\">Lookup</a><a href=\"/recent{t}\">Recent</a>\
         <a href=\"/peers{t}\">Peers</a><a href=\"/status{t}\">Status</a></nav></header>\
         <main>{body}</main></body></html>",
        title = escape(title),
    ))
}

/// Pages need the read scope (a token is optional on a loopback-bound
/// node); a refusal is rendered as a page, not JSON.
fn refused(state: &AppState, headers: &HeaderMap, token: Option<&str>) -> Option<Response> {
    state
        .auth()
        .check(headers, token, Scope::Read)
        .err()
        .map(|e| denied(&e))
}

fn denied(e: &crate::ApiError) -> Response {
    let body = format!(
        "<h1>Access denied</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p>Open this page with <code>?token=…</code> (a token from sightline.toml with the read scope).</p>",
        escape(e.detail())
    );
    (e.status(), page("Access denied", None, &body)).into_response()
}

/// Query of the lookup page.
#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    number: Option<String>,
    region: Option<String>,
    token: Option<String>,
}

/// `GET /?number=…`: the lookup page.
pub async fn lookup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LookupQuery>,
) -> Response {
    if let Some(refusal) = refused(&state, &headers, q.token.as_deref()) {
        return refusal;
    }
    let token = q.token.as_deref();
    let number = q.number.as_deref().unwrap_or("").trim();
    let region = q.region.as_deref().unwrap_or("").trim();
    let mut body = String::from("<h1>Look up a number</h1>");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/\" class=\"lookup\">\
         <label for=\"number\">Phone number</label>\
         <input id=\"number\" name=\"number\" type=\"text\" inputmode=\"tel\" autocomplete=\"off\" \
          placeholder=\"+1 415 555 0134\" value=\"{}\" required>\
         <label for=\"region\">Default region <small>(for national numbers, e.g. US)</small></label>\
         <input id=\"region\" name=\"region\" type=\"text\" maxlength=\"2\" value=\"{}\">\
         {}<button type=\"submit\">Look up</button></form>",
        escape(number),
        escape(region),
        token.map(|t| format!("<input type=\"hidden\" name=\"token\" value=\"{}\">", escape(t))).unwrap_or_default(),
    );
    let mut status = StatusCode::OK;
    if !number.is_empty() {
        let region = (!region.is_empty()).then_some(region);
        match state.node().lookup(number, region).await {
            Ok(lookup) => render_lookup(&mut body, &lookup),
            Err(LookupError::Number { input, error }) => {
                status = StatusCode::BAD_REQUEST;
                let _ = write!(
                    body,
                    "<p class=\"error\" role=\"alert\" id=\"lookup-error\">“{}” is not a number Sightline can look up: {}.</p>",
                    escape(&input),
                    escape(&error.to_string())
                );
            }
            Err(LookupError::Store(e)) => {
                tracing::error!(error = %e, "lookup failed");
                status = StatusCode::INTERNAL_SERVER_ERROR;
                body.push_str(
                    "<p class=\"error\" role=\"alert\">The lookup failed; see the node's log.</p>",
                );
            }
        }
    }
    (status, page("Lookup", token, &body)).into_response()
}

fn render_lookup(body: &mut String, l: &Lookup) {
    let s = &l.score;
    let band = s.band.as_str();
    let _ = write!(
        body,
        "<section class=\"result\" aria-live=\"polite\"><h2>{number}</h2>\
         <p class=\"verdict\"><span class=\"badge band-{band}\" id=\"verdict\" data-band=\"{band}\">{label}</span> \
         <span class=\"score\">score <strong id=\"score\">{score:.2}</strong></span> · \
         reported malicious by <strong>{orgs}</strong> organization(s)</p>\
         <dl class=\"facts\">\
         <dt>Line type</dt><dd>{line}</dd><dt>Country</dt><dd>{country} (+{cc})</dd>\
         <dt>First seen</dt><dd>{first}</dd><dt>Last seen</dt><dd>{last}</dd>\
         <dt>Kinds</dt><dd>{kinds}</dd><dt>Channels</dt><dd>{channels}</dd><dt>Brands</dt><dd>{brands}</dd>\
         <dt>Same 100-block (30 days)</dt><dd id=\"block-activity\">{block} number(s) reported</dd></dl>",
        number = escape(&l.number),
        label = band.to_uppercase(),
        score = s.score,
        orgs = s.orgs,
        line = l.line_type,
        country = escape(&l.country),
        cc = l.cc,
        first = s.first_seen.map_or_else(|| "—".into(), utc),
        last = s.last_seen.map_or_else(|| "—".into(), utc),
        kinds = join(s.kinds.iter().map(ToString::to_string)),
        channels = join(s.channels.iter().map(ToString::to_string)),
        brands = join(s.brands.iter().map(|b| escape(b))),
        block = l.block_activity,
    );
    if s.reports.is_empty() {
        body.push_str("<p>No member has reported this number.</p></section>");
        return;
    }
    body.push_str(
        "<table><caption>Who reported it</caption><thead><tr><th>Organization</th><th>Verdict</th><th>Kind</th>\
         <th>Channel</th><th>Brand</th><th>Confidence</th><th>Trust</th><th>Decay</th><th>Weight</th><th>Last seen</th></tr></thead><tbody>",
    );
    for r in &s.reports {
        let class = match r.verdict {
            Verdict::Malicious => "malicious",
            Verdict::FalsePositive => "false-positive",
            Verdict::Withdrawn => "withdrawn",
        };
        let _ = write!(
            body,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:+.2}</td><td>{}</td></tr>",
            escape(&r.org),
            r.verdict,
            r.kind,
            r.channel,
            r.brand.as_deref().map_or_else(|| "—".into(), escape),
            r.confidence,
            r.trust,
            r.decay,
            r.weight,
            utc(r.last_seen),
        );
    }
    body.push_str("</tbody></table></section>");
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn join(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "—".into()
    } else {
        v.join(", ")
    }
}

/// Query with an optional token.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    token: Option<String>,
}

/// `GET /recent`.
pub async fn recent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Some(refusal) = refused(&state, &headers, q.token.as_deref()) {
        return refusal;
    }
    let mut body = String::from("<h1>Recent sightings</h1>");
    match state.node().recent(100).await {
        Ok(list) if list.is_empty() => body.push_str("<p>No sightings stored yet.</p>"),
        Ok(list) => {
            body.push_str("<table><thead><tr><th>Stored</th><th>Organization</th><th>Number</th><th>Verdict</th><th>Kind</th><th>Channel</th><th>Brand</th><th>Confidence</th><th>Line</th><th>Last seen</th></tr></thead><tbody>");
            for (i, r) in list.iter().enumerate() {
                let number = r.number.as_deref().map_or_else(
                    || {
                        format!(
                            "<span class=\"hash\" title=\"privacy hash\">{}…</span>",
                            &r.number_hash[..12]
                        )
                    },
                    escape,
                );
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{number}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} (+{})</td><td>{}</td></tr>",
                    i + 1,
                    escape(&r.org),
                    r.verdict,
                    r.kind,
                    r.channel,
                    r.brand.as_deref().map_or_else(|| "—".into(), escape),
                    r.confidence,
                    r.line,
                    r.cc,
                    utc(r.last_seen),
                );
            }
            body.push_str("</tbody></table><p class=\"note\">Numbers reported by other organizations are shown by privacy hash: only the reporting node holds the raw number. Look a number up to see what is known about it.</p>");
        }
        Err(e) => {
            tracing::error!(error = %e, "recent failed");
            body.push_str("<p class=\"error\" role=\"alert\">Could not read the store; see the node's log.</p>");
        }
    }
    page("Recent", q.token.as_deref(), &body).into_response()
}

/// `GET /peers`.
pub async fn peers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Some(refusal) = refused(&state, &headers, q.token.as_deref()) {
        return refusal;
    }
    let mut body = String::from("<h1>Peers</h1><table><thead><tr><th>Organization</th><th>State</th><th>Last seen</th><th>Peer id</th><th>Addresses</th></tr></thead><tbody>");
    for p in state.node().peers().await {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><span class=\"{}\">{}</span></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            escape(&p.org),
            if p.connected { "up" } else { "down" },
            if p.connected { "connected" } else { "not connected" },
            p.last_seen.map_or_else(|| "never".into(), utc),
            escape(&p.peer_id),
            p.addresses.iter().map(|a| escape(a)).collect::<Vec<_>>().join("<br>"),
        );
    }
    body.push_str("</tbody></table>");
    page("Peers", q.token.as_deref(), &body).into_response()
}

/// `GET /status`.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Some(refusal) = refused(&state, &headers, q.token.as_deref()) {
        return refusal;
    }
    let Ok(s) = state.node().status().await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, page("Status", None, "<p class=\"error\" role=\"alert\">Could not read the status; see the node's log.</p>")).into_response();
    };
    let mut body = format!(
        "<h1>Node status</h1><dl class=\"facts\"><dt>Organization</dt><dd>{}</dd><dt>Network</dt><dd>{} ({})</dd>\
         <dt>Peer id</dt><dd><code>{}</code></dd><dt>Listening on</dt><dd>{}</dd><dt>Peers connected</dt><dd>{}</dd>\
         <dt>Sightings stored</dt><dd>{}</dd><dt>Own sequence</dt><dd>{}</dd><dt>Received from peers</dt><dd>{}</dd>\
         <dt>Catch-up pages</dt><dd>{}</dd><dt>Store on disk</dt><dd>{:.1} MiB</dd></dl>",
        escape(&s.org),
        escape(&s.network_name),
        escape(&s.network),
        escape(&s.peer_id),
        s.net.listen_addrs.iter().map(|a| escape(a)).collect::<Vec<_>>().join("<br>"),
        s.net.connected,
        s.records,
        s.own_seq,
        s.received,
        s.sync_pages,
        mib(s.disk_bytes),
    );
    body.push_str("<h2>Per organization</h2><table><thead><tr><th>Organization</th><th>Records</th><th>Highest seq</th><th>Contiguous to</th></tr></thead><tbody>");
    for o in &s.origins {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&o.org),
            o.count,
            o.max_seq,
            o.contiguous
        );
    }
    body.push_str("</tbody></table><h2>Rejected from peers</h2>");
    if s.rejected.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str("<table><thead><tr><th>Reason</th><th>Count</th></tr></thead><tbody>");
        for (reason, n) in &s.rejected {
            let _ = write!(body, "<tr><td>{}</td><td>{n}</td></tr>", escape(reason));
        }
        body.push_str("</tbody></table>");
    }
    if !s.equivocations.is_empty() {
        body.push_str("<h2 class=\"error\">Equivocation</h2><ul>");
        for (org, n) in &s.equivocations {
            let _ = write!(
                body,
                "<li>{} signed {n} conflicting record(s) with a reused sequence number</li>",
                escape(org)
            );
        }
        body.push_str("</ul>");
    }
    page("Status", q.token.as_deref(), &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_763_700_000), "2025-11-21 04:40 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
