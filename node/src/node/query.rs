//! Answering lookups and the recent list from the store.

use super::campaigns::Explored;
use super::{
    blocking, parse_number_with, Letters, Lookup, LookupError, NodeHandle, RecentSighting,
    StoreError, MAX_BATCH,
};

impl NodeHandle {
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
    // Async like the rest of the handle's queries, so that callers do not
    // depend on where a lookup runs; today it does not wait (below).
    #[allow(clippy::unused_async)]
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
        // On the calling task, not the blocking pool: one lookup is two
        // bounded prefix scans of `current` (at most one entry per origin,
        // then at most ACTIVITY_SCAN_LIMIT entries of the block), which sled
        // serves from its page cache in microseconds, and decodes no record
        // (`store/current.rs`). The hand-off to a pool thread and back cost
        // more than the read itself (BENCHMARKS.md, lookup row). Bulk
        // lookups, up to MAX_BATCH numbers, stay on the pool.
        self.inner
            .lookup_parsed(&parsed, self.inner.clock.now(), &mut Explored::default())
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
            let mut explored = Explored::default();
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
                    inner.lookup_parsed(&parsed, now, &mut explored)
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
                    claim: crate::reputation::Claim::from(&s),
                    last_seen: s.last_seen,
                    seq: s.seq,
                });
            }
            Ok(out)
        })
        .await
    }
}
