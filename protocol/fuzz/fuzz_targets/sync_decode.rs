//! Any bytes as a catch-up request or response (versions 1 and 2), decoded the way the node's
//! libp2p codec decodes them (cbor4ii serde): never a panic, and whatever
//! decodes survives an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_protocol::catchup::{
    CatchUpRequest, CatchUpResponse, ReconcileRequest, ReconcileResponse,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = cbor4ii::serde::from_slice::<CatchUpRequest>(data) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &request).expect("encodes");
        let again: CatchUpRequest = cbor4ii::serde::from_slice(&bytes).expect("decodes again");
        assert_eq!(again, request);
    }
    if let Ok(response) = cbor4ii::serde::from_slice::<CatchUpResponse>(data) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &response).expect("encodes");
        let again: CatchUpResponse = cbor4ii::serde::from_slice(&bytes).expect("decodes again");
        assert_eq!(again, response);
    }
    if let Ok(request) = cbor4ii::serde::from_slice::<ReconcileRequest>(data) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &request).expect("encodes");
        let again: ReconcileRequest = cbor4ii::serde::from_slice(&bytes).expect("decodes again");
        assert_eq!(again, request);
    }
    if let Ok(response) = cbor4ii::serde::from_slice::<ReconcileResponse>(data) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &response).expect("encodes");
        let again: ReconcileResponse = cbor4ii::serde::from_slice(&bytes).expect("decodes again");
        assert_eq!(again, response);
    }
});
