//! Node-level benchmarks: every row is a ratio against a limit measured in
//! the same run on the same machine, so figures from noisy shared machines
//! stay comparable (BENCHMARKS.md).
//!
//! ```sh
//! cargo bench -p sightline-tests --bench node            # full: 1M records, writes BENCHMARKS.md
//! cargo bench -p sightline-tests --bench node -- --quick # small, for CI (figures not judged)
//! cargo bench -p sightline-tests --bench node -- --scale # 10M current reports (SIGHTLINE_BENCH_SCALE)
//! cargo bench -p sightline-tests --bench node -- --scale --quick # its 20,000-report check, for CI
//! ```
//!
//! Load is real signed sightings from several member origins, generated in
//! this run. The ingest stage, the store, the web server and the libp2p
//! swarms are the node's own code, started for real: lookups go over
//! loopback HTTP to a separate server process (so its memory can be
//! measured), propagation and catch-up over libp2p TCP between nodes.
//!
//! For profiling: `SIGHTLINE_BENCH_STOP_AFTER=ingest|partition|footprint`
//! stops after that row (printing the rows so far, not writing them); `SIGHTLINE_BENCH_RECORDS=N` changes the store size;
//! `SIGHTLINE_BENCH_CACHE_MIB=N` sets the nodes' `store_cache_mib`.

// A benchmark harness reads top to bottom, prints, and casts counts to f64.
#![allow(
    clippy::too_many_lines,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::print_stdout
)]

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sightline_node::pipeline::{IngestPipeline, Ingestor, INGEST_BATCH};
use sightline_node::{NodeConfig, NodeHandle, Submission, SystemClock};
use sightline_protocol::{
    parse_number, BlockHash, Channel, HashKey, Kind, LineType, NetworkId, NumberHash, Sighting,
    SigningKey, Verdict,
};
use sightline_tests::{Cluster, Options, READ_TOKEN, WRITE_TOKEN};

use common::{dir_bytes, fmt_rate, rate, raw_verify_rate, rss_kib};

/// The `sightline` binary's allocator, so the server process this harness
/// re-runs itself as measures what operators run.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Environment variable that turns this binary into the lookup server.
const SERVE_ENV: &str = "SIGHTLINE_BENCH_SERVE";
/// Number of member origins whose records make the load.
const ORIGINS: usize = 8;
/// Nodes in the data cluster: 0 serves lookups, 1 is the catch-up source,
/// 2 rejoins.
const NODES: usize = 3;
/// Sightings per API submission in the submit row.
const SUBMIT_BATCH: usize = 100;

#[derive(Clone, Copy)]
struct Scale {
    quick: bool,
    store: usize,
    ingest: usize,
    catch_up: usize,
    /// Reports each side of the partition row takes while apart.
    partition: usize,
    http_secs: f64,
    clients: usize,
    bulk_batches: usize,
    submit_secs: f64,
    propagation_nodes: usize,
    propagation_records: usize,
    limit_secs: f64,
}

impl Scale {
    fn new(quick: bool) -> Self {
        if quick {
            Scale {
                quick,
                store: 20_000,
                ingest: 5_000,
                catch_up: 5_000,
                partition: 2_000,
                http_secs: 1.0,
                clients: 8,
                bulk_batches: 3,
                submit_secs: 1.0,
                propagation_nodes: 4,
                propagation_records: 50,
                limit_secs: 0.3,
            }
        } else {
            Scale {
                quick,
                store: 1_000_000,
                ingest: 100_000,
                catch_up: 100_000,
                partition: 100_000,
                http_secs: 8.0,
                clients: 8,
                bulk_batches: 30,
                submit_secs: 8.0,
                propagation_nodes: 10,
                propagation_records: 1_000,
                limit_secs: 2.0,
            }
        }
    }
}

/// One row of the result table.
struct Row {
    name: &'static str,
    measured: String,
    limit: String,
    ratio: Option<f64>,
    target: &'static str,
    met: Option<bool>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A tiny deterministic generator (xorshift), so runs load the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A phone number as a record carries it (hashes plus metadata), with the
/// E.164 string clients send.
#[derive(Clone)]
struct Number {
    e164: String,
    hash: NumberHash,
    block: BlockHash,
    cc: u16,
    line: LineType,
}

/// `n` distinct valid numbers across several US area codes, parsed by the
/// node's own parser.
fn number_pool(n: usize, key: &HashKey) -> Vec<Number> {
    const AREAS: [u32; 12] = [212, 213, 305, 312, 415, 503, 617, 646, 702, 713, 917, 206];
    let mut pool = Vec::with_capacity(n);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::HashSet::new();
    while pool.len() < n {
        let area = AREAS[rng.below(AREAS.len())];
        let exchange = 200 + rng.below(800) as u32;
        let line = rng.below(10_000) as u32;
        let text = format!("+1{area}{exchange}{line:04}");
        if !seen.insert(text.clone()) {
            continue;
        }
        if let Ok(parsed) = parse_number(&text, None) {
            pool.push(Number {
                e164: parsed.e164.as_str().to_owned(),
                hash: key.number_hash(&parsed.e164),
                block: key.block_hash(&parsed.e164),
                cc: parsed.country_code,
                line: parsed.line,
            });
        }
    }
    pool
}

/// What an origin reports under a seq: a number per seq, distinct within
/// the origin (a second report of a number would replace the first, SPEC
/// §12.1); origins overlap, as members report the same numbers.
fn distinct(origin: usize, seq: u64) -> (usize, Option<Verdict>) {
    (origin * 7919 + seq as usize, None)
}

/// The `--scale` load: in every 13 seqs of an origin, 10 report new
/// numbers and 3 report again numbers the origin reported earlier (so 30%
/// of its first reports end superseded), one re-report in 6 a withdrawal
/// (5% of the current reports are withdrawn).
fn superseding(origin: usize, seq: u64) -> (usize, Option<Verdict>) {
    let (block, slot) = ((seq - 1) / 13, (seq - 1) % 13);
    if slot < 10 {
        (origin * 7919 + (10 * block + slot) as usize, None)
    } else {
        let first = 3 * block + (slot - 10);
        let verdict = if first % 6 == 0 {
            Verdict::Withdrawn
        } else {
            Verdict::Malicious
        };
        (origin * 7919 + first as usize, Some(verdict))
    }
}

/// Signs `count` records per origin for seqs `first..first+count`, numbers
/// drawn from the pool by [`distinct`]; interleaved by origin as gossip
/// would deliver them.
fn generate(
    origins: &[SigningKey],
    network: &NetworkId,
    pool: &[Number],
    first: u64,
    count: u64,
) -> Vec<Vec<u8>> {
    generate_with(origins, network, pool, first, count, distinct)
}

/// [`generate`], with the pool index (and a re-report's verdict) of each
/// origin's seq from `pattern`.
fn generate_with(
    origins: &[SigningKey],
    network: &NetworkId,
    pool: &[Number],
    first: u64,
    count: u64,
    pattern: fn(usize, u64) -> (usize, Option<Verdict>),
) -> Vec<Vec<u8>> {
    let now = now_secs();
    let kinds = [Kind::Smishing, Kind::Vishing, Kind::Callback, Kind::Bec];
    let per_origin = |(o, key): (usize, &SigningKey)| -> Vec<Vec<u8>> {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((o as u64 + 1) << 32) ^ first);
        (first..first + count)
            .map(|seq| {
                let (index, again) = pattern(o, seq);
                let number = &pool[index % pool.len()];
                // A re-report is newer than what it replaces.
                let age = rng.below(30 * 86_400) as u64 / if again.is_some() { 4 } else { 1 };
                let sighting = Sighting {
                    network: network.clone(),
                    origin: key.origin(),
                    seq,
                    number: number.hash,
                    block: number.block,
                    cc: number.cc,
                    line: number.line,
                    kind: kinds[rng.below(kinds.len())],
                    verdict: again.unwrap_or(if rng.below(20) == 0 {
                        Verdict::FalsePositive
                    } else {
                        Verdict::Malicious
                    }),
                    channel: Channel::Sms,
                    brand: (rng.below(3) == 0).then(|| "Example Parcel".to_owned()),
                    confidence: 50 + rng.below(51) as u8,
                    count: 1 + rng.below(20) as u32,
                    first_seen: now - age - 3600,
                    last_seen: now - age,
                    expires: None,
                    links: None,
                    role: None,
                };
                sighting.sign(key).expect("valid").as_bytes().to_vec()
            })
            .collect()
    };
    // Both cores sign; the generation is not timed.
    let lists: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
        let half = origins.len().div_ceil(2);
        let signers: Vec<_> = origins
            .chunks(half)
            .enumerate()
            .map(|(c, chunk)| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, key)| per_origin((c * half + i, key)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        signers
            .into_iter()
            .flat_map(|t| t.join().expect("signer"))
            .collect()
    });
    let mut out = Vec::with_capacity(lists.len() * count as usize);
    for i in 0..count as usize {
        for list in &lists {
            out.push(list[i].clone());
        }
    }
    out
}

/// Raw phonenumber parse + validate rate (single core), on the pool's numbers.
fn raw_parse_rate(secs: f64, pool: &[Number]) -> f64 {
    let mut i = 0;
    rate(secs, || {
        for _ in 0..64 {
            let n = phonenumber::parse(None, &pool[i % pool.len()].e164).expect("parses");
            assert!(phonenumber::is_valid(&n));
            i += 1;
        }
        64
    })
}

/// Raw sled rate of inserting `batch` record-sized values then flushing, in
/// batches per second, on the same file system as the node's store.
fn raw_sled_batch_rate(dir: &Path, secs: f64, batch: usize) -> f64 {
    let db = sled::Config::new()
        .path(dir.join("raw-sled"))
        .mode(sled::Mode::HighThroughput)
        .open()
        .expect("sled opens");
    let mut rng = Rng(42);
    let value = vec![0x5au8; 330];
    rate(secs, || {
        for _ in 0..batch {
            let key = rng.next().to_be_bytes();
            db.insert(key, value.as_slice()).expect("insert");
        }
        db.flush().expect("flush");
        1
    })
}

/// Feeds records to the node's two-stage ingest pipeline in its batch
/// size, as its ingest task does under load; returns the time taken and how
/// many were stored.
fn ingest(
    runtime: &tokio::runtime::Runtime,
    ingestor: &Ingestor,
    records: &[Vec<u8>],
) -> (Duration, usize) {
    runtime.block_on(async {
        let mut pipeline = IngestPipeline::new(ingestor.clone());
        let start = Instant::now();
        let mut stored = 0;
        let count = |results: Option<Vec<Result<(), _>>>| {
            results.map_or(0, |r| r.iter().filter(|r| r.is_ok()).count())
        };
        for batch in records.chunks(INGEST_BATCH) {
            stored += count(pipeline.push(batch.to_vec()).await);
        }
        stored += count(pipeline.finish().await);
        (start.elapsed(), stored)
    })
}

/// The two ingest stages one after the other on one core, into a scratch
/// store: what bounds the pipeline, which overlaps them on two cores.
/// Returns (check rate, store rate) in records/s.
fn ingest_stages(config: &NodeConfig, bench_dir: &Path, records: &[Vec<u8>]) -> (f64, f64) {
    let mut config = config.clone();
    config.data_dir = bench_dir.join("ingest-stages");
    let _ = std::fs::remove_dir_all(&config.data_dir);
    let ingestor = Ingestor::open(&config, Arc::new(SystemClock)).expect("ingestor");
    let start = Instant::now();
    let checked: Vec<_> = records
        .chunks(INGEST_BATCH)
        .map(|batch| ingestor.check(batch))
        .collect();
    let check_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let stored: usize = checked
        .into_iter()
        .map(|c| ingestor.commit(c).iter().filter(|r| r.is_ok()).count())
        .sum();
    let store_secs = start.elapsed().as_secs_f64();
    assert_eq!(stored, records.len(), "every record is stored");
    drop(ingestor);
    let _ = std::fs::remove_dir_all(&config.data_dir);
    let n = records.len() as f64;
    (n / check_secs, n / store_secs)
}

/// The lookup server: this binary re-run with [`SERVE_ENV`] set to a
/// node config. Prints its web address, serves until stdin closes.
fn serve(config: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config = NodeConfig::load(Path::new(config)).expect("config");
        let node = sightline_node::start(config, Arc::new(SystemClock))
            .await
            .expect("node starts");
        let web = sightline_tests::Web::start(&node).await;
        println!("{}", web.addr);
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await
        .expect("stdin");
        web.stop().await;
        node.shutdown().await;
    });
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env(SERVE_ENV, config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout")),
            &mut line,
        )
        .expect("server prints its address");
        Server {
            child,
            addr: format!("http://{}", line.trim()),
        }
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Latencies in microseconds and the request rate of `clients` concurrent
/// keep-alive clients running `request` for `secs`.
async fn load<F, Fut>(clients: usize, secs: f64, request: F) -> (f64, Vec<u64>)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                request(c, i).await;
                latencies.push(t.elapsed().as_micros() as u64);
                i += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    (all.len() as f64 / elapsed, all)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// What the lookup server answered ([`http_load`]).
struct Served {
    /// `/healthz` per second: the limit of single lookups.
    health: f64,
    /// Single lookups per second.
    lookups: f64,
    p50: f64,
    p99: f64,
    /// Numbers per second in bulk lookups.
    bulk: f64,
    /// Bulk answers with reports.
    hits: usize,
}

impl Served {
    fn print(&self) {
        println!(
            "lookup: {} /s (p50 {:.2} ms, p99 {:.2} ms); healthz {} /s; bulk {} numbers/s ({} with reports)",
            fmt_rate(self.lookups),
            self.p50,
            self.p99,
            fmt_rate(self.health),
            fmt_rate(self.bulk),
            self.hits
        );
    }

    /// The lookup and bulk rows, named `names`; `stored` says what the
    /// server held.
    fn rows(
        &self,
        names: [&'static str; 2],
        stored: &str,
        clients: usize,
        parse_limit: f64,
    ) -> [Row; 2] {
        [
            Row {
                name: names[0],
                measured: format!(
                    "{} lookups/s from {clients} clients, p50 {:.2} ms, p99 {:.2} ms ({stored})",
                    fmt_rate(self.lookups),
                    self.p50,
                    self.p99
                ),
                limit: format!(
                    "`/healthz` on the same server and load: {} /s",
                    fmt_rate(self.health)
                ),
                ratio: Some(self.lookups / self.health),
                target: "≥ 0.5, p99 < 5 ms",
                met: Some(self.lookups / self.health >= 0.5 && self.p99 < 5.0),
            },
            Row {
                name: names[1],
                measured: format!(
                    "{} numbers/s in batches of 1,000 (2 clients)",
                    fmt_rate(self.bulk)
                ),
                limit: format!(
                    "raw phonenumber parse + validate, 1 core: {} /s",
                    fmt_rate(parse_limit)
                ),
                ratio: Some(self.bulk / parse_limit),
                target: "≥ 0.4",
                met: Some(self.bulk / parse_limit >= 0.4),
            },
        ]
    }
}

/// `/healthz`, then single lookups, from `scale.clients` keep-alive clients
/// for `scale.http_secs` each, then bulk lookups of 1,000 from two clients.
fn http_load(
    runtime: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    base: &str,
    numbers: &Arc<Vec<String>>,
    scale: &Scale,
) -> Served {
    let (http, base) = (http.clone(), base.to_owned());
    runtime.block_on(async {
        // Warm the connections and the server's caches alike for both loads.
        let healthz = {
            let (http, base) = (http.clone(), base.clone());
            move |_c: usize, _i: u64| {
                let (http, base) = (http.clone(), base.clone());
                async move {
                    let r = http
                        .get(format!("{base}/healthz"))
                        .send()
                        .await
                        .expect("healthz");
                    assert!(r.status().is_success());
                    let _ = r.bytes().await;
                }
            }
        };
        let lookup = {
            let (http, base, numbers) = (http.clone(), base.clone(), numbers.clone());
            move |c: usize, i: u64| {
                let (http, base, numbers) = (http.clone(), base.clone(), numbers.clone());
                async move {
                    let n = &numbers[(c * 7919 + i as usize * 104_729) % numbers.len()];
                    let r = http
                        .get(format!("{base}/api/v1/lookup/{n}"))
                        .bearer_auth(READ_TOKEN)
                        .send()
                        .await
                        .expect("lookup");
                    assert!(r.status().is_success(), "{}", r.status());
                    let _ = r.bytes().await;
                }
            }
        };
        // A serving node's cache holds what its lookups read: one bulk pass
        // over the pool (at most WARM_SECS) reads the numbers' index pages
        // in first, so that the rates below are of a running node, not of
        // its first minute after a restart (before this pass, up to a
        // seventh of the server's CPU in the lookup load was sled reading
        // pages back from its log). What does not fit in sled's cache
        // still misses: the 1M and scale rows show that.
        warm(&http, &base, numbers).await;
        let _ = load(scale.clients, 0.5, healthz.clone()).await;
        let _ = load(scale.clients, 0.5, lookup.clone()).await;
        // Alternate the two loads in rounds so that the limit and the
        // measure see the same machine (this shared VM's speed drifts).
        let (mut health_n, mut lookup_n, mut secs) = (0.0, 0.0, 0.0);
        let mut lookup_lat = Vec::new();
        let round = scale.http_secs / f64::from(ROUNDS);
        for _ in 0..ROUNDS {
            let (rate, _) = load(scale.clients, round, healthz.clone()).await;
            health_n += rate * round;
            let (rate, lat) = load(scale.clients, round, lookup.clone()).await;
            lookup_n += rate * round;
            lookup_lat.extend(lat);
            secs += round;
        }
        lookup_lat.sort_unstable();
        let (health_rate, lookup_rate) = (health_n / secs, lookup_n / secs);

        // Bulk: batches of 1,000 numbers, two clients (one per core).
        let start = Instant::now();
        let mut hits = 0usize;
        let per_client = scale.bulk_batches.div_ceil(2);
        let mut tasks = Vec::new();
        for c in 0..2 {
            let (http, base, numbers) = (http.clone(), base.clone(), numbers.clone());
            tasks.push(tokio::spawn(async move {
                let mut hits = 0;
                for b in 0..per_client {
                    let batch: Vec<&String> = (0..1000)
                        .map(|k| &numbers[(c * 500_009 + b * 1000 + k) * 7 % numbers.len()])
                        .collect();
                    let body = serde_json::json!({ "numbers": batch });
                    let r =
                        post_ok(&http, format!("{base}/api/v1/lookup"), READ_TOKEN, &body).await;
                    // Count answers without building a JSON tree: the client
                    // shares the machine with the server it measures.
                    let body = r.bytes().await.expect("body");
                    let text = std::str::from_utf8(&body).expect("utf-8");
                    assert_eq!(text.matches("\"block_activity\":").count(), 1000);
                    hits += 1000 - text.matches("\"orgs\":0,").count();
                }
                hits
            }));
        }
        for t in tasks {
            hits += t.await.expect("bulk client");
        }
        Served {
            health: health_rate,
            lookups: lookup_rate,
            p50: percentile(&lookup_lat, 0.50),
            p99: percentile(&lookup_lat, 0.99),
            bulk: (per_client * 2 * 1000) as f64 / start.elapsed().as_secs_f64(),
            hits,
        }
    })
}

/// Rounds of alternating `/healthz` and lookup loads ([`http_load`]).
const ROUNDS: u32 = 4;
/// Longest warm-up pass over the pool ([`warm`]).
const WARM_SECS: f64 = 30.0;

/// POSTs `body` as JSON with `token`; panics unless it succeeds.
async fn post_ok(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request");
    assert!(r.status().is_success(), "{}", r.status());
    r
}

/// Looks every number of the pool up once in bulk (batches of 1,000 from
/// two clients), for at most [`WARM_SECS`].
async fn warm(http: &reqwest::Client, base: &str, numbers: &Arc<Vec<String>>) {
    let deadline = Instant::now() + Duration::from_secs_f64(WARM_SECS);
    let mut tasks = Vec::new();
    for c in 0..2 {
        let (http, base, numbers) = (http.clone(), base.to_owned(), numbers.clone());
        tasks.push(tokio::spawn(async move {
            for chunk in numbers.chunks(1000).skip(c).step_by(2) {
                if Instant::now() > deadline {
                    break;
                }
                let body = serde_json::json!({ "numbers": chunk });
                let r = post_ok(&http, format!("{base}/api/v1/lookup"), READ_TOKEN, &body).await;
                let _ = r.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("warm-up client");
    }
}

/// The benchmark directory, a cluster of `nodes` nodes ("Node i") plus
/// `origins` members that run no node and sign the load ("Origin i",
/// trusts from 0.5 up), and those origins' keys.
fn data_cluster(nodes: usize, origins: usize) -> (PathBuf, Cluster, Vec<SigningKey>) {
    let mut orgs: Vec<(String, f64)> = (0..nodes).map(|i| (format!("Node {i}"), 0.8)).collect();
    orgs.extend(
        (0..origins).map(|i| (format!("Origin {i}"), 0.5 + 0.4 * i as f64 / origins as f64)),
    );
    let org_refs: Vec<(&str, f64)> = orgs.iter().map(|(o, t)| (o.as_str(), *t)).collect();
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-node");
    std::fs::create_dir_all(&bench_dir).expect("bench dir");
    let cluster = Cluster::build_in(
        &bench_dir,
        &org_refs,
        &Options {
            sync_interval: Duration::from_secs(3600),
            // The per-token limit protects a node from one client, and the
            // per-origin limits the network from one member; here the load
            // is the point (the limits' index is still kept and measured).
            api_rate: 1_000_000,
            limits: sightline_node::store::Limits::unlimited(),
            store_cache_mib: std::env::var("SIGHTLINE_BENCH_CACHE_MIB")
                .ok()
                .map(|v| v.parse().expect("SIGHTLINE_BENCH_CACHE_MIB: MiB")),
            ..Options::default()
        },
    );
    let keys = cluster.members[nodes..]
        .iter()
        .map(|m| SigningKey::from_seed(&m.seed))
        .collect();
    (bench_dir, cluster, keys)
}

/// Waits until `a` and `b` hold identical sets (a report of a number an
/// origin already reported replaces it, so counts alone do not say it);
/// panics with `failure` after `timeout`.
async fn until_identical(a: &NodeHandle, b: &NodeHandle, timeout: Duration, failure: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let (da, db) = (a.set_digest().await, b.set_digest().await);
        if da.is_ok() && da.ok() == db.ok() {
            return;
        }
        assert!(Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node` holds `count` records.
async fn wait_for_records(node: &NodeHandle, count: usize, timeout: Duration) {
    let mut changes = node.changes();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if node.status().await.expect("status").records >= count as u64 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let s = node.status().await.expect("status");
            panic!(
                "node {} did not reach {count} records: {} held, lag {}, {} rounds, {} received by catch-up, {} pages, throttled {}, rejected {:?}",
                node.org(),
                s.records,
                s.sync_lag,
                s.sync_rounds,
                s.sync_records,
                s.sync_pages,
                s.sync_throttled,
                s.rejected
            );
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

fn main() {
    if let Ok(config) = std::env::var(SERVE_ENV) {
        serve(&config);
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--scale") {
        scale_run(quick);
        return;
    }
    let mut scale = Scale::new(quick);
    // For experiments and profiling: another store size.
    if let Some(n) = std::env::var("SIGHTLINE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        scale.store = n;
    }
    if let Some(n) = std::env::var("SIGHTLINE_BENCH_PARTITION")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        scale.partition = n;
    }
    let total = Instant::now();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut rows = Vec::new();

    // The data cluster: three nodes plus the origins that sign the load.
    let (bench_dir, mut cluster, origins) = data_cluster(NODES, ORIGINS);
    let config0 = cluster.config(0);
    let network = config0.network.id.clone();
    let hash_key = config0.network.hash_key.clone();
    let pool = number_pool(scale.store / 4, &hash_key);
    println!(
        "sightline node benchmarks ({}): {} numbers in the pool, {ORIGINS} origins",
        if quick { "quick" } else { "full" },
        pool.len()
    );

    // Limits measured in this run.
    let verify_limit = raw_verify_rate(scale.limit_secs);
    let parse_limit = raw_parse_rate(scale.limit_secs, &pool);
    println!(
        "limits: raw verify_strict {} /s, raw parse+validate {} /s",
        fmt_rate(verify_limit),
        fmt_rate(parse_limit)
    );

    // ingest: a fresh store (node 1) receives `ingest` records.
    let per_origin = (scale.ingest / ORIGINS) as u64;
    let records = generate(&origins, &network, &pool, 1, per_origin);
    let ingestor = Ingestor::open(&cluster.config(1), Arc::new(SystemClock)).expect("ingestor");
    let (took, stored) = ingest(&runtime, &ingestor, &records);
    assert_eq!(stored, records.len(), "every record is stored");
    let ingest_rate = records.len() as f64 / took.as_secs_f64();
    drop(ingestor);
    println!("ingest: {} records/s", fmt_rate(ingest_rate));
    let (check_rate, store_rate) = ingest_stages(&cluster.config(1), &bench_dir, &records);
    println!(
        "ingest stages alone, 1 core each: check {} records/s, store {} records/s",
        fmt_rate(check_rate),
        fmt_rate(store_rate)
    );
    rows.push(Row {
        name: "ingest",
        measured: format!(
            "{} records/s ({} records from {ORIGINS} origins into an empty store, batches of {}); \
             its stages alone on 1 core: check (decode + batch verify) {} /s, store {} /s",
            fmt_rate(ingest_rate),
            fmt_rate(records.len() as f64),
            INGEST_BATCH,
            fmt_rate(check_rate),
            fmt_rate(store_rate)
        ),
        limit: format!("raw verify_strict, 1 core: {} /s", fmt_rate(verify_limit)),
        ratio: Some(ingest_rate / verify_limit),
        target: "≥ 1.0",
        met: Some(ingest_rate / verify_limit >= 1.0),
    });

    if std::env::var("SIGHTLINE_BENCH_STOP_AFTER").as_deref() == Ok("ingest") {
        // For profiling the ingest stage alone (perf record … --quick).
        return;
    }

    // catch-up: node 2 (empty) joins node 1, which holds those records.
    let catch_up_count = records.len().min(scale.catch_up);
    drop(records);
    let (catch_up_secs, catch_up_rate) = runtime.block_on(async {
        let source = cluster.start(1).await;
        assert_eq!(
            source.status().await.expect("status").records,
            catch_up_count as u64
        );
        let start = Instant::now();
        let joiner = cluster.start(2).await;
        wait_for_records(&joiner, catch_up_count, Duration::from_secs(600)).await;
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(
            joiner.set_digest().await.expect("digest"),
            source.set_digest().await.expect("digest"),
            "converged to the same set"
        );
        cluster.shutdown().await;
        (secs, catch_up_count as f64 / secs)
    });
    println!("catch-up: {} records/s", fmt_rate(catch_up_rate));
    rows.push(Row {
        name: "catch-up",
        measured: format!(
            "{} records/s ({} records in {catch_up_secs:.1} s, from start to identical set digest)",
            fmt_rate(catch_up_rate),
            fmt_rate(catch_up_count as f64)
        ),
        limit: format!("ingest row: {} records/s", fmt_rate(ingest_rate)),
        ratio: Some(catch_up_rate / ingest_rate),
        target: "≥ 0.5",
        met: Some(catch_up_rate / ingest_rate >= 0.5),
    });

    // partition: nodes 1 and 2 hold the same history (the catch-up row).
    // Apart, each takes `partition` new reports from the origins on its
    // side; healed, they reconcile (catch-up version 2) until identical.
    let (left, right) = origins.split_at(ORIGINS / 2);
    let per_side_origin = (scale.partition / left.len()) as u64;
    for (node, side) in [(1, left), (2, right)] {
        let records = generate(side, &network, &pool, per_origin + 1, per_side_origin);
        let ingestor =
            Ingestor::open(&cluster.config(node), Arc::new(SystemClock)).expect("ingestor");
        let (_, stored) = ingest(&runtime, &ingestor, &records);
        assert_eq!(stored, records.len(), "every record is stored");
    }
    let moved = 2 * per_side_origin as usize * left.len();
    let (heal_secs, heal_bytes, heal_rounds, heal_received) = runtime.block_on(async {
        let start = Instant::now();
        let a = cluster.start(1).await;
        let b = cluster.start(2).await;
        until_identical(
            &a,
            &b,
            Duration::from_secs(900),
            "the partition did not heal",
        )
        .await;
        let secs = start.elapsed().as_secs_f64();
        let (sa, sb) = (
            a.status().await.expect("status"),
            b.status().await.expect("status"),
        );
        cluster.shutdown().await;
        (
            secs,
            sa.sync_bytes + sb.sync_bytes,
            sa.sync_rounds + sb.sync_rounds,
            sa.sync_records + sb.sync_records,
        )
    });
    let heal_rate = moved as f64 / heal_secs;
    println!(
        "partition: {moved} reports apart healed in {heal_secs:.1} s, {heal_bytes} B, {heal_rounds} rounds, {heal_received} records received"
    );
    rows.push(Row {
        name: "partition heal",
        measured: format!(
            "{} reports apart ({} per side, over {} common) identical after {heal_secs:.1} s: \
             {} records/s; {heal_received} records received (the history not re-sent), \
             {:.1} MiB of catch-up answers ({:.0} B per report moved), {heal_rounds} reconciliation rounds",
            fmt_rate(moved as f64),
            fmt_rate(moved as f64 / 2.0),
            fmt_rate(catch_up_count as f64),
            fmt_rate(heal_rate),
            heal_bytes as f64 / 1_048_576.0,
            heal_bytes as f64 / moved as f64,
        ),
        limit: format!("ingest row: {} records/s", fmt_rate(ingest_rate)),
        ratio: Some(heal_rate / ingest_rate),
        target: "≥ 0.5",
        met: Some(heal_rate / ingest_rate >= 0.5 && heal_received as usize <= moved + moved / 10),
    });

    if std::env::var("SIGHTLINE_BENCH_STOP_AFTER").as_deref() == Ok("partition") {
        for row in &rows {
            println!(
                "| {} | {} | {} | {} |",
                row.name, row.measured, row.limit, row.target
            );
        }
        return;
    }

    // The lookup server's store: `store` records into node 0, in chunks
    // (generation is not timed).
    let ingestor = Ingestor::open(&config0, Arc::new(SystemClock)).expect("ingestor");
    let chunk = 100_000.min(scale.store);
    let per_chunk = (chunk / ORIGINS) as u64;
    let mut fill_time = Duration::ZERO;
    let mut filled = 0;
    let mut seq = 1;
    while filled < scale.store {
        let records = generate(&origins, &network, &pool, seq, per_chunk);
        seq += per_chunk;
        let (took, stored) = ingest(&runtime, &ingestor, &records);
        assert_eq!(stored, records.len());
        fill_time += took;
        filled += stored;
    }
    ingestor.store().flush().expect("flush");
    drop(ingestor);
    let fill_rate = filled as f64 / fill_time.as_secs_f64();
    println!(
        "filled node 0 with {filled} records at {} records/s",
        fmt_rate(fill_rate)
    );

    // lookup, bulk lookup, submit and footprint against a server process.
    let server = Server::start(&cluster.members[0].config_path);
    let base = server.addr.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let numbers: Arc<Vec<String>> = Arc::new(pool.iter().map(|n| n.e164.clone()).collect());
    let answers = http_load(&runtime, &http, &base, &numbers, &scale);
    answers.print();
    rows.extend(answers.rows(
        ["lookup", "bulk lookup"],
        &format!("{} records stored", fmt_rate(filled as f64)),
        scale.clients,
        parse_limit,
    ));

    // Footprint after the lookup load.
    let pid = server.child.id();
    let rss = rss_kib(pid, "VmRSS:");
    let hwm = rss_kib(pid, "VmHWM:");
    let disk = dir_bytes(&cluster.config(0).data_dir.join("store"));
    let per_record = disk as f64 / filled as f64;
    println!(
        "footprint: RSS {} MiB (peak {} MiB), {} bytes on disk = {per_record:.0} B/record",
        rss / 1024,
        hwm / 1024,
        fmt_rate(disk as f64)
    );
    if std::env::var("SIGHTLINE_BENCH_STOP_AFTER").as_deref() == Ok("footprint") {
        server.stop();
        return;
    }
    rows.push(Row {
        name: "footprint",
        measured: format!(
            "RSS {} MiB (peak {} MiB) serving {} records; store {:.0} MiB on disk = {per_record:.0} B/record",
            rss / 1024,
            hwm / 1024,
            fmt_rate(filled as f64),
            disk as f64 / 1_048_576.0
        ),
        limit: "—".into(),
        ratio: None,
        target: "≤ 300 MB RSS, ≤ 600 B/record",
        met: Some(hwm * 1024 <= 300_000_000 && per_record <= 600.0),
    });

    // submit: durable batches of 100 through the API, one client.
    let submit_rate = runtime.block_on(async {
        let mut k = 0usize;
        let start = Instant::now();
        let mut batches = 0;
        while start.elapsed().as_secs_f64() < scale.submit_secs {
            let batch: Vec<serde_json::Value> = (0..SUBMIT_BATCH)
                .map(|_| {
                    k += 1;
                    serde_json::json!({
                        "number": numbers[(k * 31) % numbers.len()],
                        "kind": "smishing",
                        "channel": "sms",
                        "confidence": 80,
                    })
                })
                .collect();
            let body = serde_json::json!({ "sightings": batch });
            let r = post_ok(
                &http,
                format!("{base}/api/v1/sightings"),
                WRITE_TOKEN,
                &body,
            )
            .await;
            let _ = r.bytes().await;
            batches += 1;
        }
        f64::from(batches) / start.elapsed().as_secs_f64()
    });
    server.stop();
    let sled_limit = raw_sled_batch_rate(&bench_dir, scale.submit_secs.min(3.0), SUBMIT_BATCH);
    println!(
        "submit: {} batches/s of {SUBMIT_BATCH}; raw sled insert+flush {} batches/s",
        fmt_rate(submit_rate),
        fmt_rate(sled_limit)
    );
    rows.push(Row {
        name: "submit",
        measured: format!(
            "{} durable API batches/s of {SUBMIT_BATCH} sightings ({} sightings/s), one client",
            fmt_rate(submit_rate),
            fmt_rate(submit_rate * SUBMIT_BATCH as f64)
        ),
        limit: format!(
            "raw sled: {SUBMIT_BATCH} inserts of 330 B + flush: {} /s",
            fmt_rate(sled_limit)
        ),
        ratio: Some(submit_rate / sled_limit),
        target: "≥ 0.5",
        met: Some(submit_rate / sled_limit >= 0.5),
    });
    drop(cluster);

    // propagation: nodes on loopback, records published from random nodes
    // one after another; time from publication until every node has it.
    let heartbeat = sightline_node::network::HEARTBEAT_INTERVAL;
    let (p50, p95, max) = runtime.block_on(async {
        let names: Vec<String> = (0..scale.propagation_nodes)
            .map(|i| format!("Peer {i}"))
            .collect();
        let refs: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 0.8)).collect();
        let mut mesh = Cluster::build_in(
            &bench_dir,
            &refs,
            &Options {
                sync_interval: Duration::from_secs(3600),
                ..Options::default()
            },
        );
        mesh.start_all().await;
        mesh.wait_connected().await;
        // Let gossipsub build its mesh (a few heartbeats).
        tokio::time::sleep(heartbeat * 3).await;
        let nodes: Vec<NodeHandle> = (0..scale.propagation_nodes)
            .map(|i| mesh.node(i).clone())
            .collect();
        let mut rng = Rng(7);
        let mut delays = Vec::with_capacity(scale.propagation_records);
        for k in 0..scale.propagation_records {
            let from = rng.below(nodes.len());
            let number = &numbers[(k * 13) % numbers.len()];
            let mut watchers: Vec<_> = nodes.iter().map(NodeHandle::changes).collect();
            nodes[from]
                .submit(vec![Submission::new(number.clone(), Kind::Smishing)])
                .await
                .expect("submit");
            let published = Instant::now();
            for (i, w) in watchers.iter_mut().enumerate() {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while *w.borrow_and_update() < (k + 1) as u64 {
                    tokio::time::timeout_at(deadline, w.changed())
                        .await
                        .unwrap_or_else(|_| panic!("record {k} did not reach node {i}"))
                        .expect("node running");
                }
            }
            delays.push(published.elapsed().as_micros() as u64);
        }
        mesh.shutdown().await;
        delays.sort_unstable();
        (
            percentile(&delays, 0.50),
            percentile(&delays, 0.95),
            percentile(&delays, 1.0),
        )
    });
    let heartbeat_ms = heartbeat.as_secs_f64() * 1000.0;
    println!("propagation: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms");
    rows.push(Row {
        name: "propagation",
        measured: format!(
            "{} nodes, {} records from random nodes: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms until every node has it",
            scale.propagation_nodes, scale.propagation_records
        ),
        limit: format!("gossipsub heartbeat: {heartbeat_ms:.0} ms"),
        ratio: Some(p95 / heartbeat_ms),
        target: "p95 ≤ 1 heartbeat",
        met: Some(p95 <= heartbeat_ms),
    });

    let elapsed = total.elapsed().as_secs_f64();
    let table = render(&rows, &scale, elapsed);
    println!("\n{table}");
    let _ = std::fs::remove_dir_all(&bench_dir);
    if quick {
        println!("(quick run: figures are not judged and BENCHMARKS.md is left alone)");
    } else {
        write_benchmarks_md(&table);
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| format!(", {} GiB", kib / 1_048_576));
    format!("{cpu}, {cores} cores{mem}")
}

/// `SIGHTLINE_BENCH_CACHE_MIB=N ` when it is set, for the command line.
fn cache_setting() -> String {
    std::env::var("SIGHTLINE_BENCH_CACHE_MIB").map_or_else(
        |_| String::new(),
        |mib| format!("SIGHTLINE_BENCH_CACHE_MIB={mib} "),
    )
}

fn render(rows: &[Row], scale: &Scale, elapsed: f64) -> String {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Command: `{}cargo bench -p sightline-tests --bench node{}`  \nDate: {date}. Machine: {}. Whole run: {elapsed:.0} s.\n",
        cache_setting(),
        if scale.quick { " -- --quick" } else { "" },
        machine()
    );
    let _ = writeln!(
        out,
        "| row | measured | limit (same run) | ratio | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            r.measured,
            r.limit,
            r.ratio.map_or_else(|| "—".into(), |x| format!("{x:.2}")),
            r.target,
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        );
    }
    out
}

/// Replaces the generated section of BENCHMARKS.md.
fn write_benchmarks_md(table: &str) {
    write_section(
        table,
        "<!-- node-bench:begin -->",
        "<!-- node-bench:end -->",
    );
}

/// Replaces the section of BENCHMARKS.md between `BEGIN` and `END`.
fn write_section(table: &str, begin: &str, end: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).expect("BENCHMARKS.md");
    let (Some(a), Some(b)) = (text.find(begin), text.find(end)) else {
        println!("BENCHMARKS.md has no {begin} … {end} section; not written");
        return;
    };
    let updated = format!("{}{begin}\n{table}{}", &text[..a], &text[b..]);
    std::fs::write(&path, updated).expect("write BENCHMARKS.md");
    println!("wrote the table into {}", path.display());
}

/// Member origins of the `--scale` load.
const SCALE_ORIGINS: usize = 20;

/// `--scale`: one node holding `SIGHTLINE_BENCH_SCALE` current reports
/// (default 10,000,000) from 20 origins, 30% of the origins' first reports
/// superseded by re-reports and 5% withdrawn ([`superseding`]); ingest
/// rate at that size, lookups against a server process, disk and RSS, and
/// the catch-up of a node that missed the last `SIGHTLINE_BENCH_MISSED`
/// records (default 1,000,000). Writes its own table into BENCHMARKS.md,
/// unless `quick` (20,000 reports, 5,000 missed: for CI).
fn scale_run(quick: bool) {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (current, missed) = if quick {
        (20_000, 5_000)
    } else {
        (
            env("SIGHTLINE_BENCH_SCALE", 10_000_000),
            env("SIGHTLINE_BENCH_MISSED", 1_000_000),
        )
    };
    let total = Instant::now();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut scale = Scale::new(quick);
    scale.store = current;
    let (bench_dir, mut cluster, origins) = data_cluster(2, SCALE_ORIGINS);
    let config0 = cluster.config(0);
    let network = config0.network.id.clone();
    // Each origin reports `current / 20` distinct numbers; a pool of a
    // quarter of the reports makes each number reported by about 5 origins.
    let per_origin = current / SCALE_ORIGINS;
    let pool = number_pool((current / 4).max(per_origin), &config0.network.hash_key);
    // Seqs per origin: 13 for every 10 current reports.
    let seqs = (per_origin as u64).div_ceil(10) * 13;
    let records = seqs as usize * SCALE_ORIGINS;
    let missed_seqs = (missed / SCALE_ORIGINS) as u64;
    println!(
        "sightline scale benchmark: {} current reports ({} records signed) from {SCALE_ORIGINS} origins, {} numbers; node 1 misses the last {}",
        fmt_rate(current as f64),
        fmt_rate(records as f64),
        fmt_rate(pool.len() as f64),
        fmt_rate((missed_seqs as usize * SCALE_ORIGINS) as f64)
    );
    let verify_limit = raw_verify_rate(scale.limit_secs);
    let parse_limit = raw_parse_rate(scale.limit_secs, &pool);
    println!(
        "limits: raw verify_strict {} /s, raw parse+validate {} /s",
        fmt_rate(verify_limit),
        fmt_rate(parse_limit)
    );

    // Fill node 0, copying its store to node 1 when it holds all but the
    // last `missed` records (generation is not timed).
    let dir0 = config0.data_dir.join("store");
    let dir1 = cluster.config(1).data_dir.join("store");
    let chunk = (200_000 / SCALE_ORIGINS) as u64;
    let mut ingestor = Ingestor::open(&config0, Arc::new(SystemClock)).expect("ingestor");
    let (mut fill_time, mut stored, mut seq) = (Duration::ZERO, 0usize, 1u64);
    let cut = seqs.saturating_sub(missed_seqs);
    let mut copied = false;
    let mut held_at_cut = 0;
    let count_held = |store: &sightline_node::store::Store| -> u64 {
        store
            .progress()
            .expect("progress")
            .iter()
            .map(|p| p.count)
            .sum()
    };
    while seq <= seqs {
        if seq > cut && !copied {
            ingestor.store().flush().expect("flush");
            held_at_cut = count_held(ingestor.store());
            drop(ingestor);
            let _ = std::fs::remove_dir_all(&dir1);
            std::fs::create_dir_all(dir1.parent().expect("data dir")).expect("mkdir");
            let status = Command::new("cp")
                .arg("-a")
                .arg(&dir0)
                .arg(&dir1)
                .status()
                .expect("cp");
            assert!(status.success(), "store copied");
            copied = true;
            ingestor = Ingestor::open(&config0, Arc::new(SystemClock)).expect("ingestor");
        }
        let end = if copied { seqs } else { cut };
        let count = chunk.min(end + 1 - seq);
        let batch = generate_with(&origins, &network, &pool, seq, count, superseding);
        seq += count;
        let (took, ok) = ingest(&runtime, &ingestor, &batch);
        assert_eq!(ok, batch.len(), "every record is stored");
        fill_time += took;
        stored += ok;
        if stored % 1_000_000 < batch.len() {
            println!(
                "  {} records in, {} records/s so far",
                fmt_rate(stored as f64),
                fmt_rate(stored as f64 / fill_time.as_secs_f64())
            );
        }
    }
    ingestor.store().flush().expect("flush");
    drop(ingestor);
    let ingest_rate = stored as f64 / fill_time.as_secs_f64();
    println!(
        "ingest: {} records/s over {stored} records",
        fmt_rate(ingest_rate)
    );

    // Lookups, RSS and disk against a server process on node 0.
    let server = Server::start(&cluster.members[0].config_path);
    let rss_open = rss_kib(server.child.id(), "VmRSS:");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let numbers: Arc<Vec<String>> = Arc::new(pool.iter().map(|n| n.e164.clone()).collect());
    let answers = http_load(&runtime, &http, &server.addr, &numbers, &scale);
    let pid = server.child.id();
    let (rss, hwm) = (rss_kib(pid, "VmRSS:"), rss_kib(pid, "VmHWM:"));
    server.stop();
    let disk = dir_bytes(&dir0);
    let status = runtime.block_on(async {
        let node = cluster.start(0).await;
        let s = node.status().await.expect("status");
        cluster.shutdown().await;
        s
    });
    let held = status.records;
    answers.print();
    println!(
        "footprint: {held} current reports, RSS {} MiB once open, {} MiB (peak {} MiB) after the lookups, {} bytes on disk = {:.0} B/report",
        rss_open / 1024,
        rss / 1024,
        hwm / 1024,
        fmt_rate(disk as f64),
        disk as f64 / held as f64
    );

    // Catch-up: node 1 (all but the last records) joins node 0.
    {
        let ingestor = Ingestor::open(&cluster.config(1), Arc::new(SystemClock)).expect("ingestor");
        assert_eq!(
            count_held(ingestor.store()),
            held_at_cut,
            "node 1 holds the copy"
        );
        println!("node 1 holds {held_at_cut} reports before catching up");
    }
    let (sync_secs, sync_bytes, sync_rounds, sync_received) = runtime.block_on(async {
        let a = cluster.start(0).await;
        let start = Instant::now();
        let b = cluster.start(1).await;
        until_identical(&a, &b, Duration::from_secs(3600), "node 1 did not catch up").await;
        let took = start.elapsed().as_secs_f64();
        let s = b.status().await.expect("status");
        cluster.shutdown().await;
        (took, s.sync_bytes, s.sync_rounds, s.sync_records)
    });
    let missed_records = (seqs - cut) as usize * SCALE_ORIGINS;
    // What catch-up moves follows the difference, not the history.
    assert!(
        sync_received as usize <= missed_records + missed_records / 10,
        "node 1 received {sync_received} records for {missed_records} missed"
    );
    println!(
        "catch-up: {missed_records} records missed, identical after {sync_secs:.1} s, {sync_received} received, {sync_bytes} B, {sync_rounds} rounds"
    );

    let [lookup_row, bulk_row] = answers.rows(
        ["lookup at scale", "bulk lookup at scale"],
        &format!("{} current reports", fmt_rate(held as f64)),
        scale.clients,
        parse_limit,
    );
    let rows = [
        Row {
            name: "ingest at scale",
            measured: format!(
                "{} records/s ({} records, {} of them re-reports, into one store, batches of {INGEST_BATCH})",
                fmt_rate(ingest_rate),
                fmt_rate(stored as f64),
                fmt_rate((stored - held as usize) as f64),
            ),
            limit: format!("raw verify_strict, 1 core: {} /s", fmt_rate(verify_limit)),
            ratio: Some(ingest_rate / verify_limit),
            target: "≥ 1.0",
            met: Some(ingest_rate / verify_limit >= 1.0),
        },
        Row {
            name: "catch-up after missing records",
            measured: format!(
                "{} records missed of {}: identical after {sync_secs:.1} s ({} records/s), {} received, {:.1} MiB of answers, {sync_rounds} rounds",
                fmt_rate(missed_records as f64),
                fmt_rate(stored as f64),
                fmt_rate(missed_records as f64 / sync_secs),
                fmt_rate(sync_received as f64),
                sync_bytes as f64 / 1_048_576.0
            ),
            limit: format!("ingest at scale: {} records/s", fmt_rate(ingest_rate)),
            ratio: Some(missed_records as f64 / sync_secs / ingest_rate),
            target: "≥ 0.5, received ≤ 1.1× missed",
            met: Some(
                missed_records as f64 / sync_secs / ingest_rate >= 0.5
                    && sync_received as usize <= missed_records + missed_records / 10,
            ),
        },
        lookup_row,
        bulk_row,
        Row {
            name: "footprint at scale",
            measured: format!(
                "{} current reports: RSS {} MiB once open, {} MiB (peak {} MiB) after the lookup loads; {:.0} MiB on disk = {:.0} B/report",
                fmt_rate(held as f64),
                rss_open / 1024,
                rss / 1024,
                hwm / 1024,
                disk as f64 / 1_048_576.0,
                disk as f64 / held as f64
            ),
            limit: "—".into(),
            ratio: None,
            target: "10M: RSS ≤ 1 GiB; 1M: ≤ 1,000 B/report, ≤ 300 MiB",
            met: None,
        },
    ];
    let elapsed = total.elapsed().as_secs_f64();
    let table = render(&rows, &scale, elapsed);
    // The command line that reproduces it, in place of the node rows' one.
    let (_, rest) = table.split_once('\n').expect("a header line");
    let table = format!(
        "Command: `{}SIGHTLINE_BENCH_SCALE={current} SIGHTLINE_BENCH_MISSED={missed} cargo bench -p sightline-tests --bench node -- --scale{}`  \n{rest}",
        cache_setting(),
        if quick { " --quick" } else { "" }
    );
    println!("\n{table}");
    let _ = std::fs::remove_dir_all(&bench_dir);
    if quick {
        println!("(quick run: figures are not judged and BENCHMARKS.md is left alone)");
    } else {
        write_section(
            &table,
            "<!-- scale-bench:begin -->",
            "<!-- scale-bench:end -->",
        );
    }
}
