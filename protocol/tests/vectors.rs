//! Test vectors: `test-vectors/sightings.json` is generated from the inputs
//! below and checked against the code on every run. Set
//! `SIGHTLINE_WRITE_VECTORS=1` to rewrite the file after an intended change
//! (and say why in the commit: the file is a compatibility promise).

use std::collections::BTreeSet;
use std::path::PathBuf;

use ciborium::value::Value;
use ed25519_dalek::Signer;
use serde_json::{json, Value as Json};
use sha2::Digest as _;
use sightline_protocol::links::{
    block1000_input, normalize_campaign, normalize_sender, script_words, url_domain,
};
use sightline_protocol::{
    parse_number, parse_number_with, Channel, HashKey, Kind, Letters, Link, LinkInput, LinkKind,
    NetworkId, Sighting, SignedSighting, SigningKey, Verdict,
};

const HASH_KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const HASH_KEY_B: &str = "5c0ffee05c0ffee05c0ffee05c0ffee05c0ffee05c0ffee05c0ffee05c0ffee0";
const SEED_BANK: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const SEED_CARRIER: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const SEED_CERT: &str = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";
const T: u64 = 1_763_700_000; // 2025-11-21T04:40:00Z

struct Input {
    name: &'static str,
    number: &'static str,
    region: Option<&'static str>,
    hash_key: &'static str,
    seed: &'static str,
    sighting: Json,
}

/// The lure a version-2 vector links (SPEC.md §13), as a user gives it.
const LURE: &str = "Example Bank: your card is ON HOLD. Verify within 24h at https://secure-login.example-bank.co.uk/verify?id=88 or call 415-555-0177 to avoid a £250 fee.";

/// A vector of record version 2: `links` as a user gives them
/// (`block1000: false` leaves the number's 1,000-block out).
fn linked(mut input: Input, links: Json) -> Input {
    input.sighting["links"] = links;
    input
}

/// A version-2 vector of a protected number (SPEC.md §13.5).
fn protected(input: Input, role: &str) -> Input {
    let mut input = linked(
        input,
        json!({ "block1000": true, "urls": [], "sender": null, "campaign": null, "message": null }),
    );
    input.sighting["role"] = json!(role);
    input
}

/// The JSON form of the sighting fields a vector's input carries.
struct Fields {
    network: &'static str,
    seq: u64,
    kind: &'static str,
    verdict: &'static str,
    channel: &'static str,
    brand: Option<&'static str>,
    confidence: u8,
    count: u32,
    first_seen: u64,
    last_seen: u64,
    expires: Option<u64>,
}

impl Fields {
    fn json(&self) -> Json {
        json!({
            "network": self.network, "seq": self.seq, "kind": self.kind,
            "verdict": self.verdict, "channel": self.channel, "brand": self.brand,
            "confidence": self.confidence, "count": self.count,
            "first_seen": self.first_seen, "last_seen": self.last_seen, "expires": self.expires,
        })
    }
}

const DEFAULT: Fields = Fields {
    network: "example-isac",
    seq: 1,
    kind: "smishing",
    verdict: "malicious",
    channel: "sms",
    brand: None,
    confidence: 50,
    count: 1,
    first_seen: T,
    last_seen: T,
    expires: None,
};

fn input(
    name: &'static str,
    number: &'static str,
    region: Option<&'static str>,
    (hash_key, seed): (&'static str, &'static str),
    fields: &Fields,
) -> Input {
    Input {
        name,
        number,
        region,
        hash_key,
        seed,
        sighting: fields.json(),
    }
}

#[allow(clippy::too_many_lines)]
fn inputs() -> Vec<Input> {
    let a_bank = (HASH_KEY_A, SEED_BANK);
    let a_carrier = (HASH_KEY_A, SEED_CARRIER);
    let a_cert = (HASH_KEY_A, SEED_CERT);
    vec![
        input(
            "us-smishing-bank-lure",
            "+1 (415) 555-0134",
            None,
            a_bank,
            &Fields {
                brand: Some("Example Bank"),
                confidence: 90,
                count: 14,
                last_seen: T + 3_600,
                expires: Some(T + 30 * 86_400),
                ..DEFAULT
            },
        ),
        input(
            "us-same-block-rotation",
            "4155550199",
            Some("US"),
            a_carrier,
            &Fields {
                brand: Some("Example Bank"),
                confidence: 75,
                count: 3,
                first_seen: T + 7_200,
                last_seen: T + 7_200,
                ..DEFAULT
            },
        ),
        input(
            "gb-vishing-national",
            "020 7946 0958",
            Some("GB"),
            a_carrier,
            &Fields {
                seq: 2,
                kind: "vishing",
                channel: "voice",
                brand: Some("HMRC"),
                confidence: 80,
                count: 2,
                last_seen: T + 60,
                ..DEFAULT
            },
        ),
        input(
            "us-toll-free-callback",
            "+1 800 555 0199",
            None,
            a_cert,
            &Fields {
                kind: "callback",
                channel: "email",
                brand: Some("Geek Squad"),
                confidence: 95,
                count: 41,
                first_seen: T - 86_400,
                expires: Some(T + 14 * 86_400),
                ..DEFAULT
            },
        ),
        input(
            "fr-voip-bec-tel-uri",
            "tel:+33-9-87-65-43-21",
            None,
            a_bank,
            &Fields {
                seq: 2,
                kind: "bec",
                channel: "email",
                confidence: 70,
                ..DEFAULT
            },
        ),
        input(
            "de-robocall-double-zero",
            "00 49 30 901820",
            None,
            a_carrier,
            &Fields {
                seq: 3,
                kind: "robocall",
                channel: "voice",
                confidence: 60,
                count: 1_200,
                first_seen: T - 3_600,
                ..DEFAULT
            },
        ),
        input(
            "au-sim-swap",
            "+61 491 570 156",
            None,
            a_bank,
            &Fields {
                seq: 3,
                kind: "sim-swap",
                channel: "other",
                confidence: 100,
                ..DEFAULT
            },
        ),
        input(
            "in-false-positive-chat",
            "+91 98765 43210",
            None,
            a_cert,
            &Fields {
                seq: 2,
                kind: "other",
                verdict: "false-positive",
                channel: "chat",
                confidence: 85,
                last_seen: T + 10,
                ..DEFAULT
            },
        ),
        input(
            "us-withdrawn-supersedes",
            "+14155550134",
            None,
            a_bank,
            &Fields {
                seq: 4,
                verdict: "withdrawn",
                confidence: 0,
                last_seen: T + 86_400,
                ..DEFAULT
            },
        ),
        input(
            "jp-voip-vishing-chat",
            "+81 50-1234-5678",
            None,
            (HASH_KEY_B, SEED_CERT),
            &Fields {
                network: "telco-cert-jp",
                kind: "vishing",
                channel: "chat",
                brand: Some("NTT ドコモ"),
                confidence: 65,
                count: 5,
                last_seen: T + 120,
                ..DEFAULT
            },
        ),
        input(
            "gb-toll-free-false-positive",
            "0800 123 4567",
            Some("GB"),
            a_bank,
            &Fields {
                seq: 5,
                kind: "callback",
                verdict: "false-positive",
                channel: "voice",
                brand: Some("Example Bank"),
                confidence: 100,
                ..DEFAULT
            },
        ),
        input(
            "gb-voip-smishing-minimal",
            "+44 56 1234 5678",
            None,
            a_carrier,
            &Fields { seq: 4, ..DEFAULT },
        ),
        input(
            "br-bec-utf8-brand",
            "+55 11 91234-5678",
            None,
            (HASH_KEY_B, SEED_BANK),
            &Fields {
                network: "latam-fraud",
                kind: "bec",
                channel: "other",
                brand: Some("Café Ltda."),
                confidence: 55,
                count: 2,
                last_seen: T + 1,
                expires: Some(T + 2),
                ..DEFAULT
            },
        ),
        input(
            "es-large-integers",
            "+34 600 123 456",
            None,
            (HASH_KEY_B, SEED_CARRIER),
            &Fields {
                network: "latam-fraud",
                seq: 4_294_967_296,
                kind: "robocall",
                channel: "voice",
                confidence: 100,
                count: 4_294_967_295,
                first_seen: 0,
                last_seen: 253_402_300_798,
                expires: Some(253_402_300_799),
                ..DEFAULT
            },
        ),
        linked(
            input(
                "v2-us-linked-bank-lure",
                "+1 415-555-0177",
                None,
                a_bank,
                &Fields {
                    seq: 7,
                    brand: Some("Example Bank"),
                    confidence: 85,
                    count: 2,
                    last_seen: T + 600,
                    ..DEFAULT
                },
            ),
            json!({
                "block1000": true,
                "urls": ["https://secure-login.example-bank.co.uk/verify?id=88", "HTTP://WWW.Parcel-Fee.EXAMPLE.com./pay"],
                "sender": "  Alerts@Example-Bank.COM ",
                "campaign": " Card  Hold\tWave ",
                "message": LURE,
            }),
        ),
        linked(
            input(
                "v2-gb-sender-id-only",
                "07911 123456",
                Some("GB"),
                a_carrier,
                &Fields {
                    kind: "smishing",
                    channel: "sms",
                    confidence: 60,
                    ..DEFAULT
                },
            ),
            json!({ "block1000": false, "urls": [], "sender": "EXAMPLE  Post", "campaign": null, "message": "Hi" }),
        ),
        linked(
            input(
                "v2-without-links",
                "+49 30 901820",
                None,
                a_cert,
                &Fields {
                    kind: "vishing",
                    channel: "voice",
                    ..DEFAULT
                },
            ),
            json!({ "block1000": false, "urls": [], "sender": null, "campaign": null, "message": null }),
        ),
        protected(
            input(
                "v2-protected-inbound-only",
                "+1 212 555 0100",
                None,
                a_bank,
                &Fields {
                    seq: 8,
                    kind: "other",
                    verdict: "protected",
                    channel: "voice",
                    brand: Some("Example Bank"),
                    confidence: 100,
                    ..DEFAULT
                },
            ),
            "inbound-only",
        ),
    ]
}

fn hex32(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn valid_vector(input: &Input) -> Json {
    let parsed = parse_number(input.number, input.region).unwrap();
    let key = HashKey::from_bytes(hex32(input.hash_key));
    let signer = SigningKey::from_seed(&hex32(input.seed));
    let j = &input.sighting;
    let (links, links_json) = vector_links(j, &key, &parsed.e164);
    let sighting = Sighting {
        network: NetworkId::new(j["network"].as_str().unwrap()).unwrap(),
        origin: signer.origin(),
        seq: j["seq"].as_u64().unwrap(),
        number: key.number_hash(&parsed.e164),
        block: key.block_hash(&parsed.e164),
        cc: parsed.country_code,
        line: parsed.line,
        kind: j["kind"].as_str().unwrap().parse::<Kind>().unwrap(),
        verdict: j["verdict"].as_str().unwrap().parse::<Verdict>().unwrap(),
        channel: j["channel"].as_str().unwrap().parse::<Channel>().unwrap(),
        brand: j["brand"].as_str().map(str::to_owned),
        confidence: u8::try_from(j["confidence"].as_u64().unwrap()).unwrap(),
        count: u32::try_from(j["count"].as_u64().unwrap()).unwrap(),
        first_seen: j["first_seen"].as_u64().unwrap(),
        last_seen: j["last_seen"].as_u64().unwrap(),
        expires: j["expires"].as_u64(),
        links,
        role: j
            .get("role")
            .and_then(Json::as_str)
            .map(|r| r.parse().unwrap()),
    };
    let body = sighting.encode_body();
    let record = sighting.clone().sign(&signer).unwrap();
    json!({
        "name": input.name,
        "input": {
            "number": input.number,
            "region": input.region,
            "hash_key": input.hash_key,
            "signing_seed": input.seed,
            "sighting": input.sighting,
        },
        "expected": {
            "e164": parsed.e164.as_str(),
            "region": parsed.region,
            "cc": parsed.country_code,
            "line": parsed.line.as_str(),
            "block_input": parsed.e164.block_prefix(),
            "number_hash": sighting.number.to_hex(),
            "block_hash": sighting.block.to_hex(),
            "origin": sighting.origin.to_hex(),
            "body": hex::encode(body),
            "signed": hex::encode(record.as_bytes()),
            "id": record.id().to_hex(),
            "links": links_json,
        },
    })
}

/// A vector's links: tokens from the user's input (`None` for version 1),
/// and for the file each link's kind, normalized input and wire entry.
fn vector_links(
    j: &Json,
    key: &HashKey,
    e164: &sightline_protocol::E164,
) -> (Option<Vec<Link>>, Json) {
    let Some(given) = j.get("links") else {
        return (None, Json::Null);
    };
    let text = |field: &str| given[field].as_str().map(str::to_owned);
    let input = LinkInput {
        urls: given["urls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect(),
        sender: text("sender"),
        campaign: text("campaign"),
        message: text("message"),
    };
    let mut links = input.tokens(key, e164).unwrap();
    if given["block1000"] == json!(false) {
        links.retain(|l| l.kind() != LinkKind::Block1000);
    }
    // Which input each token came from, for the file: each input alone
    // gives its token (beside the 1,000-block).
    let alone = |one: LinkInput, kind: LinkKind| -> Link {
        one.tokens(key, e164)
            .unwrap()
            .into_iter()
            .find(|l| l.kind() == kind)
            .unwrap()
    };
    let mut inputs: Vec<(Link, Json)> = Vec::new();
    for url in &input.urls {
        let one = LinkInput {
            urls: vec![url.clone()],
            ..LinkInput::default()
        };
        inputs.push((
            alone(one, LinkKind::UrlDomain),
            json!(url_domain(url).unwrap()),
        ));
    }
    if let Some(sender) = &input.sender {
        let one = LinkInput {
            sender: Some(sender.clone()),
            ..LinkInput::default()
        };
        let normalized = json!(normalize_sender(sender).unwrap());
        inputs.push((alone(one, LinkKind::Sender), normalized));
    }
    if let Some(tag) = &input.campaign {
        let one = LinkInput {
            campaign: Some(tag.clone()),
            ..LinkInput::default()
        };
        let normalized = json!(normalize_campaign(tag).unwrap());
        inputs.push((alone(one, LinkKind::Campaign), normalized));
    }
    if let Some(message) = &input.message {
        let one = LinkInput {
            message: Some(message.clone()),
            ..LinkInput::default()
        };
        inputs.push((alone(one, LinkKind::Script), json!(script_words(message))));
    }
    let described = links
        .iter()
        .map(|link| {
            let normalized = if link.kind() == LinkKind::Block1000 {
                json!(block1000_input(e164))
            } else {
                inputs.iter().find(|(l, _)| l == link).unwrap().1.clone()
            };
            json!({
                "kind": link.kind().name(),
                "input": normalized,
                "entry": hex::encode(link.encode()),
            })
        })
        .collect();
    (Some(links), Json::Array(described))
}

/// Raw CBOR tools for building invalid records that `sign` would refuse.
fn uint(n: u64) -> Value {
    Value::Integer(n.into())
}

fn entries_of(bytes: &[u8]) -> Vec<(u64, Value)> {
    let Value::Map(map) = ciborium::from_reader::<Value, _>(bytes).unwrap() else {
        panic!("not a map")
    };
    map.into_iter()
        .map(|(k, v)| (u64::try_from(k.as_integer().unwrap()).unwrap(), v))
        .collect()
}

fn to_cbor(entries: &[(u64, Value)]) -> Vec<u8> {
    let mut out = Vec::new();
    let map = Value::Map(entries.iter().map(|(k, v)| (uint(*k), v.clone())).collect());
    ciborium::into_writer(&map, &mut out).unwrap();
    out
}

/// Signs `entries` (without key 17) the way SPEC.md §7 says and appends the signature.
fn signed_raw(mut entries: Vec<(u64, Value)>, seed: &str) -> Vec<u8> {
    entries.retain(|(k, _)| *k != 17);
    let mut message = b"sightline/sighting/v1".to_vec();
    message.extend_from_slice(&to_cbor(&entries));
    let key = ed25519_dalek::SigningKey::from_bytes(&hex32(seed));
    // Key 17 goes before the keys above it (version 2's 18 and 19), as
    // in a canonical record; the other keys keep the order they came in.
    let at = entries
        .iter()
        .position(|(k, _)| *k > 17)
        .unwrap_or(entries.len());
    entries.insert(
        at,
        (17, Value::Bytes(key.sign(&message).to_bytes().to_vec())),
    );
    to_cbor(&entries)
}

fn set(mut entries: Vec<(u64, Value)>, key: u64, value: Value) -> Vec<(u64, Value)> {
    if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else {
        entries.push((key, value));
        entries.sort_by_key(|(k, _)| *k);
    }
    entries
}

#[allow(clippy::too_many_lines)]
fn invalid_vectors(valid: &[Json]) -> Vec<Json> {
    let base = hex::decode(valid[0]["expected"]["signed"].as_str().unwrap()).unwrap();
    let e = || entries_of(&base);
    let resign = |entries| signed_raw(entries, SEED_BANK);
    let mut out: Vec<(&str, Vec<u8>, &str, &str)> = Vec::new();
    let mut push = |name, bytes, error, note| out.push((name, bytes, error, note));

    let mut unsorted = e();
    unsorted.swap(1, 2);
    push(
        "keys-not-sorted",
        to_cbor(&unsorted),
        "non_canonical",
        "map keys 1 and 2 swapped",
    );

    let mut long_int = vec![base[0], 0x00, 0x18, 0x01];
    long_int.extend_from_slice(&base[3..]);
    push(
        "version-not-shortest-form",
        long_int,
        "non_canonical",
        "version 1 encoded as 0x18 0x01",
    );

    let mut indefinite = vec![0xbf];
    indefinite.extend_from_slice(&base[1..]);
    indefinite.push(0xff);
    push(
        "indefinite-length-map",
        indefinite,
        "non_canonical",
        "the map as indefinite-length",
    );

    let mut tampered = e();
    tampered[12].1 = uint(10);
    push(
        "confidence-changed-after-signing",
        to_cbor(&tampered),
        "bad_signature",
        "confidence 90 changed to 10, signature kept",
    );

    let other = SigningKey::from_seed(&hex32(SEED_CERT)).origin();
    push(
        "origin-swapped",
        to_cbor(&set(e(), 2, Value::Bytes(other.as_bytes().to_vec()))),
        "bad_signature",
        "origin replaced by another member's key",
    );

    // With A = identity, R = [r]B and S = r satisfy the cofactorless
    // equation for any message: the signature "verifies" unless small-order
    // keys are refused, so the weak key is the only flaw.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let r = curve25519_dalek::Scalar::from(12_345_u64);
    let forged_sig = [curve25519_dalek::constants::ED25519_BASEPOINT_POINT * r][0]
        .compress()
        .to_bytes()
        .into_iter()
        .chain(r.to_bytes())
        .collect::<Vec<u8>>();
    let mut weak = set(e(), 2, Value::Bytes(identity.to_vec()));
    weak.last_mut().unwrap().1 = Value::Bytes(forged_sig);
    push(
        "origin-small-order",
        to_cbor(&weak),
        "invalid_origin",
        "origin is the identity point; the signature satisfies the equation for that key",
    );

    // Keys and nonces with a small-order component (SPEC §7 conditions 1
    // and 2): the secret scalar 777, T a point of order 8.
    let base_point = curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    let torsion = curve25519_dalek::constants::EIGHT_TORSION[1];
    let secret = curve25519_dalek::Scalar::from(777_u64);
    let hand_sign = |entries: Vec<(u64, Value)>, r: u64, extra: curve25519_dalek::EdwardsPoint| {
        let mut entries = entries;
        entries.retain(|(k, _)| *k != 17);
        let origin = match &entries.iter().find(|(k, _)| *k == 2).unwrap().1 {
            Value::Bytes(b) => b.clone(),
            _ => unreachable!(),
        };
        let mut message = b"sightline/sighting/v1".to_vec();
        message.extend_from_slice(&to_cbor(&entries));
        let nonce = curve25519_dalek::Scalar::from(r);
        let big_r = (base_point * nonce + extra).compress().to_bytes();
        let k = curve25519_dalek::Scalar::from_bytes_mod_order_wide(
            &sha2::Sha512::new()
                .chain_update(big_r)
                .chain_update(&origin)
                .chain_update(&message)
                .finalize()
                .into(),
        );
        let mut signature = big_r.to_vec();
        signature.extend_from_slice(&(nonce + k * secret).to_bytes());
        entries.push((17, Value::Bytes(signature)));
        (to_cbor(&entries), k)
    };
    let mixed_key = (base_point * secret + torsion).compress().to_bytes();
    let (mixed_origin, _) = (1..200)
        .map(|r| {
            hand_sign(
                set(e(), 2, Value::Bytes(mixed_key.to_vec())),
                r,
                curve25519_dalek::EdwardsPoint::default(),
            )
        })
        .find(|(_, k)| curve25519_dalek::traits::IsIdentity::is_identity(&(torsion * k)))
        .unwrap();
    push(
        "origin-mixed-order",
        mixed_origin,
        "invalid_origin",
        "origin is [777]B + T with T of order 8, and the nonce was chosen so that the cofactorless equation holds: only the prime-order check refuses it",
    );
    let prime_key = (base_point * secret).compress().to_bytes();
    let (torsion_r, _) = hand_sign(set(e(), 2, Value::Bytes(prime_key.to_vec())), 99, torsion);
    push(
        "signature-r-mixed-order",
        torsion_r,
        "bad_signature",
        "origin [777]B; R = [99]B + T with T of order 8 and S = 99 + k*777: R is not of prime order",
    );

    let mut oversize = base.clone();
    oversize.resize(1025, 0);
    push(
        "oversize",
        oversize,
        "oversize",
        "1025 bytes: the first vector padded with zeros",
    );

    push(
        "unknown-version",
        resign(set(e(), 0, uint(3))),
        "unsupported_version",
        "version 3",
    );
    push(
        "confidence-101",
        resign(set(e(), 12, uint(101))),
        "invalid_field",
        "confidence 101",
    );
    push(
        "count-zero",
        resign(set(e(), 13, uint(0))),
        "invalid_field",
        "count 0",
    );
    push(
        "last-seen-before-first-seen",
        resign(set(e(), 15, uint(T - 1))),
        "invalid_field",
        "last_seen one second before first_seen",
    );
    push(
        "unknown-kind",
        resign(set(e(), 8, uint(7))),
        "invalid_field",
        "kind code 7",
    );
    push(
        "brand-too-long",
        resign(set(e(), 11, Value::Text("B".repeat(65)))),
        "invalid_field",
        "brand of 65 bytes",
    );
    push(
        "network-uppercase",
        resign(set(e(), 1, Value::Text("Example-ISAC".into()))),
        "invalid_field",
        "network id with upper-case letters",
    );
    let mut extra = e();
    extra.push((18, uint(0)));
    push(
        "unknown-key-18",
        to_cbor(&extra),
        "unknown_key",
        "the valid record with key 18 appended after key 17",
    );
    push(
        "missing-seq",
        resign(e().into_iter().filter(|(k, _)| *k != 3).collect()),
        "missing_field",
        "key 3 (seq) absent",
    );
    let mut dup = e();
    dup.insert(4, (3, uint(1)));
    push(
        "duplicate-seq",
        to_cbor(&dup),
        "duplicate_key",
        "key 3 (seq) twice",
    );
    let mut trailing = base.clone();
    trailing.push(0x00);
    push(
        "trailing-byte",
        trailing,
        "trailing_bytes",
        "a 0x00 byte after the record",
    );
    push(
        "truncated",
        base[..base.len() - 1].to_vec(),
        "malformed",
        "the last byte removed",
    );
    push(
        "array-not-map",
        vec![0x82, 0x01, 0x02],
        "not_a_map",
        "the array [1, 2]",
    );

    let v2 = valid
        .iter()
        .find(|v| v["name"] == "v2-us-linked-bank-lure")
        .unwrap();
    out.extend(invalid_v2(v2));
    let protected = valid
        .iter()
        .find(|v| v["name"] == "v2-protected-inbound-only")
        .unwrap();
    out.extend(invalid_protected(protected, &base));
    out.into_iter()
        .map(|(name, bytes, error, note)| {
            json!({"name": name, "bytes": hex::encode(bytes), "error": error, "note": note})
        })
        .collect()
}

/// Invalid version-2 records (SPEC.md §13.2), derived from `v2`: each has
/// one flaw in the version, key 18 or its entries; all are re-signed
/// except the unsorted one, which keeps the canonical body's signature.
fn invalid_v2(v2: &Json) -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    let base = hex::decode(v2["expected"]["signed"].as_str().unwrap()).unwrap();
    let e = || entries_of(&base);
    let resign = |entries| signed_raw(entries, SEED_BANK);
    let links = || match e().into_iter().find(|(k, _)| *k == 18).unwrap().1 {
        Value::Array(items) => items,
        _ => panic!("key 18 is an array"),
    };
    let with_links = |items: Vec<Value>| resign(set(e(), 18, Value::Array(items)));
    let mut out = vec![(
        "v2-links-in-version-1",
        resign(set(e(), 0, uint(1))),
        "unknown_key",
        "version 1 with key 18: version 1 defines keys 0-17 only",
    )];
    out.push((
        "v2-key-20",
        resign(set(e(), 20, uint(0))),
        "unknown_key",
        "key 20 in a version-2 record",
    ));
    out.push((
        "v2-role-without-protected",
        resign(set(e(), 19, uint(0))),
        "invalid_field",
        "key 19 (role) in a malicious report",
    ));
    out.push((
        "v2-links-empty",
        with_links(Vec::new()),
        "invalid_field",
        "key 18 is an empty array (no links: key 18 is omitted)",
    ));
    out.push((
        "v2-links-not-an-array",
        resign(set(e(), 18, Value::Bytes(vec![0; 33]))),
        "invalid_field",
        "key 18 is a byte string",
    ));
    let mut unknown_kind = links();
    unknown_kind.push(Value::Bytes([vec![5], vec![0; 32]].concat()));
    out.push((
        "v2-link-unknown-kind",
        with_links(unknown_kind),
        "invalid_field",
        "an entry of kind 5",
    ));
    let mut short = links();
    short[0] = Value::Bytes(vec![0; 32]);
    out.push((
        "v2-link-short-entry",
        with_links(short),
        "invalid_field",
        "a url_domain entry of 31 token bytes",
    ));
    let mut text_entry = links();
    text_entry[0] = Value::Text("example.com".into());
    out.push((
        "v2-link-text-entry",
        with_links(text_entry),
        "invalid_field",
        "an entry that is a text string",
    ));
    let mut repeated = links();
    repeated.insert(0, repeated[0].clone());
    out.push((
        "v2-link-repeated",
        with_links(repeated),
        "invalid_field",
        "the first entry twice",
    ));
    let mut nine = links();
    for i in 0..4u8 {
        nine.push(Value::Bytes([vec![3], vec![i; 32]].concat()));
    }
    nine.sort_by(|a, b| a.as_bytes().unwrap().cmp(b.as_bytes().unwrap()));
    out.push((
        "v2-nine-links",
        with_links(nine),
        "invalid_field",
        "nine entries, sorted and distinct",
    ));
    let mut two_blocks = links();
    two_blocks.push(Value::Bytes([vec![4], vec![0xff; 32]].concat()));
    out.push((
        "v2-two-block1000-links",
        with_links(two_blocks),
        "invalid_field",
        "two block1000 entries",
    ));
    let mut reversed = links();
    reversed.reverse();
    out.push((
        "v2-links-not-sorted",
        to_cbor(&set(e(), 18, Value::Array(reversed))),
        "non_canonical",
        "the entries in descending order; the signature of the canonical record kept",
    ));
    out
}

/// Invalid protected-number records (SPEC.md §13.5): one flaw each in the
/// verdict or the role, re-signed.
fn invalid_protected(
    protected: &Json,
    v1: &[u8],
) -> Vec<(&'static str, Vec<u8>, &'static str, &'static str)> {
    let bytes = hex::decode(protected["expected"]["signed"].as_str().unwrap()).unwrap();
    let e = || entries_of(&bytes);
    let resign = |entries| signed_raw(entries, SEED_BANK);
    let without_role: Vec<(u64, Value)> = e().into_iter().filter(|(k, _)| *k != 19).collect();
    vec![
        (
            "v2-protected-without-role",
            resign(without_role),
            "invalid_field",
            "verdict 3 (protected) without key 19",
        ),
        (
            "v2-role-out-of-range",
            resign(set(e(), 19, uint(2))),
            "invalid_field",
            "role 2",
        ),
        (
            "v1-protected",
            signed_raw(set(entries_of(v1), 9, uint(3)), SEED_BANK),
            "invalid_field",
            "verdict 3 (protected) in a version-1 record",
        ),
        (
            "v1-role",
            signed_raw(set(entries_of(v1), 19, uint(0)), SEED_BANK),
            "unknown_key",
            "key 19 in a version-1 record",
        ),
    ]
}

/// Number-normalization cases (§2) beyond the valid vectors' inputs: how
/// letters, extensions and the `tel:` scheme are read.
const NUMBER_CASES: &[(&str, &str, Option<&str>, bool)] = &[
    ("letter-o-for-zero", "+1 415 555 01O1", None, false),
    (
        "one-letter-is-no-vanity-word",
        "+1 415 555 01O1",
        None,
        true,
    ),
    ("vanity-toll-free", "+1-800-FLOWERS", None, false),
    ("vanity-toll-free-opted-in", "+1-800-FLOWERS", None, true),
    ("letter-l-for-one", "020 7946 0l58", Some("GB"), false),
    ("tel-uri-is-not-letters", "tel:+1-415-555-0134", None, false),
    (
        "extension-before-letters",
        "+1 415 555 0134 ext. 12",
        None,
        false,
    ),
    // Numbering plans (metadata release in §2): the national prefix is
    // removed only when a number of the plan remains, leading zeros stay
    // in the national number, and a shared calling code resolves to the
    // region whose plan assigns the number.
    ("ru-toll-free", "+7 800 123-45-67", None, false),
    (
        "ru-toll-free-with-national-prefix",
        "8 800 123-45-67",
        Some("RU"),
        false,
    ),
    ("by-toll-free-keeps-its-80", "8011234567", Some("BY"), false),
    ("lt-toll-free", "+370 800 12345", None, false),
    ("it-fixed-leading-zero", "+39 02 1234 5678", None, false),
    (
        "va-shares-the-italian-code",
        "+39 06 698 12345",
        None,
        false,
    ),
    ("kz-shares-the-russian-code", "+7 771 000 9998", None, false),
    (
        "unassigned-within-the-lengths",
        "+7 000 123 45 67",
        None,
        false,
    ),
];

fn number_vectors() -> Vec<Json> {
    NUMBER_CASES
        .iter()
        .map(|(name, input, region, vanity)| {
            let letters = if *vanity {
                Letters::Vanity
            } else {
                Letters::Refuse
            };
            let expected = match parse_number_with(input, *region, letters) {
                Ok(n) => json!({
                    "e164": n.e164.as_str(),
                    "cc": n.country_code,
                    "region": n.region,
                    "line": n.line.as_str(),
                }),
                Err(e) => json!({ "error": e.code() }),
            };
            json!({
                "name": name,
                "input": { "number": input, "region": region, "vanity": vanity },
                "expected": expected,
            })
        })
        .collect()
}

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-vectors/sightings.json")
}

fn generate() -> Json {
    let valid: Vec<Json> = inputs().iter().map(valid_vector).collect();
    let invalid = invalid_vectors(&valid);
    json!({
        "description": "Sightline sighting test vectors, record versions 1 and 2. See protocol/SPEC.md sections 9 and 13.",
        "vectors": valid,
        "invalid": invalid,
        "numbers": number_vectors(),
    })
}

#[test]
fn vectors_file_matches_the_code() {
    let generated = generate();
    if std::env::var_os("SIGHTLINE_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(path(), text).unwrap();
    }
    let on_disk: Json = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    assert_eq!(
        on_disk, generated,
        "test-vectors/sightings.json differs from the code's output"
    );
}

#[test]
fn every_vector_decodes_or_fails_as_stated() {
    let file: Json = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    let invalid = file["invalid"].as_array().unwrap();
    assert!(vectors.len() >= 12 && invalid.len() >= 8);
    for v in vectors {
        let signed = hex::decode(v["expected"]["signed"].as_str().unwrap()).unwrap();
        let record = SignedSighting::from_bytes(&signed).unwrap();
        assert_eq!(record.id().to_hex(), v["expected"]["id"].as_str().unwrap());
        assert_eq!(
            record.sighting().number.to_hex(),
            v["expected"]["number_hash"].as_str().unwrap()
        );
    }
    for v in invalid {
        let bytes = hex::decode(v["bytes"].as_str().unwrap()).unwrap();
        let err = SignedSighting::from_bytes(&bytes).unwrap_err();
        assert_eq!(
            err.code(),
            v["error"].as_str().unwrap(),
            "{}: {err}",
            v["name"]
        );
    }
}

#[test]
fn number_vectors_refuse_letters_unless_vanity_is_asked_for() {
    let numbers = number_vectors();
    let expected =
        |name: &str| numbers.iter().find(|v| v["name"] == name).unwrap()["expected"].clone();
    assert_eq!(
        expected("letter-o-for-zero"),
        json!({"error": "has_letters"})
    );
    assert_eq!(
        expected("one-letter-is-no-vanity-word"),
        json!({"error": "has_letters"})
    );
    assert_eq!(
        expected("vanity-toll-free-opted-in")["e164"],
        json!("+18003569377")
    );
    assert_eq!(
        expected("letter-l-for-one"),
        json!({"error": "has_letters"})
    );
    assert_eq!(
        expected("tel-uri-is-not-letters")["e164"],
        json!("+14155550134")
    );
    assert_eq!(
        expected("extension-before-letters"),
        json!({"error": "has_extension"})
    );
}

#[test]
fn number_vectors_read_numbering_plans_as_libphonenumber_does() {
    let numbers = number_vectors();
    let expected =
        |name: &str| numbers.iter().find(|v| v["name"] == name).unwrap()["expected"].clone();
    let ru_toll_free =
        json!({"e164": "+78001234567", "cc": 7, "region": "RU", "line": "toll-free"});
    assert_eq!(expected("ru-toll-free"), ru_toll_free);
    assert_eq!(expected("ru-toll-free-with-national-prefix"), ru_toll_free);
    assert_eq!(
        expected("by-toll-free-keeps-its-80")["e164"],
        json!("+3758011234567")
    );
    assert_eq!(expected("it-fixed-leading-zero")["line"], json!("fixed"));
    assert_eq!(
        expected("va-shares-the-italian-code")["region"],
        json!("VA")
    );
    assert_eq!(
        expected("kz-shares-the-russian-code")["region"],
        json!("KZ")
    );
    assert_eq!(
        expected("unassigned-within-the-lengths"),
        json!({"error": "invalid_for_region"})
    );
}

#[test]
fn vectors_cover_every_enumeration_and_five_countries() {
    let valid: Vec<Json> = inputs().iter().map(valid_vector).collect();
    let field = |f: &str| -> BTreeSet<String> {
        valid
            .iter()
            .map(|v| v["input"]["sighting"][f].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(field("kind").len(), Kind::ALL.len());
    assert_eq!(field("verdict").len(), Verdict::ALL.len());
    assert_eq!(field("channel").len(), Channel::ALL.len());
    let countries: BTreeSet<_> = valid
        .iter()
        .map(|v| v["expected"]["region"].as_str().unwrap().to_owned())
        .collect();
    assert!(countries.len() >= 5, "{countries:?}");
    let lines: Vec<_> = valid
        .iter()
        .map(|v| v["expected"]["line"].as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&"voip") && lines.contains(&"toll-free"),
        "{lines:?}"
    );
}
