//! The pure rules the event loop applies to members, with the clock as a
//! parameter: when to dial a disconnected member again (backoff), when a
//! member has sent too many invalid records (strikes), and how long a
//! misbehaving member stays blocked; and which events for the node may be
//! dropped when it falls behind (the outbox). The event loop owns one of
//! each and does the I/O (dialing, disallowing, logging).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Per-peer dial backoff: the first attempt at once, then waits doubling
/// from one second up to `max`; a connection resets it.
#[derive(Debug)]
pub(super) struct Backoff<K> {
    max: Duration,
    next: HashMap<K, (Instant, Duration)>,
}

impl<K: Hash + Eq + Copy> Backoff<K> {
    pub(super) fn new(max: Duration) -> Self {
        Backoff {
            max,
            next: HashMap::new(),
        }
    }

    /// Whether `peer` may be dialed at `now`; if so, the attempt is counted.
    pub(super) fn due(&mut self, peer: K, now: Instant) -> bool {
        let (at, delay) = *self
            .next
            .entry(peer)
            .or_insert((now, Duration::from_secs(1)));
        if now < at {
            return false;
        }
        self.next
            .insert(peer, (now + delay, (delay * 2).min(self.max)));
        true
    }

    /// `peer` connected: the next disconnection starts over.
    pub(super) fn reset(&mut self, peer: &K) {
        self.next.remove(peer);
    }
}

/// Invalid records per peer in a sliding window: `limit` within `window`
/// is a strike-out.
#[derive(Debug)]
pub(super) struct Strikes<K> {
    limit: u32,
    window: Duration,
    counts: HashMap<K, (Instant, u32)>,
}

impl<K: Hash + Eq + Copy> Strikes<K> {
    pub(super) fn new(limit: u32, window: Duration) -> Self {
        Strikes {
            limit,
            window,
            counts: HashMap::new(),
        }
    }

    /// Counts one invalid record from `peer` at `now`; true once the peer
    /// has sent `limit` within the window.
    pub(super) fn strike(&mut self, peer: K, now: Instant) -> bool {
        let (since, count) = self.counts.entry(peer).or_insert((now, 0));
        if now.duration_since(*since) > self.window {
            *since = now;
            *count = 0;
        }
        *count += 1;
        *count >= self.limit
    }

    /// Forgets `peer`'s count (its block ended).
    pub(super) fn forget(&mut self, peer: &K) {
        self.counts.remove(peer);
    }
}

/// Members blocked for misbehaviour, each until a time.
#[derive(Debug)]
pub(super) struct Blocks<K> {
    duration: Duration,
    until: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Copy> Blocks<K> {
    pub(super) fn new(duration: Duration) -> Self {
        Blocks {
            duration,
            until: HashMap::new(),
        }
    }

    /// Blocks `peer` from `now`; false if it already was (the block is not
    /// extended: it ends when it was going to).
    pub(super) fn block(&mut self, peer: K, now: Instant) -> bool {
        if self.until.contains_key(&peer) {
            return false;
        }
        self.until.insert(peer, now + self.duration);
        true
    }

    pub(super) fn contains(&self, peer: &K) -> bool {
        self.until.contains_key(peer)
    }

    /// The blocked peers.
    pub(super) fn peers(&self) -> impl Iterator<Item = &K> {
        self.until.keys()
    }

    /// Ends the blocks due by `now`; the peers they held.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<K> {
        let ended: Vec<K> = self
            .until
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in &ended {
            self.until.remove(peer);
        }
        ended
    }
}

/// The queue of events for the node. The event loop never waits on the
/// node (it could deadlock with a node task waiting to send it a command),
/// so events wait here; past `capacity` the loop stops polling the swarm
/// (backpressure), and what can be dropped is dropped rather than queued.
#[derive(Debug)]
pub(super) struct Outbox<T> {
    queue: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> Outbox<T> {
    pub(super) fn new(capacity: usize) -> Self {
        Outbox {
            queue: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Whether the loop may take more from the swarm.
    pub(super) fn has_room(&self) -> bool {
        self.queue.len() < self.capacity
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn pop(&mut self) -> Option<T> {
        self.queue.pop_front()
    }

    /// Events dropped so far.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues `event`, unless the queue is full and the event `droppable`
    /// (gossip, which its sender retries and catch-up repairs; a catch-up
    /// request, which its peer retries): then it is handed back, counted,
    /// for the caller to settle. Connection changes are always queued: a
    /// lost one would leave the node wrong about who is connected.
    pub(super) fn offer(&mut self, event: T, droppable: bool) -> Result<(), T> {
        if droppable && !self.has_room() {
            self.dropped += 1;
            return Err(event);
        }
        self.queue.push_back(event);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_to_its_cap_and_a_connection_resets_it() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(4));
        assert!(b.due(1, t0), "the first attempt is at once");
        assert!(!b.due(1, t0), "then one second");
        assert!(b.due(1, t0 + S));
        assert!(!b.due(1, t0 + S + S), "then two");
        assert!(b.due(1, t0 + 3 * S));
        assert!(b.due(1, t0 + 7 * S), "then four");
        assert!(!b.due(1, t0 + 10 * S), "and never more than the cap");
        assert!(b.due(1, t0 + 11 * S));
        assert!(b.due(2, t0 + 11 * S), "each peer has its own");
        b.reset(&1);
        assert!(b.due(1, t0 + 11 * S), "a connection starts it over");
    }

    #[test]
    fn strikes_count_within_the_window_only() {
        let t0 = Instant::now();
        let mut s = Strikes::new(3, Duration::from_secs(60));
        assert!(!s.strike(1, t0));
        assert!(!s.strike(1, t0 + S));
        assert!(s.strike(1, t0 + 2 * S), "the third within a minute");
        // Spread out, the count starts over.
        let mut s = Strikes::new(3, Duration::from_secs(60));
        assert!(!s.strike(1, t0));
        assert!(!s.strike(1, t0 + S));
        assert!(!s.strike(1, t0 + 62 * S), "the window passed");
        assert!(!s.strike(1, t0 + 63 * S));
        assert!(s.strike(1, t0 + 64 * S));
        s.forget(&1);
        assert!(!s.strike(1, t0 + 65 * S));
    }

    #[test]
    fn a_block_lasts_its_duration_and_is_not_extended() {
        let t0 = Instant::now();
        let mut b = Blocks::new(Duration::from_secs(600));
        assert!(b.block(7, t0));
        assert!(!b.block(7, t0 + 300 * S), "already blocked");
        assert!(b.contains(&7));
        assert!(b.expire(t0 + 599 * S).is_empty());
        assert_eq!(b.expire(t0 + 600 * S), vec![7], "ends when first set");
        assert!(!b.contains(&7));
        assert!(b.block(7, t0 + 601 * S), "can be blocked again");
    }

    #[test]
    fn a_full_outbox_hands_back_what_it_may_drop_and_keeps_the_rest() {
        let mut outbox = Outbox::new(2);
        assert!(outbox.has_room() && outbox.is_empty());
        assert_eq!(outbox.offer("gossip 1", true), Ok(()));
        assert_eq!(outbox.offer("connected", false), Ok(()));
        assert!(!outbox.has_room(), "full: the swarm waits");
        assert_eq!(outbox.offer("gossip 2", true), Err("gossip 2"));
        assert_eq!(outbox.offer("disconnected", false), Ok(()), "never lost");
        assert_eq!(outbox.dropped(), 1);
        assert_eq!(outbox.pop(), Some("gossip 1"), "first in, first out");
        assert!(!outbox.has_room(), "still at capacity");
        assert_eq!(outbox.pop(), Some("connected"));
        assert!(outbox.has_room());
        assert_eq!(outbox.offer("gossip 3", true), Ok(()));
        assert_eq!(outbox.pop(), Some("disconnected"));
        assert_eq!(outbox.pop(), Some("gossip 3"));
        assert_eq!(outbox.pop(), None);
    }
}
