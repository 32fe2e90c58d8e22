//! The link index (record version 2, SPEC.md §13): which current reports
//! carry a link token, and which tokens each number's current reports
//! carry. Written and removed with the record, in its transaction, so it
//! always describes exactly the held reports.
//!
//! One tree, two key families:
//!
//! - token: `0x00 ‖ entry ‖ origin ‖ number` → `block ‖ last_seen(BE) ‖
//!   verdict`, for every link but a script; a script is indexed under each
//!   of its four 16-bit bands, `0x00 ‖ 0x02 ‖ band ‖ bits(BE) ‖ origin ‖
//!   number` → the same ‖ fingerprint(BE), so that fingerprints within
//!   [`SCRIPT_DISTANCE`] bits share at least one band key (pigeonhole).
//!   Keyed by origin before number, so that a reader takes each origin's
//!   share of a token on its own: what one member plants under a token is
//!   never read on the way to another member's entries;
//! - number: `0x01 ‖ number ‖ origin` → `block ‖ last_seen(BE) ‖ verdict ‖
//!   entries` (the record's link entries, concatenated).

use sightline_protocol::links::hamming;
use sightline_protocol::{BlockHash, Link, LinkKind, NumberHash, OriginId, Sighting, Verdict};

use super::quota::Ov;
use super::{cat, Store, StoreError};
type Res<T> = Result<T, sled::transaction::UnabortableTransactionError>;

const TOKEN: u8 = 0;
const NUMBER: u8 = 1;
/// Script fingerprints at most this many bits apart are the same script.
pub const SCRIPT_DISTANCE: u32 = 3;
const BANDS: u8 = 4;
/// block ‖ `last_seen` ‖ verdict.
const HEAD: usize = 41;

/// One held report as the link index (or the block index) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linked {
    /// The number.
    pub number: NumberHash,
    /// Its 100-block.
    pub block: BlockHash,
    /// The reporting origin.
    pub origin: OriginId,
    /// The report's `last_seen`.
    pub last_seen: u64,
    /// Whether the report says malicious (not a false positive or a withdrawal).
    pub malicious: bool,
}

impl Linked {
    /// Number, origin: the order of the index's keys.
    fn sort_key(&self) -> ([u8; 32], [u8; 32]) {
        (*self.number.as_bytes(), *self.origin.as_bytes())
    }

    /// From an index key's number and origin and a value's head
    /// (block ‖ `last_seen` ‖ verdict).
    fn read(number: &[u8], origin: &[u8], value: &[u8]) -> Result<Self, StoreError> {
        if value.len() < HEAD {
            return Err(StoreError::Corrupt("link index"));
        }
        Self::of(number, origin, &value[..32], &value[32..HEAD])
    }

    /// From its parts: the 32-byte number, origin and block, then
    /// `last_seen` ‖ verdict (9 bytes, as both the link index and `current`
    /// keep them).
    fn of(number: &[u8], origin: &[u8], block: &[u8], seen: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("link index");
        Ok(Linked {
            number: NumberHash::from_bytes(number.try_into().map_err(|_| bad())?),
            origin: OriginId::from_bytes(origin.try_into().map_err(|_| bad())?),
            block: BlockHash::from_bytes(block.try_into().map_err(|_| bad())?),
            last_seen: super::be_u64(seen),
            malicious: seen[8] == Verdict::Malicious.code(),
        })
    }
}

/// The token-family prefixes a link is indexed under.
fn token_prefixes(link: &Link) -> Vec<Vec<u8>> {
    match link {
        Link::Script(fp) => (0..BANDS)
            .map(|band| {
                let bits = fp.to_be_bytes();
                let at = usize::from(band) * 2;
                let mut key = vec![TOKEN, link.kind().code(), band];
                key.extend_from_slice(&bits[at..at + 2]);
                key
            })
            .collect(),
        _ => vec![[&[TOKEN][..], &link.encode()].concat()],
    }
}

fn head(s: &Sighting) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEAD + 8);
    v.extend_from_slice(s.block.as_bytes());
    v.extend_from_slice(&s.last_seen.to_be_bytes());
    v.push(s.verdict.code());
    v
}

fn number_key(number: &NumberHash, origin: &OriginId) -> [u8; 65] {
    cat(&[&[NUMBER], number.as_bytes(), origin.as_bytes()])
}

/// Indexes a record's links (nothing for a record without any).
pub(super) fn index(tree: &Ov<'_>, s: &Sighting) -> Res<()> {
    each_key(s, |key, value| tree.insert(key, value).map(drop))
}

/// Removes what [`index`] wrote for the record.
pub(super) fn unindex(tree: &Ov<'_>, s: &Sighting) -> Res<()> {
    each_key(s, |key, _| tree.remove(key).map(drop))
}

fn each_key(s: &Sighting, mut f: impl FnMut(Vec<u8>, Vec<u8>) -> Res<()>) -> Res<()> {
    let Some(links) = s.links.as_deref().filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let head = head(s);
    let suffix = [s.origin.as_bytes().as_slice(), s.number.as_bytes()].concat();
    let mut entries = head.clone();
    for link in links {
        let mut value = head.clone();
        if let Link::Script(fp) = link {
            value.extend_from_slice(&fp.to_be_bytes());
        }
        for prefix in token_prefixes(link) {
            f([prefix.as_slice(), &suffix].concat(), value.clone())?;
        }
        entries.extend_from_slice(&link.encode());
    }
    f(number_key(&s.number, &s.origin).to_vec(), entries)
}

/// What a scan of one origin's share of a token found.
#[derive(Debug, Clone, Default)]
pub struct Sharing {
    /// The origin's held reports carrying the token (for a script: a
    /// fingerprint within [`SCRIPT_DISTANCE`] bits), by number.
    pub reports: Vec<Linked>,
    /// The origin carries it on more reports than the limit: too common
    /// for its word on this token to link anything.
    pub too_common: bool,
    /// Index entries read.
    pub read: usize,
}

impl Store {
    /// The link entries of each held report of `number` that has any.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn number_links(
        &self,
        number: &NumberHash,
    ) -> Result<Vec<(Linked, Vec<Link>)>, StoreError> {
        self.with(|h| {
            let mut out = Vec::new();
            let prefix: [u8; 33] = cat(&[&[NUMBER], number.as_bytes()]);
            for entry in h.links.scan_prefix(prefix) {
                let (key, value) = entry?;
                if key.len() != 65 {
                    return Err(StoreError::Corrupt("link index"));
                }
                let linked = Linked::read(&key[1..33], &key[33..65], &value)?;
                out.push((linked, decode_entries(&value[HEAD..])?));
            }
            Ok(out)
        })
    }

    /// `origin`'s held reports that carry `link`, reading at most `limit` + 1
    /// index entries per key (a script reads four band keys): with more,
    /// [`Sharing::too_common`] is set and the reports are not all there.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn sharing(
        &self,
        link: &Link,
        origin: &OriginId,
        limit: usize,
    ) -> Result<Sharing, StoreError> {
        self.with(|h| {
            let mut out = Sharing::default();
            for prefix in token_prefixes(link) {
                let prefix = [prefix.as_slice(), origin.as_bytes()].concat();
                let mut here = 0;
                for entry in h.links.scan_prefix(&prefix) {
                    let (key, value) = entry?;
                    out.read += 1;
                    here += 1;
                    if here > limit {
                        out.too_common = true;
                        break;
                    }
                    let at = prefix.len() - 32;
                    if key.len() != at + 64 {
                        return Err(StoreError::Corrupt("link index"));
                    }
                    if let Link::Script(fp) = link {
                        if value.len() != HEAD + 8
                            || hamming(*fp, super::be_u64(&value[HEAD..])) > SCRIPT_DISTANCE
                        {
                            continue;
                        }
                    }
                    out.reports
                        .push(Linked::read(&key[at + 32..], &key[at..at + 32], &value)?);
                }
            }
            out.reports.sort_unstable_by_key(Linked::sort_key);
            out.reports.dedup_by_key(|l| l.sort_key());
            Ok(out)
        })
    }

    /// The held reports of a 100-block (marks skipped), reading at most
    /// `limit` entries; whether there were more.
    ///
    /// # Errors
    /// sled errors or corruption.
    pub fn block_reports(
        &self,
        block: &BlockHash,
        limit: usize,
    ) -> Result<(Vec<Linked>, bool), StoreError> {
        self.with(|h| {
            let mut out = Vec::new();
            for (read, entry) in h.current.scan_prefix(block.as_bytes()).enumerate() {
                if read >= limit {
                    return Ok((out, true));
                }
                let (key, value) = entry?;
                if key.len() != 96 || !super::current::is_valid(&value) {
                    return Err(StoreError::Corrupt("current"));
                }
                if super::is_mark(&value) {
                    continue;
                }
                out.push(Linked::of(
                    &key[32..64],
                    &key[64..96],
                    block.as_bytes(),
                    &value[8..17],
                )?);
            }
            Ok((out, false))
        })
    }
}

/// Splits concatenated link entries (each sized by its kind code).
fn decode_entries(mut bytes: &[u8]) -> Result<Vec<Link>, StoreError> {
    let bad = || StoreError::Corrupt("link index");
    let mut out = Vec::new();
    while let Some(&code) = bytes.first() {
        let len = if code == LinkKind::Script.code() {
            9
        } else {
            33
        };
        if bytes.len() < len {
            return Err(bad());
        }
        out.push(Link::decode(&bytes[..len]).map_err(|_| bad())?);
        bytes = &bytes[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::*;
    use sightline_protocol::{SignedSighting, SigningKey};

    fn linked(
        key: &SigningKey,
        seq: u64,
        number: u8,
        verdict: Verdict,
        links: &[Link],
    ) -> SignedSighting {
        let mut s = record(key, seq, number, verdict, 1_800_000_000 + seq)
            .sighting()
            .clone();
        s.links = Some(links.to_vec());
        s.sign(key).unwrap()
    }

    #[test]
    fn the_index_holds_exactly_the_held_reports_links() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (bank, carrier) = (
            SigningKey::from_seed(&[1; 32]),
            SigningKey::from_seed(&[2; 32]),
        );
        let domain = Link::UrlDomain([7; 32]);
        let script = Link::Script(0x0123_4567_89ab_cdef);
        let near = Link::Script(0x0123_4567_89ab_cdee);
        let far = Link::Script(!0x0123_4567_89ab_cdef);
        let purge = 1_900_000_000;
        store
            .insert(
                &linked(&bank, 1, 11, Verdict::Malicious, &[domain, script]),
                purge,
            )
            .unwrap();
        store
            .insert(
                &linked(&carrier, 1, 22, Verdict::Malicious, &[domain, near]),
                purge,
            )
            .unwrap();
        store
            .insert(&linked(&carrier, 2, 33, Verdict::Malicious, &[far]), purge)
            .unwrap();
        let numbers = |link: &Link, key: &SigningKey| -> Vec<u8> {
            store
                .sharing(link, &key.origin(), 10)
                .unwrap()
                .reports
                .iter()
                .map(|r| r.number.as_bytes()[0])
                .collect()
        };
        assert_eq!(numbers(&domain, &bank), [11]);
        assert_eq!(numbers(&domain, &carrier), [22]);
        // Within three bits, under any of the four bands; not the far one.
        assert_eq!(numbers(&script, &carrier), [22]);
        assert_eq!(numbers(&far, &bank), Vec::<u8>::new());
        let held = store
            .number_links(&NumberHash::from_bytes([22; 32]))
            .unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].1, vec![domain, near]);
        assert_eq!(held[0].0.block, BlockHash::from_bytes([2; 32]));
        // A later report of the number without links supersedes: its links go.
        store
            .insert(
                &record(&carrier, 3, 22, Verdict::Withdrawn, 1_800_000_100),
                purge,
            )
            .unwrap();
        assert!(store
            .number_links(&NumberHash::from_bytes([22; 32]))
            .unwrap()
            .is_empty());
        assert_eq!(numbers(&domain, &carrier), Vec::<u8>::new());
        // A later linked report replaces the links, verdict and all.
        store
            .insert(
                &linked(&bank, 2, 11, Verdict::FalsePositive, &[script]),
                purge,
            )
            .unwrap();
        let held = store
            .number_links(&NumberHash::from_bytes([11; 32]))
            .unwrap();
        assert_eq!((held.len(), held[0].0.malicious), (1, false));
        assert_eq!(held[0].1, vec![script]);
        assert!(store
            .sharing(&domain, &bank.origin(), 10)
            .unwrap()
            .reports
            .is_empty());
        // Purged at retention: nothing of it remains in the index.
        store.purge(2_000_000_000, &bank.origin(), 1).unwrap();
        let h = store.handles().unwrap();
        assert_eq!(
            h.links.len(),
            0,
            "{:?}",
            h.links.iter().keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn one_origins_flood_of_a_token_is_too_common_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (mallory, bank) = (
            SigningKey::from_seed(&[3; 32]),
            SigningKey::from_seed(&[1; 32]),
        );
        let tag = Link::Campaign([9; 32]);
        for i in 0..30u8 {
            store
                .insert(
                    &linked(&mallory, u64::from(i) + 1, i, Verdict::Malicious, &[tag]),
                    u64::MAX,
                )
                .unwrap();
        }
        store
            .insert(&linked(&bank, 1, 200, Verdict::Malicious, &[tag]), u64::MAX)
            .unwrap();
        let flood = store.sharing(&tag, &mallory.origin(), 10).unwrap();
        assert!(flood.too_common);
        assert_eq!(flood.read, 11);
        let bank_share = store.sharing(&tag, &bank.origin(), 10).unwrap();
        assert!(!bank_share.too_common);
        assert_eq!(bank_share.read, 1);
    }
}
