//! # sightline-protocol
//!
//! The wire protocol every Sightline node speaks, with no I/O: no async
//! runtime, network, storage or web crate may be added here (ARCHITECTURE.md).
//! SPEC.md in this crate is the normative description; this crate is its
//! reference implementation, checked against `test-vectors/sightings.json`.
//!
//! Map of the crate, in the order data flows:
//!
//! - [`phone`]: what people paste → validated [`E164`], country code and line type.
//! - [`hash`]: [`HashKey`] → [`NumberHash`] and [`BlockHash`] (HMAC-SHA256,
//!   domain-separated). The raw number stops here.
//! - [`links`]: record version 2's link tokens (URL domain, sender, script
//!   fingerprint, campaign tag, 1,000-block), normalized and keyed like numbers.
//! - [`sighting`]: the [`Sighting`] record, its enumerations and range rules.
//! - [`record`]: canonical CBOR, ed25519 signing ([`SigningKey`]), strict and
//!   batch verification, [`SightingId`]. The only place that turns untrusted
//!   bytes into a [`SignedSighting`].
//! - [`catchup`]: the catch-up protocol's request and response messages.
//! - [`import`]: the CSV bulk-import format, row by row with line numbers.

pub mod catchup;
pub mod fields;
pub mod hash;
pub mod import;
pub mod links;
pub mod phone;
pub mod record;
pub mod sighting;

pub use hash::{BlockHash, HashKey, NumberHash};
pub use links::{Link, LinkError, LinkInput, LinkKind};
pub use phone::{
    e164_as_given, parse_number, parse_number_with, Letters, NumberError, ParsedNumber, E164,
};
pub use record::{
    verify_batch, RecordError, SightingId, SignError, SignedSighting, SigningKey,
    UnverifiedSighting, MAX_RECORD_BYTES,
};
pub use sighting::{
    Channel, FieldError, Kind, LineType, NetworkId, OriginId, Role, Sighting, TimeError,
    UnknownName, Verdict,
};

/// Lower-case hex of a byte string (no dependency for one loop).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    // By table, not `write!` per byte: lookups print an origin per report.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}
