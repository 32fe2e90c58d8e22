//! # sightline-gateway
//!
//! What a messaging gateway needs to check senders against its Sightline
//! node's feed locally, at line rate: no async, no network, no store.
//!
//! - [`Filter`]: the compact filter `sightline feed pull` keeps up to date
//!   (a binary fuse filter of the number hashes the feed lists; false
//!   positives at [`Filter::FALSE_POSITIVE_RATE`], no false negatives).
//! - [`Checker`]: normalizes a sender to E.164, hashes it with the
//!   network's key (the HMAC of SPEC.md §5) and probes the filter.
//!
//! A hit is "a member reported it at the feed's band or above", up to the
//! false-positive rate: a gateway that blocks on hits confirms them with a
//! lookup (`GET /api/v1/lookup/{number}`), or accepts one wrong block in
//! 65,536 clean numbers.
//!
//! ```no_run
//! use sightline_gateway::{Check, Checker, Filter, HashKey};
//!
//! let key = HashKey::from_bytes([7; 32]); // network.toml's hash_key, decoded
//! let filter = Filter::from_bytes(&std::fs::read("feed.filter")?)?;
//! let checker = Checker::new(key, filter, Some("US"));
//! match checker.check("+1 (415) 555-0134") {
//!     Check::Listed(number) => println!("hold the message from {number}"),
//!     Check::Clear(_) => {}
//!     Check::NotANumber => {} // an alphanumeric sender id or a short code
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::{Deserialize, Serialize};
pub use sightline_protocol::{HashKey, NumberHash, E164};
use xorf::{BinaryFuse16, Filter as _};

/// The format name a filter file starts with.
pub const FORMAT: &str = "sightline-filter/1";

/// Why a filter cannot be read or built.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Not a filter file of this format.
    #[error("not a Sightline filter ({0})")]
    Format(String),
    /// The filter could not be built from the keys.
    #[error("cannot build the filter: {0}")]
    Build(&'static str),
}

/// The file: CBOR of this.
#[derive(Serialize, Deserialize)]
struct FilterFile<F> {
    format: String,
    network: String,
    min_band: String,
    generated_at: u64,
    numbers: u64,
    fuse: Option<F>,
}

/// A binary fuse filter's fields as its CBOR holds them, to check before
/// probing: `xorf` indexes the fingerprints with the descriptor unchecked.
#[derive(Deserialize)]
struct FuseParts {
    segment_length: u32,
    segment_length_mask: u32,
    segment_count_length: u32,
    fingerprints: Vec<u16>,
}

impl FuseParts {
    /// Whether every index a probe computes (below the segment count
    /// length, plus two segments) falls inside the fingerprints.
    fn consistent(&self) -> bool {
        let len = self.segment_length;
        len.is_power_of_two()
            && self.segment_length_mask == len - 1
            && self.segment_count_length.is_multiple_of(len)
            && self
                .segment_count_length
                .checked_add(2 * len)
                .and_then(|end| usize::try_from(end).ok())
                .is_some_and(|end| end <= self.fingerprints.len())
    }
}

/// The compact filter of the numbers a feed lists.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The network id the hashes belong to.
    pub network: String,
    /// The feed's band (`high`, `medium`, `low`).
    pub min_band: String,
    /// When the feed was read, unix seconds.
    pub generated_at: u64,
    /// Numbers in it.
    pub numbers: u64,
    /// `None` when it holds no number.
    fuse: Option<BinaryFuse16>,
}

impl Filter {
    /// The chance that a number the feed does not list is reported as
    /// listed: 16-bit fingerprints, 2^-16 (about 0.0015 %).
    pub const FALSE_POSITIVE_RATE: f64 = 1.0 / 65_536.0;

    /// The filter key of a number hash: its first 8 bytes, big-endian (the
    /// hash is uniform, so these are too).
    pub fn key(hash: &NumberHash) -> u64 {
        let bytes = hash.as_bytes();
        u64::from_be_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
        ])
    }

    /// Builds a filter of `keys` ([`Filter::key`] of each listed number;
    /// duplicates are fine).
    ///
    /// # Errors
    /// [`FilterError::Build`] if the construction fails (it retries seeds
    /// itself; this does not happen for distinct keys).
    pub fn build(
        network: &str,
        min_band: &str,
        generated_at: u64,
        keys: &[u64],
    ) -> Result<Self, FilterError> {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        let fuse = if keys.is_empty() {
            None
        } else {
            Some(BinaryFuse16::try_from(&keys).map_err(FilterError::Build)?)
        };
        Ok(Filter {
            network: network.to_owned(),
            min_band: min_band.to_owned(),
            generated_at,
            numbers: keys.len() as u64,
            fuse,
        })
    }

    /// Whether the feed lists the number (false positives at
    /// [`Filter::FALSE_POSITIVE_RATE`]).
    pub fn contains(&self, hash: &NumberHash) -> bool {
        self.fuse
            .as_ref()
            .is_some_and(|f| f.contains(&Self::key(hash)))
    }

    /// The file's bytes (CBOR; see [`FORMAT`]).
    ///
    /// # Panics
    /// Never: writing CBOR to memory cannot fail.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = FilterFile::<BinaryFuse16> {
            format: FORMAT.to_owned(),
            network: self.network.clone(),
            min_band: self.min_band.clone(),
            generated_at: self.generated_at,
            numbers: self.numbers,
            fuse: self.fuse.clone(),
        };
        let mut out = Vec::new();
        ciborium::into_writer(&file, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// Reads a filter file.
    ///
    /// # Errors
    /// [`FilterError::Format`] for anything but a filter of [`FORMAT`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FilterError> {
        let bad = |e: &dyn std::fmt::Display| FilterError::Format(e.to_string());
        let file: FilterFile<ciborium::Value> =
            ciborium::from_reader(bytes).map_err(|e| bad(&e))?;
        if file.format != FORMAT {
            return Err(FilterError::Format(format!(
                "format {:?}, expected {FORMAT:?}",
                file.format
            )));
        }
        let fuse = match file.fuse {
            None => None,
            Some(value) => {
                let parts: FuseParts = value.deserialized().map_err(|e| bad(&e))?;
                if !parts.consistent() {
                    return Err(FilterError::Format(
                        "the filter's segments do not fit its fingerprints".to_owned(),
                    ));
                }
                Some(value.deserialized::<BinaryFuse16>().map_err(|e| bad(&e))?)
            }
        };
        Ok(Filter {
            network: file.network,
            min_band: file.min_band,
            generated_at: file.generated_at,
            numbers: file.numbers,
            fuse,
        })
    }
}

/// What [`Checker::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The feed lists the number.
    Listed(E164),
    /// It does not.
    Clear(E164),
    /// The sender is not a phone number (an alphanumeric sender id, a
    /// short code, a malformed number).
    NotANumber,
}

/// Checks senders against a filter.
#[derive(Debug, Clone)]
pub struct Checker {
    key: HashKey,
    filter: Filter,
    region: Option<String>,
}

impl Checker {
    /// A checker with the network's hash key, the filter, and the region
    /// national numbers are read in (ISO 3166 alpha-2, e.g. `US`).
    pub fn new(key: HashKey, filter: Filter, region: Option<&str>) -> Self {
        Checker {
            key,
            filter,
            region: region.map(str::to_owned),
        }
    }

    /// The filter in use.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// A sender as the node normalizes it: E.164 as given when it is
    /// already canonical (the fast path), else the full parse.
    pub fn normalize(&self, sender: &str) -> Option<E164> {
        sightline_protocol::e164_as_given(sender).or_else(|| {
            sightline_protocol::parse_number(sender, self.region.as_deref())
                .ok()
                .map(|p| p.e164)
        })
    }

    /// Normalizes, hashes and probes.
    pub fn check(&self, sender: &str) -> Check {
        let Some(number) = self.normalize(sender) else {
            return Check::NotANumber;
        };
        if self.filter.contains(&self.key.number_hash(&number)) {
            Check::Listed(number)
        } else {
            Check::Clear(number)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> E164 {
        sightline_protocol::parse_number(text, None).unwrap().e164
    }

    #[test]
    fn a_filter_finds_what_it_holds_and_reads_back() {
        let key = HashKey::from_bytes([9; 32]);
        let listed = ["+14155550134", "+442079460018"];
        let keys: Vec<u64> = listed
            .iter()
            .map(|n| Filter::key(&key.number_hash(&number(n))))
            .collect();
        let filter = Filter::build("test-net", "high", 1_796_601_600, &keys).unwrap();
        let read = Filter::from_bytes(&filter.to_bytes()).unwrap();
        assert_eq!((read.numbers, read.network.as_str()), (2, "test-net"));
        let checker = Checker::new(key.clone(), read, Some("US"));
        assert_eq!(
            checker.check("+1 (415) 555-0134"),
            Check::Listed(number("+14155550134"))
        );
        assert_eq!(
            checker.check("(415) 555-0134"),
            Check::Listed(number("+14155550134"))
        );
        assert_eq!(
            checker.check("+442079460018"),
            Check::Listed(number("+442079460018"))
        );
        // A trunk prefix written after the code takes the full parse.
        assert_eq!(
            checker.check("+44 020 7946 0018"),
            Check::Listed(number("+442079460018"))
        );
        assert_eq!(
            checker.check("+14155550135"),
            Check::Clear(number("+14155550135"))
        );
        assert_eq!(checker.check("ACME-BANK"), Check::NotANumber);
        assert!(Filter::from_bytes(b"junk").is_err());
        // A damaged descriptor is refused, not probed out of bounds.
        let mut file: FilterFile<ciborium::Value> =
            ciborium::from_reader(filter.to_bytes().as_slice()).unwrap();
        if let Some(ciborium::Value::Map(fields)) = &mut file.fuse {
            for (k, v) in fields.iter_mut() {
                if k.as_text() == Some("segment_count_length") {
                    *v = ciborium::Value::Integer(1_000_000.into());
                }
            }
        }
        let mut damaged = Vec::new();
        ciborium::into_writer(&file, &mut damaged).unwrap();
        assert!(Filter::from_bytes(&damaged).is_err());
        let empty = Filter::build("test-net", "high", 0, &[]).unwrap();
        assert!(!Filter::from_bytes(&empty.to_bytes())
            .unwrap()
            .contains(&key.number_hash(&number("+14155550134"))));
    }
}
