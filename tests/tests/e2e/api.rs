//! The JSON API and pages: every route and error path through
//! `router(state).oneshot(...)` over a real node, and over a real socket.

// Scenario tests read top to bottom; splitting them would hide the story.
#![allow(clippy::too_many_lines)]

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sightline_node::NodeHandle;
use sightline_tests::{
    eventually, Cluster, Options, ADMIN_TOKEN, READ_TOKEN, SUBMIT_ONLY_TOKEN, WRITE_TOKEN,
};
use sightline_web::{router, AppState};
use tower::ServiceExt;

use super::WAIT;

/// The address the in-process routers are told they serve.
pub(super) const LOOPBACK: &str = "127.0.0.1:7300";

pub(super) struct Reply {
    pub(super) status: StatusCode,
    headers: axum::http::HeaderMap,
    pub(super) text: String,
}

impl Reply {
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub(super) fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_owned()
    }
}

pub(super) async fn call(
    state: &AppState,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Body>,
    content_type: &str,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:7300");
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            request = request.header(header::CONTENT_TYPE, content_type);
            b
        }
        None => Body::empty(),
    };
    send(state, request.body(body).unwrap()).await
}

async fn send(state: &AppState, request: Request<Body>) -> Reply {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    // An event stream does not end: its head is the answer.
    let streaming = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    let bytes = if streaming {
        axum::body::Bytes::new()
    } else {
        response.into_body().collect().await.unwrap().to_bytes()
    };
    Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(state: &AppState, uri: &str, token: Option<&str>) -> Reply {
    call(state, Method::GET, uri, token, None, "").await
}

async fn post(state: &AppState, uri: &str, token: Option<&str>, body: &Value) -> Reply {
    call(
        state,
        Method::POST,
        uri,
        token,
        Some(Body::from(body.to_string())),
        "application/json",
    )
    .await
}

/// A form post from one of the node's own pages.
async fn post_form(state: &AppState, uri: &str, body: &str) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:7300")
        .header(header::ORIGIN, "http://127.0.0.1:7300")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    send(state, request).await
}

async fn records(node: &NodeHandle) -> u64 {
    node.status().await.unwrap().records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_submit_withdraw_and_reads() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let node = cluster.start(0).await;
    let state = AppState::new(node.clone(), LOOPBACK.parse().unwrap());

    assert_eq!(get(&state, "/healthz", None).await.status, StatusCode::OK);

    // Submit one, then a batch in both batch shapes.
    let one = post(&state, "/api/v1/sightings", Some(WRITE_TOKEN), &json!({"number": "+1 415 555 0134", "kind": "smishing", "channel": "sms", "brand": "Example Bank", "confidence": 90})).await;
    assert_eq!(one.status, StatusCode::CREATED, "{}", one.text);
    assert_eq!(one.json()["receipts"][0]["number"], "+14155550134");
    let many = post(&state, "/api/v1/sightings", Some(WRITE_TOKEN), &json!([{"number": "+1 415 555 0135", "kind": "vishing"}, {"number": "020 7946 0958", "region": "GB", "kind": "bec"}])).await;
    assert_eq!(
        (many.status, many.json()["accepted"].as_u64()),
        (StatusCode::CREATED, Some(2))
    );
    let wrapped = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &json!({"sightings": [{"number": "+61 491 570 156", "kind": "sim-swap"}]}),
    )
    .await;
    assert_eq!(wrapped.status, StatusCode::CREATED, "{}", wrapped.text);
    assert_eq!(records(&node).await, 4);

    // Lookup one: every field analysts and gateways rely on.
    let l = get(&state, "/api/v1/lookup/%2B14155550134", None).await;
    assert_eq!(l.status, StatusCode::OK, "{}", l.text);
    let l = l.json();
    for field in [
        "number",
        "score",
        "band",
        "orgs",
        "line_type",
        "country",
        "first_seen",
        "last_seen",
        "block_activity",
        "reports",
        "kinds",
        "channels",
        "brands",
    ] {
        assert!(l.get(field).is_some(), "lookup lacks {field}: {l}");
    }
    assert_eq!(l["number"], "+14155550134");
    assert_eq!(l["band"], "high");
    assert_eq!(l["block_activity"], 2);
    assert_eq!(l["reports"][0]["org"], "Bank");
    for field in ["org", "kind", "verdict", "weight"] {
        assert!(l["reports"][0].get(field).is_some(), "report lacks {field}");
    }
    let national = get(&state, "/api/v1/lookup/(415)%20555-0134?region=US", None).await;
    assert_eq!(national.json()["number"], "+14155550134");

    // Invalid numbers: 400 naming the number and the reason.
    let bad = get(&state, "/api/v1/lookup/12345abc", None).await;
    assert_eq!(
        (bad.status, bad.error()),
        (StatusCode::BAD_REQUEST, "invalid_number".into())
    );
    assert!(bad.json()["detail"].as_str().unwrap().contains("12345abc"));
    assert_eq!(bad.json()["number"]["reason"], "no_region");

    // Bulk lookup with one invalid item: per-item error, others answered.
    let bulk = post(
        &state,
        "/api/v1/lookup",
        None,
        &json!({"numbers": ["+1 415 555 0134", "not a number", "+1 415 555 0199"]}),
    )
    .await;
    assert_eq!(bulk.status, StatusCode::OK);
    let results = bulk.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["band"], "high");
    assert_eq!(results[1]["error"], "invalid_number");
    assert_eq!(results[2]["band"], "none");
    let too_many = post(
        &state,
        "/api/v1/lookup",
        None,
        &json!({"numbers": vec!["+14155550134"; 10_001]}),
    )
    .await;
    assert_eq!(
        (too_many.status, too_many.error()),
        (StatusCode::BAD_REQUEST, "batch_size".into())
    );
    let empty = post(&state, "/api/v1/lookup", None, &json!({"numbers": []})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);

    // Withdraw.
    let w = post(
        &state,
        "/api/v1/sightings/withdraw",
        Some(WRITE_TOKEN),
        &json!({"number": "+1 415 555 0134"}),
    )
    .await;
    assert_eq!(w.status, StatusCode::OK, "{}", w.text);
    assert_eq!(
        get(&state, "/api/v1/lookup/%2B14155550134", None)
            .await
            .json()["band"],
        "none"
    );
    let w_bad = post(
        &state,
        "/api/v1/sightings/withdraw",
        Some(WRITE_TOKEN),
        &json!({"number": "nope"}),
    )
    .await;
    assert_eq!(
        (w_bad.status, w_bad.error()),
        (StatusCode::BAD_REQUEST, "invalid_batch".into())
    );
    // Nothing to withdraw: a number this organization never reported, or
    // already withdrew, gets 409 and no signed record.
    let before = records(&node).await;
    for number in ["+1 415 555 0134", "+1 415 555 0199"] {
        let w = post(
            &state,
            "/api/v1/sightings/withdraw",
            Some(WRITE_TOKEN),
            &json!({ "number": number }),
        )
        .await;
        assert_eq!(
            (w.status, w.error()),
            (StatusCode::CONFLICT, "nothing_to_withdraw".into()),
            "{number}: {}",
            w.text
        );
    }
    let w = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &json!([{"number": "+1 415 555 0199", "kind": "other", "verdict": "withdrawn"}]),
    )
    .await;
    assert_eq!(w.status, StatusCode::BAD_REQUEST);
    assert_eq!(w.json()["items"][0]["code"], "nothing_to_withdraw");
    assert_eq!(records(&node).await, before, "no withdrawal was signed");

    // Reads. Recent sightings can hold raw numbers: never anonymous, and
    // the raw number only for a token that may submit.
    let anonymous = get(&state, "/api/v1/sightings/recent?limit=2", None).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        anonymous.text
    );
    let recent = get(
        &state,
        "/api/v1/sightings/recent?limit=2",
        Some(WRITE_TOKEN),
    )
    .await
    .json();
    assert_eq!(recent["sightings"].as_array().unwrap().len(), 2);
    assert_eq!(recent["sightings"][0]["verdict"], "withdrawn");
    assert_eq!(
        recent["sightings"][0]["number"], "+14155550134",
        "own submissions show the raw number locally"
    );
    let hashed = get(&state, "/api/v1/sightings/recent?limit=2", Some(READ_TOKEN))
        .await
        .json();
    assert_eq!(
        hashed["sightings"][0]["number"],
        Value::Null,
        "a read-only token sees the hash alone"
    );
    assert_eq!(
        hashed["sightings"][0]["number_hash"],
        recent["sightings"][0]["number_hash"]
    );
    let peers = get(&state, "/api/v1/peers", None).await.json();
    assert_eq!(peers["peers"][0]["org"], "Carrier");
    let status = get(&state, "/api/v1/status", None).await.json();
    // Four reports; the withdrawal replaced one of them.
    assert_eq!(
        (status["records"].as_u64(), status["org"].as_str()),
        (Some(4), Some("Bank"))
    );

    // A batch may report a number and withdraw it again.
    let both = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &json!([{"number": "+1 415 555 0188", "kind": "bec"}, {"number": "+1 415 555 0188", "kind": "bec", "verdict": "withdrawn"}]),
    )
    .await;
    assert_eq!(both.status, StatusCode::CREATED, "{}", both.text);

    // Unknown route: JSON 404.
    let missing = get(&state, "/api/v1/nope", None).await;
    assert_eq!(
        (missing.status, missing.error()),
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_rejected_whole_with_clear_errors() {
    // Four 10,000-item batches: a rate that pays for them, so what this test
    // sees is validation, not the per-item work limit (tested on its own).
    let mut cluster = Cluster::build(
        &[("Bank", 0.8)],
        &Options {
            api_rate: 100_000,
            ..Options::default()
        },
    );
    let node = cluster.start(0).await;
    let state = AppState::new(node.clone(), LOOPBACK.parse().unwrap());
    let submit = |body: Body, content_type: &'static str| {
        let state = state.clone();
        async move {
            call(
                &state,
                Method::POST,
                "/api/v1/sightings",
                Some(WRITE_TOKEN),
                Some(body),
                content_type,
            )
            .await
        }
    };

    // 10,000 items with one bad number: 400 naming the item, nothing stored.
    let mut items: Vec<Value> = (0..10_000).map(|i| json!({"number": format!("+1 415 555 {:04}", 100 + i % 100), "kind": "smishing", "count": i + 1})).collect();
    items[7_777] = json!({"number": "+1 415 555", "kind": "smishing"});
    let r = submit(
        Body::from(Value::Array(items.clone()).to_string()),
        "application/json",
    )
    .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "invalid_batch".into()),
        "{}",
        r.text
    );
    let errs = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["index"], 7_777);
    assert_eq!(errs[0]["code"], "too_short");
    assert_eq!(records(&node).await, 0);

    // The same batch with a wrong type in one item (caught before the node sees it).
    items[7_777] = json!({"number": "+1 415 555 0100", "kind": "smishing", "confidence": "high"});
    let r = submit(
        Body::from(Value::Array(items.clone()).to_string()),
        "application/json",
    )
    .await;
    assert_eq!(r.error(), "invalid_batch");
    assert_eq!(r.json()["items"][0]["index"], 7_777);
    // An unknown kind, an out-of-range confidence, a huge count, an unknown field.
    for bad in [
        json!({"number": "+1 415 555 0100", "kind": "phishing"}),
        json!({"number": "+1 415 555 0100", "kind": "bec", "confidence": 101}),
        json!({"number": "+1 415 555 0100", "kind": "bec", "count": 1e30}),
        json!({"number": "+1 415 555 0100", "kind": "bec", "colour": "red"}),
        json!({"number": "+1 415 555 0100", "kind": "bec", "brand": "x".repeat(65)}),
        json!({"number": "+1 415 555 0100", "kind": "bec", "last_seen": 99_999_999_999_u64}),
        json!({"number": "+1 415 555 0100", "kind": "bec", "last_seen": 1_000_000}),
    ] {
        let r = submit(Body::from(bad.to_string()), "application/json").await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::BAD_REQUEST, "invalid_batch".into()),
            "{bad}: {}",
            r.text
        );
    }
    // 10,001 items.
    items.push(json!({"number": "+1 415 555 0100", "kind": "bec"}));
    items[7_777] = json!({"number": "+1 415 555 0100", "kind": "bec"});
    let r = submit(
        Body::from(Value::Array(items).to_string()),
        "application/json",
    )
    .await;
    assert_eq!(r.error(), "batch_size");
    // Not JSON, invalid UTF-8, wrong media type, wrong shapes, an empty batch.
    let r = submit(Body::from("{\"number\": "), "application/json").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "malformed_json".into())
    );
    let r = submit(Body::from(vec![b'"', 0xff, 0xfe, b'"']), "application/json").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "malformed_json".into())
    );
    let r = submit(Body::from("number=1"), "application/x-www-form-urlencoded").await;
    assert_eq!(
        (r.status, r.error()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type".into()
        )
    );
    for shape in [json!(42), json!("text"), json!([]), json!({"sightings": 3})] {
        let r = submit(Body::from(shape.to_string()), "application/json").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{shape}");
    }
    // Over 4 MiB: 413 with a JSON error.
    let huge = format!(
        "[{}]",
        vec![
            format!(
                "{{\"number\":\"+14155550100\",\"kind\":\"bec\",\"brand\":\"{}\"}}",
                "x".repeat(60)
            );
            60_000
        ]
        .join(",")
    );
    let r = submit(Body::from(huge), "application/json").await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    let r = call(
        &state,
        Method::POST,
        "/api/v1/lookup",
        None,
        Some(Body::from("[1,2]")),
        "application/json",
    )
    .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "malformed_json".into())
    );
    assert_eq!(
        records(&node).await,
        0,
        "nothing stored by any rejected request"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_and_rate_limits() {
    let options = Options {
        api_rate: 2,
        ..Options::default()
    };
    let mut cluster = Cluster::build(&[("Bank", 0.8)], &options);
    let node = cluster.start(0).await;
    // Not loopback: every request needs a token.
    let open = AppState::new(node.clone(), "192.0.2.10:7300".parse().unwrap());
    let r = get(&open, "/api/v1/status", None).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let r = get(&open, "/api/v1/status", Some("wrong-token-wrong-token")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = get(&open, "/api/v1/status", Some(SUBMIT_ONLY_TOKEN)).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    assert_eq!(
        get(&open, "/api/v1/status", Some(READ_TOKEN)).await.status,
        StatusCode::OK
    );
    let r = post(
        &open,
        "/api/v1/sightings",
        Some(READ_TOKEN),
        &json!({"number": "+14155550100", "kind": "bec"}),
    )
    .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    assert_eq!(
        get(&open, "/metrics", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let page = get(&open, "/", None).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.text.contains("Sign in") && page.text.contains("type=\"password\""),
        "{}",
        page.text
    );
    let in_url = get(&open, &format!("/?token={READ_TOKEN}"), None).await;
    assert_eq!(
        (in_url.status, in_url.error()),
        (StatusCode::BAD_REQUEST, "token_in_url".into())
    );

    // Rate limit: 2/s with bursts of 4, per token.
    let limited = AppState::new(node.clone(), LOOPBACK.parse().unwrap());
    let mut codes = Vec::new();
    for _ in 0..8 {
        codes.push(
            get(&limited, "/api/v1/status", Some(READ_TOKEN))
                .await
                .status,
        );
    }
    assert!(codes.contains(&StatusCode::TOO_MANY_REQUESTS), "{codes:?}");
    let r = get(&limited, "/api/v1/status", Some(READ_TOKEN)).await;
    assert_eq!(r.error(), "rate_limited");
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // A malformed request is refused, and paid for: the unit is charged
    // before the body is read.
    let fresh = AppState::new(node.clone(), LOOPBACK.parse().unwrap());
    let mut codes = Vec::new();
    for _ in 0..8 {
        let r = call(
            &fresh,
            Method::POST,
            "/api/v1/lookup",
            Some(READ_TOKEN),
            Some(Body::from("{")),
            "application/json",
        )
        .await;
        codes.push(r.status);
    }
    assert_eq!(codes[0], StatusCode::BAD_REQUEST);
    assert!(codes.contains(&StatusCode::TOO_MANY_REQUESTS), "{codes:?}");
    // Another token has its own budget.
    assert_eq!(
        get(&limited, "/api/v1/status", Some(WRITE_TOKEN))
            .await
            .status,
        StatusCode::OK
    );
    // Loopback: reading without a token is allowed, submitting is not.
    let r = post(
        &limited,
        "/api/v1/sightings",
        None,
        &json!({"number": "+14155550100", "kind": "bec"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_metrics_and_pages() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    cluster.start_all().await;
    cluster.wait_connected().await;
    cluster
        .node(1)
        .submit(vec![{
            let mut s = sightline_node::Submission::new(
                "+44 20 7946 0958",
                sightline_protocol::Kind::Vishing,
            );
            s.brand = Some("<script>alert(1)</script>".into());
            s.confidence = 100;
            s
        }])
        .await
        .unwrap();
    let node = cluster.node(0).clone();
    eventually("report arrives", WAIT, &node, || async {
        node.lookup("+44 20 7946 0958", None)
            .await
            .is_ok_and(|l| l.score.orgs == 1)
    })
    .await;
    let state = AppState::new(node.clone(), LOOPBACK.parse().unwrap());

    let doc = get(&state, "/api/v1/openapi.json", None).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/lookup/{number}",
        "/lookup",
        "/sightings",
        "/sightings/withdraw",
        "/sightings/recent",
        "/peers",
        "/status",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }
    for code in ["400", "401", "403", "413", "429"] {
        assert!(
            doc["paths"]["/sightings"]["post"]["responses"]
                .get(code)
                .is_some(),
            "OpenAPI lacks {code} for submit"
        );
    }

    let metrics = get(&state, "/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    for name in [
        "sightline_records 1",
        "sightline_received_total",
        "sightline_peers_connected 1",
        "sightline_sync_lag_records",
    ] {
        assert!(
            metrics.text.contains(name),
            "metrics lack {name}:\n{}",
            metrics.text
        );
    }
    // A latency histogram per route pattern (label order is the encoder's).
    assert!(
        metrics.text.lines().any(|l| l
            .starts_with("sightline_http_request_duration_seconds_bucket{")
            && l.contains("method=\"GET\",route=\"/api/v1/openapi.json\"")),
        "metrics lack the openapi.json latency histogram:\n{}",
        metrics.text
    );
    // OpenMetrics: every family declared once, the exposition ends with EOF.
    assert!(metrics.text.ends_with("# EOF\n"), "{}", metrics.text);
    assert!(
        !metrics.text.contains("2079460958"),
        "a raw number leaked into metrics"
    );

    let page = post_form(&state, "/", "number=%2B44+20+7946+0958").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("data-band=\"medium\""), "{}", page.text);
    assert!(page.text.contains("<label for=\"number\">"));
    assert!(page.text.contains("Carrier"));
    assert!(
        page.text.contains("&lt;script&gt;"),
        "brand must be escaped"
    );
    assert!(!page.text.contains("<script>alert"));
    let invalid = post_form(&state, "/", "number=hello").await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert!(invalid.text.contains("role=\"alert\"") && invalid.text.contains("hello"));
    // Several numbers, one per line: each checked once, a bad line said so.
    let bulk = post_form(
        &state,
        "/bulk",
        "numbers=%2B44+20+7946+0958%0Ahello%0A%2B44+20+7946+0958",
    )
    .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.text);
    assert!(bulk.text.contains("2 number(s) checked"), "{}", bulk.text);
    assert!(bulk.text.contains("data-band=\"medium\""), "{}", bulk.text);
    assert!(
        bulk.text.contains("not a number Sightline can look up"),
        "{}",
        bulk.text
    );
    // A pasted message: its number found and checked, the rest left out.
    let message = post_form(
        &state,
        "/message",
        "message=HMRC%3A+call+%2B44+20+7946+0958+today%2C+ref+2026-12-07&region=",
    )
    .await;
    assert_eq!(message.status, StatusCode::OK, "{}", message.text);
    assert!(
        message.text.contains("1 number(s) found in the message")
            && message.text.contains("data-band=\"medium\"")
            && message.text.contains("How this score is computed"),
        "{}",
        message.text
    );
    // A number in the URL is refused, not looked up.
    let in_url = get(&state, "/?number=%2B44+20+7946+0958", None).await;
    assert_eq!(in_url.status, StatusCode::BAD_REQUEST);
    assert!(!in_url.text.contains("data-band"), "{}", in_url.text);
    for (uri, needle, token) in [
        ("/recent", "Recent sightings", Some(READ_TOKEN)),
        ("/peers", "Carrier", None),
        ("/status", "Node status", None),
        ("/style.css", ".badge", None),
    ] {
        let r = get(&state, uri, token).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(r.text.contains(needle), "{uri} lacks {needle}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_answers_over_http_and_refuses_open_binds_without_tokens() {
    let mut cluster = Cluster::new(&[("Bank", 0.8)]);
    let node = cluster.start(0).await;
    let web = sightline_tests::Web::start(&node).await;
    let addr = web.addr;
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let submitted = http
        .post(format!("http://{addr}/api/v1/sightings"))
        .bearer_auth(WRITE_TOKEN)
        .json(&json!({"number": "+1 415 555 0101", "kind": "callback"}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 201);
    let lookup: Value = http
        .get(format!("http://{addr}/api/v1/lookup/%2B14155550101"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lookup["band"], "medium");
    web.stop().await;

    // Non-loopback without tokens: refused. (This node has tokens, so build one without.)
    let mut bare = Cluster::new(&[("Solo", 0.5)]);
    let mut config = bare.config(0);
    config.tokens.clear();
    let solo = sightline_node::start(config, bare.clock.clone())
        .await
        .unwrap();
    let refused = sightline_web::bind(solo.clone(), "0.0.0.0:0".parse().unwrap(), async {}).await;
    assert!(matches!(
        refused,
        Err(sightline_web::ServeError::OpenWithoutTokens(_))
    ));
    solo.shutdown().await;
    bare.shutdown().await;
    cluster.shutdown().await;
}

/// The local boundary over a real socket, with the product's defaults
/// (no token-less reads): DNS rebinding, foreign origins, tokens in URLs,
/// security headers, guessing tokens, work charged per item, and a browser
/// sign-in with a session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_boundary_holds_against_rebinding_foreign_pages_and_guessing() {
    let options = Options {
        anonymous_read: false,
        api_rate: 3,
        ..Options::default()
    };
    let mut cluster = Cluster::build(&[("Bank", 0.8)], &options);
    let node = cluster.start(0).await;
    let web = sightline_tests::Web::start(&node).await;
    let base = format!("http://{}", web.addr);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let submitted = http
        .post(format!("{base}/api/v1/sightings"))
        .bearer_auth(WRITE_TOKEN)
        .json(&json!({"number": "+1 415 555 0177", "kind": "smishing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 201);

    // Work is charged per item: with 3 items/s (bursts of 6), a bulk lookup
    // of 10 numbers is admitted on a full bucket and leaves it in debt, so
    // the next request waits (counting requests, it would pass).
    let numbers: Vec<String> = (0..10).map(|i| format!("+1 415 555 01{i:02}")).collect();
    let bulk = http
        .post(format!("{base}/api/v1/lookup"))
        .bearer_auth(READ_TOKEN)
        .json(&json!({ "numbers": numbers }))
        .send()
        .await
        .unwrap();
    assert_eq!(bulk.status(), 200);
    let next = http
        .get(format!("{base}/api/v1/lookup/%2B14155550177"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 429);
    assert!(next.headers().contains_key("retry-after"));

    // DNS rebinding: a page on attacker.example re-pointed at 127.0.0.1
    // sends its own name as Host. Nothing is served, whatever the route.
    for route in [
        "/api/v1/sightings/recent",
        "/api/v1/status",
        "/api/v1/lookup/%2B14155550177",
        "/",
        "/recent",
        "/healthz",
    ] {
        let r = http
            .get(format!("{base}{route}"))
            .header("host", format!("attacker.example:{}", web.addr.port()))
            .bearer_auth(WRITE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 421, "{route}");
        assert!(!r.text().await.unwrap().contains("4155550177"), "{route}");
    }
    // A foreign Origin is refused on every route, reads and sign-in alike.
    for (method, route) in [
        (reqwest::Method::GET, "/api/v1/status"),
        (reqwest::Method::POST, "/login"),
        (reqwest::Method::POST, "/api/v1/sightings"),
    ] {
        let r = http
            .request(method, format!("{base}{route}"))
            .header("origin", "http://attacker.example")
            .bearer_auth(WRITE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{route}");
    }
    // `Origin: null` (a sandboxed frame, a data: page) is another site too,
    // unless the browser itself vouches that the post is same-origin.
    for fetch_site in ["cross-site", "none"] {
        let r = http
            .post(format!("{base}/login"))
            .header("origin", "null")
            .header("sec-fetch-site", fetch_site)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={READ_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{fetch_site}");
    }
    // No token-less reads unless sightline.toml says so.
    for route in [
        "/api/v1/status",
        "/api/v1/lookup/%2B14155550177",
        "/metrics",
    ] {
        let r = http.get(format!("{base}{route}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{route}");
    }
    // Tokens in URLs are refused, not used.
    let r = http
        .get(format!("{base}/api/v1/status?token={READ_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Every response carries the security headers.
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    for r in [
        &page,
        &http
            .get(format!("{base}/api/v1/status"))
            .bearer_auth(WRITE_TOKEN)
            .send()
            .await
            .unwrap(),
    ] {
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("default-src 'none'")
                && !csp.contains("unsafe-inline")
                && !csp.contains("script-src"),
            "{csp}"
        );
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }

    // A browser signs in: the token goes in a form body, a session cookie
    // comes back, and pages work with the cookie alone.
    let signed_in = http
        .post(format!("{base}/login"))
        .header("origin", &base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={WRITE_TOKEN}&next=%2Fstatus"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/status");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let status_page = http
        .get(format!("{base}/status"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(status_page.status(), 200);
    assert!(status_page.text().await.unwrap().contains("Sign out"));
    let looked_up = http
        .post(format!("{base}/"))
        .header("cookie", &session)
        .header("origin", &base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("number=%2B1+415+555+0177")
        .send()
        .await
        .unwrap();
    assert_eq!(looked_up.status(), 200);
    assert!(looked_up.text().await.unwrap().contains("data-band="));
    let signed_out = http
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), 303);
    let after = http
        .get(format!("{base}/status"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "the session ended with sign-out");

    // Guessing tokens: each failure is slow, and after a burst of them the
    // address is locked out — even the right token is not looked at — while
    // other addresses are not.
    let mut codes = Vec::new();
    for i in 0..14 {
        let r = http
            .get(format!("{base}/api/v1/status"))
            .bearer_auth(format!("guess-{i:04}-guess-guess-guess"))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        codes.push(r.status().as_u16());
    }
    assert_eq!(
        codes.iter().filter(|c| **c == 401).count(),
        usize::try_from(sightline_web::auth::FAILURE_BURST).unwrap(),
        "{codes:?}"
    );
    assert!(codes.ends_with(&[429, 429]), "{codes:?}");
    let right = http
        .get(format!("{base}/api/v1/status"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 429);
    assert_eq!(
        right.json::<Value>().await.unwrap()["error"],
        "auth_locked",
        "locked out"
    );
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let metrics = elsewhere
        .get(format!("{base}/metrics"))
        .bearer_auth(WRITE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200, "another address is not locked out");
    let text = metrics.text().await.unwrap();
    for line in [
        "sightline_auth_failures_total 10",
        "sightline_http_refused_total{reason=\"host\"} 6",
        "sightline_http_refused_total{reason=\"origin\"} 5",
        "sightline_http_refused_total{reason=\"token_in_url\"} 1",
        "sightline_web_sign_ins_total 1",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
    web.stop().await;
    cluster.shutdown().await;
}

/// A letter O typed for a zero used to be read as a keypad 6, and the
/// wrong number was signed and shared. Letters are refused unless the
/// caller asks for a vanity number; every answer shows the number as read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn letters_in_numbers_are_refused_unless_vanity_is_asked_for() {
    let mut cluster = Cluster::new(&[("Bank", 0.8)]);
    let node = cluster.start(0).await;
    let state = AppState::new(node.clone(), LOOPBACK.parse().unwrap());
    let typo = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &json!({"number": "+1 415 555 O136", "kind": "vishing"}),
    )
    .await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST, "{}", typo.text);
    assert_eq!(typo.json()["items"][0]["code"], "has_letters");
    assert_eq!(records(&node).await, 0, "nothing signed or stored");
    let lookup = get(&state, "/api/v1/lookup/%2B1%20415%20555%2001O1", None).await;
    assert_eq!(lookup.status, StatusCode::BAD_REQUEST);
    assert_eq!(lookup.json()["number"]["reason"], "has_letters");
    let bulk = post(
        &state,
        "/api/v1/lookup",
        Some(READ_TOKEN),
        &json!({"numbers": ["+1 415 555 01O1", "+1 415 555 0101"]}),
    )
    .await
    .json();
    assert_eq!(bulk["results"][0]["reason"], "has_letters");
    assert_eq!(bulk["results"][1]["number"], "+14155550101");

    // Opted in: a vanity number, answered as the number it was read as.
    let vanity = get(&state, "/api/v1/lookup/%2B1-800-FLOWERS?vanity=true", None).await;
    assert_eq!(vanity.status, StatusCode::OK, "{}", vanity.text);
    assert_eq!(vanity.json()["number"], "+18003569377");
    let submitted = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &json!({"number": "+1-800-FLOWERS", "kind": "callback", "vanity": true}),
    )
    .await;
    assert_eq!(submitted.status, StatusCode::CREATED, "{}", submitted.text);
    assert_eq!(submitted.json()["receipts"][0]["number"], "+18003569377");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmissions_are_idempotent_and_the_own_limits_answer_429() {
    let mut cluster = Cluster::build(
        &[("Bank", 0.8), ("Carrier", 0.6)],
        &Options {
            limits: sightline_node::store::Limits {
                records_per_hour: 3,
                numbers_per_day: 4,
            },
            ..Options::default()
        },
    );
    // A clock fixed mid-hour: the hour's limit must not roll over mid-test.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = std::sync::Arc::new(sightline_node::ManualClock::new(now - now % 3600 - 1800));
    let node = sightline_node::start(cluster.config(0), clock)
        .await
        .unwrap();
    let state = AppState::new(node.clone(), LOOPBACK.parse().unwrap());
    let report = json!({"number": "+1 415 555 0134", "kind": "smishing", "channel": "sms", "brand": "Example Bank"});

    // The same report again within the window: its receipt, nothing signed.
    let first = post(&state, "/api/v1/sightings", Some(WRITE_TOKEN), &report).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = post(&state, "/api/v1/sightings", Some(WRITE_TOKEN), &report).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    let (r1, r2) = (&first.json()["receipts"][0], &again.json()["receipts"][0]);
    assert_eq!((&r1["id"], &r1["seq"]), (&r2["id"], &r2["seq"]));
    assert_eq!(
        (r1["existing"].clone(), r2["existing"].clone()),
        (json!(false), json!(true))
    );
    // Also within one batch, and next to a report that differs (a new one).
    let mut vishing = report.clone();
    vishing["kind"] = json!("vishing");
    let batch = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &json!([report, vishing, vishing]),
    )
    .await;
    assert_eq!(batch.status, StatusCode::CREATED, "{}", batch.text);
    let receipts = batch.json()["receipts"].clone();
    assert_eq!(receipts[0]["seq"], r1["seq"]);
    assert_eq!(receipts[1]["existing"], json!(false));
    assert_eq!(receipts[2]["seq"], receipts[1]["seq"]);
    assert_eq!(batch.json()["existing"], 2);
    assert_eq!(
        records(&node).await,
        1,
        "the vishing report replaced the first"
    );

    // Limits: 3 records an hour, 4 numbers a day. Two numbers more fit...
    let two = json!([{"number": "+1 415 555 0135", "kind": "bec"}, {"number": "+1 415 555 0136", "kind": "bec"}]);
    let fits = post(&state, "/api/v1/sightings", Some(WRITE_TOKEN), &two).await;
    assert_eq!(fits.status, StatusCode::CREATED, "{}", fits.text);
    // ...a fourth number does not this hour (nothing stored, Retry-After to
    // the hour's end)...
    let fourth = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &json!({"number": "+1 415 555 0137", "kind": "bec"}),
    )
    .await;
    assert_eq!(
        fourth.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        fourth.text
    );
    assert_eq!(fourth.error(), "over_origin_limit");
    let retry: u64 = fourth.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 1800, "the rest of the hour");
    // ...but a new report of a known number takes its current report's
    // place, and fits.
    let mut false_positive = report.clone();
    false_positive["verdict"] = json!("false-positive");
    let replacing = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &false_positive,
    )
    .await;
    assert_eq!(replacing.status, StatusCode::CREATED, "{}", replacing.text);
    // A repeat of the current report needs no room: it signs nothing.
    let repeat = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &false_positive,
    )
    .await;
    assert_eq!(repeat.status, StatusCode::OK, "{}", repeat.text);
    assert_eq!(records(&node).await, 3);
    // A batch over a limit by itself never fits: 400, not "retry later".
    let five: Vec<Value> = (0..5)
        .map(|i| json!({"number": format!("+1 415 555 015{i}"), "kind": "bec"}))
        .collect();
    let never = post(
        &state,
        "/api/v1/sightings",
        Some(WRITE_TOKEN),
        &Value::Array(five),
    )
    .await;
    assert_eq!(never.status, StatusCode::BAD_REQUEST, "{}", never.text);
    assert_eq!(never.error(), "batch_over_origin_limit");
    assert!(never.headers.get(header::RETRY_AFTER).is_none());
    // A sighting from two days ago, retried: the same times are the same
    // report, whatever the window.
    let at = now - now % 3600 - 1800 - 2 * 86_400;
    let old =
        json!({"number": "+1 415 555 0140", "kind": "bec", "first_seen": at, "last_seen": at});
    let first = post(&state, "/api/v1/sightings", Some(WRITE_TOKEN), &old).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let retried = post(&state, "/api/v1/sightings", Some(WRITE_TOKEN), &old).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text);
    assert_eq!(
        retried.json()["receipts"][0]["seq"],
        first.json()["receipts"][0]["seq"]
    );
    node.shutdown().await;
    drop(state);
    cluster.shutdown().await;
}

/// The served OpenAPI document against the router itself: every operation
/// it lists is routed (not the API's 404), refuses exactly the callers its
/// security says it refuses, and answers only statuses it documents, with
/// bodies of the documented schema; every error answer carries a documented
/// `ErrorCode`. The routes come from the document, which is generated from
/// the router's own registrations: there is no second list to keep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_what_the_router_does() {
    let options = Options {
        anonymous_read: false,
        ..Options::default()
    };
    let mut cluster = Cluster::build(&[("Bank", 0.8)], &options);
    let node = cluster.start(0).await;
    let state = AppState::new(node.clone(), LOOPBACK.parse().unwrap());
    node.submit(vec![sightline_node::Submission::new(
        "+1 415 555 0134",
        sightline_protocol::Kind::Smishing,
    )])
    .await
    .unwrap();

    let served = get(&state, "/api/v1/openapi.json", None).await;
    assert_eq!(served.status, StatusCode::OK);
    let doc = served.json();
    let schema = Schemas(&doc);
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enumeration")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let tokens = [
        ("read", READ_TOKEN),
        ("submit", SUBMIT_ONLY_TOKEN),
        ("admin", ADMIN_TOKEN),
    ];
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            operations += 1;
            let what = format!("{method} {path}");
            let method: Method = method.to_uppercase().parse().unwrap();
            let uri = format!("/api/v1{}", path.replace("{number}", "%2B14155550134"));
            let documented: Vec<&str> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(String::as_str)
                .collect();
            let scopes: Vec<&str> = op["security"]
                .as_array()
                .expect("every operation states its security")
                .iter()
                .filter_map(|r| r.get("bearer"))
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let body_op = op.get("requestBody").is_some();
            // A malformed body: never stored, never acted on.
            let body = || body_op.then(|| Body::from("{"));
            let check = |reply: &Reply, what: &str| {
                let status = reply.status.as_str().to_owned();
                assert!(
                    documented.contains(&status.as_str()),
                    "{what} answered {status}, which its description lacks ({documented:?}): {}",
                    reply.text
                );
                if !reply.status.is_success() {
                    let code = reply.error();
                    assert!(
                        codes.contains(&code.as_str()),
                        "{what}: undocumented code {code:?}"
                    );
                    assert_ne!(code, "not_found", "{what} is described but not routed");
                    let error = &op["responses"][&status]["content"]["application/json"]["schema"];
                    schema.check(error, &reply.json(), what);
                }
            };

            // Without a token.
            let reply = call(
                &state,
                method.clone(),
                &uri,
                None,
                body(),
                "application/json",
            )
            .await;
            check(&reply, &format!("{what} without a token"));
            if scopes.is_empty() {
                assert!(reply.status.is_success(), "{what}: {}", reply.text);
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{what}: {}",
                    reply.text
                );
            }
            // With each scope's token: refused exactly when it is not listed.
            for (scope, token) in tokens {
                let reply = call(
                    &state,
                    method.clone(),
                    &uri,
                    Some(token),
                    body(),
                    "application/json",
                )
                .await;
                let what = format!("{what} with a {scope} token");
                check(&reply, &what);
                let refused =
                    [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&reply.status);
                assert_eq!(
                    refused,
                    !scopes.is_empty() && !scopes.contains(&scope),
                    "{what}: {} {}",
                    reply.status,
                    reply.text
                );
                if reply.status.is_success() {
                    let content = &op["responses"][reply.status.as_str()]["content"];
                    let declared = content.as_object().expect("content").keys().next().unwrap();
                    let sent = reply.headers[header::CONTENT_TYPE].to_str().unwrap();
                    assert!(
                        sent.starts_with(declared.as_str()),
                        "{what}: sent {sent}, documents {declared}"
                    );
                    if let Some(s) = content
                        .get("application/json")
                        .and_then(|c| c.get("schema"))
                    {
                        schema.check(s, &reply.json(), &what);
                    }
                }
            }
            let token = tokens
                .iter()
                .find(|(scope, _)| scopes.contains(scope))
                .map(|(_, t)| *t);
            if body_op {
                // The body's own refusals, for a caller with the scope.
                let text = call(
                    &state,
                    method.clone(),
                    &uri,
                    token,
                    Some(Body::from("{}")),
                    "text/plain",
                )
                .await;
                assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{what}");
                check(&text, &what);
                let huge = Body::from(vec![b' '; sightline_web::MAX_BODY_BYTES + 1]);
                let big = call(
                    &state,
                    method.clone(),
                    &uri,
                    token,
                    Some(huge),
                    "application/json",
                )
                .await;
                assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{what}");
                check(&big, &what);
                let bad = call(
                    &state,
                    method.clone(),
                    &uri,
                    token,
                    body(),
                    "application/json",
                )
                .await;
                assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{what}");
                check(&bad, &what);
            }
            // The boundary's refusals, on every route.
            let boundary = [
                (
                    header::HOST,
                    "evil.example",
                    StatusCode::MISDIRECTED_REQUEST,
                ),
                (
                    header::ORIGIN,
                    "https://evil.example",
                    StatusCode::FORBIDDEN,
                ),
            ];
            for (name, value, expected) in boundary {
                let mut request = Request::builder()
                    .method(method.clone())
                    .uri(&uri)
                    .header(header::HOST, "127.0.0.1:7300");
                request
                    .headers_mut()
                    .unwrap()
                    .insert(name, value.parse().unwrap());
                let reply = send(&state, request.body(Body::empty()).unwrap()).await;
                assert_eq!(reply.status, expected, "{what} with {value}");
                check(&reply, &what);
            }
            let in_url = call(
                &state,
                method.clone(),
                &format!("{uri}?token=x"),
                None,
                None,
                "",
            )
            .await;
            assert_eq!(in_url.status, StatusCode::BAD_REQUEST, "{what}");
            assert_eq!(in_url.error(), "token_in_url", "{what}");
            check(&in_url, &what);
        }
    }
    assert!(operations >= 9, "{operations} operations");
    // What the document does not list, the API does not serve.
    let unknown = get(&state, "/api/v1/lookups", Some(READ_TOKEN)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error(), "not_found");
    drop(state);
    cluster.shutdown().await;
}

/// Checks JSON answers against the document's schemas: references,
/// `allOf`/`oneOf`, types, required properties, enumerations and items.
/// Enough of JSON Schema for the shapes utoipa writes.
struct Schemas<'d>(&'d Value);

impl Schemas<'_> {
    fn check(&self, schema: &Value, value: &Value, what: &str) {
        assert!(
            self.matches(schema, value),
            "{what}: {value} does not match {schema}"
        );
    }

    fn matches(&self, schema: &Value, value: &Value) -> bool {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/components/schemas/");
            return self.matches(&self.0["components"]["schemas"][name], value);
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            if !all.iter().all(|s| self.matches(s, value)) {
                return false;
            }
        }
        if let Some(any) = schema
            .get("oneOf")
            .or(schema.get("anyOf"))
            .and_then(Value::as_array)
        {
            if !any.iter().any(|s| self.matches(s, value)) {
                return false;
            }
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
            if !choices.contains(value) {
                return false;
            }
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| Self::is(t, value)) {
            return false;
        }
        if let Value::Object(map) = value {
            let required = schema.get("required").and_then(Value::as_array);
            if required
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|k| !map.contains_key(k))
            {
                return false;
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    if props.get(k).is_some_and(|s| !self.matches(s, v)) {
                        return false;
                    }
                }
            }
        }
        if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
            if item.is_object() && !items.iter().all(|v| self.matches(item, v)) {
                return false;
            }
        }
        true
    }

    fn is(t: &str, value: &Value) -> bool {
        match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        }
    }
}
