//! The API's one error type. Every refusal has a stable [`ErrorCode`], and
//! the code alone decides the HTTP status; the body is an [`ErrorBody`]
//! (`{"error", "detail"}`, plus `items` or `number` where they help). 5xx
//! details are logged, never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sightline_node::node::MAX_BATCH;
use sightline_node::store::StoreError;
use sightline_node::{ItemError, LookupError, SubmitError};

/// Seconds a client is asked to wait while the store recovers.
pub(crate) const STORE_RETRY_SECS: u64 = 10;

/// Defines [`ErrorCode`]: variant, wire name and HTTP status in one table.
macro_rules! error_codes {
    ($($(#[$meta:meta])* $variant:ident = $name:tt, $status:ident;)+) => {
        /// The stable error codes of the API (the `error` field of every
        /// error answer). Each has exactly one HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum ErrorCode {
            $($(#[$meta])* #[serde(rename = $name)] $variant,)+
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)+ }
            }

            /// The HTTP status every answer with this code carries.
            pub const fn status(self) -> StatusCode {
                match self { $(ErrorCode::$variant => StatusCode::$status,)+ }
            }
        }
    };
}

error_codes! {
    /// No credentials, or a token or sign-in this node does not know.
    Unauthorized = "unauthorized", UNAUTHORIZED;
    /// The token lacks the route's scope.
    Forbidden = "forbidden", FORBIDDEN;
    /// The request came from another site's page.
    ForeignOrigin = "foreign_origin", FORBIDDEN;
    /// The Host header is not one of this node's names.
    UnknownHost = "unknown_host", MISDIRECTED_REQUEST;
    /// The request has no Host header.
    MissingHost = "missing_host", BAD_REQUEST;
    /// A token in the query string.
    TokenInUrl = "token_in_url", BAD_REQUEST;
    /// The token's work budget is spent.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    /// Too many failed authentications from this address.
    AuthLocked = "auth_locked", TOO_MANY_REQUESTS;
    /// The body is not JSON of the route's shape.
    MalformedJson = "malformed_json", BAD_REQUEST;
    /// The body is over the size limit.
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE;
    /// The body is not `application/json`.
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    /// A query parameter is malformed.
    InvalidQuery = "invalid_query", BAD_REQUEST;
    /// A path parameter is malformed.
    InvalidPath = "invalid_path", BAD_REQUEST;
    /// The body is JSON of none of the accepted shapes.
    InvalidBody = "invalid_body", BAD_REQUEST;
    /// Not a valid phone number (`number` says which input and why).
    InvalidNumber = "invalid_number", BAD_REQUEST;
    /// Some items of a batch are invalid (`items` lists each); nothing was stored.
    InvalidBatch = "invalid_batch", BAD_REQUEST;
    /// A batch of no items, or over 10,000.
    BatchSize = "batch_size", BAD_REQUEST;
    /// The batch can never fit the network's per-origin limits.
    BatchOverOriginLimit = "batch_over_origin_limit", BAD_REQUEST;
    /// The batch would take this organization over the network's limits.
    OverOriginLimit = "over_origin_limit", TOO_MANY_REQUESTS;
    /// This organization has no current report of the number to withdraw.
    NothingToWithdraw = "nothing_to_withdraw", CONFLICT;
    /// No valid backup recipient or passphrase.
    InvalidEncryption = "invalid_encryption", BAD_REQUEST;
    /// The store cannot write (a full disk); the node recovers by itself.
    StoreUnavailable = "store_unavailable", SERVICE_UNAVAILABLE;
    /// A restored store has not yet heard its own sequence numbers from a peer.
    OwnSeqUnconfirmed = "own_seq_unconfirmed", SERVICE_UNAVAILABLE;
    /// The node is shutting down.
    Stopping = "stopping", SERVICE_UNAVAILABLE;
    /// No campaign has this id on this node.
    UnknownCampaign = "unknown_campaign", NOT_FOUND;
    /// No such API route.
    NotFound = "not_found", NOT_FOUND;
    /// A fault of the node (logged there, never detailed here).
    Internal = "internal", INTERNAL_SERVER_ERROR;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which input of a lookup was not a number, and why.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NumberRejection {
    /// The number as given.
    pub input: String,
    /// Stable reason code (e.g. `too_short`, `has_letters`).
    pub reason: String,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable code: one of [`ErrorCode`]. A string here so that a client
    /// reads codes newer than itself.
    #[schema(value_type = ErrorCode)]
    pub error: String,
    /// What went wrong and what to do, for people.
    pub detail: String,
    /// Per-item errors of an `invalid_batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemError>>,
    /// The refused number of an `invalid_number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<NumberRejection>,
}

/// An API error: a stable code (which fixes the status), a human detail,
/// and what the client needs to act on it.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    /// Boxed: errors travel through every handler's `Result`.
    context: Option<Box<Context>>,
    retry_after: Option<u64>,
}

/// What an error answer carries besides its code and detail.
#[derive(Debug)]
enum Context {
    Items(Vec<ItemError>),
    Number(NumberRejection),
}

impl ApiError {
    /// A new error.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
            context: None,
            retry_after: None,
        }
    }

    /// 401.
    pub fn unauthorized(detail: &str) -> Self {
        Self::new(ErrorCode::Unauthorized, detail)
    }

    /// 403.
    pub fn forbidden(detail: &str) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    /// 429: the caller's work budget is spent; retry after `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        Self::new(
            ErrorCode::RateLimited,
            format!("too much work for this token (a bulk request costs one unit per number); retry in {secs} s"),
        )
        .retrying_after(secs)
    }

    /// 429: too many failed authentications from this address.
    pub fn locked_out(secs: u64) -> Self {
        Self::new(
            ErrorCode::AuthLocked,
            format!("too many failed authentications from this address; retry in {secs} s"),
        )
        .retrying_after(secs)
    }

    /// 400 `invalid_batch`: every bad item, with its index; nothing stored.
    pub fn invalid_batch(items: Vec<ItemError>) -> Self {
        let mut e = Self::new(
            ErrorCode::InvalidBatch,
            format!("{} invalid item(s); nothing was stored", items.len()),
        );
        e.context = Some(Box::new(Context::Items(items)));
        e
    }

    /// 503 `store_unavailable`: the store cannot write (a full disk) and
    /// the node is reopening it; nothing was stored. Plain 500 otherwise.
    pub fn store(e: &StoreError) -> Self {
        match e {
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "request refused: the store cannot write");
                Self::new(
                    ErrorCode::StoreUnavailable,
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

    /// Seconds the client should wait, for a 429 or 503.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// 500: the detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, detail.to_string())
    }

    /// The HTTP status (the code's).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The detail text.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = if self.code == ErrorCode::Internal {
            tracing::error!(code = %self.code, detail = %self.detail, "request failed");
            "internal error; see the node's log".to_owned()
        } else {
            self.detail
        };
        let (items, number) = match self.context.map(|c| *c) {
            Some(Context::Items(items)) => (Some(items), None),
            Some(Context::Number(number)) => (None, Some(number)),
            None => (None, None),
        };
        let body = ErrorBody {
            error: self.code.as_str().to_owned(),
            detail,
            items,
            number,
        };
        let mut response = (self.code.status(), Json(body)).into_response();
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
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                ErrorCode::PayloadTooLarge,
                format!("request body over {} bytes", crate::MAX_BODY_BYTES),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::new(ErrorCode::UnsupportedMediaType, rejection.body_text())
            }
            _ => Self::new(ErrorCode::MalformedJson, rejection.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(ErrorCode::InvalidQuery, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(ErrorCode::InvalidPath, rejection.body_text())
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Number { input, error } => {
                let mut e = Self::new(
                    ErrorCode::InvalidNumber,
                    format!("invalid number {input:?}: {error}"),
                );
                e.context = Some(Box::new(Context::Number(NumberRejection {
                    input,
                    reason: error.code().to_owned(),
                })));
                e
            }
            LookupError::Store(e) => Self::store(&e),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid(items) => Self::invalid_batch(items),
            SubmitError::BatchSize(n) => Self::new(
                ErrorCode::BatchSize,
                format!("a batch holds 1 to {MAX_BATCH} sightings, got {n}"),
            ),
            SubmitError::Store(e) => Self::store(&e),
            SubmitError::Stopped => Self::new(ErrorCode::Stopping, "the node is shutting down"),
            e @ SubmitError::BatchOverLimit { .. } => {
                Self::new(ErrorCode::BatchOverOriginLimit, e.to_string())
            }
            e @ SubmitError::OverLimit { retry_after, .. } => {
                Self::new(ErrorCode::OverOriginLimit, e.to_string()).retrying_after(retry_after)
            }
            e @ SubmitError::OwnSeqUnconfirmed => Self::new(
                ErrorCode::OwnSeqUnconfirmed,
                format!("{e}; nothing was stored"),
            )
            .retrying_after(STORE_RETRY_SECS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_serialize_as_their_names() {
        let mut names = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(names.insert(code.as_str()), "{code} twice");
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
        assert_eq!(
            ErrorCode::NothingToWithdraw.as_str(),
            sightline_node::node::NOTHING_TO_WITHDRAW
        );
    }

    #[tokio::test]
    async fn internal_details_are_not_sent() {
        let response = ApiError::internal("disk /dev/sda1 on fire").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error, "internal");
        assert!(!body.detail.contains("sda1"), "{}", body.detail);
    }

    #[tokio::test]
    async fn retry_after_is_a_header() {
        let response = ApiError::rate_limited(7).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "7");
    }
}
