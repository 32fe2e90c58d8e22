//! Per-origin limits, decided on the records themselves so that every node
//! keeps the same set whatever order records reach it in.
//!
//! An origin's records are bucketed by the hour and the day of their
//! `last_seen`. Two rules decide which records of a bucket are kept:
//!
//! - **records per hour**: the `records_per_hour` lowest seqs of an hour
//!   bucket. A record above them is refused; a record below them is kept
//!   and the highest seq of the bucket is evicted.
//! - **distinct numbers per day**: the `numbers_per_day` numbers of a day
//!   bucket that appeared first (by the lowest seq of their records). A
//!   record of another number is refused if its number appeared later; if
//!   it appeared earlier, the number that appeared last is evicted with all
//!   its records of the day.
//!
//! Which records a bucket keeps is a function of the records, not of their
//! arrival order: a node that sees records out of order keeps some it later
//! evicts, and may refuse one that a record arriving later would have made
//! room for, which catch-up brings back from a peer that kept it. Honest
//! origins never reach either limit: their own node refuses submissions
//! beyond them (HTTP 429).
//!
//! The index lives in one tree, `quota`, updated inside the record's own
//! transaction. Writers are serialized by the store, so the "highest key
//! under a prefix" reads that sled transactions cannot do are answered from
//! the committed tree merged with this transaction's own writes ([`Q`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use sightline_protocol::{NumberHash, OriginId, Sighting};
use sled::transaction::{TransactionalTree, UnabortableTransactionError};

/// Seconds per bucket.
pub(super) const HOUR: u64 = 3600;
/// Seconds per day bucket.
pub(super) const DAY: u64 = 86_400;

/// Per-origin limits, identical on every node (`network.toml` `[limits]`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Records one origin may have per hour of `last_seen` (the whole hour
    /// may be used as a burst).
    #[serde(default = "default_records_per_hour")]
    pub records_per_hour: u64,
    /// Distinct numbers one origin may report per day of `last_seen`.
    #[serde(default = "default_numbers_per_day")]
    pub numbers_per_day: u64,
}

fn default_records_per_hour() -> u64 {
    Limits::default().records_per_hour
}

fn default_numbers_per_day() -> u64 {
    Limits::default().numbers_per_day
}

impl Limits {
    /// No limits: for tests and benchmarks that plant volume on purpose
    /// (the largest value TOML can carry).
    pub const fn unlimited() -> Self {
        Limits {
            records_per_hour: i64::MAX as u64,
            numbers_per_day: i64::MAX as u64,
        }
    }

    /// Reads the limits another node reports (its status): fields this
    /// build does not know are ignored there, unlike in `network.toml`.
    ///
    /// # Errors
    /// A missing or mistyped field.
    pub fn deserialize_reported<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Reported {
            records_per_hour: u64,
            numbers_per_day: u64,
        }
        let r = <Reported as serde::Deserialize>::deserialize(d)?;
        Ok(Limits {
            records_per_hour: r.records_per_hour,
            numbers_per_day: r.numbers_per_day,
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            records_per_hour: 2000,
            numbers_per_day: 10_000,
        }
    }
}

/// Which limit refused a record (its rejection reason).
pub const OVER_RECORDS_PER_HOUR: &str = "over_records_per_hour";
/// Which limit refused a record (its rejection reason).
pub const OVER_NUMBERS_PER_DAY: &str = "over_numbers_per_day";

type Res<T> = Result<T, UnabortableTransactionError>;

/// `H` ‖ origin ‖ hour ‖ seq → number ‖ `purge_at`: an hour's records.
const TAG_HOUR: u8 = b'H';
/// `C` ‖ origin ‖ hour: records in the hour (a counter in memory).
const TAG_HOUR_COUNT: u8 = b'C';
/// `N` ‖ origin ‖ day ‖ number → (seq ‖ hour)…, ascending by seq: a
/// number's records in the day (the first is where it appeared).
const TAG_NUMBER: u8 = b'N';
/// `F` ‖ origin ‖ day ‖ first seq ‖ number → (): the day's numbers in
/// the order they appeared.
const TAG_FIRST: u8 = b'F';
/// `D` ‖ origin ‖ day: distinct numbers in the day (a counter in memory).
const TAG_DISTINCT: u8 = b'D';
/// `R` ‖ origin ‖ day: records in the day (a counter in memory).
const TAG_DAY_COUNT: u8 = b'R';
/// `I` ‖ origin ‖ day → (): the day's `N` and `F` entries exist. A day
/// with no more records than `numbers_per_day` cannot be over that limit,
/// so its number index is built only once its records outnumber it (most
/// origin-days never are: an honest origin pays for `H` alone).
const TAG_INDEXED: u8 = b'I';

fn key(tag: u8, origin: &OriginId, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 32 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(tag);
    k.extend_from_slice(origin.as_bytes());
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn be(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn tail_u64(k: &[u8]) -> u64 {
    be(&k[k.len() - 8..])
}

/// A record as the quota index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    /// Its origin.
    pub(super) origin: OriginId,
    /// Its seq.
    pub(super) seq: u64,
    /// Its number.
    pub(super) number: NumberHash,
    /// Hour bucket (`last_seen / HOUR`).
    pub(super) hour: u64,
    /// When retention or expiry removes it (the store's `purges` key).
    pub(super) purge_at: u64,
}

impl Entry {
    /// The index entry of a record.
    pub(super) fn of(s: &Sighting, purge_at: u64) -> Self {
        Entry {
            origin: s.origin,
            seq: s.seq,
            number: s.number,
            hour: s.last_seen / HOUR,
            purge_at,
        }
    }

    fn day(&self) -> u64 {
        self.hour / 24
    }

    /// Its hour, day and seq as key parts.
    fn key_parts(&self) -> ([u8; 8], [u8; 8], [u8; 8]) {
        (
            self.hour.to_be_bytes(),
            self.day().to_be_bytes(),
            self.seq.to_be_bytes(),
        )
    }
}

/// One tree's pending writes over its committed state: reads see both,
/// including the prefix reads sled transactions cannot do. A batch of
/// records is worked out on overlays, then their writes are committed in
/// one transaction ([`Ov::apply`]). Sound only while no other writer
/// commits to the tree (the store serializes its writers).
pub(super) struct Ov<'a> {
    committed: &'a sled::Tree,
    /// Key → new value (`None`: removed).
    written: RefCell<BTreeMap<Vec<u8>, Option<sled::IVec>>>,
}

/// The bucket counters (records per hour, numbers per day), kept in memory:
/// rewriting two hot keys per record cost more than the rest of the index
/// (BENCHMARKS.md, ingest). Counted from the tree when the store opens
/// (its `H` and `N` entries), changed only after a commit.
#[derive(Debug, Default)]
pub(super) struct Counts(std::sync::Mutex<std::collections::HashMap<Vec<u8>, u64>>);

impl Counts {
    /// Counts the buckets of the index in `tree`.
    pub(super) fn load(tree: &sled::Tree) -> Result<Self, sled::Error> {
        let mut counts: std::collections::HashMap<Vec<u8>, u64> = std::collections::HashMap::new();
        for k in tree.scan_prefix([TAG_HOUR]).keys() {
            let k = k?;
            let mut c = k[..1 + 32 + 8].to_vec();
            c[0] = TAG_HOUR_COUNT;
            let hour = be(&c[1 + 32..]);
            *counts.entry(c.clone()).or_default() += 1;
            c[0] = TAG_DAY_COUNT;
            c[1 + 32..].copy_from_slice(&(hour / 24).to_be_bytes());
            *counts.entry(c).or_default() += 1;
        }
        for k in tree.scan_prefix([TAG_NUMBER]).keys() {
            let k = k?;
            let mut d = k[..1 + 32 + 8].to_vec();
            d[0] = TAG_DISTINCT;
            *counts.entry(d).or_default() += 1;
        }
        Ok(Counts(std::sync::Mutex::new(counts)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Vec<u8>, u64>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, k: &[u8]) -> u64 {
        self.lock().get(k).copied().unwrap_or(0)
    }
}

/// The quota tree's overlay, with its counters.
pub(super) struct Q<'a> {
    ov: Ov<'a>,
    counts: &'a Counts,
    /// Counters changed by this batch: key → new value.
    changed: RefCell<std::collections::HashMap<Vec<u8>, u64>>,
}

impl<'a> Q<'a> {
    /// No writes yet over `committed` and `counts`.
    pub(super) fn new(committed: &'a sled::Tree, counts: &'a Counts) -> Self {
        Q {
            ov: Ov::new(committed),
            counts,
            changed: RefCell::new(std::collections::HashMap::new()),
        }
    }

    fn get(&self, k: impl AsRef<[u8]>) -> Res<Option<sled::IVec>> {
        self.ov.get(k)
    }

    fn insert(&self, k: impl AsRef<[u8]>, v: impl Into<sled::IVec>) -> Res<()> {
        self.ov.insert(k, v)
    }

    fn remove(&self, k: impl AsRef<[u8]>) -> Res<Option<sled::IVec>> {
        self.ov.remove(k)
    }

    fn keys_from(&self, prefix: &[u8], from: &[u8]) -> Res<Vec<Vec<u8>>> {
        self.ov.keys_from(prefix, from)
    }

    fn last(&self, prefix: &[u8]) -> Res<Option<Vec<u8>>> {
        self.ov.last(prefix)
    }

    /// A bucket counter, as this batch left it.
    fn count(&self, k: &[u8]) -> u64 {
        match self.changed.borrow().get(k) {
            Some(n) => *n,
            None => self.counts.get(k),
        }
    }

    /// Adds `delta` (±1) to a bucket counter.
    fn add(&self, k: Vec<u8>, delta: i64) {
        let n = self.count(&k).saturating_add_signed(delta);
        self.changed.borrow_mut().insert(k, n);
    }

    /// Replays the tree writes in a transaction.
    pub(super) fn apply(&self, tx: &TransactionalTree) -> Res<()> {
        self.ov.apply(tx)
    }

    /// Whether nothing was written.
    pub(super) fn is_clean(&self) -> bool {
        self.ov.is_clean() && self.changed.borrow().is_empty()
    }

    /// Makes the counters' changes current, once their writes are committed.
    pub(super) fn committed(&self) {
        let mut counts = self.counts.lock();
        for (k, n) in self.changed.borrow_mut().drain() {
            if n == 0 {
                counts.remove(&k);
            } else {
                counts.insert(k, n);
            }
        }
    }
}

fn storage(e: sled::Error) -> UnabortableTransactionError {
    UnabortableTransactionError::Storage(e)
}

impl<'a> Ov<'a> {
    /// No writes yet over `committed`.
    pub(super) fn new(committed: &'a sled::Tree) -> Self {
        Ov {
            committed,
            written: RefCell::new(BTreeMap::new()),
        }
    }

    /// The value under `k`, as written here or committed.
    pub(super) fn get(&self, k: impl AsRef<[u8]>) -> Res<Option<sled::IVec>> {
        let k = k.as_ref();
        if let Some(v) = self.written.borrow().get(k) {
            return Ok(v.clone());
        }
        self.committed.get(k).map_err(storage)
    }

    /// Writes `v` under `k` (without reading what it replaces: the commit
    /// reads each written key once more, and most callers never look).
    /// Fallible like the other operations, so callers treat all alike.
    #[allow(clippy::unnecessary_wraps)]
    pub(super) fn insert(&self, k: impl AsRef<[u8]>, v: impl Into<sled::IVec>) -> Res<()> {
        self.written
            .borrow_mut()
            .insert(k.as_ref().to_vec(), Some(v.into()));
        Ok(())
    }

    /// Removes `k`; the previous value.
    pub(super) fn remove(&self, k: impl AsRef<[u8]>) -> Res<Option<sled::IVec>> {
        let old = self.get(&k)?;
        self.written.borrow_mut().insert(k.as_ref().to_vec(), None);
        Ok(old)
    }

    /// Replays the writes in a transaction.
    pub(super) fn apply(&self, tx: &TransactionalTree) -> Res<()> {
        for (k, v) in self.written.borrow().iter() {
            match v {
                Some(v) => tx.insert(k.as_slice(), v.clone())?,
                None => tx.remove(k.as_slice())?,
            };
        }
        Ok(())
    }

    /// Whether nothing was written.
    pub(super) fn is_clean(&self) -> bool {
        self.written.borrow().is_empty()
    }

    /// Keys under `prefix`, ascending, from `from` (a full key) on.
    fn keys_from(&self, prefix: &[u8], from: &[u8]) -> Res<Vec<Vec<u8>>> {
        let written = self.written.borrow();
        let mut keys: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
        for k in self.committed.range(from..) {
            let (k, _) = k.map_err(storage)?;
            if !k.starts_with(prefix) {
                break;
            }
            if !matches!(written.get(k.as_ref()), Some(None)) {
                keys.insert(k.to_vec());
            }
        }
        for (k, v) in written.range(from.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            if v.is_some() {
                keys.insert(k.clone());
            }
        }
        Ok(keys.into_iter().collect())
    }

    fn last(&self, prefix: &[u8]) -> Res<Option<Vec<u8>>> {
        let written = self.written.borrow();
        let mut committed = None;
        for k in self.committed.scan_prefix(prefix).keys().rev() {
            let k = k.map_err(storage)?;
            if !matches!(written.get(k.as_ref()), Some(None)) {
                committed = Some(k.to_vec());
                break;
            }
        }
        let pending = written
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .last();
        Ok(match (committed, pending) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        })
    }
}

/// What the limits say about a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admission {
    /// Keep it, after evicting these records of its origin (seq, hour).
    Admit {
        /// (seq, hour) of each record to evict first.
        evict: Vec<(u64, u64)>,
    },
    /// Refuse it: the limit it is over.
    Refuse(&'static str),
}

/// A number's records in a day: (seq, hour) ascending by seq.
fn records_of(v: &[u8]) -> Vec<(u64, u64)> {
    v.chunks_exact(16)
        .map(|c| (be(&c[..8]), be(&c[8..])))
        .collect()
}

fn encode_records(list: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.len() * 16);
    for (seq, hour) in list {
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&hour.to_be_bytes());
    }
    out
}

/// Decides whether a record fits its origin's limits (no writes).
///
/// # Errors
/// sled errors.
pub(super) fn admit(q: &Q<'_>, e: &Entry, limits: &Limits) -> Res<Admission> {
    let (o, hour, day) = (&e.origin, e.hour.to_be_bytes(), e.day().to_be_bytes());
    let mut evict: Vec<(u64, u64)> = Vec::new();

    // Distinct numbers per day: the numbers that appeared first (a day that
    // is not indexed has no more records than the limit, this one included:
    // see `prepare_day`).
    let indexed = q.get(key(TAG_INDEXED, o, &[&day]))?.is_some();
    let known = indexed
        && q.get(key(TAG_NUMBER, o, &[&day, e.number.as_bytes()]))?
            .is_some();
    if indexed && !known {
        let distinct = q.count(&key(TAG_DISTINCT, o, &[&day]));
        if distinct >= limits.numbers_per_day {
            // The number that appeared last makes room, if this one
            // appeared before it.
            let Some(latest) = q.last(&key(TAG_FIRST, o, &[&day]))? else {
                return Ok(Admission::Refuse(OVER_NUMBERS_PER_DAY));
            };
            let latest_first = be(&latest[1 + 32 + 8..1 + 32 + 16]);
            if e.seq > latest_first {
                return Ok(Admission::Refuse(OVER_NUMBERS_PER_DAY));
            }
            let number = &latest[1 + 32 + 16..];
            if let Some(v) = q.get(key(TAG_NUMBER, o, &[&day, number]))? {
                evict.extend(records_of(&v));
            }
        }
    }

    // Records per hour: the lowest seqs of the hour bucket.
    let count = q.count(&key(TAG_HOUR_COUNT, o, &[&hour]));
    let evicted_here = evict.iter().filter(|(_, h)| *h == e.hour).count() as u64;
    if count.saturating_sub(evicted_here) >= limits.records_per_hour {
        let prefix = key(TAG_HOUR, o, &[&hour]);
        // The highest seq of the hour that is not already being evicted:
        // the top key, unless the day rule evicts it too (then a walk).
        let mut highest = q.last(&prefix)?.map(|k| tail_u64(&k));
        if highest.is_some_and(|top| evict.iter().any(|(s, _)| *s == top)) {
            highest = None;
            for k in q.keys_from(&prefix, &prefix)?.into_iter().rev() {
                let seq = tail_u64(&k);
                if !evict.iter().any(|(s, _)| *s == seq) {
                    highest = Some(seq);
                    break;
                }
            }
        }
        match highest {
            Some(top) if top > e.seq => evict.push((top, e.hour)),
            _ => return Ok(Admission::Refuse(OVER_RECORDS_PER_HOUR)),
        }
    }
    Ok(Admission::Admit { evict })
}

/// Adds a stored record to the index.
///
/// # Errors
/// sled errors.
pub(super) fn index(q: &Q<'_>, e: &Entry) -> Res<()> {
    let (o, (hour, day, seq)) = (&e.origin, e.key_parts());
    let number = e.number.as_bytes();
    let mut value = [0u8; 40];
    value[..32].copy_from_slice(number);
    value[32..].copy_from_slice(&e.purge_at.to_be_bytes());
    q.insert(key(TAG_HOUR, o, &[&hour, &seq]), value.as_slice())?;
    q.add(key(TAG_HOUR_COUNT, o, &[&hour]), 1);
    q.add(key(TAG_DAY_COUNT, o, &[&day]), 1);
    if q.get(key(TAG_INDEXED, o, &[&day]))?.is_none() {
        return Ok(());
    }
    index_number(q, e)
}

/// Adds a record to its day's number index.
fn index_number(q: &Q<'_>, e: &Entry) -> Res<()> {
    let (o, day, seq) = (&e.origin, e.day().to_be_bytes(), e.seq.to_be_bytes());
    let number = e.number.as_bytes();
    let n_key = key(TAG_NUMBER, o, &[&day, number]);
    if let Some(v) = q.get(&n_key)? {
        let mut list = records_of(&v);
        let first = list.first().map_or(u64::MAX, |r| r.0);
        let at = list.partition_point(|r| r.0 < e.seq);
        list.insert(at, (e.seq, e.hour));
        if e.seq < first {
            q.remove(key(TAG_FIRST, o, &[&day, &first.to_be_bytes(), number]))?;
            q.insert(key(TAG_FIRST, o, &[&day, &seq, number]), &[])?;
        }
        q.insert(n_key, encode_records(&list))?;
    } else {
        q.insert(n_key, encode_records(&[(e.seq, e.hour)]))?;
        q.insert(key(TAG_FIRST, o, &[&day, &seq, number]), &[])?;
        q.add(key(TAG_DISTINCT, o, &[&day]), 1);
    }
    Ok(())
}

/// Builds the number index of a record's day before the day holds more
/// records than `numbers_per_day` (from its `H` entries, once).
///
/// # Errors
/// sled errors.
pub(super) fn prepare_day(q: &Q<'_>, e: &Entry, limits: &Limits) -> Res<()> {
    let (o, day) = (&e.origin, e.day());
    let day_b = day.to_be_bytes();
    let records = q.count(&key(TAG_DAY_COUNT, o, &[&day_b]));
    if records < limits.numbers_per_day || q.get(key(TAG_INDEXED, o, &[&day_b]))?.is_some() {
        return Ok(());
    }
    q.insert(key(TAG_INDEXED, o, &[&day_b]), &[])?;
    for hour in day * 24..(day + 1) * 24 {
        let prefix = key(TAG_HOUR, o, &[&hour.to_be_bytes()]);
        for k in q.keys_from(&prefix, &prefix)? {
            let seq = tail_u64(&k);
            if let Some(found) = entry(q, o, hour, seq)? {
                index_number(q, &found)?;
            }
        }
    }
    Ok(())
}

/// The index entry of a stored record of `origin` with `seq` in `hour`.
///
/// # Errors
/// sled errors.
pub(super) fn entry(q: &Q<'_>, origin: &OriginId, hour: u64, seq: u64) -> Res<Option<Entry>> {
    let Some(v) = q.get(key(
        TAG_HOUR,
        origin,
        &[&hour.to_be_bytes(), &seq.to_be_bytes()],
    ))?
    else {
        return Ok(None);
    };
    Ok(Some(Entry {
        origin: *origin,
        seq,
        number: NumberHash::from_bytes(v[..32].try_into().expect("32 bytes")),
        hour,
        purge_at: be(&v[32..40]),
    }))
}

/// Removes a record from the index (it is purged or evicted).
///
/// # Errors
/// sled errors.
pub(super) fn unindex(q: &Q<'_>, e: &Entry) -> Res<()> {
    let (o, (hour, day, seq)) = (&e.origin, e.key_parts());
    let number = e.number.as_bytes();
    if q.remove(key(TAG_HOUR, o, &[&hour, &seq]))?.is_none() {
        return Ok(());
    }
    q.add(key(TAG_HOUR_COUNT, o, &[&hour]), -1);
    q.add(key(TAG_DAY_COUNT, o, &[&day]), -1);
    let n_key = key(TAG_NUMBER, o, &[&day, number]);
    let Some(v) = q.get(&n_key)? else {
        return Ok(());
    };
    let mut list = records_of(&v);
    let first = list.first().map_or(u64::MAX, |r| r.0);
    list.retain(|r| r.0 != e.seq);
    match list.first() {
        None => {
            q.remove(n_key)?;
            q.remove(key(TAG_FIRST, o, &[&day, &first.to_be_bytes(), number]))?;
            q.add(key(TAG_DISTINCT, o, &[&day]), -1);
        }
        Some(&(new_first, _)) => {
            if new_first != first {
                q.remove(key(TAG_FIRST, o, &[&day, &first.to_be_bytes(), number]))?;
                q.insert(
                    key(TAG_FIRST, o, &[&day, &new_first.to_be_bytes(), number]),
                    &[],
                )?;
            }
            q.insert(n_key, encode_records(&list))?;
        }
    }
    Ok(())
}

/// Whether an origin's own records fit its limits ([`room`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// They fit.
    Fits,
    /// They fit once the full buckets end, in this many seconds.
    Wait(u64),
    /// They never will: the batch alone is over a limit, or a full bucket
    /// is already over (records dated in a past hour or day). The limit.
    Never(&'static str),
}

/// Whether `origin` may sign records at these (`last_seen`, number)
/// pairs within `limits`. Each number's last entry is what it adds (an
/// earlier one in the batch is superseded by it); `replaced` holds the hour
/// buckets of the current reports they replace, whose records go.
///
/// # Errors
/// sled errors.
pub(super) fn room(
    tree: &sled::Tree,
    counts: &Counts,
    origin: &OriginId,
    now: u64,
    entries: &[(u64, NumberHash)],
    replaced: &[u64],
    limits: &Limits,
) -> Result<Room, sled::Error> {
    let mut last: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for (t, n) in entries {
        last.insert(*n.as_bytes(), *t);
    }
    let entries: Vec<(u64, NumberHash)> = last
        .into_iter()
        .map(|(n, t)| (t, NumberHash::from_bytes(n)))
        .collect();
    let entries = entries.as_slice();
    let mut hours: BTreeMap<u64, u64> = BTreeMap::new();
    let mut days: BTreeMap<u64, std::collections::BTreeSet<[u8; 32]>> = BTreeMap::new();
    for (t, n) in entries {
        *hours.entry(t / HOUR).or_default() += 1;
        days.entry(t / DAY).or_default().insert(*n.as_bytes());
    }
    let mut freed: BTreeMap<u64, u64> = BTreeMap::new();
    for hour in replaced {
        *freed.entry(*hour).or_default() += 1;
    }
    let read = |k: Vec<u8>| -> Result<u64, sled::Error> { Ok(counts.get(&k)) };
    // The latest end among the full buckets; a full bucket that has ended
    // (or a batch over a limit by itself) never makes room.
    let mut wait = 0u64;
    for (day, numbers) in days {
        if numbers.len() as u64 > limits.numbers_per_day {
            return Ok(Room::Never(OVER_NUMBERS_PER_DAY));
        }
        let d = day.to_be_bytes();
        let adding = entries.iter().filter(|(t, _)| t / DAY == day).count() as u64;
        if read(key(TAG_DAY_COUNT, origin, &[&d]))? + adding <= limits.numbers_per_day {
            continue;
        }
        // The day's numbers: from its index, or (not indexed yet, so no
        // more records than the limit) from its records.
        let (distinct, new) = if tree.contains_key(key(TAG_INDEXED, origin, &[&d]))? {
            let mut new = 0u64;
            for n in &numbers {
                if !tree.contains_key(key(TAG_NUMBER, origin, &[&d, n]))? {
                    new += 1;
                }
            }
            (read(key(TAG_DISTINCT, origin, &[&d]))?, new)
        } else {
            let mut held = std::collections::BTreeSet::new();
            for hour in day * 24..(day + 1) * 24 {
                for v in tree
                    .scan_prefix(key(TAG_HOUR, origin, &[&hour.to_be_bytes()]))
                    .values()
                {
                    held.insert(v?[..32].to_vec());
                }
            }
            let new = numbers
                .iter()
                .filter(|n| !held.contains(n.as_slice()))
                .count() as u64;
            (held.len() as u64, new)
        };
        if new > 0 && distinct + new > limits.numbers_per_day {
            let end = (day + 1) * DAY;
            if end <= now {
                return Ok(Room::Never(OVER_NUMBERS_PER_DAY));
            }
            wait = wait.max(end - now);
        }
    }
    for (hour, n) in hours {
        if n > limits.records_per_hour {
            return Ok(Room::Never(OVER_RECORDS_PER_HOUR));
        }
        let held = read(key(TAG_HOUR_COUNT, origin, &[&hour.to_be_bytes()]))?
            .saturating_sub(freed.get(&hour).copied().unwrap_or(0));
        if held + n > limits.records_per_hour {
            let end = (hour + 1) * HOUR;
            if end <= now {
                return Ok(Room::Never(OVER_RECORDS_PER_HOUR));
            }
            wait = wait.max(end - now);
        }
    }
    Ok(if wait == 0 {
        Room::Fits
    } else {
        Room::Wait(wait)
    })
}
