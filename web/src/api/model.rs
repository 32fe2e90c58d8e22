//! The API's request and response bodies. The handlers take and return
//! these, the OpenAPI document describes them, and the CLI sends and reads
//! them: one definition of the wire shape.

use serde::{Deserialize, Serialize};
use sightline_node::network::PeerInfo;
use sightline_node::{Lookup, Receipt, RecentSighting, Submission};

pub use super::error::{ErrorBody, ErrorCode, NumberRejection};

/// Query of `GET /lookup/{number}`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupParams {
    /// Default region (ISO 3166 alpha-2) for national numbers.
    #[param(min_length = 2, max_length = 2)]
    pub region: Option<String>,
    /// Read letters as keypad digits (+1-800-FLOWERS). Without it a number
    /// with letters is refused (`has_letters`): a letter O typed for a zero
    /// would otherwise become a 6.
    #[serde(default)]
    pub vanity: bool,
}

/// Body of `POST /lookup`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// 1 to 10,000 numbers.
    #[schema(min_items = 1, max_items = 10_000)]
    pub numbers: Vec<String>,
    /// Default region for national numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Read letters as keypad digits.
    #[serde(default)]
    pub vanity: bool,
}

/// A number of a bulk lookup that is not a number.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvalidItem {
    /// As given.
    pub input: String,
    /// Always `invalid_number`.
    #[schema(value_type = ErrorCode)]
    pub error: String,
    /// Stable reason code (e.g. `too_short`).
    pub reason: String,
    /// For people.
    pub detail: String,
}

/// One result of a bulk lookup.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LookupResult {
    /// The answer for a number.
    Found(Box<Lookup>),
    /// The input was not a number.
    Invalid(InvalidItem),
}

/// Answer of `POST /lookup`: one result per number, in order.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LookupResults {
    /// In the order of the request.
    pub results: Vec<LookupResult>,
}

/// Body of `POST /sightings`: one sighting, an array of them, or
/// `{"sightings": [...]}`, validated whole and stored whole.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SubmitRequest {
    /// One sighting.
    One(Box<Submission>),
    /// 1 to 10,000 sightings.
    Many(Vec<Submission>),
    /// 1 to 10,000 sightings under `sightings`.
    Wrapped {
        /// The batch.
        #[schema(min_items = 1, max_items = 10_000)]
        sightings: Vec<Submission>,
    },
}

/// Answer of `POST /sightings`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipts {
    /// Items accepted (new and repeated).
    pub accepted: usize,
    /// Items that repeated a current report within the resubmission
    /// window: their receipts say `existing`, nothing new was signed.
    pub existing: usize,
    /// One per item, in order.
    pub receipts: Vec<Receipt>,
}

/// Body of `POST /sightings/withdraw`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    /// The number to withdraw this organization's report of.
    pub number: String,
    /// Default region for national numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Read letters as keypad digits.
    #[serde(default)]
    pub vanity: bool,
}

/// Query of `GET /sightings/recent`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentParams {
    /// How many, newest first (default 50, at most 1000).
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<usize>,
}

/// Query of `GET /campaigns`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignsParams {
    /// Only campaigns in this state.
    pub state: Option<sightline_node::campaign::State>,
    /// How many, largest first (default 50, at most 200).
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
}

/// Query of `GET /export/stix` and `GET /export/misp`: numbers, a
/// campaign, or both.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// Numbers, comma-separated (E.164 or international form; `+` written
    /// `%2B`), at most 10,000.
    pub numbers: Option<String>,
    /// Default region for national numbers.
    pub region: Option<String>,
    /// A campaign id (`campaign.id` of a lookup): the campaign, and the
    /// numbers of it this node can name (to submit and admin tokens).
    pub campaign: Option<String>,
}

impl ExportParams {
    /// The numbers asked for.
    pub fn numbers(&self) -> Vec<String> {
        self.numbers
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Query of `GET /feed`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The lowest band listed (default `high`).
    pub min_band: Option<sightline_node::Band>,
    /// The `cursor` of the previous answer; without it, a full snapshot.
    pub since: Option<String>,
    /// Numbers (snapshot) or arrivals (changes) read at most (default
    /// 10,000, at most 50,000).
    pub limit: Option<usize>,
}

/// Answer of `GET /feed`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Feed {
    /// The network id: the hashes are under its key.
    pub network: String,
    /// Entries of a full snapshot (`true`), or changes (`false`).
    pub full: bool,
    /// This page starts a new snapshot: drop the numbers held, then add
    /// these and the pages that follow.
    pub reset: bool,
    /// Ask with `since` set to this next.
    pub cursor: String,
    /// More is ready now: ask again at once.
    pub more: bool,
    /// Listed numbers (snapshot); numbers that changed, each `listed` or
    /// not (changes).
    pub entries: Vec<sightline_node::node::feed::FeedEntry>,
}

/// Answer of `GET /campaigns`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Campaigns {
    /// Largest first, then the most recently active. Each summary's
    /// `links` is empty (it describes one number's ties in a lookup).
    pub campaigns: Vec<sightline_node::node::CampaignSummary>,
}

/// Answer of `GET /sightings/recent`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecentSightings {
    /// Newest first. Raw numbers only for this node's own submissions,
    /// and only to tokens with the submit or admin scope.
    pub sightings: Vec<RecentSighting>,
}

/// Answer of `GET /peers`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Peers {
    /// Every member node, connected or not.
    pub peers: Vec<PeerInfo>,
}

/// Body of `POST /backup`: exactly one of `recipients` or `passphrase`.
/// Its `Debug` leaves the passphrase out.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// age X25519 recipients (`age1…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Or a passphrase (at least 12 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 12)]
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for BackupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupRequest")
            .field("recipients", &self.recipients)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}
