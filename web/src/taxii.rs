//! A read-only TAXII 2.1 server under `/taxii2/` (OASIS TAXII 2.1): the
//! discovery resource, one API root (`/taxii2/api/`), and two collections
//! of STIX 2.1 objects built by `sightline_node::interop::stix`:
//!
//! - `own-reports`: this organization's current reports, each number with
//!   its raw value (they are the organization's own), in the order they
//!   were stored; `added_after` and `next` page through them. Only to
//!   tokens that may see the organization's own numbers (submit or admin).
//! - `campaigns`: the campaigns of the latest reports as this node can name
//!   them (numbers only where it can, and only to those tokens), ordered by
//!   their last activity; rebuilt on every request. A campaign's date added
//!   is its latest report's `last_seen`, which an import of old reports can
//!   set in the past: clients should read this collection whole.
//!
//! Every request needs a bearer token with the read scope (never
//! anonymous) and an `Accept` that allows `application/taxii+json;
//! version=2.1`; answers carry that media type, errors TAXII's error
//! message.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sightline_node::interop::{stix, CampaignPart, Picture};

use crate::api::extract::{Authorized, ReadSignedIn};
use crate::AppState;

/// TAXII 2.1's media type.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";

/// Objects one page holds at most (the client's `limit` may ask fewer).
const MAX_PAGE: usize = 1000;

/// Objects a page holds when the client names no `limit`.
const DEFAULT_PAGE: usize = 100;

/// Campaigns a `campaigns` page builds at most (the campaign list's
/// length), and what such a page costs the caller's work budget.
const LIST_COST: usize = 200;

/// The collections, by alias.
const OWN_REPORTS: &str = "own-reports";
const CAMPAIGNS: &str = "campaigns";

/// The TAXII routes (full paths, under `/taxii2/`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/taxii2/", get(discovery))
        .route("/taxii2/api/", get(api_root))
        .route("/taxii2/api/collections/", get(collections))
        .route("/taxii2/api/collections/{id}/", get(collection))
        .route("/taxii2/api/collections/{id}/objects/", get(objects))
        .route("/taxii2/api/collections/{id}/manifest/", get(manifest))
}

/// A TAXII error message.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    title: &'static str,
    description: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        taxii(
            self.status,
            &json!({
                "title": self.title,
                "description": self.description,
                "http_status": self.status.as_u16().to_string(),
            }),
        )
    }
}

fn error(status: StatusCode, title: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        status,
        title,
        description: description.into(),
    }
}

/// A TAXII answer.
fn taxii(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, TAXII_MEDIA_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// Whether the client accepts TAXII 2.1 (`Accept` absent, `*/*`,
/// `application/*`, `application/taxii+json` with no version or 2.1).
fn accepts(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let kind = parts.next().unwrap_or_default().to_ascii_lowercase();
        let version = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("version"))
            .map(|(_, v)| v.trim_matches('"').to_owned());
        match kind.as_str() {
            "*/*" | "application/*" => true,
            "application/taxii+json" => version.is_none_or(|v| v == "2.1"),
            _ => false,
        }
    })
}

/// 406 unless the client accepts TAXII 2.1.
fn negotiate(headers: &HeaderMap) -> Result<(), Refusal> {
    if accepts(headers) {
        Ok(())
    } else {
        Err(error(
            StatusCode::NOT_ACCEPTABLE,
            "Not acceptable",
            format!("this server answers {TAXII_MEDIA_TYPE}"),
        ))
    }
}

/// This server's base URL as the client reached it (the host was checked
/// by the boundary guard).
fn base(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = if state.node().config().web_secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

async fn discovery(
    State(state): State<AppState>,
    _: Authorized<ReadSignedIn>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = negotiate(&headers) {
        return r.into_response();
    }
    let root = format!("{}/taxii2/api/", base(&state, &headers));
    taxii(
        StatusCode::OK,
        &json!({
            "title": format!("Sightline: {}", state.node().org()),
            "description": "This organization's reports and the campaigns its node can name, as STIX 2.1, from a Sightline node.",
            "default": root,
            "api_roots": [root],
        }),
    )
}

async fn api_root(
    State(state): State<AppState>,
    _: Authorized<ReadSignedIn>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = negotiate(&headers) {
        return r.into_response();
    }
    taxii(
        StatusCode::OK,
        &json!({
            "title": format!("Sightline network {}", state.node().config().network.name),
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": crate::MAX_BODY_BYTES,
        }),
    )
}

/// A collection resource: its id is a UUID derived from the network and
/// the organization, its alias the name.
fn describe(state: &AppState, alias: &str, can_read: bool) -> Value {
    let name = format!(
        "{}/{}/{alias}",
        state.node().config().network.id,
        state.node().org()
    );
    let (title, description) = if alias == OWN_REPORTS {
        (
            "This organization's reports",
            "Each of this organization's current reports: the number, an indicator from band medium, the organization's sighting; in the order they were stored.",
        )
    } else {
        (
            "Campaigns",
            "The campaigns of the latest reports, with the numbers this node can name; every other number stays a keyed hash, as each campaign's note says. Rebuilt on every request: a campaign's date added is the time of its latest report, so poll it whole rather than with added_after.",
        )
    };
    json!({
        "id": uuid::Uuid::new_v5(&COLLECTIONS, name.as_bytes()).to_string(),
        "alias": alias,
        "title": title,
        "description": description,
        "can_read": can_read,
        "can_write": false,
        "media_types": [stix_media()],
    })
}

fn stix_media() -> &'static str {
    crate::api::STIX_MEDIA_TYPE
}

/// Namespace of collection ids.
const COLLECTIONS: uuid::Uuid = uuid::uuid!("7f3c6a52-1d8e-4b0a-9e61-3b2d5c4f8a90");

async fn collections(
    State(state): State<AppState>,
    caller: Authorized<ReadSignedIn>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = negotiate(&headers) {
        return r.into_response();
    }
    let own = caller.caller.sees_own_numbers();
    taxii(
        StatusCode::OK,
        &json!({ "collections": [describe(&state, OWN_REPORTS, own), describe(&state, CAMPAIGNS, true)] }),
    )
}

/// The collection an `{id}` names (its id or its alias).
fn find(state: &AppState, id: &str) -> Option<&'static str> {
    [OWN_REPORTS, CAMPAIGNS]
        .into_iter()
        .find(|alias| *alias == id || describe(state, alias, true)["id"] == id)
}

async fn collection(
    State(state): State<AppState>,
    caller: Authorized<ReadSignedIn>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = negotiate(&headers) {
        return r.into_response();
    }
    match find(&state, &id) {
        Some(alias) => taxii(
            StatusCode::OK,
            &describe(
                &state,
                alias,
                alias != OWN_REPORTS || caller.caller.sees_own_numbers(),
            ),
        ),
        None => no_collection(&id).into_response(),
    }
}

fn no_collection(id: &str) -> Refusal {
    error(
        StatusCode::NOT_FOUND,
        "Collection not found",
        format!("no collection {id:?}: this API root has own-reports and campaigns"),
    )
}

/// The query of the objects and manifest endpoints.
#[derive(Debug, Default, serde::Deserialize)]
struct Page {
    added_after: Option<String>,
    limit: Option<usize>,
    next: Option<String>,
    #[serde(rename = "match[type]")]
    types: Option<String>,
    #[serde(rename = "match[id]")]
    ids: Option<String>,
}

/// Where a page starts: after entry `(ms, key)`, or, with `skip` > 0, at
/// its object `skip` (a page may end inside an entry's objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    ms: u64,
    key: u64,
    skip: usize,
}

impl Position {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let p = Position {
            ms: parts.next()?.parse().ok()?,
            key: parts.next()?.parse().ok()?,
            skip: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(p)
    }

    fn token(self) -> String {
        format!("{}.{}.{}", self.ms, self.key, self.skip)
    }
}

/// Unix ms as a TAXII timestamp.
fn date_added(ms: u64) -> String {
    let secs = sightline_node::interop::timestamp(ms / 1000);
    secs.replace(".000Z", &format!(".{:03}Z", ms % 1000))
}

fn parse_ms(text: &str) -> Option<u64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

fn bad_request(description: impl Into<String>) -> Refusal {
    error(StatusCode::BAD_REQUEST, "Bad request", description)
}

/// The STIX objects of a picture that pass the `match[…]` filters.
fn stix_objects(picture: &Picture, q: &Page) -> Vec<Value> {
    let set = |text: &Option<String>| -> Option<BTreeSet<String>> {
        text.as_ref()
            .map(|t| t.split(',').map(|s| s.trim().to_owned()).collect())
    };
    let (types, ids) = (set(&q.types), set(&q.ids));
    let Value::Object(mut bundle) = stix::bundle(picture) else {
        return Vec::new();
    };
    let Some(Value::Array(objects)) = bundle.remove("objects") else {
        return Vec::new();
    };
    objects
        .into_iter()
        .filter(|o| {
            let id = o["id"].as_str().unwrap_or_default();
            let kind = o["type"].as_str().unwrap_or_default();
            types.as_ref().is_none_or(|t| t.contains(kind))
                && ids.as_ref().is_none_or(|i| i.contains(id))
        })
        .collect()
}

/// One page: objects with their date added (ms), and where the next
/// starts.
struct Objects {
    items: Vec<(u64, Value)>,
    next: Option<Position>,
}

/// Collects a page from entries (each its date added, key and objects, in
/// order): skips `start.skip` objects of the first entry if it is the
/// start's, and stops at `limit` objects.
struct Pager {
    start: Option<Position>,
    limit: usize,
    items: Vec<(u64, Value)>,
    next: Option<Position>,
    /// The last entry delivered whole.
    done: Option<(u64, u64)>,
}

impl Pager {
    /// Adds an entry's objects; false once the page is full (then `next`
    /// says where the next page starts: inside this entry, or after the
    /// last one delivered whole).
    fn add(&mut self, ms: u64, key: u64, objects: Vec<Value>) -> bool {
        let skip = match self.start {
            Some(s) if s.ms == ms && s.key == key => s.skip,
            _ => 0,
        };
        for (i, o) in objects.into_iter().enumerate().skip(skip) {
            if self.items.len() == self.limit {
                self.next = Some(match self.done {
                    Some((ms, key)) if i == skip => Position { ms, key, skip: 0 },
                    _ => Position { ms, key, skip: i },
                });
                return false;
            }
            self.items.push((ms, o));
        }
        self.done = Some((ms, key));
        true
    }
}

/// Why a page could not be read: the store.
fn unavailable(e: &sightline_node::LookupError) -> Refusal {
    tracing::error!(error = %e, "TAXII page failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "the store cannot be read now; retry later",
    )
}

/// A page of the collection `alias`.
async fn page(
    state: &AppState,
    caller: &Authorized<ReadSignedIn>,
    alias: &str,
    q: &Page,
) -> Result<Objects, Refusal> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let after_ms = match q.added_after.as_deref() {
        Some(text) => Some(parse_ms(text).ok_or_else(|| {
            bad_request(format!(
                "added_after {text:?} is not a timestamp (RFC 3339)"
            ))
        })?),
        None => None,
    };
    let start = match q.next.as_deref() {
        Some(text) => Some(
            Position::parse(text)
                .ok_or_else(|| bad_request(format!("next {text:?} is not one this server gave")))?,
        ),
        None => None,
    };
    let mut pager = Pager {
        start,
        limit,
        items: Vec::new(),
        next: None,
        done: None,
    };
    // A page reads up to `limit` reports, or every campaign of the list:
    // it costs like a bulk lookup of as many numbers.
    let cost = if alias == OWN_REPORTS {
        limit
    } else {
        LIST_COST
    };
    caller.charge_items(state, cost).map_err(|_| {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "this token's work budget is spent; retry in a few seconds",
        )
    })?;
    if alias == OWN_REPORTS {
        if !caller.caller.sees_own_numbers() {
            return Err(error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "own-reports holds this organization's raw numbers: it needs a token with the submit or admin scope",
            ));
        }
        own_page(state, &mut pager, after_ms, q).await?;
    } else {
        campaign_page(
            state,
            &mut pager,
            after_ms,
            caller.caller.sees_own_numbers(),
            q,
        )
        .await?;
    }
    Ok(Objects {
        items: pager.items,
        next: pager.next,
    })
}

/// Fills a page of `own-reports`, in the order the reports were stored.
async fn own_page(
    state: &AppState,
    pager: &mut Pager,
    after_ms: Option<u64>,
    q: &Page,
) -> Result<(), Refusal> {
    // Exclusive; a start inside an entry reads that entry again.
    let after = match pager.start {
        Some(p) if p.skip > 0 => (p.ms, p.key.saturating_sub(1)),
        Some(p) => (p.ms, p.key),
        None => after_ms.map_or((0, 0), |ms| (ms, u64::MAX)),
    };
    // A report is at least one object (unfiltered): `limit` reports fill
    // a page.
    let page = state
        .node()
        .own_reports(after, pager.limit)
        .await
        .map_err(|e| unavailable(&e))?;
    for r in &page.reports {
        if !pager.add(r.added_ms, r.seq, stix_objects(&own_picture(state, r), q)) {
            return Ok(());
        }
    }
    // Every report read is delivered (some of them may have been left out:
    // protected numbers): go on after the last one read.
    if page.more {
        pager.next = page.last.map(|(ms, key)| Position { ms, key, skip: 0 });
    }
    Ok(())
}

/// Fills a page of `campaigns`: rebuilt from the latest reports on every
/// request, ordered by last activity (then a hash of the id); an entry is a campaign's
/// objects, its numbers named only for callers that may see them.
async fn campaign_page(
    state: &AppState,
    pager: &mut Pager,
    after_ms: Option<u64>,
    name_numbers: bool,
    q: &Page,
) -> Result<(), Refusal> {
    let node = state.node();
    let mut list = node
        .campaigns(None, LIST_COST)
        .await
        .map_err(|e| unavailable(&e.into()))?;
    list.sort_by_key(|c| (c.last_seen, campaign_key(&c.id)));
    for summary in &list {
        let ms = summary.last_seen.saturating_mul(1000);
        let key = campaign_key(&summary.id);
        let before = pager.start.is_some_and(|s| {
            (ms, key) < (s.ms, s.key) || ((ms, key) == (s.ms, s.key) && s.skip == 0)
        });
        if before || after_ms.is_some_and(|a| ms <= a) {
            continue;
        }
        let found = node
            .export(Vec::new(), None, Some(&summary.id), name_numbers)
            .await
            .map_err(|e| unavailable(&e))?;
        let Some(mut picture) = found else { continue };
        picture.campaigns.retain(|c| c.summary.id == summary.id);
        if picture.campaigns.is_empty() {
            picture.campaigns.push(CampaignPart {
                summary: summary.clone(),
                named: Vec::new(),
            });
        }
        if !pager.add(ms, key, stix_objects(&picture, q)) {
            break;
        }
    }
    Ok(())
}

/// A stable number for a campaign id, to order and resume by.
fn campaign_key(id: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The picture of one of this organization's reports.
fn own_picture(state: &AppState, report: &sightline_node::node::OwnReport) -> Picture {
    picture(state, vec![report.lookup.clone()], Vec::new())
}

/// A picture of `numbers` and `campaigns` as this node exports them.
fn picture(
    state: &AppState,
    numbers: Vec<sightline_node::Lookup>,
    campaigns: Vec<CampaignPart>,
) -> Picture {
    let node = state.node();
    let config = node.config();
    Picture {
        network: config.network.id.to_string(),
        network_name: config.network.name.clone(),
        exporter: node.org().to_owned(),
        tlp: config.export_tlp,
        at: node.now(),
        numbers,
        campaigns,
        left_out: Vec::new(),
    }
}

/// An envelope or manifest answer, with the date-added headers.
fn paged(items: &[(u64, Value)], next: Option<Position>, body: Vec<Value>) -> Response {
    let body = Value::Array(body);
    let mut envelope = json!({ "more": next.is_some() });
    if let Some(next) = next {
        envelope["next"] = json!(next.token());
    }
    if body.as_array().is_some_and(|b| !b.is_empty()) {
        envelope["objects"] = body;
    }
    let mut response = taxii(StatusCode::OK, &envelope);
    if let (Some(first), Some(last)) = (items.first(), items.last()) {
        for (name, ms) in [
            ("x-taxii-date-added-first", first.0),
            ("x-taxii-date-added-last", last.0),
        ] {
            if let Ok(v) = HeaderValue::from_str(&date_added(ms)) {
                response.headers_mut().insert(name, v);
            }
        }
    }
    response
}

/// The page a request for collection `id` asks for, or the error answer.
async fn requested(
    state: &AppState,
    caller: &Authorized<ReadSignedIn>,
    headers: &HeaderMap,
    id: &str,
    q: PageQuery,
) -> Result<Objects, Refusal> {
    negotiate(headers)?;
    let Ok(axum::extract::Query(q)) = q else {
        return Err(bad_request(
            "malformed query: added_after, limit, next, match[type], match[id]",
        ));
    };
    let alias = find(state, id).ok_or_else(|| no_collection(id))?;
    page(state, caller, alias, &q).await
}

/// The query of the objects and manifest endpoints, as axum reads it.
type PageQuery = Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>;

async fn objects(
    State(state): State<AppState>,
    caller: Authorized<ReadSignedIn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: PageQuery,
) -> Response {
    listing(&state, &caller, &headers, &id, q, false).await
}

async fn manifest(
    State(state): State<AppState>,
    caller: Authorized<ReadSignedIn>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: PageQuery,
) -> Response {
    listing(&state, &caller, &headers, &id, q, true).await
}

/// A page of a collection: its objects, or (`manifest`) one line about
/// each (id, date added, version, media type).
async fn listing(
    state: &AppState,
    caller: &Authorized<ReadSignedIn>,
    headers: &HeaderMap,
    id: &str,
    q: PageQuery,
    manifest: bool,
) -> Response {
    let page = match requested(state, caller, headers, id, q).await {
        Ok(page) => page,
        Err(r) => return r.into_response(),
    };
    let body = page
        .items
        .iter()
        .map(|(ms, o)| {
            if !manifest {
                return o.clone();
            }
            json!({
                "id": o["id"],
                "date_added": date_added(*ms),
                "version": o.get("modified").or_else(|| o.get("created")).cloned().unwrap_or_else(|| json!(date_added(*ms))),
                "media_type": stix_media(),
            })
        })
        .collect();
    paged(&page.items, page.next, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_allows_taxii_2_1_and_wildcards_only() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts(&HeaderMap::new()));
        assert!(accepts(&h("application/taxii+json;version=2.1")));
        assert!(accepts(&h("application/taxii+json")));
        assert!(accepts(&h("text/html, */*;q=0.1")));
        assert!(!accepts(&h("application/taxii+json;version=2.0")));
        assert!(!accepts(&h("application/json")));
    }

    #[test]
    fn dates_added_keep_milliseconds() {
        assert_eq!(date_added(1_796_601_600_123), "2026-12-07T00:00:00.123Z");
        assert_eq!(
            parse_ms("2026-12-07T00:00:00.123456Z"),
            Some(1_796_601_600_123)
        );
        let p = Position::parse("1796601600123.7.2").unwrap();
        assert_eq!((p.ms, p.key, p.skip), (1_796_601_600_123, 7, 2));
        assert_eq!(Position::parse(&p.token()), Some(p));
        assert_eq!(Position::parse("1.2"), None);
    }
}
