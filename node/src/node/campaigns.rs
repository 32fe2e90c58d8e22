//! Campaigns and neighbours in lookup answers, and campaign pages: the
//! store's link index read through [`campaign::Graph`], the answer built
//! from the members' current reports.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use sightline_protocol::{BlockHash, Channel, Kind, Link, NumberHash, OriginId, Verdict, E164};

use super::{blocking, Inner, LookupError, NodeHandle, StoreError, BLOCK_WINDOW_SECS};
use crate::campaign::{self, Campaign, Start, State};
use crate::store::{Linked, Sharing, Store};

impl campaign::Graph for Store {
    type Error = StoreError;

    fn links(&self, number: &NumberHash) -> Result<Vec<(Linked, Vec<Link>)>, StoreError> {
        self.number_links(number)
    }

    fn sharing(&self, link: &Link, origin: &OriginId, limit: usize) -> Result<Sharing, StoreError> {
        Store::sharing(self, link, origin, limit)
    }

    fn block(&self, block: &BlockHash, limit: usize) -> Result<(Vec<Linked>, bool), StoreError> {
        self.block_reports(block, limit)
    }
}

/// The operation a number belongs to, as a lookup answers it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CampaignSummary {
    /// Derived from the campaign's contents: every node holding the same
    /// reports gives the same id. `GET /api/v1/campaigns/{id}` lists it.
    pub id: String,
    /// Numbers in it.
    pub numbers: usize,
    /// Distinct 100-blocks they lie in.
    pub blocks: usize,
    /// Organizations whose reports count (trusted, malicious).
    pub orgs: BTreeSet<String>,
    /// Brands those reports name.
    pub brands: BTreeSet<String>,
    /// Kinds.
    pub kinds: BTreeSet<Kind>,
    /// Channels.
    pub channels: BTreeSet<Channel>,
    /// Earliest `first_seen` of its reports.
    pub first_seen: u64,
    /// Latest `last_seen` of its reports.
    pub last_seen: u64,
    /// Rising, active, cooling or dormant, from its report times.
    pub state: State,
    /// What ties the looked-up number in: link kinds (`url_domain`,
    /// `sender`, `script`, `campaign`) and `block` — never the raw values.
    pub links: Vec<String>,
    /// `false` when a bound cut the exploration short (a very large or
    /// planted campaign): the figures are then a lower bound.
    pub complete: bool,
}

/// One report of a campaign, for its page.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CampaignReport {
    /// The number, only where this node can name it: its own submissions,
    /// and reported numbers a lookup on this node named since it started.
    pub number: Option<String>,
    /// Number hash, hex.
    pub number_hash: String,
    /// 100-block hash, hex.
    pub block: String,
    /// Reporting organization.
    pub org: String,
    /// Kind.
    pub kind: Kind,
    /// Channel.
    pub channel: Channel,
    /// Brand.
    pub brand: Option<String>,
    /// First seen.
    pub first_seen: u64,
    /// Last seen.
    pub last_seen: u64,
    /// What ties this number in.
    pub links: Vec<String>,
}

/// A campaign's page: the summary and every report that counts.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CampaignDetail {
    /// The summary (its `links` is empty: it is about one number).
    #[serde(flatten)]
    pub summary: CampaignSummary,
    /// Reports, newest first.
    pub reports: Vec<CampaignReport>,
}

/// Activity around an unreported number.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Neighbours {
    /// Numbers of its 100-block reported malicious over 30 days.
    pub block: usize,
    /// Numbers of its 1,000-block reported malicious over 30 days (from
    /// version-2 reports, which carry the 1,000-block).
    pub block1000: usize,
    /// What this means, for a person.
    pub warning: String,
}

/// Names by hash, and the hashes in the order they came.
type Names = (
    std::collections::HashMap<[u8; 32], String>,
    std::collections::VecDeque<[u8; 32]>,
);

/// Reported numbers this node was asked about since it started, by hash,
/// so that a campaign page can name them as well as this organization's
/// own submissions. Held in memory only (never stored or sent), at most
/// [`ASKED_MAX`], the oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct Asked(std::sync::Mutex<Names>);

/// Numbers [`Asked`] remembers at most.
const ASKED_MAX: usize = 65_536;

impl Asked {
    fn lock(&self) -> std::sync::MutexGuard<'_, Names> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers that a lookup named `number` (whose hash is `hash`).
    pub(super) fn note(&self, hash: &NumberHash, number: &str) {
        let mut guard = self.lock();
        let (names, order) = &mut *guard;
        // Most lookups repeat a number already noted: no allocation then.
        if names.contains_key(hash.as_bytes()) {
            return;
        }
        names.insert(*hash.as_bytes(), number.to_owned());
        order.push_back(*hash.as_bytes());
        if order.len() > ASKED_MAX {
            if let Some(old) = order.pop_front() {
                names.remove(&old);
            }
        }
    }

    /// The number a lookup named for `hash`, if one did.
    pub(super) fn name(&self, hash: &NumberHash) -> Option<String> {
        self.lock().0.get(hash.as_bytes()).cloned()
    }
}

/// Distinct numbers of a 1,000-block one lookup counts at most.
const BLOCK1000_LIMIT: usize = 1000;
/// The latest stored reports a campaign list starts from.
const LIST_RECENT: usize = 2_000;
/// Campaigns one list explores at most.
const LIST_EXPLORE: usize = 200;

/// Campaigns explored by earlier lookups of one batch (a bulk lookup, an
/// export, a feed page), by member number: a campaign is explored and
/// described once, however many of its numbers the batch looks up.
#[derive(Debug, Default)]
pub(crate) struct Explored(
    std::collections::HashMap<NumberHash, std::sync::Arc<(Campaign, CampaignSummary)>>,
);

impl Inner {
    /// The campaign of a number, if it has one. `reported`: whether a
    /// trusted organization's current report of it is malicious;
    /// `neighboured`: whether its block holds another number's counted
    /// report ([`crate::store::NumberReports::neighboured`]). Without a
    /// neighbour or links nothing can tie it to another number, and the
    /// lookup reads no more. A campaign in `explored` is not explored
    /// again; one explored here is added to it.
    pub(super) fn campaign_of(
        &self,
        number: &NumberHash,
        block: &BlockHash,
        (reported, neighboured): (bool, bool),
        now: u64,
        explored: &mut Explored,
    ) -> Result<Option<CampaignSummary>, StoreError> {
        if !reported || (!neighboured && self.store.number_links(number)?.is_empty()) {
            return Ok(None);
        }
        let entry = if let Some(entry) = explored.0.get(number) {
            entry.clone()
        } else {
            let start = Start::Number(*number, *block);
            let Some(found) = campaign::explore(&self.store, start, &self.trust)? else {
                return Ok(None);
            };
            let (summary, _) = self.describe(&found, now, false)?;
            let entry = std::sync::Arc::new((found, summary));
            for m in &entry.0.members {
                explored.0.insert(m.number, entry.clone());
            }
            entry
        };
        let (found, summary) = &*entry;
        let mut summary = summary.clone();
        summary.links = found
            .member(number)
            .map(|m| m.via.iter().map(|v| v.name().to_owned()).collect())
            .unwrap_or_default();
        Ok(Some(summary))
    }

    /// The summary of a campaign and, with `reports`, its reports.
    fn describe(
        &self,
        found: &Campaign,
        now: u64,
        reports: bool,
    ) -> Result<(CampaignSummary, Vec<CampaignReport>), StoreError> {
        let network = &self.config.network.id;
        let mut summary = CampaignSummary {
            id: found.id.clone(),
            numbers: found.members.len(),
            blocks: found
                .members
                .iter()
                .map(|m| *m.block.as_bytes())
                .collect::<BTreeSet<_>>()
                .len(),
            orgs: BTreeSet::new(),
            brands: BTreeSet::new(),
            kinds: BTreeSet::new(),
            channels: BTreeSet::new(),
            first_seen: u64::MAX,
            last_seen: 0,
            state: State::Dormant,
            links: Vec::new(),
            complete: found.complete,
        };
        let mut firsts = Vec::with_capacity(found.members.len());
        let mut out = Vec::new();
        for member in &found.members {
            let held = self
                .store
                .current_reports(network, &member.number, &member.block)?;
            let mut first = u64::MAX;
            for s in held
                .iter()
                .filter(|s| s.verdict == Verdict::Malicious && self.trusted.contains(&s.origin))
            {
                summary.orgs.insert(self.org_of(&s.origin));
                summary.brands.extend(s.brand.clone());
                summary.kinds.insert(s.kind);
                summary.channels.insert(s.channel);
                summary.first_seen = summary.first_seen.min(s.first_seen);
                summary.last_seen = summary.last_seen.max(s.last_seen);
                first = first.min(s.first_seen);
                if reports {
                    out.push(CampaignReport {
                        number: if s.origin == self.signing.origin() {
                            self.store.own_number(&s.number)?
                        } else {
                            None
                        }
                        .or_else(|| self.asked.name(&s.number)),
                        number_hash: s.number.to_hex(),
                        block: s.block.to_hex(),
                        org: self.org_of(&s.origin),
                        kind: s.kind,
                        channel: s.channel,
                        brand: s.brand.clone(),
                        first_seen: s.first_seen,
                        last_seen: s.last_seen,
                        links: member.via.iter().map(|v| v.name().to_owned()).collect(),
                    });
                }
            }
            if first != u64::MAX {
                firsts.push(first);
            }
        }
        if summary.first_seen == u64::MAX {
            summary.first_seen = 0;
        }
        summary.state = campaign::state(&firsts, summary.last_seen, now);
        out.sort_by(|a, b| {
            b.last_seen
                .cmp(&a.last_seen)
                .then_with(|| a.number_hash.cmp(&b.number_hash))
                .then_with(|| a.org.cmp(&b.org))
        });
        Ok((summary, out))
    }

    /// Activity around a number no counted report names: its 100-block
    /// (`block_activity`, already counted by the lookup) and its 1,000-block.
    pub(super) fn neighbours(
        &self,
        e164: &E164,
        block_activity: usize,
        now: u64,
    ) -> Result<Option<Neighbours>, StoreError> {
        let link = sightline_protocol::links::block1000(&self.config.network.hash_key, e164);
        let since = now.saturating_sub(BLOCK_WINDOW_SECS);
        let mut numbers = BTreeSet::new();
        for (origin, _) in &self.trust {
            let found = self.store.sharing(&link, origin, BLOCK1000_LIMIT)?;
            for r in found
                .reports
                .iter()
                .filter(|r| r.malicious && r.last_seen >= since)
            {
                numbers.insert(*r.number.as_bytes());
            }
        }
        if block_activity == 0 && numbers.is_empty() {
            return Ok(None);
        }
        let warning = format!(
            "not reported, but {block_activity} number(s) of its 100-block and {} of its 1,000-block were reported malicious in the last 30 days: scam operations rotate through consecutive numbers",
            numbers.len()
        );
        Ok(Some(Neighbours {
            block: block_activity,
            block1000: numbers.len(),
            warning,
        }))
    }
}

impl Inner {
    /// Campaigns of the latest stored reports ([`NodeHandle::campaigns`]).
    fn list_campaigns(
        &self,
        state: Option<State>,
        limit: usize,
        now: u64,
    ) -> Result<Vec<CampaignSummary>, StoreError> {
        let mut covered: HashSet<[u8; 32]> = HashSet::new();
        let mut ids = HashSet::new();
        let mut out = Vec::new();
        let mut explored = 0;
        for (_, s) in self.store.recent(LIST_RECENT)? {
            if explored >= LIST_EXPLORE {
                break;
            }
            if s.verdict != Verdict::Malicious
                || !self.trusted.contains(&s.origin)
                || covered.contains(s.number.as_bytes())
            {
                continue;
            }
            explored += 1;
            let Some(found) =
                campaign::explore(&self.store, Start::Number(s.number, s.block), &self.trust)?
            else {
                continue;
            };
            covered.extend(found.members.iter().map(|m| *m.number.as_bytes()));
            if !ids.insert(found.id.clone()) {
                continue;
            }
            let (summary, _) = self.describe(&found, now, false)?;
            if state.is_none_or(|wanted| wanted == summary.state) {
                out.push(summary);
            }
        }
        out.sort_by(|a, b| {
            b.numbers
                .cmp(&a.numbers)
                .then(b.last_seen.cmp(&a.last_seen))
                .then_with(|| a.id.cmp(&b.id))
        });
        out.truncate(limit);
        Ok(out)
    }
}

impl NodeHandle {
    /// The campaigns of the latest [`LIST_RECENT`] stored reports (those a
    /// trusted organization reports malicious), in `state` if given,
    /// largest first, then most recently active; at most `limit`.
    ///
    /// # Errors
    /// Store errors.
    pub async fn campaigns(
        &self,
        state: Option<State>,
        limit: usize,
    ) -> Result<Vec<CampaignSummary>, StoreError> {
        let inner = self.inner.clone();
        let now = inner.clock.now();
        blocking(move || inner.list_campaigns(state, limit, now)).await
    }

    /// A campaign by its id, with its reports; `None` for a malformed id
    /// or one that links no two numbers. A campaign that has since gained a
    /// token that now names it is returned under its new id.
    ///
    /// # Errors
    /// Store errors.
    pub async fn campaign(&self, id: &str) -> Result<Option<CampaignDetail>, LookupError> {
        let Some(start) = campaign::parse_id(id) else {
            return Ok(None);
        };
        let inner = self.inner.clone();
        let now = inner.clock.now();
        Ok(blocking(move || -> Result<_, StoreError> {
            let Some(found) = campaign::explore(&inner.store, start, &inner.trust)? else {
                return Ok(None);
            };
            let (summary, reports) = inner.describe(&found, now, true)?;
            Ok(Some(CampaignDetail { summary, reports }))
        })
        .await?)
    }
}
