//! What sled 0.34 itself costs per entry, by key shape: the bound under the
//! store's disk and memory figures (issue 15, BENCHMARKS.md "What sled
//! costs per tree"). Each variant fills a fresh sled database the way the
//! store fills one of its trees (batches of 256, the store's cache size and
//! mode), then a **fresh process** opens it and reads it, so the RSS is
//! sled's alone: no node, no network, no allocator history.
//!
//! The variants are the store's per-record trees, alone as they are today
//! and as a smaller key layout would make them (member origins as 4-byte
//! integers instead of 32-byte keys, hashes cut to 16 bytes), then all
//! five together, written per batch as separate batches or as the store
//! writes them, in one transaction. Each row prints bytes on disk per
//! record against the record's own key and value bytes (the
//! amplification), and the open process's RSS.
//!
//! ```text
//! cargo bench -p sightline-tests --bench sled_layout                 # 1,000,000 entries each
//! SIGHTLINE_LAYOUT_ENTRIES=100000 cargo bench -p sightline-tests --bench sled_layout
//! cargo bench -p sightline-tests --bench sled_layout -- --quick      # 20,000, for CI
//! ```

// A benchmark harness reads top to bottom, prints, and casts counts to f64.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sled::Transactional;

// Only the store size and RSS readers are shared with the other harnesses.
#[allow(dead_code)]
mod common;

use common::{dir_bytes, rss_kib};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The store's default sled cache (`DEFAULT_CACHE_BYTES`).
const CACHE_BYTES: u64 = sightline_node::store::DEFAULT_CACHE_BYTES;
/// Set in the child process: `variant-index entries dir` (the directory
/// last: it may hold spaces).
const OPEN_ENV: &str = "SIGHTLINE_LAYOUT_OPEN";
/// Point reads the open process times.
const READS: u64 = 200_000;
/// Origins whose records interleave in the append-shaped trees.
const ORIGINS: u64 = 20;

/// One tree of a variant: its name, entry `i`'s key, its value size.
struct Tree {
    name: &'static str,
    key: fn(u64) -> Vec<u8>,
    value: usize,
}

/// How a variant writes its trees per batch.
#[derive(Clone, Copy, PartialEq)]
enum Write {
    /// One `apply_batch` per tree.
    Batches,
    /// One transaction over all the trees, as the store commits a batch.
    Transaction,
}

struct Variant {
    name: &'static str,
    trees: &'static [Tree],
    write: Write,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fill(out: &mut [u8], seed: u64) {
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let r = splitmix(seed ^ (i as u64).wrapping_mul(0x1000_0000_01b3)).to_be_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
}

fn random(i: u64, len: usize) -> Vec<u8> {
    let mut k = vec![0; len];
    fill(&mut k, i);
    k
}

/// Record `i`'s origin, as `len` bytes (20 origins take turns).
fn origin(i: u64, len: usize) -> Vec<u8> {
    random(1_000_000_007 + i % ORIGINS, len)
}

fn seq(i: u64) -> [u8; 8] {
    (i / ORIGINS + 1).to_be_bytes()
}

/// Record `i`'s `last_seen` hour, spread over 30 days as in the node bench.
fn hour(i: u64) -> u64 {
    splitmix(!i) % (30 * 24)
}

/// `current` today: block ‖ number ‖ origin.
fn current(i: u64) -> Vec<u8> {
    random(i, 96)
}

/// `sightings` today: origin ‖ seq.
fn sightings(i: u64) -> Vec<u8> {
    [&origin(i, 32)[..], &seq(i)].concat()
}

/// `sightings` with a 4-byte origin.
fn sightings_small(i: u64) -> Vec<u8> {
    [&origin(i, 4)[..], &seq(i)].concat()
}

/// `arrivals`: the arrival counter.
fn arrivals(i: u64) -> Vec<u8> {
    (i + 1).to_be_bytes().to_vec()
}

/// `purges`: `purge_at` ‖ origin ‖ seq (`purge_at` follows `last_seen`).
fn purges(i: u64) -> Vec<u8> {
    let at = 1_800_000_000 + hour(i) * 3600 + splitmix(i ^ 7) % 3600;
    [&at.to_be_bytes()[..], &origin(i, 32), &seq(i)].concat()
}

/// The limit index's `H` entry: tag ‖ origin ‖ hour ‖ seq.
fn quota(i: u64) -> Vec<u8> {
    [&b"H"[..], &origin(i, 32), &hour(i).to_be_bytes(), &seq(i)].concat()
}

/// `purges` with a 4-byte origin.
fn purges_small(i: u64) -> Vec<u8> {
    let mut k = purges(i);
    k.drain(12..40);
    k
}

/// `H` with a 4-byte origin.
fn quota_small(i: u64) -> Vec<u8> {
    let mut k = quota(i);
    k.drain(5..33);
    k
}

/// `current` with a 4-byte origin (68 B; random like the hashes).
fn current_small(i: u64) -> Vec<u8> {
    random(i, 68)
}

/// `current` with 16-byte hashes and a 4-byte origin (36 B).
fn current_smallest(i: u64) -> Vec<u8> {
    random(i, 36)
}

const fn tree(name: &'static str, key: fn(u64) -> Vec<u8>, value: usize) -> Tree {
    Tree { name, key, value }
}

const CURRENT: Tree = tree("current", current, 60);
const CURRENT_SMALL: Tree = tree("current", current_small, 60);
const CURRENT_SMALLEST: Tree = tree("current", current_smallest, 60);
const SIGHTINGS: Tree = tree("sightings", sightings, 330);
const SIGHTINGS_SMALL: Tree = tree("sightings", sightings_small, 330);
const ARRIVALS: Tree = tree("arrivals", arrivals, 40);
const PURGES: Tree = tree("purges", purges, 8);
const PURGES_SMALL: Tree = tree("purges", purges_small, 8);
const QUOTA: Tree = tree("quota", quota, 40);
const QUOTA_SMALL: Tree = tree("quota", quota_small, 40);

const fn alone(name: &'static str, trees: &'static [Tree]) -> Variant {
    Variant {
        name,
        trees,
        write: Write::Batches,
    }
}

const VARIANTS: [Variant; 12] = [
    alone(
        "`current` today: block ‖ number ‖ origin (96 B), random",
        &[CURRENT],
    ),
    alone(
        "`current`, origin as a 4-byte integer (68 B)",
        &[CURRENT_SMALL],
    ),
    alone(
        "`current`, 16-byte hashes and a 4-byte origin (36 B)",
        &[CURRENT_SMALLEST],
    ),
    alone(
        "`sightings` today: origin ‖ seq (40 B), per-origin appends",
        &[SIGHTINGS],
    ),
    alone(
        "`sightings`, origin as a 4-byte integer (12 B)",
        &[SIGHTINGS_SMALL],
    ),
    alone(
        "`arrivals` today: counter (8 B) → origin ‖ seq, appends",
        &[ARRIVALS],
    ),
    alone(
        "`purges` today: `purge_at` ‖ origin ‖ seq (48 B), 30 days apart",
        &[PURGES],
    ),
    alone(
        "`quota` `H` today: tag ‖ origin ‖ hour ‖ seq (49 B)",
        &[QUOTA],
    ),
    alone(
        "all five in one database, one batch per tree",
        &[SIGHTINGS, CURRENT, ARRIVALS, PURGES, QUOTA],
    ),
    Variant {
        name: "all five in one database, one transaction per batch (the store)",
        trees: &[SIGHTINGS, CURRENT, ARRIVALS, PURGES, QUOTA],
        write: Write::Transaction,
    },
    Variant {
        name: "the five with 4-byte origins, one transaction per batch",
        trees: &[
            SIGHTINGS_SMALL,
            CURRENT_SMALL,
            ARRIVALS,
            PURGES_SMALL,
            QUOTA_SMALL,
        ],
        write: Write::Transaction,
    },
    Variant {
        name: "the floor: the records and the lookup index alone, smallest keys, one transaction per batch",
        trees: &[SIGHTINGS_SMALL, CURRENT_SMALLEST],
        write: Write::Transaction,
    },
];

impl Variant {
    /// Key and value bytes of one record, over all its trees.
    fn logical(&self) -> usize {
        self.trees.iter().map(|t| (t.key)(0).len() + t.value).sum()
    }
}

fn value(i: u64, len: usize) -> Vec<u8> {
    random(!i, len)
}

fn open(dir: &Path) -> sled::Db {
    sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(CACHE_BYTES)
        .open()
        .expect("sled opens")
}

fn rss_mib() -> f64 {
    rss_kib(std::process::id(), "VmRSS:") as f64 / 1024.0
}

/// The child: opens `dir`, prints its RSS, reads, prints again.
fn open_and_read(args: &str) {
    let mut parts = args.splitn(3, ' ');
    let mut next = || parts.next().expect("argument");
    let variant = &VARIANTS[next().parse::<usize>().expect("variant")];
    let entries: u64 = next().parse().expect("entries");
    let dir = next().to_owned();
    let start = Instant::now();
    let db = open(Path::new(&dir));
    let trees: Vec<sled::Tree> = variant
        .trees
        .iter()
        .map(|t| db.open_tree(t.name).expect("tree"))
        .collect();
    let opened = start.elapsed().as_secs_f64();
    let rss_open = rss_mib();
    let start = Instant::now();
    for r in 0..READS {
        let i = splitmix(r) % entries;
        let (tree, shape) = (&trees[0], &variant.trees[0]);
        assert!(
            tree.get((shape.key)(i)).expect("get").is_some(),
            "entry {i}"
        );
    }
    let read_rate = READS as f64 / start.elapsed().as_secs_f64();
    println!("{opened:.2} {rss_open:.0} {:.0} {read_rate:.0}", rss_mib());
}

/// Writes one batch's entries, per tree.
fn write(trees: &[sled::Tree], batch: &[Vec<(Vec<u8>, Vec<u8>)>], how: Write) {
    if how == Write::Batches {
        for (tree, entries) in trees.iter().zip(batch) {
            let mut b = sled::Batch::default();
            for (k, v) in entries {
                b.insert(k.as_slice(), v.as_slice());
            }
            tree.apply_batch(b).expect("batch");
        }
        return;
    }
    let put = |tx: &[&sled::transaction::TransactionalTree]| {
        for (tree, entries) in tx.iter().zip(batch) {
            for (k, v) in entries {
                tree.insert(k.as_slice(), v.as_slice())?;
            }
        }
        Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
    };
    match trees {
        [records, index] => (records, index).transaction(|(r, i)| put(&[r, i])),
        [t0, t1, t2, t3, t4] => {
            (t0, t1, t2, t3, t4).transaction(|(t0, t1, t2, t3, t4)| put(&[t0, t1, t2, t3, t4]))
        }
        _ => panic!("two or five trees"),
    }
    .expect("transaction");
}

fn main() {
    if let Ok(args) = std::env::var(OPEN_ENV) {
        open_and_read(&args);
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let entries: u64 = std::env::var("SIGHTLINE_LAYOUT_ENTRIES")
        .ok()
        .map_or(if quick { 20_000 } else { 1_000_000 }, |v| {
            v.parse().expect("SIGHTLINE_LAYOUT_ENTRIES")
        });
    println!(
        "sled 0.34, {entries} entries per variant, cache {} MiB, batches of 256",
        CACHE_BYTES >> 20
    );
    println!("| layout | a record's keys + values | records/s | on disk per record | amplification | open: s, RSS | RSS after {READS} random reads of the first tree | reads/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (index, variant) in VARIANTS.iter().enumerate() {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = scratch.path().join("db");
        let start = Instant::now();
        {
            let db = open(&dir);
            let trees: Vec<sled::Tree> = variant
                .trees
                .iter()
                .map(|t| db.open_tree(t.name).expect("tree"))
                .collect();
            let mut i = 0;
            while i < entries {
                let batch: Vec<Vec<(Vec<u8>, Vec<u8>)>> = variant
                    .trees
                    .iter()
                    .map(|t| {
                        (i..(i + 256).min(entries))
                            .map(|j| ((t.key)(j), value(j, t.value)))
                            .collect()
                    })
                    .collect();
                write(&trees, &batch, variant.write);
                i += 256;
            }
            db.flush().expect("flush");
        }
        let insert_rate = entries as f64 / start.elapsed().as_secs_f64();
        let disk = dir_bytes(&dir) as f64 / entries as f64;
        let out = Command::new(std::env::current_exe().expect("exe"))
            .env(OPEN_ENV, format!("{index} {entries} {}", dir.display()))
            .output()
            .expect("open process runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8(out.stdout).expect("utf-8");
        let f: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().expect("figure"))
            .collect();
        println!(
            "| {} | {} B | {:.0} | {disk:.0} B | {:.1}× | {:.1} s, {:.0} MiB | {:.0} MiB | {:.0} |",
            variant.name,
            variant.logical(),
            insert_rate,
            disk / variant.logical() as f64,
            f[0],
            f[1],
            f[2],
            f[3]
        );
    }
}
