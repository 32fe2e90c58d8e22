//! Protocol micro-benchmarks: parse, hash, encode, decode, sign, verify,
//! batch verify. A std harness (no criterion) that prints one table; rates
//! are also shown as ratios against raw single-core ed25519 strict
//! verification measured in the same run, so figures from noisy shared
//! machines stay comparable.
//!
//! `cargo bench -p sightline-protocol --bench protocol` (full),
//! `… -- --quick` (a few milliseconds per row; CI uses it to keep it working).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::Signer;
use sightline_protocol::{
    parse_number, verify_batch, Channel, HashKey, Kind, NetworkId, Sighting, SignedSighting,
    SigningKey, UnverifiedSighting, Verdict,
};

const INPUTS: &[&str] = &[
    "+1 (415) 555-0134",
    "+44 20 7946 0958",
    "tel:+33-9-87-65-43-21",
    "00 49 30 901820",
    "+61 491 570 156",
    "+91 98765 43210",
    "+81 50-1234-5678",
    "+55 11 91234-5678",
];

struct Row {
    name: &'static str,
    ns_per_op: f64,
}

/// Median time per operation over `rounds` rounds of `round_time` each.
/// `op` performs `per_call` operations per call.
fn measure(round_time: Duration, rounds: usize, per_call: usize, mut op: impl FnMut()) -> f64 {
    // Warm up and find a call count that fills a round.
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < round_time / 4 || calls == 0 {
        op();
        calls += 1;
    }
    let calls_per_round = (calls * 4).max(1);
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls_per_round {
                op();
            }
            #[allow(clippy::cast_precision_loss)]
            let per_op =
                start.elapsed().as_nanos() as f64 / (calls_per_round as f64 * per_call as f64);
            per_op
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn record(key: &SigningKey, hash_key: &HashKey, seq: u64, input: &str) -> SignedSighting {
    let parsed = parse_number(input, None).expect("bench inputs are valid");
    Sighting {
        network: NetworkId::new("bench-net").expect("valid id"),
        origin: key.origin(),
        seq,
        number: hash_key.number_hash(&parsed.e164),
        block: hash_key.block_hash(&parsed.e164),
        cc: parsed.country_code,
        line: parsed.line,
        kind: Kind::Smishing,
        verdict: Verdict::Malicious,
        channel: Channel::Sms,
        brand: Some("Example Bank".into()),
        confidence: 80,
        count: 3,
        first_seen: 1_763_700_000,
        last_seen: 1_763_703_600,
        expires: None,
        links: None,
        role: None,
    }
    .sign(key)
    .expect("valid record")
}

#[allow(clippy::too_many_lines)]
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (round, rounds) = if quick {
        (Duration::from_millis(5), 3)
    } else {
        (Duration::from_millis(300), 7)
    };
    let hash_key = HashKey::from_bytes([7; 32]);
    let keys: Vec<SigningKey> = (0u8..8)
        .map(|i| SigningKey::from_seed(&[i.wrapping_add(1); 32]))
        .collect();
    let records: Vec<SignedSighting> = (0..1024u64)
        .map(|i| {
            #[allow(clippy::cast_possible_truncation)]
            let idx = i as usize;
            record(
                &keys[idx % keys.len()],
                &hash_key,
                i + 1,
                INPUTS[idx % INPUTS.len()],
            )
        })
        .collect();
    let wire: Vec<Vec<u8>> = records.iter().map(|r| r.as_bytes().to_vec()).collect();
    let parsed: Vec<_> = INPUTS
        .iter()
        .map(|i| parse_number(i, None).expect("valid"))
        .collect();
    let mut rows = Vec::new();
    let mut i = 0usize;

    // The physical limit: raw ed25519-dalek strict verification of a message
    // the size of a record body, no decoding.
    let raw_key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let raw_message = vec![0x5a_u8; 250];
    let raw_sig = raw_key.sign(&raw_message);
    let raw_vk = raw_key.verifying_key();
    let raw_verify = measure(round, rounds, 1, || {
        raw_vk
            .verify_strict(black_box(&raw_message), black_box(&raw_sig))
            .expect("valid");
    });
    rows.push(Row {
        name: "raw ed25519 verify_strict (limit)",
        ns_per_op: raw_verify,
    });

    rows.push(Row {
        name: "parse_number",
        ns_per_op: measure(round, rounds, 1, || {
            i = (i + 1) % INPUTS.len();
            black_box(parse_number(black_box(INPUTS[i]), None).expect("valid"));
        }),
    });
    // The same numbers as gateways and the API mostly send them.
    let e164: Vec<String> = parsed.iter().map(|p| p.e164.as_str().to_owned()).collect();
    rows.push(Row {
        name: "parse_number, E.164 input",
        ns_per_op: measure(round, rounds, 1, || {
            i = (i + 1) % e164.len();
            black_box(parse_number(black_box(&e164[i]), None).expect("valid"));
        }),
    });
    rows.push(Row {
        name: "number_hash (one HMAC-SHA256)",
        ns_per_op: measure(round, rounds, 1, || {
            i = (i + 1) % parsed.len();
            black_box(hash_key.number_hash(black_box(&parsed[i].e164)));
        }),
    });
    rows.push(Row {
        name: "number_hash + block_hash",
        ns_per_op: measure(round, rounds, 1, || {
            i = (i + 1) % parsed.len();
            let e = &parsed[i].e164;
            black_box((hash_key.number_hash(black_box(e)), hash_key.block_hash(e)));
        }),
    });
    rows.push(Row {
        name: "encode body",
        ns_per_op: measure(round, rounds, 1, || {
            i = (i + 1) % records.len();
            black_box(records[i].sighting().encode_body());
        }),
    });
    rows.push(Row {
        name: "decode (no verify)",
        ns_per_op: measure(round, rounds, 1, || {
            i = (i + 1) % wire.len();
            black_box(UnverifiedSighting::decode(black_box(&wire[i])).expect("valid"));
        }),
    });
    rows.push(Row {
        name: "sign (encode + ed25519 sign)",
        ns_per_op: measure(round, rounds, 1, || {
            i = (i + 1) % records.len();
            let s = records[i].sighting().clone();
            let key = keys.iter().find(|k| k.origin() == s.origin).expect("key");
            black_box(s.sign(key).expect("valid"));
        }),
    });
    rows.push(Row {
        name: "decode + strict verify",
        ns_per_op: measure(round, rounds, 1, || {
            i = (i + 1) % wire.len();
            black_box(SignedSighting::from_bytes(black_box(&wire[i])).expect("valid"));
        }),
    });
    for batch in [16usize, 64, 256] {
        let decoded: Vec<Vec<UnverifiedSighting>> = wire
            .chunks(batch)
            .map(|c| {
                c.iter()
                    .map(|b| UnverifiedSighting::decode(b).expect("valid"))
                    .collect()
            })
            .collect();
        let mut j = 0usize;
        let ns = measure(round, rounds, batch, || {
            j = (j + 1) % decoded.len();
            let results = verify_batch(black_box(decoded[j].clone()), &mut rand_core::OsRng);
            assert!(results.iter().all(Result::is_ok));
        });
        rows.push(Row {
            name: match batch {
                16 => "batch verify (16/batch)",
                64 => "batch verify (64/batch)",
                _ => "batch verify (256/batch)",
            },
            ns_per_op: ns,
        });
    }

    println!(
        "sightline-protocol benchmarks ({}), one core, median of {rounds} rounds",
        if quick { "quick" } else { "full" }
    );
    println!(
        "{:<36} {:>12} {:>14} {:>16}",
        "operation", "ns/op", "ops/s", "vs raw verify"
    );
    for row in &rows {
        println!(
            "{:<36} {:>12.0} {:>14.0} {:>15.2}x",
            row.name,
            row.ns_per_op,
            1e9 / row.ns_per_op,
            raw_verify / row.ns_per_op
        );
    }
}
