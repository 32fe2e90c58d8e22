//! Gateway checks per second on one core, against the raw HMAC rate
//! (SPEC.md §5's number hash) measured in the same run, and the filter's
//! measured false-positive rate against the stated one.
//!
//! `cargo bench -p sightline-gateway --bench check` (1,000,000 listed
//! numbers), `… -- --quick` (100,000; CI uses it to keep it working).
//! Target: a check of an E.164 sender at ≥ 0.5× the raw HMAC rate.

use std::hint::black_box;
use std::time::Instant;

use sightline_gateway::{Check, Checker, Filter, HashKey};
use sightline_protocol::parse_number;

/// Senders in E.164 form, valid numbers of several plans (US, FR and DE
/// mobile); `i` picks one, distinct for distinct `i`.
fn sender(i: u64) -> String {
    let j = i / 4;
    match i % 4 {
        0 => format!("+1415{:07}", 2_000_000 + j),
        1 => format!("+1646{:07}", 2_000_000 + j),
        2 => format!("+49151{j:08}"),
        _ => format!("+3361{j:07}"),
    }
}

/// Operations per second of `op` over `n` calls.
fn rate(n: u64, mut op: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    for i in 0..n {
        op(i);
    }
    #[allow(clippy::cast_precision_loss)]
    let per_second = n as f64 / start.elapsed().as_secs_f64();
    per_second
}

#[allow(clippy::cast_precision_loss)] // rates and ratios for people
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let listed: u64 = if quick { 100_000 } else { 1_000_000 };
    let probes: u64 = if quick { 200_000 } else { 2_000_000 };
    let key = HashKey::from_bytes([7; 32]);

    // The listed numbers: even i; the probes for false positives: odd i.
    let started = Instant::now();
    let keys: Vec<u64> = (0..listed)
        .map(|i| {
            let n = parse_number(&sender(2 * i), None)
                .expect("valid sender")
                .e164;
            Filter::key(&key.number_hash(&n))
        })
        .collect();
    let filter = Filter::build("bench", "high", 0, &keys).expect("filter builds");
    let bytes = filter.to_bytes();
    let built = started.elapsed();
    let checker = Checker::new(key.clone(), filter, None);

    let senders: Vec<String> = (0..probes).map(|i| sender(2 * i + 1)).collect();
    let parsed: Vec<_> = senders
        .iter()
        .map(|s| parse_number(s, None).expect("valid sender").e164)
        .collect();
    let count = probes;
    let hmac = rate(count, |i| {
        black_box(key.number_hash(black_box(&parsed[usize::try_from(i).unwrap_or(0)])));
    });
    let mut false_positives = 0u64;
    let check = rate(count, |i| {
        if let Check::Listed(_) =
            checker.check(black_box(&senders[usize::try_from(i).unwrap_or(0)]))
        {
            false_positives += 1;
        }
    });
    // Senders as people write them: the full parse, for comparison.
    let written: Vec<String> = senders
        .iter()
        .take(20_000)
        .map(|s| format!("{} {}", &s[..3], &s[3..]))
        .collect();
    let free_form = rate(written.len() as u64, |i| {
        black_box(checker.check(black_box(&written[usize::try_from(i).unwrap_or(0)])));
    });
    // Every listed number is found (no false negatives).
    let missed = (0..listed.min(20_000))
        .filter(|i| !matches!(checker.check(&sender(2 * i)), Check::Listed(_)))
        .count();
    assert_eq!(missed, 0, "listed numbers the filter missed");

    #[allow(clippy::cast_precision_loss)]
    let fpr = false_positives as f64 / count as f64;
    println!(
        "gateway check ({listed} listed numbers, {count} probes of unlisted senders; one core)"
    );
    println!(
        "  filter: {} bytes ({:.2} bytes/number), built with the hashing in {:.2} s",
        bytes.len(),
        bytes.len() as f64 / listed as f64,
        built.as_secs_f64()
    );
    println!("  raw HMAC (number hash)      {hmac:>12.0}/s   (limit)");
    println!(
        "  check, E.164 sender         {check:>12.0}/s   {:.2}x HMAC (target >= 0.5x)",
        check / hmac
    );
    println!(
        "  check, written sender       {free_form:>12.0}/s   {:.2}x HMAC (full parse, for comparison)",
        free_form / hmac
    );
    println!(
        "  false positives             {false_positives} of {count} = {:.5} % (stated {:.5} %)",
        fpr * 100.0,
        Filter::FALSE_POSITIVE_RATE * 100.0
    );
}
