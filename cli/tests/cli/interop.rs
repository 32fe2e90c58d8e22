//! Exports read by the tools analysts use, and MISP read in: STIX 2.1
//! bundles checked by the OASIS validator and parsed by the `stix2`
//! library, MISP events loaded by `PyMISP` and imported back, and a MISP feed
//! `PyMISP` wrote imported with its times and kinds. Three `sightline run`
//! processes share the reports over loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_tests::{Cluster, Options, READ_TOKEN, WRITE_TOKEN};

use super::{code, node_with_web_port, sightline, stderr, stdout, RunningNode};

/// The tools venv scripts/test.sh installs (stix2-validator, stix2,
/// `PyMISP`).
fn python(args: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("target/tools-venv/bin/python");
    let script = root.join("cli/tests/interop/check.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} not runnable ({e}): scripts/test.sh installs it",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "check.py {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("check.py prints JSON")
}

fn run(args: &[&str]) -> String {
    let out = sightline(args);
    assert_eq!(code(&out), 0, "{args:?}: {}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

fn lookup(config: &str, number: &str) -> Value {
    let text = run(&["lookup", number, "--json", "--config", config]);
    serde_json::from_str::<Value>(&text).expect("lookup JSON")[0].clone()
}

/// Waits until `config`'s node answers `number` as `done` says.
fn wait(config: &str, number: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = lookup(config, number);
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{number}: never {what}: {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn orgs(answer: &Value) -> Vec<String> {
    let mut orgs: Vec<String> = answer["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["org"].as_str().unwrap_or_default().to_owned())
        .collect();
    orgs.sort();
    orgs
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[test]
#[ignore = "system test, needs stix2-validator, stix2 and pymisp (Python); bash scripts/test.sh installs them (or: cargo test -- --include-ignored)"]
fn exports_pass_the_oasis_validator_and_pymisp_and_misp_feeds_import() {
    let cluster = Cluster::build(
        &[("Bank", 0.9), ("Carrier", 0.8), ("CERT", 0.7)],
        &Options {
            record_version: 2,
            sync_interval: Duration::from_secs(1),
            ..Options::default()
        },
    );
    let configs: Vec<PathBuf> = (0..3).map(|i| node_with_web_port(&cluster, i)).collect();
    let nodes: Vec<RunningNode> = configs.iter().map(|c| RunningNode::start(c)).collect();
    let [bank, carrier, cert] = [0, 1, 2].map(|i| configs[i].to_str().unwrap().to_owned());
    let dir = tempfile::tempdir().unwrap();

    // Two organizations report a toll-scam wave; the bank's two numbers
    // share the lure's domain (one campaign); the carrier reports a third
    // number weakly, calls a fourth a false positive, and operates a fifth
    // that the bank got a spoofed call from.
    let (n1, n2, n3, n4, own) = (
        "+14155550141",
        "+14155550142",
        "+14155550143",
        "+14155550144",
        "+18005550123",
    );
    for (config, number, args) in [
        (
            &bank,
            n1,
            &[
                "--kind",
                "smishing",
                "--confidence",
                "90",
                "--brand",
                "Toll Road",
                "--url",
                "https://pay-toll.example.com/a",
            ][..],
        ),
        (
            &bank,
            n2,
            &[
                "--kind",
                "smishing",
                "--confidence",
                "90",
                "--url",
                "https://www.pay-toll.example.com/b",
            ][..],
        ),
        (&bank, n4, &["--kind", "vishing", "--confidence", "90"][..]),
        (&bank, own, &["--kind", "vishing", "--confidence", "90"][..]),
        (
            &carrier,
            n1,
            &["--kind", "smishing", "--confidence", "80"][..],
        ),
        (
            &carrier,
            n3,
            &["--kind", "smishing", "--confidence", "20"][..],
        ),
        (
            &carrier,
            n4,
            &[
                "--kind",
                "vishing",
                "--verdict",
                "false-positive",
                "--confidence",
                "90",
            ][..],
        ),
    ] {
        let mut all = vec!["submit", number];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", config]);
        run(&all);
    }
    run(&[
        "protect",
        own,
        "--role",
        "inbound-only",
        "--config",
        &carrier,
    ]);
    let first = wait(&bank, n1, "reported by both", |a| {
        orgs(a) == ["Bank", "Carrier"]
    });
    let campaign = first["campaign"]["id"]
        .as_str()
        .expect("n1 is in a campaign")
        .to_owned();
    wait(&bank, n3, "reported", |a| orgs(a) == ["Carrier"]);
    wait(&bank, n4, "disputed", |a| orgs(a) == ["Bank", "Carrier"]);
    wait(&bank, own, "protected", |a| {
        a["protected_by"][0]["org"] == "Carrier"
    });

    // STIX: the numbers asked for, the protected one left out.
    let stix = path(dir.path(), "numbers.stix.json");
    let out = sightline(&[
        "export",
        "stix",
        n1,
        n3,
        n4,
        own,
        "--config",
        &bank,
        "--out",
        stix.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("left out {own}")),
        "{}",
        stderr(&out)
    );
    let summary = python(&["stix", stix.to_str().unwrap()]);
    assert_eq!(
        summary["organizations"],
        serde_json::json!(["Bank", "Carrier"])
    );
    assert_eq!(summary["numbers"], serde_json::json!([n1, n3, n4]));
    // n1 is high: an indicator, sighted by both organizations with their
    // counts and confidences; n3 (one weak report) and n4 (the carrier's
    // false positive holds it below medium) are observed, not indicated;
    // that false positive is an opinion.
    assert!(summary["indicators"]
        .as_array()
        .unwrap()
        .contains(&Value::from(format!("[phone-number:value = '{n1}']"))));
    assert!(!summary["indicators"]
        .as_array()
        .unwrap()
        .contains(&Value::from(format!("[phone-number:value = '{n3}']"))));
    let mut sighted: Vec<(String, u64)> = summary["sightings"][n1]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["org"].as_str().unwrap().to_owned(),
                s["confidence"].as_u64().unwrap(),
            )
        })
        .collect();
    sighted.sort();
    assert_eq!(
        sighted,
        [("Bank".to_owned(), 90), ("Carrier".to_owned(), 80)]
    );
    assert_eq!(summary["types"]["observed-data"], 2, "{summary}");
    assert_eq!(summary["types"]["opinion"], 1, "{summary}");
    // The false positive also revokes whatever an earlier export said in
    // the carrier's name about n4.
    assert_eq!(
        summary["revoked"],
        serde_json::json!({"observed-data": 1, "sighting": 1})
    );
    assert_eq!(summary["campaigns"], serde_json::json!([campaign]));
    assert_eq!(summary["markings"], serde_json::json!(["TLP:AMBER"]));
    assert_eq!(summary["marked"], true);
    let note = summary["note"][0].as_str().unwrap();
    assert!(
        note.contains("keyed hash") && note.contains("1 number(s) were left out"),
        "{note}"
    );

    // The campaign (the shared domain, and the run of reports in the
    // 415-555-01xx block): with the bank's submit token the numbers it can
    // name are in it, its own (n2 was never looked up) and those it was
    // asked about; a read-only token gets the campaign and a count.
    let by_campaign = path(dir.path(), "campaign.stix.json");
    run(&[
        "export",
        "stix",
        "--campaign",
        &campaign,
        "--config",
        &bank,
        "--out",
        by_campaign.to_str().unwrap(),
    ]);
    let summary = python(&["stix", by_campaign.to_str().unwrap()]);
    assert_eq!(summary["numbers"], serde_json::json!([n1, n2, n3, n4]));
    assert_eq!(summary["campaigns"], serde_json::json!([campaign]));
    let api = format!(
        "http://{}",
        std::fs::read_to_string(&configs[0])
            .unwrap()
            .lines()
            .find(|l| l.starts_with("web_bind"))
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
    );
    let hashed = path(dir.path(), "hashed.stix.json");
    run(&[
        "export",
        "stix",
        "--campaign",
        &campaign,
        "--api",
        &api,
        "--token",
        READ_TOKEN,
        "--out",
        hashed.to_str().unwrap(),
    ]);
    let summary = python(&["stix", hashed.to_str().unwrap()]);
    assert_eq!(summary["numbers"], serde_json::json!([]));
    let note = summary["note"][0].as_str().unwrap();
    assert!(
        note.contains("4 number(s) of the campaign(s) here are known to it only that way"),
        "{note}"
    );
    // TAXII 2.1, read with the OASIS client: the bank's own reports (the
    // protected number left out), paged; polling after the last date added
    // finds nothing new; the campaigns; a read-only token may not read the
    // raw numbers.
    // The bank withdraws n4 first: its collection then revokes what it
    // said of n4.
    run(&["withdraw", n4, "--config", &bank]);
    let taxii = python(&["taxii", &api, WRITE_TOKEN, READ_TOKEN]);
    assert_eq!(
        taxii["versions"],
        serde_json::json!(["application/taxii+json;version=2.1"])
    );
    assert_eq!(taxii["own_numbers"], serde_json::json!([n1, n2, n4]));
    assert!(taxii["pages"].as_u64().unwrap() > 1, "{taxii}");
    assert_eq!(
        taxii["one_by_one"],
        serde_json::json!([n1, n2, n4]),
        "{taxii}"
    );
    assert_eq!(
        taxii["revoked"],
        serde_json::json!(["observed-data", "sighting"]),
        "{taxii}"
    );
    assert_eq!(taxii["after_last"], 0, "{taxii}");
    assert_eq!(taxii["since_first"], 2, "{taxii}");
    assert!(
        taxii["campaign_types"]
            .as_array()
            .unwrap()
            .contains(&Value::from("campaign")),
        "{taxii}"
    );
    assert_eq!(taxii["only_campaigns"], serde_json::json!(["campaign"]));
    assert_eq!(taxii["reader_can_read_own"], false);
    assert_eq!(taxii["reader_forbidden"], true, "{taxii}");

    // A campaign id that names nothing: exit 2 and the reason.
    let out = sightline(&["export", "misp", "--campaign", "t0ffff", "--config", &bank]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("unknown_campaign"),
        "{}",
        stderr(&out)
    );

    // The gateway feed: a local filter of the numbers at band high, kept
    // up to date by `feed pull`, checked with the gateway crate as a
    // messaging gateway would. The protected number is never listed.
    let filter = path(dir.path(), "high.filter");
    let pull = || {
        run(&[
            "feed",
            "pull",
            "--out",
            filter.to_str().unwrap(),
            "--config",
            &bank,
        ])
    };
    let out = pull();
    assert!(out.contains("new snapshot"), "{out}");
    let key = sightline_node::NodeConfig::load(&configs[0])
        .unwrap()
        .network
        .hash_key;
    let check = |number: &str| {
        let bytes = std::fs::read(&filter).unwrap();
        let gateway = sightline_gateway::Checker::new(
            key.clone(),
            sightline_gateway::Filter::from_bytes(&bytes).unwrap(),
            Some("US"),
        );
        matches!(gateway.check(number), sightline_gateway::Check::Listed(_))
    };
    assert!(check(n1) && check("(415) 555-0142"), "n1 and n2 are high");
    assert!(!check(n3) && !check(own) && !check("+14155550199"));
    // Nothing changed: the node answers 304 and the filter stays.
    let out = pull();
    assert!(out.contains("+0 -0 in 0 page(s)"), "{out}");
    // The carrier now operates n2 (a number the bank reported): the change
    // takes it out; a new high report goes in.
    run(&["protect", n2, "--role", "outbound", "--config", &carrier]);
    run(&[
        "submit",
        "+14155550145",
        "--kind",
        "smishing",
        "--confidence",
        "95",
        "--config",
        &bank,
    ]);
    wait(&bank, n2, "protected", |a| {
        a["protected_by"][0]["org"] == "Carrier"
    });
    let out = pull();
    assert!(out.contains("+1 -1"), "{out}");
    assert!(!check(n2) && check("+14155550145") && check(n1));

    // MISP: PyMISP loads the event and writes it back without loss.
    let misp = path(dir.path(), "numbers.misp.json");
    let again = path(dir.path(), "numbers.pymisp.json");
    run(&[
        "export",
        "misp",
        n1,
        n3,
        "--config",
        &bank,
        "--out",
        misp.to_str().unwrap(),
    ]);
    let summary = python(&["misp", misp.to_str().unwrap(), again.to_str().unwrap()]);
    assert_eq!(summary["numbers"][n1]["to_ids"], true);
    assert_eq!(summary["numbers"][n3]["to_ids"], false);
    assert_eq!(
        summary["numbers"][n1]["sightings"],
        serde_json::json!(["Bank", "Carrier"])
    );
    let tags = summary["numbers"][n1]["tags"].as_array().unwrap();
    assert!(
        tags.contains(&Value::from("sightline:kind=\"smishing\"")),
        "{tags:?}"
    );
    assert!(
        tags.contains(&Value::from(format!("sightline:campaign=\"{campaign}\""))),
        "{tags:?}"
    );
    assert!(summary["tags"]
        .as_array()
        .unwrap()
        .contains(&Value::from("tlp:amber")));
    assert!(summary["notes"][0].as_str().unwrap().contains("keyed hash"));

    // What PyMISP wrote imports into the CERT's node: the number marked for
    // detection, with its kind and times; the low one (to_ids off) is
    // skipped with the reason.
    let out = run(&[
        "import",
        "--misp",
        again.to_str().unwrap(),
        "--config",
        &cert,
    ]);
    assert!(out.contains("imported 1 row(s)"), "{out}");
    assert!(out.contains(&format!("({n3}): to_ids is off")), "{out}");
    let imported = lookup(&cert, n1);
    let cert_report = imported["reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["org"] == "CERT")
        .expect("the CERT's own report")
        .clone();
    assert_eq!(cert_report["kind"], "smishing");
    assert_eq!(cert_report["first_seen"], first["first_seen"]);

    // A MISP feed PyMISP wrote: the detection numbers go in with their
    // kinds (from the tags) and times; context numbers are skipped with
    // the reason, a non-number is refused and stops the import unless
    // --partial.
    let feed = path(dir.path(), "feed");
    let written = python(&["feed", feed.to_str().unwrap()]);
    let out = sightline(&[
        "import",
        "--misp",
        feed.to_str().unwrap(),
        "--config",
        &cert,
    ]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("nothing was stored"),
        "{}",
        stdout(&out)
    );
    let out = sightline(&[
        "import",
        "--misp",
        feed.to_str().unwrap(),
        "--partial",
        "--region",
        "US",
        "--config",
        &cert,
    ]);
    assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("imported 3 row(s), rejected 1"), "{text}");
    assert!(
        text.contains("+1 800 555 0199") && text.contains("to_ids is off"),
        "{text}"
    );
    assert!(text.contains("(call us)"), "{text}");
    let toad = lookup(&cert, "+18885550100");
    assert_eq!(toad["kinds"], serde_json::json!(["callback"]));
    assert_eq!(toad["first_seen"], written["first_seen"]);
    assert_eq!(toad["last_seen"], written["last_seen"]);
    assert_eq!(
        lookup(&cert, "+442079460018")["kinds"],
        serde_json::json!(["vishing"])
    );
    assert_eq!(orgs(&lookup(&cert, "+14155550177")), ["CERT"]);
    drop(nodes);
}
