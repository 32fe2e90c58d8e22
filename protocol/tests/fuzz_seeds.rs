//! Runs the fuzz targets' properties over their seed corpora (and every
//! crash that was ever minimized into them) on each `cargo test`, so the
//! properties hold even where cargo-fuzz is not installed.

use std::path::PathBuf;

use sightline_protocol::{parse_number, SignedSighting, UnverifiedSighting};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

#[test]
fn decode_property_holds_on_seeds() {
    let mut decoded = 0;
    for (name, data) in seeds("decode") {
        if let Ok(record) = UnverifiedSighting::decode(&data) {
            decoded += 1;
            let again = record.sighting().encode_with_signature(record.signature());
            assert_eq!(again, data, "{name}");
        }
        let _ = SignedSighting::from_bytes(&data);
    }
    assert!(decoded >= 12, "seed corpus lost its valid records");
}

#[test]
fn parse_number_property_holds_on_seeds() {
    for (name, data) in seeds("parse_number") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let (region, number) = match text.split_once('|') {
            Some((r, n)) => (Some(r), n),
            None => (None, text),
        };
        if let Ok(parsed) = parse_number(number, region) {
            let again = parse_number(parsed.e164.as_str(), None).unwrap();
            assert_eq!(again.e164, parsed.e164, "{name}");
        }
    }
}
