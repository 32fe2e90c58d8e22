//! What catch-up would cost as range-based set reconciliation of the
//! current reports (negentropy, the protocol Nostr relays use; issue 15)
//! instead of today's per-origin seq watermark. Both sides run in this
//! process, on sets shaped like a community's reports: rounds, bytes each
//! way and CPU time, against what any catch-up must spend anyway —
//! verifying the records that differ, at the raw `verify_strict` rate
//! measured in the same run.
//!
//! ```text
//! cargo bench -p sightline-tests --bench reconcile            # 1,000,000 reports
//! cargo bench -p sightline-tests --bench reconcile -- --quick # 20,000, for CI
//! ```

// A benchmark harness reads top to bottom, prints, and casts counts to f64.
#![allow(clippy::too_many_lines, clippy::cast_precision_loss)]

mod common;

use std::time::Instant;

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sha2::{Digest, Sha256};

use common::{fmt_rate, raw_verify_rate};

const DAY: u64 = 86_400;
const NOW: u64 = 1_800_000_000;
/// Largest message either side sends: a catch-up answer's size.
const FRAME: u64 = 256 * 1024;

/// A report's reconciliation item: (`last_seen`, record id).
type Item = (u64, [u8; 32]);

fn id(i: u64) -> [u8; 32] {
    Sha256::digest(i.to_be_bytes()).into()
}

fn spread(id: &[u8; 32], span: u64) -> u64 {
    u64::from_be_bytes(id[..8].try_into().expect("8 bytes")) % span
}

/// Report `i` of the common history: seen over the 89 days before yesterday.
fn old(i: u64) -> Item {
    let id = id(i);
    (NOW - 90 * DAY + spread(&id, 89 * DAY), id)
}

/// Report `i` made during the last day (a partition, a node that was down).
fn recent(i: u64) -> Item {
    let id = id(i);
    (NOW - DAY + spread(&id, DAY), id)
}

fn storage(items: impl Iterator<Item = Item>) -> NegentropyStorageVector {
    let mut s = NegentropyStorageVector::new();
    for (t, id) in items {
        s.insert(t, Id::from_byte_array(id)).expect("insert");
    }
    s.seal().expect("seal");
    s
}

struct Outcome {
    rounds: usize,
    up: usize,
    down: usize,
    secs: f64,
    have: usize,
    need: usize,
}

/// Runs the protocol from `client` (the node catching up) to `server`.
fn reconcile(client: &NegentropyStorageVector, server: &NegentropyStorageVector) -> Outcome {
    let start = Instant::now();
    let mut c = Negentropy::borrowed(client, FRAME).expect("client");
    let mut s = Negentropy::borrowed(server, FRAME).expect("server");
    let (mut have, mut need) = (Vec::new(), Vec::new());
    let (mut up, mut down, mut rounds) = (0, 0, 0);
    let mut message = c.initiate().expect("initiate");
    loop {
        rounds += 1;
        up += message.len();
        let answer = s.reconcile(&message).expect("server reconcile");
        down += answer.len();
        match c
            .reconcile_with_ids(&answer, &mut have, &mut need)
            .expect("client reconcile")
        {
            Some(next) => message = next,
            None => break,
        }
    }
    Outcome {
        rounds,
        up,
        down,
        secs: start.elapsed().as_secs_f64(),
        have: have.len(),
        need: need.len(),
    }
}

/// A count as people read it (a rate's separators, no decimals).
fn count(n: usize) -> String {
    if n < 100 {
        n.to_string()
    } else {
        fmt_rate(n as f64)
    }
}

fn size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 20_000 } else { 1_000_000 };
    let verify = raw_verify_rate(if quick { 0.2 } else { 2.0 });
    println!(
        "sightline reconciliation benchmark ({}): {} current reports per node, frames ≤ {} KiB",
        if quick { "quick" } else { "full" },
        fmt_rate(n as f64),
        FRAME / 1024
    );
    println!("limit: raw verify_strict {} /s (1 core)", fmt_rate(verify));

    let start = Instant::now();
    let base = storage((0..n).map(old));
    let build = start.elapsed().as_secs_f64();
    println!(
        "building one side's index: {} items/s ({} items of 40 bytes = {:.0} MiB)",
        fmt_rate(n as f64 / build),
        fmt_rate(n as f64),
        (n * 40) as f64 / (1024.0 * 1024.0)
    );

    let d = n / 10;
    let missed = n / 100;
    let scenarios: Vec<(
        String,
        NegentropyStorageVector,
        NegentropyStorageVector,
        usize,
    )> = vec![
        (
            "in sync".into(),
            storage((0..n).map(old)),
            storage((0..n).map(old)),
            0,
        ),
        (
            format!("missed the last day's {} reports", fmt_rate(missed as f64)),
            storage((0..n).map(old)),
            storage((0..n).map(old).chain((n..n + missed).map(recent))),
            usize::try_from(missed).expect("fits"),
        ),
        (
            format!("partition: {} new reports on each side", fmt_rate(d as f64)),
            storage((0..n).map(old).chain((n..n + d).map(recent))),
            storage((0..n).map(old).chain((2 * n..2 * n + d).map(recent))),
            usize::try_from(2 * d).expect("fits"),
        ),
        (
            format!(
                "{} gaps scattered over the history",
                fmt_rate(missed as f64)
            ),
            storage((0..n).filter(|i| i % 100 != 7).map(old)),
            storage((0..n).map(old)),
            usize::try_from(missed).expect("fits"),
        ),
    ];
    drop(base);
    println!();
    println!("| scenario | rounds | bytes up / down | differences found | CPU (both sides) | verifying the differences at the raw rate | ratio |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for (name, client, server, expected) in &scenarios {
        let o = reconcile(client, server);
        assert_eq!(o.have + o.need, *expected, "{name}: wrong differences");
        let verify_secs = *expected as f64 / verify;
        let ratio = if *expected == 0 {
            "—".to_owned()
        } else {
            format!("{:.2}", o.secs / verify_secs)
        };
        println!(
            "| {name} | {} | {} / {} | {} | {:.1} ms | {:.1} ms | {ratio} |",
            o.rounds,
            size(o.up),
            size(o.down),
            count(o.have + o.need),
            o.secs * 1000.0,
            verify_secs * 1000.0,
        );
    }
}
