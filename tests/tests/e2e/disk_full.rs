//! A full disk: the node refuses what it cannot store (503, nothing
//! acknowledged), says so in `/healthz`, status and `/metrics`, and
//! recovers by itself once space is back. The store lives on a small tmpfs
//! mounted for the test (needs root, as the network-namespace test does).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sightline_node::{Submission, SystemClock};
use sightline_protocol::Kind;
use sightline_tests::{eventually, Cluster, Web, WRITE_TOKEN};

use super::{has_report, WAIT};

/// A tmpfs mounted at a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (the disk-full test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.dir)
            .status();
    }
}

/// Fills the file system holding `path` until a write fails.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn submit(&self, number: &str) -> (u16, Option<String>, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1/sightings", self.base))
            .bearer_auth(WRITE_TOKEN)
            .json(&json!({ "number": number, "kind": "smishing" }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(WRITE_TOKEN)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
            .parse()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "system test, needs root to mount a small tmpfs; bash scripts/test.sh runs it (or: cargo test -- --include-ignored)"]
async fn a_full_disk_refuses_writes_reports_itself_and_recovers_when_space_returns() {
    let mut cluster = Cluster::new(&[("Bank", 0.8), ("Carrier", 0.6)]);
    let disk = Tmpfs::mount(&cluster.dir.path().join("disk"), "24m");
    let mut config = cluster.config(0);
    config.data_dir = disk.dir.join("data");
    let bank = sightline_node::start(config, Arc::new(SystemClock))
        .await
        .unwrap();
    let carrier = cluster.start(1).await;
    eventually("connected", WAIT, &bank, || async {
        bank.peers().await.iter().any(|p| p.connected)
    })
    .await;
    let web = Web::start(&bank).await;
    let http = Http {
        base: format!("http://{}", web.addr),
        client: reqwest::Client::new(),
    };
    assert_eq!(http.get("/healthz").await.0, 200);
    let mut acknowledged = Vec::new();
    let mut max_seq = 0;
    let (status, _, receipt) = http.submit("+1 415 555 1000").await;
    assert_eq!(status, 201, "{receipt}");
    acknowledged.push("+1 415 555 1000".to_owned());

    // Fill the disk, then submit until the store cannot write.
    let filler = disk.dir.join("filler");
    fill(&filler);
    let mut refused = None;
    for i in 1..2000 {
        let number = format!("+1 415 555 {:04}", 1000 + i);
        let (status, retry, body) = http.submit(&number).await;
        match status {
            201 => {
                max_seq = max_seq.max(body["receipts"][0]["seq"].as_u64().unwrap_or(0));
                acknowledged.push(number);
            }
            503 => {
                assert_eq!(body["error"], "store_unavailable", "{body}");
                assert!(
                    body["detail"]
                        .as_str()
                        .unwrap()
                        .contains("nothing was stored"),
                    "{body}"
                );
                assert_eq!(retry.as_deref(), Some("10"));
                refused = Some(number);
                break;
            }
            other => panic!("submit answered {other}: {body}"),
        }
    }
    let refused = refused.expect("the full disk refused a submission");

    // The node says so everywhere, and keeps refusing while the disk is full.
    let (code, text) = http.get("/healthz").await;
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("store unavailable"), "{text}");
    assert!(http.metric("sightline_store_healthy").await < 0.5);
    assert!(http.metric("sightline_store_errors_total").await >= 1.0);
    let status = bank.status().await.unwrap();
    assert!(!status.store.healthy);
    assert!(status.store.last_error.is_some());
    let (code, _, _) = http.submit("+1 415 555 2999").await;
    assert_eq!(code, 503);
    // Lookups still answer from what is stored.
    assert!(has_report(&bank, "+1 415 555 1000").await);
    // A peer's record arriving now cannot be stored: it is not kept (and
    // not acknowledged to gossip as stored) ...
    carrier
        .submit(vec![Submission::new("+1 415 555 3000", Kind::Vishing)])
        .await
        .unwrap();
    eventually("the peer's record is refused", WAIT, &bank, || async {
        bank.status()
            .await
            .is_ok_and(|s| s.rejected.get("store_unavailable").copied().unwrap_or(0) >= 1)
    })
    .await;
    // Still down a few seconds later: nothing recovers while the disk is full.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(http.get("/healthz").await.0, 503);

    // Space comes back: the node reopens its store by itself.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    while http.get("/healthz").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node did not recover within 60 s of space returning"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered_in = started.elapsed();
    assert!(http.metric("sightline_store_reopens_total").await >= 1.0);
    assert!(http.metric("sightline_store_healthy").await > 0.5);
    // Everything acknowledged survived; new submissions work and never
    // reuse a sequence number.
    for number in &acknowledged {
        assert!(
            has_report(&bank, number).await,
            "{number} was acknowledged but lost"
        );
    }
    let (status, _, body) = http.submit(&refused).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["receipts"][0]["seq"].as_u64().unwrap() > max_seq);
    // ... and catch-up brings the peer's record the full disk refused.
    eventually(
        "the refused peer record arrives by catch-up",
        WAIT,
        &bank,
        || has_report(&bank, "+1 415 555 3000"),
    )
    .await;
    println!(
        "acknowledged {} before the disk filled; recovered {:.1} s after space returned",
        acknowledged.len(),
        recovered_in.as_secs_f64()
    );
    web.stop().await;
    bank.shutdown().await;
    cluster.shutdown().await;
    drop(bank);
}
