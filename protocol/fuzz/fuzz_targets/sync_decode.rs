//! Any bytes as a catch-up request or response (versions 1 and 2), decoded the way the node's
//! libp2p codec decodes them (cbor4ii serde): never a panic, and whatever
//! decodes survives an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_protocol::catchup::{
    CatchUpRequest, CatchUpResponse, ReconcileRequest, ReconcileResponse,
};

/// Whatever `data` decodes to as a message type survives a round trip
/// unchanged.
macro_rules! round_trip {
    ($message:ty, $data:expr) => {
        if let Ok(message) = cbor4ii::serde::from_slice::<$message>($data) {
            let bytes = cbor4ii::serde::to_vec(Vec::new(), &message).expect("encodes");
            let again: $message = cbor4ii::serde::from_slice(&bytes).expect("decodes again");
            assert_eq!(again, message);
        }
    };
}

fuzz_target!(|data: &[u8]| {
    round_trip!(CatchUpRequest, data);
    round_trip!(CatchUpResponse, data);
    round_trip!(ReconcileRequest, data);
    round_trip!(ReconcileResponse, data);
});
