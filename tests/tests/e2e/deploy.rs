//! Deployment files: the systemd unit is checked by systemd itself, the
//! container files by hadolint and the Compose schema, the alert rules
//! against a running node.

use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_for_verification() -> (tempfile::TempDir, PathBuf) {
    let unit =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/sightline.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    // `verify` requires ExecStart's binary to exist on this machine.
    let text = text.replace("/usr/local/bin/sightline", "/bin/true");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sightline.service");
    std::fs::write(&copy, text).unwrap();
    (dir, copy)
}

#[test]
#[ignore = "system test, needs systemd-analyze (Debian's systemd); bash scripts/test.sh runs it (or: cargo test -- --include-ignored)"]
fn the_systemd_unit_verifies_cleanly_and_is_hardened() {
    let (_dir, unit) = unit_for_verification();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze missing: scripts/test.sh installs Debian's systemd");
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 even for unknown keys or bad values; any output is a finding.
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(
        exposure <= 2.5,
        "exposure {exposure} (systemd rates 0 safest, 10 unsafe)"
    );
    for directive in [
        "User=sightline",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/sightline",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "Restart=on-failure",
        "EnvironmentFile=",
    ] {
        assert!(
            std::fs::read_to_string(&unit).unwrap().contains(directive),
            "unit lacks {directive}"
        );
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a lint tool installed by scripts/test.sh; panics with its findings.
fn lint(tool: &Path, args: &[&Path]) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!(
            "{} not runnable ({e}): scripts/test.sh installs it",
            tool.display()
        )
    });
    assert!(
        out.status.success(),
        "{} {args:?}:\n{}{}",
        tool.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "system test, needs hadolint, yamllint (Python) and dclint (npm); bash scripts/test.sh runs it (or: cargo test -- --include-ignored)"]
fn the_container_files_pass_hadolint_dclint_and_yamllint() {
    let root = repo();
    let containerfile = root.join("deploy/container/Containerfile");
    let compose = root.join("deploy/container/compose.yaml");
    let alerts = root.join("deploy/prometheus/sightline-alerts.yml");
    let venv = root.join("target/tools-venv/bin");
    lint(&venv.join("hadolint"), &[&containerfile]);
    // dclint validates against the Compose specification's schema, then style.
    lint(
        &root.join("tests/browser/node_modules/.bin/dclint"),
        &[&compose],
    );
    lint(
        &venv.join("yamllint"),
        &[
            Path::new("-d"),
            Path::new(
                "{extends: default, rules: {line-length: {max: 160}, document-start: disable}}",
            ),
            &compose,
            &alerts,
        ],
    );

    // What the linters cannot know: the image runs unprivileged, keeps its
    // store on a volume and checks health with the binary's own probe.
    let text = std::fs::read_to_string(&containerfile).unwrap();
    for line in [
        "USER 10001:10001",
        "VOLUME [\"/var/lib/sightline\"]",
        "CMD [\"sightline\", \"health\"]",
        "cargo build --release --locked -p sightline",
    ] {
        assert!(text.contains(line), "Containerfile lacks {line}");
    }
    assert_eq!(text.matches("\nFROM ").count(), 2, "multi-stage build");
    // Each compose service starts an example org whose files exist, and
    // probes that org's web port.
    let compose = std::fs::read_to_string(&compose).unwrap();
    let example = root.join("deploy/examples/three-orgs");
    for (i, org) in ["bank", "carrier", "cert"].iter().enumerate() {
        assert!(
            compose.contains(&format!("ORG: {org}")),
            "no service for {org}"
        );
        assert!(example.join(format!("{org}.toml")).exists());
        assert!(example.join(format!("keys/{org}.key")).exists());
        let web = format!("127.0.0.1:730{}", i + 1);
        let config = std::fs::read_to_string(example.join(format!("{org}.toml"))).unwrap();
        assert!(
            config.contains(&format!("web_bind = \"{web}\"")),
            "{org}: {web}"
        );
        assert!(
            compose.contains(&format!("\"http://{web}\"")),
            "health probe for {org}"
        );
    }
}

#[tokio::test]
async fn every_metric_the_alert_rules_use_is_served() {
    let rules =
        std::fs::read_to_string(repo().join("deploy/prometheus/sightline-alerts.yml")).unwrap();
    let mut used: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .flat_map(|expr| expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.starts_with("sightline_"))
        .collect();
    used.sort_unstable();
    used.dedup();
    assert!(used.len() >= 7, "{used:?}");

    let mut cluster = sightline_tests::Cluster::new(&[("Bank", 0.8), ("Carrier", 0.7)]);
    let node = cluster.start(0).await;
    let web = sightline_tests::Web::start(&node).await;
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", web.addr))
        .bearer_auth(sightline_tests::READ_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in used {
        // Histograms and counters are declared under their base name
        // (OpenMetrics: `# TYPE x counter` for the samples `x_total`).
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "the alert rules use {name}, which /metrics does not serve:\n{metrics}"
        );
    }
    web.stop().await;
    cluster.shutdown().await;
}
