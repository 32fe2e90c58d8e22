//! Privacy hashing: numbers and 100-number blocks under the network's secret key.
//!
//! `number = HMAC-SHA256(hash_key, "sightline/number/v1" ‖ E.164)` and
//! `block = HMAC-SHA256(hash_key, "sightline/block/v1" ‖ E.164 minus its last two digits)`.
//! Members share the key, so they can match reports; outsiders cannot tell
//! which number a hash stands for. See SPEC.md §3 and SECURITY.md.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::phone::E164;

/// Domain tag prepended to the E.164 string for number hashes.
pub const NUMBER_DOMAIN: &[u8] = b"sightline/number/v1";
/// Domain tag prepended to the block prefix for block hashes.
pub const BLOCK_DOMAIN: &[u8] = b"sightline/block/v1";

/// The network's 32-byte privacy hash key. Secret to members.
///
/// Zeroized on drop; `Debug` never prints it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HashKey([u8; 32]);

impl HashKey {
    /// Wraps 32 key bytes (from `network.toml`, base64-decoded by the caller).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        HashKey(bytes)
    }

    /// The key bytes, for writing `network.toml`. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The privacy hash of one number.
    pub fn number_hash(&self, number: &E164) -> NumberHash {
        NumberHash(self.mac(NUMBER_DOMAIN, number.as_str().as_bytes()))
    }

    /// The privacy hash of the 100-number block the number belongs to.
    pub fn block_hash(&self, number: &E164) -> BlockHash {
        BlockHash(self.mac(BLOCK_DOMAIN, number.block_prefix().as_bytes()))
    }

    /// A link token's HMAC (SPEC.md §13.1): the same construction as a
    /// number's, under the link kind's own domain tag.
    pub(crate) fn link_mac(&self, domain: &[u8], text: &str) -> [u8; 32] {
        self.mac(domain, text.as_bytes())
    }

    fn mac(&self, domain: &[u8], text: &[u8]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(domain);
        mac.update(text);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(<redacted>)")
    }
}

macro_rules! digest_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Eq)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps 32 bytes read from a record or the store.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The digest bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lower-case hex, as used in SPEC.md, logs and the API.
            pub fn to_hex(&self) -> String {
                crate::hex_lower(&self.0)
            }

            /// The digest [`Self::to_hex`] wrote (64 hex digits, either
            /// case); `None` for anything else.
            pub fn from_hex(text: &str) -> Option<Self> {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(text, &mut bytes).ok()?;
                Some($name(bytes))
            }
        }

        /// Constant-time, so that comparing a guess against a stored hash
        /// does not leak how many leading bytes matched.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

digest_type!(
    /// HMAC of one E.164 number under the network hash key.
    NumberHash
);
digest_type!(
    /// HMAC of a 100-number block (E.164 minus its last two digits).
    BlockHash
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::parse_number;

    fn key(byte: u8) -> HashKey {
        HashKey::from_bytes([byte; 32])
    }

    #[test]
    fn same_number_same_hash_under_one_key_only() {
        let a = parse_number("+1 415 555 0134", None).unwrap().e164;
        let b = parse_number("(415) 555-0134", Some("US")).unwrap().e164;
        assert_eq!(key(1).number_hash(&a), key(1).number_hash(&b));
        assert_ne!(key(1).number_hash(&a), key(2).number_hash(&a));
    }

    #[test]
    fn numbers_in_one_block_share_the_block_hash() {
        let a = parse_number("+1 415 555 0134", None).unwrap().e164;
        let b = parse_number("+1 415 555 0199", None).unwrap().e164;
        let c = parse_number("+1 415 555 0234", None).unwrap().e164;
        let k = key(7);
        assert_eq!(k.block_hash(&a), k.block_hash(&b));
        assert_ne!(k.block_hash(&a), k.block_hash(&c));
        assert_ne!(k.number_hash(&a), k.number_hash(&b));
    }

    #[test]
    fn number_and_block_domains_are_separated() {
        // A 10-digit E.164 block prefix could equal another number's E.164;
        // the domain tags keep the two hash spaces apart.
        let number = parse_number("+44 20 7946 0958", None).unwrap().e164;
        let k = key(3);
        assert_ne!(
            k.number_hash(&number).as_bytes(),
            k.block_hash(&number).as_bytes()
        );
        let manual = k.mac(NUMBER_DOMAIN, number.block_prefix().as_bytes());
        assert_ne!(&manual, k.block_hash(&number).as_bytes());
    }

    #[test]
    fn key_debug_is_redacted() {
        assert_eq!(format!("{:?}", key(0xab)), "HashKey(<redacted>)");
    }

    #[test]
    fn matches_independent_hmac() {
        // HMAC-SHA256 with key 0x0b*32 over "sightline/number/v1+14155550134",
        // computed independently with Python's hmac module.
        let number = parse_number("+14155550134", None).unwrap().e164;
        let got = HashKey::from_bytes([0x0b; 32])
            .number_hash(&number)
            .to_hex();
        assert_eq!(got, EXPECTED_0B_NUMBER_HASH);
    }

    const EXPECTED_0B_NUMBER_HASH: &str =
        "c2aab06c403b430afa85051a4320ce266876ef6c619e5ac4cfe715ddba658df9";
}
