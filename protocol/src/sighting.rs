//! The sighting: *organization O saw number N, in this role, this often,
//! between these times, with this confidence* — its fields, their ranges and
//! the enumerations with their wire codes (SPEC.md §4).

use std::fmt;

use crate::hash::{BlockHash, NumberHash};
use crate::links::Link;

pub use crate::fields::{
    Channel, FieldError, Kind, LineType, Role, UnknownName, Verdict, MAX_BRAND_BYTES,
    MAX_NETWORK_ID_BYTES, MAX_TIMESTAMP,
};

/// Record version 1 (CBOR key 0): no links.
pub const VERSION: u64 = 1;
/// Record version 2 (SPEC.md §13): version 1 plus optional link tokens.
pub const VERSION_2: u64 = 2;
/// A record's relation to the clock of the node that receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// A timestamp lies further in the future than the allowed clock skew.
    #[error("{field} is {ahead} s in the future (allowed skew {max_skew} s)")]
    FromTheFuture {
        /// Field name as in SPEC.md.
        field: &'static str,
        /// Seconds ahead of the receiver's clock.
        ahead: u64,
        /// The receiver's tolerance.
        max_skew: u64,
    },
    /// The record has expired.
    #[error("expired {0} s ago")]
    Expired(u64),
}

/// The sharing community's short id: goes into topic names and every record,
/// so a record signed for one network is never valid in another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(String);

impl NetworkId {
    /// Validates a network id.
    ///
    /// # Errors
    /// [`FieldError::NetworkId`] unless it is 1–32 bytes of `a-z0-9-` not starting with `-`.
    pub fn new(id: &str) -> Result<Self, FieldError> {
        let ok = !id.is_empty()
            && id.len() <= MAX_NETWORK_ID_BYTES
            && !id.starts_with('-')
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(NetworkId(id.to_owned()))
        } else {
            Err(FieldError::NetworkId)
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The signing node's identity: its 32-byte ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginId([u8; 32]);

impl OriginId {
    /// Wraps public-key bytes. Whether they form a usable key is checked at
    /// verification time.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        OriginId(bytes)
    }

    /// The public-key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        crate::hex_lower(&self.0)
    }
}

impl fmt::Debug for OriginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OriginId({})", self.to_hex())
    }
}

impl fmt::Display for OriginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// All fields of a sighting except the signature.
///
/// A plain value: construct it, then [`Sighting::sign`] it (which validates),
/// or receive it from [`crate::UnverifiedSighting::decode`] (which validates
/// too). Only a [`crate::SignedSighting`] is trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// Network the record belongs to; it is signed, so records cannot be
    /// replayed into another community.
    pub network: NetworkId,
    /// Public key of the node that signed it.
    pub origin: OriginId,
    /// Per-origin counter, never reused; a higher seq for the same number
    /// supersedes the origin's earlier report.
    pub seq: u64,
    /// Privacy hash of the number, never the number itself.
    pub number: NumberHash,
    /// Privacy hash of the number's 100-block, to see rotation through a block.
    pub block: BlockHash,
    /// Country calling code (not secret: a country has millions of numbers).
    pub cc: u16,
    /// Line type from the numbering plan.
    pub line: LineType,
    /// What the number was used for.
    pub kind: Kind,
    /// Malicious, false positive, or withdrawn.
    pub verdict: Verdict,
    /// How it reached the victim.
    pub channel: Channel,
    /// Impersonated brand, short free text, if known.
    pub brand: Option<String>,
    /// The origin's confidence, 0–100.
    pub confidence: u8,
    /// How many times the origin observed it.
    pub count: u32,
    /// First observation, unix seconds.
    pub first_seen: u64,
    /// Last observation, unix seconds.
    pub last_seen: u64,
    /// When receivers should drop the report, unix seconds.
    pub expires: Option<u64>,
    /// `None`: a version-1 record. `Some`: a version-2 record with these
    /// link tokens (sorted, distinct, at most [`crate::links::MAX_LINKS`];
    /// an empty list is encoded without key 18).
    pub links: Option<Vec<Link>>,
    /// How the origin uses a number it protects: present exactly when the
    /// verdict is `protected` (version 2, SPEC.md §13.5).
    pub role: Option<Role>,
}

impl Sighting {
    /// The record version these fields encode as: 2 with links (even an
    /// empty list), else 1.
    pub const fn version(&self) -> u64 {
        if self.links.is_some() {
            VERSION_2
        } else {
            VERSION
        }
    }

    /// Checks every field's range (SPEC.md §4). Decoding and signing both call it.
    ///
    /// # Errors
    /// The first [`FieldError`] found, in CBOR key order.
    pub fn validate(&self) -> Result<(), FieldError> {
        // network and origin are valid by construction / checked at verify.
        if self.seq == 0 {
            return Err(FieldError::SeqZero);
        }
        if !(1..=999).contains(&self.cc) {
            return Err(FieldError::CountryCode(self.cc.into()));
        }
        if let Some(brand) = &self.brand {
            validate_brand(brand)?;
        }
        if self.confidence > 100 {
            return Err(FieldError::Confidence(self.confidence.into()));
        }
        if self.count == 0 {
            return Err(FieldError::Count(0));
        }
        for (field, value) in [
            ("first_seen", self.first_seen),
            ("last_seen", self.last_seen),
        ]
        .into_iter()
        .chain(self.expires.map(|e| ("expires", e)))
        {
            if value > MAX_TIMESTAMP {
                return Err(FieldError::Timestamp { field, value });
            }
        }
        if self.last_seen < self.first_seen {
            return Err(FieldError::SeenOrder {
                first_seen: self.first_seen,
                last_seen: self.last_seen,
            });
        }
        if let Some(expires) = self.expires {
            if expires <= self.last_seen {
                return Err(FieldError::Expiry {
                    last_seen: self.last_seen,
                    expires,
                });
            }
        }
        if (self.verdict == Verdict::Protected) != self.role.is_some()
            || (self.role.is_some() && self.links.is_none())
        {
            return Err(FieldError::Protection);
        }
        match self.links.as_deref() {
            None | Some([]) => Ok(()),
            Some(links) => crate::links::check(links).map_err(FieldError::Links),
        }
    }

    /// Checks the record against the receiver's clock: nothing may lie more
    /// than `max_skew` seconds in the future, and an expired record is stale.
    ///
    /// # Errors
    /// [`TimeError`] saying which timestamp is off and by how much.
    pub fn check_time(&self, now: u64, max_skew: u64) -> Result<(), TimeError> {
        for (field, value) in [
            ("first_seen", self.first_seen),
            ("last_seen", self.last_seen),
        ] {
            let ahead = value.saturating_sub(now);
            if ahead > max_skew {
                return Err(TimeError::FromTheFuture {
                    field,
                    ahead,
                    max_skew,
                });
            }
        }
        match self.expires {
            Some(expires) if expires <= now => Err(TimeError::Expired(now - expires)),
            _ => Ok(()),
        }
    }
}

/// Brand rules: 1–64 bytes of UTF-8, no control characters (they would end
/// up in analysts' terminals and logs).
pub(crate) fn validate_brand(brand: &str) -> Result<(), FieldError> {
    if brand.is_empty() || brand.len() > MAX_BRAND_BYTES || brand.chars().any(char::is_control) {
        Err(FieldError::Brand)
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example() -> Sighting {
        Sighting {
            network: NetworkId::new("example-isac").unwrap(),
            origin: OriginId::from_bytes([9; 32]),
            seq: 1,
            number: NumberHash::from_bytes([1; 32]),
            block: BlockHash::from_bytes([2; 32]),
            cc: 1,
            line: LineType::FixedOrMobile,
            kind: Kind::Smishing,
            verdict: Verdict::Malicious,
            channel: Channel::Sms,
            brand: Some("Example Bank".into()),
            confidence: 80,
            count: 3,
            first_seen: 1_700_000_000,
            last_seen: 1_700_003_600,
            expires: Some(1_702_000_000),
            links: None,
            role: None,
        }
    }

    #[test]
    fn example_is_valid() {
        example().validate().unwrap();
    }

    #[test]
    fn every_range_rule_rejects() {
        type Case = (fn(&mut Sighting), FieldError);
        let cases: Vec<Case> = vec![
            (|s| s.seq = 0, FieldError::SeqZero),
            (|s| s.cc = 0, FieldError::CountryCode(0)),
            (|s| s.cc = 1000, FieldError::CountryCode(1000)),
            (|s| s.brand = Some(String::new()), FieldError::Brand),
            (|s| s.brand = Some("x".repeat(65)), FieldError::Brand),
            (
                |s| s.brand = Some("Bank\u{1b}[31m".into()),
                FieldError::Brand,
            ),
            (|s| s.confidence = 101, FieldError::Confidence(101)),
            (|s| s.count = 0, FieldError::Count(0)),
            (
                |s| s.last_seen = MAX_TIMESTAMP + 1,
                FieldError::Timestamp {
                    field: "last_seen",
                    value: MAX_TIMESTAMP + 1,
                },
            ),
            (
                |s| s.last_seen = s.first_seen - 1,
                FieldError::SeenOrder {
                    first_seen: 1_700_000_000,
                    last_seen: 1_699_999_999,
                },
            ),
            (
                |s| s.expires = Some(s.last_seen),
                FieldError::Expiry {
                    last_seen: 1_700_003_600,
                    expires: 1_700_003_600,
                },
            ),
        ];
        for (mutate, expected) in cases {
            let mut s = example();
            mutate(&mut s);
            assert_eq!(s.validate(), Err(expected));
        }
    }

    #[test]
    fn brand_limits_are_in_bytes() {
        let mut s = example();
        s.brand = Some("é".repeat(32)); // 64 bytes
        s.validate().unwrap();
        s.brand = Some("é".repeat(33)); // 66 bytes
        assert_eq!(s.validate(), Err(FieldError::Brand));
    }

    #[test]
    fn network_ids() {
        for ok in ["a", "example-isac", "bank-isac-2026", &"a".repeat(32)] {
            NetworkId::new(ok).unwrap();
        }
        for bad in [
            "",
            "-x",
            "UPPER",
            "with space",
            "dot.ted",
            &"a".repeat(33),
            "é",
        ] {
            assert_eq!(NetworkId::new(bad), Err(FieldError::NetworkId), "{bad:?}");
        }
    }

    #[test]
    fn clock_checks() {
        let s = example();
        s.check_time(1_700_003_600, 0).unwrap();
        s.check_time(1_700_003_000, 600).unwrap();
        assert_eq!(
            s.check_time(1_700_003_000, 599),
            Err(TimeError::FromTheFuture {
                field: "last_seen",
                ahead: 600,
                max_skew: 599
            })
        );
        assert_eq!(s.check_time(1_702_000_010, 0), Err(TimeError::Expired(10)));
    }

    #[test]
    fn enum_names_round_trip_and_reject_unknown() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), *k);
            assert_eq!(Kind::from_code(k.code().into()).unwrap(), *k);
        }
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>().unwrap(), *v);
        }
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), *c);
        }
        for l in LineType::ALL {
            assert_eq!(LineType::from_code(l.code().into()).unwrap(), *l);
        }
        assert_eq!(" SIM-Swap ".parse::<Kind>().unwrap(), Kind::SimSwap);
        let err = "phishing".parse::<Kind>().unwrap_err();
        assert!(err.to_string().contains("smishing, vishing"), "{err}");
        assert_eq!(
            Verdict::from_code(4),
            Err(FieldError::UnknownEnum {
                field: "verdict",
                value: 4
            })
        );
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
            assert_eq!(Role::from_code(r.code().into()).unwrap(), *r);
        }
    }
}
