//! The catch-up protocol's messages (`/sightline/catchup/1`): pure serde
//! types, encoded as CBOR by the node's request-response codec. Peers
//! exchange per-origin progress and pull what they miss in bounded pages;
//! every record in a page is validated like gossip.

use serde::{Deserialize, Serialize};

/// libp2p protocol name.
pub const PROTOCOL: &str = "/sightline/catchup/1";
/// Most records in one page.
pub const MAX_PAGE: u32 = 256;
/// Most progress entries accepted in one message (one per member origin).
pub const MAX_PROGRESS_ENTRIES: usize = 4096;
/// Request size limit for the codec: a progress message of
/// [`MAX_PROGRESS_ENTRIES`] entries fits.
pub const MAX_REQUEST_BYTES: u64 = 512 * 1024;
/// Response size limit: a page of [`MAX_PAGE`] records of ≤ 1 KiB fits.
pub const MAX_RESPONSE_BYTES: u64 = 512 * 1024;

/// One origin's progress on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEntry {
    /// Origin public key.
    pub origin: [u8; 32],
    /// Records held.
    pub count: u64,
    /// Highest seq held.
    pub max_seq: u64,
    /// All seqs 1..=contiguous held.
    pub contiguous: u64,
    /// XOR of held record ids.
    pub digest: [u8; 32],
}

/// A catch-up request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatchUpRequest {
    /// "Here is what I hold; what do you hold?"
    Progress(Vec<ProgressEntry>),
    /// "Send me `origin`'s records with seq > `after`, ascending, at most `limit`."
    Pull {
        /// Origin public key.
        origin: [u8; 32],
        /// Exclusive lower bound.
        after: u64,
        /// Page size wanted (capped at [`MAX_PAGE`]).
        limit: u32,
    },
}

/// A catch-up response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatchUpResponse {
    /// The responder's progress.
    Progress(Vec<ProgressEntry>),
    /// A page of wire records and whether more follow.
    Records {
        /// Canonical record bytes, validated by the receiver like gossip.
        records: Vec<serde_bytes::ByteBuf>,
        /// More records after this page.
        more: bool,
    },
    /// The responder's rate limit for this peer is exhausted; retry later.
    Busy,
}

/// libp2p protocol name of catch-up version 2: set reconciliation of each
/// origin's current reports (SPEC §11.2). A node speaks both versions and
/// falls back to [`PROTOCOL`] with a peer that does not speak this one.
pub const PROTOCOL_V2: &str = "/sightline/catchup/2";
/// Most items one [`ReconcileRequest::Fetch`] names.
pub const MAX_FETCH: usize = 256;
/// Largest negentropy message either side of a reconciliation sends: well
/// within [`MAX_REQUEST_BYTES`] and [`MAX_RESPONSE_BYTES`] with its envelope.
pub const FRAME_LIMIT: u64 = 256 * 1024;

/// Most CBOR bytes one [`SetSummary`] takes (every integer at its largest;
/// `summary_entries_take_at_most_their_stated_size` checks it).
pub const SUMMARY_ENTRY_BYTES: u64 = 179;

/// One origin's set of current reports on the wire, in version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSummary {
    /// Origin public key.
    pub origin: [u8; 32],
    /// Records held (current reports and tombstones).
    pub count: u64,
    /// Highest seq held.
    pub max_seq: u64,
    /// XOR of held record ids: equal sets give equal (count, digest).
    pub digest: [u8; 32],
}

/// The reconciliation item of a record (SPEC §11.2): its seq (big-endian)
/// followed by the first 24 bytes of its id. Ordered by seq, as negentropy
/// orders items by (timestamp = seq, id).
pub fn item_id(seq: u64, id: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&seq.to_be_bytes());
    out[8..].copy_from_slice(&id[..24]);
    out
}

/// The seq an item id names.
pub fn item_seq(item: &[u8; 32]) -> u64 {
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&item[..8]);
    u64::from_be_bytes(seq)
}

/// A version-2 catch-up request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconcileRequest {
    /// "Which origins' sets do you hold?"
    Summary,
    /// One negentropy message over `origin`'s items.
    Reconcile {
        /// Origin public key.
        origin: [u8; 32],
        /// The initiator's negentropy message (protocol version 0x61).
        message: serde_bytes::ByteBuf,
    },
    /// "Send me these records of `origin`", by item id (at most [`MAX_FETCH`]).
    Fetch {
        /// Origin public key.
        origin: [u8; 32],
        /// Item ids ([`item_id`]), 32-byte strings.
        items: Vec<serde_bytes::ByteBuf>,
    },
}

/// A version-2 catch-up response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReconcileResponse {
    /// The responder's sets, one per origin it holds records of.
    Summary(Vec<SetSummary>),
    /// The responder's negentropy answer.
    Reconcile {
        /// Its message.
        message: serde_bytes::ByteBuf,
    },
    /// The records asked for that the responder still holds, in the order
    /// asked; an item it no longer holds is left out.
    Records {
        /// Canonical record bytes, validated by the receiver like gossip.
        records: Vec<serde_bytes::ByteBuf>,
    },
    /// The responder's rate limit for this peer is exhausted; retry later.
    Busy,
    /// The request was malformed (a negentropy message that does not parse,
    /// too many items): not retried.
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_entries_take_at_most_their_stated_size() {
        let largest = SetSummary {
            origin: [0xff; 32],
            count: u64::MAX,
            max_seq: u64::MAX,
            digest: [0xff; 32],
        };
        let bytes = cbor4ii::serde::to_vec(Vec::new(), &largest).unwrap();
        assert_eq!(bytes.len() as u64, SUMMARY_ENTRY_BYTES);
    }

    #[test]
    fn an_item_names_its_seq_and_the_start_of_the_record_id() {
        let id: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
        let item = item_id(0x0102_0304_0506_0708, &id);
        assert_eq!(item[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(item[8..], id[..24]);
        assert_eq!(item_seq(&item), 0x0102_0304_0506_0708);
    }
}
