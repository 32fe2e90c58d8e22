//! Out to other tools, and in from MISP (pure: no I/O, no clock).
//!
//! An export is a [`Picture`]: the lookups of the numbers it names, the
//! campaigns they belong to, and what was left out and why. [`stix`] turns
//! it into a STIX 2.1 bundle, [`misp`] into a MISP event; [`misp::read`]
//! turns MISP events into submissions. What a node can name in raw form is
//! limited by design (numbers the caller gives, this organization's own
//! submissions, and numbers it was asked about); every other number of a
//! campaign stays a keyed hash, and each export says how many.

pub mod misp;
pub mod stix;

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::node::CampaignSummary;
use crate::Lookup;

/// Traffic Light Protocol marking of an export (`sightline.toml`
/// `export_tlp`, default amber): who the recipients may share it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tlp {
    /// No limit on disclosure (TLP 1.0 `WHITE`, TLP 2.0 `CLEAR`).
    #[serde(alias = "white")]
    Clear,
    /// The recipients' community.
    Green,
    /// The recipients' organizations, on a need-to-know basis.
    #[default]
    Amber,
    /// The named recipients only.
    Red,
}

impl Tlp {
    /// Whether this is the default marking (amber).
    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
    pub fn is_default(&self) -> bool {
        *self == Tlp::default()
    }

    /// Lower-case name (TLP 2.0's, `clear` for white).
    pub const fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::Red => "red",
        }
    }
}

/// A campaign named by an export.
#[derive(Debug, Clone)]
pub struct CampaignPart {
    /// As a lookup summarizes it.
    pub summary: CampaignSummary,
    /// Its numbers in this export (raw, E.164).
    pub named: Vec<String>,
}

impl CampaignPart {
    /// Its numbers known here only by their keyed hash (or left out).
    pub fn hashed(&self) -> usize {
        self.summary.numbers.saturating_sub(self.named.len())
    }
}

/// A number an export leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeftOut {
    /// The number, E.164.
    pub number: String,
    /// Why, for a person.
    pub reason: String,
}

/// What an export describes.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Network id.
    pub network: String,
    /// Network name.
    pub network_name: String,
    /// The exporting organization.
    pub exporter: String,
    /// The marking.
    pub tlp: Tlp,
    /// When it was made (unix seconds).
    pub at: u64,
    /// The numbers, each as a lookup answers it (protected numbers are
    /// never here: see `left_out`).
    pub numbers: Vec<Lookup>,
    /// Their campaigns, and the campaign asked for.
    pub campaigns: Vec<CampaignPart>,
    /// Numbers asked for that the export leaves out.
    pub left_out: Vec<LeftOut>,
}

impl Picture {
    /// The statement every export carries about what it holds.
    pub fn scope_statement(&self) -> String {
        let hashed: usize = self.campaigns.iter().map(CampaignPart::hashed).sum();
        let mut text = format!(
            "Exported by {}'s Sightline node from network {:?} ({}). Numbers appear in raw form \
             only where this node can name them: numbers the exporter asked about and its own \
             reports. Every other number stays a keyed hash (HMAC-SHA256 under the network's \
             secret key) and is not in this export",
            self.exporter, self.network_name, self.network
        );
        if hashed > 0 {
            let _ = write!(
                text,
                ": {hashed} number(s) of the campaign(s) here are known to it only that way"
            );
        }
        text.push('.');
        if !self.left_out.is_empty() {
            let _ = write!(
                text,
                " {} number(s) were left out because a trusted member operates them (reports \
                 of them are spoofing).",
                self.left_out.len()
            );
        }
        text
    }
}

/// Unix seconds as a STIX/ISO 8601 UTC timestamp with milliseconds
/// (`2026-12-07T18:00:00.000Z`).
pub fn timestamp(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    let at =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].000Z"
    ))
    .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// Unix seconds as a date (`2026-12-07`).
pub(crate) fn date(secs: u64) -> String {
    timestamp(secs)[..10].to_owned()
}

/// An ISO 8601 / RFC 3339 timestamp as unix seconds (MISP writes
/// `first_seen` as `2026-12-07T18:00:00.000000+00:00`).
pub(crate) fn parse_timestamp(text: &str) -> Option<u64> {
    let at =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .ok()?;
    u64::try_from(at.unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_back() {
        assert_eq!(timestamp(1_796_601_600), "2026-12-07T00:00:00.000Z");
        assert_eq!(date(1_796_601_600), "2026-12-07");
        assert_eq!(
            parse_timestamp("2026-12-07T00:00:00.000000+00:00"),
            Some(1_796_601_600)
        );
        assert_eq!(
            parse_timestamp("2026-12-07T01:00:00+01:00"),
            Some(1_796_601_600)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
