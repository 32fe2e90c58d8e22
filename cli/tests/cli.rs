//! The `sightline` binary, run as a user would: admin commands writing real
//! files, `run` as a child process, and every client command against it,
//! with the exit codes scripts rely on.

// Scenario tests read top to bottom; splitting them would hide the story.
#![allow(clippy::too_many_lines)]

use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_tests::{Cluster, READ_TOKEN, SUBMIT_ONLY_TOKEN, WRITE_TOKEN};

fn sightline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(args)
        .env_remove("SIGHTLINE_API")
        .env_remove("SIGHTLINE_TOKEN")
        .output()
        .expect("binary runs")
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A `sightline run` child process, killed (SIGTERM) on drop.
struct RunningNode {
    child: Child,
    config: PathBuf,
    api: String,
}

impl RunningNode {
    fn start(config: &Path) -> Self {
        Self::start_with_umask(config, "077")
    }

    /// Started from a shell with `umask`.
    fn start_with_umask(config: &Path, umask: &str) -> Self {
        let child = Command::new("sh")
            .args([
                "-c",
                &format!("umask {umask} && exec \"$0\" run --config \"$1\""),
            ])
            .arg(env!("CARGO_BIN_EXE_sightline"))
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sightline run starts");
        let text = std::fs::read_to_string(config).unwrap();
        let bind = text
            .lines()
            .find(|l| l.starts_with("web_bind"))
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_owned();
        let node = RunningNode {
            child,
            config: config.to_owned(),
            api: format!("http://{bind}"),
        };
        // Readiness: the process binds its web port after the node started.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&bind).is_err() {
            assert!(
                Instant::now() < deadline,
                "sightline run did not open {bind}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    fn stop(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait");
        std::mem::forget(self);
        status.code().unwrap_or(-1)
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_with_web_port(cluster: &Cluster, i: usize) -> PathBuf {
    let path = cluster.members[i].config_path.clone();
    let port = sightline_tests::free_port();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn network_admin_and_init_write_working_files() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("network.toml");
    let net_s = net.to_str().unwrap();
    let out = sightline(&[
        "network",
        "new",
        "--name",
        "Example ISAC",
        "--id",
        "example-isac",
        "--out",
        net_s,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(&net).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Refuses to overwrite, and rejects a bad id with exit 2.
    assert_eq!(
        code(&sightline(&[
            "network", "new", "--name", "X", "--id", "x", "--out", net_s
        ])),
        2
    );
    let bad = dir.path().join("bad.toml");
    let out = sightline(&[
        "network",
        "new",
        "--name",
        "X",
        "--id",
        "Bad Id",
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("id"), "{}", stderr(&out));

    let org_dir = dir.path().join("bank");
    let out = sightline(&[
        "init",
        "--network",
        net_s,
        "--org",
        "Bank",
        "--dir",
        org_dir.to_str().unwrap(),
        "--p2p-port",
        "17400",
        "--web-port",
        "17300",
        "--json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let init: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let peer_id = init["peer_id"].as_str().unwrap().to_owned();
    assert!(peer_id.starts_with("12D3Koo"));
    assert_eq!(init["api"], "http://127.0.0.1:17300");
    // One token per role, each with the least scope it needs.
    let config_text = std::fs::read_to_string(org_dir.join("sightline.toml")).unwrap();
    let config: toml::Table = toml::from_str(&config_text).unwrap();
    for (role, scopes) in [
        ("analyst", vec!["read"]),
        ("automation", vec!["read", "submit"]),
        ("operator", vec!["read", "admin"]),
    ] {
        let secret = init["tokens"][role].as_str().unwrap();
        assert!(secret.len() >= 32, "{role}");
        let entry = config["token"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"].as_str() == Some(role))
            .unwrap_or_else(|| panic!("no {role} token in {config_text}"));
        assert_eq!(entry["token"].as_str(), Some(secret));
        let found: Vec<&str> = entry["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s.as_str())
            .collect();
        assert_eq!(found, scopes, "{role}");
    }
    assert_eq!(
        std::fs::metadata(org_dir.join("data/node.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(org_dir.join("sightline.toml"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let out = sightline(&[
        "network",
        "add-member",
        "--network",
        net_s,
        "--org",
        "Bank",
        "--peer-id",
        &peer_id,
        "--trust",
        "0.8",
        "--addr",
        "/ip4/127.0.0.1/tcp/17400",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&net).unwrap();
    assert!(
        text.contains(&format!("/ip4/127.0.0.1/tcp/17400/p2p/{peer_id}")),
        "{text}"
    );
    // A bad peer id or trust is refused and leaves the file as it was.
    for args in [
        ["--peer-id", "nope", "--trust", "0.5"],
        ["--peer-id", peer_id.as_str(), "--trust", "1.5"],
    ] {
        let out = sightline(&[
            "network",
            "add-member",
            "--network",
            net_s,
            "--org",
            "Other",
            args[0],
            args[1],
            args[2],
            args[3],
        ]);
        assert_eq!(code(&out), 2, "{}", stderr(&out));
    }
    assert_eq!(std::fs::read_to_string(&net).unwrap(), text);
    // add-member replaces the file atomically (a new inode renamed over the
    // old one), keeping the mode the operator gave it; a symbolic link is
    // refused, not followed.
    std::fs::set_permissions(&net, std::fs::Permissions::from_mode(0o640)).unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&net);
    let other = sightline_node::identity::NodeIdentity::from_seed(&[9; 32]).peer_id();
    let out = sightline(&[
        "network",
        "add-member",
        "--network",
        net_s,
        "--org",
        "Insurer",
        "--peer-id",
        &other.to_string(),
        "--trust",
        "0.5",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_ne!(inode(&net), before);
    assert_eq!(
        std::fs::metadata(&net).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let text = std::fs::read_to_string(&net).unwrap();
    assert!(text.contains("Insurer"), "{text}");
    let link = dir.path().join("linked.toml");
    std::os::unix::fs::symlink(&net, &link).unwrap();
    let out = sightline(&[
        "network",
        "add-member",
        "--network",
        link.to_str().unwrap(),
        "--org",
        "Telco",
        "--peer-id",
        &sightline_node::identity::NodeIdentity::from_seed(&[10; 32])
            .peer_id()
            .to_string(),
        "--trust",
        "0.5",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&net).unwrap(), text);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // No staged copy is left behind by either.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The files start a node: config loads and validates.
    sightline_node::NodeConfig::load(&org_dir.join("sightline.toml")).unwrap();
    // Usage errors exit 2; --help exits 0.
    assert_eq!(code(&sightline(&["lookup"])), 2);
    assert_eq!(code(&sightline(&["frobnicate"])), 2);
    assert_eq!(code(&sightline(&["import", "--help"])), 0);
}

#[test]
fn client_commands_against_a_running_node() {
    let cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let config = node_with_web_port(&cluster, 0);
    let node = RunningNode::start(&config);
    let cfg = node.config.to_str().unwrap().to_owned();

    let out = sightline(&[
        "submit",
        "+1 (415) 555-0101",
        "--kind",
        "smishing",
        "--channel",
        "sms",
        "--brand",
        "Example Bank",
        "--confidence",
        "95",
        "--config",
        &cfg,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("+14155550101"));

    // Lookup: table, JSON, --fail-on.
    let out = sightline(&["lookup", "+14155550101", "+14155550102", "--api", &node.api]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("high") && stdout(&out).contains("Bank"),
        "{}",
        stdout(&out)
    );
    let out = sightline(&[
        "lookup",
        "+14155550101",
        "--json",
        "--api",
        &node.api,
        "--token",
        READ_TOKEN,
    ]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json[0]["band"], "high");
    assert_eq!(
        code(&sightline(&[
            "lookup",
            "+14155550101",
            "--fail-on",
            "medium",
            "--api",
            &node.api
        ])),
        1
    );
    assert_eq!(
        code(&sightline(&[
            "lookup",
            "+14155550102",
            "--fail-on",
            "low",
            "--api",
            &node.api
        ])),
        0
    );
    // This network signs record version 1: protecting a number needs 2.
    let out = sightline(&[
        "protect",
        "+1 212 555 0100",
        "--role",
        "inbound-only",
        "--config",
        &cfg,
    ]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(
        stderr(&out).contains("record version 2"),
        "{}",
        stderr(&out)
    );
    let out = sightline(&["lookup", "not-a-number", "--api", &node.api]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).contains("invalid"), "{}", stdout(&out));
    // A letter O for a zero is refused, not read as a keypad 6; --vanity
    // reads a vanity number and shows the number it was read as.
    let out = sightline(&["lookup", "+1 415 555 01O1", "--api", &node.api]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).contains("letters"), "{}", stdout(&out));
    let out = sightline(&[
        "submit",
        "+1 415 555 O136",
        "--kind",
        "vishing",
        "--api",
        &node.api,
        "--token",
        WRITE_TOKEN,
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let out = sightline(&[
        "lookup",
        "+1-800-FLOWERS",
        "--vanity",
        "--json",
        "--api",
        &node.api,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("+18003569377"), "{}", stdout(&out));

    // Import --partial with bad rows: good rows land, bad ones are listed by line.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (first, last) = (now - 7200, now - 3600);
    let csv = format!(
        "number,kind,channel,brand,confidence,first_seen,last_seen,count\n\
               +1 415 555 0111,smishing,sms,Parcel Express,80,,,3\n\
               +1 415 555 011,smishing,sms,,80,,,1\n\
               +44 20 7946 0958,phishing,voice,,70,,,1\n\
               +61 491 570 156,sim-swap,other,,101,,,1\n\
               \"+33 9 87 65 43 21\",bec,email,\"Acme, Inc.\",60,{first},{last},2\n\
               ,vishing,voice,,50,,,1\n"
    );
    let out = import(
        &csv,
        &["--partial", "--api", &node.api, "--token", WRITE_TOKEN],
    );
    assert_eq!(code(&out), 2, "some rows were rejected: {}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("imported 2 row(s), rejected 4"), "{text}");
    for needle in [
        "line 3",
        "too short",
        "line 4",
        "phishing",
        "line 5",
        "confidence",
        "line 7",
        "missing number",
    ] {
        assert!(
            text.contains(needle),
            "import summary lacks {needle:?}:\n{text}"
        );
    }
    let out = sightline(&["lookup", "+33 9 87 65 43 21", "--json", "--api", &node.api]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json[0]["brands"][0], "Acme, Inc.");
    // A file with an unknown column is refused up front.
    let bad_csv = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad_csv.path(), "number,kind,colour\n+14155550101,bec,red\n").unwrap();
    let out = sightline(&["import", bad_csv.path().to_str().unwrap(), "--config", &cfg]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("colour"));

    // Withdrawing a number this organization never reported: exit 2,
    // nothing signed.
    let out = sightline(&["withdraw", "+1 415 555 0177", "--config", &cfg]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no current report"),
        "{}",
        stderr(&out)
    );

    // Withdraw, peers, status.
    let out = sightline(&[
        "withdraw",
        "415-555-0101",
        "--region",
        "US",
        "--config",
        &cfg,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        code(&sightline(&[
            "lookup",
            "+14155550101",
            "--fail-on",
            "low",
            "--api",
            &node.api
        ])),
        0
    );
    let out = sightline(&["peers", "--config", &cfg]);
    assert!(
        code(&out) == 0
            && stdout(&out).contains("Carrier")
            && stdout(&out).contains("not connected"),
        "{}",
        stdout(&out)
    );
    let out = sightline(&["status", "--json", "--config", &cfg]);
    let status: Value = serde_json::from_str(&stdout(&out)).unwrap();
    // Four records signed; the withdrawal replaced the report it withdrew.
    assert_eq!(status["records"], 3);
    assert_eq!(status["own_seq"], 4);
    let out = sightline(&["status", "--config", &cfg]);
    assert!(stdout(&out).contains("Bank"));

    // Wrong token and missing scope: exit 2 with the API's reason.
    let out = sightline(&[
        "status",
        "--api",
        &node.api,
        "--token",
        "wrong-token-wrong-token",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
    let out = sightline(&[
        "submit",
        "+14155550101",
        "--kind",
        "bec",
        "--api",
        &node.api,
        "--token",
        READ_TOKEN,
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("forbidden"));
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["status"])
        .env("SIGHTLINE_API", &node.api)
        .env("SIGHTLINE_TOKEN", SUBMIT_ONLY_TOKEN)
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "env vars are read");

    // Clean shutdown on SIGTERM.
    assert_eq!(node.stop(), 0);
    // Unreachable node: exit 3.
    let out = sightline(&["lookup", "+14155550101", "--config", &cfg]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("unreachable"));
    // No node given at all: usage error.
    assert_eq!(code(&sightline(&["status"])), 2);
}

/// Runs `sightline import -` with `csv` on stdin.
fn import(csv: &str, extra: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["import", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(csv.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn import_stores_every_row_or_none_and_exit_codes_tell_retry_from_match() {
    let options = sightline_tests::Options {
        limits: sightline_node::store::Limits {
            records_per_hour: 3,
            numbers_per_day: 100,
        },
        ..sightline_tests::Options::default()
    };
    let cluster = Cluster::build(&[("Bank", 0.8), ("Carrier", 0.6)], &options);
    let config = node_with_web_port(&cluster, 0);
    let node = RunningNode::start(&config);
    let api = ["--api", node.api.as_str(), "--token", WRITE_TOKEN];
    let reported = |number: &str| {
        let out = sightline(&["lookup", number, "--fail-on", "low", "--api", &node.api]);
        match code(&out) {
            0 => false,
            1 => true,
            other => panic!("lookup exit {other}: {}", stderr(&out)),
        }
    };

    // One bad row: nothing is stored, and the output says so.
    let csv = "number,kind,confidence\n+1 415 555 0121,smishing,90\n+1 415 555 012,smishing,90\n";
    let out = import(csv, &api);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nothing was stored: 1 of 2 row(s) rejected")
            && stdout(&out).contains("line 3"),
        "{}",
        stdout(&out)
    );
    assert!(!reported("+14155550121"));

    // A row the node refuses (not the file): nothing stored either.
    let csv = "number,kind,confidence\n+1 415 555 0121,smishing,90\n+1 415 555 0122,smishing,90\n";
    let out = import(csv, &["--api", &node.api, "--token", READ_TOKEN]);
    assert_eq!(
        code(&out),
        2,
        "a read token cannot import: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("nothing was stored"),
        "{}",
        stderr(&out)
    );
    assert!(!reported("+14155550121"));

    // --partial stores the good row.
    let csv = "number,kind,confidence\n+1 415 555 0121,smishing,90\n+1 415 555 012,smishing,90\n";
    let out = import(csv, &[&["--partial"][..], &api[..]].concat());
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("imported 1 row(s), rejected 1"),
        "{}",
        stdout(&out)
    );
    assert!(reported("+14155550121"));

    // Over the organization's limit (3 records an hour; 1 used): the node
    // answers 429, the import exits 4 ("retry later") and stores nothing.
    let csv = "number,kind,confidence\n+1 415 555 0131,smishing,90\n\
               +1 415 555 0132,smishing,90\n+1 415 555 0133,smishing,90\n";
    let out = import(csv, &api);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("over_origin_limit") && stderr(&out).contains("nothing was stored"),
        "{}",
        stderr(&out)
    );
    assert!(!reported("+14155550131") && !reported("+14155550133"));
    // Two rows fit: all of them are stored.
    let csv = "number,kind,confidence\n+1 415 555 0131,smishing,90\n+1 415 555 0132,smishing,90\n";
    let out = import(csv, &api);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("imported 2 row(s): 2 new report(s), 0 already stored"),
        "{}",
        stdout(&out)
    );
    assert!(reported("+14155550131") && reported("+14155550132"));
    // A submit over the limit is a 429 too: exit 4, not 1.
    let out = sightline(
        &[
            &["submit", "+1 415 555 0141", "--kind", "bec"][..],
            &api[..],
        ]
        .concat(),
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));

    // --api without a scheme: a usage error that shows the fix.
    let bare = node.api.trim_start_matches("http://");
    let out = sightline(&["status", "--api", bare, "--token", READ_TOKEN]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("--api http://{bare}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_refuses_a_bad_config_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sightline.toml");
    std::fs::write(&config, "network = \"missing.toml\"\n").unwrap();
    let out = sightline(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn demo_check_converges_and_exits_zero() {
    let out = sightline(&["demo", "--check"]);
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("three organizations, 15 sightings shared and verified on every node"),
        "{text}"
    );
    assert!(text.contains("band HIGH"), "{text}");
    assert_eq!(
        text.matches("http://127.0.0.1:").count(),
        5,
        "three web URLs, the example's campaign and the example command: {text}"
    );
    // The example number's operation: linked by a shared link domain and
    // the same script (the sample's second operation).
    assert!(
        text.contains("It is part of a campaign of 3 numbers") && text.contains("/campaigns/t00"),
        "{text}"
    );
    assert!(
        text.contains("Spoofed: +44 20 7946 0123 is reported as vishing, but Example Bank operates it (inbound-only)"),
        "{text}"
    );
    // The example command names the binary that ran, which works without
    // `sightline` on the PATH.
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_sightline")).unwrap();
    assert!(
        text.contains(&format!("Try:     {} lookup --api", exe.display())),
        "{text}"
    );
}

/// Streams API submissions, kills the node with SIGKILL mid-stream, restarts
/// it, and checks that every acknowledged submission survived and that no
/// sequence number was reused with different content.
#[test]
fn acknowledged_submissions_survive_kill_9() {
    let cluster = Cluster::new(&[("Bank", 0.8)]);
    let config = node_with_web_port(&cluster, 0);
    let mut node = RunningNode::start(&config);
    let api = node.api.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A client thread submits small batches as fast as it can, recording every 2xx receipt.
    let acked: std::sync::Arc<std::sync::Mutex<Vec<(u64, String)>>> = std::sync::Arc::default();
    let writer = {
        let acked = acked.clone();
        let api = api.clone();
        runtime.spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
            for i in 0u32.. {
                let batch: Vec<Value> = (0..5)
                    .map(|j| serde_json::json!({"number": format!("+1 415 555 {:04}", 100 + (i * 5 + j) % 100), "kind": "smishing", "count": i * 5 + j + 1}))
                    .collect();
                let Ok(response) = http.post(format!("{api}/api/v1/sightings")).bearer_auth(WRITE_TOKEN).json(&batch).send().await else { break };
                if !response.status().is_success() {
                    break;
                }
                let Ok(body) = response.json::<Value>().await else { break };
                let mut acked = acked.lock().unwrap();
                for r in body["receipts"].as_array().unwrap() {
                    acked.push((r["seq"].as_u64().unwrap(), r["id"].as_str().unwrap().to_owned()));
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 2_000 {
        assert!(
            Instant::now() < deadline,
            "too slow: {} acks",
            acked.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    node.child.kill().unwrap(); // SIGKILL, mid-stream
    node.child.wait().unwrap();
    runtime.block_on(writer).unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 2_000);

    // The store opens cleanly and holds every acknowledged record, each at its seq.
    let store_dir = config.parent().unwrap().join("data/store");
    {
        let store =
            sightline_node::store::Store::open(&store_dir).expect("store opens after kill -9");
        let origin = store.progress().unwrap()[0].origin;
        let (pages, _) = store.page(&origin, 0, usize::MAX).unwrap();
        let by_seq: std::collections::HashMap<u64, String> = pages
            .iter()
            .map(|b| {
                let r = sightline_protocol::SignedSighting::from_bytes(b).unwrap();
                (r.sighting().seq, r.id().to_hex())
            })
            .collect();
        for (seq, id) in &acked {
            assert_eq!(
                by_seq.get(seq),
                Some(id),
                "acknowledged seq {seq} lost or changed"
            );
        }
        assert!(store.last_own_seq().unwrap() >= acked.iter().map(|(s, _)| *s).max().unwrap());
    }
    // Restarted, the node continues with fresh seqs.
    let node = RunningNode::start(&config);
    let out = sightline(&[
        "submit",
        "+1 415 555 0199",
        "--kind",
        "vishing",
        "--json",
        "--api",
        &node.api,
        "--token",
        WRITE_TOKEN,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let receipt: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let max_acked = acked.iter().map(|(s, _)| *s).max().unwrap();
    assert!(
        receipt["seq"].as_u64().unwrap() > max_acked,
        "seq reused after a crash"
    );
    assert_eq!(node.stop(), 0);
}

#[path = "cli/interop.rs"]
mod interop;
#[path = "cli/partition.rs"]
mod partition;

/// Every directory and file under `dir` whose mode lets group or others in.
fn open_to_others(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mode = std::fs::symlink_metadata(dir).unwrap().permissions().mode();
    if mode & 0o077 != 0 {
        found.push(format!("{} {:o}", dir.display(), mode & 0o777));
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(open_to_others(&entry.path()));
        } else if kind.is_file() {
            let mode = entry.metadata().unwrap().permissions().mode();
            if mode & 0o077 != 0 {
                found.push(format!("{} {:o}", entry.path().display(), mode & 0o777));
            }
        }
    }
    found
}

/// The data directory is private whatever the umask (and whatever an older
/// version left), and a damaged store stops `run` with one message that
/// names the store and the way back, not a panic and a crash loop.
#[test]
fn the_data_directory_is_private_and_a_damaged_store_fails_start_cleanly() {
    let cluster = Cluster::new(&[("Bank", 0.8)]);
    let config = node_with_web_port(&cluster, 0);
    let cfg = config.to_str().unwrap().to_owned();
    let data = sightline_node::NodeConfig::load(&config).unwrap().data_dir;
    // What an earlier version under umask 022 left: everything readable.
    let node = RunningNode::start(&config);
    assert_eq!(node.stop(), 0);
    let chmod = |mode: &str| {
        let out = Command::new("chmod")
            .args(["-R", mode])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    chmod("go+rX");
    // (Its key file was always 0600: the node refuses to use a readable one.)
    std::fs::set_permissions(
        data.join("node.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert!(!open_to_others(&data).is_empty());
    // Started from a shell whose umask lets everyone read.
    let node = RunningNode::start_with_umask(&config, "022");
    let out = sightline(&[
        "submit",
        "+1 415 555 0142",
        "--kind",
        "smishing",
        "--config",
        &cfg,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let backup = data.join("b.backup");
    let phrase = data.join("phrase");
    std::fs::write(&phrase, "a passphrase for the test\n").unwrap();
    std::fs::set_permissions(&phrase, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = sightline(&[
        "backup",
        "--out",
        backup.to_str().unwrap(),
        "--passphrase-file",
        phrase.to_str().unwrap(),
        "--config",
        &cfg,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(open_to_others(&data), Vec::<String>::new());
    assert_eq!(node.stop(), 0);
    // Files sled wrote after start are private too (the binary's umask).
    assert_eq!(open_to_others(&data), Vec::<String>::new());

    // Damage the head of sled's log, as a failed disk or a stray write would.
    let db = data.join("store/db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[..64] {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["run", "--config", &cfg])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_ne!(code(&out), 0, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(&data.join("store").display().to_string()),
        "{err}"
    );
    assert!(err.contains("sightline restore"), "{err}");
}

#[test]
fn backup_of_a_running_node_restores_to_an_identical_node() {
    let cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let config = node_with_web_port(&cluster, 0);
    let cfg = config.to_str().unwrap().to_owned();
    let node = RunningNode::start(&config);
    for i in 0..12 {
        let n = format!("+1 415 555 {:04}", 120 + i);
        let out = sightline(&["submit", &n, "--kind", "callback", "--config", &cfg]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let status = |api: &str| -> Value {
        serde_json::from_str(&stdout(&sightline(&[
            "status", "--json", "--api", api, "--token", READ_TOKEN,
        ])))
        .unwrap()
    };
    let before = status(&node.api);
    let archive = cluster.dir.path().join("bank.backup");
    let archive_s = archive.to_str().unwrap();
    // The operator keeps the backup identity off the node; the node gets
    // only its public recipient.
    let identity = cluster.dir.path().join("backup.identity");
    let identity_s = identity.to_str().unwrap();
    let out = sightline(&["backup-key", "--out", identity_s]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let recipient = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("recipient: "))
        .unwrap()
        .to_owned();
    assert_eq!(
        std::fs::metadata(&identity).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // An unencrypted backup is not offered.
    let out = sightline(&["backup", "--out", archive_s, "--config", &cfg]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--recipient"), "{}", stderr(&out));
    assert!(!archive.exists());
    // A token without the admin scope may not take backups.
    let out = sightline(&[
        "backup",
        "--out",
        archive_s,
        "--recipient",
        &recipient,
        "--api",
        &node.api,
        "--token",
        WRITE_TOKEN,
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("admin"), "{}", stderr(&out));
    assert!(!archive.exists());
    let out = sightline(&[
        "backup",
        "--out",
        archive_s,
        "--recipient",
        &recipient,
        "--config",
        &cfg,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let restore = |archive: &str| {
        sightline(&[
            "restore",
            "--config",
            &cfg,
            "--archive",
            archive,
            "--identity",
            identity_s,
        ])
    };
    // Restoring into a running node's store is refused.
    let out = restore(archive_s);
    assert_eq!(code(&out), 2);
    assert_eq!(node.stop(), 0);

    // Lose the whole data directory (store and key), then restore.
    let data = config.parent().unwrap().join("data");
    std::fs::rename(&data, config.parent().unwrap().join("data.lost")).unwrap();
    // Without the identity the archive cannot be read.
    let out = sightline(&["restore", "--config", &cfg, "--archive", archive_s]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--identity"), "{}", stderr(&out));
    // A damaged archive is refused, and leaves nothing behind.
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let damaged = cluster.dir.path().join("damaged.backup");
    std::fs::write(&damaged, bytes).unwrap();
    let out = restore(damaged.to_str().unwrap());
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("cannot decrypt"), "{}", stderr(&out));
    assert!(!data.join("store").exists() && !data.join("node.key").exists());
    let out = restore(archive_s);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("12 record(s)") && stdout(&out).contains("12 own raw number(s)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::metadata(data.join("node.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let node = RunningNode::start(&config);
    let after = status(&node.api);
    for field in ["peer_id", "set_digest", "own_seq", "records"] {
        assert_eq!(after[field], before[field], "{field} differs after restore");
    }
    let submit = || {
        sightline(&[
            "submit",
            "+1 415 555 0199",
            "--kind",
            "bec",
            "--json",
            "--config",
            &cfg,
        ])
    };
    // A restored node does not sign until a peer has told it which of its
    // own records it holds (a later one than the backup's would be reused).
    let out = submit();
    assert_eq!(code(&out), 4, "503: retry later: {}", stderr(&out));
    assert!(
        stderr(&out).contains("own_seq_unconfirmed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(status(&node.api)["own_seq_confirmed"], false);
    let carrier = RunningNode::start(&node_with_web_port(&cluster, 1));
    let out = submit();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let receipt: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(receipt["seq"], before["own_seq"].as_u64().unwrap() + 1);
    assert_eq!(carrier.stop(), 0);
    assert_eq!(node.stop(), 0);
    // A second restore into the now non-empty store is refused.
    let out = restore(archive_s);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
}

#[test]
fn the_local_cluster_script_starts_the_three_org_example_and_it_shares() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local-cluster.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args([
            "--check",
            "--bin",
            env!("CARGO_BIN_EXE_sightline"),
            "--port-offset",
            "10250",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("a test sighting from Example Bank reached National CERT"),
        "{text}"
    );
    // The committed example's web ports 7301-7303, moved by the offset.
    assert_eq!(text.matches("http://127.0.0.1:1755").count(), 3, "{text}");
    // --check stops the nodes: their ports are free again.
    for port in [17651, 17652, 17653, 17551, 17552, 17553] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still held"
        );
    }
}

/// The `sh` fenced code blocks of a Markdown file, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "unclosed ```sh block");
    blocks
}

/// Runs the `sh` blocks of `docs/NAME` in one shell, in order, as a reader
/// would type them, in a fresh working directory with `sightline` on the
/// PATH; any failing command stops it, and the nodes it starts in the
/// background are stopped on exit. `ports` are the ones the guide uses.
/// Returns the transcript and the directory (kept until dropped).
fn run_guide(name: &str, ports: &[u16], min_blocks: usize) -> (String, tempfile::TempDir) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let guide = std::fs::read_to_string(root.join("docs").join(name)).unwrap();
    let blocks = sh_blocks(&guide);
    assert!(
        blocks.len() >= min_blocks,
        "only {} sh blocks",
        blocks.len()
    );
    for port in ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok(),
            "port {port} is in use; the walkthrough of {name} needs it"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sightline"), bin.join("sightline")).unwrap();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill -KILL $(jobs -p) 2>/dev/null || true' EXIT\n");
    for (i, block) in blocks.iter().enumerate() {
        writeln!(script, "echo '### block {i}'").unwrap();
        script.push_str(block);
    }
    script.push_str("echo '### done'\n");
    let transcript = dir.path().join("transcript.txt");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("RUST_LOG", "info,libp2p=warn")
        .env_remove("SIGHTLINE_API")
        .env_remove("SIGHTLINE_TOKEN")
        .stdout(std::fs::File::create(&transcript).unwrap())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", &format!("-{}", child.id())])
                .status();
            panic!(
                "{name} did not finish in 240 s:\n{}",
                std::fs::read_to_string(&transcript).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut errors = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut errors).unwrap();
    let text = std::fs::read_to_string(&transcript).unwrap();
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with("### "))
        .unwrap_or("");
    assert!(
        status.success() && text.ends_with("### done\n"),
        "{name} failed after {last}:\n{text}\n{errors}\n(bank log: {})",
        std::fs::read_to_string(work.join("bank/node.log")).unwrap_or_default()
    );
    // Every block ran.
    assert_eq!(text.matches("### block ").count(), blocks.len());
    (text, dir)
}

#[test]
fn operators_guide_runs_as_written() {
    let (text, dir) = run_guide("operators.md", &[7301, 7302, 7401, 7402], 15);
    let work = dir.path().join("work");

    // What the guide promises, checked on its results.
    assert!(text.contains("old token refused, exit 2"), "{text}");
    let sightings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("sightings "))
        .collect();
    assert_eq!(sightings.len(), 2, "{text}");
    assert_eq!(sightings[0], sightings[1], "the restored node differs");
    assert!(sightings[0].contains("1 stored, own seq 1"), "{text}");
    assert!(text.contains("sightline_peers_members 1"), "{text}");
    let config = std::fs::read_to_string(work.join("bank/sightline.toml")).unwrap();
    assert!(
        config.starts_with("# Sightline node configuration"),
        "comments kept"
    );
    assert!(config.contains("\"Example Carrier\" = 0.4"), "{config}");
    assert!(config.contains("sms-gateway-2") && !config.contains("\"sms-gateway\""));
    let archive = std::fs::metadata(work.join("bank.backup")).unwrap();
    assert_eq!(archive.permissions().mode() & 0o777, 0o600);
}

#[test]
fn integrations_guide_runs_as_written() {
    let (text, _dir) = run_guide("integrations.md", &[7311, 7411], 8);
    // What the guide shows, checked on its results.
    assert!(text.contains("tlp:amber"), "{text}");
    assert!(
        text.contains("('indicator', 2)") && text.contains("('campaign', 1)"),
        "{text}"
    );
    assert!(
        text.contains("\"api_roots\"") && text.contains("[phone-number:value = '+14155550141']"),
        "{text}"
    );
    assert!(
        text.contains("to_ids is off") && text.contains("imported 1 row(s)"),
        "{text}"
    );
    assert!(
        text.contains("+14155550141: listed") && text.contains("+14155550199: clear"),
        "{text}"
    );
    assert!(
        text.contains("EXAMPLEBANK: not a phone number")
            && text.contains("a listed sender: exit 1"),
        "{text}"
    );
    assert!(text.contains("+0 -0 in 0 page(s)"), "{text}");
}

#[test]
fn operator_commands_refuse_bad_edits_and_report_an_absent_node() {
    let cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.7)]);
    let path = cluster.members[0].config_path.clone();
    let cfg = path.to_str().unwrap();
    let original = std::fs::read_to_string(&path).unwrap();

    // peer-id reads the existing key and never creates one.
    let out = sightline(&["peer-id", "--config", cfg]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), cluster.members[0].peer_id.to_string());
    let key = cluster.config(0).key_file;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sightline(&["peer-id", "--config", cfg]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Edits that would make an invalid config leave the file as it was.
    for (args, why) in [
        (
            vec!["token", "add", "--name", "x", "--scope", "everything"],
            "unknown scope",
        ),
        (
            vec!["token", "add", "--name", "writer", "--scope", "read"],
            "already has a token",
        ),
        (
            vec!["token", "revoke", "--name", "nobody"],
            "no token named",
        ),
        (
            vec!["trust", "--org", "Carrier", "--weight", "1.5"],
            "trust.Carrier",
        ),
        (
            vec!["trust", "--org", "Nobody", "--weight", "0.5"],
            "trust.Nobody",
        ),
        (
            vec!["trust", "--org", "Carrier", "--clear"],
            "no trust override",
        ),
    ] {
        let mut args = args;
        args.extend(["--config", cfg]);
        let out = sightline(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            original,
            "{args:?}"
        );
    }
    // A good edit keeps the file's mode, less what others could read.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sightline(&[
        "token", "add", "--name", "gw", "--scope", "read", "--config", cfg,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).trim().len() >= 40);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);

    // Nothing listens: health says so with exit 3, after --wait.
    let port = sightline_tests::free_port();
    let api = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let out = sightline(&["health", "--api", &api, "--wait", "1"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(stderr(&out).contains("unreachable"), "{}", stderr(&out));
}
