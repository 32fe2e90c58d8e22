use ciborium::value::Value;
use ed25519_dalek::Signer;
use proptest::prelude::*;

use super::*;
use crate::sighting::tests::example;

fn key() -> SigningKey {
    SigningKey::from_seed(&[42; 32])
}

fn signed() -> SignedSighting {
    sighting().sign(&key()).unwrap()
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn uint(n: u64) -> Value {
    Value::Integer(n.into())
}

/// The wire map of a valid record as (key, value) pairs, for mutation.
fn entries() -> Vec<(u64, Value)> {
    entries_of(signed().as_bytes())
}

/// Encodes entries as a map in the given order, re-signing the body so that
/// the only flaw is the one under test.
fn resigned(mut entries: Vec<(u64, Value)>) -> Vec<u8> {
    entries.retain(|(k, _)| *k != key::SIG);
    let body = cbor(&Value::Map(
        entries.iter().map(|(k, v)| (uint(*k), v.clone())).collect(),
    ));
    let mut message = SIGNATURE_DOMAIN.to_vec();
    message.extend_from_slice(&body);
    let sig = key().0.sign(&message).to_bytes();
    entries.push((key::SIG, Value::Bytes(sig.to_vec())));
    cbor(&Value::Map(
        entries.into_iter().map(|(k, v)| (uint(k), v)).collect(),
    ))
}

fn with(k: u64, v: Value) -> Vec<u8> {
    let mut e = entries();
    if let Some(slot) = e.iter_mut().find(|(key, _)| *key == k) {
        slot.1 = v;
    } else {
        e.push((k, v));
        e.sort_by_key(|(key, _)| *key);
    }
    resigned(e)
}

fn without(k: u64) -> Vec<u8> {
    resigned(entries().into_iter().filter(|(key, _)| *key != k).collect())
}

fn decode_err(bytes: &[u8]) -> RecordError {
    SignedSighting::from_bytes(bytes).unwrap_err()
}

#[test]
fn sign_then_decode_round_trips() {
    let record = signed();
    let back = SignedSighting::from_bytes(record.as_bytes()).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.id(), SightingId::of(record.as_bytes()));
    assert!(record.as_bytes().len() < MAX_RECORD_BYTES / 2);
    // The re-signed test helper agrees with `sign` byte for byte.
    assert_eq!(resigned(entries()), record.as_bytes());
}

#[test]
fn largest_record_is_338_bytes() {
    let key = key();
    let largest = Sighting {
        network: NetworkId::new(&"n".repeat(32)).unwrap(),
        origin: key.origin(),
        seq: u64::MAX,
        cc: 999,
        brand: Some("b".repeat(64)),
        confidence: 100,
        count: u32::MAX,
        first_seen: crate::sighting::MAX_TIMESTAMP - 2,
        last_seen: crate::sighting::MAX_TIMESTAMP - 1,
        expires: Some(crate::sighting::MAX_TIMESTAMP),
        ..example()
    };
    assert_eq!(largest.sign(&key).unwrap().as_bytes().len(), 338);
}

#[test]
fn sign_refuses_invalid_or_foreign_records() {
    let key = key();
    let bad = Sighting {
        origin: key.origin(),
        confidence: 101,
        ..example()
    };
    assert_eq!(
        bad.sign(&key),
        Err(SignError::Field(FieldError::Confidence(101)))
    );
    assert_eq!(example().sign(&key), Err(SignError::OriginMismatch));
}

#[test]
fn rejects_oversize_before_parsing() {
    let mut bytes = signed().as_bytes().to_vec();
    bytes.resize(MAX_RECORD_BYTES + 1, 0);
    assert_eq!(
        decode_err(&bytes),
        RecordError::Oversize(MAX_RECORD_BYTES + 1)
    );
}

#[test]
fn rejects_malformed_and_trailing_bytes() {
    let bytes = signed().as_bytes().to_vec();
    assert!(matches!(
        decode_err(&bytes[..bytes.len() - 1]),
        RecordError::Malformed(_)
    ));
    assert!(matches!(decode_err(&[]), RecordError::Malformed(_)));
    assert!(matches!(decode_err(&[0xff]), RecordError::Malformed(_)));
    let mut extra = bytes.clone();
    extra.push(0x00);
    assert_eq!(decode_err(&extra), RecordError::TrailingBytes(1));
    // Deep nesting is bounded by the decoder, not the stack.
    assert!(matches!(
        decode_err(&[0x81; 1000]),
        RecordError::Malformed(_)
    ));
}

#[test]
fn rejects_non_maps_and_bad_keys() {
    assert_eq!(
        decode_err(&cbor(&Value::Array(vec![uint(1)]))),
        RecordError::NotAMap
    );
    let text_key = cbor(&Value::Map(vec![(Value::Text("v".into()), uint(1))]));
    assert_eq!(decode_err(&text_key), RecordError::NotAMap);
    let negative_key = cbor(&Value::Map(vec![(Value::Integer((-1).into()), uint(1))]));
    assert_eq!(decode_err(&negative_key), RecordError::NotAMap);
    let mut dup = entries();
    dup.insert(1, (0, uint(1)));
    assert_eq!(decode_err(&resigned(dup)), RecordError::DuplicateKey(0));
    assert_eq!(decode_err(&with(18, uint(0))), RecordError::UnknownKey(18));
    assert_eq!(
        decode_err(&with(1000, uint(0))),
        RecordError::UnknownKey(1000)
    );
}

#[test]
fn rejects_unknown_versions() {
    assert_eq!(
        decode_err(&with(0, uint(3))),
        RecordError::UnsupportedVersion(Some(3))
    );
    assert_eq!(
        decode_err(&without(0)),
        RecordError::UnsupportedVersion(None)
    );
    assert_eq!(
        decode_err(&with(0, Value::Text("1".into()))),
        RecordError::UnsupportedVersion(None)
    );
    // A future version may add keys: the version error wins over the unknown key.
    let mut future = entries();
    future[0].1 = uint(3);
    future.push((30, uint(1)));
    assert_eq!(
        decode_err(&resigned(future)),
        RecordError::UnsupportedVersion(Some(3))
    );
}

fn sighting() -> Sighting {
    Sighting {
        origin: key().origin(),
        ..example()
    }
}

fn entries_of(bytes: &[u8]) -> Vec<(u64, Value)> {
    let Value::Map(map) = ciborium::from_reader::<Value, _>(bytes).unwrap() else {
        unreachable!()
    };
    map.into_iter()
        .map(|(k, v)| (u64::try_from(k.as_integer().unwrap()).unwrap(), v))
        .collect()
}

/// A version-2 record with one link of each kind, signed.
fn linked() -> SignedSighting {
    let mut s = sighting();
    s.links = Some(vec![
        Link::UrlDomain([1; 32]),
        Link::Sender([2; 32]),
        Link::Script(0x00ff_00ff_00ff_00ff),
        Link::Campaign([3; 32]),
        Link::Block1000([4; 32]),
    ]);
    s.sign(&key()).unwrap()
}

#[test]
fn version_2_records_round_trip_with_their_links_after_the_signature() {
    let record = linked();
    assert_eq!(record.as_bytes()[1..3], [0x00, 0x02]);
    let back = SignedSighting::from_bytes(record.as_bytes()).unwrap();
    assert_eq!(back, record);
    // Key 18 follows key 17 on the wire; the body has no key 17.
    let entries = entries_of(record.as_bytes());
    assert_eq!(entries.last().unwrap().0, 18);
    assert!(!entries_of(&record.sighting().encode_body())
        .iter()
        .any(|(k, _)| *k == 17));
    // No links: version 2 without key 18, a different record from version 1.
    let mut bare = sighting();
    bare.links = Some(Vec::new());
    let bare = bare.sign(&key()).unwrap();
    assert!(!entries_of(bare.as_bytes()).iter().any(|(k, _)| *k == 18));
    assert_eq!(SignedSighting::from_bytes(bare.as_bytes()).unwrap(), bare);
    assert_ne!(bare.id(), signed().id());
    // Signing refuses what decoding refuses.
    let mut unsorted = sighting();
    unsorted.links = Some(vec![Link::Sender([2; 32]), Link::UrlDomain([1; 32])]);
    assert!(matches!(
        unsorted.sign(&key()),
        Err(SignError::Field(FieldError::Links(_)))
    ));
}

#[test]
fn protected_goes_with_a_role_and_version_2_only() {
    let mut s = sighting();
    s.verdict = Verdict::Protected;
    assert_eq!(
        s.clone().sign(&key()).unwrap_err(),
        SignError::Field(FieldError::Protection)
    );
    s.role = Some(Role::InboundOnly);
    assert_eq!(
        s.clone().sign(&key()).unwrap_err(),
        SignError::Field(FieldError::Protection)
    );
    s.links = Some(Vec::new());
    let record = s.clone().sign(&key()).unwrap();
    assert_eq!(
        SignedSighting::from_bytes(record.as_bytes()).unwrap(),
        record
    );
    assert_eq!(entries_of(record.as_bytes()).last().unwrap().0, 19);
    s.verdict = Verdict::Malicious;
    assert_eq!(
        s.sign(&key()).unwrap_err(),
        SignError::Field(FieldError::Protection)
    );
}

#[test]
fn the_largest_version_2_record_fits_the_limit() {
    let mut s = sighting();
    s.network = NetworkId::new(&"n".repeat(32)).unwrap();
    s.brand = Some("b".repeat(64));
    s.seq = u64::MAX;
    s.cc = 999;
    s.count = u32::MAX;
    s.first_seen = crate::sighting::MAX_TIMESTAMP - 1;
    s.last_seen = crate::sighting::MAX_TIMESTAMP - 1;
    s.expires = Some(crate::sighting::MAX_TIMESTAMP);
    s.links = Some((0..8u8).map(|i| Link::Campaign([i; 32])).collect());
    s.verdict = Verdict::Protected;
    s.role = Some(Role::Outbound);
    let record = s.sign(&key()).unwrap();
    assert_eq!(record.as_bytes().len(), 338 + 2 + 8 * 35 + 2);
    assert!(record.as_bytes().len() <= MAX_RECORD_BYTES);
}

#[test]
fn rejects_missing_fields() {
    let required = [
        (1, "network"),
        (2, "origin"),
        (3, "seq"),
        (4, "number"),
        (5, "block"),
        (6, "cc"),
        (7, "line"),
        (8, "kind"),
        (9, "verdict"),
        (10, "channel"),
        (12, "confidence"),
        (13, "count"),
        (14, "first_seen"),
        (15, "last_seen"),
        (17, "sig"),
    ];
    for (k, name) in required {
        let bytes = if k == key::SIG {
            let e: Vec<_> = entries().into_iter().filter(|(key, _)| *key != k).collect();
            cbor(&Value::Map(
                e.into_iter().map(|(k, v)| (uint(k), v)).collect(),
            ))
        } else {
            without(k)
        };
        assert_eq!(
            decode_err(&bytes),
            RecordError::MissingField(name),
            "key {k}"
        );
    }
    // The optional fields really are optional.
    SignedSighting::from_bytes(&without(key::BRAND)).unwrap();
    SignedSighting::from_bytes(&without(key::EXPIRES)).unwrap();
}

#[test]
fn rejects_wrong_types() {
    let wrong = |k: u64, v: Value| match decode_err(&with(k, v)) {
        RecordError::Field(FieldError::WrongType { .. }) => {}
        other => panic!("key {k}: {other:?}"),
    };
    wrong(1, uint(7));
    wrong(2, Value::Bytes(vec![1; 31]));
    wrong(3, Value::Text("1".into()));
    wrong(3, Value::Integer((-5).into()));
    wrong(4, Value::Bytes(vec![1; 33]));
    wrong(5, Value::Text("block".into()));
    wrong(11, uint(3));
    wrong(12, Value::Float(50.0));
    wrong(14, Value::Bool(true));
    wrong(16, Value::Null);
    let e: Vec<_> = entries()
        .into_iter()
        .map(|(k, v)| {
            if k == key::SIG {
                (k, Value::Bytes(vec![0; 63]))
            } else {
                (k, v)
            }
        })
        .collect();
    let bytes = cbor(&Value::Map(
        e.into_iter().map(|(k, v)| (uint(k), v)).collect(),
    ));
    assert!(matches!(
        decode_err(&bytes),
        RecordError::Field(FieldError::WrongType { field: "sig", .. })
    ));
}

#[test]
fn rejects_out_of_range_fields() {
    let field = |k: u64, v: Value| match decode_err(&with(k, v)) {
        RecordError::Field(e) => e,
        other => panic!("key {k}: {other:?}"),
    };
    assert_eq!(
        field(1, Value::Text("Bad Net".into())),
        FieldError::NetworkId
    );
    assert_eq!(field(3, uint(0)), FieldError::SeqZero);
    assert_eq!(field(6, uint(0)), FieldError::CountryCode(0));
    assert_eq!(field(6, uint(70_000)), FieldError::CountryCode(70_000));
    assert_eq!(
        field(7, uint(11)),
        FieldError::UnknownEnum {
            field: "line",
            value: 11
        }
    );
    assert_eq!(
        field(8, uint(7)),
        FieldError::UnknownEnum {
            field: "kind",
            value: 7
        }
    );
    assert_eq!(
        field(9, uint(3)),
        FieldError::Protection,
        "protected is version 2's"
    );
    assert_eq!(
        field(9, uint(4)),
        FieldError::UnknownEnum {
            field: "verdict",
            value: 4
        }
    );
    assert_eq!(
        field(10, uint(5)),
        FieldError::UnknownEnum {
            field: "channel",
            value: 5
        }
    );
    assert_eq!(field(11, Value::Text("x".repeat(65))), FieldError::Brand);
    assert_eq!(field(11, Value::Text(String::new())), FieldError::Brand);
    assert_eq!(field(12, uint(101)), FieldError::Confidence(101));
    assert_eq!(field(12, uint(1 << 40)), FieldError::Confidence(1 << 40));
    assert_eq!(field(13, uint(0)), FieldError::Count(0));
    assert_eq!(field(13, uint(1 << 32)), FieldError::Count(1 << 32));
    assert!(matches!(field(15, uint(1)), FieldError::SeenOrder { .. }));
    assert!(matches!(
        field(15, uint(u64::MAX)),
        FieldError::Timestamp {
            field: "last_seen",
            ..
        }
    ));
    assert!(matches!(field(16, uint(1)), FieldError::Expiry { .. }));
}

#[test]
fn rejects_non_canonical_encodings() {
    let good = signed().as_bytes().to_vec();
    // 1. Keys out of order (same content).
    let mut e = entries();
    e.swap(1, 2);
    let unsorted = cbor(&Value::Map(
        e.into_iter().map(|(k, v)| (uint(k), v)).collect(),
    ));
    assert_eq!(decode_err(&unsorted), RecordError::NonCanonical);
    // 2. Non-shortest integer: version 1 written as 0x18 0x01 instead of 0x01.
    assert_eq!(&good[..3], &[0xb2, 0x00, 0x01]); // map(18) {0: 1, …
    let mut long_int = vec![0xb2, 0x00, 0x18, 0x01];
    long_int.extend_from_slice(&good[3..]);
    assert_eq!(decode_err(&long_int), RecordError::NonCanonical);
    // 3. Indefinite-length map.
    let mut indefinite = vec![0xbf];
    indefinite.extend_from_slice(&good[1..]);
    indefinite.push(0xff);
    assert_eq!(decode_err(&indefinite), RecordError::NonCanonical);
    // 4. Non-shortest map length: 18 entries as 0xb8 0x12.
    let mut long_len = vec![0xb8, 0x12];
    long_len.extend_from_slice(&good[1..]);
    assert_eq!(decode_err(&long_len), RecordError::NonCanonical);
}

#[test]
fn rejects_bad_origins_and_signatures() {
    // Not a curve point (y = 2 has no x on edwards25519).
    let mut not_point = [0u8; 32];
    not_point[0] = 2;
    assert_eq!(
        decode_err(&with(2, Value::Bytes(not_point.to_vec()))),
        RecordError::InvalidOrigin
    );
    // The identity point: small order, would accept forgeries under lax verification.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        decode_err(&with(2, Value::Bytes(identity.to_vec()))),
        RecordError::InvalidOrigin
    );
    // A valid key that did not sign it.
    let other = SigningKey::from_seed(&[7; 32]).origin();
    assert_eq!(
        decode_err(&with(2, Value::Bytes(other.as_bytes().to_vec()))),
        RecordError::BadSignature
    );
    // A changed field with the old signature.
    let mut e = entries();
    e[12].1 = uint(99); // confidence
    let tampered = cbor(&Value::Map(
        e.into_iter().map(|(k, v)| (uint(k), v)).collect(),
    ));
    assert_eq!(decode_err(&tampered), RecordError::BadSignature);
}

#[test]
fn signature_malleability_is_rejected() {
    // s + ℓ is the same signature under lax verification; strict rejects it.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let record = signed();
    let mut sig = *record.signature();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
        sig[32 + i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    let mut e = entries();
    e.last_mut().unwrap().1 = Value::Bytes(sig.to_vec());
    let bytes = cbor(&Value::Map(
        e.into_iter().map(|(k, v)| (uint(k), v)).collect(),
    ));
    assert_eq!(decode_err(&bytes), RecordError::BadSignature);
    let unverified = UnverifiedSighting::decode(&bytes).unwrap();
    assert_eq!(
        verify_batch(vec![unverified], &mut rand_core::OsRng)
            .pop()
            .unwrap(),
        Err(RecordError::BadSignature)
    );
}

#[test]
fn byte_level_point_checks_agree_with_decompression() {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    // The small-order table matches the curve's torsion points.
    for bytes in small_order_encodings() {
        let point = CompressedEdwardsY(*bytes).decompress().unwrap();
        assert!(point.is_small_order());
        assert!(!is_strict_point_encoding(bytes));
    }
    // Every encoding with y < 64 or y > p - 64, both signs: the byte-level
    // check agrees with "decompresses, re-encodes identically, not small order"
    // wherever the bytes decode at all.
    let mut candidates = Vec::new();
    for low in 0u8..64 {
        let mut small = [0u8; 32];
        small[0] = low;
        candidates.push(small);
        let mut high = [0xffu8; 32];
        high[31] = 0x7f;
        high[0] = 0xed_u8.wrapping_sub(32).wrapping_add(low);
        candidates.push(high);
    }
    candidates.push(*key().origin().as_bytes());
    for mut bytes in candidates {
        for sign in [0u8, 0x80] {
            bytes[31] = (bytes[31] & 0x7f) | sign;
            if let Some(point) = CompressedEdwardsY(bytes).decompress() {
                let strict = point.compress().to_bytes() == bytes && !point.is_small_order();
                assert_eq!(
                    is_strict_point_encoding(&bytes),
                    strict,
                    "{}",
                    crate::hex_lower(&bytes)
                );
            }
        }
    }
}

#[test]
fn flipping_any_bit_of_a_record_is_caught() {
    let good = signed().as_bytes().to_vec();
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bytes = good.clone();
            bytes[i] ^= 1 << bit;
            assert!(
                SignedSighting::from_bytes(&bytes).is_err(),
                "byte {i} bit {bit} accepted"
            );
        }
    }
}

#[test]
fn batch_verification_matches_single_verification() {
    let key = key();
    let good: Vec<Vec<u8>> = (1..=20)
        .map(|seq| {
            Sighting {
                origin: key.origin(),
                seq,
                ..example()
            }
            .sign(&key)
            .unwrap()
            .as_bytes()
            .to_vec()
        })
        .collect();
    let decode = |b: &Vec<u8>| UnverifiedSighting::decode(b).unwrap();
    // All good.
    let results = verify_batch(good.iter().map(decode).collect(), &mut rand_core::OsRng);
    assert!(results.iter().all(Result::is_ok));
    // One forged record in the middle does not sink the others.
    let mut mixed: Vec<UnverifiedSighting> = good.iter().map(decode).collect();
    let forged = with(
        2,
        Value::Bytes(SigningKey::from_seed(&[7; 32]).origin().as_bytes().to_vec()),
    );
    mixed[5] = UnverifiedSighting::decode(&forged).unwrap();
    let mut invalid_origin = [0u8; 32];
    invalid_origin[0] = 1;
    mixed[9] = UnverifiedSighting::decode(&with(2, Value::Bytes(invalid_origin.to_vec()))).unwrap();
    let results = verify_batch(mixed, &mut rand_core::OsRng);
    for (i, r) in results.iter().enumerate() {
        match i {
            5 => assert_eq!(r, &Err(RecordError::BadSignature)),
            9 => assert_eq!(r, &Err(RecordError::InvalidOrigin)),
            _ => assert_eq!(r.as_ref().unwrap().as_bytes(), good[i].as_slice()),
        }
    }
    assert!(verify_batch(Vec::new(), &mut rand_core::OsRng).is_empty());
}

/// A record signed "by hand" with secret scalar `a` for origin point
/// `origin` (which may differ from `[a]B`), nonce point `[r]B + extra`.
fn hand_signed(a: Scalar, origin: EdwardsPoint, r: Scalar, extra: EdwardsPoint) -> Vec<u8> {
    let sighting = Sighting {
        origin: OriginId::from_bytes(origin.compress().to_bytes()),
        ..example()
    };
    let big_r = curve25519_dalek::constants::ED25519_BASEPOINT_POINT * r + extra;
    let r_bytes = big_r.compress().to_bytes();
    let k = challenge(
        &r_bytes,
        sighting.origin.as_bytes(),
        &signing_message(&sighting),
    );
    let s = r + k * a;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&r_bytes);
    signature[32..].copy_from_slice(&s.to_bytes());
    encode(&sighting, Some(&signature))
}

#[test]
fn points_with_a_small_order_component_are_refused_by_both_paths() {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
    let a = Scalar::from(777_u64);
    let t = EIGHT_TORSION[1]; // order 8
    let identity = EdwardsPoint::default();
    // A key with a torsion component: with a nonce whose challenge k has
    // [k]T = identity, the cofactorless equation holds. Strict verification
    // used to accept such a record; the batch equation only sometimes.
    let mixed_key = B * a + t;
    let (bytes, _) = (1..200_u64)
        .map(|r| {
            let bytes = hand_signed(a, mixed_key, Scalar::from(r), identity);
            (bytes, r)
        })
        .find(|(bytes, _)| {
            let record = UnverifiedSighting::decode(bytes).unwrap();
            let k = challenge(
                &record.signature[..32],
                record.sighting.origin.as_bytes(),
                &signing_message(&record.sighting),
            );
            (t * k).is_identity()
        })
        .expect("one nonce in eight");
    let record = UnverifiedSighting::decode(&bytes).unwrap();
    assert!(
        VerifyingKey::from_bytes(record.sighting.origin.as_bytes())
            .unwrap()
            .verify_strict(
                &signing_message(&record.sighting),
                &Signature::from_bytes(&record.signature)
            )
            .is_ok(),
        "the cofactorless equation holds for this record"
    );
    assert_eq!(
        record.clone().verify().unwrap_err(),
        RecordError::InvalidOrigin
    );
    // A prime-order key signing with a nonce point that has a torsion
    // component: never valid, in a batch or alone.
    let torsion_r = hand_signed(a, B * a, Scalar::from(99_u64), t);
    let honest = signed().as_bytes().to_vec();
    for _ in 0..16 {
        let batch = vec![
            UnverifiedSighting::decode(&honest).unwrap(),
            UnverifiedSighting::decode(&bytes).unwrap(),
            UnverifiedSighting::decode(&torsion_r).unwrap(),
        ];
        let results = verify_batch(batch, &mut rand_core::OsRng);
        assert!(results[0].is_ok());
        assert_eq!(results[1], Err(RecordError::InvalidOrigin));
        assert_eq!(results[2], Err(RecordError::BadSignature));
    }
    assert_eq!(
        UnverifiedSighting::decode(&torsion_r)
            .unwrap()
            .verify()
            .unwrap_err(),
        RecordError::BadSignature
    );
    // The subgroup check agrees with curve25519-dalek's constant-time one.
    for (i, p) in [B, B * a, mixed_key, B * a + EIGHT_TORSION[4], t]
        .iter()
        .enumerate()
    {
        assert_eq!(is_prime_order(p), p.is_torsion_free(), "point {i}");
    }
}

#[test]
fn error_codes_are_distinct() {
    let all = [
        RecordError::Oversize(0),
        RecordError::Malformed(String::new()),
        RecordError::TrailingBytes(0),
        RecordError::NotAMap,
        RecordError::DuplicateKey(0),
        RecordError::UnknownKey(0),
        RecordError::UnsupportedVersion(None),
        RecordError::MissingField(""),
        RecordError::Field(FieldError::SeqZero),
        RecordError::NonCanonical,
        RecordError::InvalidOrigin,
        RecordError::BadSignature,
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(RecordError::code).collect();
    assert_eq!(codes.len(), all.len());
}

#[test]
fn key_debug_is_redacted() {
    let printed = format!("{:?}", key());
    assert!(printed.contains("redacted"));
    assert!(!printed.contains(&crate::hex_lower(&[42; 32])));
}

fn arb_sighting() -> impl Strategy<Value = Sighting> {
    (
        "[a-z0-9][a-z0-9-]{0,31}",
        1..=u64::MAX,
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        1u16..=999,
        (0u8..=10, 0u8..=6, 0u8..=2, 0u8..=4),
        proptest::option::of("[ -~àéü€]{1,16}"),
        (0u8..=100, 1u32..=u32::MAX),
        (
            0..=crate::sighting::MAX_TIMESTAMP - 2,
            0u64..1_000_000,
            proptest::option::of(1u64..1_000_000),
        ),
    )
        .prop_map(
            |(
                network,
                seq,
                number,
                block,
                cc,
                (line, kind, verdict, channel),
                brand,
                (confidence, count),
                (first, span, ttl),
            )| {
                let last = (first + span).min(crate::sighting::MAX_TIMESTAMP - 1);
                Sighting {
                    network: NetworkId::new(&network).unwrap(),
                    origin: key().origin(),
                    seq,
                    number: NumberHash::from_bytes(number),
                    block: BlockHash::from_bytes(block),
                    cc,
                    line: LineType::from_code(line.into()).unwrap(),
                    kind: Kind::from_code(kind.into()).unwrap(),
                    verdict: Verdict::from_code(verdict.into()).unwrap(),
                    channel: Channel::from_code(channel.into()).unwrap(),
                    brand,
                    confidence,
                    count,
                    first_seen: first,
                    last_seen: last,
                    expires: ttl
                        .map(|t| (last + t).min(crate::sighting::MAX_TIMESTAMP))
                        .filter(|e| *e > last),
                    links: None,
                    role: None,
                }
            },
        )
}

proptest! {
    #[test]
    fn any_valid_record_round_trips(sighting in arb_sighting()) {
        let record = sighting.clone().sign(&key()).unwrap();
        let back = SignedSighting::from_bytes(record.as_bytes()).unwrap();
        prop_assert_eq!(back.sighting(), &sighting);
        prop_assert_eq!(back.as_bytes(), record.as_bytes());
        // Encoding is a function of the content: signing again gives the same bytes.
        let again = sighting.sign(&key()).unwrap();
        prop_assert_eq!(again.as_bytes(), record.as_bytes());
        prop_assert!(record.as_bytes().len() <= MAX_RECORD_BYTES);
    }

    #[test]
    fn any_byte_change_is_caught(sighting in arb_sighting(), index in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let record = sighting.sign(&key()).unwrap();
        let mut bytes = record.as_bytes().to_vec();
        let i = index.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(SignedSighting::from_bytes(&bytes).is_err());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = SignedSighting::from_bytes(&bytes);
    }
}

#[test]
fn invalid_utf8_text_is_malformed() {
    let mut e = entries();
    e[1].1 = Value::Text("abc".into());
    let mut bytes = cbor(&Value::Map(
        e.into_iter().map(|(k, v)| (uint(k), v)).collect(),
    ));
    let at = bytes.windows(3).position(|w| w == b"abc").unwrap();
    bytes[at] = 0xff;
    assert!(
        matches!(decode_err(&bytes), RecordError::Malformed(_)),
        "{:?}",
        decode_err(&bytes)
    );
}
