//! The ingest stage: what happens to every record a peer sends (gossip or
//! catch-up) once it has left the network loop. Cheap pure checks first
//! ([`crate::ingest::precheck`]), then one batch signature verification
//! and the clock and retention checks ([`Ingestor::check`]), then storage
//! ([`Ingestor::commit`]). The node's
//! ingest task runs them through [`IngestPipeline`] on blocking threads; the
//! benchmark harness drives the same pipeline directly.

use std::collections::HashSet;
use std::sync::Arc;

use sightline_protocol::{verify_batch, OriginId, SightingId, SignedSighting, UnverifiedSighting};

use crate::clock::Clock;
use crate::config::NodeConfig;
#[cfg(feature = "test-util")]
use crate::identity::IdentityError;
#[cfg(feature = "test-util")]
use crate::identity::NodeIdentity;
use crate::ingest::{self, Context, Metrics, Rejection, Severity};
use crate::store::{InsertOutcome, Store, StoreError};
use crate::task::{blocking, joined};

/// Records validated together (one batch signature verification).
pub const INGEST_BATCH: usize = 256;

/// A checked batch waiting to be stored: results so far, and the verified
/// records with their positions in the batch.
#[derive(Debug)]
pub struct Checked {
    results: Vec<Result<(), Rejection>>,
    verified: Vec<(usize, SignedSighting)>,
    /// Verified records refused for good (expired, past retention): their
    /// seqs are settled so that catch-up does not fetch them again.
    settled: Vec<(OriginId, u64)>,
}

/// Why [`Ingestor::open`] failed.
#[cfg(feature = "test-util")]
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The key file.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Validates and stores batches of received records.
#[derive(Clone)]
pub struct Ingestor {
    /// This node's origin: its own records coming back raise its seq counter.
    own: OriginId,
    store: Store,
    ctx: Context,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    /// Equivocation warnings, at most one per origin per interval.
    warned: Arc<std::sync::Mutex<OncePer>>,
    /// Over-limit warnings, likewise.
    limit_warned: Arc<std::sync::Mutex<OncePer>>,
}

/// Lets an event through once per key per `interval` seconds, counting
/// what it held back in between (so a member equivocating thousands of
/// times writes one log line per interval, not thousands).
#[derive(Debug)]
pub(crate) struct OncePer {
    interval: u64,
    last: std::collections::HashMap<OriginId, (u64, u64)>,
}

impl OncePer {
    pub(crate) fn new(interval: u64) -> Self {
        OncePer {
            interval,
            last: std::collections::HashMap::new(),
        }
    }

    /// `Some(held back since the last one)` if an event for `key` at `now`
    /// should be let through.
    pub(crate) fn allow(&mut self, key: OriginId, now: u64) -> Option<u64> {
        match self.last.get_mut(&key) {
            Some((at, held)) if now < at.saturating_add(self.interval) => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let skipped = *held;
                (*at, *held) = (now, 0);
                Some(skipped)
            }
            None => {
                self.last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// Seconds between equivocation warnings for one origin.
const EQUIVOCATION_LOG_INTERVAL: u64 = 600;

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

/// Opens a node's store, raising its own seq counter past every own record
/// it holds (a store restored from an older backup and caught up must never
/// reuse a seq peers may already hold).
///
/// The data directory and everything in it is made private (0700/0600)
/// first, whatever the umask it was created with.
pub(crate) fn open_store(config: &NodeConfig, own: OriginId) -> Result<Store, StoreError> {
    let data = &config.data_dir;
    let private = |source| StoreError::Permissions {
        path: data.clone(),
        source,
    };
    crate::files::private_dir(data).map_err(private)?;
    let store = Store::open_with_cache(&data.join("store"), config.store_cache_bytes)?;
    store.set_limits(config.network.limits);
    let changed = crate::files::private_tree(data).map_err(private)?;
    if changed > 0 {
        tracing::warn!(changed, dir = %data.display(), "took group and other access away from the data directory's files");
    }
    if let Some(progress) = store.progress()?.iter().find(|p| p.origin == own) {
        store.raise_own_seq(progress.max_seq)?;
    }
    let key = &config.network.hash_key;
    let forgotten = store.sweep_own_numbers(&own, |e164| {
        sightline_protocol::parse_number(e164, None)
            .ok()
            .map(|p| key.block_hash(&p.e164))
    })?;
    if forgotten > 0 {
        tracing::info!(forgotten, "forgot raw numbers with no current own report");
    }
    let indexed = store.index_own_added(&own)?;
    if indexed > 0 {
        tracing::info!(indexed, "indexed own reports for the TAXII collection");
    }
    Ok(store)
}

/// What a received record is checked against, from the node's config.
pub(crate) fn context(config: &NodeConfig) -> Context {
    Context {
        network: config.network.id.clone(),
        members: config.network.members.iter().map(|m| m.origin).collect(),
        max_skew: config.max_clock_skew_secs,
        retention: config.retention_secs,
    }
}

impl Ingestor {
    pub(crate) fn new(
        own: OriginId,
        store: Store,
        ctx: Context,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Ingestor {
            own,
            store,
            ctx,
            clock,
            metrics,
            warned: Arc::new(std::sync::Mutex::new(OncePer::new(
                EQUIVOCATION_LOG_INTERVAL,
            ))),
            limit_warned: Arc::new(std::sync::Mutex::new(OncePer::new(
                EQUIVOCATION_LOG_INTERVAL,
            ))),
        }
    }

    /// The ingest stage of a node that is not running (its store must not
    /// be open elsewhere): loads the key and opens the store as
    /// [`crate::start`] does, without any network.
    ///
    /// # Errors
    /// [`OpenError`] for the key or the store.
    #[cfg(feature = "test-util")]
    pub fn open(config: &NodeConfig, clock: Arc<dyn Clock>) -> Result<Self, OpenError> {
        let identity = NodeIdentity::load(&config.key_file)?;
        let own = identity.signing.origin();
        let store = open_store(config, own)?;
        Ok(Self::new(
            own,
            store,
            context(config),
            clock,
            Arc::new(Metrics::default()),
        ))
    }

    /// The store.
    #[cfg(feature = "test-util")]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The CPU half of ingest: decoding and the pure checks,
    /// duplicates within the batch, then one batch signature verification.
    /// It does not touch the store: reads here would contend with the
    /// previous batch's transaction (measured: ingest 30% slower). Records
    /// already stored are found by [`Ingestor::commit`]'s transaction
    /// (same origin and seq) and ignored as duplicates; gossipsub's
    /// duplicate cache and catch-up's per-origin progress keep them rare.
    pub fn check(&self, batch: &[Vec<u8>]) -> Checked {
        let now = self.clock.now();
        let mut results: Vec<Result<(), Rejection>> = Vec::with_capacity(batch.len());
        let mut candidates: Vec<(usize, UnverifiedSighting)> = Vec::new();
        let mut seen: HashSet<SightingId> = HashSet::new();
        for (index, data) in batch.iter().enumerate() {
            Metrics::incr(&self.metrics.received);
            let checked = ingest::precheck(data, &self.ctx).and_then(|record| {
                let id = SightingId::of(data);
                if seen.insert(id) {
                    Ok(record)
                } else {
                    Err(Rejection {
                        reason: "duplicate",
                        severity: Severity::Ignore,
                    })
                }
            });
            match checked {
                Ok(record) => {
                    candidates.push((index, record));
                    results.push(Ok(()));
                }
                Err(rejection) => results.push(Err(rejection)),
            }
        }
        let (indexes, records): (Vec<usize>, Vec<UnverifiedSighting>) =
            candidates.into_iter().unzip();
        let mut verified = Vec::with_capacity(indexes.len());
        let mut settled = Vec::new();
        for (index, outcome) in indexes
            .into_iter()
            .zip(verify_batch(records, &mut rand_core::OsRng))
        {
            match outcome {
                Ok(record) => match ingest::check_window(record.sighting(), &self.ctx, now) {
                    Ok(()) => verified.push((index, record)),
                    Err(rejection) => {
                        if rejection.is_final() {
                            let s = record.sighting();
                            settled.push((s.origin, s.seq));
                        }
                        results[index] = Err(rejection);
                    }
                },
                Err(e) => {
                    results[index] = Err(Rejection {
                        reason: e.code(),
                        severity: Severity::Reject,
                    });
                }
            }
        }
        Checked {
            results,
            verified,
            settled,
        }
    }

    /// Whether a warning about `origin` goes out now ([`OncePer::allow`]).
    fn once(&self, warned: &std::sync::Mutex<OncePer>, origin: OriginId) -> Option<u64> {
        warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allow(origin, self.clock.now())
    }

    /// The storage half of ingest: stores what
    /// [`Ingestor::check`] verified, in one transaction, and counts.
    pub fn commit(&self, checked: Checked) -> Vec<Result<(), Rejection>> {
        let Checked {
            mut results,
            verified,
            settled,
        } = checked;
        self.store_all(&verified, &mut results);
        if let Err(e) = self.store.settle(&settled) {
            tracing::warn!(error = %e, "settling refused records failed; catch-up will fetch them again");
        }
        for r in &results {
            match r {
                Ok(()) => Metrics::incr(&self.metrics.stored),
                Err(rejection) => self.metrics.reject(rejection.reason),
            }
        }
        results
    }

    /// Stores the verified records of a batch in one transaction and fills
    /// in their results.
    fn store_all(
        &self,
        verified: &[(usize, SignedSighting)],
        results: &mut [Result<(), Rejection>],
    ) {
        let rows: Vec<(&SignedSighting, u64)> = verified
            .iter()
            .map(|(_, record)| {
                let s = record.sighting();
                (
                    record,
                    ingest::purge_at(s.last_seen, s.expires, self.ctx.retention),
                )
            })
            .collect();
        // A store that cannot write is being recovered: no use trying (and
        // logging) per batch; catch-up brings these records back later.
        let attempt = self
            .store
            .ensure_writable()
            .and_then(|()| self.store.insert_batch(&rows));
        let outcomes = match attempt {
            Err(StoreError::Unavailable(_)) => {
                for (index, _) in verified {
                    results[*index] = Err(Rejection {
                        reason: "store_unavailable",
                        severity: Severity::Ignore,
                    });
                }
                return;
            }
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(error = %e, "store insert failed");
                for (index, _) in verified {
                    results[*index] = Err(Rejection {
                        reason: "store_error",
                        severity: Severity::Ignore,
                    });
                }
                return;
            }
        };
        let mut own_max = None;
        for ((index, record), outcome) in verified.iter().zip(outcomes) {
            let s = record.sighting();
            results[*index] = match outcome {
                InsertOutcome::Stored { evicted, .. } => {
                    if s.origin == self.own {
                        own_max = own_max.max(Some(s.seq));
                    }
                    if evicted > 0 {
                        self.metrics.over_limit(s.origin, evicted);
                    }
                    Ok(())
                }
                InsertOutcome::OverLimit(reason) => {
                    self.metrics.over_limit(s.origin, 1);
                    if let Some(more) = self.once(&self.limit_warned, s.origin) {
                        tracing::warn!(origin = %s.origin, seq = s.seq, reason, more_since_last_warning = more, "origin over its limits: records ignored (warned once per origin every 10 min)");
                    }
                    Err(Rejection {
                        reason,
                        severity: Severity::Ignore,
                    })
                }
                InsertOutcome::Duplicate => Err(Rejection {
                    reason: "duplicate",
                    severity: Severity::Ignore,
                }),
                InsertOutcome::Superseded => Err(Rejection {
                    reason: "superseded",
                    severity: Severity::Ignore,
                }),
                InsertOutcome::Equivocation { existing } => {
                    if let Some(more) = self.once(&self.warned, s.origin) {
                        tracing::warn!(origin = %s.origin, seq = s.seq, %existing, more_since_last_warning = more, "equivocation: origin signed two records with one seq (warned once per origin every 10 min)");
                    }
                    Err(Rejection {
                        reason: "equivocation",
                        severity: Severity::Ignore,
                    })
                }
            };
        }
        if let Some(seq) = own_max {
            if let Err(e) = self.store.raise_own_seq(seq) {
                tracing::error!(error = %e, "raising own seq failed");
            }
        }
    }
}

/// Two-stage ingest on two cores: while one batch is being stored, the next
/// is decoded and verified. Storing stays sequential (one writer, batches in
/// arrival order), so a record in batch N+1 that batch N also carried is
/// found by N+1's transaction and reported as a duplicate.
#[derive(Debug)]
pub struct IngestPipeline {
    ingestor: Ingestor,
    storing: Option<tokio::task::JoinHandle<Vec<Result<(), Rejection>>>>,
}

impl IngestPipeline {
    /// A pipeline with nothing in flight.
    pub fn new(ingestor: Ingestor) -> Self {
        IngestPipeline {
            ingestor,
            storing: None,
        }
    }

    /// Checks `batch` (while the previous batch is still being stored),
    /// then starts storing it. Returns the previous batch's results, if
    /// there was one.
    pub async fn push(&mut self, batch: Vec<Vec<u8>>) -> Option<Vec<Result<(), Rejection>>> {
        let ingestor = self.ingestor.clone();
        let checked = blocking(move || ingestor.check(&batch)).await;
        let previous = self.finish().await;
        let ingestor = self.ingestor.clone();
        self.storing = Some(tokio::task::spawn_blocking(move || {
            ingestor.commit(checked)
        }));
        previous
    }

    /// Waits for the batch being stored, if any, and returns its results.
    pub async fn finish(&mut self) -> Option<Vec<Result<(), Rejection>>> {
        match self.storing.take() {
            Some(task) => Some(joined(task).await),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval_per_origin_counting_the_rest() {
        let (a, b) = (OriginId::from_bytes([1; 32]), OriginId::from_bytes([2; 32]));
        let mut once = OncePer::new(600);
        assert_eq!(once.allow(a, 1000), Some(0));
        assert_eq!(once.allow(a, 1001), None);
        assert_eq!(once.allow(a, 1599), None);
        assert_eq!(once.allow(b, 1599), Some(0), "origins are independent");
        assert_eq!(once.allow(a, 1600), Some(2));
        assert_eq!(once.allow(a, 1700), None);
    }
}
