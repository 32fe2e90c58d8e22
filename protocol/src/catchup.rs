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
