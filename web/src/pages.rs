//! Server-rendered HTML: sign-in, lookup, recent sightings, peers, node
//! status. The CSS is compiled into the binary; there is no JavaScript (the
//! Content-Security-Policy allows none). Every value shown is HTML-escaped.
//! Analysts sign in with a token on `/login` and carry a session cookie;
//! numbers are posted in form bodies, never put in URLs.

use std::fmt::Write;

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use sightline_node::config::Scope;
use sightline_node::{Lookup, LookupError};
use sightline_protocol::Verdict;

use crate::auth::{Caller, ClientAddr, Via};
use crate::{ApiError, AppState};

const CSS: &str = include_str!("style.css");

/// A status page section listing flagged organizations, if any.
fn flagged(body: &mut String, title: &str, orgs: &[(String, u64)], what: impl Fn(u64) -> String) {
    if orgs.is_empty() {
        return;
    }
    let _ = write!(body, "<h2 class=\"error\">{}</h2><ul>", escape(title));
    for (org, n) in orgs {
        let _ = write!(body, "<li>{} {}</li>", escape(org), escape(&what(*n)));
    }
    body.push_str("</ul>");
}

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

fn page(title: &str, caller: Option<&Caller>, body: &str) -> Html<String> {
    let nav = match caller {
        Some(c) => {
            let sign_out = if c.via == Via::Session {
                format!(
                    "<form method=\"post\" action=\"/logout\" class=\"sign-out\">\
                     <span class=\"who\">{}</span><button type=\"submit\">Sign out</button></form>",
                    escape(&c.name)
                )
            } else {
                String::new()
            };
            format!(
                "<nav><a href=\"/\">Lookup</a><a href=\"/recent\">Recent</a>\
                 <a href=\"/peers\">Peers</a><a href=\"/status\">Status</a></nav>{sign_out}"
            )
        }
        None => String::new(),
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Sightline</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><header><a class=\"brand\" href=\"/\">Sightline</a>{nav}</header>\
         <main>{body}</main></body></html>",
        title = escape(title),
    ))
}

/// A local path to return to after signing in: `/…`, never another site.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 256
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            p
        }
        _ => "/",
    }
}

/// The sign-in page: a password field for a token, posted (never in a URL).
fn sign_in_page(status: StatusCode, error: Option<&str>, next: &str) -> Response {
    let error = error.map_or_else(String::new, |e| {
        format!(
            "<p class=\"error\" role=\"alert\" id=\"sign-in-error\">{}</p>",
            escape(e)
        )
    });
    let body = format!(
        "<h1>Sign in</h1>{error}\
         <form method=\"post\" action=\"/login\" class=\"lookup\">\
         <label for=\"token\">Access token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"note\">Use the analyst token from this node's <code>sightline.toml</code> \
         (<code>sightline init</code> printed it). The sign-in lasts until you sign out or it expires; \
         the token never appears in a URL.</p>",
        escape(next)
    );
    (status, page("Sign in", None, &body)).into_response()
}

/// A refusal rendered as a page: 401 shows the sign-in form (returning to
/// `next`), 403 and 429 say why.
fn denied(e: &crate::ApiError, next: &str) -> Response {
    if e.status() == StatusCode::UNAUTHORIZED {
        return sign_in_page(StatusCode::UNAUTHORIZED, Some(e.detail()), next);
    }
    let body = format!(
        "<h1>Access denied</h1><p class=\"error\" role=\"alert\">{}</p>",
        escape(e.detail())
    );
    let mut response = (e.status(), page("Access denied", None, &body)).into_response();
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// The caller, if it may read pages; otherwise the page that says why.
#[allow(clippy::result_large_err)] // the refusal is the page itself, returned at once
fn reader(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    next: &str,
) -> Result<Caller, Response> {
    let caller = caller.map_err(|e| denied(&e, next))?;
    state
        .auth()
        .admit(&caller, Scope::Read, 1)
        .map_err(|e| denied(&e, next))?;
    Ok(caller)
}

/// `GET /login`.
pub async fn login_form(Query(q): Query<NextQuery>) -> Response {
    sign_in_page(StatusCode::OK, None, local_path(q.next.as_deref()))
}

/// Where to go after signing in.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
    next: Option<String>,
}

/// `POST /login`: exchanges a token for a session cookie (`HttpOnly`,
/// `SameSite=Strict`, `Secure` where configured), then 303 to `next`.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    form: Result<Form<SignIn>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return sign_in_page(StatusCode::BAD_REQUEST, Some("send the token field"), "/");
    };
    let next = local_path(form.next.as_deref()).to_owned();
    match state.auth().sign_in(&form.token, address).await {
        Ok((_, cookie)) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, next), (header::SET_COOKIE, cookie)],
        )
            .into_response(),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid for this node."),
            &next,
        ),
        Err(e) => denied(&e, &next),
    }
}

/// `POST /logout`: ends the session, clears the cookie, back to sign-in.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = state.auth().sign_out(&headers);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// The lookup form (`POST /`): the number travels in the body, never in a URL.
#[derive(Debug, Deserialize)]
pub struct LookupForm {
    number: String,
    region: Option<String>,
    /// A checked "vanity number" box.
    vanity: Option<String>,
}

fn lookup_body(number: &str, region: &str, vanity: bool) -> String {
    let mut body = String::from("<h1>Look up a number</h1>");
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/\" class=\"lookup\">\
         <label for=\"number\">Phone number</label>\
         <input id=\"number\" name=\"number\" type=\"text\" inputmode=\"tel\" autocomplete=\"off\" \
          placeholder=\"+1 415 555 0134\" value=\"{}\" required>\
         <label for=\"region\">Default region <small>(for national numbers, e.g. US)</small></label>\
         <input id=\"region\" name=\"region\" type=\"text\" maxlength=\"2\" value=\"{}\">\
         <label for=\"vanity\">Vanity number <small>(read letters as keypad digits, e.g. 1-800-FLOWERS)</small></label>\
         <input id=\"vanity\" name=\"vanity\" type=\"checkbox\" value=\"on\"{}>\
         <button type=\"submit\">Look up</button></form>",
        escape(number),
        escape(region),
        if vanity { " checked" } else { "" },
    );
    body
}

/// `GET /`: the empty lookup form. A number in the query string is refused:
/// it would sit in browser history and proxy logs.
pub async fn lookup_form(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    uri: Uri,
) -> Response {
    let caller = match reader(&state, caller, "/") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let mut body = lookup_body("", "", false);
    let mut status = StatusCode::OK;
    if uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("number=")))
    {
        status = StatusCode::BAD_REQUEST;
        body.push_str(
            "<p class=\"error\" role=\"alert\" id=\"lookup-error\">Numbers are not taken from URLs \
             (they would stay in browser history and proxy logs): type the number into the form.</p>",
        );
    }
    (status, page("Lookup", Some(&caller), &body)).into_response()
}

/// `POST /`: the lookup page with its answer.
pub async fn lookup(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    form: Result<Form<LookupForm>, FormRejection>,
) -> Response {
    let caller = match reader(&state, caller, "/") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let Ok(Form(form)) = form else {
        let mut body = lookup_body("", "", false);
        body.push_str(
            "<p class=\"error\" role=\"alert\" id=\"lookup-error\">Type a number to look up.</p>",
        );
        return (
            StatusCode::BAD_REQUEST,
            page("Lookup", Some(&caller), &body),
        )
            .into_response();
    };
    let number = form.number.trim();
    let region = form.region.as_deref().unwrap_or("").trim();
    let vanity = form.vanity.is_some();
    let mut body = lookup_body(number, region, vanity);
    let mut status = StatusCode::OK;
    if !number.is_empty() {
        let region = (!region.is_empty()).then_some(region);
        match state
            .node()
            .lookup_with(number, region, sightline_node::node::letters(vanity))
            .await
        {
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
    (status, page("Lookup", Some(&caller), &body)).into_response()
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

/// `GET /recent`. Never anonymous; raw numbers only for callers that may
/// see this organization's own submissions.
pub async fn recent(State(state): State<AppState>, caller: Result<Caller, ApiError>) -> Response {
    let caller = match reader(&state, caller, "/recent") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    if let Err(e) = caller.require_signed_in() {
        return denied(&e, "/recent");
    }
    let mut body = String::from("<h1>Recent sightings</h1>");
    match crate::api::recent_for(&state, &caller, 100).await {
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
            body.push_str("</tbody></table><p class=\"note\">Numbers reported by other organizations are shown by privacy hash: only the reporting node holds the raw number. This organization's own numbers are shown to the submitting and operator tokens only. Look a number up to see what is known about it.</p>");
        }
        Err(_) => {
            body.push_str("<p class=\"error\" role=\"alert\">Could not read the store; see the node's log.</p>");
        }
    }
    page("Recent", Some(&caller), &body).into_response()
}

/// `GET /peers`.
pub async fn peers(State(state): State<AppState>, caller: Result<Caller, ApiError>) -> Response {
    let caller = match reader(&state, caller, "/peers") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
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
    page("Peers", Some(&caller), &body).into_response()
}

/// `GET /status`.
pub async fn status(State(state): State<AppState>, caller: Result<Caller, ApiError>) -> Response {
    let caller = match reader(&state, caller, "/status") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
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
    flagged(&mut body, "Equivocation", &s.equivocations, |n| {
        format!("signed {n} conflicting record(s) with a reused sequence number")
    });
    flagged(&mut body, "Over limits", &s.over_limit, |n| {
        format!(
            "went over its limits ({} records an hour, {} numbers a day): {n} record(s) ignored",
            s.limits.records_per_hour, s.limits.numbers_per_day
        )
    });
    page("Status", Some(&caller), &body).into_response()
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
