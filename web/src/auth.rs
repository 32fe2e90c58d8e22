//! Who is calling, what they may do, and how much.
//!
//! A caller is identified once per request by the [`Caller`] extractor:
//! an `Authorization: Bearer` token (scripts, gateways, Prometheus), a
//! browser session cookie made by signing in at `/login` (analysts), or —
//! only where `sightline.toml` sets `web_anonymous_read` on a loopback bind
//! — nobody, with the read scope and no raw numbers. Tokens never travel in
//! URLs (the boundary guard refuses a `token` query parameter).
//!
//! - A wrong token costs the client address one unit of its failure budget
//!   ([`FAILURE_BURST`] units, one back every [`FAILURE_REFILL`]) and a
//!   [`FAILURE_DELAY`] before the answer. With the budget spent, every
//!   attempt from that address is answered 429 with `Retry-After` without
//!   looking at the token, so a guesser learns nothing more.
//! - Tokens are compared as SHA-256 digests in constant time, against every
//!   configured token, so neither the position nor the length of a secret
//!   shows in the timing.
//! - Work is charged per item: a bulk lookup or batch of N numbers costs N
//!   from the caller's bucket (`api_requests_per_second` per second, bursts
//!   of twice that); a request larger than the burst is admitted on a full
//!   bucket and leaves it in debt. Every 429 carries `Retry-After`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sightline_node::config::{ApiToken, Scope};
use subtle::ConstantTimeEq;

use crate::api::ApiError;
use crate::AppState;

/// Failed authentications an address may make before it is locked out.
pub const FAILURE_BURST: u32 = 10;
/// One failure is forgiven per this interval.
pub const FAILURE_REFILL: Duration = Duration::from_secs(6);
/// Every failed authentication is answered this late.
pub const FAILURE_DELAY: Duration = Duration::from_millis(200);
/// Name of the browser session cookie.
pub const SESSION_COOKIE: &str = "sightline_session";
/// Most concurrent browser sessions; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 4096;
/// Most client addresses tracked for failures (a flood of addresses cannot
/// grow memory without bound; when full, fully recovered entries go first).
const MAX_FAILURE_ADDRESSES: usize = 65_536;

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`.
    Token,
    /// A session cookie from signing in.
    Session,
    /// Nothing (token-less reads, where configured).
    Anonymous,
}

/// Who is calling, as the [`Caller`] extractor found out.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token holder name, or `anonymous`.
    pub name: String,
    /// What the caller may do.
    scopes: Vec<Scope>,
    /// How it authenticated.
    pub via: Via,
}

impl Caller {
    /// Whether the caller holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether this caller may see raw numbers this organization submitted:
    /// the submitting automation and the operator may, a read-only analyst
    /// token and an anonymous reader may not.
    pub fn sees_own_numbers(&self) -> bool {
        self.via != Via::Anonymous && (self.has(Scope::Submit) || self.has(Scope::Admin))
    }

    /// 403 unless the caller holds `scope` (401 for an anonymous caller:
    /// a token would help).
    ///
    /// # Errors
    /// [`ApiError`] 401 or 403.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            return Ok(());
        }
        if self.via == Via::Anonymous {
            return Err(ApiError::unauthorized(
                "send Authorization: Bearer <token>, or sign in at /login",
            ));
        }
        Err(ApiError::forbidden(match scope {
            Scope::Read => "this token lacks the read scope",
            Scope::Submit => "this token lacks the submit scope",
            Scope::Admin => "this token lacks the admin scope",
        }))
    }

    /// 401 for an anonymous caller: for routes that return raw numbers.
    ///
    /// # Errors
    /// [`ApiError`] 401.
    pub fn require_signed_in(&self) -> Result<(), ApiError> {
        if self.via == Via::Anonymous {
            return Err(ApiError::unauthorized(
                "this route can return raw numbers and needs a token or a sign-in",
            ));
        }
        Ok(())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Ok(ClientAddr(address)) = ClientAddr::from_request_parts(parts, state).await;
        state.auth().identify(&parts.headers, address).await
    }
}

/// The client's address, where the server knows it (it is served with
/// connect info; a router called in-process has none).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip()),
        ))
    }
}

/// One configured token, kept as a digest.
struct KnownToken {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

impl std::fmt::Debug for KnownToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownToken")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
struct Session {
    name: String,
    scopes: Vec<Scope>,
    expires: Instant,
}

/// Counters exported in `/metrics`.
#[derive(Debug, Default)]
pub struct AuthCounters {
    /// Wrong tokens presented (API and sign-in).
    pub failures: AtomicU64,
    /// Attempts refused because the address spent its failure budget.
    pub lockouts: AtomicU64,
    /// Requests refused by the per-caller work limit.
    pub rate_limited: AtomicU64,
    /// Successful browser sign-ins.
    pub sign_ins: AtomicU64,
}

/// Token checking, sessions, failure limiting and work limiting.
#[derive(Debug)]
pub struct Auth {
    tokens: Vec<KnownToken>,
    anonymous_read: bool,
    per_second: f64,
    session_ttl: Duration,
    secure_cookies: bool,
    buckets: Mutex<HashMap<String, Bucket>>,
    failures: Mutex<HashMap<Option<IpAddr>, Bucket>>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    counters: AuthCounters,
}

/// A token bucket: `level` units at `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// Refills at `per_second` up to `capacity`, as of `now`.
    fn refill(&mut self, now: Instant, per_second: f64, capacity: f64) {
        self.level = (self.level
            + now.saturating_duration_since(self.at).as_secs_f64() * per_second)
            .min(capacity);
        self.at = now;
    }

    /// Seconds until the bucket holds `needed`, rounded up (at least 1).
    fn wait_for(&self, needed: f64, per_second: f64) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let secs = ((needed - self.level) / per_second).ceil().max(1.0) as u64;
        secs
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Settings for [`Auth::new`].
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Configured tokens.
    pub tokens: Vec<ApiToken>,
    /// Token-less reads allowed.
    pub anonymous_read: bool,
    /// Items per second per caller.
    pub per_second: u32,
    /// Sign-in lifetime.
    pub session_ttl: Duration,
    /// `Secure` on the session cookie.
    pub secure_cookies: bool,
}

impl Auth {
    /// Tokens and limits from the config.
    pub fn new(settings: &AuthSettings) -> Self {
        Auth {
            tokens: settings
                .tokens
                .iter()
                .map(|t| KnownToken {
                    name: t.name.clone(),
                    digest: digest(t.secret.expose().as_bytes()),
                    scopes: t.scopes.clone(),
                })
                .collect(),
            anonymous_read: settings.anonymous_read,
            per_second: f64::from(settings.per_second.max(1)),
            session_ttl: settings.session_ttl,
            secure_cookies: settings.secure_cookies,
            buckets: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            counters: AuthCounters::default(),
        }
    }

    /// The counters for `/metrics`.
    pub fn counters(&self) -> &AuthCounters {
        &self.counters
    }

    /// Finds out who sent `headers` from `address`.
    ///
    /// # Errors
    /// 401 for a wrong or missing credential (after [`FAILURE_DELAY`] for a
    /// wrong one), 429 while `address` is locked out.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        address: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        if let Some(secret) = bearer(headers) {
            return self.verify(secret, address).await.map(|t| Caller {
                name: t.name.clone(),
                scopes: t.scopes.clone(),
                via: Via::Token,
            });
        }
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            return self.session(id).ok_or_else(|| {
                ApiError::unauthorized("the sign-in has expired or was revoked; sign in again")
            });
        }
        if self.anonymous_read {
            return Ok(Caller {
                name: "anonymous".into(),
                scopes: vec![Scope::Read],
                via: Via::Anonymous,
            });
        }
        Err(ApiError::unauthorized(
            "send Authorization: Bearer <token>, or sign in at /login",
        ))
    }

    /// Checks a presented token against every configured one.
    ///
    /// # Errors
    /// 429 while `address` is locked out; 401 for an unknown token.
    async fn verify(&self, secret: &str, address: Option<IpAddr>) -> Result<&KnownToken, ApiError> {
        self.not_locked_out(address)?;
        let presented = digest(secret.as_bytes());
        let mut found = None;
        for token in &self.tokens {
            // Every token is compared, so the timing does not say which matched.
            if bool::from(token.digest.ct_eq(&presented)) {
                found = Some(token);
            }
        }
        if let Some(token) = found {
            return Ok(token);
        }
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        self.spend_failure(address);
        tokio::time::sleep(FAILURE_DELAY).await;
        Err(ApiError::unauthorized("unknown token"))
    }

    fn not_locked_out(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        let per_second = 1.0 / FAILURE_REFILL.as_secs_f64();
        let mut failures = lock(&self.failures);
        if let Some(bucket) = failures.get_mut(&address) {
            bucket.refill(now, per_second, f64::from(FAILURE_BURST));
            if bucket.level < 1.0 {
                self.counters.lockouts.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::locked_out(bucket.wait_for(1.0, per_second)));
            }
        }
        Ok(())
    }

    fn spend_failure(&self, address: Option<IpAddr>) {
        let now = Instant::now();
        let per_second = 1.0 / FAILURE_REFILL.as_secs_f64();
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_FAILURE_ADDRESSES && !failures.contains_key(&address) {
            failures.retain(|_, b| {
                b.refill(now, per_second, f64::from(FAILURE_BURST));
                b.level < f64::from(FAILURE_BURST)
            });
        }
        let bucket = failures.entry(address).or_insert(Bucket {
            level: f64::from(FAILURE_BURST),
            at: now,
        });
        bucket.refill(now, per_second, f64::from(FAILURE_BURST));
        bucket.level -= 1.0;
    }

    /// Charges `items` units of work to `caller`.
    ///
    /// # Errors
    /// 429 with `Retry-After` when the caller's bucket cannot pay.
    pub fn charge(&self, caller: &Caller, items: usize) -> Result<(), ApiError> {
        self.charge_paid(caller, items, 0)
    }

    /// Charges a request of `items` items of which `paid` units were
    /// charged already (the extractor's one unit, before the body was
    /// read): admitted or refused as the whole request would be, so a
    /// batch bigger than the burst still passes on a full bucket.
    ///
    /// # Errors
    /// 429 with `Retry-After` when the caller's bucket cannot pay.
    pub fn charge_paid(&self, caller: &Caller, items: usize, paid: usize) -> Result<(), ApiError> {
        let now = Instant::now();
        let capacity = self.per_second * 2.0;
        #[allow(clippy::cast_precision_loss)]
        let cost = items.max(1) as f64;
        // A request bigger than the burst is admitted on a full bucket and
        // leaves it in debt, so a whole batch is possible but never free.
        let needed = cost.min(capacity);
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(caller.name.clone()).or_insert(Bucket {
            level: capacity,
            at: now,
        });
        bucket.refill(now, self.per_second, capacity);
        #[allow(clippy::cast_precision_loss)]
        let paid = paid as f64;
        if bucket.level + paid >= needed {
            bucket.level -= cost - paid;
            Ok(())
        } else {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::rate_limited(
                bucket.wait_for(needed - paid, self.per_second),
            ))
        }
    }

    /// Checks `scope`, then charges `items`: the one call handlers make.
    ///
    /// # Errors
    /// 403 or 429.
    pub fn admit(&self, caller: &Caller, scope: Scope, items: usize) -> Result<(), ApiError> {
        caller.require(scope)?;
        self.charge(caller, items)
    }

    /// Signs a browser in with `secret`: a new session, and the
    /// `Set-Cookie` value that carries it.
    ///
    /// # Errors
    /// As for a bearer token: 429 while locked out, 401 for a wrong token.
    pub async fn sign_in(
        &self,
        secret: &str,
        address: Option<IpAddr>,
    ) -> Result<(Caller, String), ApiError> {
        let token = self.verify(secret.trim(), address).await?;
        let mut id = [0u8; 32];
        OsRng.fill_bytes(&mut id);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
        let now = Instant::now();
        let session = Session {
            name: token.name.clone(),
            scopes: token.scopes.clone(),
            expires: now + self.session_ttl,
        };
        {
            let mut sessions = lock(&self.sessions);
            if sessions.len() >= MAX_SESSIONS {
                sessions.retain(|_, s| s.expires > now);
            }
            if sessions.len() >= MAX_SESSIONS {
                if let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| *k)
                {
                    sessions.remove(&oldest);
                }
            }
            sessions.insert(digest(id.as_bytes()), session);
        }
        self.counters.sign_ins.fetch_add(1, Ordering::Relaxed);
        let caller = Caller {
            name: token.name.clone(),
            scopes: token.scopes.clone(),
            via: Via::Session,
        };
        let cookie = format!(
            "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.session_ttl.as_secs(),
            if self.secure_cookies { "; Secure" } else { "" }
        );
        Ok((caller, cookie))
    }

    /// Ends the session `headers` carry, if any; returns the `Set-Cookie`
    /// value that clears it in the browser.
    pub fn sign_out(&self, headers: &HeaderMap) -> String {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            lock(&self.sessions).remove(&digest(id.as_bytes()));
        }
        format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure_cookies { "; Secure" } else { "" }
        )
    }

    fn session(&self, id: &str) -> Option<Caller> {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let key = digest(id.as_bytes());
        let session = sessions.get(&key)?;
        if session.expires <= now {
            sessions.remove(&key);
            return None;
        }
        Some(Caller {
            name: session.name.clone(),
            scopes: session.scopes.clone(),
            via: Via::Session,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The bearer token in `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name`, if the request carries it.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(per_second: u32) -> Auth {
        Auth::new(&AuthSettings {
            tokens: vec![
                ApiToken {
                    name: "analyst".into(),
                    secret: "analyst-secret-0123456789".into(),
                    scopes: vec![Scope::Read],
                },
                ApiToken {
                    name: "gateway".into(),
                    secret: "gateway-secret-0123456789".into(),
                    scopes: vec![Scope::Read, Scope::Submit],
                },
            ],
            anonymous_read: false,
            per_second,
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
        })
    }

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[tokio::test]
    async fn bearer_tokens_and_scopes() {
        let a = auth(100);
        let c = a
            .identify(
                &with(header::AUTHORIZATION, "Bearer gateway-secret-0123456789"),
                None,
            )
            .await
            .unwrap();
        assert_eq!((c.name.as_str(), c.via), ("gateway", Via::Token));
        assert!(c.sees_own_numbers());
        let c = a
            .identify(
                &with(header::AUTHORIZATION, "bearer analyst-secret-0123456789"),
                None,
            )
            .await
            .unwrap();
        assert!(c.require(Scope::Submit).is_err());
        assert!(!c.sees_own_numbers());
        let missing = a.identify(&HeaderMap::new(), None).await.unwrap_err();
        assert_eq!(missing.status(), 401);
    }

    #[tokio::test]
    async fn wrong_tokens_lock_the_address_out_but_not_others() {
        let a = auth(100);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let wrong = with(header::AUTHORIZATION, "Bearer guess-guess-guess-guess");
        let mut codes = Vec::new();
        for _ in 0..12 {
            codes.push(a.identify(&wrong, Some(ip)).await.unwrap_err().status());
        }
        assert_eq!(codes.iter().filter(|s| **s == 401).count(), 10, "{codes:?}");
        assert_eq!(codes.iter().filter(|s| **s == 429).count(), 2, "{codes:?}");
        // Locked out: even the right token is not looked at.
        let right = with(header::AUTHORIZATION, "Bearer analyst-secret-0123456789");
        let locked = a.identify(&right, Some(ip)).await.unwrap_err();
        assert_eq!(locked.status(), 429);
        assert!(locked.retry_after().is_some_and(|s| s >= 1));
        // Another address is not affected.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(a.identify(&right, Some(other)).await.is_ok());
        assert_eq!(a.counters().failures.load(Ordering::Relaxed), 10);
        assert_eq!(a.counters().lockouts.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn sessions_sign_in_expire_and_sign_out() {
        let a = auth(100);
        let (caller, cookie_line) = a
            .sign_in(" analyst-secret-0123456789 ", None)
            .await
            .unwrap();
        assert_eq!(caller.via, Via::Session);
        assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"));
        assert!(!cookie_line.contains("Secure"));
        let id = cookie_line
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("sightline_session=");
        let headers = with(
            header::COOKIE,
            &format!("theme=dark; sightline_session={id}"),
        );
        let c = a.identify(&headers, None).await.unwrap();
        assert_eq!((c.name.as_str(), c.via), ("analyst", Via::Session));
        assert!(a.sign_out(&headers).contains("Max-Age=0"));
        assert_eq!(a.identify(&headers, None).await.unwrap_err().status(), 401);
        assert!(a.sign_in("nope-nope-nope-nope", None).await.is_err());
    }

    #[test]
    fn work_is_charged_per_item_with_retry_after() {
        let a = auth(10);
        let c = Caller {
            name: "gateway".into(),
            scopes: vec![Scope::Read],
            via: Via::Token,
        };
        // Burst 20: a 15-item bulk lookup passes, the next 15 does not.
        a.charge(&c, 15).unwrap();
        let e = a.charge(&c, 15).unwrap_err();
        assert_eq!(e.status(), 429);
        assert_eq!(e.retry_after(), Some(1));
        // Bigger than the burst: admitted only on a full bucket, then in debt.
        let b = Caller {
            name: "bulk".into(),
            ..c
        };
        a.charge(&b, 1000).unwrap();
        let e = a.charge(&b, 1).unwrap_err();
        assert!(e.retry_after().unwrap() >= 98, "{:?}", e.retry_after());
        // Paid in two steps (one unit before the body is read, the rest
        // once its size is known), a request is judged as a whole: the
        // same batch passes on a full bucket and leaves the same debt.
        let split = Caller {
            name: "split".into(),
            ..b
        };
        a.charge(&split, 1).unwrap();
        a.charge_paid(&split, 1000, 1).unwrap();
        let e = a.charge(&split, 1).unwrap_err();
        assert!(e.retry_after().unwrap() >= 98, "{:?}", e.retry_after());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = with(header::COOKIE, "a=1; sightline_session=xyz ;b=2");
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
