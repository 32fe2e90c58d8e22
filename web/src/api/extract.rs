//! Extractors that run before a handler's body: who may call the route
//! ([`Authorized`]) and the request's JSON, query and path, each turned
//! into an [`ApiError`] when malformed. axum runs the parts extractors
//! first and the body last, so a caller without the scope is refused
//! before its body is read.

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sightline_node::config::Scope;

use super::ApiError;
use crate::auth::Caller;
use crate::AppState;

/// What a route asks of its caller.
pub trait Requirement: Send + Sync + 'static {
    /// The scope its token must hold.
    const SCOPE: Scope;
    /// Whether an anonymous caller is refused even where token-less reads
    /// are configured (routes that can return raw numbers).
    const SIGNED_IN: bool;
}

/// The read scope; anonymous callers too where configured.
#[derive(Debug)]
pub struct Read;
impl Requirement for Read {
    const SCOPE: Scope = Scope::Read;
    const SIGNED_IN: bool = false;
}

/// The read scope, and a token or sign-in (the answer can hold raw numbers).
#[derive(Debug)]
pub struct ReadSignedIn;
impl Requirement for ReadSignedIn {
    const SCOPE: Scope = Scope::Read;
    const SIGNED_IN: bool = true;
}

/// The submit scope.
#[derive(Debug)]
pub struct Submit;
impl Requirement for Submit {
    const SCOPE: Scope = Scope::Submit;
    const SIGNED_IN: bool = false;
}

/// The admin scope.
#[derive(Debug)]
pub struct Admin;
impl Requirement for Admin {
    const SCOPE: Scope = Scope::Admin;
    const SIGNED_IN: bool = true;
}

/// A caller that meets `R`: 401 without credentials, 403 without the
/// scope, 429 while its address is locked out or its work budget is spent.
/// Every request is charged one unit here, before its body is read (a
/// malformed request is not free); a handler whose request holds more
/// items charges the rest ([`Authorized::charge_items`]).
#[derive(Debug)]
pub struct Authorized<R> {
    /// Who is calling.
    pub caller: Caller,
    requirement: PhantomData<R>,
}

impl<R: Requirement> Authorized<R> {
    /// Whether `caller` meets `R`.
    ///
    /// # Errors
    /// 401 or 403.
    pub fn check(caller: Caller) -> Result<Self, ApiError> {
        if R::SIGNED_IN {
            caller.require_signed_in()?;
        }
        caller.require(R::SCOPE)?;
        Ok(Authorized {
            caller,
            requirement: PhantomData,
        })
    }
}

impl<R> Authorized<R> {
    /// Charges a request of `items` items (one unit each): the unit the
    /// extractor charged and the rest.
    ///
    /// # Errors
    /// 429 with `Retry-After` when the caller's budget cannot pay.
    pub fn charge_items(&self, state: &AppState, items: usize) -> Result<(), ApiError> {
        if items <= 1 {
            return Ok(());
        }
        state.auth().charge_paid(&self.caller, items, 1)
    }
}

impl<R: Requirement> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let authorized = Self::check(Caller::from_request_parts(parts, state).await?)?;
        state.auth().charge(&authorized.caller, 1)?;
        Ok(authorized)
    }
}

/// A JSON body: 400 `malformed_json`, 413 or 415 when it is not one.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

/// The query string: 400 `invalid_query` when malformed.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Params(value))
    }
}

/// A path parameter: 400 `invalid_path` when malformed.
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParam(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Auth, AuthSettings};
    use axum::http::{header, HeaderMap};
    use sightline_node::config::ApiToken;

    async fn caller(auth: &Auth, token: Option<&str>) -> Caller {
        let mut headers = HeaderMap::new();
        if let Some(t) = token {
            headers.insert(
                header::AUTHORIZATION,
                format!("Bearer {t}").parse().unwrap(),
            );
        }
        auth.identify(&headers, None).await.unwrap()
    }

    #[tokio::test]
    async fn requirements_refuse_with_401_or_403() {
        let auth = Auth::new(&AuthSettings {
            tokens: vec![
                ApiToken {
                    name: "reader".into(),
                    secret: "reader-token-0123456789".into(),
                    scopes: vec![Scope::Read],
                },
                ApiToken {
                    name: "writer".into(),
                    secret: "writer-token-0123456789".into(),
                    scopes: vec![Scope::Submit],
                },
            ],
            anonymous_read: true,
            per_second: 100,
            session_ttl: std::time::Duration::from_secs(60),
            secure_cookies: false,
        });
        let anonymous = caller(&auth, None).await;
        let reader = caller(&auth, Some("reader-token-0123456789")).await;
        let writer = caller(&auth, Some("writer-token-0123456789")).await;
        let status = |r: Result<(), ApiError>| r.err().map(|e| e.status().as_u16());
        assert_eq!(
            status(Authorized::<Read>::check(anonymous.clone()).map(drop)),
            None
        );
        assert_eq!(
            status(Authorized::<ReadSignedIn>::check(anonymous.clone()).map(drop)),
            Some(401)
        );
        assert_eq!(
            status(Authorized::<Submit>::check(anonymous).map(drop)),
            Some(401)
        );
        assert_eq!(
            status(Authorized::<ReadSignedIn>::check(reader.clone()).map(drop)),
            None
        );
        assert_eq!(
            status(Authorized::<Submit>::check(reader).map(drop)),
            Some(403)
        );
        assert_eq!(
            status(Authorized::<Submit>::check(writer.clone()).map(drop)),
            None
        );
        assert_eq!(
            status(Authorized::<Read>::check(writer.clone()).map(drop)),
            Some(403)
        );
        assert_eq!(
            status(Authorized::<Admin>::check(writer).map(drop)),
            Some(403)
        );
    }
}
