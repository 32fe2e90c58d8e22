//! Catch-up version 2: range-based set reconciliation (negentropy) of each
//! origin's held records, so that what catch-up costs follows the
//! difference between two nodes, whatever gaps their histories have (SPEC
//! §11.2). Pure: item sets and sessions over negentropy; the store lists the
//! items and the core task carries the messages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

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
/// size plus a few; a peer that keeps a session going longer is cut off.
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
            },
            first,
        ))
    }

    /// Takes the peer's answer: the next message, or `None` when the
    /// sets are reconciled.
    ///
    /// # Errors
    /// An answer that does not parse, or more than [`MAX_ROUNDS`] rounds.
    pub fn step(&mut self, answer: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(Error(format!("more than {MAX_ROUNDS} rounds")));
        }
        // What this node has and the peer lacks is the peer's to pull.
        let mut have = Vec::new();
        Ok(self
            .negentropy
            .reconcile_with_ids(answer, &mut have, &mut self.need)?)
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
/// origin's items once while it does not change. Bounded: a few sets.
#[derive(Debug)]
pub struct SetCache {
    sets: Mutex<VecDeque<(SetVersion, Arc<NegentropyStorageVector>)>>,
    capacity: usize,
}

impl SetCache {
    /// A cache of at most `capacity` sets.
    pub fn new(capacity: usize) -> Self {
        SetCache {
            sets: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, VecDeque<(SetVersion, Arc<NegentropyStorageVector>)>> {
        self.sets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The set of `version`, built by `build` if it is not cached.
    ///
    /// # Errors
    /// What `build` returns.
    pub fn get_or_build<E>(
        &self,
        version: SetVersion,
        build: impl FnOnce() -> Result<NegentropyStorageVector, E>,
    ) -> Result<Arc<NegentropyStorageVector>, E> {
        if let Some((_, set)) = self.lock().iter().find(|(v, _)| *v == version) {
            return Ok(set.clone());
        }
        let set = Arc::new(build()?);
        let mut sets = self.lock();
        sets.retain(|(v, _)| v.0 != version.0);
        if sets.len() >= self.capacity {
            sets.pop_front();
        }
        sets.push_back((version, set.clone()));
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::catchup::item_id;

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
    fn the_cache_keeps_one_version_per_origin() {
        let cache = SetCache::new(2);
        let origin = OriginId::from_bytes([1; 32]);
        let mut built = 0;
        for version in [1, 1, 2, 2, 1] {
            cache
                .get_or_build::<Error>((origin, version, [0; 32]), || {
                    built += 1;
                    item_set(&items(1..=version))
                })
                .unwrap();
        }
        assert_eq!(built, 3);
        assert_eq!(cache.lock().len(), 1);
    }
}
