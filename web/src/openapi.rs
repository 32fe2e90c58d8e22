//! The OpenAPI 3.1 description of the JSON API, served at
//! `/api/v1/openapi.json`. Generated: each operation comes from its
//! handler's `#[utoipa::path]` as [`crate::api::routes`] registers it, the
//! schemas from the request and response types, and the answers every
//! route shares (the boundary's, authentication's, a JSON body's) are added
//! here from the operation's own security and body, so a route cannot be
//! served undescribed and a description cannot drift from its route.

use std::sync::LazyLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, ResponseBuilder};

use crate::api::{ErrorBody, ErrorCode};

/// The bearer security scheme.
#[derive(Debug)]
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A token from sightline.toml; its scopes (`read`, `submit`, `admin`) are the scopes each operation lists",
                        ))
                        .build(),
                ),
            );
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Sightline node API",
        version = "1",
        description = "Look up phone numbers against the sharing community's signed, privacy-hashed sightings; submit and withdraw this organization's sightings. Bearer tokens from sightline.toml carry the `read`, `submit` and/or `admin` scope, in the Authorization header only (never in a URL). Token-less reads only where sightline.toml sets `web_anonymous_read` on a loopback bind, and never of raw numbers. Only the node's own host names are served (421 otherwise), and requests from other sites' pages are refused (403). Work is charged per item: a bulk lookup or batch of N numbers costs N. Every error answer is an `ErrorBody` whose `error` is a stable `ErrorCode`.",
    ),
    servers((url = "/api/v1")),
    components(schemas(ErrorBody, ErrorCode)),
    modifiers(&Bearer),
)]
struct Base;

/// The document's frame (info, servers, security scheme, error schemas),
/// into which [`crate::api::routes`] registers each operation.
pub(crate) fn base() -> OpenApi {
    <Base as utoipa::OpenApi>::openapi()
}

/// The whole document, built once.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(|| {
        let mut doc = crate::api::routes().into_openapi();
        for item in doc.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_shared_answers(operation);
            }
        }
        doc
    });
    &DOCUMENT
}

/// Whether the operation needs a token (a non-empty security requirement).
pub fn scopes(operation: &Operation) -> Vec<String> {
    operation
        .security
        .iter()
        .flatten()
        .filter_map(|requirement| serde_json::to_value(requirement).ok())
        .filter_map(|v| v.get("bearer").cloned())
        .filter_map(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .flatten()
        .collect()
}

/// Adds the answers every operation of its sort can give: the boundary's
/// on every route; authentication's, rate limiting's and the store's where
/// a token is needed; a JSON body's where there is one.
fn add_shared_answers(operation: &mut Operation) {
    let guarded = !scopes(operation).is_empty();
    let has_body = operation.request_body.is_some();
    let mut answers: Vec<(ErrorCode, &str)> = vec![
        (ErrorCode::TokenInUrl, "a token in the query string (`token_in_url`): tokens go in the Authorization header only"),
        (ErrorCode::MissingHost, "no Host header (`missing_host`)"),
        (ErrorCode::ForeignOrigin, "the request came from another site's page (`foreign_origin`)"),
        (ErrorCode::UnknownHost, "the Host header is not one of this node's names (`unknown_host`; see `web_hosts`)"),
    ];
    if guarded {
        answers.extend([
            (ErrorCode::Unauthorized, "missing or unknown bearer token (`unauthorized`)"),
            (ErrorCode::Forbidden, "the token lacks the operation's scope (`forbidden`)"),
            (ErrorCode::RateLimited, "this token's work budget is spent (`rate_limited`; a bulk request costs one unit per number); `Retry-After` says when to retry"),
            (ErrorCode::AuthLocked, "too many failed authentications from this address (`auth_locked`); `Retry-After` says when to retry"),
            (ErrorCode::StoreUnavailable, "the node's store cannot write (`store_unavailable`, e.g. a full disk): nothing was stored; the node recovers by itself, and `Retry-After` says when to retry"),
            (ErrorCode::Internal, "a fault of the node (`internal`), detailed in its log only"),
        ]);
    }
    if has_body {
        answers.extend([
            (
                ErrorCode::MalformedJson,
                "a body that is not JSON of this operation's shape (`malformed_json`)",
            ),
            (
                ErrorCode::PayloadTooLarge,
                "a body over 4 MiB (`payload_too_large`)",
            ),
            (
                ErrorCode::UnsupportedMediaType,
                "a body that is not `application/json` (`unsupported_media_type`)",
            ),
        ]);
    }
    for (code, text) in answers {
        let status = code.status().as_str().to_owned();
        let responses = &mut operation.responses.responses;
        if let Some(utoipa::openapi::RefOr::T(existing)) = responses.get_mut(&status) {
            existing.description = format!("{}; or {text}", existing.description);
            continue;
        }
        let response = ResponseBuilder::new()
            .description(capitalized(text))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            );
        responses.insert(status, response.build().into());
    }
    // Every 429 and 503 says when to retry, the operation's own included.
    for (status, response) in &mut operation.responses.responses {
        if let (utoipa::openapi::RefOr::T(response), "429" | "503") = (response, status.as_str()) {
            response.headers.insert(
                "Retry-After".to_owned(),
                HeaderBuilder::new()
                    .description(Some("Seconds to wait before retrying"))
                    .build()
                    .into(),
            );
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` names a schema the document defines.
    #[test]
    fn every_reference_resolves() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 10, "{refs:?}");
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {r}"));
            assert!(schemas.contains_key(name), "{r} is not defined");
        }
        if let Ok(path) = std::env::var("SIGHTLINE_DUMP_OPENAPI") {
            std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        }
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        out.extend(v.as_str().map(str::to_owned));
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    /// Every 429 and 503 documents the `Retry-After` the server sends.
    #[test]
    fn every_retry_answer_documents_retry_after() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in ["429", "503"] {
                    if let Some(r) = op["responses"].get(status) {
                        seen += 1;
                        assert!(
                            r["headers"].get("Retry-After").is_some(),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert!(seen >= 16, "{seen}");
    }

    /// Every operation says whether it needs a token, and which scope.
    #[test]
    fn every_operation_states_its_security() {
        for (path, item) in &document().paths.paths {
            for op in [&item.get, &item.post].into_iter().flatten() {
                assert!(op.security.is_some(), "{path} has no security");
                let scopes = scopes(op);
                if path == "/openapi.json" {
                    assert!(scopes.is_empty());
                } else {
                    assert_eq!(scopes.len(), 1, "{path}: {scopes:?}");
                    assert!(op.responses.responses.contains_key("401"), "{path}");
                }
            }
        }
    }
}
