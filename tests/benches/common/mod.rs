//! What both benchmark harnesses measure the same way: the same-run
//! limits and the way figures are printed.

// A harness casts counts to f64 to print them.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::time::Instant;

/// Runs `f` repeatedly for about `secs`; returns operations per second
/// (`f` returns how many operations it did).
pub(crate) fn rate(secs: f64, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut ops = 0;
    while start.elapsed().as_secs_f64() < secs {
        ops += f();
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

/// Bytes of the files under `dir`, recursively (a store's size on disk).
#[allow(dead_code)] // The reconciliation harness has no store.
pub(crate) fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let meta = entry.metadata().expect("metadata");
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// A `/proc/<pid>/status` figure in KiB (`field`: `VmRSS:`, `VmHWM:`).
#[allow(dead_code)] // The reconciliation harness measures no process.
pub(crate) fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("proc status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Raw single-core ed25519 `verify_strict` rate over 250-byte messages.
pub(crate) fn raw_verify_rate(secs: f64) -> f64 {
    use ed25519_dalek::{Signer, SigningKey as DalekKey};
    let key = DalekKey::from_bytes(&[7u8; 32]);
    let message = [0xa5u8; 250];
    let signature = key.sign(&message);
    let public = key.verifying_key();
    rate(secs, || {
        for _ in 0..64 {
            public
                .verify_strict(std::hint::black_box(&message), &signature)
                .expect("valid");
        }
        64
    })
}

/// A rate as people read it: thousands separated, one decimal below 100.
pub(crate) fn fmt_rate(r: f64) -> String {
    if r >= 100.0 {
        let n = r.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{r:.1}")
    }
}
