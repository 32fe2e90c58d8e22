//! Values of the `current` tree: what a lookup needs of each origin's
//! current report of a number, stored next to its index entry so that a
//! lookup reads one prefix scan and decodes no record (schema 5).
//!
//! Every value starts with seq(BE) ‖ `last_seen`(BE) ‖ one code byte, so
//! supersede checks, the block-activity scan and purges read the same
//! 17 bytes whatever follows:
//!
//! - a held report: the code is its verdict (a protected number's also
//!   carries its role, [`code_of`]), followed by the rest of the
//!   report (kind, channel, line type, cc, confidence, count,
//!   `first_seen`, expires, brand; see [`encode`]), [`HELD_MIN`] bytes
//!   and the brand;
//! - a mark (the origin's latest record of the number is known but not
//!   held): seq ‖ `purge_at` ‖ [`MARK`], 17 bytes;
//! - a held report of schema 4, 17 bytes with a verdict code: only while
//!   the migration to schema 5 runs (`Handles::expand_current`).
//!
//! Pure: no sled here.

use sightline_protocol::{
    BlockHash, Channel, Kind, LineType, NetworkId, NumberHash, OriginId, Role, Sighting, Verdict,
};

use super::StoreError;

/// The code byte of a mark (no verdict has this code).
pub(super) const MARK: u8 = 0xff;

/// Length of the common prefix: seq ‖ `last_seen` or `purge_at` ‖ code.
pub(super) const PREFIX: usize = 17;

/// Length of a held report's value without its brand.
pub(super) const HELD_MIN: usize = PREFIX + 1 + 1 + 1 + 2 + 1 + 4 + 8 + 8;

/// Whether a value is a mark.
pub(super) fn is_mark(v: &[u8]) -> bool {
    v.len() == PREFIX && v[16] == MARK
}

/// Whether a value has one of the shapes above.
pub(super) fn is_valid(v: &[u8]) -> bool {
    v.len() == PREFIX || v.len() >= HELD_MIN
}

/// Whether a value is a held report of schema 4 (no compact form yet).
pub(super) fn is_legacy(v: &[u8]) -> bool {
    v.len() == PREFIX && v[16] != MARK
}

/// The seq a value names (a held report's or a mark's).
pub(super) fn seq(v: &[u8]) -> u64 {
    u64::from_be_bytes(v[..8].try_into().expect("8 bytes"))
}

/// The code byte of a held report: its verdict's code, and for a
/// protected number its role's code in the high nibble (the compact form
/// keeps no other version-2 field).
fn code_of(s: &Sighting) -> u8 {
    s.verdict.code() | s.role.map_or(0, |r| r.code() << 4)
}

/// A held report's value.
pub(super) fn encode(s: &Sighting) -> Vec<u8> {
    let brand = s.brand.as_deref().unwrap_or_default().as_bytes();
    let mut v = Vec::with_capacity(HELD_MIN + brand.len());
    v.extend_from_slice(&s.seq.to_be_bytes());
    v.extend_from_slice(&s.last_seen.to_be_bytes());
    v.push(code_of(s));
    v.push(s.kind.code());
    v.push(s.channel.code());
    v.push(s.line.code());
    v.extend_from_slice(&s.cc.to_be_bytes());
    v.push(s.confidence);
    v.extend_from_slice(&s.count.to_be_bytes());
    v.extend_from_slice(&s.first_seen.to_be_bytes());
    // A valid record's expiry is after its last_seen, so never 0.
    v.extend_from_slice(&s.expires.unwrap_or(0).to_be_bytes());
    // A valid brand is never empty.
    v.extend_from_slice(brand);
    debug_assert_eq!(v.len(), HELD_MIN + brand.len());
    v
}

/// A mark's value.
pub(super) fn mark(seq: u64, purge_at: u64) -> [u8; PREFIX] {
    let mut v = [0u8; PREFIX];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..16].copy_from_slice(&purge_at.to_be_bytes());
    v[16] = MARK;
    v
}

/// The report a held value of the compact form describes, filed under
/// `block`, `number` and `origin` (the key), in `network`.
///
/// # Errors
/// [`StoreError::Corrupt`] if the value is not a held report of the
/// compact form or a field is out of range.
pub(super) fn decode(
    network: &NetworkId,
    block: BlockHash,
    number: NumberHash,
    origin: OriginId,
    v: &[u8],
) -> Result<Sighting, StoreError> {
    const BAD: StoreError = StoreError::Corrupt("current value");
    if v.len() < HELD_MIN {
        return Err(BAD);
    }
    let u64_at = |at: usize| u64::from_be_bytes(v[at..at + 8].try_into().expect("8 bytes"));
    let brand = match &v[HELD_MIN..] {
        [] => None,
        b => Some(String::from_utf8(b.to_vec()).map_err(|_| BAD)?),
    };
    let expires = u64_at(HELD_MIN - 8);
    let verdict = Verdict::from_code((v[16] & 0x0f).into()).map_err(|_| BAD)?;
    let role = match (verdict, v[16] >> 4) {
        (Verdict::Protected, role) => Some(Role::from_code(role.into()).map_err(|_| BAD)?),
        (_, 0) => None,
        _ => return Err(BAD),
    };
    let s = Sighting {
        network: network.clone(),
        origin,
        seq: u64_at(0),
        number,
        block,
        cc: u16::from_be_bytes([v[20], v[21]]),
        line: LineType::from_code(v[19].into()).map_err(|_| BAD)?,
        kind: Kind::from_code(v[17].into()).map_err(|_| BAD)?,
        verdict,
        channel: Channel::from_code(v[18].into()).map_err(|_| BAD)?,
        brand,
        confidence: v[22],
        count: u32::from_be_bytes(v[23..27].try_into().expect("4 bytes")),
        first_seen: u64_at(27),
        last_seen: u64_at(8),
        expires: (expires != 0).then_some(expires),
        // Link tokens are not part of the compact value: a lookup never
        // needs them, and the record's wire bytes keep them. A protected
        // number's report is of version 2 (an empty list says so).
        links: role.map(|_| Vec::new()),
        role,
    };
    s.validate().map_err(|_| BAD)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_protocol::SigningKey;

    fn example(brand: Option<&str>, expires: Option<u64>) -> Sighting {
        Sighting {
            network: NetworkId::new("test-net").unwrap(),
            origin: SigningKey::from_seed(&[3; 32]).origin(),
            seq: 0x0102_0304_0506_0708,
            number: NumberHash::from_bytes([7; 32]),
            block: BlockHash::from_bytes([8; 32]),
            cc: 1,
            line: LineType::Mobile,
            kind: Kind::Callback,
            verdict: Verdict::FalsePositive,
            channel: Channel::Email,
            brand: brand.map(str::to_owned),
            confidence: 87,
            count: 123_456,
            first_seen: 1_700_000_000,
            last_seen: 1_700_000_500,
            expires,
            links: None,
            role: None,
        }
    }

    #[test]
    fn every_field_round_trips() {
        for s in [
            example(Some("Example Bank plc — fraud"), Some(1_800_000_000)),
            example(None, None),
            Sighting {
                verdict: Verdict::Protected,
                role: Some(Role::InboundOnly),
                links: Some(Vec::new()),
                ..example(Some("Example Bank"), None)
            },
            Sighting {
                verdict: Verdict::Protected,
                role: Some(Role::Outbound),
                links: Some(Vec::new()),
                ..example(None, None)
            },
        ] {
            let v = encode(&s);
            assert!(is_valid(&v) && !is_mark(&v) && !is_legacy(&v));
            assert_eq!(seq(&v), s.seq);
            let back = decode(&s.network, s.block, s.number, s.origin, &v).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn marks_and_damaged_values_are_told_apart() {
        let m = mark(9, 77);
        assert!(is_mark(&m) && is_valid(&m) && !is_legacy(&m));
        assert_eq!(seq(&m), 9);
        let s = example(None, None);
        let v = encode(&s);
        let decode = |v: &[u8]| decode(&s.network, s.block, s.number, s.origin, v);
        assert!(decode(&m).is_err(), "a mark is not a report");
        assert!(decode(&v[..HELD_MIN - 1]).is_err());
        assert!(!is_valid(&v[..HELD_MIN - 1]));
        let mut bad = v.clone();
        bad[16] |= 0x10;
        assert!(
            decode(&bad).is_err(),
            "a role on a report that protects nothing"
        );
        let mut bad = v.clone();
        bad[17] = 0xee;
        assert!(decode(&bad).is_err(), "unknown kind code");
        let mut bad = v.clone();
        bad[23..27].copy_from_slice(&0u32.to_be_bytes());
        assert!(decode(&bad).is_err(), "count 0 is not a valid report");
        let mut bad = v;
        bad.extend_from_slice(&[0xc3]);
        assert!(decode(&bad).is_err(), "brand that is not UTF-8");
    }
}
