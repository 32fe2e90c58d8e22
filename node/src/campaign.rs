//! Campaigns: numbers linked into one operation on hashed data (record
//! version 2's link tokens, SPEC.md §13, and shared 100-blocks).
//!
//! Pure logic over the held reports, read through [`Graph`] (the store
//! implements it): no I/O here, and the answer depends only on the reports
//! held and the trust settings, so every node holding the same reports
//! names the same campaign.
//!
//! Only malicious current reports count, and only by the trust this node
//! gives their organizations: a number is **tied** to a link token when the
//! organizations whose reports of it carry the token have trust summing to
//! at least [`LINK_TRUST`] (one organization trusted that far, or several
//! less trusted ones that agree). Then:
//!
//! 1. numbers tied to the same link token are linked (a `script` within
//!    [`crate::store::SCRIPT_DISTANCE`] bits of another); `block1000` links
//!    nothing (it only warns of neighbours);
//! 2. numbers of one 100-block, each reported by organizations of summed
//!    trust [`LINK_TRUST`], are linked when their last reports lie in one
//!    run of the block's activity with no gap longer than
//!    [`BLOCK_GAP_SECS`] (an operation rotating through a block with
//!    cool-downs shorter than that stays one);
//! 3. a campaign is a connected component of at least two numbers.
//!
//! So a member below [`LINK_TRUST`] can link nothing on its own word, and
//! cannot join numbers of other members' campaigns together. Costs are
//! bounded whatever members plant: each organization's share of a token is
//! read on its own, and one carrying a token on more than
//! [`MAX_TOKEN_REPORTS`] reports is too common for its word on that token
//! to count (as a URL shortener would be); a campaign stops growing at
//! [`MAX_NUMBERS`] numbers; one exploration reads at most [`READ_BUDGET`]
//! index entries. An answer cut short says so (`complete: false`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sightline_protocol::{BlockHash, Link, LinkKind, NumberHash, OriginId};

use crate::store::{Linked, Sharing};

/// Summed trust of the organizations whose reports tie a number to a link
/// token or a block's activity.
pub const LINK_TRUST: f64 = 0.6;
/// Longest quiet gap inside one run of a block's activity.
pub const BLOCK_GAP_SECS: u64 = 30 * 86_400;
/// Reports a token may be carried by before it is too common to link.
pub const MAX_TOKEN_REPORTS: usize = 200;
/// Numbers a campaign is explored to at most.
pub const MAX_NUMBERS: usize = 500;
/// Index entries one exploration reads at most.
pub const READ_BUDGET: usize = 10_000;
/// Entries of a block's index read at most.
pub const BLOCK_READ_LIMIT: usize = crate::store::ACTIVITY_SCAN_LIMIT;

/// The held reports, as campaigns read them.
pub trait Graph {
    /// Read error.
    type Error;
    /// Each held report of `number` with links, and its links.
    ///
    /// # Errors
    /// Read errors.
    fn links(&self, number: &NumberHash) -> Result<Vec<(Linked, Vec<Link>)>, Self::Error>;
    /// `origin`'s held reports carrying `link`, at most `limit` per index key.
    ///
    /// # Errors
    /// Read errors.
    fn sharing(&self, link: &Link, origin: &OriginId, limit: usize)
        -> Result<Sharing, Self::Error>;
    /// The held reports of a 100-block, at most `limit`; whether there were more.
    ///
    /// # Errors
    /// Read errors.
    fn block(&self, block: &BlockHash, limit: usize) -> Result<(Vec<Linked>, bool), Self::Error>;
}

/// Where an exploration starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// A number with a report that counts.
    Number(NumberHash, BlockHash),
    /// A campaign id's token.
    Token(Link),
    /// A campaign id's block.
    Block(BlockHash),
}

/// What ties a number into its campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    /// A link token of this kind.
    Link(LinkKind),
    /// A run of activity in its 100-block.
    Block,
}

impl Via {
    /// Text form for JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Via::Link(kind) => kind.name(),
            Via::Block => "block",
        }
    }
}

/// One number of a campaign.
#[derive(Debug, Clone)]
pub struct Member {
    /// The number.
    pub number: NumberHash,
    /// Its 100-block.
    pub block: BlockHash,
    /// What ties it in.
    pub via: BTreeSet<Via>,
}

/// A campaign as one exploration found it.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Derived from its contents: `t` and the hex of the smallest link
    /// entry that links two of its numbers, or `b` and the hex of the
    /// smallest 100-block that does when no token does.
    pub id: String,
    /// Its numbers, by number hash.
    pub members: Vec<Member>,
    /// Whether the exploration saw all of it (no bound was reached).
    pub complete: bool,
    /// Link tokens left out as too common.
    pub too_common: usize,
}

impl Campaign {
    /// The member for `number`, if it is one.
    pub fn member(&self, number: &NumberHash) -> Option<&Member> {
        self.members.iter().find(|m| m.number == *number)
    }
}

/// Parses a campaign id back into where to start exploring it.
pub fn parse_id(id: &str) -> Option<Start> {
    let (tag, hex) = (id.get(..1)?, id.get(1..)?);
    let bytes = hex_bytes(hex)?;
    match tag {
        "t" => Link::decode(&bytes).ok().map(Start::Token),
        "b" => Some(Start::Block(BlockHash::from_bytes(bytes.try_into().ok()?))),
        _ => None,
    }
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || hex.len() > 128 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Working state of one exploration.
struct Walk<'a, G> {
    graph: &'a G,
    /// Organizations with trust above 0, and their trust.
    trust: &'a [(OriginId, f64)],
    members: BTreeMap<[u8; 32], Member>,
    queue: VecDeque<[u8; 32]>,
    tokens: BTreeSet<Link>,
    /// Per block: its runs of activity, each the numbers in it.
    runs: BTreeMap<[u8; 32], Vec<Vec<(NumberHash, BlockHash)>>>,
    linking_tokens: BTreeSet<Link>,
    linking_blocks: BTreeSet<[u8; 32]>,
    complete: bool,
    too_common: usize,
    read: usize,
}

/// Explores the campaign from `start`. `trust` lists the organizations
/// whose reports count, with this node's trust in each (above 0). `None`
/// when fewer than two numbers are linked.
///
/// # Errors
/// The graph's read errors.
pub fn explore<G: Graph>(
    graph: &G,
    start: Start,
    trust: &[(OriginId, f64)],
) -> Result<Option<Campaign>, G::Error> {
    let mut walk = Walk {
        graph,
        trust,
        members: BTreeMap::new(),
        queue: VecDeque::new(),
        tokens: BTreeSet::new(),
        runs: BTreeMap::new(),
        linking_tokens: BTreeSet::new(),
        linking_blocks: BTreeSet::new(),
        complete: true,
        too_common: 0,
        read: 0,
    };
    match start {
        Start::Number(number, block) => walk.add(number, block, None),
        Start::Token(link) => walk.token(&link, None)?,
        Start::Block(block) => {
            let runs = walk.block_runs(&block)?;
            for run in runs.iter().filter(|r| r.len() >= 2) {
                walk.linking_blocks.insert(*block.as_bytes());
                for (n, b) in run {
                    walk.add(*n, *b, Some(Via::Block));
                }
            }
        }
    }
    while let Some(number) = walk.queue.pop_front() {
        if walk.read >= READ_BUDGET {
            walk.complete = false;
            break;
        }
        let member = &walk.members[&number];
        let (n, b) = (member.number, member.block);
        walk.expand(&n, &b)?;
    }
    Ok(walk.finish())
}

impl<G: Graph> Walk<'_, G> {
    fn trust_of(&self, origin: &OriginId) -> f64 {
        self.trust
            .iter()
            .find(|(o, _)| o == origin)
            .map_or(0.0, |(_, t)| *t)
    }

    /// The numbers these reports tie (by number: summed trust of distinct
    /// origins of malicious reports ≥ [`LINK_TRUST`]), each with its block
    /// and the latest `last_seen` of the reports that tie it, by number hash.
    fn tied(&self, reports: &[Linked]) -> Vec<(NumberHash, BlockHash, u64)> {
        let mut by_number: BTreeMap<[u8; 32], (NumberHash, BlockHash, u64, Vec<OriginId>)> =
            BTreeMap::new();
        for r in reports.iter().filter(|r| r.malicious) {
            let slot =
                by_number
                    .entry(*r.number.as_bytes())
                    .or_insert((r.number, r.block, 0, Vec::new()));
            if !slot.3.contains(&r.origin) && self.trust_of(&r.origin) > 0.0 {
                slot.3.push(r.origin);
                slot.2 = slot.2.max(r.last_seen);
            }
        }
        by_number
            .into_values()
            .filter(|(_, _, _, origins)| {
                origins.iter().map(|o| self.trust_of(o)).sum::<f64>() >= LINK_TRUST
            })
            .map(|(n, b, t, _)| (n, b, t))
            .collect()
    }

    /// Adds a number (tied in by `via`), queueing it if it is new.
    fn add(&mut self, number: NumberHash, block: BlockHash, via: Option<Via>) {
        let key = *number.as_bytes();
        if !self.members.contains_key(&key) {
            if self.members.len() >= MAX_NUMBERS {
                self.complete = false;
                return;
            }
            self.members.insert(
                key,
                Member {
                    number,
                    block,
                    via: BTreeSet::new(),
                },
            );
            self.queue.push_back(key);
        }
        if let (Some(via), Some(m)) = (via, self.members.get_mut(&key)) {
            m.via.insert(via);
        }
    }

    fn expand(&mut self, number: &NumberHash, block: &BlockHash) -> Result<(), G::Error> {
        let linked = self.graph.links(number)?;
        self.read += linked.len();
        // The tokens this number is tied to: carried by its reports from
        // organizations of enough summed trust.
        let mut carriers: BTreeMap<Link, Vec<Linked>> = BTreeMap::new();
        for (report, links) in &linked {
            for link in links.iter().filter(|l| l.kind() != LinkKind::Block1000) {
                carriers.entry(*link).or_default().push(*report);
            }
        }
        for (link, reports) in carriers {
            if !self.tokens.contains(&link) && !self.tied(&reports).is_empty() {
                self.token(&link, Some(number))?;
            }
        }
        let runs = self.block_runs(block)?;
        if let Some(run) = runs
            .iter()
            .find(|run| run.iter().any(|(n, _)| n == number))
            .filter(|run| run.len() >= 2)
        {
            self.linking_blocks.insert(*block.as_bytes());
            for (n, b) in run.clone() {
                self.add(n, b, Some(Via::Block));
            }
        }
        Ok(())
    }

    /// Links the numbers tied to `link` (reached from `from`, which must
    /// be one of them).
    fn token(&mut self, link: &Link, from: Option<&NumberHash>) -> Result<(), G::Error> {
        self.tokens.insert(*link);
        let mut reports = Vec::new();
        for (origin, _) in self.trust {
            if self.read >= READ_BUDGET {
                self.complete = false;
                break;
            }
            let share = self.graph.sharing(link, origin, MAX_TOKEN_REPORTS)?;
            self.read += share.read;
            if share.too_common {
                self.too_common += 1;
                continue;
            }
            reports.extend(share.reports);
        }
        let numbers = self.tied(&reports);
        if numbers.len() < 2 || from.is_some_and(|f| !numbers.iter().any(|(n, _, _)| n == f)) {
            return Ok(());
        }
        self.linking_tokens.insert(*link);
        for (n, b, _) in numbers {
            self.add(n, b, Some(Via::Link(link.kind())));
        }
        Ok(())
    }

    /// A block's runs of counted activity (read once per block).
    fn block_runs(
        &mut self,
        block: &BlockHash,
    ) -> Result<Vec<Vec<(NumberHash, BlockHash)>>, G::Error> {
        if let Some(runs) = self.runs.get(block.as_bytes()) {
            return Ok(runs.clone());
        }
        let (reports, more) = self.graph.block(block, BLOCK_READ_LIMIT)?;
        self.read += reports.len();
        if more {
            self.complete = false;
        }
        let runs = block_runs(&self.tied(&reports));
        self.runs.insert(*block.as_bytes(), runs.clone());
        Ok(runs)
    }

    fn finish(self) -> Option<Campaign> {
        if self.members.len() < 2 {
            return None;
        }
        // Links order as their wire entries do, so the first is the
        // smallest entry: kind code, then token.
        let id = match (self.linking_tokens.first(), self.linking_blocks.first()) {
            (Some(link), _) => format!("t{:02x}{}", link.kind().code(), link.token_hex()),
            (None, Some(block)) => format!("b{}", BlockHash::from_bytes(*block).to_hex()),
            (None, None) => return None,
        };
        Some(Campaign {
            id,
            members: self.members.into_values().collect(),
            complete: self.complete,
            too_common: self.too_common,
        })
    }
}

/// A block's tied numbers (number, block, latest report) grouped into runs
/// of activity: in time order, a new run starts after a quiet gap longer
/// than [`BLOCK_GAP_SECS`].
pub fn block_runs(tied: &[(NumberHash, BlockHash, u64)]) -> Vec<Vec<(NumberHash, BlockHash)>> {
    let mut by_time: Vec<(u64, [u8; 32], NumberHash, BlockHash)> = tied
        .iter()
        .map(|(n, b, t)| (*t, *n.as_bytes(), *n, *b))
        .collect();
    by_time.sort_unstable_by_key(|(t, k, _, _)| (*t, *k));
    let mut runs: Vec<Vec<(NumberHash, BlockHash)>> = Vec::new();
    let mut last = None;
    for (t, _, n, b) in by_time {
        match (last, runs.last_mut()) {
            (Some(prev), Some(run)) if t - prev <= BLOCK_GAP_SECS => run.push((n, b)),
            _ => runs.push(vec![(n, b)]),
        }
        last = Some(t);
    }
    runs
}

/// How an operation is moving, from its reports' times.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// New numbers this week, at a higher rate than in the weeks before.
    Rising,
    /// Reported within the last week.
    Active,
    /// Quiet for one to four weeks: a cool-down, or winding down.
    Cooling,
    /// Quiet for over 30 days.
    Dormant,
}

const DAY: u64 = 86_400;

/// The state of a campaign whose numbers were first reported at
/// `first_seen` (one time per number) and last at `last_seen` (the latest
/// of all), at `now`.
pub fn state(first_seen: &[u64], last_seen: u64, now: u64) -> State {
    let quiet = now.saturating_sub(last_seen);
    if quiet > 30 * DAY {
        return State::Dormant;
    }
    if quiet > 7 * DAY {
        return State::Cooling;
    }
    let week = now.saturating_sub(7 * DAY);
    let month = now.saturating_sub(30 * DAY);
    let new = first_seen.iter().filter(|t| **t >= week).count();
    let before = first_seen
        .iter()
        .filter(|t| **t >= month && **t < week)
        .count();
    // Rates per day: this week's (new / 7) above the 23 days' before.
    if new >= 2 && new * 23 > before * 7 {
        State::Rising
    } else {
        State::Active
    }
}

#[cfg(test)]
mod tests;
