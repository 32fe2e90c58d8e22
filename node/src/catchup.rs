//! Catch-up: the request-response protocol by which peers exchange
//! per-origin progress and pull the records they miss, in bounded pages.
//! Gossip alone is not delivery; this is what makes a node that was down or
//! partitioned converge to the same set as everyone else.
//!
//! The messages and the planning are pure; the network event loop carries
//! them and the node runs them.

use std::collections::HashMap;

use sightline_protocol::OriginId;

use crate::store::OriginProgress;

pub use sightline_protocol::catchup::{
    item_id, item_seq, CatchUpRequest, CatchUpResponse, ProgressEntry, ReconcileRequest,
    ReconcileResponse, SetSummary, FRAME_LIMIT, MAX_FETCH, MAX_PAGE, MAX_PROGRESS_ENTRIES,
    MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, PROTOCOL, PROTOCOL_V2, SUMMARY_ENTRY_BYTES,
};

impl From<&OriginProgress> for ProgressEntry {
    fn from(p: &OriginProgress) -> Self {
        ProgressEntry {
            origin: *p.origin.as_bytes(),
            count: p.count,
            max_seq: p.max_seq,
            contiguous: p.contiguous,
            digest: p.digest,
        }
    }
}

impl From<&OriginProgress> for SetSummary {
    fn from(p: &OriginProgress) -> Self {
        SetSummary {
            origin: *p.origin.as_bytes(),
            count: p.count,
            max_seq: p.max_seq,
            digest: p.digest,
        }
    }
}

/// The origins to pull from a peer, given both sides' progress: each whose
/// set differs and where the peer may hold something this node lacks (a
/// seq above this node's contiguous mark; which seqs exactly is the store's
/// `gaps`), with the peer's entry for it. Origins `keep` rejects
/// (non-members, origins pulled from this peer already) are skipped. Equal
/// sets (same count and digest) cost nothing.
pub fn plan(
    mine: &[OriginProgress],
    theirs: &[ProgressEntry],
    keep: impl Fn(&OriginId, &ProgressEntry) -> bool,
) -> Vec<(OriginId, ProgressEntry)> {
    let mine: HashMap<OriginId, &OriginProgress> = mine.iter().map(|p| (p.origin, p)).collect();
    let mut pulls = Vec::new();
    for entry in theirs.iter().take(MAX_PROGRESS_ENTRIES) {
        let origin = OriginId::from_bytes(entry.origin);
        if !keep(&origin, entry) || entry.count == 0 {
            continue;
        }
        let nothing_to_gain = mine.get(&origin).is_some_and(|m| {
            // Equal sets; or everything up to my mark I hold and they hold
            // nothing above it.
            (m.count == entry.count && m.digest == entry.digest) || entry.max_seq <= m.contiguous
        });
        if !nothing_to_gain {
            pulls.push((origin, *entry));
        }
    }
    pulls
}

/// Catch-up requests a peer may send in a burst before it is answered `Busy`.
pub const CATCHUP_BURST: u32 = 100;
/// Catch-up requests a peer may send per second, sustained. A page is at
/// most [`MAX_PAGE`] (256) records, so this lets a rejoining node pull
/// ~25,000 records/s, above what its ingest stage stores (BENCHMARKS.md,
/// catch-up row; at 20/s the limit, not ingest, bounded catch-up). Serving a
/// page is one range scan over the origin's records.
pub const CATCHUP_REQUESTS_PER_SEC: u32 = 100;

/// The responder's rate limit per peer: a GCRA token bucket (governor)
/// allowing bursts of [`CATCHUP_BURST`] requests and [`CATCHUP_REQUESTS_PER_SEC`]
/// sustained. Keyed by peer; only members connect, so the keys are bounded.
pub type RateLimiter<C = governor::clock::DefaultClock> = governor::RateLimiter<
    libp2p::PeerId,
    governor::state::keyed::HashMapStateStore<libp2p::PeerId>,
    C,
    governor::middleware::NoOpMiddleware<<C as governor::clock::Clock>::Instant>,
>;

const fn non_zero(n: u32) -> std::num::NonZeroU32 {
    match std::num::NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("a rate limit constant is zero"),
    }
}

/// The quota of [`RateLimiter`].
pub fn quota() -> governor::Quota {
    const PER_SECOND: std::num::NonZeroU32 = non_zero(CATCHUP_REQUESTS_PER_SEC);
    const BURST: std::num::NonZeroU32 = non_zero(CATCHUP_BURST);
    governor::Quota::per_second(PER_SECOND).allow_burst(BURST)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(
        origin: u8,
        count: u64,
        max_seq: u64,
        contiguous: u64,
        digest: u8,
    ) -> OriginProgress {
        OriginProgress {
            origin: OriginId::from_bytes([origin; 32]),
            count,
            max_seq,
            contiguous,
            digest: [digest; 32],
        }
    }

    fn entry(p: &OriginProgress) -> ProgressEntry {
        ProgressEntry::from(p)
    }

    #[test]
    fn equal_sets_plan_nothing() {
        let mine = vec![progress(1, 10, 10, 10, 7), progress(2, 3, 3, 3, 9)];
        let theirs: Vec<_> = mine.iter().map(entry).collect();
        assert!(plan(&mine, &theirs, |_, _| true).is_empty());
    }

    #[test]
    fn unknown_origins_and_origins_with_more_above_the_mark_are_pulled() {
        let mine = vec![progress(1, 10, 10, 10, 7), progress(2, 5, 9, 4, 1)];
        let theirs = vec![
            entry(&progress(1, 12, 12, 12, 8)),
            entry(&progress(2, 9, 9, 9, 2)),
            entry(&progress(3, 4, 4, 4, 3)),
        ];
        let pulls: Vec<OriginId> = plan(&mine, &theirs, |_, _| true)
            .into_iter()
            .map(|(origin, entry)| {
                assert_eq!(entry.origin, *origin.as_bytes());
                origin
            })
            .collect();
        assert_eq!(
            pulls,
            vec![
                OriginId::from_bytes([1; 32]),
                OriginId::from_bytes([2; 32]),
                OriginId::from_bytes([3; 32])
            ]
        );
    }

    #[test]
    fn a_peer_behind_me_costs_no_pull() {
        let mine = vec![progress(1, 10, 10, 10, 7)];
        let theirs = vec![entry(&progress(1, 6, 6, 6, 1))];
        assert!(plan(&mine, &theirs, |_, _| true).is_empty());
    }

    #[test]
    fn non_members_are_skipped() {
        let theirs = vec![entry(&progress(9, 4, 4, 4, 3))];
        assert!(plan(&[], &theirs, |o, _| o.as_bytes()[0] != 9).is_empty());
    }

    #[test]
    fn rate_limiter_allows_bursts_then_refills() {
        let clock = governor::clock::FakeRelativeClock::default();
        let limiter: RateLimiter<_> =
            governor::RateLimiter::hashmap_with_clock(quota(), clock.clone());
        let peer = libp2p::PeerId::random();
        let other = libp2p::PeerId::random();
        assert!((0..CATCHUP_BURST).all(|_| limiter.check_key(&peer).is_ok()));
        assert!(limiter.check_key(&peer).is_err(), "the burst is spent");
        assert!(
            limiter.check_key(&other).is_ok(),
            "peers have their own buckets"
        );
        clock.advance(std::time::Duration::from_millis(25));
        assert!(limiter.check_key(&peer).is_ok(), "refilled at 100/s");
        assert!(limiter.check_key(&peer).is_ok());
        assert!(limiter.check_key(&peer).is_err());
    }
}
