//! Campaign lookups under a hostile member (issue 16): two unrelated
//! operations reported by trusted organizations, then one member at trust
//! 0.5 plants link tokens on `SIGHTLINE_BENCH_PLANTED` records (default
//! 100,000; four links each: both operations' tokens, a tag of its own and
//! a script) and reports numbers of both operations with both tokens. The
//! bench measures single lookups of the operations' numbers on a real node
//! (sled on disk) before and after, against the 5 ms p99 and the
//! same lookups before the flood, and checks the operations stay apart.
//!
//! `cargo bench -p sightline-tests --bench campaigns` writes its table into
//! BENCHMARKS.md; `-- --quick` plants 10,000 (CI) and writes nothing.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sightline_node::store::{Limits, Store};
use sightline_node::NodeHandle;
use sightline_protocol::{
    parse_number, Channel, HashKey, Kind, Link, LinkInput, NetworkId, Sighting, SignedSighting,
    SigningKey, Verdict, E164,
};
use sightline_tests::{Cluster, Options};

#[allow(dead_code)] // the helpers the other harness uses
mod common;
use common::fmt_rate;

/// The bound on a lookup's p99 under the flood.
const P99_LIMIT: Duration = Duration::from_millis(5);
/// Numbers per operation.
const OPERATION: usize = 20;
/// Lookups timed per phase.
const SAMPLES: usize = 4_000;

fn e164(i: usize) -> E164 {
    // Distinct numbers, each operation's in distinct 100-blocks:
    // +1 212 EEE LL17 for the first 70,000, then +1 646 EEE LLLL.
    let exchanges: Vec<usize> = (200..1000).filter(|e| e % 100 != 11).collect();
    let text = if i < 70_000 {
        format!("+1212{:03}{:02}17", exchanges[i / 100], i % 100)
    } else {
        let j = i - 70_000;
        format!(
            "+1646{:03}{:04}",
            exchanges[j / 10_000 % exchanges.len()],
            j % 10_000
        )
    };
    parse_number(&text, None).expect("valid").e164
}

struct Signer<'a> {
    key: &'a SigningKey,
    network: &'a NetworkId,
    hash: &'a HashKey,
    now: u64,
}

impl Signer<'_> {
    fn record(&self, seq: u64, number: &E164, links: Vec<Link>) -> SignedSighting {
        let parsed = parse_number(number.as_str(), None).expect("valid");
        let mut all = LinkInput::default()
            .tokens(self.hash, number)
            .expect("block1000");
        all.extend(links);
        all.sort();
        all.dedup();
        Sighting {
            network: self.network.clone(),
            origin: self.key.origin(),
            seq,
            number: self.hash.number_hash(number),
            block: self.hash.block_hash(number),
            cc: parsed.country_code,
            line: parsed.line,
            kind: Kind::Smishing,
            verdict: Verdict::Malicious,
            channel: Channel::Sms,
            brand: Some("Example Parcel".into()),
            confidence: 90,
            count: 1,
            first_seen: self.now - 3_600,
            last_seen: self.now - 60,
            expires: None,
            links: Some(all),
            role: None,
        }
        .sign(self.key)
        .expect("valid")
    }
}

fn token(hash: &HashKey, number: &E164, input: &LinkInput) -> Link {
    *input
        .tokens(hash, number)
        .expect("token")
        .iter()
        .find(|l| !matches!(l, Link::Block1000(_)))
        .expect("one token")
}

fn insert(store_dir: &std::path::Path, records: &[SignedSighting]) {
    let store = Store::open(store_dir).expect("store");
    store.set_limits(Limits::unlimited());
    for chunk in records.chunks(1000) {
        let batch: Vec<(&SignedSighting, u64)> = chunk.iter().map(|r| (r, u64::MAX)).collect();
        store.insert_batch(&batch).expect("insert");
    }
    store.flush().expect("flush");
}

/// p50 and p99 of single lookups of `numbers`, round robin.
async fn lookups(node: &NodeHandle, numbers: &[String]) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let start = Instant::now();
        let l = node
            .lookup(&numbers[i % numbers.len()], None)
            .await
            .expect("lookup");
        took.push(start.elapsed());
        std::hint::black_box(l);
    }
    took.sort();
    (took[SAMPLES / 2], took[SAMPLES * 99 / 100])
}

struct Seen {
    ids: Vec<String>,
    sizes: Vec<usize>,
    planted_campaigns: usize,
}

async fn campaigns(node: &NodeHandle, a: &[String], b: &[String], planted: &[String]) -> Seen {
    let mut seen = Seen {
        ids: Vec::new(),
        sizes: Vec::new(),
        planted_campaigns: 0,
    };
    for group in [a, b] {
        let l = node.lookup(&group[0], None).await.expect("lookup");
        let c = l.campaign.expect("the operation is a campaign");
        seen.ids.push(c.id);
        seen.sizes.push(c.numbers);
    }
    for n in planted.iter().take(50) {
        if node
            .lookup(n, None)
            .await
            .expect("lookup")
            .campaign
            .is_some()
        {
            seen.planted_campaigns += 1;
        }
    }
    seen
}

#[allow(clippy::too_many_lines)]
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let planted: usize = if quick {
        10_000
    } else {
        std::env::var("SIGHTLINE_BENCH_PLANTED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    };
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-campaigns");
    let _ = std::fs::remove_dir_all(&bench_dir);
    std::fs::create_dir_all(&bench_dir).expect("bench dir");
    let mut cluster = Cluster::build_in(
        &bench_dir,
        &[
            ("Node", 1.0),
            ("Bank", 0.9),
            ("Carrier", 0.8),
            ("CERT", 0.7),
            ("Mallory", 0.5),
        ],
        &Options {
            record_version: 2,
            sync_interval: Duration::from_secs(3600),
            limits: Limits::unlimited(),
            ..Options::default()
        },
    );
    let config = cluster.config(0);
    let store_dir = config.data_dir.join("store");
    let network = config.network.id.clone();
    let hash = config.network.hash_key.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let keys: Vec<SigningKey> = cluster.members[1..]
        .iter()
        .map(|m| SigningKey::from_seed(&m.seed))
        .collect();
    let signer = |i: usize| Signer {
        key: &keys[i],
        network: &network,
        hash: &hash,
        now,
    };
    let (bank, carrier, cert, mallory) = (signer(0), signer(1), signer(2), signer(3));

    // Operation A: a link domain, half the numbers by the bank, half by the
    // carrier. Operation B: a sender, by the CERT.
    let a_numbers: Vec<E164> = (0..OPERATION).map(e164).collect();
    let b_numbers: Vec<E164> = (OPERATION..2 * OPERATION).map(e164).collect();
    let domain = token(
        &hash,
        &a_numbers[0],
        &LinkInput {
            urls: vec!["https://parcel-fee.example.com/p".into()],
            ..LinkInput::default()
        },
    );
    let sender = token(
        &hash,
        &b_numbers[0],
        &LinkInput {
            sender: Some("72723".into()),
            ..LinkInput::default()
        },
    );
    let mut honest = Vec::new();
    for (i, n) in a_numbers.iter().enumerate() {
        let by = if i % 2 == 0 { &bank } else { &carrier };
        honest.push(by.record(i as u64 + 1, n, vec![domain]));
    }
    for (i, n) in b_numbers.iter().enumerate() {
        honest.push(cert.record(i as u64 + 1, n, vec![sender]));
    }
    insert(&store_dir, &honest);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let text = |ns: &[E164]| -> Vec<String> { ns.iter().map(|n| n.as_str().to_owned()).collect() };
    let (a_text, b_text) = (text(&a_numbers), text(&b_numbers));
    let both: Vec<String> = a_text.iter().chain(&b_text).cloned().collect();
    let (before, seen_before) = runtime.block_on(async {
        let node = cluster.start(0).await;
        let _ = lookups(&node, &both).await; // warm
        let timed = lookups(&node, &both).await;
        let seen = campaigns(&node, &a_text, &b_text, &[]).await;
        cluster.shutdown().await;
        (timed, seen)
    });
    assert_eq!(seen_before.sizes, [OPERATION, OPERATION]);

    // The flood: the member at 0.5 carries both operations' tokens, a tag
    // and a script on every planted record, and on numbers of both.
    let tag = Link::Campaign([0x66; 32]);
    let started = Instant::now();
    let planted_numbers: Vec<E164> = (100..100 + planted).map(e164).collect();
    let mut flood: Vec<SignedSighting> = planted_numbers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            mallory.record(
                i as u64 + 1,
                n,
                vec![domain, sender, tag, Link::Script(i as u64 * 0x9e37_79b9)],
            )
        })
        .collect();
    for (j, n) in a_numbers
        .iter()
        .take(5)
        .chain(b_numbers.iter().take(5))
        .enumerate()
    {
        flood.push(mallory.record((planted + j) as u64 + 1, n, vec![domain, sender, tag]));
    }
    let links: usize = flood
        .iter()
        .map(|r| r.sighting().links.as_ref().map_or(0, Vec::len))
        .sum();
    insert(&store_dir, &flood);
    println!(
        "planted {} records with {} links in {:.1} s",
        fmt_rate(flood.len() as f64),
        fmt_rate(links as f64),
        started.elapsed().as_secs_f64()
    );
    let planted_text = text(&planted_numbers);
    let (after, planted_lookups, seen_after) = runtime.block_on(async {
        let node = cluster.start(0).await;
        let _ = lookups(&node, &both).await;
        let timed = lookups(&node, &both).await;
        let planted_timed = lookups(&node, &planted_text).await;
        let seen = campaigns(&node, &a_text, &b_text, &planted_text).await;
        cluster.shutdown().await;
        (timed, planted_timed, seen)
    });
    // Not merged, not grown, not renamed; the member links nothing.
    assert_eq!(
        seen_after.sizes,
        [OPERATION, OPERATION],
        "operations stayed apart"
    );
    assert_ne!(seen_after.ids[0], seen_after.ids[1]);
    assert_eq!(seen_after.ids, seen_before.ids, "same names");
    assert_eq!(seen_after.planted_campaigns, 0);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rows = [
        ("operations' numbers, before the flood", before),
        ("operations' numbers, after the flood", after),
        ("the member's planted numbers", planted_lookups),
    ];
    let mut table = String::from("| single lookups (in process, 2 workers) | p50 | p99 | p99 / 5 ms limit |\n|---|---|---|---|\n");
    for (what, (p50, p99)) in rows {
        let line = format!(
            "| {what} | {:.3} ms | {:.3} ms | {:.2}x |\n",
            ms(p50),
            ms(p99),
            ms(p99) / ms(P99_LIMIT)
        );
        table.push_str(&line);
    }
    let summary = format!(
        "\n{} planted records ({} links) by a member at trust 0.5; p99 after / before: {:.2}x. Both operations kept {OPERATION} numbers and their ids; the member's {} planted numbers are in no campaign.\n",
        fmt_rate(flood.len() as f64),
        fmt_rate(links as f64),
        ms(after.1) / ms(before.1),
        fmt_rate(planted as f64),
    );
    print!("{table}{summary}");
    if !quick {
        write_section(&format!("{table}{summary}"));
    }
    let _ = std::fs::remove_dir_all(&bench_dir);
}

fn write_section(table: &str) {
    let (begin, end) = (
        "<!-- campaign-bench:begin -->",
        "<!-- campaign-bench:end -->",
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).expect("BENCHMARKS.md");
    let (Some(a), Some(b)) = (text.find(begin), text.find(end)) else {
        println!("BENCHMARKS.md has no {begin} … {end} section; not written");
        return;
    };
    std::fs::write(
        &path,
        format!("{}{begin}\n{table}{}", &text[..a], &text[b..]),
    )
    .expect("write BENCHMARKS.md");
    println!("wrote the table into {}", path.display());
}
