//! The running node and [`NodeHandle`], the only API the web server and the
//! CLI use.
//!
//! Tasks (all channels bounded):
//! - the network event loop, sole owner of the swarm (`network.rs`);
//! - the core task: routes network events, answers catch-up requests with a
//!   per-peer rate limit, starts catch-up on connect and every
//!   `sync_interval`, and purges expired records;
//! - the ingest task: batches received records and runs them through
//!   [`crate::pipeline::IngestPipeline`] (prechecks and batch signature
//!   verification of one batch on a blocking thread while the previous one
//!   is stored in one transaction), then reports Accept / Reject / Ignore
//!   back to gossipsub.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use serde::Serialize;
use sightline_protocol::{
    parse_number_with, Channel, Kind, Letters, LineType, NumberError, OriginId, Sighting,
    SightingId, SignedSighting, SigningKey, UnverifiedSighting, Verdict,
};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::catchup::{self, CatchUpRequest, CatchUpResponse, RateLimiter};
use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::identity::{IdentityError, NodeIdentity};
use crate::ingest::{self, Metrics, Rejection, Severity};
use crate::network::{self, Client, NetworkEvent, NetworkStatus, PeerInfo};
use crate::pipeline::{IngestPipeline, Ingestor, INGEST_BATCH};
use crate::reputation::{self, Report, Score};
use crate::store::{OriginProgress, Store, StoreError, StoreHealth};

/// Largest batch accepted by [`NodeHandle::submit`] and lookups.
pub const MAX_BATCH: usize = 10_000;
/// Window for same-block activity.
pub const BLOCK_WINDOW_SECS: u64 = 30 * 86_400;
/// Capacity of the ingest queue.
const INGEST_QUEUE: usize = 4096;
/// How often the purge runs.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The key file.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network.
    #[error(transparent)]
    Network(#[from] network::NetworkError),
    /// This node's peer id is not a member of the network.
    #[error(
        "this node's peer id {0} is not a [[member]] of network.toml; send it to the network admin"
    )]
    NotAMember(PeerId),
}

/// One sighting to submit.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// The number as given (normalized to E.164 here).
    pub number: String,
    /// Default region for national numbers (ISO 3166 alpha-2).
    #[serde(default)]
    pub region: Option<String>,
    /// What it was used for.
    pub kind: Kind,
    /// Malicious (default), false positive or withdrawn.
    #[serde(default = "default_verdict")]
    pub verdict: Verdict,
    /// How it reached the victim.
    #[serde(default = "default_channel")]
    pub channel: Channel,
    /// Impersonated brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// 0–100, default 70.
    #[serde(default = "default_confidence")]
    pub confidence: u8,
    /// Observations, default 1.
    #[serde(default = "default_count")]
    pub count: u32,
    /// Default: now.
    #[serde(default)]
    pub first_seen: Option<u64>,
    /// Default: now (or `first_seen`, if later).
    #[serde(default)]
    pub last_seen: Option<u64>,
    /// When peers should drop it.
    #[serde(default)]
    pub expires: Option<u64>,
    /// Read letters as keypad digits (`+1-800-FLOWERS`); without it a
    /// number with letters is refused (`has_letters`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vanity: bool,
}

/// What letters in a number mean: [`Letters::Vanity`] when `vanity` is set.
pub fn letters(vanity: bool) -> Letters {
    if vanity {
        Letters::Vanity
    } else {
        Letters::Refuse
    }
}

fn default_verdict() -> Verdict {
    Verdict::Malicious
}
fn default_channel() -> Channel {
    Channel::Other
}
fn default_confidence() -> u8 {
    70
}
fn default_count() -> u32 {
    1
}

impl Submission {
    /// A malicious report with defaults.
    pub fn new(number: impl Into<String>, kind: Kind) -> Self {
        Submission {
            number: number.into(),
            region: None,
            kind,
            verdict: Verdict::Malicious,
            channel: Channel::Other,
            brand: None,
            confidence: default_confidence(),
            count: 1,
            first_seen: None,
            last_seen: None,
            expires: None,
            vanity: false,
        }
    }
}

/// Item error code of a withdrawal of a number this organization has no
/// current report of.
pub const NOTHING_TO_WITHDRAW: &str = "nothing_to_withdraw";

/// Why one item of a batch is invalid.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemError {
    /// Position in the batch.
    pub index: usize,
    /// The number as given.
    pub number: String,
    /// Stable code.
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// Why a submission was refused. Nothing of a refused batch is stored.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Some items are invalid; the whole batch is rejected.
    #[error("{} invalid item(s); nothing stored", .0.len())]
    Invalid(Vec<ItemError>),
    /// More than [`MAX_BATCH`] items, or none.
    #[error("a batch holds 1 to {MAX_BATCH} items, got {0}")]
    BatchSize(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    Stopped,
    /// The store was restored or started afresh with an existing key, and
    /// no peer has yet said which of this organization's seqs it holds.
    #[error("this node's store was restored or is new, and no peer has yet told it the highest sequence number it holds for this organization; submissions resume as soon as one does (is a peer reachable?)")]
    OwnSeqUnconfirmed,
    /// The batch would take this organization over its limits
    /// (`network.toml` `[limits]`), past which peers ignore its records.
    #[error("this batch would take this organization over the network's limits ({} records an hour, {} distinct numbers a day); nothing was stored; retry in {retry_after} s", .limits.records_per_hour, .limits.numbers_per_day)]
    OverLimit {
        /// Seconds until the full hour or day ends.
        retry_after: u64,
        /// The limits.
        limits: crate::store::Limits,
    },
    /// The batch can never fit: it is over a limit by itself, or its
    /// records are dated in an hour or day that is over and full.
    #[error("this batch can never fit the network's limits ({} records an hour, {} distinct numbers a day; {limit}): it holds more than a limit by itself, or its records are dated in an hour or day that is over and full; split it, or date the records now; nothing was stored", .limits.records_per_hour, .limits.numbers_per_day)]
    BatchOverLimit {
        /// The limit (`over_records_per_hour` or `over_numbers_per_day`).
        limit: &'static str,
        /// The limits.
        limits: crate::store::Limits,
    },
}

/// An acknowledged, durable submission.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// Sighting id, hex.
    pub id: String,
    /// Own sequence number used.
    pub seq: u64,
    /// The normalized number.
    pub number: String,
    /// Whether this is the receipt of an earlier report that the
    /// submission repeated within the resubmission window (nothing new was
    /// signed).
    pub existing: bool,
}

/// What one item of a batch becomes.
enum Planned {
    /// A new record (seq filled in later), its E.164, and whether it is
    /// the batch's first item of its number (only such an item can repeat
    /// a stored report).
    Mint(Sighting, String, bool),
    /// A repeat of this organization's current report: its receipt.
    Existing(Receipt),
    /// A repeat of the batch's item at this index.
    Repeat(usize),
}

/// What makes two reports of a number the same report for idempotent
/// resubmission: kind, verdict, channel and brand.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Facts {
    kind: Kind,
    verdict: Verdict,
    channel: Channel,
    brand: Option<String>,
}

impl Facts {
    fn of(s: &Sighting) -> Self {
        Facts {
            kind: s.kind,
            verdict: s.verdict,
            channel: s.channel,
            brand: s.brand.clone(),
        }
    }
}

/// Where an item's receipt comes from.
enum Slot {
    /// The batch's n-th new record.
    Minted(usize),
    /// An earlier report's.
    Existing(Receipt),
    /// The receipt of the batch's item at this index.
    Repeat(usize),
}

/// Where each item's receipt will come from, and the records to sign.
fn slots_of(planned: Vec<Planned>) -> (Vec<Slot>, Vec<(Sighting, String)>) {
    let mut prepared = Vec::new();
    let mut slots = Vec::with_capacity(planned.len());
    for item in planned {
        slots.push(match item {
            Planned::Mint(sighting, e164, _) => {
                prepared.push((sighting, e164));
                Slot::Minted(prepared.len() - 1)
            }
            Planned::Existing(receipt) => Slot::Existing(receipt),
            Planned::Repeat(j) => Slot::Repeat(j),
        });
    }
    (slots, prepared)
}

/// The receipts of a batch in item order.
fn receipts_of(slots: Vec<Slot>, minted: &[Receipt]) -> Vec<Receipt> {
    let mut out: Vec<Receipt> = Vec::with_capacity(slots.len());
    for slot in slots {
        let receipt = match slot {
            Slot::Minted(i) => minted[i].clone(),
            Slot::Existing(r) => r,
            Slot::Repeat(j) => Receipt {
                existing: true,
                ..out[j].clone()
            },
        };
        out.push(receipt);
    }
    out
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// Not a valid number.
    #[error("invalid number {input:?}: {error}")]
    Number {
        /// As given.
        input: String,
        /// Why.
        error: NumberError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The answer for one number.
#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    /// E.164.
    pub number: String,
    /// ISO region (from the number, computed locally).
    pub country: String,
    /// Country calling code.
    pub cc: u16,
    /// Line type (from the number, computed locally).
    pub line_type: LineType,
    /// Score, band, orgs, times, kinds, channels, brands and every report.
    #[serde(flatten)]
    pub score: Score,
    /// Distinct numbers reported malicious in the same 100-block over 30 days.
    pub block_activity: usize,
}

/// A stored sighting for the "recent" list.
#[derive(Debug, Clone, Serialize)]
pub struct RecentSighting {
    /// Sighting id, hex.
    pub id: String,
    /// Reporting organization.
    pub org: String,
    /// The raw number, only for this node's own submissions.
    pub number: Option<String>,
    /// Number hash, hex.
    pub number_hash: String,
    /// Country calling code.
    pub cc: u16,
    /// Line type.
    pub line: LineType,
    /// Kind.
    pub kind: Kind,
    /// Verdict.
    pub verdict: Verdict,
    /// Channel.
    pub channel: Channel,
    /// Brand.
    pub brand: Option<String>,
    /// Confidence.
    pub confidence: u8,
    /// Count.
    pub count: u32,
    /// Last seen.
    pub last_seen: u64,
    /// Seq.
    pub seq: u64,
}

/// Per-origin store counts.
#[derive(Debug, Clone, Serialize)]
pub struct OriginStatus {
    /// Organization.
    pub org: String,
    /// Origin key, hex.
    pub origin: String,
    /// Records stored.
    pub count: u64,
    /// Highest seq stored.
    pub max_seq: u64,
    /// All seqs up to this one stored.
    pub contiguous: u64,
}

/// Node status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// This node's peer id.
    pub peer_id: String,
    /// This node's organization.
    pub org: String,
    /// Network id.
    pub network: String,
    /// Network name.
    pub network_name: String,
    /// Records stored.
    pub records: u64,
    /// Last own seq reserved.
    pub own_seq: u64,
    /// Per-origin counts (catch-up progress).
    pub origins: Vec<OriginStatus>,
    /// Network counters.
    pub net: NetworkStatus,
    /// Records received from peers.
    pub received: u64,
    /// Records stored from peers.
    pub stored_from_peers: u64,
    /// Own submissions stored.
    pub submitted: u64,
    /// Catch-up progress exchanges completed.
    pub sync_exchanges: u64,
    /// Catch-up pages received.
    pub sync_pages: u64,
    /// Catch-up requests refused by the rate limit.
    pub sync_throttled: u64,
    /// Rejected/ignored records by reason.
    pub rejected: std::collections::BTreeMap<&'static str, u64>,
    /// Origins caught signing two records with one seq, with evidence count.
    pub equivocations: Vec<(String, u64)>,
    /// Origins flagged for going over their limits (`network.toml`
    /// `[limits]`), with the records refused or evicted since start.
    pub over_limit: Vec<(String, u64)>,
    /// The limits in force.
    pub limits: crate::store::Limits,
    /// Store size on disk, bytes.
    pub disk_bytes: u64,
    /// `count:xor-of-ids` over every stored record: equal on two nodes iff
    /// they hold the same set.
    pub set_digest: String,
    /// Whether the store writes, and its errors and reopens.
    pub store: StoreHealth,
    /// Whether the own seq counter is known to be above every own seq
    /// peers hold (false after a restore until a peer has answered).
    pub own_seq_confirmed: bool,
}

struct Inner {
    /// Origins whose trust here is above 0: the only ones block activity
    /// counts (trust is fixed while the node runs).
    trusted: std::collections::HashSet<OriginId>,
    /// Whether this node may sign: see [`Store::own_seq_confirmed`].
    own_seq_known: Arc<watch::Sender<bool>>,
    config: NodeConfig,
    peer_id: PeerId,
    org: String,
    signing: SigningKey,
    store: Store,
    client: Client,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    submit_lock: Mutex<()>,
    changes: Arc<watch::Sender<u64>>,
    /// Cancelled once, by [`NodeHandle::shutdown`]: every task stops.
    shutdown: CancellationToken,
    /// Every task the node runs (the event loop, ingest, store, core, and
    /// the catch-up, serving and purge tasks the core starts), joined by
    /// [`NodeHandle::shutdown`] before the final flush.
    tasks: TaskTracker,
}

/// Cloneable handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("peer_id", &self.inner.peer_id)
            .finish_non_exhaustive()
    }
}

/// How long a submission waits for a peer to confirm the own seq counter
/// of a restored or re-created store before it is refused.
const OWN_SEQ_WAIT: Duration = Duration::from_secs(5);

/// How often a healthy store is checked for a failure nobody saw (sled's
/// background flush), and the longest wait between reopen attempts.
const STORE_PROBE: Duration = Duration::from_secs(2);
const STORE_RETRY_MAX: Duration = Duration::from_secs(16);

/// Keeps the store writing: probes it while it is healthy, and after a
/// failure (a full disk) reopens it as soon as there is room again, backing
/// off between attempts (see [`Store::recover`]).
async fn store_task(store: Store, shutdown: CancellationToken) {
    let mut retry = Duration::from_millis(500);
    loop {
        let wait = if store.is_healthy() {
            STORE_PROBE
        } else {
            retry
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        let s = store.clone();
        let healthy = blocking(move || {
            if s.is_healthy() {
                // A flush fails once sled has kept an error, so a failure of
                // its background flush is noticed with nothing being stored.
                s.flush().is_ok()
            } else {
                s.recover()
            }
        })
        .await;
        retry = if healthy {
            Duration::from_millis(500)
        } else {
            (retry * 2).min(STORE_RETRY_MAX)
        };
    }
}

/// Whether the store may sign from its own seq counter at start. A network
/// of one has no peer to ask, so it confirms itself; otherwise a restored or
/// re-created store waits for a peer (`CoreTask::confirm_own_seq`).
async fn own_seq_confirmed_at_start(
    store: &Store,
    config: &NodeConfig,
) -> Result<bool, StoreError> {
    let alone = config.network.members.len() <= 1;
    let store = store.clone();
    let confirmed = blocking(move || -> Result<bool, StoreError> {
        if store.own_seq_confirmed()? {
            return Ok(true);
        }
        if alone {
            store.confirm_own_seq()?;
        }
        Ok(alone)
    })
    .await?;
    if !confirmed {
        tracing::warn!("this node's store was restored or re-created: submissions wait until a peer has said which of this organization's records it holds");
    }
    Ok(confirmed)
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    joined(tokio::task::spawn_blocking(f)).await
}

/// The value of a spawned task: a panic in it is resumed here; if the
/// runtime is shutting down and dropped the task, this never resolves.
pub(crate) async fn joined<T>(task: JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => std::future::pending().await,
    }
}

/// Starts a node: key, store, network, and its tasks.
///
/// # Panics
/// Only if an internal store task panicked (a bug).
///
/// # Errors
/// [`StartError`] if the key, the store or the network cannot be set up, or
/// this node is not a member.
pub async fn start(config: NodeConfig, clock: Arc<dyn Clock>) -> Result<NodeHandle, StartError> {
    let identity = NodeIdentity::load_or_create(&config.key_file)?;
    let peer_id = identity.peer_id();
    let org = config
        .network
        .member(&peer_id)
        .map(|m| m.org.clone())
        .ok_or(StartError::NotAMember(peer_id))?;
    let own_origin = identity.signing.origin();
    let store = {
        let config = config.clone();
        blocking(move || crate::pipeline::open_store(&config, own_origin)).await?
    };
    let (client, events, event_loop) =
        network::new(identity.keypair.clone(), &config.network, &config.listen)?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let metrics = Arc::new(Metrics::default());
    let ctx = crate::pipeline::context(&config);
    let (ingest_tx, ingest_rx) = mpsc::channel(INGEST_QUEUE);
    let retry_pulls = RetryPulls::default();
    let changes = Arc::new(watch::channel(0u64).0);
    let confirmed = own_seq_confirmed_at_start(&store, &config).await?;
    let own_seq_known = Arc::new(watch::channel(confirmed).0);
    let trusted = config
        .network
        .members
        .iter()
        .filter(|m| config.trust_of(m, &peer_id) > 0.0)
        .map(|m| m.origin)
        .collect();
    let inner = Arc::new(Inner {
        trusted,
        own_seq_known: own_seq_known.clone(),
        peer_id,
        org,
        signing: identity.signing,
        store: store.clone(),
        client: client.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        submit_lock: Mutex::new(()),
        changes: changes.clone(),
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
        config,
    });
    tasks.spawn(event_loop.run(shutdown.clone()));
    tasks.spawn(ingest_task(
        IngestTask {
            ingestor: Ingestor::new(
                own_origin,
                store.clone(),
                ctx.clone(),
                clock.clone(),
                metrics.clone(),
            ),
            client: client.clone(),
            changes,
            retry_pulls: retry_pulls.clone(),
        },
        ingest_rx,
        shutdown.clone(),
    ));
    tasks.spawn(store_task(store.clone(), shutdown.clone()));
    tasks.spawn(core_task(
        CoreTask {
            own: own_origin,
            store,
            client,
            clock,
            metrics,
            members: ctx.members.clone(),
            ingest: ingest_tx,
            sync_interval: inner.config.sync_interval,
            retention: inner.config.retention_secs,
            pulled: std::sync::Mutex::default(),
            own_seq_known,
            retry_pulls,
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
            purging: Arc::default(),
        },
        events,
    ));
    tracing::info!(peer_id = %peer_id, org = %inner.org, network = %inner.config.network.id, "node started");
    Ok(NodeHandle { inner })
}

impl NodeHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// This node's organization.
    pub fn org(&self) -> &str {
        &self.inner.org
    }

    /// Ticks whenever records are stored (own or from peers): await
    /// `changed()` instead of sleeping.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Waits (a while) until the own seq counter is confirmed by a peer, so
    /// a restored node never signs a seq its peers already hold.
    async fn wait_for_own_seq(&self) -> Result<(), SubmitError> {
        if *self.inner.own_seq_known.borrow() {
            return Ok(());
        }
        let mut known = self.inner.own_seq_known.subscribe();
        let confirmed = matches!(
            tokio::time::timeout(OWN_SEQ_WAIT, known.wait_for(|k| *k)).await,
            Ok(Ok(_))
        );
        if confirmed {
            Ok(())
        } else {
            Err(SubmitError::OwnSeqUnconfirmed)
        }
    }

    /// Whether the store writes (for `/healthz`), and its error counts.
    pub fn store_health(&self) -> StoreHealth {
        self.inner.store.health()
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Submits a batch of sightings. The batch is validated whole: one invalid
    /// item rejects all of it and nothing is stored. Returns once every record
    /// is durable on disk; then publishes them. Re-submitting a number
    /// publishes a new seq that supersedes this organization's earlier report.
    ///
    /// # Panics
    /// Only if an internal store task panicked (a bug).
    ///
    /// # Errors
    /// [`SubmitError`].
    pub async fn submit(&self, batch: Vec<Submission>) -> Result<Vec<Receipt>, SubmitError> {
        if batch.is_empty() || batch.len() > MAX_BATCH {
            return Err(SubmitError::BatchSize(batch.len()));
        }
        let now = self.inner.clock.now();
        // Parsing 10,000 numbers takes ~0.1 s: off the async workers, and
        // before the submit lock so concurrent submitters parse in parallel.
        let handle = self.clone();
        let planned = blocking(move || handle.prepare(&batch, now)).await?;
        self.wait_for_own_seq().await?;
        let _order = self.inner.submit_lock.lock().await;
        // A store that failed to write acknowledges nothing until the node
        // has reopened it (store_task).
        self.inner.store.ensure_writable()?;
        // Repeats of stored reports are looked for under the lock, so a
        // retry of a request still in flight finds the report it signed.
        let handle = self.clone();
        let planned = blocking(move || handle.look_again(planned, now)).await?;
        let (slots, prepared) = slots_of(planned);
        if prepared.is_empty() {
            return Ok(receipts_of(slots, &[]));
        }
        // Peers ignore what is over this organization's limits: refuse it
        // here, before anything is signed.
        let entries: Vec<(u64, sightline_protocol::NumberHash)> = prepared
            .iter()
            .map(|(s, _)| (s.last_seen, s.number))
            .collect();
        let (store, origin) = (self.inner.store.clone(), self.inner.signing.origin());
        match blocking(move || store.room(&origin, now, &entries)).await? {
            crate::store::Room::Fits => {}
            crate::store::Room::Wait(retry_after) => {
                return Err(SubmitError::OverLimit {
                    retry_after,
                    limits: self.inner.store.limits(),
                })
            }
            crate::store::Room::Never(limit) => {
                return Err(SubmitError::BatchOverLimit {
                    limit,
                    limits: self.inner.store.limits(),
                })
            }
        }
        let inner = self.inner.clone();
        let records = blocking(
            move || -> Result<Vec<(SignedSighting, String)>, StoreError> {
                let n = u64::try_from(prepared.len()).expect("batch fits u64");
                let seqs = inner.store.reserve_own_seqs(n)?;
                let mut out = Vec::with_capacity(prepared.len());
                let mut rows = Vec::with_capacity(prepared.len());
                for ((mut sighting, e164), seq) in prepared.into_iter().zip(seqs) {
                    sighting.seq = seq;
                    let record = sighting.sign(&inner.signing).expect("validated in prepare");
                    let s = record.sighting();
                    let purge =
                        ingest::purge_at(s.last_seen, s.expires, inner.config.retention_secs);
                    rows.push((record.clone(), purge, e164.clone()));
                    out.push((record, e164));
                }
                // One transaction: the batch and its raw numbers are stored
                // whole or not at all.
                inner.store.insert_own(&rows)?;
                inner.store.flush()?;
                Ok(out)
            },
        )
        .await?;
        self.inner
            .changes
            .send_modify(|c| *c += records.len() as u64);
        let mut minted = Vec::with_capacity(records.len());
        for (record, e164) in records {
            Metrics::incr(&self.inner.metrics.submitted);
            minted.push(Receipt {
                id: record.id().to_hex(),
                seq: record.sighting().seq,
                number: e164,
                existing: false,
            });
            if self
                .inner
                .client
                .publish(record.as_bytes().to_vec())
                .await
                .is_err()
            {
                tracing::warn!("network stopped; record stored and will be shared by catch-up");
            }
        }
        Ok(receipts_of(slots, &minted))
    }

    /// Validates a batch into unsigned records (seq filled in later), and
    /// finds the items that repeat a current report within the
    /// resubmission window (or an earlier item of the batch).
    fn prepare(&self, batch: &[Submission], now: u64) -> Result<Vec<Planned>, SubmitError> {
        let mut errors = Vec::new();
        let mut prepared = Vec::with_capacity(batch.len());
        let key = &self.inner.config.network.hash_key;
        // Numbers this batch itself reports before a withdrawal of them.
        let mut reported_here = std::collections::HashSet::new();
        // Per number: the batch's last item of it and what it said.
        let mut last_here: std::collections::HashMap<
            sightline_protocol::NumberHash,
            (usize, Facts),
        > = std::collections::HashMap::new();
        for (index, item) in batch.iter().enumerate() {
            let fail = |code: &'static str, reason: String| ItemError {
                index,
                number: item.number.clone(),
                code,
                reason,
            };
            let parsed =
                match parse_number_with(&item.number, item.region.as_deref(), letters(item.vanity))
                {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push(fail(e.code(), e.to_string()));
                        continue;
                    }
                };
            let (first_seen, last_seen) = match self.seen_times(item, now) {
                Ok(times) => times,
                Err((code, reason)) => {
                    errors.push(fail(code, reason));
                    continue;
                }
            };
            let sighting = Sighting {
                network: self.inner.config.network.id.clone(),
                origin: self.inner.signing.origin(),
                seq: 1,
                number: key.number_hash(&parsed.e164),
                block: key.block_hash(&parsed.e164),
                cc: parsed.country_code,
                line: parsed.line,
                kind: item.kind,
                verdict: item.verdict,
                channel: item.channel,
                brand: item.brand.clone().filter(|b| !b.trim().is_empty()),
                confidence: item.confidence,
                count: item.count,
                first_seen,
                last_seen,
                expires: item.expires,
            };
            if let Err(e) = sighting.validate() {
                errors.push(fail("invalid_field", e.to_string()));
                continue;
            }
            if let Err(e) = sighting.check_time(now, self.inner.config.max_clock_skew_secs) {
                errors.push(fail("bad_time", e.to_string()));
                continue;
            }
            let facts = Facts::of(&sighting);
            let first = !last_here.contains_key(&sighting.number);
            let repeat = self.repeat_in_batch(&sighting, &facts, &last_here);
            last_here.insert(sighting.number, (index, facts));
            if let Some(planned) = repeat {
                prepared.push(planned);
                continue;
            }
            if sighting.verdict == Verdict::Withdrawn {
                // A withdrawal is a signed record every peer sees: only for
                // a report this organization has and has not withdrawn.
                let live = reported_here.contains(&sighting.number)
                    || self.inner.store.has_live_report(
                        &sighting.origin,
                        &sighting.number,
                        &sighting.block,
                    )?;
                if !live {
                    errors.push(fail(
                        NOTHING_TO_WITHDRAW,
                        format!(
                            "this organization has no current report of {} to withdraw",
                            parsed.e164
                        ),
                    ));
                    continue;
                }
                reported_here.remove(&sighting.number);
            } else {
                reported_here.insert(sighting.number);
            }
            prepared.push(Planned::Mint(
                sighting,
                parsed.e164.as_str().to_owned(),
                first,
            ));
        }
        if errors.is_empty() {
            Ok(prepared)
        } else {
            Err(SubmitError::Invalid(errors))
        }
    }

    /// An item's (`first_seen`, `last_seen`), or the item error code and
    /// reason for times in the future or past retention.
    fn seen_times(
        &self,
        item: &Submission,
        now: u64,
    ) -> Result<(u64, u64), (&'static str, String)> {
        let skew = self.inner.config.max_clock_skew_secs;
        if item
            .last_seen
            .or(item.first_seen)
            .is_some_and(|t| t > now.saturating_add(skew))
        {
            return Err((
                "bad_time",
                format!("timestamps may not be later than now ({now}) plus {skew} s"),
            ));
        }
        // Within the allowed skew a client clock ahead of ours is clamped
        // to now, so peers never see a record from their future.
        let first_seen = item
            .first_seen
            .map_or_else(|| item.last_seen.unwrap_or(now).min(now), |t| t.min(now));
        let last_seen = item.last_seen.map_or(now, |t| t.min(now)).max(first_seen);
        if last_seen.saturating_add(self.inner.config.retention_secs) <= now {
            return Err((
                "past_retention",
                format!("last_seen {last_seen} is older than the retention period"),
            ));
        }
        Ok((first_seen, last_seen))
    }

    /// Whether an item repeats the batch's last item for its number (the
    /// same facts): its receipt will be that item's. Whether it repeats a
    /// stored report is looked up once, under the submit lock
    /// ([`NodeHandle::look_again`]). Withdrawals are never repeats (a second
    /// one is refused: nothing to withdraw).
    fn repeat_in_batch(
        &self,
        sighting: &Sighting,
        facts: &Facts,
        last_here: &std::collections::HashMap<sightline_protocol::NumberHash, (usize, Facts)>,
    ) -> Option<Planned> {
        if self.inner.config.resubmit_window_secs == 0 || sighting.verdict == Verdict::Withdrawn {
            return None;
        }
        let (earlier, said) = last_here.get(&sighting.number)?;
        (said == facts).then_some(Planned::Repeat(*earlier))
    }

    /// The receipt of this organization's current report of the number if
    /// `sighting` repeats it: the same facts, and either within the
    /// resubmission window of its `last_seen` or the same times exactly (a
    /// retried import of an older sighting). A report past its `expires`
    /// is not repeated: the new one renews it.
    fn stored_repeat(
        &self,
        sighting: &Sighting,
        e164: &str,
        now: u64,
    ) -> Result<Option<Receipt>, StoreError> {
        let window = self.inner.config.resubmit_window_secs;
        if window == 0 || sighting.verdict == Verdict::Withdrawn {
            return Ok(None);
        }
        let current =
            self.inner
                .store
                .current_report(&sighting.origin, &sighting.number, &sighting.block)?;
        Ok(current.and_then(|(id, report)| {
            let live = report.expires.is_none_or(|e| e > now);
            let recent = now < report.last_seen.saturating_add(window);
            let same_times =
                (report.first_seen, report.last_seen) == (sighting.first_seen, sighting.last_seen);
            (live && Facts::of(&report) == Facts::of(sighting) && (recent || same_times)).then(
                || Receipt {
                    id: id.to_hex(),
                    seq: report.seq,
                    number: e164.to_owned(),
                    existing: true,
                },
            )
        }))
    }

    /// [`NodeHandle::prepare`]'s plan, with each item that is the first of
    /// its number checked against the store (under the submit lock, so a
    /// retry of a request still in flight finds the report it signed).
    fn look_again(&self, planned: Vec<Planned>, now: u64) -> Result<Vec<Planned>, StoreError> {
        planned
            .into_iter()
            .map(|item| match item {
                Planned::Mint(sighting, e164, true) => {
                    Ok(match self.stored_repeat(&sighting, &e164, now)? {
                        Some(receipt) => Planned::Existing(receipt),
                        None => Planned::Mint(sighting, e164, true),
                    })
                }
                other => Ok(other),
            })
            .collect()
    }

    /// Withdraws this organization's report of a number (a new seq with
    /// verdict `withdrawn`, which counts zero everywhere).
    ///
    /// # Errors
    /// [`SubmitError`].
    pub async fn withdraw(
        &self,
        number: &str,
        region: Option<&str>,
    ) -> Result<Receipt, SubmitError> {
        self.withdraw_with(number, region, Letters::Refuse).await
    }

    /// [`NodeHandle::withdraw`], reading letters as `letters` says.
    ///
    /// # Errors
    /// As [`NodeHandle::submit`].
    pub async fn withdraw_with(
        &self,
        number: &str,
        region: Option<&str>,
        letters: Letters,
    ) -> Result<Receipt, SubmitError> {
        let mut item = Submission::new(number, Kind::Other);
        item.region = region.map(str::to_owned);
        item.verdict = Verdict::Withdrawn;
        item.confidence = 0;
        item.vanity = letters == Letters::Vanity;
        if let Ok(parsed) = parse_number_with(number, region, letters) {
            let key = &self.inner.config.network.hash_key;
            let (hash, block) = (key.number_hash(&parsed.e164), key.block_hash(&parsed.e164));
            let store = self.inner.store.clone();
            let own = self.inner.signing.origin();
            let reports =
                blocking(move || store.reports(&hash, &block, u64::MAX, |_| false)).await?;
            if let Some(mine) = reports.current.iter().find(|s| s.origin == own) {
                item.kind = mine.kind;
                item.channel = mine.channel;
            }
        }
        let mut receipts = self.submit(vec![item]).await?;
        Ok(receipts.remove(0))
    }

    /// Looks one number up.
    ///
    /// # Errors
    /// [`LookupError`].
    pub async fn lookup(&self, number: &str, region: Option<&str>) -> Result<Lookup, LookupError> {
        self.lookup_with(number, region, Letters::Refuse).await
    }

    /// Looks one number up, reading letters as `letters` says.
    ///
    /// # Errors
    /// [`LookupError`].
    pub async fn lookup_with(
        &self,
        number: &str,
        region: Option<&str>,
        letters: Letters,
    ) -> Result<Lookup, LookupError> {
        let parsed =
            parse_number_with(number, region, letters).map_err(|error| LookupError::Number {
                input: number.to_owned(),
                error,
            })?;
        let now = self.inner.clock.now();
        let inner = self.inner.clone();
        blocking(move || inner.lookup_parsed(&parsed, now)).await
    }

    /// Looks up many numbers (at most [`MAX_BATCH`]); one result per input.
    pub async fn lookup_many(
        &self,
        numbers: Vec<String>,
        region: Option<String>,
        letters: Letters,
    ) -> Vec<Result<Lookup, LookupError>> {
        let now = self.inner.clock.now();
        let inner = self.inner.clone();
        blocking(move || {
            numbers
                .iter()
                .take(MAX_BATCH)
                .map(|n| {
                    let parsed =
                        parse_number_with(n, region.as_deref(), letters).map_err(|error| {
                            LookupError::Number {
                                input: n.clone(),
                                error,
                            }
                        })?;
                    inner.lookup_parsed(&parsed, now)
                })
                .collect()
        })
        .await
    }

    /// The most recently stored sightings, newest first.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn recent(&self, limit: usize) -> Result<Vec<RecentSighting>, StoreError> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut out = Vec::new();
            for (id, s) in inner.store.recent(limit.min(1000))? {
                out.push(RecentSighting {
                    id: id.to_hex(),
                    org: inner.org_of(&s.origin),
                    number: if s.origin == inner.signing.origin() {
                        inner.store.own_number(&s.number)?
                    } else {
                        None
                    },
                    number_hash: s.number.to_hex(),
                    cc: s.cc,
                    line: s.line,
                    kind: s.kind,
                    verdict: s.verdict,
                    channel: s.channel,
                    brand: s.brand,
                    confidence: s.confidence,
                    count: s.count,
                    last_seen: s.last_seen,
                    seq: s.seq,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Every member node, connected or not.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        let mut peers = self.inner.client.peers().await.unwrap_or_default();
        let config = &self.inner.config;
        for p in &mut peers {
            p.trust = config
                .network
                .members
                .iter()
                .find(|m| m.peer_id.to_string() == p.peer_id)
                .map(|m| config.trust_of(m, &self.inner.peer_id));
        }
        peers
    }

    /// Node status.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn status(&self) -> Result<Status, StoreError> {
        let net = self.inner.client.status().await.unwrap_or_default();
        let inner = self.inner.clone();
        blocking(move || {
            let m = &inner.metrics;
            let load =
                |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            // One read of the origins' progress serves the count, the
            // per-origin table and the set digest.
            let progress = inner.store.progress()?;
            Ok(Status {
                peer_id: inner.peer_id.to_string(),
                org: inner.org.clone(),
                network: inner.config.network.id.to_string(),
                network_name: inner.config.network.name.clone(),
                records: progress.iter().map(|p| p.count).sum(),
                own_seq: inner.store.last_own_seq()?,
                origins: progress
                    .iter()
                    .map(|p| OriginStatus {
                        org: inner.org_of(&p.origin),
                        origin: p.origin.to_hex(),
                        count: p.count,
                        max_seq: p.max_seq,
                        contiguous: p.contiguous,
                    })
                    .collect(),
                net,
                received: load(&m.received),
                stored_from_peers: load(&m.stored),
                submitted: load(&m.submitted),
                sync_exchanges: load(&m.sync_exchanges),
                sync_pages: load(&m.sync_pages),
                sync_throttled: load(&m.sync_throttled),
                rejected: m.rejected(),
                equivocations: inner
                    .store
                    .equivocations()?
                    .into_iter()
                    .map(|(o, n)| (inner.org_of(&o), n))
                    .collect(),
                over_limit: m
                    .over_limit_counts()
                    .into_iter()
                    .map(|(o, n)| (inner.org_of(&o), n))
                    .collect(),
                limits: inner.store.limits(),
                disk_bytes: inner.store.size_on_disk()?,
                set_digest: set_digest(&progress),
                store: inner.store.health(),
                own_seq_confirmed: *inner.own_seq_known.borrow(),
            })
        })
        .await
    }

    /// A digest over the ids of every stored record: equal on two nodes iff
    /// they hold the same set (used by tests and operators to check convergence).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn set_digest(&self) -> Result<String, StoreError> {
        let store = self.inner.store.clone();
        blocking(move || Ok(set_digest(&store.progress()?))).await
    }

    /// Writes an encrypted backup of this node (its records, evidence, raw
    /// own numbers, seq counter and key) to `out` as it reads the store:
    /// nothing waits for it and memory stays flat (see [`crate::backup`]).
    ///
    /// # Errors
    /// [`BackupError`](crate::backup::BackupError): the store, or `out`.
    pub async fn backup(
        &self,
        encryption: crate::backup::Encryption,
        out: impl std::io::Write + Send + 'static,
    ) -> Result<crate::backup::Summary, crate::backup::BackupError> {
        let inner = self.inner.clone();
        blocking(move || {
            crate::backup::write(&inner.store, &inner.signing.to_seed(), &encryption, out)
        })
        .await
    }

    /// Stops the node: cancels every task (network, ingest, catch-up,
    /// serving), waits for all of them, a running purge included, and only
    /// then flushes the store.
    ///
    /// # Panics
    /// Only if an internal store task panicked (a bug).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        let store = self.inner.store.clone();
        if let Err(e) = blocking(move || store.flush()).await {
            tracing::error!(error = %e, "store flush at shutdown failed");
        }
        tracing::info!("node stopped");
    }
}

impl Inner {
    fn org_of(&self, origin: &OriginId) -> String {
        self.config.network.member_by_origin(origin).map_or_else(
            || format!("unknown ({})", &origin.to_hex()[..12]),
            |m| m.org.clone(),
        )
    }

    fn trust_of(&self, origin: &OriginId) -> f64 {
        self.config
            .network
            .member_by_origin(origin)
            .map_or(0.0, |m| self.config.trust_of(m, &self.peer_id))
    }

    fn lookup_parsed(
        &self,
        parsed: &sightline_protocol::ParsedNumber,
        now: u64,
    ) -> Result<Lookup, LookupError> {
        let key = &self.config.network.hash_key;
        // Block activity counts trusted organizations only: a member at
        // trust 0 cannot raise it.
        let found = self.store.reports(
            &key.number_hash(&parsed.e164),
            &key.block_hash(&parsed.e164),
            now.saturating_sub(BLOCK_WINDOW_SECS),
            |origin| self.trusted.contains(origin),
        )?;
        let reports: Vec<Report> = found
            .current
            .into_iter()
            .map(|s| Report {
                org: self.org_of(&s.origin),
                trust: self.trust_of(&s.origin),
                sighting: s,
            })
            .collect();
        let score = reputation::score(&reports, now, self.config.half_life_secs);
        Ok(Lookup {
            number: parsed.e164.as_str().to_owned(),
            country: parsed.region.clone(),
            cc: parsed.country_code,
            line_type: parsed.line,
            score,
            block_activity: found.block_activity,
        })
    }
}

/// `count:xor-of-ids` over the whole store, from every origin's progress.
fn set_digest(progress: &[OriginProgress]) -> String {
    let mut all = [0u8; 32];
    let mut count = 0;
    for p in progress {
        count += p.count;
        for (a, b) in all.iter_mut().zip(p.digest) {
            *a ^= b;
        }
    }
    format!("{count}:{}", SightingId::from_bytes(all).to_hex())
}

/// Where a received record came from.
#[derive(Debug, Clone)]
enum Source {
    Gossip { message_id: MessageId, peer: PeerId },
    Sync { peer: PeerId },
}

#[derive(Debug)]
struct IngestItem {
    data: Vec<u8>,
    source: Source,
}

struct IngestTask {
    ingestor: Ingestor,
    /// Shared with the core task's catch-up.
    retry_pulls: RetryPulls,
    changes: Arc<watch::Sender<u64>>,
    client: Client,
}

async fn ingest_task(
    task: IngestTask,
    mut queue: mpsc::Receiver<IngestItem>,
    shutdown: CancellationToken,
) {
    let mut pipeline = IngestPipeline::new(task.ingestor.clone());
    // Sources of the batch being stored, in order.
    let mut storing: Vec<Source> = Vec::new();
    loop {
        let first = tokio::select! {
            item = queue.recv() => match item { Some(i) => i, None => break },
            () = shutdown.cancelled() => break,
        };
        let mut batch = vec![first];
        while batch.len() < INGEST_BATCH {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (data, sources): (Vec<Vec<u8>>, Vec<Source>) =
            batch.into_iter().map(|i| (i.data, i.source)).unzip();
        // Under load the next batch is checked while this one is stored;
        // when the queue is empty, finish at once so gossip is not held.
        if let Some(results) = pipeline.push(data).await {
            if task
                .report(std::mem::take(&mut storing), results)
                .await
                .is_err()
            {
                return;
            }
        }
        storing = sources;
        if queue.is_empty() {
            if let Some(results) = pipeline.finish().await {
                if task
                    .report(std::mem::take(&mut storing), results)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    if let Some(results) = pipeline.finish().await {
        let _ = task.report(storing, results).await;
    }
}

impl IngestTask {
    /// Announces what was stored and answers gossipsub (Accept / Reject /
    /// Ignore) for each record; penalizes senders of invalid records.
    /// Fails when the network loop has stopped.
    async fn report(
        &self,
        sources: Vec<Source>,
        results: Vec<Result<(), Rejection>>,
    ) -> Result<(), network::Stopped> {
        let stored = results.iter().filter(|r| r.is_ok()).count() as u64;
        if stored > 0 {
            self.changes.send_modify(|c| *c += stored);
        }
        for (source, result) in sources.into_iter().zip(results) {
            let invalid = matches!(
                result,
                Err(Rejection {
                    severity: Severity::Reject,
                    ..
                })
            );
            let sender = match &source {
                Source::Gossip { peer, .. } | Source::Sync { peer } => *peer,
            };
            if matches!(&result, Err(r) if r.is_transient()) {
                self.retry_pulls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(sender);
            }
            if invalid {
                self.client.invalid_from(sender).await?;
            }
            if let Source::Gossip { message_id, peer } = source {
                let acceptance = match result {
                    Ok(()) => MessageAcceptance::Accept,
                    Err(Rejection {
                        severity: Severity::Reject,
                        ..
                    }) => MessageAcceptance::Reject,
                    Err(Rejection {
                        severity: Severity::Ignore,
                        ..
                    }) => MessageAcceptance::Ignore,
                };
                self.client.validate(message_id, peer, acceptance).await?;
            }
        }
        Ok(())
    }
}

/// Peers to pull from again (see `CoreTask::retry_pulls`).
type RetryPulls = Arc<std::sync::Mutex<std::collections::HashSet<PeerId>>>;

/// A peer's advertised (count, digest) for one origin, and this node's.
type PeerSetSummary = ((u64, [u8; 32]), (u64, [u8; 32]));

/// The summary a completed pull of `origin` from a peer advertising
/// `entry` is remembered by, given what this node `held`.
fn pull_summary(
    held: &std::collections::HashMap<OriginId, (u64, [u8; 32])>,
    origin: &OriginId,
    entry: &catchup::ProgressEntry,
) -> PeerSetSummary {
    (
        (entry.count, entry.digest),
        held.get(origin).copied().unwrap_or((0, [0; 32])),
    )
}

/// Most gaps of one origin pulled from one peer in one catch-up round; the
/// rest wait for the next round.
const MAX_GAPS: usize = 256;

/// How a [`CoreTask::pull_range`] ended.
enum Pulled {
    /// Every record of the range the peer holds was received.
    Done,
    /// Cut short (the peer was busy or answered oddly): pull again later.
    Partly,
    /// The node is stopping or the peer is gone: end this catch-up.
    Stop,
}

struct CoreTask {
    /// Per (peer, origin): the peer's (count, digest) and this node's when
    /// a pull from it last completed. If neither changed, the peer has
    /// nothing this node has not already received from it, so no pull (gaps
    /// no peer holds, such as seqs purged network-wide, would otherwise be
    /// re-pulled every round). If this node's changed, records it refused
    /// may fit now (a late lower seq evicted what was over an origin's
    /// limits), so it pulls again.
    pulled: std::sync::Mutex<std::collections::HashMap<(PeerId, OriginId), PeerSetSummary>>,
    /// Whether the own seq counter is confirmed (shared with submit).
    own_seq_known: Arc<watch::Sender<bool>>,
    /// Peers that sent records refused for a transient reason
    /// ([`Rejection::is_transient`]), marked by the ingest task: their
    /// `pulled` entries are forgotten at the next catch-up.
    retry_pulls: RetryPulls,
    /// This node's origin: purges forget the raw numbers of its own reports.
    own: OriginId,
    /// Retention, seconds: equivocation evidence is purged with it.
    retention: u64,
    store: Store,
    client: Client,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    members: HashSet<OriginId>,
    ingest: mpsc::Sender<IngestItem>,
    sync_interval: Duration,
    /// Where the catch-up, serving and purge tasks are spawned, so that
    /// shutdown joins them.
    tasks: TaskTracker,
    /// Cancels a catch-up in progress at shutdown.
    shutdown: CancellationToken,
    /// Held by the running purge: a purge tick while one runs is skipped.
    purging: Arc<tokio::sync::Mutex<()>>,
}

async fn core_task(task: CoreTask, mut events: mpsc::Receiver<NetworkEvent>) {
    let task = Arc::new(task);
    let limiter: RateLimiter = governor::RateLimiter::hashmap(catchup::quota());
    let mut connected: HashSet<PeerId> = HashSet::new();
    let running: Arc<std::sync::Mutex<HashSet<PeerId>>> = Arc::default();
    let mut sync_tick = tokio::time::interval(task.sync_interval);
    sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut purge_tick = tokio::time::interval(PURGE_INTERVAL);
    purge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let start_catch_up = |peer: PeerId| {
        if running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(peer)
        {
            let task = task.clone();
            let running = running.clone();
            task.tasks.clone().spawn(async move {
                task.shutdown.run_until_cancelled(task.catch_up(peer)).await;
                running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&peer);
            });
        }
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(NetworkEvent::Gossip { message_id, source, data }) => {
                    let item = IngestItem { data, source: Source::Gossip { message_id, peer: source } };
                    if task.ingest.send(item).await.is_err() {
                        break;
                    }
                }
                Some(NetworkEvent::CatchUpRequest { peer, request, channel }) => {
                    if limiter.check_key(&peer).is_ok() {
                        let serving = task.clone();
                        task.tasks.spawn(async move {
                            let response = serving.serve(request).await;
                            let _ = serving.client.respond(channel, response).await;
                        });
                    } else {
                        Metrics::incr(&task.metrics.sync_throttled);
                        let client = task.client.clone();
                        task.tasks.spawn(async move {
                            let _ = client.respond(channel, CatchUpResponse::Busy).await;
                        });
                    }
                }
                Some(NetworkEvent::Connected(peer)) => {
                    connected.insert(peer);
                    start_catch_up(peer);
                }
                Some(NetworkEvent::Disconnected(peer)) => {
                    // The rate-limit bucket is kept: reconnecting must not
                    // buy a fresh burst. Only members connect, so it is bounded.
                    connected.remove(&peer);
                }
                None => break,
            },
            _ = sync_tick.tick() => {
                for peer in &connected {
                    start_catch_up(*peer);
                }
            }
            _ = purge_tick.tick() => {
                // One purge at a time: a tick while the last one still runs
                // (a large store, a slow disk) is skipped.
                let Ok(running) = task.purging.clone().try_lock_owned() else {
                    tracing::debug!("purge still running; tick skipped");
                    continue;
                };
                let store = task.store.clone();
                let now = task.clock.now();
                let own = task.own;
                let retention = task.retention;
                // Off the loop: a long purge must not stall event routing.
                task.tasks.spawn(async move {
                    match blocking(move || store.purge(now, &own, retention)).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "purged expired records"),
                        Err(e) => tracing::error!(error = %e, "purge failed"),
                    }
                    drop(running);
                });
            }
            () = task.shutdown.cancelled() => break,
        }
    }
}

impl CoreTask {
    async fn serve(&self, request: CatchUpRequest) -> CatchUpResponse {
        let store = self.store.clone();
        let result = blocking(move || -> Result<CatchUpResponse, StoreError> {
            Ok(match request {
                CatchUpRequest::Progress(_) => CatchUpResponse::Progress(
                    store
                        .progress()?
                        .iter()
                        .take(catchup::MAX_PROGRESS_ENTRIES)
                        .map(catchup::ProgressEntry::from)
                        .collect(),
                ),
                CatchUpRequest::Pull {
                    origin,
                    after,
                    limit,
                } => {
                    let limit = usize::try_from(limit.clamp(1, catchup::MAX_PAGE)).expect("small");
                    let (records, more) =
                        store.page(&OriginId::from_bytes(origin), after, limit)?;
                    CatchUpResponse::Records {
                        records: records
                            .into_iter()
                            .map(serde_bytes::ByteBuf::from)
                            .collect(),
                        more,
                    }
                }
            })
        })
        .await;
        result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "catch-up request failed");
            CatchUpResponse::Busy
        })
    }

    /// The first peer to answer tells a restored or re-created store the
    /// highest seq it holds of this node's origin: the counter is raised
    /// past it before anything is signed, and the store remembers that it
    /// is confirmed.
    async fn confirm_own_seq(&self, theirs: &[catchup::ProgressEntry]) {
        if *self.own_seq_known.borrow() {
            return;
        }
        let held = theirs
            .iter()
            .find(|e| e.origin == *self.own.as_bytes())
            .map(|e| e.max_seq);
        let store = self.store.clone();
        let confirmed = blocking(move || -> Result<(), StoreError> {
            if let Some(seq) = held {
                store.raise_own_seq(seq)?;
            }
            store.confirm_own_seq()
        })
        .await;
        match confirmed {
            Ok(()) => {
                tracing::info!(
                    peers_highest = held.unwrap_or(0),
                    "own seq confirmed by a peer; submissions open"
                );
                self.own_seq_known.send_replace(true);
            }
            Err(e) => tracing::error!(error = %e, "confirming the own seq failed"),
        }
    }

    /// Records `peer` sent were refused for a passing reason (a full disk,
    /// clock skew): what was pulled from it is pulled again.
    fn forget_pulls_if_refused(&self, peer: PeerId) {
        if self
            .retry_pulls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&peer)
        {
            self.pulled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .retain(|(p, _), _| *p != peer);
        }
    }

    /// Pulls `origin`'s records `first..=last` from `peer`, page by page,
    /// into ingest. A peer that lacks some of them answers with the next
    /// ones it holds; the pull stops at `last` either way.
    async fn pull_range(&self, peer: PeerId, origin: OriginId, first: u64, last: u64) -> Pulled {
        let mut after = first - 1;
        // A range of n seqs takes at most n / MAX_PAGE + 1 pages.
        let mut pages_left = (last - after) / u64::from(catchup::MAX_PAGE) + 2;
        let mut busy_retries = 0;
        while pages_left > 0 {
            pages_left -= 1;
            let limit = u32::try_from((last - after).min(u64::from(catchup::MAX_PAGE)))
                .unwrap_or(catchup::MAX_PAGE);
            let request = CatchUpRequest::Pull {
                origin: *origin.as_bytes(),
                after,
                limit,
            };
            match self.client.request(peer, request).await {
                Ok(CatchUpResponse::Records { records, more }) => {
                    Metrics::incr(&self.metrics.sync_pages);
                    let last_seq = records
                        .last()
                        .and_then(|r| UnverifiedSighting::decode(r).ok())
                        .filter(|r| r.sighting().origin == origin)
                        .map(|r| r.sighting().seq);
                    for record in records {
                        let item = IngestItem {
                            data: record.into_vec(),
                            source: Source::Sync { peer },
                        };
                        if self.ingest.send(item).await.is_err() {
                            return Pulled::Stop;
                        }
                    }
                    busy_retries = 0;
                    match last_seq {
                        Some(seq) if seq > after && seq < last && more => after = seq,
                        Some(_) => return Pulled::Done,
                        None if !more => return Pulled::Done,
                        None => return Pulled::Partly,
                    }
                }
                Ok(CatchUpResponse::Busy) if busy_retries < 5 => {
                    busy_retries += 1;
                    pages_left += 1;
                    tokio::time::sleep(Duration::from_millis(500 * busy_retries)).await;
                }
                Ok(_) => return Pulled::Partly,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "catch-up pull failed");
                    return Pulled::Stop;
                }
            }
        }
        Pulled::Partly
    }

    /// One catch-up exchange with a peer: progress, then pages of what is missing.
    async fn catch_up(&self, peer: PeerId) {
        self.forget_pulls_if_refused(peer);
        let store = self.store.clone();
        let Ok(Ok(mine)) = tokio::task::spawn_blocking(move || store.progress()).await else {
            return;
        };
        let request =
            CatchUpRequest::Progress(mine.iter().map(catchup::ProgressEntry::from).collect());
        let theirs = match self.client.request(peer, request).await {
            Ok(CatchUpResponse::Progress(theirs)) => {
                Metrics::incr(&self.metrics.sync_exchanges);
                theirs
            }
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "catch-up progress request failed");
                return;
            }
        };
        self.confirm_own_seq(&theirs).await;
        let advertised: std::collections::HashMap<OriginId, catchup::ProgressEntry> = theirs
            .iter()
            .map(|e| (OriginId::from_bytes(e.origin), *e))
            .collect();
        let held: std::collections::HashMap<OriginId, (u64, [u8; 32])> = mine
            .iter()
            .map(|p| (p.origin, (p.count, p.digest)))
            .collect();
        let summary = |o: &OriginId, e: &catchup::ProgressEntry| pull_summary(&held, o, e);
        let pulls = catchup::plan(&mine, &theirs, |o| {
            self.members.contains(o)
                && advertised.get(o).is_none_or(|e| {
                    self.pulled
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get(&(peer, *o))
                        != Some(&summary(o, e))
                })
        });
        for (origin, _) in pulls {
            let Some(entry) = advertised.get(&origin).copied() else {
                continue;
            };
            // Only what is missing: the gaps above this node's contiguous
            // mark, up to the peer's highest seq. Records stored or refused
            // for good are not fetched again, whatever the gaps.
            let store = self.store.clone();
            let gaps = blocking(move || store.gaps(&origin, entry.max_seq, MAX_GAPS)).await;
            let Ok(gaps) = gaps else {
                continue;
            };
            let mut complete = gaps.len() < MAX_GAPS;
            for (first, last) in gaps {
                match self.pull_range(peer, origin, first, last).await {
                    Pulled::Done => {}
                    Pulled::Partly => complete = false,
                    Pulled::Stop => return,
                }
            }
            if complete {
                self.pulled
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert((peer, origin), summary(&origin, &entry));
            }
        }
    }
}
