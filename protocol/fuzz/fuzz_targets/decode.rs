//! Any bytes: decoding never panics, and whatever decodes re-encodes to the
//! identical bytes (the canonical-form guarantee of SPEC.md §5).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_protocol::{SignedSighting, UnverifiedSighting};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = UnverifiedSighting::decode(data) {
        let again = record.sighting().encode_with_signature(record.signature());
        assert_eq!(again, data, "decoded record re-encodes differently");
        assert_eq!(record.as_bytes(), data);
        if let Ok(verified) = record.verify() {
            assert_eq!(verified.as_bytes(), data);
        }
    }
    let _ = SignedSighting::from_bytes(data);
});
