//! Bearer tokens with `read` and `submit` scopes, and a per-token rate limit.
//!
//! 401 without a token or with a wrong one, 403 for a missing scope, 429
//! past the rate limit. On a loopback-bound server reading needs no token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap;
use sightline_node::config::{ApiToken, Scope};
use subtle::ConstantTimeEq;

use crate::api::ApiError;

/// Token checking and rate limiting.
#[derive(Debug)]
pub struct Auth {
    tokens: Vec<ApiToken>,
    loopback: bool,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token holder name, or `anonymous` (loopback reads).
    pub name: String,
}

impl Auth {
    /// Tokens from the config; `loopback` relaxes reading.
    pub fn new(tokens: Vec<ApiToken>, loopback: bool, per_second: u32) -> Self {
        Auth {
            tokens,
            loopback,
            per_second: f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the `Authorization: Bearer` header (or the `token` query
    /// parameter for pages opened in a browser) for `scope`, then the rate limit.
    ///
    /// # Errors
    /// 401, 403 or 429 as [`ApiError`].
    pub fn check(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
        scope: Scope,
    ) -> Result<Caller, ApiError> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .or(query_token);
        let caller = match presented {
            Some(secret) => {
                let token = self
                    .tokens
                    .iter()
                    .find(|t| bool::from(t.secret.as_bytes().ct_eq(secret.as_bytes())))
                    .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
                if !token.scopes.contains(&scope) {
                    return Err(ApiError::forbidden(match scope {
                        Scope::Read => "this token lacks the read scope",
                        Scope::Submit => "this token lacks the submit scope",
                        Scope::Admin => "this token lacks the admin scope",
                    }));
                }
                Caller {
                    name: token.name.clone(),
                }
            }
            None if scope == Scope::Read && self.loopback => Caller {
                name: "anonymous".into(),
            },
            None => return Err(ApiError::unauthorized("missing bearer token")),
        };
        self.take(&caller.name)?;
        Ok(caller)
    }

    fn take(&self, who: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let capacity = self.per_second * 2.0;
        let (tokens, last) = buckets.entry(who.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.per_second)
            .min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(ApiError::rate_limited())
        }
    }
}
