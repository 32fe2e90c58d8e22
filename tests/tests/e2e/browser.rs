//! The web UI in a real browser: Debian's Chromium, driven headless by
//! playwright-core (tests/browser/lookup.mjs), signing in as an analyst
//! would. Plain `cargo test` lists it as ignored (it needs Chromium and
//! npm); `scripts/test.sh` installs both and runs it, and there a missing
//! Chromium is a failure, not a skip.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use sightline_node::Submission;
use sightline_protocol::{Channel, Kind};
use sightline_tests::{eventually, Cluster, Options, READ_TOKEN};

use super::WAIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test, needs Chromium and playwright-core (npm); bash scripts/test.sh runs it (or: cargo test -- --include-ignored)"]
async fn an_analyst_signs_in_and_looks_up_with_nothing_secret_in_any_url() {
    let browser_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: run scripts/test.sh, which installs Debian's chromium"
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core missing: run scripts/test.sh (npm ci in tests/browser)"
    );

    // The product's defaults: no token-less reads.
    let options = Options {
        anonymous_read: false,
        record_version: 2,
        ..Options::default()
    };
    let mut cluster = Cluster::build(&[("Bank", 0.8), ("Carrier", 0.7), ("Cert", 0.9)], &options);
    cluster.start_all().await;
    cluster.wait_connected().await;
    for (i, brand) in [(0, "Example Bank"), (1, "Parcel Express")] {
        let mut s = Submission::new("+1 415 555 0101", Kind::Smishing);
        s.channel = Channel::Sms;
        s.brand = Some(brand.into());
        s.confidence = 95;
        s.urls = vec![format!("https://card-unlock.example.com/{i}")];
        cluster.node(i).submit(vec![s]).await.unwrap();
    }
    // Another number of the same operation (the same link's domain).
    let mut other = Submission::new("+1 646 555 0111", Kind::Smishing);
    other.urls = vec!["http://www.card-unlock.example.com/pay".into()];
    cluster.node(1).submit(vec![other]).await.unwrap();
    let cert = cluster.node(2).clone();
    eventually("the reports at the cert", WAIT, &cert, || async {
        cert.lookup("+1 415 555 0101", None)
            .await
            .is_ok_and(|l| l.score.orgs == 2 && l.campaign.is_some_and(|c| c.numbers == 2))
    })
    .await;
    let web = sightline_tests::Web::start(&cert).await;
    let addr = web.addr;

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("lookup-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let url = format!("http://{addr}/");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(&browser_dir)
            .env("CHROMIUM", &chromium)
            .env("SIGHTLINE_TOKEN", READ_TOKEN)
            .args(["lookup.mjs", &url, "+1 (415) 555-0101"])
            .arg(&screenshot)
            .args([
                "Example Bank: your card is locked. Call +1 415-555-0101 now, or text 415 555 0177. Ref 88213.",
                "US",
            ])
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["band"], "high", "{result}");
    assert_eq!(result["label"], "HIGH");
    assert_eq!(result["signInShown"], true, "{result}");
    // Nothing secret in any URL the browser asked for: no token, no number
    // (in any of the forms it was typed or normalized to), no query at all.
    let urls: Vec<&str> = result["urls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        urls.len() >= 4,
        "sign-in, redirect, lookup, stylesheet: {urls:?}"
    );
    for url in &urls {
        for secret in [READ_TOKEN, "4155550101", "555-0101", "token=", "number="] {
            assert!(!url.contains(secret), "{secret} in {url}");
        }
    }
    // The page runs under its Content-Security-Policy without a violation
    // (401 for the sign-in page itself is expected console noise).
    for error in result["consoleErrors"].as_array().unwrap() {
        let text = error.as_str().unwrap_or_default();
        assert!(
            !text.contains("Content Security Policy") && !text.contains("Refused"),
            "{text}"
        );
    }
    let cookies = result["cookies"].as_array().unwrap();
    assert_eq!(cookies.len(), 1, "{result}");
    assert_eq!(cookies[0]["httpOnly"], true);
    assert_eq!(cookies[0]["sameSite"], "Strict");
    assert_eq!(result["afterSignOut"], 401, "signed out: {result}");
    let reporters: Vec<&str> = result["reporters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        reporters.contains(&"Bank") && reporters.contains(&"Carrier"),
        "{reporters:?}"
    );
    assert_eq!(result["explained"], true, "{result}");
    // The lookup downloaded as a STIX bundle: the number, its indicator
    // (posted, never in a URL: checked above).
    let exported = &result["exported"];
    assert_eq!(exported["file"], "sightline.stix.json", "{result}");
    assert_eq!(exported["type"], "bundle");
    assert_eq!(exported["numbers"], serde_json::json!(["+14155550101"]));
    assert_eq!(exported["indicators"], 1, "{result}");
    // The pasted message: both numbers found (one national, read with the
    // region), the reported one high, its unreported neighbour flagged as
    // sitting in an active block; the reference number is not a phone number.
    let message = &result["message"];
    assert_eq!(
        message["numbers"],
        serde_json::json!(["+14155550101", "+14155550177"]),
        "{result}"
    );
    assert_eq!(
        message["bands"],
        serde_json::json!(["high", "none"]),
        "{result}"
    );
    assert_eq!(message["activeBlock"], 1, "{result}");
    assert!(
        message["url"].as_str().unwrap().ends_with("/message"),
        "{result}"
    );
    // Peers: this node's trust in each organization, and nothing wider
    // than a 1280-pixel window.
    assert_eq!(result["peers"]["overflow"], 0, "{result}");
    assert_eq!(
        result["peers"]["trust"],
        serde_json::json!(["0.80", "0.70"]),
        "{result}"
    );
    // From the lookup to its campaign: both numbers, each tied in by the
    // link's domain, three reports, and nothing wider than the window.
    let campaign = &result["campaign"];
    assert_eq!(campaign["numbers"], "2", "{result}");
    assert_eq!(campaign["state"], "rising", "{result}");
    let page = &campaign["page"];
    assert!(
        page["url"].as_str().unwrap().contains("/campaigns/t00"),
        "{result}"
    );
    assert_eq!(page["heading"], "Campaign");
    assert_eq!(page["numbers"], "2");
    assert_eq!(
        (page["linked"].as_u64(), page["reports"].as_u64()),
        (Some(2), Some(3)),
        "{result}"
    );
    assert_eq!(page["overflow"], 0, "{result}");
    // The campaign downloaded as a MISP event: tagged with its id, its
    // numbers as objects (the analyst's read-only token names none: the
    // hashes stay home, the event says how many).
    let misp = &campaign["misp"];
    assert_eq!(misp["file"], "sightline.misp.json", "{result}");
    assert_eq!(misp["objects"], 0, "{result}");
    assert!(
        misp["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("sightline:campaign=\"t00")),
        "{result}"
    );
    // The list of campaigns, from the navigation: this one.
    let list = &result["campaigns"];
    assert_eq!(list["rows"], 1, "{result}");
    assert_eq!(list["states"], serde_json::json!(["rising"]), "{result}");
    assert_eq!(list["overflow"], 0, "{result}");
    let png = std::fs::read(artifacts.join("lookup-page.png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot saved"
    );

    web.stop().await;
    cluster.shutdown().await;
}
