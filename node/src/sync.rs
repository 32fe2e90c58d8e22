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
    ProgressEntry, SyncRequest, SyncResponse, MAX_PAGE, MAX_PROGRESS_ENTRIES, MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES, PROTOCOL,
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

/// What to pull from a peer, given both sides' progress: for each origin
/// whose set differs and where the peer may hold something this node lacks,
/// pull from this node's contiguous seq. Origins `keep` rejects (non-members)
/// are skipped. Equal sets (same count and digest) cost nothing.
pub fn plan(
    mine: &[OriginProgress],
    theirs: &[ProgressEntry],
    keep: impl Fn(&OriginId) -> bool,
) -> Vec<(OriginId, u64)> {
    let mine: HashMap<OriginId, &OriginProgress> = mine.iter().map(|p| (p.origin, p)).collect();
    let mut pulls = Vec::new();
    for entry in theirs.iter().take(MAX_PROGRESS_ENTRIES) {
        let origin = OriginId::from_bytes(entry.origin);
        if !keep(&origin) || entry.count == 0 {
            continue;
        }
        match mine.get(&origin) {
            None => pulls.push((origin, 0)),
            Some(m) if m.count == entry.count && m.digest == entry.digest => {}
            // Everything up to my contiguous seq I hold; they hold nothing above it.
            Some(m) if entry.max_seq <= m.contiguous => {}
            Some(m) => pulls.push((origin, m.contiguous)),
        }
    }
    pulls
}

/// Catch-up requests a peer may send in a burst before it is answered `Busy`.
pub const SYNC_BURST: u32 = 100;
/// Catch-up requests a peer may send per second, sustained. A page is at
/// most [`MAX_PAGE`] (256) records, so this lets a rejoining node pull
/// ~25,000 records/s, above what its ingest stage stores (BENCHMARKS.md,
/// catch-up row; at 20/s the limit, not ingest, bounded catch-up). Serving a
/// page is one range scan over the origin's records.
pub const SYNC_REQUESTS_PER_SEC: u32 = 100;

/// A token bucket per peer, for the responder's rate limit.
#[derive(Debug)]
pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    buckets: HashMap<libp2p::PeerId, (f64, std::time::Instant)>,
}

impl RateLimiter {
    /// Allows bursts of `capacity` requests and `per_second` sustained.
    pub fn new(capacity: u32, per_second: u32) -> Self {
        RateLimiter {
            capacity: f64::from(capacity),
            per_second: f64::from(per_second),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `peer` at `now`; false if none is left.
    pub fn allow(&mut self, peer: libp2p::PeerId, now: std::time::Instant) -> bool {
        let (tokens, last) = self.buckets.entry(peer).or_insert((self.capacity, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_second).min(self.capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
        assert!(plan(&mine, &theirs, |_| true).is_empty());
    }

    #[test]
    fn unknown_origins_pull_from_zero_and_behind_origins_from_contiguous() {
        let mine = vec![progress(1, 10, 10, 10, 7), progress(2, 5, 9, 4, 1)];
        let theirs = vec![
            entry(&progress(1, 12, 12, 12, 8)),
            entry(&progress(2, 9, 9, 9, 2)),
            entry(&progress(3, 4, 4, 4, 3)),
        ];
        let pulls = plan(&mine, &theirs, |_| true);
        assert_eq!(
            pulls,
            vec![
                (OriginId::from_bytes([1; 32]), 10),
                (OriginId::from_bytes([2; 32]), 4),
                (OriginId::from_bytes([3; 32]), 0)
            ]
        );
    }

    #[test]
    fn a_peer_behind_me_costs_no_pull() {
        let mine = vec![progress(1, 10, 10, 10, 7)];
        let theirs = vec![entry(&progress(1, 6, 6, 6, 1))];
        assert!(plan(&mine, &theirs, |_| true).is_empty());
    }

    #[test]
    fn non_members_are_skipped() {
        let theirs = vec![entry(&progress(9, 4, 4, 4, 3))];
        assert!(plan(&[], &theirs, |o| o.as_bytes()[0] != 9).is_empty());
    }

    #[test]
    fn rate_limiter_allows_bursts_then_refills() {
        let mut limiter = RateLimiter::new(3, 10);
        let peer = libp2p::PeerId::random();
        let t0 = std::time::Instant::now();
        assert!((0..3).all(|_| limiter.allow(peer, t0)));
        assert!(!limiter.allow(peer, t0));
        assert!(limiter.allow(peer, t0 + std::time::Duration::from_millis(150)));
    }
}
