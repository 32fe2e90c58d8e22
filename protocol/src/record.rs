//! Bytes ⇄ records: canonical CBOR, ed25519 signatures and sighting ids
//! (SPEC.md §5–§7). This is the one place that turns untrusted bytes into a
//! [`SignedSighting`]; it checks size and canonical form before anything else.

use std::fmt;

use ciborium::value::{Integer, Value};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use curve25519_dalek::Scalar;
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::hash::{BlockHash, NumberHash};
use crate::links::Link;
use crate::sighting::{
    validate_brand, Channel, FieldError, Kind, LineType, NetworkId, OriginId, Role, Sighting,
    Verdict, VERSION, VERSION_2,
};

/// Largest encoded record accepted, in bytes. The largest valid record is
/// 338 bytes; the limit leaves room for later versions and bounds the
/// work an attacker can make a decoder do.
pub const MAX_RECORD_BYTES: usize = 1024;

/// Domain tag prepended to the body encoding before signing.
pub const SIGNATURE_DOMAIN: &[u8] = b"sightline/sighting/v1";

/// CBOR map keys (SPEC.md §4).
mod key {
    pub(super) const VERSION: u64 = 0;
    pub(super) const NETWORK: u64 = 1;
    pub(super) const ORIGIN: u64 = 2;
    pub(super) const SEQ: u64 = 3;
    pub(super) const NUMBER: u64 = 4;
    pub(super) const BLOCK: u64 = 5;
    pub(super) const CC: u64 = 6;
    pub(super) const LINE: u64 = 7;
    pub(super) const KIND: u64 = 8;
    pub(super) const VERDICT: u64 = 9;
    pub(super) const CHANNEL: u64 = 10;
    pub(super) const BRAND: u64 = 11;
    pub(super) const CONFIDENCE: u64 = 12;
    pub(super) const COUNT: u64 = 13;
    pub(super) const FIRST_SEEN: u64 = 14;
    pub(super) const LAST_SEEN: u64 = 15;
    pub(super) const EXPIRES: u64 = 16;
    pub(super) const SIG: u64 = 17;
    pub(super) const LINKS: u64 = 18;
    pub(super) const ROLE: u64 = 19;
    /// The highest key of version 1, and of version 2.
    pub(super) const LAST_V1: u64 = SIG;
    pub(super) const LAST: u64 = ROLE;
}

/// Why bytes are not a valid signed sighting. [`RecordError::code`] gives a
/// stable short name for metrics, peer penalties and test vectors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Over [`MAX_RECORD_BYTES`].
    #[error("record is {0} bytes, over the {MAX_RECORD_BYTES}-byte limit")]
    Oversize(usize),
    /// Not well-formed CBOR.
    #[error("not well-formed CBOR: {0}")]
    Malformed(String),
    /// Bytes follow the record.
    #[error("{0} bytes after the end of the record")]
    TrailingBytes(usize),
    /// The top-level item is not a map with unsigned-integer keys.
    #[error("record is not a CBOR map with unsigned integer keys")]
    NotAMap,
    /// A key appears twice.
    #[error("duplicate key {0}")]
    DuplicateKey(u64),
    /// A key this version does not define.
    #[error("unknown key {0}")]
    UnknownKey(u64),
    /// Key 0 is missing or not a version this crate reads.
    #[error(
        "unsupported record version {0:?} (this node reads versions {VERSION} and {VERSION_2})"
    )]
    UnsupportedVersion(Option<u64>),
    /// A required field is absent.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field is out of range.
    #[error("invalid field: {0}")]
    Field(#[from] FieldError),
    /// Valid content, but not in the one canonical encoding.
    #[error("encoding is not canonical")]
    NonCanonical,
    /// The origin is not a usable ed25519 public key (not a point, not
    /// canonically encoded, or of small order).
    #[error("origin is not a valid ed25519 public key")]
    InvalidOrigin,
    /// The signature does not verify under the origin's key.
    #[error("signature does not verify")]
    BadSignature,
}

impl RecordError {
    /// Stable short code (used by test vectors, metrics and peer penalties).
    pub fn code(&self) -> &'static str {
        match self {
            RecordError::Oversize(_) => "oversize",
            RecordError::Malformed(_) => "malformed",
            RecordError::TrailingBytes(_) => "trailing_bytes",
            RecordError::NotAMap => "not_a_map",
            RecordError::DuplicateKey(_) => "duplicate_key",
            RecordError::UnknownKey(_) => "unknown_key",
            RecordError::UnsupportedVersion(_) => "unsupported_version",
            RecordError::MissingField(_) => "missing_field",
            RecordError::Field(_) => "invalid_field",
            RecordError::NonCanonical => "non_canonical",
            RecordError::InvalidOrigin => "invalid_origin",
            RecordError::BadSignature => "bad_signature",
        }
    }
}

/// Why a record could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A field is out of range.
    #[error("invalid field: {0}")]
    Field(#[from] FieldError),
    /// The record names another origin than the signing key's.
    #[error("record origin is not the signing key's public key")]
    OriginMismatch,
}

/// SHA-256 of a signed record's wire bytes: its id, and its gossip message id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SightingId([u8; 32]);

impl SightingId {
    /// The id of these wire bytes.
    pub fn of(bytes: &[u8]) -> Self {
        SightingId(Sha256::digest(bytes).into())
    }

    /// Wraps stored id bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        SightingId(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        crate::hex_lower(&self.0)
    }
}

impl fmt::Debug for SightingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SightingId({})", self.to_hex())
    }
}

impl fmt::Display for SightingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A node's ed25519 signing key. Zeroized on drop; `Debug` never prints it.
///
/// The same 32-byte seed is the node's libp2p identity, so the origin in its
/// records is the key its peers see on the connection.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key for a 32-byte seed (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// A fresh random key.
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// The seed, for writing the key file.
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key that goes into records as `origin`.
    pub fn origin(&self) -> OriginId {
        OriginId::from_bytes(self.0.verifying_key().to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(origin={}, <redacted>)", self.origin())
    }
}

impl Sighting {
    /// Validates and signs the record.
    ///
    /// # Errors
    /// [`SignError`] if a field is out of range or `origin` is not `key`'s.
    pub fn sign(self, key: &SigningKey) -> Result<SignedSighting, SignError> {
        self.validate()?;
        if self.origin != key.origin() {
            return Err(SignError::OriginMismatch);
        }
        let signature = key.0.sign(&signing_message(&self)).to_bytes();
        let bytes = encode(&self, Some(&signature));
        Ok(SignedSighting {
            id: SightingId::of(&bytes),
            sighting: self,
            signature,
            bytes,
        })
    }

    /// The canonical CBOR of the body (every key but 17, the signature).
    pub fn encode_body(&self) -> Vec<u8> {
        encode(self, None)
    }

    /// The canonical wire encoding of these fields with a given signature,
    /// valid or not. For conformance checks and fuzzing; nodes forward the
    /// bytes they received instead.
    pub fn encode_with_signature(&self, signature: &[u8; 64]) -> Vec<u8> {
        encode(self, Some(signature))
    }
}

/// A record whose signature has been verified. Cheap to clone the parts of;
/// holds its exact wire bytes so it is forwarded and stored byte-for-byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSighting {
    sighting: Sighting,
    signature: [u8; 64],
    bytes: Vec<u8>,
    id: SightingId,
}

impl SignedSighting {
    /// Decodes, validates and strictly verifies wire bytes.
    ///
    /// # Errors
    /// [`RecordError`] for the first problem found.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        UnverifiedSighting::decode(bytes)?.verify()
    }

    /// The record's fields.
    pub fn sighting(&self) -> &Sighting {
        &self.sighting
    }

    /// The ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The canonical wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the wire bytes.
    pub fn id(&self) -> SightingId {
        self.id
    }

    /// Gives up the fields and the wire bytes.
    pub fn into_parts(self) -> (Sighting, Vec<u8>) {
        (self.sighting, self.bytes)
    }
}

/// A record that decoded and validated, whose signature is not yet checked.
///
/// Lets a node look at cheap facts (network, origin membership, seq) before
/// paying for signature verification, and verify many at once with
/// [`verify_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedSighting {
    sighting: Sighting,
    signature: [u8; 64],
    bytes: Vec<u8>,
}

impl UnverifiedSighting {
    /// Decodes wire bytes: size, well-formedness, keys, version, field
    /// ranges, then canonical form (SPEC.md §6).
    ///
    /// # Errors
    /// [`RecordError`] for the first problem found.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::Oversize(bytes.len()));
        }
        let mut reader = bytes;
        let value: Value = ciborium::from_reader(&mut reader)
            .map_err(|e| RecordError::Malformed(describe_cbor_error(&e)))?;
        if !reader.is_empty() {
            return Err(RecordError::TrailingBytes(reader.len()));
        }
        let fields = Fields::from_value(value)?;
        let (sighting, signature) = fields.into_record()?;
        if encode(&sighting, Some(&signature)) != bytes {
            return Err(RecordError::NonCanonical);
        }
        Ok(UnverifiedSighting {
            sighting,
            signature,
            bytes: bytes.to_vec(),
        })
    }

    /// The record's fields, not yet authenticated.
    pub fn sighting(&self) -> &Sighting {
        &self.sighting
    }

    /// The signature, not yet checked.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The bytes the record was decoded from.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Strictly verifies the signature (SPEC.md §7).
    ///
    /// # Errors
    /// [`RecordError::InvalidOrigin`] or [`RecordError::BadSignature`].
    pub fn verify(self) -> Result<SignedSighting, RecordError> {
        let (key, _) = origin_key(&self.sighting.origin)?;
        signature_r(&self.signature)?;
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(&signing_message(&self.sighting), &signature)
            .map_err(|_| RecordError::BadSignature)?;
        Ok(self.into_verified())
    }

    fn into_verified(self) -> SignedSighting {
        SignedSighting {
            id: SightingId::of(&self.bytes),
            sighting: self.sighting,
            signature: self.signature,
            bytes: self.bytes,
        }
    }
}

/// Verifies many records at once, returning one result per input in order,
/// accepting exactly the records [`UnverifiedSighting::verify`] accepts.
///
/// Checks each origin key and each signature's `R` and `s` exactly as
/// strict verification does (canonical encodings, `A` and `R` of prime
/// order, `s < ℓ`), then runs one batch equation over the rest with
/// 128-bit coefficients drawn from `rng`, so a signer cannot grind a
/// signature that passes the batch but not the single equation. If the
/// batch equation fails, every record is verified on its own so that one
/// forged record cannot sink honest ones.
pub fn verify_batch(
    records: Vec<UnverifiedSighting>,
    rng: &mut impl CryptoRngCore,
) -> Vec<Result<SignedSighting, RecordError>> {
    let mut results: Vec<Option<Result<SignedSighting, RecordError>>> = Vec::new();
    let mut pending: Vec<(usize, UnverifiedSighting, Term)> = Vec::new();
    // A batch usually holds records of a few origins: check each key once.
    let mut keys_seen: std::collections::HashMap<OriginId, Result<EdwardsPoint, RecordError>> =
        std::collections::HashMap::new();
    for (index, record) in records.into_iter().enumerate() {
        results.push(None);
        let key = keys_seen
            .entry(record.sighting.origin)
            .or_insert_with(|| origin_key(&record.sighting.origin).map(|(_, point)| point))
            .clone();
        let term = key.and_then(|a| {
            let r = signature_r(&record.signature)?;
            let mut s_bytes = [0u8; 32];
            s_bytes.copy_from_slice(&record.signature[32..]);
            let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
                .ok_or(RecordError::BadSignature)?;
            let k = challenge(
                &record.signature[..32],
                record.sighting.origin.as_bytes(),
                &signing_message(&record.sighting),
            );
            Ok(Term { r, a, k, s })
        });
        match term {
            Ok(term) => pending.push((index, record, term)),
            Err(error) => results[index] = Some(Err(error)),
        }
    }
    let batch_ok = !pending.is_empty() && batch_equation(pending.iter().map(|(_, _, t)| t), rng);
    for (index, record, _) in pending {
        results[index] = Some(if batch_ok {
            Ok(record.into_verified())
        } else {
            record.verify()
        });
    }
    // Every index was filled above, by the prechecks or the verification loop.
    results.into_iter().flatten().collect()
}

/// One signature's part of the batch equation.
struct Term {
    r: EdwardsPoint,
    a: EdwardsPoint,
    k: Scalar,
    s: Scalar,
}

/// `[-Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢkᵢ]Aᵢ = identity` with random 128-bit
/// `zᵢ`: the cofactorless equation of every term at once. With `R` and `A`
/// of prime order, it holds for all terms exactly when each term's single
/// equation holds, except with probability 2⁻¹²⁸ per batch.
fn batch_equation<'a>(
    terms: impl ExactSizeIterator<Item = &'a Term> + Clone,
    rng: &mut impl CryptoRngCore,
) -> bool {
    let z: Vec<Scalar> = terms
        .clone()
        .map(|_| {
            let mut wide = [0u8; 32];
            rng.fill_bytes(&mut wide[..16]);
            Scalar::from_bytes_mod_order(wide)
        })
        .collect();
    let b: Scalar = -terms.clone().zip(&z).map(|(t, z)| z * t.s).sum::<Scalar>();
    let scalars = std::iter::once(b)
        .chain(z.iter().copied())
        .chain(terms.clone().zip(&z).map(|(t, z)| z * t.k));
    let points = std::iter::once(curve25519_dalek::constants::ED25519_BASEPOINT_POINT)
        .chain(terms.clone().map(|t| t.r))
        .chain(terms.map(|t| t.a));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

/// `k = SHA-512(R ‖ A ‖ message) mod ℓ`.
fn challenge(r: &[u8], a: &[u8; 32], message: &[u8]) -> Scalar {
    let mut h = sha2::Sha512::new();
    h.update(r);
    h.update(a);
    h.update(message);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Whether a point lies in the prime-order subgroup: `[ℓ]P` is the
/// identity. Computed as `[ℓ−1]P + P` with a variable-time multiplication
/// by the integer ℓ−1 (the canonical form of the scalar −1): for `P` with a
/// small-order component `T`, it is `[5]T` (ℓ ≡ 5 mod 8), never the
/// identity. The points are public, so variable time leaks nothing.
fn is_prime_order(point: &EdwardsPoint) -> bool {
    let minus_one = -Scalar::ONE;
    let l_minus_one_p =
        EdwardsPoint::vartime_double_scalar_mul_basepoint(&minus_one, point, &Scalar::ZERO);
    (l_minus_one_p + point).is_identity()
}

/// `R` of a signature as a point: SPEC.md §7 condition 2 (canonical, not
/// of small order, of prime order).
fn signature_r(signature: &[u8; 64]) -> Result<EdwardsPoint, RecordError> {
    let r: &[u8; 32] = signature[..32].try_into().expect("32 bytes");
    if !is_strict_point_encoding(r) {
        return Err(RecordError::BadSignature);
    }
    CompressedEdwardsY(*r)
        .decompress()
        .filter(is_prime_order)
        .ok_or(RecordError::BadSignature)
}

/// The origin as an ed25519 key usable under strict verification.
fn origin_key(origin: &OriginId) -> Result<(VerifyingKey, EdwardsPoint), RecordError> {
    // The prime-order check costs a scalar multiplication, and a network
    // has a few dozen keys: each is checked once per process. Bounded, as
    // only member origins reach verification but a cache must not grow on
    // trust.
    type Checked =
        std::collections::HashMap<OriginId, Result<(VerifyingKey, EdwardsPoint), RecordError>>;
    static CHECKED: std::sync::OnceLock<std::sync::Mutex<Checked>> = std::sync::OnceLock::new();
    let cache = CHECKED.get_or_init(Default::default);
    let lock = || {
        cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(known) = lock().get(origin) {
        return known.clone();
    }
    let checked = check_origin_key(origin);
    let mut cache = lock();
    if cache.len() >= 4096 {
        cache.clear();
    }
    cache.insert(*origin, checked.clone());
    checked
}

fn check_origin_key(origin: &OriginId) -> Result<(VerifyingKey, EdwardsPoint), RecordError> {
    if !is_strict_point_encoding(origin.as_bytes()) {
        return Err(RecordError::InvalidOrigin);
    }
    let key =
        VerifyingKey::from_bytes(origin.as_bytes()).map_err(|_| RecordError::InvalidOrigin)?;
    if key.is_weak() {
        return Err(RecordError::InvalidOrigin);
    }
    // A key with a small-order component verifies some signatures under
    // the cofactorless equation and others not, depending on the challenge:
    // refused outright (SPEC.md §7 condition 1).
    let point = CompressedEdwardsY(*origin.as_bytes())
        .decompress()
        .filter(is_prime_order)
        .ok_or(RecordError::InvalidOrigin)?;
    Ok((key, point))
}

/// SPEC.md §7 conditions on a point encoding, checked on the bytes alone
/// (no square root): the y coordinate is below p = 2^255 - 19; the sign bit
/// is clear when x = 0 (y = 1 or y = p - 1); and the encoding is not one of
/// the eight canonical encodings of the small-order points.
fn is_strict_point_encoding(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    let sign = y[31] & 0x80 != 0;
    y[31] &= 0x7f;
    let y_at_least_p = y[31] == 0x7f && y[1..31].iter().all(|b| *b == 0xff) && y[0] >= 0xed;
    let y_is_one = y[0] == 1 && y[1..].iter().all(|b| *b == 0);
    let y_is_minus_one = y[31] == 0x7f && y[1..31].iter().all(|b| *b == 0xff) && y[0] == 0xec;
    if y_at_least_p || (sign && (y_is_one || y_is_minus_one)) {
        return false;
    }
    !small_order_encodings().contains(bytes)
}

/// Canonical encodings of the eight points of order dividing 8.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static TABLE: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION.map(|point| point.compress().to_bytes())
    })
}

/// `"sightline/sighting/v1" ‖ body` — what the origin signs.
fn signing_message(sighting: &Sighting) -> Vec<u8> {
    let body = encode(sighting, None);
    let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len() + body.len());
    message.extend_from_slice(SIGNATURE_DOMAIN);
    message.extend_from_slice(&body);
    message
}

/// Canonical CBOR: a definite-length map, unsigned-integer keys in
/// ascending order, shortest-form integers and lengths, absent optional
/// fields omitted. With `signature`, the wire form; without, the signed body.
fn encode(s: &Sighting, signature: Option<&[u8; 64]>) -> Vec<u8> {
    let uint = |n: u64| Value::Integer(Integer::from(n));
    let mut entries: Vec<(u64, Value)> = vec![
        (key::VERSION, uint(s.version())),
        (key::NETWORK, Value::Text(s.network.as_str().to_owned())),
        (key::ORIGIN, Value::Bytes(s.origin.as_bytes().to_vec())),
        (key::SEQ, uint(s.seq)),
        (key::NUMBER, Value::Bytes(s.number.as_bytes().to_vec())),
        (key::BLOCK, Value::Bytes(s.block.as_bytes().to_vec())),
        (key::CC, uint(s.cc.into())),
        (key::LINE, uint(s.line.code().into())),
        (key::KIND, uint(s.kind.code().into())),
        (key::VERDICT, uint(s.verdict.code().into())),
        (key::CHANNEL, uint(s.channel.code().into())),
    ];
    if let Some(brand) = &s.brand {
        entries.push((key::BRAND, Value::Text(brand.clone())));
    }
    entries.extend([
        (key::CONFIDENCE, uint(s.confidence.into())),
        (key::COUNT, uint(s.count.into())),
        (key::FIRST_SEEN, uint(s.first_seen)),
        (key::LAST_SEEN, uint(s.last_seen)),
    ]);
    if let Some(expires) = s.expires {
        entries.push((key::EXPIRES, uint(expires)));
    }
    if let Some(signature) = signature {
        entries.push((key::SIG, Value::Bytes(signature.to_vec())));
    }
    if let Some(links) = s.links.as_ref().filter(|l| !l.is_empty()) {
        let entries_of = links.iter().map(|l| Value::Bytes(l.encode())).collect();
        entries.push((key::LINKS, Value::Array(entries_of)));
    }
    if let Some(role) = s.role {
        entries.push((key::ROLE, uint(role.code().into())));
    }
    let map = Value::Map(entries.into_iter().map(|(k, v)| (uint(k), v)).collect());
    let mut out = Vec::with_capacity(448);
    ciborium::into_writer(&map, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

fn describe_cbor_error<T: fmt::Debug>(error: &ciborium::de::Error<T>) -> String {
    match error {
        ciborium::de::Error::Io(_) => "unexpected end of input".to_owned(),
        ciborium::de::Error::Syntax(offset) => format!("syntax error at byte {offset}"),
        ciborium::de::Error::Semantic(offset, what) => match offset {
            Some(offset) => format!("{what} at byte {offset}"),
            None => what.clone(),
        },
        ciborium::de::Error::RecursionLimitExceeded => "nested too deeply".to_owned(),
    }
}

/// The decoded map, indexed by key, before field validation.
struct Fields {
    slots: Vec<Option<Value>>,
    /// Version 2 (key 18 may be present).
    v2: bool,
}

fn index(key: u64) -> usize {
    usize::try_from(key).expect("small")
}

impl Fields {
    fn from_value(value: Value) -> Result<Self, RecordError> {
        let Value::Map(entries) = value else {
            return Err(RecordError::NotAMap);
        };
        let mut slots: Vec<Option<Value>> = vec![None; index(key::LAST + 1)];
        let mut unknown = None;
        let mut version = None;
        for (k, v) in entries {
            let Value::Integer(k) = k else {
                return Err(RecordError::NotAMap);
            };
            let k = u64::try_from(k).map_err(|_| RecordError::NotAMap)?;
            if k == key::VERSION {
                version = Some(v.clone());
            }
            match usize::try_from(k).ok().and_then(|i| slots.get_mut(i)) {
                Some(slot) if slot.is_some() => return Err(RecordError::DuplicateKey(k)),
                Some(slot) => *slot = Some(v),
                None => unknown = unknown.or(Some(k)),
            }
        }
        // The version decides which keys exist, so it is checked first.
        let version = version
            .and_then(|v| v.as_integer())
            .and_then(|i| u64::try_from(i).ok());
        let last = match version {
            Some(VERSION) => key::LAST_V1,
            Some(VERSION_2) => key::LAST,
            _ => return Err(RecordError::UnsupportedVersion(version)),
        };
        // Keys past the version's last are unknown to it (key 18 in a
        // version-1 record); the lowest such key is reported.
        let beyond = (last + 1..=key::LAST).find(|&k| slots[index(k)].is_some());
        if let Some(k) = beyond.or(unknown) {
            return Err(RecordError::UnknownKey(k));
        }
        Ok(Fields {
            slots,
            v2: version == Some(VERSION_2),
        })
    }

    fn take(&mut self, key: u64) -> Option<Value> {
        self.slots[index(key)].take()
    }

    fn required(&mut self, key: u64, field: &'static str) -> Result<Value, RecordError> {
        self.take(key).ok_or(RecordError::MissingField(field))
    }

    fn uint(&mut self, key: u64, field: &'static str) -> Result<u64, RecordError> {
        let value = self.required(key, field)?;
        as_uint(&value, field)
    }

    fn bytes32(&mut self, key: u64, field: &'static str) -> Result<[u8; 32], RecordError> {
        let value = self.required(key, field)?;
        value
            .as_bytes()
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .ok_or(RecordError::Field(FieldError::WrongType {
                field,
                expected: "a 32-byte byte string",
            }))
    }

    fn into_record(mut self) -> Result<(Sighting, [u8; 64]), RecordError> {
        let network = match self.required(key::NETWORK, "network")? {
            Value::Text(text) => NetworkId::new(&text)?,
            _ => return Err(wrong_type("network", "a text string")),
        };
        let origin = OriginId::from_bytes(self.bytes32(key::ORIGIN, "origin")?);
        let seq = self.uint(key::SEQ, "seq")?;
        let number = NumberHash::from_bytes(self.bytes32(key::NUMBER, "number")?);
        let block = BlockHash::from_bytes(self.bytes32(key::BLOCK, "block")?);
        let cc = self.uint(key::CC, "cc")?;
        let cc = u16::try_from(cc).map_err(|_| FieldError::CountryCode(cc))?;
        let line = LineType::from_code(self.uint(key::LINE, "line")?)?;
        let kind = Kind::from_code(self.uint(key::KIND, "kind")?)?;
        let verdict = Verdict::from_code(self.uint(key::VERDICT, "verdict")?)?;
        let channel = Channel::from_code(self.uint(key::CHANNEL, "channel")?)?;
        let brand = match self.take(key::BRAND) {
            None => None,
            Some(Value::Text(text)) => {
                validate_brand(&text)?;
                Some(text)
            }
            Some(_) => return Err(wrong_type("brand", "a text string")),
        };
        let confidence = self.uint(key::CONFIDENCE, "confidence")?;
        let confidence = u8::try_from(confidence)
            .ok()
            .filter(|c| *c <= 100)
            .ok_or(FieldError::Confidence(confidence))?;
        let count = self.uint(key::COUNT, "count")?;
        let count = u32::try_from(count).map_err(|_| FieldError::Count(count))?;
        let first_seen = self.uint(key::FIRST_SEEN, "first_seen")?;
        let last_seen = self.uint(key::LAST_SEEN, "last_seen")?;
        let expires = match self.take(key::EXPIRES) {
            None => None,
            Some(value) => Some(as_uint(&value, "expires")?),
        };
        let signature = match self.required(key::SIG, "sig")? {
            Value::Bytes(b) => <[u8; 64]>::try_from(b.as_slice())
                .map_err(|_| wrong_type("sig", "a 64-byte byte string"))?,
            _ => return Err(wrong_type("sig", "a 64-byte byte string")),
        };
        let links = if self.v2 {
            Some(match self.take(key::LINKS) {
                None => Vec::new(),
                Some(value) => links_of(value)?,
            })
        } else {
            None
        };
        let role = match self.take(key::ROLE) {
            None => None,
            Some(value) => Some(Role::from_code(as_uint(&value, "role")?)?),
        };
        let sighting = Sighting {
            network,
            origin,
            seq,
            number,
            block,
            cc,
            line,
            kind,
            verdict,
            channel,
            brand,
            confidence,
            count,
            first_seen,
            last_seen,
            expires,
            links,
            role,
        };
        sighting.validate()?;
        Ok((sighting, signature))
    }
}

/// Key 18: an array of 1–8 byte strings, each a link entry (SPEC.md §13.2).
/// Returned sorted, so that an unsorted array fails as `non_canonical`
/// and a repeated entry as `invalid_field`.
fn links_of(value: Value) -> Result<Vec<Link>, RecordError> {
    let expected = "an array of link entries";
    let Value::Array(items) = value else {
        return Err(wrong_type("links", expected));
    };
    if items.is_empty() || items.len() > crate::links::MAX_LINKS {
        return Err(FieldError::Links("must hold 1-8 links").into());
    }
    let mut links = items
        .into_iter()
        .map(|item| match item {
            Value::Bytes(entry) => Link::decode(&entry).map_err(|_| {
                FieldError::Links("hold an entry of an unknown kind or length").into()
            }),
            _ => Err(wrong_type("links", expected)),
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    links.sort_unstable();
    Ok(links)
}

fn as_uint(value: &Value, field: &'static str) -> Result<u64, RecordError> {
    value
        .as_integer()
        .and_then(|i| u64::try_from(i).ok())
        .ok_or_else(|| wrong_type(field, "an unsigned integer"))
}

fn wrong_type(field: &'static str, expected: &'static str) -> RecordError {
    RecordError::Field(FieldError::WrongType { field, expected })
}

#[cfg(test)]
mod tests;
