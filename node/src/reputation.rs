//! Scoring a number from its reports: pure, with the clock as a parameter.
//!
//! Rules (design.md "Reputation"):
//! - each origin's latest report (highest seq) counts once;
//! - a malicious report contributes `c = trust × confidence/100 × decay(age)`,
//!   with `decay(age) = 0.5^(age / half_life)`, the half-life of the report's
//!   kind ([`HalfLives`]), and age measured from the report's `first_seen`:
//!   the organization re-reporting a number does not reset its clock (its
//!   node carries `first_seen` over), another organization's report counts
//!   from its own first sighting;
//! - malicious contributions combine as `p = 1 − Π(1 − cᵢ)`: bounded in
//!   [0, 1], rising with every independent trusted organization, never past 1;
//! - false-positive reports combine the same way into `q`, and pull the score
//!   down: `score = p × (1 − q)`;
//! - withdrawn reports count zero.
//!
//! Bands: `none` below 0.1, `low` below 0.4, `medium` below 0.8, `high` from
//! 0.8. One trusted organization (trust 0.8) at confidence 90 gives 0.72,
//! `medium`; a second independent one lifts it to 0.92, `high`. The node's
//! own organization counts with trust 1.0.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sightline_protocol::{Channel, Kind, OriginId, Role, Sighting, Verdict};

/// Lower bounds of the bands.
pub const BAND_LOW: f64 = 0.1;
/// Lower bound of `medium`.
pub const BAND_MEDIUM: f64 = 0.4;
/// Lower bound of `high`.
pub const BAND_HIGH: f64 = 0.8;

/// How sure the community is, in words.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// Score below 0.1 (or no malicious report).
    None,
    /// 0.1 ≤ score < 0.4.
    Low,
    /// 0.4 ≤ score < 0.8.
    Medium,
    /// score ≥ 0.8.
    High,
}

impl Band {
    /// The band of a score.
    pub fn of(score: f64) -> Band {
        if score >= BAND_HIGH {
            Band::High
        } else if score >= BAND_MEDIUM {
            Band::Medium
        } else if score >= BAND_LOW {
            Band::Low
        } else {
            Band::None
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::None => "none",
            Band::Low => "low",
            Band::Medium => "medium",
            Band::High => "high",
        }
    }
}

impl std::str::FromStr for Band {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Band::None),
            "low" => Ok(Band::Low),
            "medium" => Ok(Band::Medium),
            "high" => Ok(Band::High),
            _ => Err(format!(
                "unknown band {s:?}; expected none, low, medium or high"
            )),
        }
    }
}

/// One report with the trust of the organization behind it.
#[derive(Debug, Clone)]
pub struct Report {
    /// Organization name (or the origin's hex if it is not a member any more).
    pub org: String,
    /// Effective trust weight of that organization, 0.0–1.0.
    pub trust: f64,
    /// The record.
    pub sighting: Sighting,
}

/// What a report claims about a number, as analysts see it: the fields
/// shared by a scored report ([`Contribution`]) and a stored one in the
/// recent list (`RecentSighting`). Flattened into both in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Claim {
    /// Kind.
    pub kind: Kind,
    /// Verdict.
    pub verdict: Verdict,
    /// Channel.
    pub channel: Channel,
    /// Brand, if given.
    pub brand: Option<String>,
    /// The origin's confidence, 0–100.
    pub confidence: u8,
    /// Observations.
    pub count: u32,
}

impl From<&Sighting> for Claim {
    fn from(s: &Sighting) -> Self {
        Claim {
            kind: s.kind,
            verdict: s.verdict,
            channel: s.channel,
            brand: s.brand.clone(),
            confidence: s.confidence,
            count: s.count,
        }
    }
}

/// What one report contributed: the explanation shown to analysts.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Contribution {
    /// Organization.
    pub org: String,
    /// Signing node's public key, hex.
    pub origin: String,
    /// The report's seq.
    pub seq: u64,
    /// What it claims.
    #[serde(flatten)]
    pub claim: Claim,
    /// First observation.
    pub first_seen: u64,
    /// Last observation.
    pub last_seen: u64,
    /// Trust used.
    pub trust: f64,
    /// Time decay factor, 0–1.
    pub decay: f64,
    /// Effective weight: positive for malicious, negative for false
    /// positive, zero for withdrawn.
    pub weight: f64,
}

/// Trust an organization needs here for its attestation that it operates a
/// number to count (the same bar as linking numbers on its own word,
/// `campaign::LINK_TRUST`): a protected number is never blocked on, so a
/// member trusted less cannot shield scam numbers by "protecting" them.
pub const PROTECT_TRUST: f64 = 0.6;

/// A trusted organization's attestation that it operates the number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Protection {
    /// The organization.
    pub org: String,
    /// How it uses the number.
    pub role: Role,
}

/// The scored answer for one number.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Score {
    /// 0.0–1.0.
    pub score: f64,
    /// Band of the score.
    pub band: Band,
    /// Distinct trusted organizations (trust above 0) whose current report
    /// is malicious.
    pub orgs: usize,
    /// Earliest `first_seen` of the current non-withdrawn reports.
    pub first_seen: Option<u64>,
    /// Latest `last_seen` of the current non-withdrawn reports.
    pub last_seen: Option<u64>,
    /// Kinds named by current non-withdrawn reports.
    pub kinds: BTreeSet<Kind>,
    /// Channels named by current non-withdrawn reports.
    pub channels: BTreeSet<Channel>,
    /// Brands named by current non-withdrawn reports.
    pub brands: BTreeSet<String>,
    /// Every counted report, strongest first.
    pub reports: Vec<Contribution>,
    /// Organizations this node trusts (at [`PROTECT_TRUST`] or more) that
    /// attest they operate the number (SPEC §13.5): reports of abuse from
    /// it are spoofing. A gateway must not block such a number whatever
    /// its band.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_by: Vec<Protection>,
}

/// Half-lives of a report's weight by kind, in seconds. Scam numbers of
/// different kinds live differently: callback (TOAD) and BEC numbers are
/// staffed and kept for weeks, smishing senders and robocall caller ids
/// rotate within days (Cisco Talos: median number lifespan 14 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct HalfLives {
    /// By kind code.
    secs: [u64; 7],
}

impl HalfLives {
    /// Days by kind when `network.toml` names none.
    pub const DEFAULT_DAYS: [(Kind, f64); 7] = [
        (Kind::Smishing, 14.0),
        (Kind::Vishing, 30.0),
        (Kind::Callback, 45.0),
        (Kind::Bec, 45.0),
        (Kind::Robocall, 14.0),
        (Kind::SimSwap, 30.0),
        (Kind::Other, 14.0),
    ];

    /// The same half-life for every kind.
    pub const fn uniform(secs: u64) -> Self {
        HalfLives { secs: [secs; 7] }
    }

    /// From days by kind (kinds not given keep their default).
    pub fn from_days(days: &BTreeMap<Kind, f64>) -> Self {
        let mut secs = [0u64; 7];
        for (kind, default) in Self::DEFAULT_DAYS {
            let d = days.get(&kind).copied().unwrap_or(default);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let s = (d * 86_400.0) as u64;
            secs[usize::from(kind.code())] = s.max(1);
        }
        HalfLives { secs }
    }

    /// The half-life of `kind`, seconds.
    pub fn of(&self, kind: Kind) -> u64 {
        self.secs[usize::from(kind.code())]
    }
}

impl Default for HalfLives {
    fn default() -> Self {
        Self::from_days(&BTreeMap::new())
    }
}

/// `0.5^(age / half_life)`; a report from the future counts as fresh.
pub fn decay(now: u64, last_seen: u64, half_life_secs: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let age = now.saturating_sub(last_seen) as f64;
    #[allow(clippy::cast_precision_loss)]
    let half_life = half_life_secs.max(1) as f64;
    0.5_f64.powf(age / half_life)
}

/// Scores a number from its reports at time `now`.
pub fn score(reports: &[Report], now: u64, half_lives: &HalfLives) -> Score {
    // Latest report per origin counts once.
    let mut latest: BTreeMap<OriginId, &Report> = BTreeMap::new();
    for r in reports {
        let slot = latest.entry(r.sighting.origin).or_insert(r);
        if r.sighting.seq > slot.sighting.seq {
            *slot = r;
        }
    }
    let mut malicious_keep = 1.0;
    let mut false_positive_keep = 1.0;
    let mut out = Score {
        score: 0.0,
        band: Band::None,
        orgs: 0,
        first_seen: None,
        last_seen: None,
        kinds: BTreeSet::new(),
        channels: BTreeSet::new(),
        brands: BTreeSet::new(),
        reports: Vec::new(),
        protected_by: Vec::new(),
    };
    let mut malicious_orgs = BTreeSet::new();
    for r in latest.values() {
        let s = &r.sighting;
        let trust = r.trust.clamp(0.0, 1.0);
        let d = decay(now, s.first_seen, half_lives.of(s.kind));
        let strength = trust * f64::from(s.confidence.min(100)) / 100.0 * d;
        let weight = match s.verdict {
            Verdict::Malicious => {
                malicious_keep *= 1.0 - strength;
                // "Reported by N organizations" counts trusted ones only.
                if trust > 0.0 {
                    malicious_orgs.insert(r.org.clone());
                }
                strength
            }
            Verdict::FalsePositive => {
                false_positive_keep *= 1.0 - strength;
                -strength
            }
            Verdict::Withdrawn => 0.0,
            Verdict::Protected => {
                // An attestation, not a claim of abuse (SPEC §13.5); it
                // stops blocking, so only an organization trusted to speak
                // for itself makes it.
                if trust >= PROTECT_TRUST {
                    out.protected_by.push(Protection {
                        org: r.org.clone(),
                        role: s.role.unwrap_or(Role::Outbound),
                    });
                }
                0.0
            }
        };
        if matches!(s.verdict, Verdict::Malicious | Verdict::FalsePositive) {
            out.first_seen = Some(out.first_seen.map_or(s.first_seen, |f| f.min(s.first_seen)));
            out.last_seen = Some(out.last_seen.map_or(s.last_seen, |l| l.max(s.last_seen)));
            out.kinds.insert(s.kind);
            out.channels.insert(s.channel);
            out.brands.extend(s.brand.clone());
        }
        out.reports.push(Contribution {
            org: r.org.clone(),
            origin: s.origin.to_hex(),
            seq: s.seq,
            claim: Claim::from(s),
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            trust,
            decay: d,
            weight,
        });
    }
    let p = 1.0 - malicious_keep;
    let q = 1.0 - false_positive_keep;
    out.score = (p * (1.0 - q)).clamp(0.0, 1.0);
    out.band = Band::of(out.score);
    out.orgs = malicious_orgs.len();
    out.reports.sort_by(|a, b| {
        b.weight
            .abs()
            .total_cmp(&a.weight.abs())
            .then(a.org.cmp(&b.org))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sightline_protocol::{BlockHash, LineType, NetworkId, NumberHash};

    const DAY: u64 = 86_400;
    const HALF: u64 = 14 * DAY;
    const NOW: u64 = 1_800_000_000;

    fn report(
        origin: u8,
        org: &str,
        trust: f64,
        seq: u64,
        verdict: Verdict,
        confidence: u8,
        last_seen: u64,
    ) -> Report {
        Report {
            org: org.into(),
            trust,
            sighting: Sighting {
                network: NetworkId::new("n").unwrap(),
                origin: OriginId::from_bytes([origin; 32]),
                seq,
                number: NumberHash::from_bytes([1; 32]),
                block: BlockHash::from_bytes([2; 32]),
                cc: 1,
                line: LineType::Mobile,
                kind: Kind::Smishing,
                verdict,
                channel: Channel::Sms,
                brand: Some(format!("brand-{origin}")),
                confidence,
                count: 1,
                first_seen: last_seen,
                last_seen,
                expires: None,
                links: None,
                role: None,
            },
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn no_reports_scores_zero() {
        let s = score(&[], NOW, &HalfLives::uniform(HALF));
        assert!(close(s.score, 0.0));
        assert_eq!((s.band, s.orgs), (Band::None, 0));
    }

    #[test]
    fn an_untrusted_organization_is_listed_but_not_counted() {
        let s = score(
            &[
                report(1, "bank", 0.8, 1, Verdict::Malicious, 90, NOW),
                report(2, "mallory", 0.0, 1, Verdict::Malicious, 100, NOW),
            ],
            NOW,
            &HalfLives::uniform(HALF),
        );
        assert_eq!(s.orgs, 1);
        assert!(close(s.score, 0.72));
        assert_eq!(s.reports.len(), 2);
    }

    #[test]
    fn one_report_is_trust_times_confidence() {
        let s = score(
            &[report(1, "bank", 0.8, 1, Verdict::Malicious, 90, NOW)],
            NOW,
            &HalfLives::uniform(HALF),
        );
        assert!(close(s.score, 0.72));
        assert_eq!((s.band, s.orgs), (Band::Medium, 1));
        assert!(close(s.reports[0].weight, 0.72));
    }

    #[test]
    fn independent_orgs_raise_the_score_but_never_past_one() {
        let one = score(
            &[report(1, "a", 0.8, 1, Verdict::Malicious, 90, NOW)],
            NOW,
            &HalfLives::uniform(HALF),
        );
        let two = score(
            &[
                report(1, "a", 0.8, 1, Verdict::Malicious, 90, NOW),
                report(2, "b", 0.8, 1, Verdict::Malicious, 90, NOW),
            ],
            NOW,
            &HalfLives::uniform(HALF),
        );
        assert!(close(two.score, 1.0 - 0.28 * 0.28));
        assert!(two.score > one.score);
        assert_eq!((two.band, two.orgs), (Band::High, 2));
        let many: Vec<_> = (0..50)
            .map(|i| report(i, &format!("o{i}"), 1.0, 1, Verdict::Malicious, 100, NOW))
            .collect();
        assert!(score(&many, NOW, &HalfLives::uniform(HALF)).score <= 1.0);
    }

    #[test]
    fn latest_report_per_origin_counts_once() {
        let repeated = score(
            &[
                report(1, "a", 0.8, 1, Verdict::Malicious, 90, NOW),
                report(1, "a", 0.8, 2, Verdict::Malicious, 90, NOW),
                report(1, "a", 0.8, 3, Verdict::Malicious, 50, NOW),
            ],
            NOW,
            &HalfLives::uniform(HALF),
        );
        assert!(close(repeated.score, 0.4));
        assert_eq!(repeated.reports.len(), 1);
        assert_eq!(repeated.reports[0].seq, 3);
    }

    #[test]
    fn re_reporting_does_not_reset_the_clock_but_another_organization_does() {
        // One organization first saw the number two half-lives ago and has
        // re-reported it today: its report still weighs a quarter.
        let mut again = report(1, "a", 1.0, 2, Verdict::Malicious, 100, NOW);
        again.sighting.first_seen = NOW - 2 * HALF;
        let halves = HalfLives::uniform(HALF);
        let s = score(std::slice::from_ref(&again), NOW, &halves);
        assert!(close(s.score, 0.25), "{}", s.score);
        // Another organization reporting it today counts fresh.
        let other = report(2, "b", 1.0, 1, Verdict::Malicious, 100, NOW);
        assert!(close(score(&[again, other], NOW, &halves).score, 1.0));
    }

    #[test]
    fn each_kind_decays_at_its_own_half_life() {
        let halves = HalfLives::from_days(&[(Kind::Vishing, 60.0)].into_iter().collect());
        assert_eq!(halves.of(Kind::Vishing), 60 * DAY);
        assert_eq!(halves.of(Kind::Callback), 45 * DAY, "default kept");
        assert_eq!(halves.of(Kind::Smishing), 14 * DAY);
        let mut vishing = report(1, "a", 1.0, 1, Verdict::Malicious, 100, NOW - 60 * DAY);
        vishing.sighting.kind = Kind::Vishing;
        let smishing = report(2, "b", 1.0, 1, Verdict::Malicious, 100, NOW - 14 * DAY);
        assert!(close(score(&[vishing], NOW, &halves).score, 0.5));
        assert!(close(score(&[smishing], NOW, &halves).score, 0.5));
        // Callback and BEC numbers outlive smishing senders by default.
        let d = HalfLives::default();
        assert!(d.of(Kind::Callback) > d.of(Kind::Smishing));
        assert!(d.of(Kind::Vishing) > d.of(Kind::Smishing));
    }

    #[test]
    fn decay_halves_every_half_life() {
        let fresh = score(
            &[report(1, "a", 1.0, 1, Verdict::Malicious, 100, NOW)],
            NOW,
            &HalfLives::uniform(HALF),
        );
        let old = score(
            &[report(1, "a", 1.0, 1, Verdict::Malicious, 100, NOW - HALF)],
            NOW,
            &HalfLives::uniform(HALF),
        );
        let older = score(
            &[report(
                1,
                "a",
                1.0,
                1,
                Verdict::Malicious,
                100,
                NOW - 2 * HALF,
            )],
            NOW,
            &HalfLives::uniform(HALF),
        );
        assert!(close(fresh.score, 1.0));
        assert!(close(old.score, 0.5));
        assert!(close(older.score, 0.25));
        // Future timestamps (clock skew) count as fresh, not as more than fresh.
        assert!(close(decay(NOW, NOW + 100, HALF), 1.0));
    }

    #[test]
    fn trusted_false_positive_pulls_the_score_down() {
        let malicious = report(1, "a", 0.8, 1, Verdict::Malicious, 90, NOW);
        let fp = report(2, "b", 0.9, 1, Verdict::FalsePositive, 100, NOW);
        let s = score(&[malicious.clone(), fp], NOW, &HalfLives::uniform(HALF));
        assert!(close(s.score, 0.72 * 0.1));
        assert_eq!(s.band, Band::None);
        assert!(s.reports.iter().any(|c| c.weight < 0.0));
        let untrusted_fp = report(3, "c", 0.1, 1, Verdict::FalsePositive, 100, NOW);
        assert!(score(&[malicious, untrusted_fp], NOW, &HalfLives::uniform(HALF)).score > 0.6);
    }

    #[test]
    fn withdrawn_counts_zero() {
        let s = score(
            &[
                report(1, "a", 0.8, 1, Verdict::Malicious, 90, NOW),
                report(1, "a", 0.8, 2, Verdict::Withdrawn, 0, NOW),
            ],
            NOW,
            &HalfLives::uniform(HALF),
        );
        assert!(close(s.score, 0.0));
        assert_eq!((s.orgs, s.first_seen), (0, None));
        assert!(close(s.reports[0].weight, 0.0));
    }

    #[test]
    fn zero_trust_counts_zero() {
        let s = score(
            &[report(1, "a", 0.0, 1, Verdict::Malicious, 100, NOW)],
            NOW,
            &HalfLives::uniform(HALF),
        );
        assert!(close(s.score, 0.0));
    }

    #[test]
    fn aggregates_kinds_brands_and_times() {
        let mut a = report(1, "a", 0.8, 1, Verdict::Malicious, 90, NOW - 10);
        a.sighting.first_seen = NOW - 100;
        let mut b = report(2, "b", 0.8, 1, Verdict::Malicious, 90, NOW);
        b.sighting.kind = Kind::Vishing;
        b.sighting.channel = Channel::Voice;
        let s = score(&[a, b], NOW, &HalfLives::uniform(HALF));
        assert_eq!(s.first_seen, Some(NOW - 100));
        assert_eq!(s.last_seen, Some(NOW));
        assert_eq!(s.kinds.len(), 2);
        assert_eq!(s.channels.len(), 2);
        assert_eq!(s.brands.len(), 2);
    }

    #[test]
    fn bands_follow_thresholds() {
        assert_eq!(Band::of(0.0), Band::None);
        assert_eq!(Band::of(0.099), Band::None);
        assert_eq!(Band::of(0.1), Band::Low);
        assert_eq!(Band::of(0.4), Band::Medium);
        assert_eq!(Band::of(0.8), Band::High);
        assert_eq!("HIGH".parse::<Band>().unwrap(), Band::High);
    }

    proptest! {
        #[test]
        fn score_is_bounded_and_monotone_in_added_malicious_reports(
            base in proptest::collection::vec((0.0f64..=1.0, 0u8..=100, 0u64..100 * DAY), 0..8),
            extra in (0.0f64..=1.0, 0u8..=100, 0u64..100 * DAY),
        ) {
            let reports: Vec<_> = base.iter().enumerate().map(|(i, (t, c, age))| {
                report(u8::try_from(i).unwrap(), &format!("o{i}"), *t, 1, Verdict::Malicious, *c, NOW - age)
            }).collect();
            let before = score(&reports, NOW, &HalfLives::uniform(HALF)).score;
            let mut more = reports.clone();
            more.push(report(200, "new", extra.0, 1, Verdict::Malicious, extra.1, NOW - extra.2));
            let after = score(&more, NOW, &HalfLives::uniform(HALF)).score;
            prop_assert!((0.0..=1.0).contains(&before));
            prop_assert!((0.0..=1.0).contains(&after));
            prop_assert!(after >= before - 1e-12);
        }
    }
}
