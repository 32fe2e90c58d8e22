//! Campaigns end to end: record version 2's link tokens travel between
//! real nodes, and a node that reported nothing shows the operation.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use sightline_node::{NodeHandle, Submission, SubmitError};
use sightline_protocol::Kind;
use sightline_tests::{eventually, Cluster, Options, READ_TOKEN, WRITE_TOKEN};
use sightline_web::AppState;

use super::api::{call, LOOPBACK};
use super::WAIT;

const LURE: &str = "Royal Parcel: your parcel 7731 is held for a fee of 1.99 GBP. Pay at https://parcel-fee.example.com/p/7731 within 24 hours or it is returned.";
/// The same script with another reference, fee, link and deadline.
const LURE_AGAIN: &str = "Royal Parcel: your parcel 9120 is held for a fee of 2.49 GBP. Pay at http://pay-now.example.org/q within 48 hours or it is returned.";

fn item(number: &str, brand: &str) -> Submission {
    let mut s = Submission::new(number, Kind::Smishing);
    s.brand = Some(brand.to_owned());
    s
}

async fn held(node: &NodeHandle, number: &str) -> bool {
    node.lookup(number, None)
        .await
        .is_ok_and(|l| !l.score.reports.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_orgs_link_one_operation_and_a_fourth_node_shows_all_of_it() {
    let mut cluster = Cluster::build(
        &[
            ("Bank", 0.9),
            ("Carrier", 0.8),
            ("CERT", 0.7),
            ("Telco", 0.8),
        ],
        &Options {
            record_version: 2,
            sync_interval: Duration::from_secs(1),
            ..Options::default()
        },
    );
    // The fourth node joins after the reports were made: it gets them, and
    // their links, by catch-up rather than gossip.
    let bank = cluster.start(0).await;
    let carrier = cluster.start(1).await;
    let cert = cluster.start(2).await;
    // Three organizations, three numbers, each tied in by one shared link:
    // the bank's and the carrier's by the link's domain, the bank's and the
    // CERT's by the lure's script.
    let mut first = item("+1 212 555 0143", "Royal Parcel");
    first.urls = vec!["https://parcel-fee.example.com/p/7731".into()];
    first.message = Some(LURE.into());
    bank.submit(vec![first, item("+1 312 555 0110", "Other")])
        .await
        .unwrap();
    let mut second = item("+44 7911 123456", "Royal Parcel");
    second.urls = vec!["http://www.parcel-fee.example.com/track".into()];
    carrier.submit(vec![second]).await.unwrap();
    let mut third = item("+1 646 555 0199", "Royal Parcel");
    third.message = Some(LURE_AGAIN.into());
    third.sender = Some("72723".into());
    cert.submit(vec![third]).await.unwrap();
    let telco = cluster.start(3).await;

    let numbers = ["+1 212 555 0143", "+44 7911 123456", "+1 646 555 0199"];
    eventually(
        "the fourth node holds every report",
        WAIT,
        &telco,
        || async {
            for n in numbers.iter().chain(&["+1 312 555 0110"]) {
                if !held(&telco, n).await {
                    return false;
                }
            }
            true
        },
    )
    .await;

    let mut ids = Vec::new();
    for (number, links) in numbers.iter().zip([
        &["url_domain", "script"][..],
        &["url_domain"][..],
        &["script"][..],
    ]) {
        let l = telco.lookup(number, None).await.unwrap();
        let c = l
            .campaign
            .unwrap_or_else(|| panic!("{number} has no campaign"));
        assert_eq!((c.numbers, c.blocks), (3, 3), "{c:?}");
        assert_eq!(
            c.orgs.iter().map(String::as_str).collect::<Vec<_>>(),
            ["Bank", "CERT", "Carrier"]
        );
        assert_eq!(c.brands.iter().collect::<Vec<_>>(), ["Royal Parcel"]);
        assert_eq!(c.links, links, "{number}");
        assert!(c.complete);
        assert_eq!(c.state, sightline_node::campaign::State::Rising);
        assert!(l.neighbours.is_none());
        ids.push(c.id);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // A bulk lookup explores the campaign once for all three: the same
    // answers, each number with its own ties.
    let bulk = telco
        .lookup_many(
            numbers.iter().map(|n| (*n).to_owned()).collect(),
            None,
            sightline_node::node::letters(false),
        )
        .await;
    let ties: Vec<(String, Vec<String>)> = bulk
        .into_iter()
        .map(|l| {
            let c = l.unwrap().campaign.expect("in the campaign");
            (c.id, c.links)
        })
        .collect();
    assert_eq!(
        ties,
        [
            (
                ids[0].clone(),
                vec!["url_domain".to_owned(), "script".to_owned()]
            ),
            (ids[0].clone(), vec!["url_domain".to_owned()]),
            (ids[0].clone(), vec!["script".to_owned()]),
        ]
    );
    // The unrelated number is in no campaign; an unreported neighbour of
    // the first number is warned about.
    let other = telco.lookup("+1 312 555 0110", None).await.unwrap();
    assert!(other.campaign.is_none());
    let next_door = telco.lookup("+1 212 555 0150", None).await.unwrap();
    let n = next_door.neighbours.expect("neighbours of an active block");
    assert_eq!((n.block, n.block1000), (1, 1), "{n:?}");
    assert!(next_door.campaign.is_none());

    // The campaign's page, through the API: three reports, as hashes to
    // the telco (it submitted none); the bank names its own number.
    let state = AppState::new(telco.clone(), LOOPBACK.parse().unwrap());
    let uri = format!("/api/v1/campaigns/{}", ids[0]);
    let page = call(&state, Method::GET, &uri, Some(READ_TOKEN), None, "").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.json();
    let reports = body["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 3);
    assert!(reports.iter().all(|r| r["number"].is_null()));
    let unknown = call(
        &state,
        Method::GET,
        &format!("/api/v1/campaigns/t01{}", "00".repeat(32)),
        Some(READ_TOKEN),
        None,
        "",
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.error()),
        (StatusCode::NOT_FOUND, "unknown_campaign".into())
    );
    // The list of campaigns: this one, rising; none dormant.
    let list = telco.campaigns(None, 10).await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0].id.as_str(), list[0].numbers), (ids[0].as_str(), 3));
    let rising = call(
        &state,
        Method::GET,
        "/api/v1/campaigns?state=rising",
        Some(READ_TOKEN),
        None,
        "",
    )
    .await;
    assert_eq!(rising.status, StatusCode::OK);
    assert_eq!(rising.json()["campaigns"][0]["id"], ids[0].as_str());
    let dormant = call(
        &state,
        Method::GET,
        "/api/v1/campaigns?state=dormant",
        Some(READ_TOKEN),
        None,
        "",
    )
    .await;
    assert_eq!(
        dormant.json()["campaigns"].as_array().map(Vec::len),
        Some(0)
    );
    let own = bank.campaign(&ids[0]).await.unwrap().unwrap();
    let named: Vec<_> = own
        .reports
        .iter()
        .filter_map(|r| r.number.clone())
        .collect();
    assert_eq!(named, ["+12125550143"]);
    // The telco looked each number up: it can name them all (in memory).
    let asked = telco.campaign(&ids[0]).await.unwrap().unwrap();
    let mut named: Vec<_> = asked
        .reports
        .iter()
        .filter_map(|r| r.number.clone())
        .collect();
    named.sort();
    assert_eq!(named, ["+12125550143", "+16465550199", "+447911123456"]);

    // The carrier withdraws: its number leaves the campaign everywhere.
    carrier.withdraw("+44 7911 123456", None).await.unwrap();
    eventually(
        "the withdrawal reaches the fourth node",
        WAIT,
        &telco,
        || async {
            telco
                .lookup("+1 212 555 0143", None)
                .await
                .is_ok_and(|l| l.campaign.is_some_and(|c| c.numbers == 2))
        },
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_on_record_version_1_refuses_links_rather_than_drop_them() {
    let mut cluster = Cluster::new(&[("Bank", 0.9)]);
    let bank = cluster.start(0).await;
    let mut linked = item("+1 212 555 0143", "Royal Parcel");
    linked.campaign = Some("parcel fee wave".into());
    let Err(SubmitError::Invalid(items)) = bank.submit(vec![linked]).await else {
        panic!("a link was accepted on a version-1 network");
    };
    assert_eq!(items[0].code, "links_need_record_version_2");
    // Without links the same item is signed as version 1.
    bank.submit(vec![item("+1 212 555 0143", "Royal Parcel")])
        .await
        .unwrap();
    cluster.shutdown().await;
}

/// One organization's node on a manual clock set to now.
async fn bank_at_now() -> (
    Cluster,
    NodeHandle,
    std::sync::Arc<sightline_node::ManualClock>,
    u64,
) {
    let cluster = Cluster::build(&[("Bank", 0.9)], &Options::default());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let clock = std::sync::Arc::new(sightline_node::ManualClock::new(now));
    let node = sightline_node::start(cluster.config(0), clock.clone())
        .await
        .unwrap();
    (cluster, node, clock, now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_reporting_keeps_the_clock_and_vishing_outlives_smishing() {
    let (mut cluster, node, clock, now) = bank_at_now().await;
    let mut smishing = item("+1 212 555 0143", "Royal Parcel");
    smishing.confidence = 100;
    let mut vishing = Submission::new("+1 212 555 0144", Kind::Vishing);
    vishing.confidence = 100;
    node.submit(vec![smishing.clone(), vishing]).await.unwrap();
    // 14 days on (the default half-life of smishing, under vishing's 30),
    // the bank sees the smishing number again and re-reports it.
    clock.advance(14 * 86_400);
    smishing.brand = Some("Royal Parcel Ltd".into());
    node.submit(vec![smishing]).await.unwrap();
    let again = node.lookup("+1 212 555 0143", None).await.unwrap();
    assert_eq!(
        again.score.reports[0].first_seen, now,
        "first sighting kept"
    );
    assert!(
        (again.score.score - 0.5).abs() < 0.01,
        "its clock ran on: {}",
        again.score.score
    );
    let vishing = node.lookup("+1 212 555 0144", None).await.unwrap();
    assert!(
        (vishing.score.score - 0.5_f64.powf(14.0 / 30.0)).abs() < 0.01,
        "vishing decays slower: {}",
        vishing.score.score
    );
    node.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_number_is_shown_as_spoofed_until_its_operator_withdraws() {
    let mut cluster = Cluster::build(
        &[("Bank", 0.9), ("Carrier", 0.8)],
        &Options {
            record_version: 2,
            ..Options::default()
        },
    );
    cluster.start_all().await;
    cluster.wait_connected().await;
    let (bank, carrier) = (cluster.node(0).clone(), cluster.node(1).clone());
    let fraud_line = "+1 212 555 0100";
    let mut protect = Submission::protect(fraud_line, sightline_protocol::Role::InboundOnly);
    protect.brand = Some("Example Bank".into());
    bank.submit(vec![protect]).await.unwrap();
    // Scammers spoof the bank's fraud line; the carrier's customers report it.
    let mut spoofed = item(fraud_line, "Example Bank");
    spoofed.kind = Kind::Vishing;
    carrier.submit(vec![spoofed]).await.unwrap();
    eventually("both reports at the carrier", WAIT, &carrier, || async {
        carrier
            .lookup(fraud_line, None)
            .await
            .is_ok_and(|l| l.score.reports.len() == 2)
    })
    .await;
    let l = carrier.lookup(fraud_line, None).await.unwrap();
    assert_eq!(l.score.protected_by.len(), 1, "{:?}", l.score);
    assert_eq!(l.score.protected_by[0].org, "Bank");
    assert_eq!(
        l.score.protected_by[0].role,
        sightline_protocol::Role::InboundOnly
    );
    // The attestation adds nothing to the score: the carrier's report alone.
    assert_eq!(l.score.orgs, 1);
    assert!(l.score.kinds.iter().all(|k| *k == Kind::Vishing));
    // Through the API: the same, under `protected_by`.
    let state = AppState::new(carrier.clone(), LOOPBACK.parse().unwrap());
    let answer = call(
        &state,
        Method::GET,
        "/api/v1/lookup/%2B12125550100",
        Some(READ_TOKEN),
        None,
        "",
    )
    .await;
    assert_eq!(answer.json()["protected_by"][0]["role"], "inbound-only");
    // The bank withdraws the attestation: the number is reported, unprotected.
    bank.withdraw(fraud_line, None).await.unwrap();
    eventually("the withdrawal at the carrier", WAIT, &carrier, || async {
        carrier
            .lookup(fraud_line, None)
            .await
            .is_ok_and(|l| l.score.protected_by.is_empty())
    })
    .await;
    cluster.shutdown().await;
}

/// `application/x-www-form-urlencoded`, every byte but letters and digits
/// percent-encoded.
fn form(pairs: &[(&str, &str)]) -> axum::body::Body {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    axum::body::Body::from(body.join("&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_message_is_reported_from_the_web_page_as_one_campaign() {
    let mut cluster = Cluster::build(
        &[("Bank", 0.9)],
        &Options {
            record_version: 2,
            ..Options::default()
        },
    );
    let bank = cluster.start(0).await;
    let state = AppState::new(bank.clone(), LOOPBACK.parse().unwrap());
    let message = "From: Parcel Express <noreply@parcel-express.example.com>\n\nYour parcel is held. Pay the fee at https://parcel-fee.example.com/p or call +1 212 555 0143 or +1 646 555 0199.";
    let urlencoded = "application/x-www-form-urlencoded";
    let check = |token: &'static str| {
        let state = state.clone();
        async move {
            call(
                &state,
                Method::POST,
                "/message",
                Some(token),
                Some(form(&[("message", message), ("region", "")])),
                urlencoded,
            )
            .await
        }
    };
    // An analyst's read-only token checks the message; no offer to report.
    let read = check(READ_TOKEN).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(!read.text.contains("report-offer"));
    // The automation token may submit: the page offers both numbers, the
    // link and the sender.
    let page = check(WRITE_TOKEN).await;
    let html = &page.text;
    assert!(html.contains("id=\"report-offer\""), "{html}");
    assert!(html.contains("+12125550143, +16465550199"), "{html}");
    assert!(
        html.contains("noreply@parcel-express.example.com"),
        "{html}"
    );
    let fields = [
        ("numbers", "+12125550143\n+16465550199"),
        ("urls", "https://parcel-fee.example.com/p"),
        ("region", ""),
        ("message", message),
        ("kind", "smishing"),
        ("channel", "sms"),
        ("brand", "Parcel Express"),
        ("sender", "noreply@parcel-express.example.com"),
        ("campaign", ""),
    ];
    let refused = call(
        &state,
        Method::POST,
        "/report",
        Some(READ_TOKEN),
        Some(form(&fields)),
        urlencoded,
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let done = call(
        &state,
        Method::POST,
        "/report",
        Some(WRITE_TOKEN),
        Some(form(&fields)),
        urlencoded,
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("id=\"reported\""));
    let l = bank.lookup("+1 212 555 0143", None).await.unwrap();
    let c = l.campaign.expect("the two numbers are one campaign");
    assert_eq!(c.numbers, 2);
    assert_eq!(c.links, ["url_domain", "sender", "script"]);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_feed_gives_a_snapshot_then_changes_then_a_new_snapshot_each_day() {
    let (mut cluster, node, clock, _) = bank_at_now().await;
    let state = AppState::new(node.clone(), LOOPBACK.parse().unwrap());
    let high = |n: &str| {
        let mut s = Submission::new(n, Kind::Smishing);
        s.confidence = 95;
        s
    };
    let mut weak = Submission::new("+1 212 555 0103", Kind::Smishing);
    weak.confidence = 20;
    node.submit(vec![high("+1 212 555 0101"), high("+1 212 555 0102"), weak])
        .await
        .unwrap();
    let get = |uri: String| {
        let state = state.clone();
        async move { call(&state, Method::GET, &uri, Some(READ_TOKEN), None, "").await }
    };

    // A snapshot in pages of one number (three numbers are stored, two
    // are high): every page but the last says more.
    let mut listed = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let since = cursor
            .as_ref()
            .map(|c| format!("&since={c}"))
            .unwrap_or_default();
        let reply = get(format!("/api/v1/feed?min_band=high&limit=1{since}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let page = reply.json();
        assert_eq!(page["full"], true);
        assert_eq!(page["reset"], pages == 0);
        for e in page["entries"].as_array().unwrap() {
            assert_eq!(e["band"], "high");
            listed.insert(e["number_hash"].as_str().unwrap().to_owned());
        }
        cursor = Some(page["cursor"].as_str().unwrap().to_owned());
        pages += 1;
        if page["more"] == false {
            break;
        }
    }
    assert_eq!((listed.len(), pages), (2, 3));
    let cursor = cursor.unwrap();
    // Nothing new: 304. A cursor of another band, or none of this node's: 400.
    let reply = get(format!("/api/v1/feed?min_band=high&since={cursor}")).await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    let reply = get(format!("/api/v1/feed?min_band=medium&since={cursor}")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let reply = get("/api/v1/feed?since=v1.high.x".to_owned()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // A withdrawal and a new report: the changes, each with its standing.
    node.withdraw("+1 212 555 0101", None).await.unwrap();
    node.submit(vec![high("+1 212 555 0104")]).await.unwrap();
    let reply = get(format!("/api/v1/feed?min_band=high&since={cursor}")).await;
    let page = reply.json();
    assert_eq!(
        (page["full"].clone(), page["reset"].clone()),
        (false.into(), false.into())
    );
    let standing: Vec<(String, bool)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["band"].as_str().unwrap().to_owned(),
                e["listed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        standing,
        [("none".to_owned(), false), ("high".to_owned(), true)]
    );
    let cursor = page["cursor"].as_str().unwrap().to_owned();

    // A SOAR tool's event stream: a number reaching the band is announced
    // once, and again as unlisted when it leaves.
    let request = axum::http::Request::builder()
        .uri("/api/v1/feed/events?min_band=high")
        .header(axum::http::header::HOST, "127.0.0.1:7300")
        .header(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {READ_TOKEN}"),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(sightline_web::router(state.clone()), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut events = String::new();
    let mut read_until = async |what: &str, events: &mut String| {
        while !events.contains(what) {
            let frame = tokio::time::timeout(WAIT, http_body_util::BodyExt::frame(&mut body))
                .await
                .expect("an event in time")
                .expect("the stream goes on")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                events.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    node.submit(vec![high("+1 212 555 0105")]).await.unwrap();
    read_until("event: listed", &mut events).await;
    assert_eq!(events.matches("event: listed").count(), 1, "{events}");
    assert!(events.contains("\"band\":\"high\""), "{events}");
    node.withdraw("+1 212 555 0105", None).await.unwrap();
    read_until("event: unlisted", &mut events).await;
    let cursor = {
        // The withdrawal is a change for the pull reader too.
        let reply = get(format!("/api/v1/feed?min_band=high&since={cursor}")).await;
        reply.json()["cursor"].as_str().unwrap().to_owned()
    };

    // A day on, scores have fallen without any new report: the reader gets
    // a new snapshot, which replaces what it holds.
    clock.advance(sightline_node::node::feed::FULL_REFRESH_SECS);
    let reply = get(format!("/api/v1/feed?min_band=high&since={cursor}")).await;
    let page = reply.json();
    assert_eq!(
        (page["full"].clone(), page["reset"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    // Two months on they have decayed below high: an event stream's
    // hourly look at what it announced finds them unlisted.
    let held: Vec<sightline_node::node::feed::FeedEntry> =
        serde_json::from_value(page["entries"].clone()).unwrap();
    clock.advance(60 * 86_400);
    let again = node
        .feed_again(held, sightline_node::Band::High)
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
    assert!(again
        .iter()
        .all(|e| !e.listed && e.band < sightline_node::Band::High));
    node.shutdown().await;
    cluster.shutdown().await;
}
