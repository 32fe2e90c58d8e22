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

fn sample_sync_messages() -> Vec<(&'static str, Vec<u8>)> {
    use sightline_protocol::catchup::{CatchUpRequest, CatchUpResponse, ProgressEntry};
    let entry = ProgressEntry {
        origin: [7; 32],
        count: 3,
        max_seq: 9,
        contiguous: 2,
        digest: [1; 32],
    };
    vec![
        (
            "request-progress",
            cbor4ii::serde::to_vec(Vec::new(), &CatchUpRequest::Progress(vec![entry])).unwrap(),
        ),
        (
            "request-pull",
            cbor4ii::serde::to_vec(
                Vec::new(),
                &CatchUpRequest::Pull {
                    origin: [7; 32],
                    after: 4,
                    limit: 256,
                },
            )
            .unwrap(),
        ),
        (
            "response-progress",
            cbor4ii::serde::to_vec(Vec::new(), &CatchUpResponse::Progress(vec![entry, entry]))
                .unwrap(),
        ),
        (
            "response-records",
            cbor4ii::serde::to_vec(
                Vec::new(),
                &CatchUpResponse::Records {
                    records: vec![
                        serde_bytes::ByteBuf::from(vec![0xa0]),
                        serde_bytes::ByteBuf::from(vec![1, 2, 3]),
                    ],
                    more: true,
                },
            )
            .unwrap(),
        ),
        (
            "response-busy",
            cbor4ii::serde::to_vec(Vec::new(), &CatchUpResponse::Busy).unwrap(),
        ),
    ]
}

#[test]
fn sync_decode_property_holds_on_seeds() {
    use sightline_protocol::catchup::{CatchUpRequest, CatchUpResponse};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/sync_decode");
    if std::env::var_os("SIGHTLINE_WRITE_SEEDS").is_some() {
        for (name, bytes) in sample_sync_messages() {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut decoded = 0;
    for (name, data) in seeds("sync_decode") {
        if let Ok(request) = cbor4ii::serde::from_slice::<CatchUpRequest>(&data) {
            decoded += 1;
            let bytes = cbor4ii::serde::to_vec(Vec::new(), &request).unwrap();
            assert_eq!(
                cbor4ii::serde::from_slice::<CatchUpRequest>(&bytes).unwrap(),
                request,
                "{name}"
            );
        }
        if let Ok(response) = cbor4ii::serde::from_slice::<CatchUpResponse>(&data) {
            decoded += 1;
            let bytes = cbor4ii::serde::to_vec(Vec::new(), &response).unwrap();
            assert_eq!(
                cbor4ii::serde::from_slice::<CatchUpResponse>(&bytes).unwrap(),
                response,
                "{name}"
            );
        }
    }
    assert!(decoded >= 5, "seed corpus lost its valid messages");
}

#[test]
fn csv_import_property_holds_on_seeds() {
    let mut rows = 0;
    for (name, data) in seeds("csv_import") {
        for region in [None, Some("US")] {
            if let Ok(import) = sightline_protocol::import::parse_csv(data.as_slice(), region) {
                rows += import.rows.len();
                for row in &import.rows {
                    assert!(parse_number(&row.number, region).is_ok(), "{name}");
                }
            }
        }
    }
    assert!(rows >= 3, "seed corpus lost its valid rows");
}
