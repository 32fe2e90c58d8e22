//! The JSON API under `/api/v1`. Every error is `{"error": code, "detail":
//! text}` (plus `items` for per-item batch errors); 5xx details are logged,
//! never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sightline_node::config::Scope;
use sightline_node::node::letters;
use sightline_node::node::MAX_BATCH;
use sightline_node::store::StoreError;
use sightline_node::{LookupError, Submission, SubmitError};

/// Seconds a client is asked to wait while the store recovers.
pub(crate) const STORE_RETRY_SECS: u64 = 10;

use crate::auth::Caller;
use crate::AppState;

/// An API error: HTTP status, stable code, human detail.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extra: Option<(&'static str, Value)>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            extra: None,
            retry_after: None,
        }
    }

    fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra = Some((key, value));
        self
    }

    /// 401.
    pub fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403.
    pub fn forbidden(detail: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 429: the caller's work budget is spent; retry after `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too much work for this token (a bulk request costs one unit per number); retry in {secs} s"),
        )
        .retrying_after(secs)
    }

    /// 429: too many failed authentications from this address.
    pub fn locked_out(secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "auth_locked",
            format!("too many failed authentications from this address; retry in {secs} s"),
        )
        .retrying_after(secs)
    }

    /// 503 `store_unavailable`: the store cannot write (a full disk) and
    /// the node is reopening it; nothing was stored. Plain 500 otherwise.
    pub fn store(e: &StoreError) -> Self {
        match e {
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "request refused: the store cannot write");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!("the node's store cannot write (is its disk full?); nothing was stored, and the node recovers by itself once it can write again: retry in {STORE_RETRY_SECS} s"),
                )
                .retrying_after(STORE_RETRY_SECS)
            }
            other => Self::internal(other),
        }
    }

    /// The same error with `Retry-After: secs`.
    #[must_use]
    pub fn retrying_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Seconds the client should wait, for a 429.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// 500: the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            detail.to_string(),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = if self.code == "internal" {
            tracing::error!(code = self.code, detail = %self.detail, "request failed");
            "internal error; see the node's log".to_owned()
        } else {
            self.detail
        };
        let mut body = json!({ "error": self.code, "detail": detail });
        if let Some((key, value)) = self.extra {
            body[key] = value;
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // axum answers 422 for well-formed JSON of the wrong shape; clients
        // get 400 for every bad body except size and media type.
        let (status, code) = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ => (StatusCode::BAD_REQUEST, "malformed_json"),
        };
        let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body over {} bytes", crate::MAX_BODY_BYTES)
        } else {
            rejection.body_text()
        };
        ApiError::new(status, code, detail)
    }
}

fn lookup_error(e: LookupError) -> ApiError {
    match e {
        LookupError::Number { input, error } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_number",
            format!("invalid number {input:?}: {error}"),
        )
        .with("number", json!({ "input": input, "reason": error.code() })),
        LookupError::Store(e) => ApiError::store(&e),
    }
}

fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Invalid(items) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            format!("{} invalid item(s); nothing was stored", items.len()),
        )
        .with("items", json!(items)),
        SubmitError::BatchSize(n) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "batch_size",
            format!("a batch holds 1 to {MAX_BATCH} sightings, got {n}"),
        ),
        SubmitError::Store(e) => ApiError::store(&e),
        SubmitError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the node is shutting down",
        ),
        e @ SubmitError::BatchOverLimit { .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "batch_over_origin_limit",
            e.to_string(),
        ),
        e @ SubmitError::OverLimit { retry_after, .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "over_origin_limit",
            e.to_string(),
        )
        .retrying_after(retry_after),
        e @ SubmitError::OwnSeqUnconfirmed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "own_seq_unconfirmed",
            format!("{e}; nothing was stored"),
        )
        .retrying_after(STORE_RETRY_SECS),
    }
}

/// Turns a malformed query into a JSON 400.
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    let Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    Ok(q)
}

/// Optional default region for national numbers, and the vanity opt-in.
#[derive(Debug, Deserialize)]
pub struct RegionQuery {
    region: Option<String>,
    #[serde(default)]
    vanity: bool,
}

/// `GET /api/v1/lookup/{number}`.
///
/// # Errors
/// 400 for an invalid number; auth errors.
pub async fn lookup_one(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    region: Result<Query<RegionQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    state.auth().admit(&caller, Scope::Read, 1)?;
    let q = query(region)?;
    let Path(number) =
        path.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text()))?;
    let lookup = state
        .node()
        .lookup_with(&number, q.region.as_deref(), letters(q.vanity))
        .await
        .map_err(lookup_error)?;
    Ok(Json(json!(lookup)))
}

/// Body of `POST /api/v1/lookup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkLookup {
    numbers: Vec<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    vanity: bool,
}

/// `POST /api/v1/lookup`: up to 10,000 numbers; invalid ones get a per-item error.
///
/// # Errors
/// 400 for a malformed body or too many numbers; auth errors.
pub async fn lookup_bulk(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<BulkLookup>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Read)?;
    let Json(body) = body?;
    if body.numbers.is_empty() || body.numbers.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "batch_size",
            format!("send 1 to {MAX_BATCH} numbers, got {}", body.numbers.len()),
        ));
    }
    state.auth().charge(&caller, body.numbers.len())?;
    let results = state
        .node()
        .lookup_many(body.numbers, body.region, letters(body.vanity))
        .await;
    let mut out = Vec::with_capacity(results.len());
    for result in results {
        out.push(match result {
            Ok(lookup) => json!(lookup),
            Err(LookupError::Number { input, error }) => {
                json!({ "input": input, "error": "invalid_number", "reason": error.code(), "detail": error.to_string() })
            }
            Err(LookupError::Store(e)) => return Err(ApiError::store(&e)),
        });
    }
    Ok(Json(json!({ "results": out })))
}

/// Parses `POST /api/v1/sightings` bodies: one sighting object, an array of
/// them, or `{"sightings": [...]}`. Each item is checked on its own so the
/// error lists every bad item with its index.
fn parse_submissions(body: Value) -> Result<Vec<Submission>, ApiError> {
    let items = match body {
        Value::Array(items) => items,
        Value::Object(mut map) if map.contains_key("sightings") => match map.remove("sightings") {
            Some(Value::Array(items)) if map.is_empty() => items,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "`sightings` must be the only field and an array",
                ))
            }
        },
        one @ Value::Object(_) => vec![one],
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "expected a sighting object, an array of them, or {\"sightings\": [...]}",
            ))
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(submit_error(SubmitError::BatchSize(items.len())));
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
            Err(e) => errors.push(json!({ "index": index, "number": number, "code": "invalid_item", "reason": e.to_string() })),
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_batch",
            format!("{} invalid item(s); nothing was stored", errors.len()),
        )
        .with("items", Value::Array(errors)))
    }
}

/// `POST /api/v1/sightings`: one or a batch (≤ 10,000), validated whole and
/// rejected whole. 201 once every record is durable; 200 if every item
/// repeated a current report within the resubmission window (its receipt,
/// `existing: true`); 429 with `Retry-After` over the organization's limits.
///
/// # Errors
/// 400 with per-item errors, 413, auth errors.
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::Submit)?;
    let Json(body) = body?;
    let batch = parse_submissions(body)?;
    state.auth().charge(&caller, batch.len())?;
    let receipts = state.node().submit(batch).await.map_err(submit_error)?;
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
        Json(json!({ "accepted": receipts.len(), "existing": existing, "receipts": receipts })),
    ))
}

/// Body of `POST /api/v1/sightings/withdraw`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdraw {
    number: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    vanity: bool,
}

/// `POST /api/v1/sightings/withdraw`.
///
/// # Errors
/// 400 for an invalid number; 409 when this organization has no current
/// report of the number (nothing is signed); auth errors.
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<Withdraw>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    state.auth().admit(&caller, Scope::Submit, 1)?;
    let Json(body) = body?;
    let receipt = state
        .node()
        .withdraw_with(&body.number, body.region.as_deref(), letters(body.vanity))
        .await
        .map_err(|e| match e {
            SubmitError::Invalid(items)
                if items
                    .iter()
                    .any(|i| i.code == sightline_node::node::NOTHING_TO_WITHDRAW) =>
            {
                ApiError::new(
                    StatusCode::CONFLICT,
                    sightline_node::node::NOTHING_TO_WITHDRAW,
                    items[0].reason.clone(),
                )
            }
            other => submit_error(other),
        })?;
    Ok(Json(json!(receipt)))
}

/// Query of `GET /api/v1/sightings/recent`.
#[derive(Debug, Deserialize)]
pub struct RecentQuery {
    limit: Option<usize>,
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
pub async fn recent(
    State(state): State<AppState>,
    caller: Caller,
    limit: Result<Query<RecentQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require_signed_in()?;
    let q = query(limit)?;
    let limit = q.limit.unwrap_or(50).min(1000);
    state.auth().admit(&caller, Scope::Read, limit)?;
    let recent = recent_for(&state, &caller, limit).await?;
    Ok(Json(json!({ "sightings": recent })))
}

/// `GET /api/v1/peers`.
///
/// # Errors
/// Auth errors.
pub async fn peers(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    state.auth().admit(&caller, Scope::Read, 1)?;
    Ok(Json(json!({ "peers": state.node().peers().await })))
}

/// `GET /api/v1/status`.
///
/// # Errors
/// Auth errors.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(read_status(&state, &caller).await?)))
}

/// The node's status, for a caller with the read scope (charged one item).
///
/// # Errors
/// Auth errors; 500 if the store cannot be read.
pub(crate) async fn read_status(
    state: &AppState,
    caller: &Caller,
) -> Result<sightline_node::Status, ApiError> {
    state.auth().admit(caller, Scope::Read, 1)?;
    state.node().status().await.map_err(|e| ApiError::store(&e))
}

/// Body of `POST /api/v1/backup`: whom to encrypt the archive to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// age X25519 recipients (`age1…`).
    #[serde(default)]
    recipients: Vec<String>,
    /// Or a passphrase (at least 12 characters).
    #[serde(default)]
    passphrase: Option<String>,
}

/// `POST /api/v1/backup` (admin scope): an age-encrypted backup archive of
/// the node, streamed as `application/octet-stream` while it is read from
/// the store. The body names the age recipients or the passphrase; there is
/// no unencrypted backup. An error part-way ends the stream early, and a
/// cut archive fails to decrypt, so it cannot be restored by mistake.
///
/// # Errors
/// 400 without a valid recipient or passphrase; auth errors.
pub async fn backup(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<BackupRequest>, JsonRejection>,
) -> Result<axum::response::Response, ApiError> {
    caller.require_signed_in()?;
    state.auth().admit(&caller, Scope::Admin, 1)?;
    let Json(body) = body?;
    let encryption = sightline_node::backup::Encryption::new(&body.recipients, body.passphrase)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_encryption", e.to_string()))?;
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

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

/// Unknown API routes.
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API route; see /api/v1/openapi.json",
    )
}
