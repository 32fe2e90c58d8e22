//! A rolling upgrade: a node of the baseline release (`tests/upgrade-baseline`,
//! built by `scripts/test.sh` into `SIGHTLINE_BASELINE_BIN`) and a node of
//! this tree share reports both ways — what the old node held before the
//! new one started reaches it by catch-up version 1, which the new node
//! falls back to — then the old node is upgraded in place: this tree opens
//! the store the old binary wrote (schema 3, with a superseded report in
//! it), migrates it, keeps every current report and converges with the new
//! node by set reconciliation.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use sightline_node::Submission;
use sightline_protocol::Kind;
use sightline_tests::{eventually, free_port, Cluster, Options, READ_TOKEN, WRITE_TOKEN};

use super::{has_report, WAIT};

const OLD_NUMBER: &str = "+1 415 555 0181";
const NEW_NUMBER: &str = "+1 415 555 0182";
const LATER_NUMBER: &str = "+1 415 555 0183";
const EARLY_NUMBER: &str = "+1 415 555 0184";

/// The baseline release's node, run as its operators run it.
struct OldNode {
    child: Child,
    api: String,
    http: reqwest::Client,
}

impl OldNode {
    async fn start(binary: &str, config: &std::path::Path) -> Self {
        let port = free_port();
        let text = std::fs::read_to_string(config).expect("config");
        let text = text.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
        assert!(
            text.contains(&port.to_string()),
            "web_bind not found in {text}"
        );
        std::fs::write(config, text).expect("config");
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary}: {e}"));
        let node = OldNode {
            child,
            api: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let up = node.http.get(format!("{}/healthz", node.api)).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return node;
            }
            assert!(tokio::time::Instant::now() < deadline, "old node not up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Submits one sighting; a re-created store waits for a peer to
    /// confirm its sequence numbers, so a 503 is retried.
    async fn submit(&self, number: &str, kind: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = self
                .http
                .post(format!("{}/api/v1/sightings", self.api))
                .bearer_auth(WRITE_TOKEN)
                .json(&json!({ "number": number, "kind": kind }))
                .send()
                .await
                .expect("old node answers");
            let status = r.status();
            if status.is_success() {
                return;
            }
            let body = r.text().await.unwrap_or_default();
            assert!(
                status.as_u16() == 503 && tokio::time::Instant::now() < deadline,
                "old node refused the submission: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn orgs_reporting(&self, number: &str) -> u64 {
        let Ok(r) = self
            .http
            .get(format!(
                "{}/api/v1/lookup/{}",
                self.api,
                number.replace('+', "%2B").replace(' ', "")
            ))
            .bearer_auth(READ_TOKEN)
            .send()
            .await
        else {
            return 0;
        };
        r.json::<Value>()
            .await
            .ok()
            .and_then(|v| v["orgs"].as_u64())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        // SIGTERM: the node flushes its store and exits.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("old node exits");
        assert!(status.success(), "old node exited with {status}");
    }
}

/// The catch-up version `node` last spoke with `org`'s node, as its peers
/// list shows it.
async fn spoken(node: &sightline_node::NodeHandle, org: &str) -> Option<u8> {
    node.peers()
        .await
        .into_iter()
        .find(|p| p.org == org)
        .and_then(|p| p.catch_up_version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test, needs the baseline release's binary; bash scripts/test.sh builds it (SIGHTLINE_BASELINE_BIN)"]
async fn a_node_of_the_previous_release_and_one_of_this_tree_share_and_upgrade_in_place() {
    let baseline = std::env::var("SIGHTLINE_BASELINE_BIN").expect(
        "SIGHTLINE_BASELINE_BIN: the baseline release's sightline binary (scripts/test.sh builds it)",
    );
    let mut cluster = Cluster::build(&[("Old", 0.8), ("New", 0.8)], &Options::default());
    let old_config = cluster.members[0].config_path.clone();
    // The old release writes its own store, as on the host being upgraded.
    std::fs::remove_dir_all(old_config.parent().expect("dir").join("data/store"))
        .expect("no store yet");
    let old = OldNode::start(&baseline, &old_config).await;
    // The new node confirms the old one's (new) store's seq, takes a report
    // by gossip, and stops; meanwhile the old node re-reports the number
    // (the old release keeps both records) and reports another.
    let new = cluster.start(1).await;
    old.submit(OLD_NUMBER, "callback").await;
    eventually("the first report arrives", WAIT, &new, || async {
        has_report(&new, OLD_NUMBER).await
    })
    .await;
    drop(new);
    cluster.stop(1).await;
    old.submit(OLD_NUMBER, "smishing").await;
    old.submit(EARLY_NUMBER, "callback").await;
    let new = cluster.start(1).await;
    let old_origin_count = |node: &sightline_node::NodeHandle| {
        let node = node.clone();
        async move {
            node.status()
                .await
                .ok()
                .and_then(|s| s.origins.iter().find(|o| o.org == "Old").map(|o| o.count))
        }
    };
    eventually(
        "the new node catches up from the old one (catch-up version 1)",
        WAIT,
        &new,
        || async { old_origin_count(&new).await == Some(2) },
    )
    .await;
    assert!(has_report(&new, EARLY_NUMBER).await);
    // (The old release also queues what it signed with no peer and
    // publishes it when one subscribes.) Catch-up with it runs version 1:
    // exchanges complete, and no reconciliation round is run.
    eventually("a catch-up version 1 exchange", WAIT, &new, || async {
        new.status()
            .await
            .is_ok_and(|s| s.sync_exchanges >= 1 && s.sync_rounds == 0)
    })
    .await;
    // The new node's peers say which version each peer speaks.
    assert_eq!(spoken(&new, "Old").await, Some(1));

    new.submit(vec![Submission::new(NEW_NUMBER, Kind::Vishing)])
        .await
        .expect("new node stores");
    eventually(
        "the old node's report reaches the new node",
        WAIT,
        &new,
        || async { has_report(&new, OLD_NUMBER).await },
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while old.orgs_reporting(NEW_NUMBER).await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new node's report never reached the old node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Upgrade in place: stop the old binary, start this tree on its files.
    old.stop();
    let upgraded = cluster.start(0).await;
    for number in [OLD_NUMBER, NEW_NUMBER, EARLY_NUMBER] {
        assert!(
            has_report(&upgraded, number).await,
            "{number} lost in the upgrade"
        );
    }
    assert_eq!(
        old_origin_count(&upgraded).await,
        Some(2),
        "the migration deleted the superseded report"
    );
    upgraded
        .submit(vec![Submission::new(LATER_NUMBER, Kind::Smishing)])
        .await
        .expect("the upgraded node submits");
    eventually("the upgraded node still shares", WAIT, &new, || async {
        has_report(&new, LATER_NUMBER).await
    })
    .await;
    // Converged by catch-up version 2 both ways. (Whether a reconciliation
    // round runs depends on whether gossip delivered everything first: in
    // sync, version 2 is one summary exchange and no round.)
    eventually(
        "both nodes hold the same set, know it, and speak version 2",
        WAIT,
        &new,
        || async {
            let (a, b) = (upgraded.status().await, new.status().await);
            upgraded.set_digest().await.ok() == new.set_digest().await.ok()
                && a.is_ok_and(|s| s.sync_lag == 0)
                && b.is_ok_and(|s| s.sync_lag == 0)
                && spoken(&upgraded, "New").await == Some(2)
                && spoken(&new, "Old").await == Some(2)
        },
    )
    .await;
    drop((upgraded, new));
    cluster.shutdown().await;
}
