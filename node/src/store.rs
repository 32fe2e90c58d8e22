//! The sled store. Holds each origin's current report of each number (the
//! set nodes converge on; superseded records are deleted, SPEC §12.1) keyed
//! by origin and seq (which is also the catch-up order), indexed per
//! (number, origin) under its 100-block, the node's own
//! sequence counter, and — locally only — the raw numbers of the node's own
//! submissions.
//!
//! Layout (schema 2) keeps the writes per record few and mostly sequential:
//! sled's cost per insert into a tree keyed by random hashes (node splits
//! and rewrites) dominated ingest with schema 1's six indexes
//! (BENCHMARKS.md). A record now costs one insert into a random-key tree
//! (`current`), one per-origin append (`sightings`), one append
//! (`arrivals`), one roughly time-ordered insert (`purges`) and its
//! origin's progress.
//!
//! Calls block: async code reaches the store through `spawn_blocking`,
//! except a single lookup ([`Store::reports`]), whose bounded reads run on
//! the calling task.
//! One record's writes happen in one sled transaction, so a crash never
//! leaves a half-indexed record; durability is `flush()`, which the node
//! calls before acknowledging a submission.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sightline_protocol::catchup::{item_id, item_seq};
use sightline_protocol::{
    BlockHash, NetworkId, NumberHash, OriginId, Sighting, SightingId, SignedSighting,
    UnverifiedSighting, Verdict,
};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

mod current;
mod links;
mod quota;
use current::{is_mark, MARK};
pub use links::{Linked, Sharing, SCRIPT_DISTANCE};
pub use quota::{Limits, Room, OVER_NUMBERS_PER_DAY, OVER_RECORDS_PER_HOUR};

/// Bumped when the on-disk layout changes incompatibly.
pub const SCHEMA_VERSION: u32 = 6;

const META_SCHEMA: &[u8] = b"schema_version";
/// Schema 1's trees that schema 2 replaced ([`Store::migrate_from_v1`]).
const V1_TREES: [&str; 6] = [
    "records",
    "origin_seq",
    "latest",
    "blocks",
    "recent",
    "expiry",
];
/// sled's page cache unless `store_cache_mib` says otherwise. Its default
/// (1 GiB) made a node with 1M records hold ~1 GiB resident (BENCHMARKS.md,
/// footprint row).
pub const DEFAULT_CACHE_BYTES: u64 = 128 * 1024 * 1024;
const META_OWN_SEQ: &[u8] = b"own_seq";
/// Equivocation evidence records kept per origin.
pub const MAX_EVIDENCE: u64 = 16;
/// Present once this store is known to hold this node's highest own seq:
/// it was created with a new key, or a peer has told it what it holds of
/// this node's records (see [`Store::own_seq_confirmed`]).
const META_SEQ_CONFIRMED: &[u8] = b"own_seq_confirmed";
/// Written and flushed by a reopen, to prove the store writes again.
const META_PROBE: &[u8] = b"probe";
/// Present once every stored record is in the `quota` index (schema 3).
const META_QUOTA_INDEXED: &[u8] = b"quota_indexed";
/// Present once the store holds only each origin's latest report of a
/// number (schema 4: superseded records are deleted).
const META_SUPERSEDED_DROPPED: &[u8] = b"superseded_dropped";
/// Set once every held report's `current` value has its compact form
/// (schema 5, `store/current.rs`).
const META_CURRENT_EXPANDED: &[u8] = b"current_expanded";
/// Set once the `links` tree indexes every held report's link tokens
/// (schema 6, `store/links.rs`). A store of an earlier schema holds no
/// record of version 2 (its release refused them), so its index is empty.
const META_LINKS_INDEXED: &[u8] = b"links_indexed";
/// Set once `own_added` indexes every own record (records signed before it
/// existed get their `last_seen` as the time they were added).
const META_OWN_ADDED: &[u8] = b"own_added_indexed";
/// Records one transaction of a migration works through.
#[cfg(not(test))]
const MIGRATION_BATCH: usize = 1000;
#[cfg(test)]
const MIGRATION_BATCH: usize = 3;
/// Free space a failed store waits for before it is reopened: several of
/// sled's 512 KiB log segments.
const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// The store was written by another schema version.
    #[error("store schema version {found} found, this build uses {expected}; migrate or use a new data directory")]
    Schema {
        /// On disk.
        found: u32,
        /// Expected.
        expected: u32,
    },
    /// A stored value has an impossible shape.
    #[error("store corrupt: {0}")]
    Corrupt(&'static str),
    /// A restore target already holds records.
    #[error("the store already holds records; restore into an empty data directory")]
    NotEmpty,
    /// sled could not open the store: its files are damaged (sled 0.34
    /// panics on some damage; the panic is caught and reported here).
    #[error("the store at {} cannot be opened: {detail}. It is damaged: stop the node, move that directory aside, and restore the latest backup into it with `sightline restore` (or start with an empty store: peers refill it by catch-up, but this organization's raw submitted numbers are then lost)", path.display())]
    Unreadable {
        /// The store directory.
        path: std::path::PathBuf,
        /// What sled said.
        detail: String,
    },
    /// The store is being reopened after a failure, or the reopen failed.
    #[error("the store is unavailable until the node reopens it (is the disk full?): {0}")]
    Unavailable(String),
    /// A file or directory of the store could not be made private.
    #[error("making {} private: {source}", path.display())]
    Permissions {
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An own record was not new (its seq was already used).
    #[error("own record with seq {seq} was not stored: {outcome}")]
    NotNew {
        /// The seq.
        seq: u64,
        /// What the store found.
        outcome: String,
    },
}

impl StoreError {
    /// Whether this is the disk failing (a full disk, an I/O error) rather
    /// than the request: the node recovers by itself, so retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::Sled(
                    sled::Error::Io(_)
                        | sled::Error::Corruption { .. }
                        | sled::Error::ReportableBug(_)
                )
        )
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

/// What inserting a verified record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// New record stored: the origin's current report of its number.
    Stored {
        /// Whether it replaced (and deleted) the origin's earlier report of
        /// the number.
        superseded: bool,
        /// Records of its origin evicted to keep it within the origin's
        /// limits (it came before them).
        evicted: u64,
    },
    /// Not stored: its origin is over a limit ([`Limits`]); the reason
    /// names which.
    OverLimit(&'static str),
    /// Already stored (same id).
    Duplicate,
    /// The origin's current report of the number has a higher seq: this
    /// one was superseded before it arrived and is not stored (SPEC §12.1).
    Superseded,
    /// The origin already signed a different record with this seq: the new
    /// one is kept as evidence, not as a record.
    Equivocation {
        /// The record stored first.
        existing: SightingId,
    },
}

/// Per-origin progress, exchanged in catch-up.
/// What [`Store::arrived_since`] found: the numbers, the mark after the
/// last arrival read, whether more follow.
pub type Arrived = (Vec<(BlockHash, NumberHash)>, u64, bool);

/// One own record, as [`Store::own_added`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnAdded {
    /// When it was stored, unix milliseconds (strictly increasing).
    pub added_ms: u64,
    /// Its seq.
    pub seq: u64,
    /// Its number.
    pub number: NumberHash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginProgress {
    /// The origin.
    pub origin: OriginId,
    /// Records stored.
    pub count: u64,
    /// Highest seq stored.
    pub max_seq: u64,
    /// Every seq in 1..=contiguous has been stored at some point.
    pub contiguous: u64,
    /// XOR of the ids of the stored records: equal sets give equal digests.
    pub digest: [u8; 32],
}

impl OriginProgress {
    fn decode(origin: OriginId, v: &[u8]) -> Result<Self, StoreError> {
        if v.len() != 56 {
            return Err(StoreError::Corrupt("origin progress"));
        }
        Ok(OriginProgress {
            origin,
            count: be_u64(&v[0..8]),
            max_seq: be_u64(&v[8..16]),
            contiguous: be_u64(&v[16..24]),
            digest: v[24..56].try_into().expect("32 bytes"),
        })
    }

    fn encode(&self) -> [u8; 56] {
        let mut out = [0u8; 56];
        out[0..8].copy_from_slice(&self.count.to_be_bytes());
        out[8..16].copy_from_slice(&self.max_seq.to_be_bytes());
        out[16..24].copy_from_slice(&self.contiguous.to_be_bytes());
        out[24..56].copy_from_slice(&self.digest);
        out
    }
}

/// A number's current reports and its block's activity ([`Store::reports`]).
#[derive(Debug, Clone)]
pub struct NumberReports {
    /// Every origin's latest report of the number.
    pub current: Vec<Sighting>,
    /// Whether another number of the block has a malicious current report
    /// from a counted origin, of any age (among the entries scanned).
    pub neighboured: bool,
    /// Distinct numbers of the 100-block with a recent malicious current
    /// report from a counted origin.
    pub block_activity: usize,
    /// Entries the activity scan read (at most [`ACTIVITY_SCAN_LIMIT`]).
    pub scanned: usize,
}

/// Entries of a block's index one lookup reads at most for its activity:
/// 100 numbers reported by 40 organizations each, far beyond real blocks.
pub const ACTIVITY_SCAN_LIMIT: usize = 4000;

/// The evidence records of the `evidence` tree, which also keeps each
/// origin's evidence count under the bare 32-byte origin.
fn evidence_entries(
    evidence: &sled::Tree,
) -> impl Iterator<Item = Result<(sled::IVec, sled::IVec), sled::Error>> {
    evidence
        .iter()
        .filter(|entry| entry.as_ref().map_or(true, |(k, _)| k.len() == 40))
}

/// Runs a migration's `step` over `tree` in key order, [`MIGRATION_BATCH`]
/// entries at a time. In the tests that crash a migration
/// (`CRASH_AFTER_BATCH`), it stops with an error after the first batch.
fn each_batch(
    tree: &sled::Tree,
    mut step: impl FnMut(&[(sled::IVec, sled::IVec)]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut from: Vec<u8> = Vec::new();
    loop {
        let batch: Vec<(sled::IVec, sled::IVec)> = tree
            .range(from.as_slice()..)
            .take(MIGRATION_BATCH)
            .collect::<Result<_, _>>()?;
        let Some((last, _)) = batch.last() else {
            return Ok(());
        };
        from = [last.as_ref(), &[0]].concat();
        step(&batch)?;
        #[cfg(test)]
        if tests::CRASH_AFTER_BATCH.with(std::cell::Cell::get) {
            return Err(StoreError::Corrupt("crash (test)"));
        }
    }
}

/// `sightings` key (also `evidence`'s): origin ‖ seq(BE).
fn record_key(origin: &[u8], seq: u64) -> [u8; 40] {
    cat(&[origin, &seq.to_be_bytes()])
}

/// `current` key of a record: block ‖ number ‖ origin.
fn current_key(s: &Sighting) -> [u8; 96] {
    cat(&[s.block.as_bytes(), s.number.as_bytes(), s.origin.as_bytes()])
}

/// `purges` key: `purge_at`(BE) ‖ record key.
fn purge_key(purge_at: u64, record_key: &[u8; 40]) -> [u8; 48] {
    cat(&[&purge_at.to_be_bytes(), record_key])
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn cat<const N: usize>(parts: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    for p in parts {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    debug_assert_eq!(at, N);
    out
}

/// A tree's entries, in key order (tests compare whole stores).
#[cfg(test)]
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The store. Cheap to clone: every clone shares one set of sled handles,
/// which [`Store::recover`] replaces when sled has failed.
///
/// sled 0.34 stops writing for good after one I/O error (a full disk: it
/// keeps the error and returns it from every later write, even once space
/// is back); only reopening the database clears it. So every operation
/// notes sled I/O errors ([`Store::health`]), and the node's recovery task
/// reopens the store once nothing else holds the old handles. What a failed
/// write did not make durable is gone after the reopen: own submissions are
/// acknowledged only after a flush, and received records come back through
/// catch-up.
#[derive(Debug, Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    /// sled's page cache, kept for reopens.
    cache_bytes: u64,
    /// `None` between dropping failed handles and a successful reopen.
    handles: RwLock<Option<Arc<Handles>>>,
    healthy: AtomicBool,
    errors: AtomicU64,
    reopens: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Held by every write of records: the `quota` index reads committed
    /// state inside transactions, which is only sound with one writer.
    writer: Mutex<()>,
    /// Per-origin limits.
    limits: RwLock<Limits>,
}

/// The store's condition, for `/healthz`, status and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StoreHealth {
    /// Whether the store is writing. `false` after a write failed until a
    /// reopen succeeds.
    pub healthy: bool,
    /// sled I/O errors seen since start.
    pub errors: u64,
    /// Successful reopens after failures since start.
    pub reopens: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// sled's handles to one open database.
#[derive(Debug)]
struct Handles {
    db: sled::Db,
    /// origin ‖ seq(BE) → wire bytes. Per-origin order is catch-up's page
    /// order, and each origin's records arrive mostly in seq order, so
    /// inserts append.
    sightings: sled::Tree,
    /// block ‖ number ‖ origin → seq(BE) ‖ `last_seen`(BE) ‖ verdict code:
    /// the origin's current report of the number. A lookup reads the
    /// number's reports and its block's activity in one prefix scan. Or a
    /// mark, seq(BE) ‖ `purge_at`(BE) ‖ [`MARK`]: the origin's latest
    /// record of the number is known but not held (over the origin's
    /// limits), and still supersedes its earlier ones until `purge_at`.
    current: sled::Tree,
    /// origin → [`OriginProgress`].
    progress: sled::Tree,
    /// arrival counter(BE) → origin ‖ seq(BE), for "recent sightings".
    arrivals: sled::Tree,
    /// `purge_at`(BE) ‖ origin ‖ seq(BE) → arrival counter(BE), for
    /// retention and expiry (the arrival lets a purge drop the `arrivals` entry).
    purges: sled::Tree,
    /// origin ‖ seq(BE) → wire bytes of the first record that conflicts
    /// with the stored one (equivocation evidence).
    evidence: sled::Tree,
    /// number hash → raw E.164, for this node's own submissions only. Never exported.
    own_numbers: sled::Tree,
    /// added(ms, BE) ‖ seq(BE) → number hash: when each own record was
    /// stored, strictly increasing, for the TAXII collection of this
    /// organization's reports (`added_after`). Entries of records since
    /// superseded or purged are skipped when read.
    own_added: sled::Tree,
    /// Schema version, own sequence counter.
    meta: sled::Tree,
    /// Per-origin limit index (see `store/quota.rs`).
    quota: sled::Tree,
    /// Its bucket counters.
    counts: quota::Counts,
    /// Link tokens of held version-2 reports (see `store/links.rs`).
    links: sled::Tree,
}

impl Handles {
    /// Opens (or creates) the database in `dir`. A store of schema 1 is
    /// migrated in place first (see [`Handles::migrate_from_v1`]).
    fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = open_guarded(dir, cache_bytes)?;
        let tree = |name: &str| db.open_tree(name);
        let mut store = Handles {
            sightings: tree("sightings")?,
            current: tree("current")?,
            progress: tree("progress")?,
            arrivals: tree("arrivals")?,
            purges: tree("purges")?,
            evidence: tree("evidence")?,
            own_numbers: tree("own_numbers")?,
            own_added: tree("own_added")?,
            meta: tree("meta")?,
            quota: tree("quota")?,
            counts: quota::Counts::default(),
            links: tree("links")?,
            db,
        };
        if let Some(v) = store.meta.get(META_SCHEMA)? {
            let found = u32::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("schema version"))?,
            );
            match found {
                SCHEMA_VERSION | 2 | 3 | 4 | 5 => {
                    // A migration that stopped after raising the version
                    // leaves schema 1's trees behind.
                    for name in V1_TREES {
                        store.db.drop_tree(name)?;
                    }
                }
                1 => {
                    store.migrate_from_v1()?;
                }
                _ => {
                    return Err(StoreError::Schema {
                        found,
                        expected: SCHEMA_VERSION,
                    })
                }
            }
        } else {
            store.meta.insert(META_QUOTA_INDEXED, &[1])?;
            store.meta.insert(META_SUPERSEDED_DROPPED, &[1])?;
            store.meta.insert(META_CURRENT_EXPANDED, &[1])?;
            store.meta.insert(META_LINKS_INDEXED, &[1])?;
            store
                .meta
                .insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            store.db.flush()?;
        }
        if !store.meta.contains_key(META_QUOTA_INDEXED)? {
            store.index_quota()?;
        }
        store.counts = quota::Counts::load(&store.quota)?;
        if !store.meta.contains_key(META_SUPERSEDED_DROPPED)? {
            store.drop_superseded()?;
        }
        if !store.meta.contains_key(META_CURRENT_EXPANDED)? {
            store.expand_current()?;
        }
        if !store.meta.contains_key(META_LINKS_INDEXED)? {
            store.migrated(META_LINKS_INDEXED)?;
        }
        Ok(store)
    }

    /// Rewrites a schema-1 store into this layout, then drops schema 1's
    /// trees. Records are copied verbatim (they were verified when they
    /// were stored); `progress`, `evidence`, `own_numbers` and `meta` kept
    /// their format. A crash part-way is safe: the version is raised only
    /// once the new trees are complete and flushed, and a rerun starts them
    /// over. Returns how many records moved.
    fn migrate_from_v1(&self) -> Result<u64, StoreError> {
        tracing::info!("migrating the store from schema 1 to {SCHEMA_VERSION}");
        for tree in [&self.sightings, &self.current, &self.arrivals, &self.purges] {
            tree.clear()?;
        }
        let v1 = |name: &str| self.db.open_tree(name);
        // id → wire bytes; number ‖ origin → seq ‖ id;
        // block ‖ number ‖ origin → last_seen ‖ verdict; purge_at ‖ id → arrival.
        let (records, latest, blocks, expiry) =
            (v1("records")?, v1("latest")?, v1("blocks")?, v1("expiry")?);
        let mut moved = 0u64;
        let mut pending = [
            sled::Batch::default(),
            sled::Batch::default(),
            sled::Batch::default(),
        ];
        let apply = |pending: &mut [sled::Batch; 3]| -> Result<(), StoreError> {
            let [sightings, arrivals, purges] = std::mem::take(pending);
            self.sightings.apply_batch(sightings)?;
            self.arrivals.apply_batch(arrivals)?;
            self.purges.apply_batch(purges)?;
            Ok(())
        };
        // Every schema-1 record has exactly one expiry entry.
        for entry in &expiry {
            let (key, arrival) = entry?;
            if key.len() != 40 || arrival.len() != 8 {
                return Err(StoreError::Corrupt("schema 1 expiry"));
            }
            let Some(bytes) = records.get(&key[8..40])? else {
                continue;
            };
            let s = decode_stored(&bytes)?;
            let record_key = record_key(s.origin.as_bytes(), s.seq);
            let purge_key = purge_key(be_u64(&key[..8]), &record_key);
            pending[0].insert(record_key.as_slice(), bytes);
            pending[1].insert(arrival.clone(), record_key.as_slice());
            pending[2].insert(purge_key.as_slice(), arrival);
            moved += 1;
            if moved.is_multiple_of(10_000) {
                apply(&mut pending)?;
            }
        }
        apply(&mut pending)?;
        let mut current = sled::Batch::default();
        for entry in &blocks {
            let (key, value) = entry?;
            if key.len() != 96 || value.len() != 9 {
                return Err(StoreError::Corrupt("schema 1 blocks"));
            }
            let Some(latest) = latest.get(&key[32..96])? else {
                continue;
            };
            if latest.len() != 40 {
                return Err(StoreError::Corrupt("schema 1 latest"));
            }
            let current_value: [u8; 17] = cat(&[&latest[..8], &value]);
            current.insert(key, current_value.as_slice());
        }
        self.current.apply_batch(current)?;
        self.db.flush()?;
        self.meta
            .insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        self.db.flush()?;
        for name in V1_TREES {
            self.db.drop_tree(name)?;
        }
        self.db.flush()?;
        tracing::info!(records = moved, "store migrated to schema {SCHEMA_VERSION}");
        Ok(moved)
    }

    /// Builds the `quota` index of a store from before schema 3 (each
    /// record as it is: limits apply to what arrives from now on), then
    /// raises the schema. A crash part-way starts it over.
    fn index_quota(&self) -> Result<u64, StoreError> {
        tracing::info!("indexing stored records for per-origin limits (schema {SCHEMA_VERSION})");
        self.quota.clear()?;
        let mut indexed = 0u64;
        let mut pending: Vec<quota::Entry> = Vec::new();
        let apply = |pending: &mut Vec<quota::Entry>| -> Result<(), StoreError> {
            let q = quota::Q::new(&self.quota, &self.counts);
            for e in pending.iter() {
                quota::index(&q, e).map_err(|e| settled(e.into()))?;
            }
            self.quota.transaction(|tx| {
                q.apply(tx)?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })?;
            pending.clear();
            Ok(())
        };
        for entry in &self.purges {
            let (key, _) = entry?;
            if key.len() != 48 {
                return Err(StoreError::Corrupt("purges"));
            }
            let Some(bytes) = self.sightings.get(&key[8..48])? else {
                continue;
            };
            pending.push(quota::Entry::of(&decode_stored(&bytes)?, be_u64(&key[..8])));
            indexed += 1;
            if pending.len() >= 1000 {
                apply(&mut pending)?;
            }
        }
        apply(&mut pending)?;
        self.migrated(META_QUOTA_INDEXED)?;
        tracing::info!(records = indexed, "records indexed for per-origin limits");
        Ok(indexed)
    }

    /// Deletes what a store from before schema 4 kept of superseded
    /// reports: of each origin's records of a number, only the highest seq
    /// stays (and is the `current` entry). Works through the records in
    /// key order, one transaction per thousand; a crash part-way leaves a
    /// valid store (each step deletes whole records) and the rerun goes on
    /// from the start, finding nothing more to do where it already was.
    /// The marker is written once all is done. Returns how many records went.
    fn drop_superseded(&self) -> Result<u64, StoreError> {
        tracing::info!("deleting superseded reports (schema {SCHEMA_VERSION})");
        let mut dropped = 0u64;
        each_batch(&self.sightings, |batch| {
            let o = Overlays::new(self);
            for (_, bytes) in batch {
                let s = decode_stored(bytes)?;
                let ck = current_key(&s);
                let current = o.current.get(ck).map_err(|e| settled(e.into()))?;
                // (seq, last_seen) of the record to drop, and whether this
                // one becomes current.
                let (drop, replace) = match current.as_deref() {
                    Some(v) if be_u64(v) > s.seq => (Some((s.seq, s.last_seen)), false),
                    Some(v) if be_u64(v) == s.seq => (None, false),
                    // A current entry of an older record (or none, where an
                    // older schema lost track): this record, met later in
                    // seq order, takes its place.
                    Some(v) => (Some((be_u64(v), be_u64(&v[8..16]))), true),
                    None => (None, true),
                };
                if let Some((seq, last_seen)) = drop {
                    if unstore_seq(&o, &s.origin, seq, last_seen).map_err(settled)? {
                        dropped += 1;
                    }
                    settle_tx(&o, &s.origin, seq).map_err(settled)?;
                }
                if replace {
                    o.current
                        .insert(ck.as_slice(), current::encode(&s).as_slice())
                        .map_err(|e| settled(e.into()))?;
                }
            }
            o.commit(self)
        })?;
        self.migrated(META_SUPERSEDED_DROPPED)?;
        tracing::info!(records = dropped, "superseded reports deleted");
        Ok(dropped)
    }

    /// Marks a migration done (`marker` in `meta`) and the store at this
    /// schema, durably.
    fn migrated(&self, marker: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(marker, &[1])?;
        self.meta
            .insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Gives every held report's `current` value of schema 4 (seq ‖
    /// `last_seen` ‖ verdict) its compact form (schema 5), from the record,
    /// so that lookups decode no record. A thousand values per sled batch;
    /// each rewrite stands alone, so a crash part-way leaves values of both
    /// forms, which only this migration reads (it runs before the store is
    /// handed out), and the rerun skips what is done. The
    /// marker is written once all is done. Returns how many were rewritten.
    fn expand_current(&self) -> Result<u64, StoreError> {
        tracing::info!("storing reports' compact form for lookups (schema {SCHEMA_VERSION})");
        let mut expanded = 0u64;
        each_batch(&self.current, |batch| {
            let mut rewrite = sled::Batch::default();
            for (key, value) in batch {
                if key.len() != 96 || !current::is_legacy(value) {
                    continue;
                }
                let Some(bytes) = self
                    .sightings
                    .get(record_key(&key[64..96], current::seq(value)))?
                else {
                    continue;
                };
                rewrite.insert(key.as_ref(), current::encode(&decode_stored(&bytes)?));
                expanded += 1;
            }
            Ok(self.current.apply_batch(rewrite)?)
        })?;
        self.migrated(META_CURRENT_EXPANDED)?;
        tracing::info!(reports = expanded, "compact forms stored");
        Ok(expanded)
    }

    /// Every tree's entries, for tests that compare whole stores.
    #[cfg(test)]
    fn snapshot(&self) -> Vec<(&'static str, Entries)> {
        self.named_trees()
            .into_iter()
            .map(|(name, tree)| {
                let entries = tree
                    .iter()
                    .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
                    .collect();
                (name, entries)
            })
            .collect()
    }

    #[cfg(test)]
    fn named_trees(&self) -> Vec<(&'static str, &sled::Tree)> {
        vec![
            ("sightings", &self.sightings),
            ("current", &self.current),
            ("progress", &self.progress),
            ("arrivals", &self.arrivals),
            ("purges", &self.purges),
            ("evidence", &self.evidence),
            ("own_numbers", &self.own_numbers),
            ("own_added", &self.own_added),
            ("meta", &self.meta),
            ("quota", &self.quota),
            ("links", &self.links),
        ]
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`. A store of schema 1 is
    /// migrated in place first.
    ///
    /// # Errors
    /// [`StoreError::Schema`] for a store of another version; sled errors.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with `cache_bytes` of sled page cache (the node's
    /// `store_cache_mib`).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let handles = Handles::open(dir, cache_bytes)?;
        Ok(Store {
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                cache_bytes,
                handles: RwLock::new(Some(Arc::new(handles))),
                healthy: AtomicBool::new(true),
                errors: AtomicU64::new(0),
                reopens: AtomicU64::new(0),
                last_error: Mutex::new(None),
                writer: Mutex::new(()),
                limits: RwLock::new(Limits::default()),
            }),
        })
    }

    /// Sets the per-origin limits (from `network.toml`) records are
    /// stored under.
    pub fn set_limits(&self, limits: Limits) {
        *self
            .shared
            .limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// The per-origin limits in force.
    pub fn limits(&self) -> Limits {
        *self
            .shared
            .limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serializes writers of records.
    fn writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shared
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `origin` may sign records with these (`last_seen`, number,
    /// block) triples within its limits (a record that replaces the
    /// origin's current report of its number takes that one's place), and
    /// if not, whether waiting for the full
    /// hours or days to end helps (HTTP 429's `Retry-After`).
    ///
    /// # Errors
    /// sled errors.
    pub fn room(
        &self,
        origin: &OriginId,
        now: u64,
        entries: &[(u64, NumberHash, BlockHash)],
    ) -> Result<Room, StoreError> {
        let limits = self.limits();
        self.with(|h| {
            // The hours of the current reports these replace (their records
            // go as the new ones are stored).
            let mut replaced = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (_, number, block) in entries {
                if !seen.insert(*number) {
                    continue;
                }
                let key: [u8; 96] = cat(&[block.as_bytes(), number.as_bytes(), origin.as_bytes()]);
                if let Some(v) = h.current.get(key)? {
                    if current::is_valid(&v) && !is_mark(&v) {
                        replaced.push(be_u64(&v[8..16]) / quota::HOUR);
                    }
                }
            }
            let entries: Vec<(u64, NumberHash)> =
                entries.iter().map(|(t, n, _)| (*t, *n)).collect();
            Ok(quota::room(
                &h.quota, &h.counts, origin, now, &entries, &replaced, &limits,
            )?)
        })
    }

    /// The current handles.
    fn handles(&self) -> Result<Arc<Handles>, StoreError> {
        self.shared
            .handles
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| StoreError::Unavailable(self.last_error()))
    }

    /// Runs `f` on the current handles, noting a sled I/O error as a
    /// failure of the store.
    fn with<T>(&self, f: impl FnOnce(&Handles) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let result = f(&*self.handles()?);
        if let Err(e @ StoreError::Sled(_)) = &result {
            if e.is_unavailable() {
                self.note_failure(e);
            }
        }
        result
    }

    fn note_failure(&self, error: &dyn std::fmt::Display) {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        self.set_last_error(error.to_string());
        if self.shared.healthy.swap(false, Ordering::AcqRel) {
            tracing::error!(
                error = %error,
                store = %self.shared.dir.display(),
                "the store failed to write; refusing writes until it is reopened"
            );
        }
    }

    fn last_error_slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_last_error(&self, error: String) {
        *self.last_error_slot() = Some(error);
    }

    fn last_error(&self) -> String {
        self.last_error_slot()
            .clone()
            .unwrap_or_else(|| "no error recorded".into())
    }

    /// `Ok` while the store writes; [`StoreError::Unavailable`] with the
    /// last error while it is failed and not yet reopened, so callers
    /// refuse work before trying (and logging) a write sure to fail.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub fn ensure_writable(&self) -> Result<(), StoreError> {
        if self.is_healthy() {
            Ok(())
        } else {
            Err(StoreError::Unavailable(self.last_error()))
        }
    }

    /// Whether the store is writing.
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// The store's condition.
    pub fn health(&self) -> StoreHealth {
        StoreHealth {
            healthy: self.is_healthy(),
            errors: self.shared.errors.load(Ordering::Relaxed),
            reopens: self.shared.reopens.load(Ordering::Relaxed),
            last_error: self.last_error_slot().clone(),
        }
    }

    /// Reopens a failed store: drops the failed handles (sled then releases
    /// its files) and opens the database again, which recovers it to its
    /// last durable state. Does nothing for a healthy store. Returns
    /// whether the store is healthy afterwards; `false` when another
    /// operation still holds the old handles (try again shortly) or the
    /// reopen failed (noted, e.g. the disk is still full).
    pub fn recover(&self) -> bool {
        if self.is_healthy() {
            return true;
        }
        let mut slot = self
            .shared
            .handles
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_some_and(|h| Arc::strong_count(h) > 1) {
            return false;
        }
        // Reopening a store whose disk is still full would only fail again
        // at the next write.
        if let Ok(fs) = rustix::fs::statvfs(&self.shared.dir) {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            if free < MIN_FREE_BYTES {
                self.set_last_error(format!(
                    "waiting for free space on the store's file system: {} KiB available, {} KiB needed",
                    free / 1024,
                    MIN_FREE_BYTES / 1024
                ));
                return false;
            }
        }
        // sled flushes on drop, which fails the same way; only its lock
        // on the files matters here.
        *slot = None;
        match Handles::open(&self.shared.dir, self.shared.cache_bytes).and_then(|h| {
            // Writing must work again before the store says it does.
            h.meta.insert(META_PROBE, &[1])?;
            h.db.flush()?;
            Ok(h)
        }) {
            Ok(handles) => {
                *slot = Some(Arc::new(handles));
                self.shared.reopens.fetch_add(1, Ordering::Relaxed);
                self.shared.healthy.store(true, Ordering::Release);
                tracing::warn!(store = %self.shared.dir.display(), "the store was reopened and writes again");
                true
            }
            Err(e) => {
                self.note_failure(&e);
                false
            }
        }
    }

    /// Makes everything written so far durable.
    ///
    /// # Errors
    /// sled I/O errors.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.with(|h| {
            h.db.flush()?;
            Ok(())
        })
    }

    /// Reserves `n` of the node's own sequence numbers and makes the
    /// reservation durable before returning, so a seq is never reused, even
    /// after a crash (a crash may leave reserved seqs unused: a gap, never
    /// a reuse).
    ///
    /// # Errors
    /// sled errors.
    pub fn reserve_own_seqs(&self, n: u64) -> Result<Range<u64>, StoreError> {
        self.with(|h| {
            let previous = h.meta.fetch_and_update(META_OWN_SEQ, |old| {
                let old = old.map_or(0, be_u64);
                Some((old + n).to_be_bytes().to_vec())
            })?;
            let first = previous.as_deref().map_or(0, be_u64) + 1;
            h.db.flush()?;
            Ok(first..first + n)
        })
    }

    /// Whether this store's own seq counter is known to be at least the
    /// highest seq of this node's origin anywhere. Not so for a store
    /// restored from a backup (peers may hold later own records) or lost and
    /// started afresh with an existing key: such a node must learn from a
    /// peer before it signs again, or it reuses seqs its peers already hold
    /// (they would drop the new records as equivocation).
    ///
    /// # Errors
    /// sled errors.
    pub fn own_seq_confirmed(&self) -> Result<bool, StoreError> {
        self.with(|h| Ok(h.meta.contains_key(META_SEQ_CONFIRMED)?))
    }

    /// Records that the own seq counter is confirmed (durably).
    ///
    /// # Errors
    /// sled errors.
    pub fn confirm_own_seq(&self) -> Result<(), StoreError> {
        self.with(|h| {
            h.meta.insert(META_SEQ_CONFIRMED, &[1])?;
            h.db.flush()?;
            Ok(())
        })
    }

    /// The last own seq reserved.
    ///
    /// # Errors
    /// sled errors.
    pub fn last_own_seq(&self) -> Result<u64, StoreError> {
        self.with(|h| Ok(h.meta.get(META_OWN_SEQ)?.as_deref().map_or(0, be_u64)))
    }

    /// Forgets raw numbers this node no longer holds a current report of
    /// (kept by a version that never purged them, or left by a crash
    /// between a purge and its flush). `block_of` derives a number's block
    /// hash from its E.164 form. Returns how many were forgotten.
    ///
    /// # Errors
    /// sled errors.
    pub fn sweep_own_numbers(
        &self,
        own: &OriginId,
        block_of: impl Fn(&str) -> Option<BlockHash>,
    ) -> Result<usize, StoreError> {
        self.with(|h| {
            let mut forgotten = 0;
            for entry in &h.own_numbers {
                let (hash, e164) = entry?;
                let e164 = String::from_utf8_lossy(&e164);
                let held = hash.len() == 32
                    && block_of(&e164).is_none_or(|block| {
                        let key: [u8; 96] = cat(&[block.as_bytes(), &hash, own.as_bytes()]);
                        h.current.contains_key(key).unwrap_or(true)
                    });
                if !held {
                    h.own_numbers.remove(&hash)?;
                    forgotten += 1;
                }
            }
            if forgotten > 0 {
                h.db.flush()?;
            }
            Ok(forgotten)
        })
    }

    /// The raw number, if this node submitted it.
    ///
    /// # Errors
    /// sled errors.
    pub fn own_number(&self, hash: &NumberHash) -> Result<Option<String>, StoreError> {
        self.with(|h| {
            Ok(h.own_numbers
                .get(hash.as_bytes())?
                .map(|v| String::from_utf8_lossy(&v).into_owned()))
        })
    }

    /// Stores a verified record with all its indexes in one transaction.
    /// `purge_at` is when retention or expiry removes it.
    ///
    /// # Errors
    /// sled errors.
    pub fn insert(
        &self,
        record: &SignedSighting,
        purge_at: u64,
    ) -> Result<InsertOutcome, StoreError> {
        let outcomes = self.insert_batch(&[(record, purge_at)])?;
        outcomes
            .into_iter()
            .next()
            .ok_or(StoreError::Corrupt("no outcome for an inserted record"))
    }

    /// `n` arrival numbers (the order of the "recent" list), taken before a
    /// transaction: sled's id generator is not transactional.
    fn arrivals(&self, n: usize) -> Result<Vec<u64>, StoreError> {
        self.with(|h| (0..n).map(|_| Ok(h.db.generate_id()?)).collect())
    }

    /// Stores a batch of verified records from peers in one transaction
    /// (one commit for the batch: sled's per-transaction cost dominates
    /// single-record inserts). Each record is judged on its own; the
    /// outcomes are in order. `records` pairs each record with its `purge_at`.
    ///
    /// # Errors
    /// sled errors (then nothing of the batch is stored).
    pub fn insert_batch(
        &self,
        records: &[(&SignedSighting, u64)],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let limits = self.limits();
        let _writer = self.writer();
        self.with(|h| {
            let arrivals = self.arrivals(records.len())?;
            let o = Overlays::new(h);
            let mut outcomes = Vec::with_capacity(records.len());
            for ((record, purge_at), arrival) in records.iter().zip(&arrivals) {
                outcomes
                    .push(insert_tx(&o, record, *purge_at, *arrival, &limits).map_err(settled)?);
            }
            o.commit(h)?;
            Ok(outcomes)
        })
    }

    /// Stores this node's own records all-or-nothing, in one transaction,
    /// with the raw number behind each (`records` holds record, `purge_at`,
    /// E.164): if any of them is not new (a duplicate, or a reused seq),
    /// nothing is stored and the error says which. The raw number is
    /// forgotten when the number's last own report is purged.
    ///
    /// # Errors
    /// [`StoreError::NotNew`] naming the record; sled errors.
    pub fn insert_own(
        &self,
        records: &[(SignedSighting, u64, String)],
        now: u64,
    ) -> Result<(), StoreError> {
        let limits = self.limits();
        let _writer = self.writer();
        self.with(|h| {
            let arrivals = self.arrivals(records.len())?;
            let o = Overlays::new(h);
            let first = next_added(h, now)?;
            for (added, ((record, purge_at, e164), arrival)) in
                (first..).zip(records.iter().zip(&arrivals))
            {
                let s = record.sighting();
                o.own_numbers
                    .insert(s.number.as_bytes(), e164.as_bytes())
                    .map_err(|e| settled(e.into()))?;
                let key: [u8; 16] = cat(&[&added.to_be_bytes(), &s.seq.to_be_bytes()]);
                o.own_added
                    .insert(&key[..], s.number.as_bytes())
                    .map_err(|e| settled(e.into()))?;
                match insert_tx(&o, record, *purge_at, *arrival, &limits).map_err(settled)? {
                    InsertOutcome::Stored { .. } => {}
                    other => {
                        return Err(StoreError::NotNew {
                            seq: record.sighting().seq,
                            outcome: format!("{other:?}"),
                        })
                    }
                }
            }
            o.commit(h)
        })
    }

    /// This node's own records stored after `after` (added ms ‖ seq,
    /// exclusive; `(0, 0)` for all), oldest first, at most `limit`: each
    /// with when it was added (ms) and its number, skipping records since
    /// superseded or purged. The flag says whether more follow.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn own_added(
        &self,
        own: &OriginId,
        after: (u64, u64),
        limit: usize,
    ) -> Result<(Vec<OwnAdded>, bool), StoreError> {
        self.with(|h| {
            let start: [u8; 16] = cat(&[&after.0.to_be_bytes(), &after.1.to_be_bytes()]);
            let mut out = Vec::new();
            for entry in h.own_added.range(start..) {
                let (key, number) = entry?;
                if key.as_ref() == start.as_slice() {
                    continue;
                }
                if key.len() != 16 || number.len() != 32 {
                    return Err(StoreError::Corrupt("own_added"));
                }
                if out.len() >= limit {
                    return Ok((out, true));
                }
                let seq = be_u64(&key[8..16]);
                if !h.sightings.contains_key(record_key(own.as_bytes(), seq))? {
                    continue;
                }
                out.push(OwnAdded {
                    added_ms: be_u64(&key[..8]),
                    seq,
                    number: NumberHash::from_bytes(
                        number
                            .as_ref()
                            .try_into()
                            .map_err(|_| StoreError::Corrupt("own_added"))?,
                    ),
                });
            }
            Ok((out, false))
        })
    }

    /// Indexes own records stored before `own_added` existed (once: a
    /// record's `last_seen` stands for when it was added). Returns how many.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn index_own_added(&self, own: &OriginId) -> Result<usize, StoreError> {
        let _writer = self.writer();
        self.with(|h| {
            if h.meta.contains_key(META_OWN_ADDED)? {
                return Ok(0);
            }
            let mut added = 0u64;
            let mut indexed = 0;
            for entry in h.sightings.scan_prefix(own.as_bytes()) {
                let (_, bytes) = entry?;
                let s = decode_stored(&bytes)?;
                added = added
                    .saturating_add(1)
                    .max(s.last_seen.saturating_mul(1000));
                let key: [u8; 16] = cat(&[&added.to_be_bytes(), &s.seq.to_be_bytes()]);
                h.own_added.insert(&key[..], s.number.as_bytes())?;
                indexed += 1;
            }
            h.meta.insert(META_OWN_ADDED, &[1])?;
            h.db.flush()?;
            Ok(indexed)
        })
    }

    /// Raises the own sequence counter to at least `seq` (when records of
    /// this node's origin come back from peers, e.g. after a store was lost).
    ///
    /// # Errors
    /// sled errors.
    pub fn raise_own_seq(&self, seq: u64) -> Result<(), StoreError> {
        self.with(|h| {
            h.meta.fetch_and_update(META_OWN_SEQ, |old| {
                let old = old.map_or(0, be_u64);
                Some(old.max(seq).to_be_bytes().to_vec())
            })?;
            Ok(())
        })
    }

    /// Whether `origin`'s current report of `number` (filed under `block`)
    /// is a report a withdrawal can withdraw: it exists and is not itself a
    /// withdrawal.
    ///
    /// # Errors
    /// sled errors.
    pub fn has_live_report(
        &self,
        origin: &OriginId,
        number: &NumberHash,
        block: &BlockHash,
    ) -> Result<bool, StoreError> {
        let key: [u8; 96] = cat(&[block.as_bytes(), number.as_bytes(), origin.as_bytes()]);
        self.with(|h| {
            Ok(h.current.get(key)?.is_some_and(|v| {
                current::is_valid(&v) && v[16] != Verdict::Withdrawn.code() && v[16] != MARK
            }))
        })
    }

    /// `origin`'s current report of a number (filed under `block`), if any.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn current_report(
        &self,
        origin: &OriginId,
        number: &NumberHash,
        block: &BlockHash,
    ) -> Result<Option<(SightingId, Sighting)>, StoreError> {
        let key: [u8; 96] = cat(&[block.as_bytes(), number.as_bytes(), origin.as_bytes()]);
        self.with(|h| {
            let Some(v) = h.current.get(key)? else {
                return Ok(None);
            };
            if !current::is_valid(&v) {
                return Err(StoreError::Corrupt("current"));
            }
            if is_mark(&v) {
                return Ok(None);
            }
            let Some(bytes) = h.sightings.get(record_key(origin.as_bytes(), be_u64(&v)))? else {
                return Ok(None);
            };
            Ok(Some((SightingId::of(&bytes), decode_stored(&bytes)?)))
        })
    }

    /// A number's current reports (every origin's latest, decoded) and the
    /// activity in its 100-block: how many distinct numbers of the block
    /// have a current malicious report with `last_seen >= since` from an
    /// origin `counted` accepts (the node counts trusted organizations only).
    ///
    /// The cost is bounded whatever a member plants in a block (it can sign
    /// any number hash under any block hash): the number's reports are one
    /// prefix scan of block ‖ number (at most one entry per origin), and the
    /// activity scan stops at 100 distinct numbers (all a real block holds)
    /// or after [`ACTIVITY_SCAN_LIMIT`] entries, when the activity it
    /// reports is a lower bound.
    ///
    /// Reports are found under the block the record names. Honest nodes
    /// derive it from the number; a member that signs a wrong block only
    /// hides its own report from lookups of that number.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn reports(
        &self,
        network: &NetworkId,
        number: &NumberHash,
        block: &BlockHash,
        since: u64,
        counted: impl Fn(&OriginId) -> bool,
    ) -> Result<NumberReports, StoreError> {
        self.with(|h| {
            // One scan of the block reads the number's own entries too (its
            // keys sort inside the block's); only a scan the limits below
            // stopped before it passed them needs a second, of the number.
            let prefix: [u8; 64] = cat(&[block.as_bytes(), number.as_bytes()]);
            let mut current = Vec::new();
            let mut passed = false;
            let mut stopped = false;
            let mut active = std::collections::HashSet::new();
            let mut neighboured = false;
            let mut scanned = 0;
            for entry in h.current.scan_prefix(block.as_bytes()) {
                if active.len() >= 100 || scanned >= ACTIVITY_SCAN_LIMIT {
                    stopped = true;
                    break;
                }
                scanned += 1;
                let (key, value) = entry?;
                if key.len() != 96 || !current::is_valid(&value) {
                    return Err(StoreError::Corrupt("current"));
                }
                let origin = OriginId::from_bytes(
                    key[64..96]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("current"))?,
                );
                match key[..64].cmp(&prefix[..]) {
                    std::cmp::Ordering::Equal if !is_mark(&value) => {
                        current.push(current::decode(network, *block, *number, origin, &value)?);
                    }
                    std::cmp::Ordering::Greater => passed = true,
                    _ => {}
                }
                if value[16] == Verdict::Malicious.code() && counted(&origin) {
                    neighboured |= key[32..64] != *number.as_bytes();
                    if be_u64(&value[8..16]) >= since {
                        active.insert(key.subslice(32, 32));
                    }
                }
            }
            if stopped && !passed {
                current = current_of(h, network, number, block)?;
            }
            Ok(NumberReports {
                current,
                neighboured,
                block_activity: active.len(),
                scanned,
            })
        })
    }

    /// A number's current reports (every origin's latest, from their
    /// compact values: no link tokens), without [`Store::reports`]'s scan
    /// of the block.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn current_reports(
        &self,
        network: &NetworkId,
        number: &NumberHash,
        block: &BlockHash,
    ) -> Result<Vec<Sighting>, StoreError> {
        self.with(|h| current_of(h, network, number, block))
    }

    /// Distinct numbers with current reports (or marks), in key order
    /// (block ‖ number), after `after` (exclusive), at most `limit`; and
    /// whether the scan reached the end.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn numbers_after(
        &self,
        after: Option<(BlockHash, NumberHash)>,
        limit: usize,
    ) -> Result<(Vec<(BlockHash, NumberHash)>, bool), StoreError> {
        self.with(|h| {
            // The first key past every entry of `after`'s number.
            let start = after.map_or_else(Vec::new, |(b, n)| {
                let mut k = cat::<64>(&[b.as_bytes(), n.as_bytes()]).to_vec();
                k.extend_from_slice(&[0xff; 33]);
                k
            });
            let mut out: Vec<(BlockHash, NumberHash)> = Vec::new();
            for entry in h.current.range(start..) {
                let (key, _) = entry?;
                if key.len() != 96 {
                    return Err(StoreError::Corrupt("current"));
                }
                let (Ok(block), Ok(number)) = (
                    <[u8; 32]>::try_from(&key[..32]),
                    <[u8; 32]>::try_from(&key[32..64]),
                ) else {
                    return Err(StoreError::Corrupt("current"));
                };
                let (block, number) =
                    (BlockHash::from_bytes(block), NumberHash::from_bytes(number));
                if out.last().is_some_and(|(_, n)| *n == number) {
                    continue;
                }
                if out.len() >= limit {
                    return Ok((out, false));
                }
                out.push((block, number));
            }
            Ok((out, true))
        })
    }

    /// The arrival mark of now: every record stored so far has an arrival
    /// counter below it, every record stored later one at or above it
    /// (counters start at 0).
    ///
    /// # Errors
    /// sled errors.
    pub fn arrival_mark(&self) -> Result<u64, StoreError> {
        self.with(|h| {
            Ok(h.arrivals
                .last()?
                .map_or(0, |(k, _)| be_u64(&k).saturating_add(1)))
        })
    }

    /// The numbers of records stored at or after arrival mark `from`, each
    /// once, in arrival order, reading at most `limit` arrivals; the mark
    /// after the last arrival read, and whether more follow.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn arrived_since(&self, from: u64, limit: usize) -> Result<Arrived, StoreError> {
        self.with(|h| {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            let mut mark = from;
            for (read, entry) in h.arrivals.range(from.to_be_bytes()..).enumerate() {
                if read >= limit {
                    return Ok((out, mark, true));
                }
                let (key, record) = entry?;
                mark = be_u64(&key).saturating_add(1);
                if let Some(bytes) = h.sightings.get(record)? {
                    let s = decode_stored(&bytes)?;
                    if seen.insert(s.number) {
                        out.push((s.block, s.number));
                    }
                }
            }
            Ok((out, mark, false))
        })
    }

    /// The most recently stored records, newest first.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn recent(&self, limit: usize) -> Result<Vec<(SightingId, Sighting)>, StoreError> {
        self.with(|h| {
            let mut out = Vec::new();
            for entry in h.arrivals.iter().rev() {
                if out.len() >= limit {
                    break;
                }
                let (_, record) = entry?;
                if let Some(bytes) = h.sightings.get(record)? {
                    out.push((SightingId::of(&bytes), decode_stored(&bytes)?));
                }
            }
            Ok(out)
        })
    }

    /// Progress of every origin with stored records.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn progress(&self) -> Result<Vec<OriginProgress>, StoreError> {
        self.with(|h| {
            // Each origin's entry (32-byte key) is followed by its settled
            // markers (origin ‖ seq, 40 bytes): after an entry, the walk
            // jumps past them, so it costs one seek per origin.
            let mut out = Vec::new();
            let mut from: Vec<u8> = Vec::new();
            while let Some(entry) = h.progress.range(from.as_slice()..).next() {
                let (k, v) = entry?;
                let origin: [u8; 32] = k[..32]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("progress key"))?;
                if k.len() == 32 {
                    out.push(OriginProgress::decode(OriginId::from_bytes(origin), &v)?);
                }
                from = [origin.as_slice(), &[0xff; 9]].concat();
            }
            Ok(out)
        })
    }

    /// Up to `limit` wire records of `origin` with seq > `after`, ascending,
    /// and whether more follow.
    ///
    /// # Errors
    /// sled errors.
    pub fn page(
        &self,
        origin: &OriginId,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<Vec<u8>>, bool), StoreError> {
        self.with(|h| {
            let start = record_key(origin.as_bytes(), after.saturating_add(1));
            let end = record_key(origin.as_bytes(), u64::MAX);
            let mut out = Vec::new();
            for entry in h.sightings.range(start..=end) {
                let (_, bytes) = entry?;
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(bytes.to_vec());
            }
            Ok((out, false))
        })
    }

    /// The version of `origin`'s set: its count and digest.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn set_version(
        &self,
        origin: &OriginId,
    ) -> Result<crate::reconcile::SetVersion, StoreError> {
        self.with(|h| {
            Ok(match h.progress.get(origin.as_bytes())? {
                Some(v) => {
                    let p = OriginProgress::decode(*origin, &v)?;
                    (*origin, p.count, p.digest)
                }
                None => (*origin, 0, [0; 32]),
            })
        })
    }

    /// `origin`'s held records as reconciliation items (seq, item id),
    /// ascending by seq (catch-up version 2, SPEC §11.2).
    ///
    /// # Errors
    /// sled errors.
    pub fn items(&self, origin: &OriginId) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        self.with(|h| {
            let start = record_key(origin.as_bytes(), 0);
            let end = record_key(origin.as_bytes(), u64::MAX);
            let mut items = Vec::new();
            for entry in h.sightings.range(start..=end) {
                let (key, bytes) = entry?;
                let seq = be_u64(&key[32..40]);
                items.push((seq, item_id(seq, SightingId::of(&bytes).as_bytes())));
            }
            Ok(items)
        })
    }

    /// Of the items a peer holds and this node lacks, those it may still
    /// store: above `origin`'s contiguous mark and not settled. A seq the
    /// mark covers, or a settled one, was held here and removed
    /// (superseded, purged) or refused for good (expired, past retention,
    /// superseded on arrival), so fetching it again could not change what
    /// is held. (An evicted seq is not settled: it may fit later.)
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn wanted(
        &self,
        origin: &OriginId,
        items: Vec<[u8; 32]>,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        self.with(|h| {
            let contiguous = match h.progress.get(origin.as_bytes())? {
                Some(v) => OriginProgress::decode(*origin, &v)?.contiguous,
                None => 0,
            };
            let mut wanted = Vec::with_capacity(items.len());
            for item in items {
                let seq = item_seq(&item);
                if seq > contiguous
                    && !h
                        .progress
                        .contains_key(settled_key(origin.as_bytes(), seq))?
                {
                    wanted.push(item);
                }
            }
            Ok(wanted)
        })
    }

    /// The held records of `origin` these items name, in their order: an
    /// item whose seq holds another record (or none) is skipped.
    ///
    /// # Errors
    /// sled errors.
    pub fn records_for_items(
        &self,
        origin: &OriginId,
        items: &[[u8; 32]],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(|h| {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let seq = item_seq(item);
                if let Some(bytes) = h.sightings.get(record_key(origin.as_bytes(), seq))? {
                    if item_id(seq, SightingId::of(&bytes).as_bytes()) == *item {
                        out.push(bytes.to_vec());
                    }
                }
            }
            Ok(out)
        })
    }

    /// Accounts for verified records refused for good (expired, or past this
    /// node's retention: time only makes them older), so that catch-up does
    /// not fetch them again: the origin's contiguous mark moves over a
    /// refused seq right above it (and on over what follows), and a refused
    /// seq further up is marked, for the mark to move over once the gap
    /// below it fills. Records refused for a passing reason (the clock, the
    /// store) or for what a forwarder sent are never settled.
    ///
    /// # Errors
    /// sled errors (nothing is settled then; catch-up fetches them again).
    pub fn settle(&self, refused: &[(OriginId, u64)]) -> Result<(), StoreError> {
        if refused.is_empty() {
            return Ok(());
        }
        let _writer = self.writer();
        self.with(|h| {
            let o = Overlays::new(h);
            for (origin, seq) in refused {
                settle_tx(&o, origin, *seq).map_err(settled)?;
            }
            o.commit(h)
        })
    }

    /// What this node lacks of `origin`'s seqs above its contiguous mark up
    /// to `upto`: at most `max` ranges `(first, last)`, inclusive,
    /// ascending. A seq counts as held when its record is stored or settled
    /// ([`Store::settle`]). Catch-up pulls these ranges only, so that what
    /// it costs follows what is missing, whatever the gaps.
    ///
    /// # Errors
    /// sled errors.
    pub fn gaps(
        &self,
        origin: &OriginId,
        upto: u64,
        max: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        self.with(|h| {
            let key = origin.as_bytes();
            let contiguous = match h.progress.get(key)? {
                Some(v) => OriginProgress::decode(*origin, &v)?.contiguous,
                None => 0,
            };
            if contiguous >= upto {
                return Ok(Vec::new());
            }
            let from = record_key(key, contiguous + 1);
            let to = record_key(key, upto);
            // The held seqs above the mark, in order, from records and
            // markers merged: the walk stops at the `max`th gap. Every key
            // in the range is 40 bytes (a progress key, 32, sorts below).
            let seqs = |tree: &sled::Tree| {
                tree.range(from..=to)
                    .keys()
                    .map(|k| k.map(|k| be_u64(&k[32..])))
                    .peekable()
            };
            let (mut stored, mut marked) = (seqs(&h.sightings), seqs(&h.progress));
            let mut gaps = Vec::new();
            let mut next = contiguous + 1;
            while gaps.len() < max {
                let seq = match (stored.peek(), marked.peek()) {
                    (Some(Ok(a)), Some(Ok(b))) if b < a => marked.next(),
                    (Some(_), _) => stored.next(),
                    (None, Some(_)) => marked.next(),
                    (None, None) => None,
                };
                let seq = match seq {
                    Some(seq) => seq?,
                    None => upto + 1,
                };
                if seq > next {
                    gaps.push((next, seq - 1));
                }
                if seq > upto {
                    break;
                }
                next = next.max(seq + 1);
            }
            Ok(gaps)
        })
    }

    /// Origins with equivocation evidence, with the number of conflicting records.
    ///
    /// # Errors
    /// sled errors.
    pub fn equivocations(&self) -> Result<Vec<(OriginId, u64)>, StoreError> {
        self.with(|h| {
            let mut counts: std::collections::BTreeMap<OriginId, u64> =
                std::collections::BTreeMap::new();
            for entry in evidence_entries(&h.evidence) {
                let (k, _) = entry?;
                let origin = OriginId::from_bytes(
                    k[..32]
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("evidence"))?,
                );
                *counts.entry(origin).or_default() += 1;
            }
            Ok(counts.into_iter().collect())
        })
    }

    /// Removes records whose retention or expiry time is ≤ `now`, with their
    /// indexes, and the raw number behind an `own` report that was the
    /// number's current one. Returns how many records were removed.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn purge(&self, now: u64, own: &OriginId, retention: u64) -> Result<usize, StoreError> {
        let _writer = self.writer();
        self.purge_evidence(now, retention)?;
        self.with(|h| {
            let end: [u8; 48] = cat(&[&now.to_be_bytes(), &[0xff; 40]]);
            let due: Vec<(sled::IVec, sled::IVec)> =
                h.purges.range(..=end).collect::<Result<_, _>>()?;
            let mut removed = 0;
            for (expiry_key, arrival) in due {
                if expiry_key.len() != 48 {
                    return Err(StoreError::Corrupt("purges"));
                }
                if self.remove(&expiry_key, &arrival, own, (now, retention))? {
                    removed += 1;
                }
            }
            if removed > 0 {
                h.db.flush()?;
            }
            Ok(removed)
        })
    }

    /// Removes equivocation evidence whose record is past retention or
    /// expired, as its record would be; the evidence tree is small (at most
    /// [`MAX_EVIDENCE`] per origin), so it is scanned whole.
    fn purge_evidence(&self, now: u64, retention: u64) -> Result<usize, StoreError> {
        self.with(|h| {
            let mut removed = 0;
            for entry in evidence_entries(&h.evidence) {
                let (key, bytes) = entry?;
                let due = decode_stored(&bytes).map_or(true, |s| {
                    crate::ingest::purge_at(s.last_seen, s.expires, retention) <= now
                });
                if due {
                    let origin = &key[..32];
                    h.evidence.transaction(|t| {
                        if t.remove(&*key)?.is_some() {
                            let kept = t.get(origin)?.as_deref().map_or(0, be_u64);
                            if kept <= 1 {
                                t.remove(origin)?;
                            } else {
                                t.insert(origin, &(kept - 1).to_be_bytes())?;
                            }
                        }
                        Ok::<_, ConflictableTransactionError<StoreError>>(())
                    })?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    /// Removes the record an expiry entry names, with its indexes and the
    /// entry itself, in one transaction. Whether a record was removed.
    ///
    /// A record removed before its retention ends (it expired) leaves a
    /// mark until retention would have removed it (`clock` is now and the
    /// retention), so that the origin's earlier reports of the number stay
    /// superseded (SPEC §12.1): a late copy of one, from a node that never
    /// saw the expired report, is ignored here as on every node that saw it.
    fn remove(
        &self,
        expiry_key: &[u8],
        arrival: &[u8],
        own: &OriginId,
        clock: (u64, u64),
    ) -> Result<bool, StoreError> {
        let (now, retention) = clock;
        self.with(|h| {
            let record_key = &expiry_key[8..48];
            let purge_at = be_u64(&expiry_key[..8]);
            let o = Overlays::new(h);
            let removed = (|| {
                if arrival.len() == 96 {
                    // A mark's time is up ([`leave_mark`]).
                    o.purges.remove(expiry_key)?;
                    if let Some(v) = o.current.get(arrival)? {
                        if is_mark(&v) && be_u64(&v) == be_u64(&record_key[32..40]) {
                            o.current.remove(arrival)?;
                        }
                    }
                    return Ok(false);
                }
                let Some(bytes) = o.sightings.get(record_key)? else {
                    o.purges.remove(expiry_key)?;
                    o.arrivals.remove(arrival)?;
                    return Ok(false);
                };
                let s = decode_stored(&bytes).map_err(abort)?;
                let e = quota::Entry::of(&s, purge_at);
                unstore_tx(&o, &e)?;
                let until = s.last_seen.saturating_add(retention);
                if until > now {
                    leave_mark(&o, &current_key(&s), s.seq, until)?;
                }
                // The number's last own report is gone: so is the one
                // reason to keep its raw form.
                if s.origin == *own && o.current.get(current_key(&s))?.is_none_or(|v| is_mark(&v)) {
                    o.own_numbers.remove(s.number.as_bytes())?;
                }
                Ok(true)
            })()
            .map_err(settled)?;
            o.commit(h)?;
            Ok(removed)
        })
    }

    /// Every stored record's wire bytes, in arrival order (a backup's
    /// body; restore re-derives every index from them).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] while the store is being reopened.
    pub fn records_by_arrival(
        &self,
    ) -> Result<impl Iterator<Item = Result<sled::IVec, StoreError>>, StoreError> {
        let h = self.handles()?;
        let sightings = h.sightings.clone();
        Ok(h.arrivals.iter().filter_map(move |entry| {
            let record = match entry {
                Ok((_, record)) => record,
                Err(e) => return Some(Err(e.into())),
            };
            // A record purged since the arrival was read is simply gone.
            sightings.get(record).map_err(Into::into).transpose()
        }))
    }

    /// The wire bytes of every equivocation's evidence record.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] while the store is being reopened.
    pub fn evidence_records(
        &self,
    ) -> Result<impl Iterator<Item = Result<sled::IVec, StoreError>>, StoreError> {
        let h = self.handles()?;
        Ok(evidence_entries(&h.evidence).map(|entry| Ok(entry?.1)))
    }

    /// Every raw number this node submitted, with its hash.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] while the store is being reopened.
    pub fn own_numbers(
        &self,
    ) -> Result<impl Iterator<Item = Result<(NumberHash, String), StoreError>>, StoreError> {
        let h = self.handles()?;
        Ok({
            h.own_numbers.iter().map(|entry| {
                let (hash, e164) = entry?;
                let hash: [u8; 32] = hash
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("own_numbers key"))?;
                Ok((
                    NumberHash::from_bytes(hash),
                    String::from_utf8_lossy(&e164).into_owned(),
                ))
            })
        })
    }

    /// Remembers the raw number behind an own report (restoring a backup:
    /// the caller checked that `e164` hashes to `hash`).
    ///
    /// # Errors
    /// sled errors.
    pub fn restore_own_number(&self, hash: &NumberHash, e164: &str) -> Result<(), StoreError> {
        self.with(|h| {
            h.own_numbers.insert(hash.as_bytes(), e164.as_bytes())?;
            Ok(())
        })
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.with(|h| Ok(h.sightings.is_empty())).unwrap_or(false)
    }

    /// Every tree's entries, for tests that compare whole stores.
    #[cfg(test)]
    fn snapshot(&self) -> Vec<(&'static str, Entries)> {
        self.handles().unwrap().snapshot()
    }

    /// Bytes the store occupies on disk.
    ///
    /// # Errors
    /// sled errors.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.with(|h| Ok(h.db.size_on_disk()?))
    }
}

/// Every tree a write of records touches, as overlays: a batch is worked
/// out on them, then committed in one transaction.
struct Overlays<'a> {
    sightings: quota::Ov<'a>,
    current: quota::Ov<'a>,
    progress: quota::Ov<'a>,
    arrivals: quota::Ov<'a>,
    purges: quota::Ov<'a>,
    evidence: quota::Ov<'a>,
    quota: quota::Q<'a>,
    own_numbers: quota::Ov<'a>,
    own_added: quota::Ov<'a>,
    links: quota::Ov<'a>,
}

impl<'a> Overlays<'a> {
    fn new(h: &'a Handles) -> Self {
        Overlays {
            sightings: quota::Ov::new(&h.sightings),
            current: quota::Ov::new(&h.current),
            progress: quota::Ov::new(&h.progress),
            arrivals: quota::Ov::new(&h.arrivals),
            purges: quota::Ov::new(&h.purges),
            evidence: quota::Ov::new(&h.evidence),
            quota: quota::Q::new(&h.quota, &h.counts),
            own_numbers: quota::Ov::new(&h.own_numbers),
            own_added: quota::Ov::new(&h.own_added),
            links: quota::Ov::new(&h.links),
        }
    }

    /// Commits every write in one transaction (all or nothing).
    fn commit(&self, h: &Handles) -> Result<(), StoreError> {
        let trees = [
            &self.sightings,
            &self.current,
            &self.progress,
            &self.arrivals,
            &self.purges,
            &self.evidence,
            &self.own_numbers,
            &self.own_added,
            &self.links,
        ];
        if trees.iter().all(|o| o.is_clean()) && self.quota.is_clean() {
            return Ok(());
        }
        (
            &h.sightings,
            &h.current,
            &h.progress,
            &h.arrivals,
            &h.purges,
            &h.evidence,
            &h.own_numbers,
            &h.own_added,
            &h.links,
            &h.quota,
        )
            .transaction(|(a, b, c, d, e, f, g, ad, l, quota)| {
                for (o, t) in trees.iter().zip([a, b, c, d, e, f, g, ad, l]) {
                    o.apply(t)?;
                }
                self.quota.apply(quota)?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })?;
        self.quota.committed();
        Ok(())
    }
}

/// The held reports of a number: one prefix scan of `current`.
fn current_of(
    h: &Handles,
    network: &NetworkId,
    number: &NumberHash,
    block: &BlockHash,
) -> Result<Vec<Sighting>, StoreError> {
    let mut current = Vec::new();
    let prefix: [u8; 64] = cat(&[block.as_bytes(), number.as_bytes()]);
    for entry in h.current.scan_prefix(prefix) {
        let (key, value) = entry?;
        if key.len() != 96 || !current::is_valid(&value) {
            return Err(StoreError::Corrupt("current"));
        }
        if is_mark(&value) {
            continue;
        }
        let origin = OriginId::from_bytes(
            key[64..96]
                .try_into()
                .map_err(|_| StoreError::Corrupt("current"))?,
        );
        current.push(current::decode(network, *block, *number, origin, &value)?);
    }
    Ok(current)
}

/// The first `own_added` time for records stored `now` (unix seconds): in
/// milliseconds, after every time given before (so that each own record
/// has its own, and a reader polling with the last one it saw misses none).
fn next_added(h: &Handles, now: u64) -> Result<u64, StoreError> {
    let last = h.own_added.last()?.map_or(0, |(k, _)| be_u64(&k[..8]));
    Ok(now.saturating_mul(1000).max(last + 1))
}

/// The error of work done on overlays, outside any transaction.
fn settled(e: ConflictableTransactionError<StoreError>) -> StoreError {
    match e {
        ConflictableTransactionError::Abort(e) => e,
        ConflictableTransactionError::Storage(e) => StoreError::Sled(e),
        _ => StoreError::Corrupt("transaction conflict on overlays"),
    }
}

/// One record's writes, inside a transaction over [`Store::trees`].
fn insert_tx(
    trees: &Overlays<'_>,
    record: &SignedSighting,
    purge_at: u64,
    arrival: u64,
    limits: &Limits,
) -> Result<InsertOutcome, ConflictableTransactionError<StoreError>> {
    let (sightings, current, progress, arrivals, purges, evidence, quota) = (
        &trees.sightings,
        &trees.current,
        &trees.progress,
        &trees.arrivals,
        &trees.purges,
        &trees.evidence,
        &trees.quota,
    );
    let s = record.sighting();
    let origin = s.origin.as_bytes();
    let key = record_key(origin, s.seq);
    let mut p = load_progress(progress, &s.origin)?;
    // One record per (origin, seq): the same bytes again are a duplicate,
    // other bytes are equivocation. (No index by id: it would cost an
    // insert into a random-key tree per record on the ingest path.) A seq
    // above the origin's highest was never stored, which spares the lookup
    // for records arriving in order.
    if s.seq <= p.max_seq {
        if let Some(existing) = sightings.get(key)? {
            if existing.as_ref() == record.as_bytes() {
                return Ok(InsertOutcome::Duplicate);
            }
            // The first conflicting record per (origin, seq) is the evidence,
            // and at most MAX_EVIDENCE per origin: one proves equivocation,
            // a few show a pattern, more would only let a member fill the
            // disk. The origin's count is kept under its 32-byte key.
            let kept = evidence.get(origin)?.as_deref().map_or(0, be_u64);
            if kept < MAX_EVIDENCE && evidence.get(key)?.is_none() {
                evidence.insert(key.as_slice(), record.as_bytes())?;
                evidence.insert(origin.as_slice(), &(kept + 1).to_be_bytes())?;
            }
            return Ok(InsertOutcome::Equivocation {
                existing: SightingId::of(&existing),
            });
        }
    }
    // Supersede: the origin's report of a number with the highest seq is
    // the only one kept. A lower seq than the current one was replaced
    // before it arrived; its seq is accounted for, like one refused for
    // good, so that catch-up does not fetch it again.
    let current_key = current_key(s);
    let replaced = match current.get(current_key)? {
        Some(v) if !current::is_valid(&v) => return Err(abort(StoreError::Corrupt("current"))),
        Some(v) if be_u64(&v) > s.seq => {
            settle_tx(trees, &s.origin, s.seq)?;
            return Ok(InsertOutcome::Superseded);
        }
        other => other,
    };
    // The origin's earlier report (or mark) goes whether or not this one
    // fits the origin's limits: they count current reports only.
    let superseded = match replaced {
        Some(v) if is_mark(&v) => {
            drop_mark(trees, &s.origin, &current_key, &v)?;
            false
        }
        Some(v) => {
            let seq = be_u64(&v);
            let removed = unstore_seq(trees, &s.origin, seq, be_u64(&v[8..16]))?;
            // Its seq stays accounted for (it was held), above the mark too.
            settle_tx(trees, &s.origin, seq)?;
            removed
        }
        None => false,
    };
    let entry = quota::Entry::of(s, purge_at);
    quota::prepare_day(quota, &entry, limits)?;
    let evict = match quota::admit(quota, &entry, limits)? {
        quota::Admission::Refuse(reason) => {
            // Refused, it still supersedes what the origin said before.
            leave_mark(trees, &current_key, s.seq, purge_at)?;
            return Ok(InsertOutcome::OverLimit(reason));
        }
        quota::Admission::Admit { evict } => evict,
    };
    for (seq, hour) in &evict {
        evict_tx(trees, &s.origin, *hour, *seq)?;
    }
    // Evictions and the replaced report's removal rewrote the progress.
    if !evict.is_empty() || superseded {
        if let Some(v) = progress.get(origin)? {
            p = OriginProgress::decode(s.origin, &v).map_err(abort)?;
        }
    }
    quota::index(quota, &entry)?;
    let arrival = arrival.to_be_bytes();
    let purge_key = purge_key(purge_at, &key);
    sightings.insert(key.as_slice(), record.as_bytes())?;
    arrivals.insert(arrival.as_slice(), key.as_slice())?;
    purges.insert(purge_key.as_slice(), arrival.as_slice())?;

    current.insert(current_key.as_slice(), current::encode(s).as_slice())?;
    links::index(&trees.links, s)?;

    p.count += 1;
    p.max_seq = p.max_seq.max(s.seq);
    for (d, b) in p.digest.iter_mut().zip(record.id().as_bytes()) {
        *d ^= b;
    }
    // Only a record that fills the first gap moves the contiguous mark; it
    // then runs on over records that arrived out of order.
    if s.seq == p.contiguous + 1 {
        p.contiguous = s.seq;
        run_forward(sightings, progress, &mut p)?;
    }
    progress.insert(origin.as_slice(), p.encode().as_slice())?;
    Ok(InsertOutcome::Stored {
        superseded,
        evicted: evict.len() as u64,
    })
}

/// `origin`'s progress as the batch sees it (empty for a new origin).
fn load_progress(
    progress: &quota::Ov<'_>,
    origin: &OriginId,
) -> Result<OriginProgress, ConflictableTransactionError<StoreError>> {
    Ok(match progress.get(origin.as_bytes())? {
        Some(v) => OriginProgress::decode(*origin, &v).map_err(abort)?,
        None => OriginProgress {
            origin: *origin,
            count: 0,
            max_seq: 0,
            contiguous: 0,
            digest: [0; 32],
        },
    })
}

/// How far above an origin's contiguous mark a settled marker may be: at
/// most this many markers per origin (40-byte keys with empty values).
const MAX_SETTLED_AHEAD: u64 = 65_536;

/// Key of a settled marker in the `progress` tree: origin ‖ seq(BE), 40
/// bytes beside the 32-byte progress keys. A marker stands for a seq above
/// the origin's contiguous mark whose record was verified and refused for
/// good (expired, or past this node's retention): the mark runs over it as
/// over a stored record, and removes it.
fn settled_key(origin: &[u8], seq: u64) -> [u8; 40] {
    record_key(origin, seq)
}

/// Moves `p.contiguous` on over the seqs right above it that are stored or
/// settled (removing their markers). Markers are only ever placed below
/// `max_seq`, which never falls, so the walk ends there without a lookup:
/// a record stored in order costs no marker read.
fn run_forward(
    sightings: &quota::Ov<'_>,
    progress: &quota::Ov<'_>,
    p: &mut OriginProgress,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let origin = p.origin;
    let origin = origin.as_bytes();
    loop {
        let next = p.contiguous + 1;
        if next > p.max_seq {
            return Ok(());
        }
        let stored = sightings.get(record_key(origin, next))?.is_some();
        if !stored && progress.remove(settled_key(origin, next))?.is_none() {
            return Ok(());
        }
        p.contiguous = next;
    }
}

/// Accounts for one verified record of `origin` refused for good: see
/// [`Store::settle`].
fn settle_tx(
    trees: &Overlays<'_>,
    origin: &OriginId,
    seq: u64,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let key = origin.as_bytes();
    let mut p = load_progress(&trees.progress, origin)?;
    if seq <= p.contiguous {
        return Ok(());
    }
    if seq == p.contiguous + 1 {
        p.contiguous = seq;
        run_forward(&trees.sightings, &trees.progress, &mut p)?;
        trees.progress.insert(key, p.encode().as_slice())?;
    } else if seq <= p.max_seq && seq - p.contiguous <= MAX_SETTLED_AHEAD {
        // A marker only where a gap can be pulled (below a held record)
        // and within a window of the mark: a member that signs expired
        // records with scattered seqs cannot grow the markers without
        // bound. A seq refused outside them may be fetched once more.
        trees
            .progress
            .insert(settled_key(key, seq), sled::IVec::default())?;
    }
    Ok(())
}

/// Removes a stored record's writes: the record, its arrival and purge
/// entries, its quota entry, its current-report entry and its part of its
/// origin's progress (its seq stays accounted for: it was held). Every
/// stored record is its origin's current report of its number (earlier
/// ones were superseded), so the origin then has no report of the number
/// here, as on a node that never stored it. Returns the removed record.
fn unstore_tx(
    trees: &Overlays<'_>,
    entry: &quota::Entry,
) -> Result<Option<Sighting>, ConflictableTransactionError<StoreError>> {
    let (sightings, current, progress, arrivals, purges, quota) = (
        &trees.sightings,
        &trees.current,
        &trees.progress,
        &trees.arrivals,
        &trees.purges,
        &trees.quota,
    );
    let key = record_key(entry.origin.as_bytes(), entry.seq);
    quota::unindex(quota, entry)?;
    if let Some(arrival) = purges.remove(purge_key(entry.purge_at, &key).as_slice())? {
        arrivals.remove(arrival)?;
    }
    let Some(bytes) = sightings.remove(key.as_slice())? else {
        return Ok(None);
    };
    let s = decode_stored(&bytes).map_err(abort)?;
    links::unindex(&trees.links, &s)?;
    let origin = s.origin.as_bytes();
    let ck = current_key(&s);
    if let Some(v) = current.get(ck)? {
        if current::is_valid(&v) && !is_mark(&v) && current::seq(&v) == s.seq {
            current.remove(ck.as_slice())?;
        }
    }
    if let Some(v) = progress.get(origin)? {
        let mut p = OriginProgress::decode(s.origin, &v).map_err(abort)?;
        p.count = p.count.saturating_sub(1);
        for (d, b) in p.digest.iter_mut().zip(SightingId::of(&bytes).as_bytes()) {
            *d ^= b;
        }
        progress.insert(origin, p.encode().as_slice())?;
    }
    Ok(Some(s))
}

/// Marks `origin`'s latest record of a number as known but not held
/// ([`MARK`]) until `purge_at`, when the purge removes the mark (its
/// `purges` entry holds the `current` key instead of an arrival).
fn leave_mark(
    trees: &Overlays<'_>,
    current_key: &[u8; 96],
    seq: u64,
    purge_at: u64,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let value = current::mark(seq, purge_at);
    trees
        .current
        .insert(current_key.as_slice(), value.as_slice())?;
    let key = purge_key(purge_at, &record_key(&current_key[64..96], seq));
    trees
        .purges
        .insert(key.as_slice(), current_key.as_slice())?;
    Ok(())
}

/// Removes a mark ([`leave_mark`]) and its `purges` entry.
fn drop_mark(
    trees: &Overlays<'_>,
    origin: &OriginId,
    current_key: &[u8; 96],
    mark: &[u8],
) -> Result<(), ConflictableTransactionError<StoreError>> {
    trees.current.remove(current_key.as_slice())?;
    let key = purge_key(
        be_u64(&mark[8..16]),
        &record_key(origin.as_bytes(), be_u64(mark)),
    );
    trees.purges.remove(key.as_slice())?;
    Ok(())
}

/// Removes `origin`'s stored record with `seq` and `last_seen` (from its
/// `current` value: no decode), if it is still stored, with all its writes
/// ([`unstore_tx`]). Whether it was.
fn unstore_seq(
    trees: &Overlays<'_>,
    origin: &OriginId,
    seq: u64,
    last_seen: u64,
) -> Result<bool, ConflictableTransactionError<StoreError>> {
    let Some(entry) = quota::entry(&trees.quota, origin, last_seen / quota::HOUR, seq)? else {
        if trees
            .sightings
            .get(record_key(origin.as_bytes(), seq))?
            .is_some()
        {
            return Err(abort(StoreError::Corrupt("quota entry of a stored record")));
        }
        return Ok(false);
    };
    Ok(unstore_tx(trees, &entry)?.is_some())
}

/// Evicts the record of `origin` with `seq` (in hour bucket `hour`).
fn evict_tx(
    o: &Overlays<'_>,
    origin: &OriginId,
    hour: u64,
    seq: u64,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let Some(e) = quota::entry(&o.quota, origin, hour, seq)? else {
        return Err(abort(StoreError::Corrupt(
            "quota entry of an evicted record",
        )));
    };
    // Evicted, it still supersedes what the origin said before.
    if let Some(s) = unstore_tx(o, &e)? {
        leave_mark(o, &current_key(&s), seq, e.purge_at)?;
    }
    Ok(())
}

/// Opens the sled database. sled 0.34 releases its file lock from a
/// background thread shortly after the last handle is dropped, so reopening
/// in the same process (a restart, a restore) can briefly find it held:
/// retry for up to a second before reporting it (then another process, e.g.
/// a running node, really holds the store).
fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(cache_bytes);
    let mut attempts = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if attempts < 20 && e.to_string().contains("could not acquire lock") =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
}

/// [`open_db`], turning sled's corruption errors and panics (sled 0.34
/// panics on some damaged files instead of returning an error) into
/// [`StoreError::Unreadable`]. The panic is reported once, by the error, not
/// by the panic hook; panics on other threads meanwhile are untouched.
fn open_guarded(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let unreadable = |detail: String| StoreError::Unreadable {
        path: dir.to_owned(),
        detail,
    };
    let opener = std::thread::current().id();
    let previous: std::sync::Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        std::sync::Arc::from(std::panic::take_hook());
    let others = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != opener {
            others(info);
        }
    }));
    let result = std::panic::catch_unwind(|| open_db(dir, cache_bytes));
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous(info)));
    match result {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(StoreError::Sled(sled::Error::Corruption { at, .. }))) => {
            Err(unreadable(at.map_or_else(
                || "sled found corruption".to_owned(),
                |at| format!("sled found corruption at {at}"),
            )))
        }
        Ok(Err(StoreError::Sled(sled::Error::Io(e))))
            if e.kind() != std::io::ErrorKind::PermissionDenied
                && !e.to_string().contains("could not acquire lock") =>
        {
            Err(unreadable(e.to_string()))
        }
        Ok(Err(other)) => Err(other),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "sled stopped on a damaged file".to_owned());
            Err(unreadable(detail))
        }
    }
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// Records in the store were verified before insertion; decoding them again
/// (without re-verifying the signature) only recovers the fields.
fn decode_stored(bytes: &[u8]) -> Result<Sighting, StoreError> {
    UnverifiedSighting::decode(bytes)
        .map(|r| r.sighting().clone())
        .map_err(|_| StoreError::Corrupt("stored record does not decode"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::{Channel, Kind, LineType, NetworkId, SigningKey};

    fn net() -> NetworkId {
        NetworkId::new("test-net").unwrap()
    }

    pub(crate) fn record(
        key: &SigningKey,
        seq: u64,
        number: u8,
        verdict: Verdict,
        last_seen: u64,
    ) -> SignedSighting {
        Sighting {
            network: NetworkId::new("test-net").unwrap(),
            origin: key.origin(),
            seq,
            number: NumberHash::from_bytes([number; 32]),
            block: BlockHash::from_bytes([number / 10; 32]),
            cc: 1,
            line: LineType::Mobile,
            kind: Kind::Smishing,
            verdict,
            channel: Channel::Sms,
            brand: None,
            confidence: 80,
            count: 1,
            first_seen: last_seen,
            last_seen,
            expires: None,
            links: None,
            role: None,
        }
        .sign(key)
        .unwrap()
    }

    /// What schema 3 did with a record (no limits, no equivocation): kept
    /// every record, and indexed the one with the highest seq per number as
    /// current. Tests build schema-3 stores with it.
    fn legacy_insert_tx(
        trees: &Overlays<'_>,
        record: &SignedSighting,
        purge_at: u64,
        arrival: u64,
    ) -> Result<InsertOutcome, ConflictableTransactionError<StoreError>> {
        let s = record.sighting();
        let key = record_key(s.origin.as_bytes(), s.seq);
        quota::index(&trees.quota, &quota::Entry::of(s, purge_at))?;
        trees.sightings.insert(key.as_slice(), record.as_bytes())?;
        let arrival = arrival.to_be_bytes();
        trees.arrivals.insert(arrival.as_slice(), key.as_slice())?;
        trees
            .purges
            .insert(purge_key(purge_at, &key).as_slice(), arrival.as_slice())?;
        let ck = current_key(s);
        if trees.current.get(ck)?.is_none_or(|v| be_u64(&v) < s.seq) {
            trees
                .current
                .insert(ck.as_slice(), current::encode(s).as_slice())?;
        }
        let mut p = load_progress(&trees.progress, &s.origin)?;
        p.count += 1;
        p.max_seq = p.max_seq.max(s.seq);
        for (d, b) in p.digest.iter_mut().zip(record.id().as_bytes()) {
            *d ^= b;
        }
        if s.seq == p.contiguous + 1 {
            p.contiguous = s.seq;
            run_forward(&trees.sightings, &trees.progress, &mut p)?;
        }
        trees
            .progress
            .insert(s.origin.as_bytes(), p.encode().as_slice())?;
        Ok(InsertOutcome::Stored {
            superseded: false,
            evicted: 0,
        })
    }

    /// Stores `record` as schema 3 did ([`legacy_insert_tx`]).
    fn legacy_insert(store: &Store, record: &SignedSighting, purge_at: u64) {
        let arrival = store.arrivals(1).unwrap()[0];
        store
            .with(|h| {
                let o = Overlays::new(h);
                legacy_insert_tx(&o, record, purge_at, arrival).map_err(settled)?;
                o.commit(h)
            })
            .unwrap();
    }

    thread_local! {
        /// The schema-4 migration stops after its first transaction.
        pub(super) static CRASH_AFTER_BATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn a_schema_3_store_drops_superseded_reports_in_place_and_survives_a_crash() {
        let key = SigningKey::from_seed(&[1; 32]);
        let peer = SigningKey::from_seed(&[2; 32]);
        // Re-reports of numbers 5 and 6, a withdrawal, a single report, a
        // peer's reports, arriving out of order.
        let records = [
            record(&key, 1, 5, Verdict::Malicious, 1000),
            record(&key, 2, 6, Verdict::Malicious, 1000),
            record(&key, 4, 5, Verdict::Malicious, 1002),
            record(&key, 3, 5, Verdict::Malicious, 1001),
            record(&key, 5, 6, Verdict::Withdrawn, 1003),
            record(&key, 6, 7, Verdict::Malicious, 1003),
            record(&peer, 1, 5, Verdict::Malicious, 1000),
            record(&peer, 2, 5, Verdict::FalsePositive, 1001),
        ];
        let expected = {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            for r in &records {
                store.insert(r, 9000).unwrap();
            }
            holdings(&store)
        };
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for r in &records {
                legacy_insert(&store, r, 9000);
            }
            assert_eq!(stored(&store), 8);
            let h = store.handles().unwrap();
            h.meta.remove(META_SUPERSEDED_DROPPED).unwrap();
            h.meta.insert(META_SCHEMA, &3u32.to_be_bytes()).unwrap();
            h.db.flush().unwrap();
        }
        // A crash after the first of several transactions leaves a store
        // that opens again and finishes the work.
        CRASH_AFTER_BATCH.with(|c| c.set(true));
        let crashed = Store::open(dir.path());
        CRASH_AFTER_BATCH.with(|c| c.set(false));
        assert!(crashed.is_err());
        drop(crashed);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(holdings(&store), expected);
        assert_eq!(stored(&store), 4);
        assert_eq!(current_of(&store, 6)[0].verdict, Verdict::Withdrawn);
        let h = store.handles().unwrap();
        assert_eq!(
            h.meta.get(META_SCHEMA).unwrap().unwrap().as_ref(),
            &SCHEMA_VERSION.to_be_bytes()
        );
        // Every seq of each origin stays accounted for.
        let p = store.progress().unwrap();
        assert!(p.iter().all(|p| p.contiguous == p.max_seq), "{p:?}");
    }

    #[test]
    fn a_schema_4_store_gains_compact_reports_in_place_and_survives_a_crash() {
        let key = SigningKey::from_seed(&[1; 32]);
        let peer = SigningKey::from_seed(&[2; 32]);
        let mut records = vec![
            record(&key, 1, 5, Verdict::Malicious, 1000),
            record(&key, 2, 6, Verdict::Withdrawn, 1001),
            record(&peer, 1, 5, Verdict::FalsePositive, 1001),
        ];
        records.extend((0..8).map(|i| {
            record(
                &peer,
                2 + i,
                40 + u8::try_from(i).unwrap(),
                Verdict::Malicious,
                900,
            )
        }));
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let store = Store::open(dir.path()).unwrap();
            for r in &records {
                store.insert(r, 9000).unwrap();
            }
            // A mark stays as it is.
            store
                .insert(&record(&key, 3, 7, Verdict::Malicious, 1000), 9000)
                .unwrap();
            store
                .with(|h| {
                    let o = Overlays::new(h);
                    let ck: [u8; 96] = cat(&[&[0; 32], &[7; 32], key.origin().as_bytes()]);
                    leave_mark(&o, &ck, 3, 9000).map_err(settled)?;
                    o.commit(h)
                })
                .unwrap();
            let expected = store.snapshot();
            // Back to schema 4's values: seq ‖ last_seen ‖ verdict.
            let h = store.handles().unwrap();
            let mut legacy = 0;
            for entry in &h.current {
                let (k, v) = entry.unwrap();
                if !is_mark(&v) {
                    h.current.insert(k, &v[..17]).unwrap();
                    legacy += 1;
                }
            }
            assert_eq!(legacy, 11);
            h.meta.remove(META_CURRENT_EXPANDED).unwrap();
            h.meta.insert(META_SCHEMA, &4u32.to_be_bytes()).unwrap();
            h.db.flush().unwrap();
            expected
        };
        CRASH_AFTER_BATCH.with(|c| c.set(true));
        let crashed = Store::open(dir.path());
        CRASH_AFTER_BATCH.with(|c| c.set(false));
        assert!(crashed.is_err());
        drop(crashed);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.snapshot(), expected);
        let reports = current_of(&store, 5);
        assert_eq!(reports.len(), 2);
        let r = reports.iter().find(|s| s.origin == peer.origin()).unwrap();
        assert_eq!(r, records[2].sighting());
    }

    /// Records stored, by the origins' progress (what `status` reports).
    fn stored(store: &Store) -> u64 {
        store.progress().unwrap().iter().map(|p| p.count).sum()
    }

    /// A room entry for test number `n` at `t`.
    fn at(t: u64, n: u8) -> (u64, NumberHash, BlockHash) {
        (
            t,
            NumberHash::from_bytes([n; 32]),
            BlockHash::from_bytes([n / 10; 32]),
        )
    }

    /// The current reports of test number `n` (in block `n / 10`).
    fn current_of(store: &Store, n: u8) -> Vec<Sighting> {
        store
            .reports(
                &net(),
                &NumberHash::from_bytes([n; 32]),
                &BlockHash::from_bytes([n / 10; 32]),
                0,
                |_| true,
            )
            .unwrap()
            .current
    }

    /// A record of test number `number` at `last_seen` with its purge time.
    fn limited(key: &SigningKey, seq: u64, number: u8, last_seen: u64) -> SignedSighting {
        record(key, seq, number, Verdict::Malicious, last_seen)
    }

    /// Offers `records` in `order` until nothing changes (catch-up offers
    /// what a node lacks again), returning the stored set.
    fn settle(records: &[SignedSighting], order: &[usize], limits: Limits) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_limits(limits);
        let mut before = None;
        for _ in 0..10 {
            for &i in order {
                store.insert(&records[i], u64::MAX).unwrap();
            }
            let now: Vec<u64> = store
                .page(&records[0].sighting().origin, 0, 10_000)
                .unwrap()
                .0
                .iter()
                .map(|b| decode_stored(b).unwrap().seq)
                .collect();
            if before.as_ref() == Some(&now) {
                return now;
            }
            before = Some(now);
        }
        panic!("the store did not settle");
    }

    #[test]
    fn over_limit_records_are_refused_and_counted_by_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_limits(Limits {
            records_per_hour: 3,
            numbers_per_day: 4,
        });
        let key = SigningKey::from_seed(&[1; 32]);
        let t = 1_800_000_000 - 1_800_000_000 % 86_400 + 3600;
        let outcomes: Vec<InsertOutcome> = [
            (1, 5, t),
            (2, 6, t + 1),
            (3, 7, t + 2),
            (4, 8, t + 3),
            (5, 5, t + 4),
        ]
        .iter()
        .map(|&(seq, n, at)| store.insert(&limited(&key, seq, n, at), u64::MAX).unwrap())
        .collect();
        assert!(matches!(outcomes[2], InsertOutcome::Stored { .. }));
        assert_eq!(outcomes[3], InsertOutcome::OverLimit(OVER_RECORDS_PER_HOUR));
        // Limits count current reports: a re-report replaces one.
        assert_eq!(
            outcomes[4],
            InsertOutcome::Stored {
                superseded: true,
                evicted: 0
            }
        );
        // The next hour has room, for a fourth number that day but not a fifth.
        let fourth = store
            .insert(&limited(&key, 6, 9, t + 3600), u64::MAX)
            .unwrap();
        assert!(matches!(fourth, InsertOutcome::Stored { .. }));
        let next = store
            .insert(&limited(&key, 7, 10, t + 3601), u64::MAX)
            .unwrap();
        assert_eq!(next, InsertOutcome::OverLimit(OVER_NUMBERS_PER_DAY));
        let known = store
            .insert(&limited(&key, 8, 6, t + 3602), u64::MAX)
            .unwrap();
        assert!(matches!(known, InsertOutcome::Stored { .. }));
        // A lower seq of a full hour evicts the highest, and the origin then
        // has no report of that number (earlier ones were superseded).
        let dir2 = tempfile::tempdir().unwrap();
        let other = Store::open(dir2.path()).unwrap();
        other.set_limits(Limits {
            records_per_hour: 3,
            numbers_per_day: 10,
        });
        for (seq, n) in [(2, 5), (3, 6), (4, 7)] {
            other
                .insert(&limited(&key, seq, n, t + seq), u64::MAX)
                .unwrap();
        }
        assert_eq!(current_of(&other, 7).len(), 1);
        let early = other.insert(&limited(&key, 1, 8, t), u64::MAX).unwrap();
        assert_eq!(
            early,
            InsertOutcome::Stored {
                superseded: false,
                evicted: 1
            }
        );
        assert!(current_of(&other, 7).is_empty(), "seq 4 was evicted");
        assert_eq!(current_of(&other, 8)[0].seq, 1);
        assert_eq!(stored(&other), 3);
    }

    #[test]
    fn the_kept_set_does_not_depend_on_arrival_order() {
        let key = SigningKey::from_seed(&[1; 32]);
        let limits = Limits {
            records_per_hour: 4,
            numbers_per_day: 3,
        };
        let day = 1_800_000_000 - 1_800_000_000 % 86_400;
        // 24 records over two hours of one day and six numbers.
        let records: Vec<SignedSighting> = (1..=24u64)
            .map(|seq| {
                let number = u8::try_from((seq * 7) % 6).unwrap() + 10;
                limited(&key, seq, number, day + (seq % 2) * 3600 + seq)
            })
            .collect();
        let in_order: Vec<usize> = (0..records.len()).collect();
        let expected = settle(&records, &in_order, limits);
        assert!(!expected.is_empty() && expected.len() < records.len());
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..12 {
            let mut order = in_order.clone();
            for i in (1..order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap());
            }
            assert_eq!(
                settle(&records, &order, limits),
                expected,
                "order {order:?}"
            );
        }
        let reversed: Vec<usize> = in_order.iter().rev().copied().collect();
        assert_eq!(settle(&records, &reversed, limits), expected);
    }

    #[test]
    fn a_day_is_indexed_by_number_once_it_holds_as_many_records_as_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_limits(Limits {
            records_per_hour: 100,
            numbers_per_day: 3,
        });
        let key = SigningKey::from_seed(&[1; 32]);
        let t = 1_800_000_000 - 1_800_000_000 % 86_400;
        for (seq, n) in [(1, 5), (2, 6), (3, 7)] {
            store.insert(&limited(&key, seq, n, t), u64::MAX).unwrap();
        }
        let number = |n: u8| [at(t, n)];
        assert_eq!(
            store.room(&key.origin(), t, &number(8)).unwrap(),
            Room::Wait(86_400)
        );
        assert_eq!(
            store.room(&key.origin(), t, &number(6)).unwrap(),
            Room::Fits
        );
        // A full day that has ended never makes room; nor does a batch
        // over a limit by itself.
        assert_eq!(
            store.room(&key.origin(), t + 86_400, &number(8)).unwrap(),
            Room::Never(OVER_NUMBERS_PER_DAY)
        );
        let four: Vec<_> = (20..24u8).map(|n| at(t + 86_400, n)).collect();
        assert_eq!(
            store.room(&key.origin(), t + 86_400, &four).unwrap(),
            Room::Never(OVER_NUMBERS_PER_DAY)
        );
        assert!(matches!(
            store.insert(&limited(&key, 4, 6, t), u64::MAX).unwrap(),
            InsertOutcome::Stored { .. }
        ));
        assert_eq!(
            store.insert(&limited(&key, 5, 8, t), u64::MAX).unwrap(),
            InsertOutcome::OverLimit(OVER_NUMBERS_PER_DAY)
        );
        // Reopened, the counters come back from the index.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        store.set_limits(Limits {
            records_per_hour: 3,
            numbers_per_day: 10,
        });
        assert_eq!(
            store.room(&key.origin(), t, &number(8)).unwrap(),
            Room::Wait(3600)
        );
        // A re-report of a number takes its current report's place.
        assert_eq!(
            store.room(&key.origin(), t, &number(6)).unwrap(),
            Room::Fits
        );
    }

    #[test]
    fn purging_frees_an_origins_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.set_limits(Limits {
            records_per_hour: 2,
            numbers_per_day: 10,
        });
        let key = SigningKey::from_seed(&[1; 32]);
        let t = 1_800_000_000 - 1_800_000_000 % 86_400;
        store.insert(&limited(&key, 1, 5, t), 10).unwrap();
        store.insert(&limited(&key, 2, 6, t), u64::MAX).unwrap();
        let n7 = [at(t, 7)];
        assert_eq!(
            store.room(&key.origin(), t + 1, &n7).unwrap(),
            Room::Wait(3599)
        );
        assert_eq!(
            store
                .purge(10, &OriginId::from_bytes([9; 32]), u64::MAX)
                .unwrap(),
            1
        );
        assert_eq!(store.room(&key.origin(), t + 1, &n7).unwrap(), Room::Fits);
        assert!(matches!(
            store.insert(&limited(&key, 3, 5, t), u64::MAX).unwrap(),
            InsertOutcome::Stored { .. }
        ));
    }

    #[test]
    fn a_schema_2_store_is_indexed_for_limits_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let t = 1_800_000_000 - 1_800_000_000 % 86_400;
        {
            let store = Store::open(dir.path()).unwrap();
            for seq in 1..=3u8 {
                store
                    .insert(&limited(&key, seq.into(), 5 + seq, t), u64::MAX)
                    .unwrap();
            }
            // What schema 2 had: no quota index, no marker, version 2.
            let h = store.handles().unwrap();
            h.quota.clear().unwrap();
            h.meta.remove(META_QUOTA_INDEXED).unwrap();
            h.meta.insert(META_SCHEMA, &2u32.to_be_bytes()).unwrap();
            h.db.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        store.set_limits(Limits {
            records_per_hour: 3,
            numbers_per_day: 10,
        });
        let n5 = [at(t, 5)];
        assert_eq!(
            store.room(&key.origin(), t + 1, &n5).unwrap(),
            Room::Wait(3599)
        );
        assert_eq!(
            store.insert(&limited(&key, 4, 5, t), u64::MAX).unwrap(),
            InsertOutcome::OverLimit(OVER_RECORDS_PER_HOUR)
        );
        let h = store.handles().unwrap();
        assert_eq!(
            h.meta.get(META_SCHEMA).unwrap().unwrap().as_ref(),
            &SCHEMA_VERSION.to_be_bytes()
        );
    }

    /// The trees that say what a store holds (arrival numbers differ by
    /// arrival order).
    fn holdings(store: &Store) -> Vec<(&'static str, Entries)> {
        store
            .snapshot()
            .into_iter()
            .filter(|(name, _)| ["sightings", "current", "progress", "quota"].contains(name))
            .collect()
    }

    #[test]
    fn a_later_report_supersedes_and_a_withdrawal_stays_as_a_tombstone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let r1 = record(&key, 1, 5, Verdict::Malicious, 1000);
        let r2 = record(&key, 2, 5, Verdict::Withdrawn, 1001);
        let other_number = record(&key, 3, 6, Verdict::Malicious, 1002);
        let fresh = |superseded| InsertOutcome::Stored {
            superseded,
            evicted: 0,
        };
        assert_eq!(store.insert(&r1, u64::MAX).unwrap(), fresh(false));
        assert_eq!(store.insert(&other_number, u64::MAX).unwrap(), fresh(false));
        assert_eq!(store.insert(&r2, u64::MAX).unwrap(), fresh(true));
        // The withdrawal is the current report; the report it replaced is
        // deleted, not kept beside it, and does not come back.
        let current = current_of(&store, 5);
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].verdict, Verdict::Withdrawn);
        assert_eq!(stored(&store), 2);
        assert!(store
            .page(&key.origin(), 0, 10)
            .unwrap()
            .0
            .iter()
            .all(|b| b != r1.as_bytes()));
        assert_eq!(
            store.insert(&r1, u64::MAX).unwrap(),
            InsertOutcome::Superseded
        );
        assert_eq!(
            store.insert(&r2, u64::MAX).unwrap(),
            InsertOutcome::Duplicate
        );
        assert_eq!(current_of(&store, 5)[0].seq, 2);
        let p = store.progress().unwrap()[0];
        // Every seq is accounted for; the digest is of what is held.
        assert_eq!((p.count, p.max_seq, p.contiguous), (2, 3, 3));
        let digest: Vec<u8> = r2
            .id()
            .as_bytes()
            .iter()
            .zip(other_number.id().as_bytes())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(p.digest.as_slice(), digest.as_slice());
        // A later report of the origin replaces the tombstone.
        let r4 = record(&key, 4, 5, Verdict::Malicious, 1003);
        assert_eq!(store.insert(&r4, u64::MAX).unwrap(), fresh(true));
        assert_eq!(current_of(&store, 5)[0].verdict, Verdict::Malicious);
        assert_eq!(stored(&store), 2);

        // Whatever the order they arrive in, the same records leave the
        // same holdings.
        let records = [&r1, &r2, &other_number, &r4];
        let mut expected = None;
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]] {
            let dir = tempfile::tempdir().unwrap();
            let s = Store::open(dir.path()).unwrap();
            for i in order {
                s.insert(records[i], u64::MAX).unwrap();
            }
            let held = holdings(&s);
            match &expected {
                None => expected = Some(held),
                Some(e) => assert_eq!(&held, e, "order {order:?}"),
            }
        }
        assert_eq!(expected.unwrap(), holdings(&store));
    }

    #[test]
    fn items_name_held_records_and_fetches_skip_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let origin = key.origin();
        let r1 = record(&key, 1, 5, Verdict::Malicious, 1000);
        let r2 = record(&key, 2, 6, Verdict::Malicious, 1000);
        let r4 = record(&key, 4, 7, Verdict::Malicious, 1000);
        for r in [&r1, &r2, &r4] {
            store.insert(r, u64::MAX).unwrap();
        }
        let items = store.items(&origin).unwrap();
        let expected: Vec<(u64, [u8; 32])> = [&r1, &r2, &r4]
            .iter()
            .map(|r| {
                let seq = r.sighting().seq;
                (seq, item_id(seq, r.id().as_bytes()))
            })
            .collect();
        assert_eq!(items, expected);
        let all: Vec<[u8; 32]> = items.iter().map(|(_, i)| *i).collect();
        assert_eq!(
            store.records_for_items(&origin, &all).unwrap(),
            vec![
                r1.as_bytes().to_vec(),
                r2.as_bytes().to_vec(),
                r4.as_bytes().to_vec()
            ]
        );
        // An item of another record at a held seq (equivocation), or of a
        // seq not held, is left out.
        let other = item_id(2, &[9; 32]);
        let missing = item_id(3, &[9; 32]);
        assert!(store
            .records_for_items(&origin, &[other, missing])
            .unwrap()
            .is_empty());
        // Wanted: seq 3 (a gap) and anything above the mark; not what the
        // mark covers (held here, or removed after being held).
        let above = item_id(9, &[9; 32]);
        assert_eq!(
            store.wanted(&origin, vec![other, missing, above]).unwrap(),
            vec![missing, above]
        );
        // A re-report removes seq 1: not wanted again.
        store
            .insert(&record(&key, 5, 5, Verdict::Withdrawn, 1001), u64::MAX)
            .unwrap();
        assert!(store.wanted(&origin, vec![all[0]]).unwrap().is_empty());
        let version = store.set_version(&origin).unwrap();
        assert_eq!((version.0, version.1), (origin, 3));
    }

    #[test]
    fn purging_a_current_report_leaves_the_origin_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let old = record(&key, 1, 5, Verdict::Malicious, 1000);
        let new = record(&key, 2, 5, Verdict::Malicious, 1001);
        store.insert(&old, 5_000).unwrap();
        // The newer report expires at 1,500, long before retention (10,000).
        store.insert(&new, 1_500).unwrap();
        let nobody = OriginId::from_bytes([9; 32]);
        assert_eq!(store.purge(1_500, &nobody, 10_000).unwrap(), 1);
        assert!(current_of(&store, 5).is_empty());
        assert_eq!(stored(&store), 0);
        // It leaves a mark until its retention ends: a late copy of the
        // report it superseded stays superseded...
        assert_eq!(
            store.insert(&old, 5_000).unwrap(),
            InsertOutcome::Superseded
        );
        assert!(current_of(&store, 5).is_empty());
        // ...and when retention ends, the mark goes too.
        assert_eq!(store.purge(11_001, &nobody, 10_000).unwrap(), 0);
        assert!(store.handles().unwrap().current.is_empty());
        assert!(store.handles().unwrap().purges.is_empty());
    }

    #[test]
    fn equivocation_is_kept_as_evidence_not_as_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let a = record(&key, 7, 5, Verdict::Malicious, 1000);
        let b = record(&key, 7, 6, Verdict::Malicious, 1000);
        store.insert(&a, u64::MAX).unwrap();
        assert_eq!(
            store.insert(&b, u64::MAX).unwrap(),
            InsertOutcome::Equivocation { existing: a.id() }
        );
        assert_eq!(stored(&store), 1);
        assert_eq!(store.equivocations().unwrap(), vec![(key.origin(), 1)]);
    }

    #[test]
    fn evidence_is_bounded_per_origin_and_purged_with_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (mallory, other) = (
            SigningKey::from_seed(&[1; 32]),
            SigningKey::from_seed(&[2; 32]),
        );
        for seq in 1..=40 {
            store
                .insert(&record(&mallory, seq, 5, Verdict::Malicious, 1000), 2000)
                .unwrap();
            // The same seq again, different bytes, twice: one piece of
            // evidence per seq, and never more than MAX_EVIDENCE in all.
            for number in [6, 7] {
                let conflict = record(&mallory, seq, number, Verdict::Malicious, 1000 + seq);
                assert!(matches!(
                    store.insert(&conflict, 2000).unwrap(),
                    InsertOutcome::Equivocation { .. }
                ));
            }
        }
        store
            .insert(&record(&other, 1, 5, Verdict::Malicious, 5000), 99_999)
            .unwrap();
        store
            .insert(&record(&other, 1, 6, Verdict::Malicious, 5000), 99_999)
            .unwrap();
        let sorted = |mut v: Vec<(OriginId, u64)>| {
            v.sort();
            v
        };
        assert_eq!(
            store.equivocations().unwrap(),
            sorted(vec![(mallory.origin(), MAX_EVIDENCE), (other.origin(), 1)])
        );
        assert_eq!(
            store.evidence_records().unwrap().count() as u64,
            MAX_EVIDENCE + 1
        );
        // Retention 1,000 s: Mallory's evidence (last seen ≤ 1,040) is due
        // at 2,040; the other origin's (5,000) is not.
        store.purge(2040, &other.origin(), 1000).unwrap();
        assert_eq!(store.equivocations().unwrap(), vec![(other.origin(), 1)]);
        // With its count gone, the bound starts over for Mallory.
        store
            .insert(&record(&mallory, 41, 5, Verdict::Malicious, 3000), 9000)
            .unwrap();
        store
            .insert(&record(&mallory, 41, 6, Verdict::Malicious, 3000), 9000)
            .unwrap();
        assert_eq!(
            store.equivocations().unwrap(),
            sorted(vec![(mallory.origin(), 1), (other.origin(), 1)])
        );
    }

    #[test]
    fn a_batch_judges_each_record_and_sees_its_own_earlier_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let stored_before = record(&key, 1, 1, Verdict::Malicious, 1000);
        store.insert(&stored_before, u64::MAX).unwrap();
        let three = record(&key, 3, 3, Verdict::Malicious, 1000);
        let two = record(&key, 2, 2, Verdict::Malicious, 1000);
        let conflicting_two = record(&key, 2, 9, Verdict::Malicious, 1000);
        let batch = [
            (&stored_before, u64::MAX),
            (&three, u64::MAX),
            (&three, u64::MAX),
            (&two, u64::MAX),
            (&conflicting_two, u64::MAX),
        ];
        let outcomes = store.insert_batch(&batch).unwrap();
        assert_eq!(
            outcomes,
            vec![
                InsertOutcome::Duplicate,
                InsertOutcome::Stored {
                    superseded: false,
                    evicted: 0
                },
                InsertOutcome::Duplicate,
                InsertOutcome::Stored {
                    superseded: false,
                    evicted: 0
                },
                InsertOutcome::Equivocation { existing: two.id() },
            ]
        );
        assert_eq!(stored(&store), 3);
        let p = store.progress().unwrap()[0];
        // seq 2 filled the gap after 1 and the mark ran on over 3.
        assert_eq!((p.count, p.max_seq, p.contiguous), (3, 3, 3));
    }

    #[test]
    fn pages_progress_and_contiguity() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        for seq in [1, 2, 3, 5, 6] {
            store
                .insert(
                    &record(
                        &key,
                        seq,
                        10 + u8::try_from(seq).unwrap(),
                        Verdict::Malicious,
                        1000,
                    ),
                    u64::MAX,
                )
                .unwrap();
        }
        let p = store.progress().unwrap()[0];
        assert_eq!((p.count, p.max_seq, p.contiguous), (5, 6, 3));
        let (page, more) = store.page(&key.origin(), 1, 2).unwrap();
        assert_eq!(page.len(), 2);
        assert!(more);
        let (page, more) = store.page(&key.origin(), 3, 10).unwrap();
        assert_eq!(page.len(), 2);
        assert!(!more);
        store
            .insert(&record(&key, 4, 14, Verdict::Malicious, 1000), u64::MAX)
            .unwrap();
        assert_eq!(store.progress().unwrap()[0].contiguous, 6);
    }

    #[test]
    fn settled_seqs_count_as_held_for_contiguity_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let origin = key.origin();
        let put = |seq: u64| {
            let number = 10 + u8::try_from(seq).unwrap();
            store
                .insert(
                    &record(&key, seq, number, Verdict::Malicious, 1000),
                    u64::MAX,
                )
                .unwrap();
        };
        // Seqs 1-3 refused for good, in order: the mark moves over them
        // with nothing stored (a progress entry of count 0).
        store
            .settle(&[(origin, 1), (origin, 2), (origin, 3)])
            .unwrap();
        let p = store.progress().unwrap()[0];
        assert_eq!((p.count, p.contiguous), (0, 3));
        // Stored 4, 6, 9; settled 7 (out of order: a marker).
        for seq in [4, 6, 9] {
            put(seq);
        }
        store.settle(&[(origin, 7)]).unwrap();
        assert_eq!(
            store.progress().unwrap().len(),
            1,
            "markers are not progress"
        );
        assert_eq!(store.progress().unwrap()[0].contiguous, 4);
        // A seq above every held one gets no marker (nothing can be pulled
        // around it; a hostile member cannot grow markers with it).
        store.settle(&[(origin, 11)]).unwrap();
        // What is missing up to a peer's 12: 5, 8, 10-12.
        assert_eq!(
            store.gaps(&origin, 12, 16).unwrap(),
            vec![(5, 5), (8, 8), (10, 12)]
        );
        assert_eq!(store.gaps(&origin, 12, 2).unwrap(), vec![(5, 5), (8, 8)]);
        assert_eq!(
            store.gaps(&origin, 4, 16).unwrap(),
            Vec::<(u64, u64)>::new()
        );
        // 5 arrives: the mark runs over 6 and the marker of 7 (removing it).
        put(5);
        assert_eq!(store.progress().unwrap()[0].contiguous, 7);
        // 8 is settled: on over 9.
        store.settle(&[(origin, 8)]).unwrap();
        let p = store.progress().unwrap()[0];
        assert_eq!((p.count, p.max_seq, p.contiguous), (4, 9, 9));
        assert_eq!(store.gaps(&origin, 12, 16).unwrap(), vec![(10, 12)]);
        // Settling below the mark changes nothing.
        store.settle(&[(origin, 2)]).unwrap();
        assert_eq!(store.progress().unwrap()[0], p);
        let markers = store
            .with(|h| {
                Ok(h.progress
                    .iter()
                    .filter(|e| e.as_ref().is_ok_and(|(k, _)| k.len() == 40))
                    .count())
            })
            .unwrap();
        assert_eq!(markers, 0, "every marker was passed and removed");
    }

    #[test]
    fn digests_match_for_equal_sets_in_any_order() {
        let key = SigningKey::from_seed(&[1; 32]);
        let records: Vec<_> = (1..=5)
            .map(|s| {
                record(
                    &key,
                    s,
                    20 + u8::try_from(s).unwrap(),
                    Verdict::Malicious,
                    1000,
                )
            })
            .collect();
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (
            Store::open(d1.path()).unwrap(),
            Store::open(d2.path()).unwrap(),
        );
        for r in &records {
            a.insert(r, u64::MAX).unwrap();
        }
        for r in records.iter().rev() {
            b.insert(r, u64::MAX).unwrap();
        }
        assert_eq!(a.progress().unwrap(), b.progress().unwrap());
    }

    #[test]
    fn purge_removes_due_records_and_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = SigningKey::from_seed(&[1; 32]);
        let old = record(&key, 1, 5, Verdict::Malicious, 1000);
        let new = record(&key, 2, 6, Verdict::Malicious, 5000);
        store.insert(&old, 2000).unwrap();
        store.insert(&new, 9000).unwrap();
        // (Retention ends when the record goes: it leaves no mark.)
        assert_eq!(store.purge(1999, &key.origin(), 1_000).unwrap(), 0);
        assert_eq!(store.purge(2000, &key.origin(), 1_000).unwrap(), 1);
        assert!(current_of(&store, 5).is_empty());
        let (left, _) = store.page(&key.origin(), 0, 10).unwrap();
        assert_eq!(left, vec![new.as_bytes().to_vec()]);
        // Nothing of the purged record is left in any index.
        assert_eq!(store.recent(10).unwrap().len(), 1);
        assert_eq!(store.handles().unwrap().purges.len(), 1);
        assert_eq!(store.handles().unwrap().current.len(), 1);
        assert_eq!(store.progress().unwrap()[0].count, 1);
        assert_eq!(stored(&store), 1);
    }

    #[test]
    fn the_feed_reads_every_arrival_from_the_first_and_every_number_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let peer = SigningKey::from_seed(&[2; 32]);
        // An empty store's mark: the first record stored is at or after it.
        let mark = store.arrival_mark().unwrap();
        store
            .insert(&record(&peer, 1, 5, Verdict::Malicious, 1000), 5000)
            .unwrap();
        let (numbers, after, more) = store.arrived_since(mark, 10).unwrap();
        assert_eq!((numbers.len(), more), (1, false));
        assert_eq!(after, store.arrival_mark().unwrap());
        assert!(store.arrived_since(after, 10).unwrap().0.is_empty());
        // Two more numbers; the snapshot scan gives each number once.
        for (seq, n) in [(2, 6), (3, 7)] {
            store
                .insert(&record(&peer, seq, n, Verdict::Malicious, 1000), 5000)
                .unwrap();
        }
        let (first, done) = store.numbers_after(None, 2).unwrap();
        assert_eq!((first.len(), done), (2, false));
        let (rest, done) = store.numbers_after(first.last().copied(), 2).unwrap();
        assert_eq!((rest.len(), done), (1, true));
        assert!(!first.contains(&rest[0]));
        let (read, mark, more) = store.arrived_since(after, 1).unwrap();
        assert_eq!((read.len(), more), (1, true));
        assert_eq!(store.arrived_since(mark, 10).unwrap().0.len(), 1);
    }

    #[test]
    fn raw_numbers_go_with_the_last_own_report() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let own = SigningKey::from_seed(&[1; 32]);
        let peer = SigningKey::from_seed(&[2; 32]);
        let own_number = |n: u8| store.own_number(&NumberHash::from_bytes([n; 32])).unwrap();
        // Number 5: an old report, then a newer one that outlives it.
        // Number 6: one report.
        store
            .insert_own(
                &[
                    (
                        record(&own, 1, 5, Verdict::Malicious, 1000),
                        2000,
                        "+15".into(),
                    ),
                    (
                        record(&own, 2, 6, Verdict::Malicious, 1000),
                        2000,
                        "+16".into(),
                    ),
                    (
                        record(&own, 3, 5, Verdict::Malicious, 3000),
                        4000,
                        "+15".into(),
                    ),
                ],
                1000,
            )
            .unwrap();
        // Each own record has its own time added, strictly increasing; the
        // superseded one is not listed.
        let listed = |after, limit| {
            let (list, more) = store.own_added(&own.origin(), after, limit).unwrap();
            (
                list.iter().map(|a| (a.added_ms, a.seq)).collect::<Vec<_>>(),
                more,
            )
        };
        assert_eq!(
            listed((0, 0), 10),
            (vec![(1_000_001, 2), (1_000_002, 3)], false)
        );
        assert_eq!(listed((0, 0), 1), (vec![(1_000_001, 2)], true));
        assert_eq!(listed((1_000_001, 2), 10), (vec![(1_000_002, 3)], false));
        // A peer's report of number 6 purged later keeps nothing raw alive.
        store
            .insert(&record(&peer, 1, 6, Verdict::Malicious, 1000), 5000)
            .unwrap();
        // (The old report of number 5 went when the newer one replaced it.)
        assert_eq!(store.purge(2000, &own.origin(), 10_000).unwrap(), 1);
        // Number 5's current own report is still held, number 6's is not.
        assert_eq!(own_number(5).as_deref(), Some("+15"));
        assert_eq!(own_number(6), None);
        assert_eq!(store.purge(4000, &own.origin(), 10_000).unwrap(), 1);
        assert_eq!(own_number(5), None);
        assert!(store.handles().unwrap().own_numbers.is_empty());

        // An orphan (left by a version that never purged them) is swept;
        // a number with a current own report is kept.
        store
            .handles()
            .unwrap()
            .own_numbers
            .insert([7; 32], "+7".as_bytes())
            .unwrap();
        store
            .insert_own(
                &[(
                    record(&own, 4, 8, Verdict::Malicious, 5000),
                    9000,
                    "+8".into(),
                )],
                0,
            )
            .unwrap();
        // A clock that went back still adds after the last.
        assert_eq!(listed((1_000_002, 3), 10), (vec![(1_000_003, 4)], false));
        let block_of = |e164: &str| -> Option<BlockHash> {
            let n: u8 = e164[1..].parse().ok()?;
            Some(BlockHash::from_bytes([n / 10; 32]))
        };
        assert_eq!(store.sweep_own_numbers(&own.origin(), block_of).unwrap(), 1);
        assert_eq!(own_number(7), None);
        assert_eq!(own_number(8).as_deref(), Some("+8"));
    }

    #[test]
    fn own_seq_survives_reopen_and_is_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.reserve_own_seqs(3).unwrap(), 1..4);
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.reserve_own_seqs(1).unwrap(), 4..5);
        assert_eq!(store.last_own_seq().unwrap(), 4);
    }

    #[test]
    fn schema_mismatch_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .handles()
                .unwrap()
                .meta
                .insert(META_SCHEMA, &99u32.to_be_bytes())
                .unwrap();
            store.flush().unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Schema {
                    found: 99,
                    expected: SCHEMA_VERSION
                }
            ),
            "{err}"
        );
    }

    /// Rewrites a store into schema 1's layout, as a schema-1 build wrote it.
    fn downgrade_to_v1(store: &Store) {
        let tree = |name: &str| store.handles().unwrap().db.open_tree(name).unwrap();
        let (records, origin_seq, latest, blocks, recent, expiry) = (
            tree("records"),
            tree("origin_seq"),
            tree("latest"),
            tree("blocks"),
            tree("recent"),
            tree("expiry"),
        );
        let id_of = |record_key: &[u8]| {
            SightingId::of(
                &store
                    .handles()
                    .unwrap()
                    .sightings
                    .get(record_key)
                    .unwrap()
                    .unwrap(),
            )
        };
        for entry in &store.handles().unwrap().sightings {
            let (key, bytes) = entry.unwrap();
            let id = SightingId::of(&bytes);
            records.insert(id.as_bytes(), bytes).unwrap();
            origin_seq.insert(key, id.as_bytes()).unwrap();
        }
        for entry in &store.handles().unwrap().purges {
            let (key, arrival) = entry.unwrap();
            let id = id_of(&key[8..48]);
            let expiry_key: [u8; 40] = cat(&[&key[..8], id.as_bytes()]);
            expiry.insert(expiry_key, arrival.clone()).unwrap();
            recent.insert(arrival, id.as_bytes()).unwrap();
        }
        for entry in &store.handles().unwrap().current {
            let (key, value) = entry.unwrap();
            let record_key = record_key(&key[64..96], be_u64(&value));
            let latest_value: [u8; 40] = cat(&[&value[..8], id_of(&record_key).as_bytes()]);
            latest
                .insert(&key[32..96], latest_value.as_slice())
                .unwrap();
            blocks.insert(key, &value[8..17]).unwrap();
        }
        for tree in [
            &store.handles().unwrap().sightings,
            &store.handles().unwrap().current,
            &store.handles().unwrap().arrivals,
            &store.handles().unwrap().purges,
        ] {
            tree.clear().unwrap();
        }
        store
            .handles()
            .unwrap()
            .meta
            .insert(META_SCHEMA, &1u32.to_be_bytes())
            .unwrap();
        // Schema 1 had no compact forms (the other markers are for
        // migrations a schema-1 store runs either way).
        store
            .handles()
            .unwrap()
            .meta
            .remove(META_CURRENT_EXPANDED)
            .unwrap();
        store.flush().unwrap();
    }

    #[test]
    fn a_schema_1_store_migrates_to_what_this_schema_stores() {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let store = Store::open(dir.path()).unwrap();
            let (a, b) = (
                SigningKey::from_seed(&[1; 32]),
                SigningKey::from_seed(&[2; 32]),
            );
            let superseded = record(&a, 1, 5, Verdict::Malicious, 1000);
            let current = record(&a, 2, 5, Verdict::Withdrawn, 1001);
            let purged = record(&a, 3, 6, Verdict::Malicious, 1000);
            let conflicting = record(&a, 2, 8, Verdict::Malicious, 1000);
            let other = record(&b, 1, 7, Verdict::FalsePositive, 1000);
            for (r, purge_at) in [
                (&current, 9000),
                (&superseded, 9000),
                (&purged, 2000),
                (&conflicting, 9000),
                (&other, 9000),
            ] {
                store.insert(r, purge_at).unwrap();
            }
            assert_eq!(store.purge(2000, &b.origin(), 1_000).unwrap(), 1);
            store
                .handles()
                .unwrap()
                .own_numbers
                .insert([5; 32], "+12025550105".as_bytes())
                .unwrap();
            let expected = store.snapshot();
            downgrade_to_v1(&store);
            expected
        };
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.snapshot(), expected);
        assert_eq!(stored(&store), 2, "the superseded report is not kept");
        assert_eq!(current_of(&store, 5)[0].verdict, Verdict::Withdrawn);
        let names = store.handles().unwrap().db.tree_names();
        for name in V1_TREES {
            assert!(
                !names.contains(&sled::IVec::from(name)),
                "{name} left behind"
            );
        }
        drop(store);
        // Opening again finds schema 2 and changes nothing.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.snapshot(), expected);
    }

    #[test]
    fn a_block_full_of_planted_reports_costs_a_bounded_scan_and_counts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Limits bound what one member plants per hour; this is about the
        // cost of what is planted over many hours.
        store.set_limits(Limits::unlimited());
        let (honest, mallory) = (
            SigningKey::from_seed(&[1; 32]),
            SigningKey::from_seed(&[9; 32]),
        );
        let block = BlockHash::from_bytes([3; 32]);
        // Mallory signs 10,000 made-up number hashes under one block.
        let planted: Vec<SignedSighting> = (0..10_000u64)
            .map(|i| {
                let mut number = [0u8; 32];
                number[..8].copy_from_slice(&i.to_be_bytes());
                Sighting {
                    network: NetworkId::new("test-net").unwrap(),
                    origin: mallory.origin(),
                    seq: i + 1,
                    number: NumberHash::from_bytes(number),
                    block,
                    cc: 1,
                    line: LineType::Mobile,
                    kind: Kind::Smishing,
                    verdict: Verdict::Malicious,
                    channel: Channel::Sms,
                    brand: None,
                    confidence: 100,
                    count: 1,
                    first_seen: 1000,
                    last_seen: 1000,
                    expires: None,
                    links: None,
                    role: None,
                }
                .sign(&mallory)
                .unwrap()
            })
            .collect();
        let rows: Vec<(&SignedSighting, u64)> = planted.iter().map(|r| (r, u64::MAX)).collect();
        store.insert_batch(&rows).unwrap();
        for (seq, n) in [(1, 30), (2, 31)] {
            store
                .insert(&record(&honest, seq, n, Verdict::Malicious, 1000), u64::MAX)
                .unwrap();
        }
        let found = store
            .reports(&net(), &NumberHash::from_bytes([30; 32]), &block, 0, |o| {
                *o == honest.origin()
            })
            .unwrap();
        assert_eq!(found.current.len(), 1, "the number's own reports, exactly");
        // The planted hashes sort before the honest ones: the scan stops at
        // its limit before reaching them (activity is a lower bound).
        assert_eq!(found.scanned, ACTIVITY_SCAN_LIMIT);
        assert_eq!(found.block_activity, 0);
        // Counting everyone, the scan still stops at a block's 100 numbers.
        let all = store
            .reports(&net(), &NumberHash::from_bytes([30; 32]), &block, 0, |_| {
                true
            })
            .unwrap();
        assert_eq!(all.block_activity, 100);
        assert!(all.scanned <= 102);
    }

    #[test]
    fn block_activity_counts_distinct_recent_malicious_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = SigningKey::from_seed(&[1; 32]);
        let b = SigningKey::from_seed(&[2; 32]);
        // numbers 30..=33 share block [3; 32]
        store
            .insert(&record(&a, 1, 30, Verdict::Malicious, 1000), u64::MAX)
            .unwrap();
        store
            .insert(&record(&b, 1, 30, Verdict::Malicious, 1000), u64::MAX)
            .unwrap();
        store
            .insert(&record(&a, 2, 31, Verdict::Malicious, 1000), u64::MAX)
            .unwrap();
        store
            .insert(&record(&a, 3, 32, Verdict::FalsePositive, 1000), u64::MAX)
            .unwrap();
        store
            .insert(&record(&a, 4, 33, Verdict::Malicious, 10), u64::MAX)
            .unwrap();
        assert_eq!(
            store
                .reports(
                    &net(),
                    &NumberHash::from_bytes([30; 32]),
                    &BlockHash::from_bytes([3; 32]),
                    500,
                    |_| true,
                )
                .unwrap()
                .block_activity,
            2
        );
    }
}
