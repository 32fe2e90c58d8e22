//! What an export describes ([`interop::Picture`]), read from the store:
//! the numbers asked for, a campaign's numbers this node can name, and
//! their campaigns. The formats are built by [`crate::interop`].

use std::collections::HashSet;

use super::{letters, LookupError, NodeHandle};
use crate::interop::{CampaignPart, LeftOut, Picture};

/// Numbers one export names at most (as many as a bulk lookup).
pub const MAX_EXPORT: usize = super::MAX_BATCH;

impl NodeHandle {
    /// The picture of `numbers` and of campaign `campaign`: each number as a
    /// lookup answers it, except numbers a trusted member operates (left out:
    /// reports of them are spoofing, and an export feeds blocklists); with
    /// `name_numbers`, the campaign's numbers this node can name too (its own
    /// submissions, numbers it was asked about). `None` when `campaign` names
    /// no campaign here. At most [`MAX_EXPORT`] numbers are read.
    ///
    /// # Errors
    /// An invalid number; store errors.
    pub async fn export(
        &self,
        numbers: Vec<String>,
        region: Option<String>,
        campaign: Option<&str>,
        name_numbers: bool,
    ) -> Result<Option<Picture>, LookupError> {
        let config = &self.inner.config;
        let mut picture = Picture {
            network: config.network.id.to_string(),
            network_name: config.network.name.clone(),
            exporter: self.inner.org.clone(),
            tlp: config.export_tlp,
            at: self.inner.clock.now(),
            numbers: Vec::new(),
            campaigns: Vec::new(),
            left_out: Vec::new(),
        };
        let mut wanted = numbers;
        if let Some(id) = campaign {
            let Some(detail) = self.campaign(id).await? else {
                return Ok(None);
            };
            if name_numbers {
                wanted.extend(detail.reports.iter().filter_map(|r| r.number.clone()));
            }
            picture.campaigns.push(CampaignPart {
                summary: detail.summary,
                named: Vec::new(),
            });
        }
        wanted.truncate(MAX_EXPORT);
        let mut seen = HashSet::new();
        for answer in self.lookup_many(wanted, region, letters(false)).await {
            let lookup = answer?;
            if !seen.insert(lookup.number.clone()) {
                continue;
            }
            if !lookup.score.protected_by.is_empty() {
                let orgs: Vec<&str> = lookup
                    .score
                    .protected_by
                    .iter()
                    .map(|p| p.org.as_str())
                    .collect();
                picture.left_out.push(LeftOut {
                    reason: format!(
                        "protected: {} operate(s) it, so reports of it are spoofing; never exported to blocklists",
                        orgs.join(", ")
                    ),
                    number: lookup.number,
                });
                continue;
            }
            if let Some(summary) = &lookup.campaign {
                let at = picture
                    .campaigns
                    .iter()
                    .position(|c| c.summary.id == summary.id)
                    .unwrap_or_else(|| {
                        picture.campaigns.push(CampaignPart {
                            summary: summary.clone(),
                            named: Vec::new(),
                        });
                        picture.campaigns.len() - 1
                    });
                picture.campaigns[at].named.push(lookup.number.clone());
            }
            picture.numbers.push(lookup);
        }
        Ok(Some(picture))
    }
}

/// One of this organization's current reports, for the TAXII collection.
#[derive(Debug, Clone)]
pub struct OwnReport {
    /// When it was stored, unix milliseconds (strictly increasing).
    pub added_ms: u64,
    /// Its seq: with `added_ms`, where the next page starts.
    pub seq: u64,
    /// The number as a lookup answers it, with this organization's report
    /// only.
    pub lookup: crate::Lookup,
}

/// A page of this organization's reports.
#[derive(Debug, Clone)]
pub struct OwnReports {
    /// The reports (fewer than were read when some were left out).
    pub reports: Vec<OwnReport>,
    /// Where the last report read was stored (added ms, seq): the next
    /// page starts after it.
    pub last: Option<(u64, u64)>,
    /// Whether more follow.
    pub more: bool,
}

impl NodeHandle {
    /// This organization's current reports stored after `after` (added ms,
    /// seq; exclusive), oldest first, reading at most `limit`. Reports of
    /// numbers a trusted member operates are left out (as from every
    /// export); a withdrawn report is there, to revoke what it said.
    ///
    /// # Errors
    /// Store errors.
    pub async fn own_reports(
        &self,
        after: (u64, u64),
        limit: usize,
    ) -> Result<OwnReports, LookupError> {
        let inner = self.inner.clone();
        let now = inner.clock.now();
        let own = inner.signing.origin();
        super::blocking(move || -> Result<_, LookupError> {
            let (added, more) = inner.store.own_added(&own, after, limit)?;
            let last = added.last().map(|a| (a.added_ms, a.seq));
            let mut out = Vec::with_capacity(added.len());
            let mut explored = super::campaigns::Explored::default();
            for a in added {
                let Some(e164) = inner.store.own_number(&a.number)? else {
                    continue;
                };
                let Ok(parsed) = sightline_protocol::parse_number(&e164, None) else {
                    continue;
                };
                let mut lookup = inner.lookup_parsed(&parsed, now, &mut explored)?;
                if !lookup.score.protected_by.is_empty() {
                    continue;
                }
                let own_hex = own.to_hex();
                lookup.score.reports.retain(|r| r.origin == own_hex);
                out.push(OwnReport {
                    added_ms: a.added_ms,
                    seq: a.seq,
                    lookup,
                });
            }
            Ok(OwnReports {
                reports: out,
                last,
                more,
            })
        })
        .await
    }
}
