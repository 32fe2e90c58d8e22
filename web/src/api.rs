//! The JSON API under `/api/v1`: typed handlers, each described by its
//! `#[utoipa::path]`, registered through [`routes`] so that a route cannot
//! be served without its description. Callers are checked by the
//! [`extract::Authorized`] extractor before any body is read; every error is
//! an [`ApiError`] with a stable [`ErrorCode`].

pub mod error;
pub mod extract;
pub mod model;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sightline_node::network::PeerInfo;
use sightline_node::node::{letters, MAX_BATCH, NOTHING_TO_WITHDRAW};
use sightline_node::{ItemError, Lookup, LookupError, Receipt, Status, Submission, SubmitError};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use error::STORE_RETRY_SECS;
pub use error::{ApiError, ErrorBody, ErrorCode};
use extract::{Admin, Authorized, Body, Params, PathParam, Read, ReadSignedIn, Submit};
use model::{
    BackupRequest, Campaigns, CampaignsParams, ExportParams, Feed, FeedParams, InvalidItem,
    LookupParams, LookupRequest, LookupResult, LookupResults, Peers, Receipts, RecentParams,
    RecentSightings, SubmitRequest, WithdrawRequest,
};

use crate::auth::Caller;
use crate::AppState;

/// Every API route with its description, relative to `/api/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(lookup_one))
        .routes(routes!(lookup_bulk))
        .routes(routes!(submit))
        .routes(routes!(withdraw))
        .routes(routes!(recent))
        .routes(routes!(campaigns))
        .routes(routes!(campaign))
        .routes(routes!(export_stix))
        .routes(routes!(export_misp))
        .routes(routes!(feed))
        .routes(routes!(feed_events))
        .routes(routes!(peers))
        .routes(routes!(status))
        .routes(routes!(backup))
        .routes(routes!(openapi))
}

/// `GET /api/v1/lookup/{number}`.
///
/// # Errors
/// 400 for an invalid number; auth errors.
#[utoipa::path(
    get,
    path = "/lookup/{number}",
    summary = "Look one number up",
    params(
        ("number" = String, Path, description = "E.164 or international form; national numbers need `region`. URL-encode `+` as %2B."),
        LookupParams,
    ),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "The answer", body = Lookup),
        (status = 400, description = "Invalid number (error `invalid_number`, with `number`: the input and the reason), or a malformed query (`invalid_query`) or path (`invalid_path`)", body = ErrorBody),
    ),
)]
pub async fn lookup_one(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Params(q): Params<LookupParams>,
    PathParam(number): PathParam<String>,
) -> Result<Json<Lookup>, ApiError> {
    let lookup = state
        .node()
        .lookup_with(&number, q.region.as_deref(), letters(q.vanity))
        .await?;
    Ok(Json(lookup))
}

/// `POST /api/v1/lookup`: up to 10,000 numbers; invalid ones get a per-item error.
///
/// # Errors
/// 400 for a malformed body or too many numbers; auth errors.
#[utoipa::path(
    post,
    path = "/lookup",
    summary = "Look up to 10,000 numbers",
    request_body = LookupRequest,
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "One result per number, in order: a Lookup, or a per-item error for an input that is not a number", body = LookupResults),
        (status = 400, description = "No numbers or over 10,000 (error `batch_size`)", body = ErrorBody),
    ),
)]
pub async fn lookup_bulk(
    State(state): State<AppState>,
    caller: Authorized<Read>,
    Body(body): Body<LookupRequest>,
) -> Result<Json<LookupResults>, ApiError> {
    if body.numbers.is_empty() || body.numbers.len() > MAX_BATCH {
        return Err(ApiError::new(
            ErrorCode::BatchSize,
            format!("send 1 to {MAX_BATCH} numbers, got {}", body.numbers.len()),
        ));
    }
    caller.charge_items(&state, body.numbers.len())?;
    let answers = state
        .node()
        .lookup_many(body.numbers, body.region, letters(body.vanity))
        .await;
    let mut results = Vec::with_capacity(answers.len());
    for answer in answers {
        results.push(match answer {
            Ok(lookup) => LookupResult::Found(Box::new(lookup)),
            Err(LookupError::Number { input, error }) => LookupResult::Invalid(InvalidItem {
                input,
                error: ErrorCode::InvalidNumber.as_str().to_owned(),
                reason: error.code().to_owned(),
                detail: error.to_string(),
            }),
            Err(LookupError::Store(e)) => return Err(ApiError::store(&e)),
        });
    }
    Ok(Json(LookupResults { results }))
}

/// Parses `POST /api/v1/sightings` bodies: one sighting object, an array of
/// them, or `{"sightings": [...]}` ([`SubmitRequest`]). Each item is read
/// on its own so that the error lists every bad item with its index.
fn parse_submissions(body: Value) -> Result<Vec<Submission>, ApiError> {
    let items = match body {
        Value::Array(items) => items,
        Value::Object(mut map) if map.contains_key("sightings") => match map.remove("sightings") {
            Some(Value::Array(items)) if map.is_empty() => items,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidBody,
                    "`sightings` must be the only field and an array",
                ))
            }
        },
        one @ Value::Object(_) => vec![one],
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                "expected a sighting object, an array of them, or {\"sightings\": [...]}",
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(SubmitError::BatchSize(items.len()).into());
    }
    let mut parsed = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let number = item
            .get("number")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match serde_json::from_value::<Submission>(item) {
            Ok(s) => parsed.push(s),
            Err(e) => errors.push(ItemError {
                index,
                number,
                code: "invalid_item".to_owned(),
                reason: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(ApiError::invalid_batch(errors))
    }
}

/// `POST /api/v1/sightings`: one or a batch (≤ 10,000), validated whole and
/// rejected whole. 201 once every record is durable; 200 if every item
/// repeated a current report within the resubmission window (its receipt,
/// `existing: true`); 429 with `Retry-After` over the organization's limits.
///
/// # Errors
/// 400 with per-item errors, 413, auth errors.
#[utoipa::path(
    post,
    path = "/sightings",
    summary = "Submit one sighting or a batch (validated whole, rejected whole)",
    request_body = SubmitRequest,
    security(("bearer" = ["submit"])),
    responses(
        (status = 201, description = "Stored durably and published (items that repeat this organization's current report of a number within the resubmission window get that report's receipt, `existing: true`)", body = Receipts),
        (status = 200, description = "Every item repeated a current report within the resubmission window: their receipts, nothing new signed", body = Receipts),
        (status = 400, description = "Invalid batch (error `invalid_batch` with `items`: index, number, code, reason), a body of none of the three shapes (`invalid_body`), no items or over 10,000 (`batch_size`), or `batch_over_origin_limit` (the batch is over a per-origin limit by itself, or dated in an hour or day that is over and full); nothing stored", body = ErrorBody),
        (status = 429, description = "`over_origin_limit`: the batch would take this organization over the network's per-origin limits (peers would ignore the excess); nothing stored; `Retry-After` says when the full hour or day ends", body = ErrorBody),
        (status = 503, description = "`stopping`: the node is shutting down; or `own_seq_unconfirmed`: a restored or re-created store has not yet heard from a peer which of this organization's sequence numbers it holds; nothing was stored", body = ErrorBody),
    ),
)]
pub async fn submit(
    State(state): State<AppState>,
    caller: Authorized<Submit>,
    Body(body): Body<Value>,
) -> Result<(StatusCode, Json<Receipts>), ApiError> {
    let batch = parse_submissions(body)?;
    caller.charge_items(&state, batch.len())?;
    let receipts = state.node().submit(batch).await?;
    // Repeats of current reports within the resubmission window mint
    // nothing: 200 when nothing at all was created.
    let existing = receipts.iter().filter(|r| r.existing).count();
    let status = if existing == receipts.len() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Receipts {
            accepted: receipts.len(),
            existing,
            receipts,
        }),
    ))
}

/// `POST /api/v1/sightings/withdraw`.
///
/// # Errors
/// 400 for an invalid number; 409 when this organization has no current
/// report of the number (nothing is signed); auth errors.
#[utoipa::path(
    post,
    path = "/sightings/withdraw",
    summary = "Withdraw this organization's report of a number",
    request_body = WithdrawRequest,
    security(("bearer" = ["submit"])),
    responses(
        (status = 200, description = "The withdrawal record", body = Receipt),
        (status = 400, description = "Invalid number (error `invalid_batch`, with the item)", body = ErrorBody),
        (status = 409, description = "This organization has no current report of the number (error `nothing_to_withdraw`); nothing is signed", body = ErrorBody),
        (status = 503, description = "`stopping` or `own_seq_unconfirmed`, as for submissions; nothing was signed", body = ErrorBody),
    ),
)]
pub async fn withdraw(
    State(state): State<AppState>,
    _: Authorized<Submit>,
    Body(body): Body<WithdrawRequest>,
) -> Result<Json<Receipt>, ApiError> {
    let receipt = state
        .node()
        .withdraw_with(&body.number, body.region.as_deref(), letters(body.vanity))
        .await
        .map_err(|e| match e {
            SubmitError::Invalid(items) if items.iter().any(|i| i.code == NOTHING_TO_WITHDRAW) => {
                ApiError::new(ErrorCode::NothingToWithdraw, items[0].reason.clone())
            }
            other => other.into(),
        })?;
    Ok(Json(receipt))
}

/// The most recently stored sightings, newest first. Raw numbers (this
/// organization's own submissions) only for callers that may see them
/// ([`Caller::sees_own_numbers`]); everyone else gets the hash alone.
///
/// # Errors
/// 500 if the store cannot be read.
pub async fn recent_for(
    state: &AppState,
    caller: &Caller,
    limit: usize,
) -> Result<Vec<sightline_node::RecentSighting>, ApiError> {
    let mut recent = state
        .node()
        .recent(limit.min(1000))
        .await
        .map_err(|e| ApiError::store(&e))?;
    if !caller.sees_own_numbers() {
        for r in &mut recent {
            r.number = None;
        }
    }
    Ok(recent)
}

/// `GET /api/v1/sightings/recent?limit=N` (default 50, at most 1000). Never
/// anonymous: it can return this organization's raw numbers.
///
/// # Errors
/// Auth errors.
#[utoipa::path(
    get,
    path = "/sightings/recent",
    summary = "Most recently stored sightings",
    params(RecentParams),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "Newest first; raw numbers only for this node's own submissions, and only to tokens with the submit or admin scope (never anonymous, even where token-less reads are configured)", body = RecentSightings),
    ),
)]
pub async fn recent(
    State(state): State<AppState>,
    caller: Authorized<ReadSignedIn>,
    Params(q): Params<RecentParams>,
) -> Result<Json<RecentSightings>, ApiError> {
    let limit = q.limit.unwrap_or(50).min(1000);
    caller.charge_items(&state, limit)?;
    let sightings = recent_for(&state, &caller.caller, limit).await?;
    Ok(Json(RecentSightings { sightings }))
}

/// `GET /api/v1/campaigns?state=active&limit=N`: the campaigns of the
/// latest stored reports.
///
/// # Errors
/// Auth errors; a malformed query.
#[utoipa::path(
    get,
    path = "/campaigns",
    summary = "Campaigns among the latest 2,000 stored reports, largest first, then the most recently active",
    params(CampaignsParams),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "Campaigns, each as a lookup summarizes it (numbers as counts: no number appears)", body = Campaigns),
        (status = 400, description = "A malformed query (`invalid_query`)", body = ErrorBody),
    ),
)]
pub async fn campaigns(
    State(state): State<AppState>,
    caller: Authorized<Read>,
    Params(q): Params<CampaignsParams>,
) -> Result<Json<Campaigns>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    caller.charge_items(&state, limit)?;
    let campaigns = state
        .node()
        .campaigns(q.state, limit)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(Campaigns { campaigns }))
}

/// `GET /api/v1/campaigns/{id}`: a campaign and its reports. Never
/// anonymous: it can return this organization's raw numbers.
///
/// # Errors
/// 404 for an id that names no campaign here; auth errors.
#[utoipa::path(
    get,
    path = "/campaigns/{id}",
    summary = "A campaign: numbers linked into one operation, with every report that counts",
    params(("id" = String, Path, description = "A campaign id from a lookup answer (`campaign.id`)")),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "The campaign; reports newest first, numbers as hashes except those this node can name, its own submissions and numbers looked up on it since it started (shown only to tokens with the submit or admin scope)", body = sightline_node::node::CampaignDetail),
        (status = 404, description = "No campaign has this id here (error `unknown_campaign`)", body = ErrorBody),
    ),
)]
pub async fn campaign(
    State(state): State<AppState>,
    caller: Authorized<ReadSignedIn>,
    PathParam(id): PathParam<String>,
) -> Result<Json<sightline_node::node::CampaignDetail>, ApiError> {
    let found = state.node().campaign(&id).await?;
    let Some(mut found) = found else {
        return Err(ApiError::new(
            ErrorCode::UnknownCampaign,
            format!("no campaign {id:?} here: its numbers may have been withdrawn or purged, or it is not linked on this node"),
        ));
    };
    caller.charge_items(&state, found.reports.len().max(1))?;
    if !caller.caller.sees_own_numbers() {
        for r in &mut found.reports {
            r.number = None;
        }
    }
    Ok(Json(found))
}

/// The media type of a STIX 2.1 bundle.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";

/// The header naming numbers an export left out (comma-separated E.164;
/// the export's note says why).
pub const LEFT_OUT_HEADER: &str = "sightline-left-out";

/// The picture an export request asks for. Raw numbers of a campaign only
/// to callers that may see this organization's own numbers.
async fn export_picture(
    state: &AppState,
    caller: &Authorized<ReadSignedIn>,
    q: &ExportParams,
) -> Result<sightline_node::interop::Picture, ApiError> {
    let numbers = q.numbers();
    if numbers.is_empty() && q.campaign.is_none() {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "name what to export: numbers=+1…,+1… and/or campaign=ID",
        ));
    }
    if numbers.len() > sightline_node::node::MAX_EXPORT {
        return Err(ApiError::new(
            ErrorCode::BatchSize,
            format!(
                "an export names at most {} numbers, got {}",
                sightline_node::node::MAX_EXPORT,
                numbers.len()
            ),
        ));
    }
    let given = numbers.len();
    caller.charge_items(state, given.max(1))?;
    let picture = state
        .node()
        .export(
            numbers,
            q.region.clone(),
            q.campaign.as_deref(),
            caller.caller.sees_own_numbers(),
        )
        .await?;
    // A campaign's numbers were looked up too: they cost like a bulk lookup.
    if let Some(p) = &picture {
        caller.charge_items(state, p.numbers.len().saturating_sub(given) + 1)?;
    }
    picture.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownCampaign,
            format!(
                "no campaign {:?} here: its numbers may have been withdrawn or purged, or it is not linked on this node",
                q.campaign.as_deref().unwrap_or_default()
            ),
        )
    })
}

/// An export's answer: `body` as `media_type`, with the left-out header.
fn export_response(
    picture: &sightline_node::interop::Picture,
    media_type: &'static str,
    body: &Value,
) -> Response {
    let left_out: Vec<&str> = picture.left_out.iter().map(|l| l.number.as_str()).collect();
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, media_type)],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&left_out.join(",")) {
        if !left_out.is_empty() {
            response.headers_mut().insert(LEFT_OUT_HEADER, value);
        }
    }
    response
}

/// `GET /api/v1/export/stix`: a STIX 2.1 bundle.
///
/// # Errors
/// 400 for no selection or an invalid number, 404 for an unknown
/// campaign; auth errors.
#[utoipa::path(
    get,
    path = "/export/stix",
    summary = "Numbers and campaigns as a STIX 2.1 bundle (OpenCTI, TAXII clients)",
    params(ExportParams),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "A bundle (`application/stix+json;version=2.1`): identities, phone-number observables, indicators from band medium, a sighting or observed-data per organization's report, opinions for false positives, campaigns and relationships, a note on what stays hashed, TLP marking. Numbers a trusted member operates are left out and named in the `sightline-left-out` header", content_type = "application/stix+json;version=2.1", body = Object),
        (status = 400, description = "Nothing named (`invalid_query`), an invalid number (`invalid_number`), over 10,000 numbers (`batch_size`)", body = ErrorBody),
        (status = 404, description = "No campaign has this id here (`unknown_campaign`)", body = ErrorBody),
    ),
)]
pub async fn export_stix(
    State(state): State<AppState>,
    caller: Authorized<ReadSignedIn>,
    Params(q): Params<ExportParams>,
) -> Result<Response, ApiError> {
    let picture = export_picture(&state, &caller, &q).await?;
    let bundle = sightline_node::interop::stix::bundle(&picture);
    Ok(export_response(&picture, STIX_MEDIA_TYPE, &bundle))
}

/// `GET /api/v1/export/misp`: a MISP event.
///
/// # Errors
/// As [`export_stix`].
#[utoipa::path(
    get,
    path = "/export/misp",
    summary = "Numbers and campaigns as a MISP event (PyMISP, MISP's event import)",
    params(ExportParams),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "`{\"Event\": …}`: a phone-number object per number (`to_ids` from band medium), a sighting per organization's report, `sightline:` kind, band and campaign tags, the TLP tag, a text attribute on what stays hashed. Numbers a trusted member operates are left out and named in the `sightline-left-out` header", body = Object),
        (status = 400, description = "Nothing named (`invalid_query`), an invalid number (`invalid_number`), over 10,000 numbers (`batch_size`)", body = ErrorBody),
        (status = 404, description = "No campaign has this id here (`unknown_campaign`)", body = ErrorBody),
    ),
)]
pub async fn export_misp(
    State(state): State<AppState>,
    caller: Authorized<ReadSignedIn>,
    Params(q): Params<ExportParams>,
) -> Result<Response, ApiError> {
    let picture = export_picture(&state, &caller, &q).await?;
    let event = sightline_node::interop::misp::event(&picture);
    Ok(export_response(&picture, "application/json", &event))
}

/// `GET /api/v1/feed`: numbers at a band or above, as hashes, for
/// gateways: a snapshot, then changes since a cursor.
///
/// # Errors
/// 400 for a cursor this node did not give (or of another band); auth
/// errors.
#[utoipa::path(
    get,
    path = "/feed",
    summary = "Numbers at a band or above as hashes, for gateways: a full snapshot in pages, then changes since a cursor (304 when none)",
    params(FeedParams),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "Entries and the next cursor. A snapshot (`full`) lists the numbers to hold, `reset` on its first page; changes give each changed number `listed` or not. A cursor older than a day gets a new snapshot (scores fall with time). Protected numbers are never listed", body = Feed),
        (status = 304, description = "Nothing changed since `since`"),
        (status = 400, description = "A cursor this node did not give, or one of another `min_band` (`invalid_query`)", body = ErrorBody),
    ),
)]
pub async fn feed(
    State(state): State<AppState>,
    caller: Authorized<Read>,
    Params(q): Params<FeedParams>,
) -> Result<Response, ApiError> {
    use sightline_node::node::feed::{Cursor, FeedError, FeedPage};
    let band = q.min_band.unwrap_or(sightline_node::Band::High);
    let since = match q.since.as_deref() {
        Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!("since {text:?} is not a cursor this node gave"),
            )
        })?),
        None => None,
    };
    let limit = q.limit.unwrap_or(10_000);
    caller.charge_items(
        &state,
        limit.min(sightline_node::node::feed::MAX_FEED_PAGE) / 100,
    )?;
    let page = state
        .node()
        .feed(band, since, limit)
        .await
        .map_err(|e| match e {
            FeedError::Cursor(why) => ApiError::new(ErrorCode::InvalidQuery, why),
            FeedError::Store(e) => ApiError::store(&e),
        })?;
    Ok(match page {
        FeedPage::Unchanged => StatusCode::NOT_MODIFIED.into_response(),
        FeedPage::Entries {
            full,
            first,
            entries,
            cursor,
            more,
        } => Json(Feed {
            network: state.node().config().network.id.to_string(),
            full,
            reset: first,
            cursor: cursor.encode(),
            more,
            entries,
        })
        .into_response(),
    })
}

/// Numbers one event stream remembers as announced at most (a number it
/// forgets is announced again when it next changes).
const STREAM_MEMORY: usize = 100_000;

/// How often an event stream looks again at the numbers it announced:
/// scores fall with time and purges remove reports, with no new report to
/// say so.
const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(3600);

/// What an event stream carries between changes.
struct Stream {
    node: sightline_node::NodeHandle,
    band: sightline_node::Band,
    changes: tokio::sync::watch::Receiver<u64>,
    recheck: tokio::time::Interval,
    mark: u64,
    announced: std::collections::HashMap<String, sightline_node::node::feed::FeedEntry>,
    ready: std::collections::VecDeque<axum::response::sse::Event>,
}

impl Stream {
    /// Queues the events of `entries`: `listed` for a number not
    /// announced yet, `unlisted` for an announced one that left the band.
    fn announce(&mut self, entries: Vec<sightline_node::node::feed::FeedEntry>) {
        for e in entries {
            let kind = if e.listed {
                if self.announced.len() >= STREAM_MEMORY {
                    self.announced.clear();
                }
                self.announced
                    .insert(e.number_hash.clone(), e.clone())
                    .is_none()
                    .then_some("listed")
            } else {
                self.announced
                    .remove(&e.number_hash)
                    .is_some()
                    .then_some("unlisted")
            };
            if let Some(kind) = kind {
                if let Ok(event) = axum::response::sse::Event::default()
                    .event(kind)
                    .id(self.mark.to_string())
                    .json_data(&e)
                {
                    self.ready.push_back(event);
                }
            }
        }
    }

    /// Looks again at every announced number.
    async fn recheck(&mut self) {
        let held: Vec<_> = self.announced.values().cloned().collect();
        if let Ok(now) = self.node.feed_again(held, self.band).await {
            let left: Vec<_> = now.into_iter().filter(|e| !e.listed).collect();
            self.announce(left);
        }
    }

    /// The events of what changed since the last look: `listed` for a
    /// number that reached the band, `unlisted` for an announced one that
    /// left it.
    async fn look(&mut self) {
        use sightline_node::node::feed::{Cursor, FeedPage};
        loop {
            let cursor = Cursor {
                band: self.band,
                mark: self.mark,
                // A stream has no snapshot to refresh.
                snapshot_at: self.node.now(),
                scan: None,
            };
            let Ok(FeedPage::Entries {
                entries,
                cursor,
                more,
                ..
            }) = self.node.feed(self.band, Some(cursor), 10_000).await
            else {
                return;
            };
            self.mark = cursor.mark;
            self.announce(entries);
            if !more {
                return;
            }
        }
    }
}

/// `GET /api/v1/feed/events`: a server-sent-events stream of numbers that
/// reach the band (`listed`) and of those that leave it (`unlisted`), from
/// the moment of connecting, for SOAR tools.
///
/// # Errors
/// Auth errors; store errors on connecting.
#[utoipa::path(
    get,
    path = "/feed/events",
    summary = "Server-sent events: numbers that newly reach a band (`listed`) or leave it (`unlisted`), as feed entries, from the moment of connecting",
    params(("min_band" = Option<sightline_node::Band>, Query, description = "The band (default `high`)")),
    security(("bearer" = ["read"])),
    responses(
        (status = 200, description = "`text/event-stream`: each event's data is a feed entry (JSON), its id the arrival it reflects; a comment every 15 s keeps the connection open", content_type = "text/event-stream", body = String),
    ),
)]
pub async fn feed_events(
    State(state): State<AppState>,
    _: Authorized<Read>,
    Params(q): Params<FeedParams>,
) -> Result<Response, ApiError> {
    let node = state.node().clone();
    let mark = node.feed_mark().await.map_err(|e| ApiError::store(&e))?;
    let stream = Stream {
        changes: node.changes(),
        band: q.min_band.unwrap_or(sightline_node::Band::High),
        node,
        recheck: tokio::time::interval_at(
            tokio::time::Instant::now() + STREAM_RECHECK,
            STREAM_RECHECK,
        ),
        mark,
        announced: std::collections::HashMap::new(),
        ready: std::collections::VecDeque::new(),
    };
    let events = futures::stream::unfold(stream, |mut s| async move {
        loop {
            if let Some(event) = s.ready.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(event), s));
            }
            tokio::select! {
                // Ends with the node.
                changed = s.changes.changed() => {
                    changed.ok()?;
                    s.look().await;
                }
                _ = s.recheck.tick() => s.recheck().await,
            }
        }
    });
    Ok(axum::response::sse::Sse::new(events)
        .keep_alive(
            axum::response::sse::KeepAlive::new().interval(std::time::Duration::from_secs(15)),
        )
        .into_response())
}

/// `GET /api/v1/peers`.
///
/// # Errors
/// Auth errors.
#[utoipa::path(
    get,
    path = "/peers",
    summary = "Member nodes, connected or not, with this node's trust in each",
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Peers", body = Peers)),
)]
pub async fn peers(
    State(state): State<AppState>,
    _: Authorized<Read>,
) -> Result<Json<Peers>, ApiError> {
    let peers: Vec<PeerInfo> = state.node().peers().await;
    Ok(Json(Peers { peers }))
}

/// `GET /api/v1/status`.
///
/// # Errors
/// Auth errors.
#[utoipa::path(
    get,
    path = "/status",
    summary = "Node status: records, per-origin progress, rejections by reason, equivocations, store health",
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Status", body = Status)),
)]
pub async fn status(
    State(state): State<AppState>,
    _: Authorized<Read>,
) -> Result<Json<Status>, ApiError> {
    Ok(Json(node_status(&state).await?))
}

/// The node's status, as the API and `/metrics` read it.
///
/// # Errors
/// 500, or 503 while the store cannot be read.
pub(crate) async fn node_status(state: &AppState) -> Result<Status, ApiError> {
    state.node().status().await.map_err(|e| ApiError::store(&e))
}

/// `POST /api/v1/backup` (admin scope): an age-encrypted backup archive of
/// the node, streamed as `application/octet-stream` while it is read from
/// the store. The body names the age recipients or the passphrase; there is
/// no unencrypted backup. An error part-way ends the stream early, and a
/// cut archive fails to decrypt, so it cannot be restored by mistake.
///
/// # Errors
/// 400 without a valid recipient or passphrase; auth errors.
#[utoipa::path(
    post,
    path = "/backup",
    summary = "Encrypted backup of the store, raw own numbers and node key, streamed as it is read; restore with `sightline restore`",
    request_body = BackupRequest,
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The age-encrypted archive (age-encryption.org/v1); a node error part-way cuts the stream, leaving an archive that fails to decrypt", content_type = "application/octet-stream"),
        (status = 400, description = "No recipients and no passphrase, both, a bad recipient or a short passphrase (error `invalid_encryption`)", body = ErrorBody),
    ),
)]
pub async fn backup(
    State(state): State<AppState>,
    _: Authorized<Admin>,
    Body(body): Body<BackupRequest>,
) -> Result<Response, ApiError> {
    let encryption = sightline_node::backup::Encryption::new(&body.recipients, body.passphrase)
        .map_err(|e| ApiError::new(ErrorCode::InvalidEncryption, e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let writer = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(CHUNK),
    };
    let node = state.node().clone();
    tokio::spawn(async move {
        match node.backup(encryption, writer).await {
            Ok(summary) => tracing::info!(records = summary.records, "backup streamed"),
            Err(e) => {
                tracing::error!(error = %e, "backup failed part-way; the stream is cut");
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/octet-stream"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Bytes of archive sent to the client at a time.
const CHUNK: usize = 64 * 1024;

/// A blocking writer that hands the archive to the response body in
/// chunks: a slow client slows the backup down, never fills memory.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(chunk.into()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        // age's finish() hands the writer back after the last block; what
        // it wrote is sent here.
        let _ = self.send();
    }
}

/// `GET /api/v1/openapi.json`: this API's description, generated from
/// the routes above.
#[utoipa::path(
    get,
    path = "/openapi.json",
    summary = "This document",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json")),
)]
pub async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}

/// Unknown API routes.
pub async fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no such API route; see /api/v1/openapi.json",
    )
}
