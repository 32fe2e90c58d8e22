//! The OpenAPI 3.1 description of the JSON API, served at
//! `/api/v1/openapi.json`. Kept next to the routes it describes; a test
//! checks every route of the router appears here.

use serde_json::{json, Value};

/// The OpenAPI document.
#[allow(clippy::too_many_lines)]
pub fn document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let errors = |codes: &[(&str, &str)]| -> Value {
        let mut map = serde_json::Map::new();
        for (code, text) in codes {
            map.insert((*code).into(), json!({ "description": text, "content": { "application/json": { "schema": error } } }));
        }
        Value::Object(map)
    };
    let auth_errors = [
        ("400", "A token in the query string (error `token_in_url`): tokens go in the Authorization header only"),
        ("401", "Missing or unknown bearer token"),
        ("403", "Token lacks the scope, or the request came from another site's page (error `foreign_origin`)"),
        ("421", "The Host header is not one of this node's names (error `unknown_host`; see `web_hosts`)"),
        ("429", "This token's work budget is spent (error `rate_limited`; a bulk request costs one unit per number), or too many failed authentications from this address (error `auth_locked`). `Retry-After` says when to retry"),
        ("503", "The node's store cannot write (error `store_unavailable`, e.g. a full disk), or, for submissions, a restored or re-created store has not yet heard from a peer which of this organization's sequence numbers it holds (error `own_seq_unconfirmed`): nothing was stored; the node recovers by itself, and `Retry-After` says when to retry"),
    ];
    let with = |mut base: Value, extra: &[(&str, &str)]| {
        let extra = errors(extra);
        let auth = errors(&auth_errors);
        for source in [auth, extra] {
            if let (Some(target), Value::Object(add)) = (base.as_object_mut(), source) {
                target.extend(add);
            }
        }
        base
    };
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Sightline node API", "version": "1", "description": "Look up phone numbers against the sharing community's signed, privacy-hashed sightings; submit and withdraw this organization's sightings. Bearer tokens from sightline.toml carry the `read`, `submit` and/or `admin` scope, in the Authorization header only (never in a URL). Token-less reads only where sightline.toml sets `web_anonymous_read` on a loopback bind, and never of raw numbers. Only the node's own host names are served (421 otherwise), and requests from other sites' pages are refused (403). Work is charged per item: a bulk lookup or batch of N numbers costs N." },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }],
        "paths": {
            "/lookup/{number}": { "get": {
                "summary": "Look one number up",
                "parameters": [
                    { "name": "number", "in": "path", "required": true, "schema": { "type": "string" }, "description": "E.164 or international form; national numbers need `region`. URL-encode `+` as %2B." },
                    { "name": "region", "in": "query", "schema": { "type": "string", "minLength": 2, "maxLength": 2 } },
                    { "name": "vanity", "in": "query", "schema": { "type": "boolean", "default": false }, "description": "Read letters as keypad digits (+1-800-FLOWERS). Without it a number with letters is refused (`has_letters`): a letter O typed for a zero would otherwise become a 6." }
                ],
                "responses": with(json!({ "200": { "description": "The answer", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Lookup" } } } } }), &[("400", "Invalid number (error `invalid_number`, with the reason)")])
            } },
            "/lookup": { "post": {
                "summary": "Look up to 10,000 numbers",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["numbers"], "additionalProperties": false, "properties": { "numbers": { "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": 10000 }, "region": { "type": "string" }, "vanity": { "type": "boolean", "default": false } } } } } },
                "responses": with(json!({ "200": { "description": "One result per number, in order: a Lookup or a per-item error", "content": { "application/json": { "schema": { "type": "object", "properties": { "results": { "type": "array", "items": { "oneOf": [ { "$ref": "#/components/schemas/Lookup" }, { "$ref": "#/components/schemas/ItemLookupError" } ] } } } } } } } }), &[("400", "Malformed body or batch size"), ("413", "Body over 4 MiB"), ("415", "Not application/json")])
            } },
            "/sightings": { "post": {
                "summary": "Submit one sighting or a batch (validated whole, rejected whole)",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "oneOf": [
                    { "$ref": "#/components/schemas/Submission" },
                    { "type": "array", "items": { "$ref": "#/components/schemas/Submission" }, "minItems": 1, "maxItems": 10000 },
                    { "type": "object", "required": ["sightings"], "properties": { "sightings": { "type": "array", "items": { "$ref": "#/components/schemas/Submission" }, "minItems": 1, "maxItems": 10000 } } }
                ] } } } },
                "responses": with(json!({ "201": { "description": "Stored durably and published (items that repeat this organization's current report of a number within the resubmission window get that report's receipt, `existing: true`)", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Receipts" } } } }, "200": { "description": "Every item repeated a current report within the resubmission window: their receipts, nothing new signed", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Receipts" } } } } }), &[("400", "Invalid batch (error `invalid_batch` with `items`: index, number, code, reason), or `batch_over_origin_limit` (the batch is over a per-origin limit by itself, or dated in an hour or day that is over and full); nothing stored"), ("413", "Body over 4 MiB"), ("415", "Not application/json"), ("429", "`over_origin_limit`: the batch would take this organization over the network's per-origin limits (peers would ignore the excess); nothing stored; `Retry-After` says when the full hour or day ends")])
            } },
            "/sightings/withdraw": { "post": {
                "summary": "Withdraw this organization's report of a number",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["number"], "additionalProperties": false, "properties": { "number": { "type": "string" }, "region": { "type": "string" }, "vanity": { "type": "boolean", "default": false } } } } } },
                "responses": with(json!({ "200": { "description": "The withdrawal record", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Receipt" } } } } }), &[("400", "Invalid number"), ("409", "This organization has no current report of the number (error `nothing_to_withdraw`); nothing is signed")])
            } },
            "/sightings/recent": { "get": {
                "summary": "Most recently stored sightings",
                "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 50 } }],
                "responses": with(json!({ "200": { "description": "Newest first; raw numbers only for this node's own submissions, and only to tokens with the submit or admin scope (never anonymous)", "content": { "application/json": { "schema": { "type": "object" } } } } }), &[])
            } },
            "/peers": { "get": { "summary": "Member nodes, connected or not", "responses": with(json!({ "200": { "description": "Peers", "content": { "application/json": { "schema": { "type": "object" } } } } }), &[]) } },
            "/status": { "get": { "summary": "Node status: records, per-origin progress, rejections by reason, equivocations", "responses": with(json!({ "200": { "description": "Status", "content": { "application/json": { "schema": { "type": "object" } } } } }), &[]) } },
            "/backup": { "post": {
                "summary": "Encrypted backup of the store, raw own numbers and node key (admin scope), streamed as it is read; restore with `sightline restore`",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": false, "description": "Exactly one of recipients or passphrase", "properties": { "recipients": { "type": "array", "items": { "type": "string", "pattern": "^age1" }, "description": "age X25519 recipients" }, "passphrase": { "type": "string", "minLength": 12 } } } } } },
                "responses": with(json!({ "200": { "description": "The age-encrypted archive (age-encryption.org/v1); a node error part-way cuts the stream, leaving an archive that fails to decrypt", "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } } }), &[("400", "No recipients and no passphrase, both, a bad recipient or a short passphrase (error `invalid_encryption`)")])
            } },
            "/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error", "detail"], "properties": { "error": { "type": "string", "description": "Stable code" }, "detail": { "type": "string" }, "items": { "type": "array" }, "number": { "type": "object" } } },
                "Submission": { "type": "object", "required": ["number", "kind"], "additionalProperties": false, "properties": {
                    "number": { "type": "string" }, "region": { "type": "string" },
                    "kind": { "enum": ["smishing", "vishing", "callback", "bec", "robocall", "sim-swap", "other"] },
                    "verdict": { "enum": ["malicious", "false-positive", "withdrawn"], "default": "malicious" },
                    "channel": { "enum": ["sms", "voice", "email", "chat", "other"], "default": "other" },
                    "brand": { "type": "string", "maxLength": 64 }, "confidence": { "type": "integer", "minimum": 0, "maximum": 100, "default": 70 },
                    "count": { "type": "integer", "minimum": 1, "default": 1 }, "first_seen": { "type": "integer" }, "last_seen": { "type": "integer" }, "expires": { "type": "integer" },
                    "vanity": { "type": "boolean", "default": false, "description": "Read letters as keypad digits; without it a number with letters is refused (`has_letters`)" } } },
                "Receipt": { "type": "object", "properties": { "id": { "type": "string" }, "seq": { "type": "integer" }, "number": { "type": "string" }, "existing": { "type": "boolean", "description": "The receipt of an earlier report this item repeated within the resubmission window" } } },
                "Receipts": { "type": "object", "properties": { "accepted": { "type": "integer" }, "existing": { "type": "integer" }, "receipts": { "type": "array", "items": { "$ref": "#/components/schemas/Receipt" } } } },
                "Lookup": { "type": "object", "required": ["number", "score", "band", "orgs", "line_type", "country", "block_activity", "reports"], "properties": {
                    "number": { "type": "string" }, "country": { "type": "string" }, "cc": { "type": "integer" },
                    "line_type": { "type": "string" }, "score": { "type": "number", "minimum": 0, "maximum": 1 },
                    "band": { "enum": ["none", "low", "medium", "high"] }, "orgs": { "type": "integer" },
                    "first_seen": { "type": ["integer", "null"] }, "last_seen": { "type": ["integer", "null"] },
                    "kinds": { "type": "array", "items": { "type": "string" } }, "channels": { "type": "array", "items": { "type": "string" } }, "brands": { "type": "array", "items": { "type": "string" } },
                    "block_activity": { "type": "integer" },
                    "reports": { "type": "array", "items": { "type": "object", "properties": { "org": { "type": "string" }, "kind": { "type": "string" }, "verdict": { "type": "string" }, "weight": { "type": "number" }, "trust": { "type": "number" }, "confidence": { "type": "integer" } } } } } },
                "ItemLookupError": { "type": "object", "properties": { "input": { "type": "string" }, "error": { "const": "invalid_number" }, "reason": { "type": "string" }, "detail": { "type": "string" } } }
            }
        }
    })
}
