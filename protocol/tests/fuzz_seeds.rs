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

/// Catch-up version 2's messages (SPEC §11.2), one of each.
fn sample_reconcile_messages() -> Vec<(&'static str, Vec<u8>)> {
    use sightline_protocol::catchup::{item_id, ReconcileRequest, ReconcileResponse, SetSummary};
    let cbor = |v: &dyn erased::Cbor| v.bytes();
    let summary = SetSummary {
        origin: [7; 32],
        count: 3,
        max_seq: 9,
        digest: [1; 32],
    };
    let item = serde_bytes::ByteBuf::from(item_id(9, &[5; 32]).to_vec());
    vec![
        ("v2-request-summary", cbor(&ReconcileRequest::Summary)),
        (
            "v2-request-reconcile",
            cbor(&ReconcileRequest::Reconcile {
                origin: [7; 32],
                message: serde_bytes::ByteBuf::from(vec![0x61, 0x00, 0x00]),
            }),
        ),
        (
            "v2-request-fetch",
            cbor(&ReconcileRequest::Fetch {
                origin: [7; 32],
                items: vec![item],
            }),
        ),
        (
            "v2-response-summary",
            cbor(&ReconcileResponse::Summary(vec![summary])),
        ),
        (
            "v2-response-reconcile",
            cbor(&ReconcileResponse::Reconcile {
                message: serde_bytes::ByteBuf::from(vec![0x61]),
            }),
        ),
        (
            "v2-response-records",
            cbor(&ReconcileResponse::Records {
                records: vec![serde_bytes::ByteBuf::from(vec![0xa0])],
            }),
        ),
        ("v2-response-busy", cbor(&ReconcileResponse::Busy)),
        ("v2-response-invalid", cbor(&ReconcileResponse::Invalid)),
    ]
}

/// CBOR of any of the messages, for the seed lists.
mod erased {
    pub(super) trait Cbor {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Cbor for T {
        fn bytes(&self) -> Vec<u8> {
            cbor4ii::serde::to_vec(Vec::new(), self).unwrap()
        }
    }
}

#[test]
fn sync_decode_property_holds_on_seeds() {
    use sightline_protocol::catchup::{
        CatchUpRequest, CatchUpResponse, ReconcileRequest, ReconcileResponse,
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/sync_decode");
    if std::env::var_os("SIGHTLINE_WRITE_SEEDS").is_some() {
        for (name, bytes) in sample_sync_messages()
            .into_iter()
            .chain(sample_reconcile_messages())
        {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut decoded = 0;
    for (name, data) in seeds("sync_decode") {
        decoded += round_trip::<CatchUpRequest>(&name, &data)
            + round_trip::<CatchUpResponse>(&name, &data)
            + round_trip::<ReconcileRequest>(&name, &data)
            + round_trip::<ReconcileResponse>(&name, &data);
    }
    assert!(decoded >= 13, "seed corpus lost its valid messages");
}

/// The `sync_decode` property for one message type: whatever `data`
/// decodes to survives a round trip unchanged. 1 if it decoded.
fn round_trip<T>(name: &str, data: &[u8]) -> usize
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(message) = cbor4ii::serde::from_slice::<T>(data) else {
        return 0;
    };
    let bytes = cbor4ii::serde::to_vec(Vec::new(), &message).unwrap();
    assert_eq!(
        cbor4ii::serde::from_slice::<T>(&bytes).unwrap(),
        message,
        "{name}"
    );
    1
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
