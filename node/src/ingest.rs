//! Validating records that arrive from peers (gossip or catch-up): the same
//! checks for both. The cheap, pure checks come first ([`precheck`]); the
//! signatures of everything that passes are then verified in one batch.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sightline_protocol::{NetworkId, OriginId, Sighting, TimeError, UnverifiedSighting};

/// What happens to a message that fails validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Invalid: dropped, and the sender's gossip score is penalized.
    Reject,
    /// Valid but not useful (duplicate, stale): dropped without penalty.
    Ignore,
}

/// Why a record was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// Stable reason code (protocol error codes, or the node's own).
    pub reason: &'static str,
    /// Reject or ignore.
    pub severity: Severity,
}

impl Rejection {
    /// Whether the record may be stored later as it is: it was refused for
    /// this node's condition (its store, its clock), not for what it is. A
    /// peer that sent one is pulled from again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.reason,
            "store_unavailable" | "store_error" | "from_the_future"
        )
    }

    /// Whether the record, verified as its origin's, can never be stored
    /// here: it has expired, or is older than this node's retention (time
    /// only makes it older). Catch-up does not fetch it again
    /// ([`crate::store::Store::settle`]).
    pub fn is_final(&self) -> bool {
        matches!(self.reason, "expired" | "past_retention")
    }

    const fn reject(reason: &'static str) -> Self {
        Rejection {
            reason,
            severity: Severity::Reject,
        }
    }
    const fn ignore(reason: &'static str) -> Self {
        Rejection {
            reason,
            severity: Severity::Ignore,
        }
    }
}

/// What a received record is checked against.
#[derive(Debug, Clone)]
pub struct Context {
    /// This node's network.
    pub network: NetworkId,
    /// Member origins.
    pub members: HashSet<OriginId>,
    /// Allowed clock skew, seconds.
    pub max_skew: u64,
    /// Retention, seconds.
    pub retention: u64,
}

/// The checks before signature verification: decoding (size, canonical
/// form, fields), network and membership.
///
/// A record of an origin that is not a member is ignored, not rejected:
/// during a rolling update of `network.toml` a peer that already lists a
/// new member forwards its records to one that does not yet, and that
/// forwarder is honest. Nothing of such a record is verified or kept.
///
/// # Errors
/// The [`Rejection`] for the first check that fails.
pub fn precheck(bytes: &[u8], ctx: &Context) -> Result<UnverifiedSighting, Rejection> {
    let record = UnverifiedSighting::decode(bytes).map_err(|e| Rejection::reject(e.code()))?;
    let s = record.sighting();
    if s.network != ctx.network {
        return Err(Rejection::reject("wrong_network"));
    }
    if !ctx.members.contains(&s.origin) {
        return Err(Rejection::ignore("non_member"));
    }
    Ok(record)
}

/// The checks after signature verification: the clock and retention. They
/// come after it so that what fails them is known to be the origin's own
/// record: junk in a member's name with an out-of-window time is a bad
/// signature, charged to whoever sent it, not a silently ignored record.
///
/// # Errors
/// The [`Rejection`] (always an ignore) for the first check that fails.
pub fn check_window(s: &Sighting, ctx: &Context, now: u64) -> Result<(), Rejection> {
    match s.check_time(now, ctx.max_skew) {
        Ok(()) => {}
        // Ignored, not rejected: a forwarder whose clock is a little ahead
        // of ours is honest, and must not be penalized. Catch-up offers the
        // record again later.
        Err(TimeError::FromTheFuture { .. }) => return Err(Rejection::ignore("from_the_future")),
        Err(TimeError::Expired(_)) => return Err(Rejection::ignore("expired")),
    }
    if s.last_seen.saturating_add(ctx.retention) <= now {
        return Err(Rejection::ignore("past_retention"));
    }
    Ok(())
}

/// When the store should purge a record: at expiry or at the end of retention.
pub fn purge_at(last_seen: u64, expires: Option<u64>, retention: u64) -> u64 {
    let by_retention = last_seen.saturating_add(retention);
    expires.map_or(by_retention, |e| e.min(by_retention))
}

/// Counters for status and /metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records received from peers (gossip and catch-up).
    pub received: AtomicU64,
    /// Records stored from peers.
    pub stored: AtomicU64,
    /// Own submissions stored.
    pub submitted: AtomicU64,
    /// Catch-up progress exchanges completed (as the asking side).
    pub sync_exchanges: AtomicU64,
    /// Catch-up pages received.
    pub sync_pages: AtomicU64,
    /// Catch-up version 2: reconciliation rounds run (as the asking side).
    pub sync_rounds: AtomicU64,
    /// Bytes of catch-up answers received (progress, reconciliation
    /// messages, records).
    pub sync_bytes: AtomicU64,
    /// Records received through catch-up (each is verified).
    pub sync_records: AtomicU64,
    /// Records connected peers hold that this node lacks, as the last
    /// reconciliation with each found them, less those received since:
    /// the largest over peers.
    pub sync_lag: AtomicU64,
    /// Catch-up requests refused by the rate limit.
    pub sync_throttled: AtomicU64,
    /// Rejected or ignored records by reason.
    pub rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Per origin: records refused or evicted for being over the origin's
    /// limits (an origin here is flagged).
    pub over_limit: Mutex<BTreeMap<OriginId, u64>>,
}

impl Metrics {
    /// Counts a rejection.
    pub fn reject(&self, reason: &'static str) {
        let mut map = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(reason).or_default() += 1;
    }

    /// A snapshot of the rejection counts.
    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Counts `n` records of `origin` refused or evicted over its limits.
    pub fn over_limit(&self, origin: OriginId, n: u64) {
        let mut map = self
            .over_limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(origin).or_default() += n;
    }

    /// A snapshot of the per-origin over-limit counts.
    pub fn over_limit_counts(&self) -> BTreeMap<OriginId, u64> {
        self.over_limit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::{
        BlockHash, Channel, Kind, LineType, NumberHash, Sighting, SigningKey, Verdict,
    };

    const NOW: u64 = 1_800_000_000;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[3; 32])
    }

    fn bytes(network: &str, last_seen: u64, expires: Option<u64>) -> Vec<u8> {
        Sighting {
            network: NetworkId::new(network).unwrap(),
            origin: key().origin(),
            seq: 1,
            number: NumberHash::from_bytes([1; 32]),
            block: BlockHash::from_bytes([2; 32]),
            cc: 44,
            line: LineType::Mobile,
            kind: Kind::Vishing,
            verdict: Verdict::Malicious,
            channel: Channel::Voice,
            brand: None,
            confidence: 70,
            count: 1,
            first_seen: last_seen,
            last_seen,
            expires,
            links: None,
            role: None,
        }
        .sign(&key())
        .unwrap()
        .as_bytes()
        .to_vec()
    }

    fn ctx() -> Context {
        Context {
            network: NetworkId::new("net").unwrap(),
            members: [key().origin()].into_iter().collect(),
            max_skew: 300,
            retention: 365 * 86_400,
        }
    }

    #[test]
    fn accepts_a_member_record_of_this_network() {
        let record = precheck(&bytes("net", NOW, None), &ctx()).unwrap();
        check_window(record.sighting(), &ctx(), NOW).unwrap();
    }

    #[test]
    fn rejects_and_ignores_with_reasons() {
        let err = |b: &[u8], c: &Context| {
            precheck(b, c)
                .and_then(|r| check_window(r.sighting(), c, NOW))
                .unwrap_err()
        };
        assert_eq!(err(b"\xff", &ctx()), Rejection::reject("malformed"));
        assert_eq!(
            err(&bytes("other", NOW, None), &ctx()),
            Rejection::reject("wrong_network")
        );
        let mut no_members = ctx();
        no_members.members.clear();
        assert_eq!(
            err(&bytes("net", NOW, None), &no_members),
            Rejection::ignore("non_member")
        );
        assert_eq!(
            err(&bytes("net", NOW + 301, None), &ctx()),
            Rejection::ignore("from_the_future")
        );
        assert_eq!(
            err(&bytes("net", NOW - 10, Some(NOW)), &ctx()),
            Rejection::ignore("expired")
        );
        assert_eq!(
            err(&bytes("net", NOW - 366 * 86_400, None), &ctx()),
            Rejection::ignore("past_retention")
        );
    }

    #[test]
    fn purge_time_is_the_earlier_of_expiry_and_retention() {
        assert_eq!(purge_at(100, None, 50), 150);
        assert_eq!(purge_at(100, Some(120), 50), 120);
        assert_eq!(purge_at(100, Some(500), 50), 150);
        assert_eq!(purge_at(u64::MAX - 1, None, 50), u64::MAX);
    }
}
