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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use crate::task::blocking;

use crate::catchup::{self, CatchUpRequest, CatchUpResponse, RateLimiter};
use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::identity::{IdentityError, NodeIdentity};
use crate::ingest::{self, Metrics, Rejection, Severity};
use crate::network::{self, Client, NetworkEvent, NetworkStatus, PeerInfo};
use crate::pipeline::{IngestPipeline, Ingestor, INGEST_BATCH};
use crate::reputation::{self, Report, Score};
use crate::store::{OriginProgress, Store, StoreError, StoreHealth};

mod campaigns;
mod core;
mod export;
pub mod feed;
mod ingest_task;
mod query;
mod submit;

pub use self::campaigns::{CampaignDetail, CampaignReport, CampaignSummary, Neighbours};
use self::core::{core_task, store_task, CoreTask, RetryPulls};
pub use self::export::{OwnReport, OwnReports, MAX_EXPORT};
use self::ingest_task::{ingest_task, IngestItem, IngestTask, Source};

/// Largest batch accepted by [`NodeHandle::submit`] and lookups.
pub const MAX_BATCH: usize = 10_000;
/// Window for same-block activity.
pub const BLOCK_WINDOW_SECS: u64 = 30 * 86_400;
/// Capacity of the ingest queue.
const INGEST_QUEUE: usize = 4096;
/// Origins' item sets a node keeps built for answering reconciliations
/// ([`crate::reconcile::SetCache`]).
const SET_CACHE: usize = 8;
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
#[derive(Debug, Clone, serde::Deserialize, Serialize, utoipa::ToSchema)]
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
    #[schema(max_length = 64)]
    pub brand: Option<String>,
    /// 0–100, default 70.
    #[serde(default = "default_confidence")]
    #[schema(maximum = 100, default = 70)]
    pub confidence: u8,
    /// Observations, default 1.
    #[serde(default = "default_count")]
    #[schema(minimum = 1, default = 1)]
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
    /// Links in the lure: each becomes its registrable domain's token
    /// (record version 2, SPEC.md §13; at most 8 links per record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// The email address, SMS sender id or short code the lure came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// The analyst's name for the operation (hashed: only members holding
    /// the same tag link on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub campaign: Option<String>,
    /// The lure's text: fingerprinted on this node (a keyed `SimHash`),
    /// never stored or sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// With verdict `protected`: how this organization uses the number it
    /// operates (`inbound-only` or `outbound`, SPEC.md §13.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<sightline_protocol::Role>,
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
            urls: Vec::new(),
            sender: None,
            campaign: None,
            message: None,
            role: None,
        }
    }

    /// This organization's attestation that it operates `number`.
    pub fn protect(number: impl Into<String>, role: sightline_protocol::Role) -> Self {
        let mut s = Submission::new(number, Kind::Other);
        s.verdict = Verdict::Protected;
        s.channel = Channel::Voice;
        s.confidence = 100;
        s.role = Some(role);
        s
    }

    /// The links the item gives, as protocol input.
    pub fn link_input(&self) -> sightline_protocol::LinkInput {
        sightline_protocol::LinkInput {
            urls: self.urls.clone(),
            sender: self.sender.clone(),
            campaign: self.campaign.clone(),
            message: self.message.clone(),
        }
    }
}

/// Item error code of a withdrawal of a number this organization has no
/// current report of.
pub const NOTHING_TO_WITHDRAW: &str = "nothing_to_withdraw";

/// Item error code of an item with links while the network signs record
/// version 1 (SPEC.md §13.4).
pub const LINKS_NEED_VERSION_2: &str = "links_need_record_version_2";

/// Why one item of a batch is invalid.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ItemError {
    /// Position in the batch.
    pub index: usize,
    /// The number as given.
    pub number: String,
    /// Stable code.
    pub code: String,
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
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
    /// The operation this number belongs to: other numbers its trusted
    /// reports are linked to (shared link tokens, a run of activity in its
    /// 100-block). `null` when nothing links it.
    pub campaign: Option<CampaignSummary>,
    /// For a number no trusted organization reports: recent activity in its
    /// 100- and 1,000-blocks. `null` otherwise, or when there is none.
    pub neighbours: Option<Neighbours>,
}

/// A stored sighting for the "recent" list.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
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
    /// What it claims.
    #[serde(flatten)]
    pub claim: crate::reputation::Claim,
    /// Last seen.
    pub last_seen: u64,
    /// Seq.
    pub seq: u64,
}

/// Per-origin store counts.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
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
    /// Catch-up version 2 reconciliation rounds run (as the asking side).
    #[serde(default)]
    pub sync_rounds: u64,
    /// Bytes of catch-up answers received.
    #[serde(default)]
    pub sync_bytes: u64,
    /// Records received through catch-up (each one verified).
    #[serde(default)]
    pub sync_records: u64,
    /// Records connected peers hold that this node lacks, as the last
    /// reconciliation with each found them, less those received since (the
    /// largest over peers; 0 when the nodes agree).
    #[serde(default)]
    pub sync_lag: u64,
    /// Catch-up requests refused by the rate limit.
    pub sync_throttled: u64,
    /// Rejected/ignored records by reason.
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// Origins caught signing two records with one seq, with evidence count.
    pub equivocations: Vec<(String, u64)>,
    /// Origins flagged for going over their limits (`network.toml`
    /// `[limits]`), with the records refused or evicted since start.
    pub over_limit: Vec<(String, u64)>,
    /// The limits in force.
    #[serde(deserialize_with = "crate::store::Limits::deserialize_reported")]
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
    /// The same organizations with their trust, for campaigns.
    trust: Vec<(OriginId, f64)>,
    /// Reported numbers lookups named, for campaign pages.
    asked: self::campaigns::Asked,
    /// Whether this node may sign: see [`Store::own_seq_confirmed`].
    own_seq_known: Arc<watch::Sender<bool>>,
    /// Per peer, the catch-up version last spoken with it (the core task
    /// notes them).
    versions: self::core::CatchUpVersions,
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
    let trust: Vec<(OriginId, f64)> = config
        .network
        .members
        .iter()
        .map(|m| (m.origin, config.trust_of(m, &peer_id)))
        .filter(|(_, t)| *t > 0.0)
        .collect();
    let trusted = trust.iter().map(|(o, _)| *o).collect();
    let inner = Arc::new(Inner {
        trusted,
        trust,
        asked: self::campaigns::Asked::default(),
        own_seq_known: own_seq_known.clone(),
        versions: self::core::CatchUpVersions::default(),
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
            lag: std::sync::Mutex::default(),
            versions: inner.versions.clone(),
            sets: Arc::new(crate::reconcile::SetCache::new(SET_CACHE)),
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
    /// The node clock's time, unix seconds.
    pub fn now(&self) -> u64 {
        self.inner.clock.now()
    }

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

    /// Whether the store writes (for `/healthz`), and its error counts.
    pub fn store_health(&self) -> StoreHealth {
        self.inner.store.health()
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
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
            p.catch_up_version = p
                .peer_id
                .parse()
                .ok()
                .and_then(|peer| self.inner.versions.of(&peer));
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
                sync_rounds: load(&m.sync_rounds),
                sync_bytes: load(&m.sync_bytes),
                sync_records: load(&m.sync_records),
                sync_lag: load(&m.sync_lag),
                sync_throttled: load(&m.sync_throttled),
                rejected: m
                    .rejected()
                    .into_iter()
                    .map(|(reason, n)| (reason.to_owned(), n))
                    .collect(),
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
    /// A number's current reports with their organizations and trust here,
    /// and its block's activity over [`BLOCK_WINDOW_SECS`] (counting
    /// trusted organizations only: a member at trust 0 cannot raise it).
    /// The returned `NumberReports` has its `current` taken.
    fn reports_at(
        &self,
        number: &sightline_protocol::NumberHash,
        block: &sightline_protocol::BlockHash,
        now: u64,
    ) -> Result<(Vec<Report>, crate::store::NumberReports), StoreError> {
        let mut found = self.store.reports(
            &self.config.network.id,
            number,
            block,
            now.saturating_sub(BLOCK_WINDOW_SECS),
            |origin| self.trusted.contains(origin),
        )?;
        let reports = self.reports_of(std::mem::take(&mut found.current));
        Ok((reports, found))
    }

    /// Current reports with their organizations and trust here, to score.
    fn reports_of(&self, current: Vec<Sighting>) -> Vec<Report> {
        current
            .into_iter()
            .map(|s| Report {
                org: self.org_of(&s.origin),
                trust: self.trust_of(&s.origin),
                sighting: s,
            })
            .collect()
    }

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

    /// The answer for a parsed number. `explored` holds the campaigns
    /// explored by earlier lookups of the same batch: one exploration
    /// serves every member of a campaign.
    fn lookup_parsed(
        &self,
        parsed: &sightline_protocol::ParsedNumber,
        now: u64,
        explored: &mut self::campaigns::Explored,
    ) -> Result<Lookup, LookupError> {
        let key = &self.config.network.hash_key;
        let number = key.number_hash(&parsed.e164);
        let block = key.block_hash(&parsed.e164);
        let (reports, found) = self.reports_at(&number, &block, now)?;
        if !reports.is_empty() {
            self.asked.note(&number, parsed.e164.as_str());
        }
        let reported = reports.iter().any(|r| {
            r.sighting.verdict == Verdict::Malicious && self.trusted.contains(&r.sighting.origin)
        });
        let campaign = self.campaign_of(
            &number,
            &block,
            (reported, found.neighboured),
            now,
            explored,
        )?;
        let neighbours = if reported {
            None
        } else {
            self.neighbours(&parsed.e164, found.block_activity, now)?
        };
        let score = reputation::score(&reports, now, &self.config.half_lives);
        Ok(Lookup {
            number: parsed.e164.as_str().to_owned(),
            country: parsed.region.clone(),
            cc: parsed.country_code,
            line_type: parsed.line,
            score,
            block_activity: found.block_activity,
            campaign,
            neighbours,
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
