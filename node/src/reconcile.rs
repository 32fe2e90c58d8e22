//! Catch-up version 2: range-based set reconciliation (negentropy) of each
//! origin's held records, so that what catch-up costs follows the
//! difference between two nodes, whatever gaps their histories have (SPEC
//! §11.2). Pure: item sets and sessions over negentropy; the store lists the
//! items and the core task carries the messages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sightline_protocol::OriginId;

use crate::catchup::{item_seq, FRAME_LIMIT};

/// A reconciliation failed: a message that does not parse, or a session
/// used out of order.
#[derive(Debug, thiserror::Error)]
#[error("reconciliation: {0}")]
pub struct Error(String);

impl From<negentropy::Error> for Error {
    fn from(e: negentropy::Error) -> Self {
        Error(e.to_string())
    }
}

/// One origin's items as negentropy sorts them (by seq, then id).
///
/// # Errors
/// An item list negentropy refuses (it never is: ids are 32 bytes).
pub fn item_set(items: &[(u64, [u8; 32])]) -> Result<NegentropyStorageVector, Error> {
    let mut set = NegentropyStorageVector::with_capacity(items.len());
    for (seq, item) in items {
        set.insert(*seq, Id::from_byte_array(*item))?;
    }
    set.seal()?;
    Ok(set)
}

/// The responder's answer to one negentropy message over `set`.
///
/// # Errors
/// A message that does not parse.
pub fn answer(set: &NegentropyStorageVector, message: &[u8]) -> Result<Vec<u8>, Error> {
    Ok(Negentropy::borrowed(set, FRAME_LIMIT)?.reconcile(message)?)
}

/// The initiator's side of reconciling one origin's set with a peer.
pub struct Session {
    negentropy: Negentropy<'static, NegentropyStorageVector>,
    need: Vec<Id>,
    rounds: usize,
    capped: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("need", &self.need.len())
            .field("rounds", &self.rounds)
            .finish_non_exhaustive()
    }
}

/// Most rounds one session runs: negentropy needs about log₁₆ of the set
/// size plus a few, and one more per ~8,000 items the answers list (a
/// frame holds that many ids). A session that reaches it stops there: what
/// it learned is fetched, and the next exchange goes on from what is then
/// held. A peer cannot keep a session going longer.
pub const MAX_ROUNDS: usize = 64;

impl Session {
    /// A session over this node's items, and its first message.
    ///
    /// # Errors
    /// See [`item_set`].
    pub fn start(items: &[(u64, [u8; 32])]) -> Result<(Self, Vec<u8>), Error> {
        let mut negentropy = Negentropy::owned(item_set(items)?, FRAME_LIMIT)?;
        let first = negentropy.initiate()?;
        Ok((
            Session {
                negentropy,
                need: Vec::new(),
                rounds: 0,
                capped: false,
            },
            first,
        ))
    }

    /// Takes the peer's answer: the next message, or `None` when the
    /// session ends: the sets are reconciled, or it ran [`MAX_ROUNDS`]
    /// rounds ([`Session::capped`]).
    ///
    /// # Errors
    /// An answer that does not parse.
    pub fn step(&mut self, answer: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if self.capped {
            return Ok(None);
        }
        self.rounds += 1;
        // What this node has and the peer lacks is the peer's to pull.
        let mut have = Vec::new();
        let next = self
            .negentropy
            .reconcile_with_ids(answer, &mut have, &mut self.need)?;
        if next.is_some() && self.rounds >= MAX_ROUNDS {
            self.capped = true;
            return Ok(None);
        }
        Ok(next)
    }

    /// Whether the session stopped at [`MAX_ROUNDS`] before the sets were
    /// reconciled: [`Session::need`] is then part of the difference.
    pub fn capped(&self) -> bool {
        self.capped
    }

    /// Rounds so far.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The items the peer holds and this node lacks, by seq.
    pub fn need(&self) -> Vec<[u8; 32]> {
        let mut need: Vec<[u8; 32]> = self.need.iter().map(|id| **id).collect();
        need.sort_unstable_by_key(item_seq);
        need.dedup();
        need
    }
}

/// Which version of an origin's set an item set was built from: its
/// (count, digest) when the items were listed.
pub type SetVersion = (OriginId, u64, [u8; 32]);

/// The responder's recently built item sets, so that the rounds of one
/// reconciliation (and peers reconciling the same origin) list and sort an
/// origin's items once. Bounded: a few sets, one build at a time (a
/// request that would start a second is answered `Busy`), and a set built
/// less than [`REUSE_FOR`] ago answers for its origin even if the origin
/// has changed since (answers are stateless: an item added meanwhile is
/// found in the next exchange, one removed is skipped by the fetch).
#[derive(Debug)]
pub struct SetCache {
    sets: Mutex<VecDeque<CachedSet>>,
    building: Mutex<()>,
    capacity: usize,
}

/// A set in [`SetCache`]: its version, when it was built, the set.
type CachedSet = (SetVersion, Instant, Arc<NegentropyStorageVector>);

/// How long a built set answers for its origin whatever its version.
pub const REUSE_FOR: Duration = Duration::from_secs(10);

impl SetCache {
    /// A cache of at most `capacity` sets.
    pub fn new(capacity: usize) -> Self {
        SetCache {
            sets: Mutex::new(VecDeque::new()),
            building: Mutex::new(()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<CachedSet>> {
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self, version: &SetVersion) -> Option<Arc<NegentropyStorageVector>> {
        self.lock()
            .iter()
            .find(|(v, built, _)| v.0 == version.0 && (v == version || built.elapsed() < REUSE_FOR))
            .map(|(_, _, set)| set.clone())
    }

    /// The set of `version` (or a recent one of its origin), built by
    /// `build` if there is none; `None` while another build runs.
    ///
    /// # Errors
    /// What `build` returns.
    pub fn get_or_build<E>(
        &self,
        version: SetVersion,
        build: impl FnOnce() -> Result<NegentropyStorageVector, E>,
    ) -> Result<Option<Arc<NegentropyStorageVector>>, E> {
        if let Some(set) = self.cached(&version) {
            return Ok(Some(set));
        }
        let Ok(_building) = self.building.try_lock() else {
            return Ok(None);
        };
        // Another build may have just finished it.
        if let Some(set) = self.cached(&version) {
            return Ok(Some(set));
        }
        let set = Arc::new(build()?);
        let mut sets = self.lock();
        sets.retain(|(v, _, _)| v.0 != version.0);
        if sets.len() >= self.capacity {
            sets.pop_front();
        }
        sets.push_back((version, Instant::now(), set.clone()));
        Ok(Some(set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catchup::item_id;

    fn items(seqs: impl Iterator<Item = u64>) -> Vec<(u64, [u8; 32])> {
        seqs.map(|seq| (seq, item_id(seq, &[u8::try_from(seq % 251).unwrap(); 32])))
            .collect()
    }

    /// Runs a session to the end against `theirs`; (need, rounds, bytes).
    fn run(mine: &[(u64, [u8; 32])], theirs: &[(u64, [u8; 32])]) -> (Vec<u64>, usize, usize) {
        let set = item_set(theirs).unwrap();
        let (mut session, mut message) = Session::start(mine).unwrap();
        let mut bytes = message.len();
        loop {
            let reply = answer(&set, &message).unwrap();
            bytes += reply.len();
            match session.step(&reply).unwrap() {
                Some(next) => {
                    bytes += next.len();
                    message = next;
                }
                None => break,
            }
        }
        let need = session.need().iter().map(item_seq).collect();
        (need, session.rounds(), bytes)
    }

    #[test]
    fn equal_sets_take_one_small_round() {
        let all = items(1..=50_000);
        let (need, rounds, bytes) = run(&all, &all);
        assert!(need.is_empty());
        assert_eq!(rounds, 1);
        assert!(bytes < 1024, "{bytes} bytes");
    }

    #[test]
    fn only_the_difference_is_needed_whatever_the_gaps() {
        // The peer holds every seq; this node lacks scattered ones and a
        // run at the end, and holds some the peer lacks.
        let theirs = items(1..=20_000);
        let mine: Vec<_> = items((1..=19_000).filter(|s| s % 997 != 0).chain(30_000..30_010));
        let (need, _, bytes) = run(&mine, &theirs);
        let expected: Vec<u64> = (1..=20_000)
            .filter(|s| s % 997 == 0 || *s > 19_000)
            .collect();
        assert_eq!(need, expected);
        assert!(bytes < 200 * expected.len() + 4096, "{bytes} bytes");
    }

    #[test]
    fn a_garbled_answer_is_an_error_not_a_panic() {
        let (mut session, _) = Session::start(&items(1..=10)).unwrap();
        assert!(session.step(&[]).is_err());
        assert!(session.step(&[0x60]).is_err());
        let set = item_set(&items(1..=10)).unwrap();
        assert!(answer(&set, &[0x00]).is_err());
        assert!(answer(&set, &[]).is_err());
    }

    #[test]
    fn the_cache_keeps_one_set_per_origin_and_reuses_a_recent_one() {
        let cache = SetCache::new(2);
        let origin = OriginId::from_bytes([1; 32]);
        let other = OriginId::from_bytes([2; 32]);
        let mut built = 0;
        for (o, version) in [
            (origin, 1),
            (origin, 1),
            (origin, 2),
            (other, 1),
            (origin, 3),
        ] {
            let set = cache
                .get_or_build::<Error>((o, version, [0; 32]), || {
                    built += 1;
                    item_set(&items(1..=version))
                })
                .unwrap();
            assert!(set.is_some());
        }
        // Versions 2 and 3 of `origin` came within REUSE_FOR of version 1.
        assert_eq!(built, 2);
        assert_eq!(cache.lock().len(), 2);
        // While a build runs, a second one is not started.
        let _building = cache.building.lock().unwrap();
        let third = OriginId::from_bytes([3; 32]);
        assert!(cache
            .get_or_build::<Error>((third, 1, [0; 32]), || item_set(&items(1..=1)))
            .unwrap()
            .is_none());
    }
}
