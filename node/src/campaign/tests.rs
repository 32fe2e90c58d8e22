use super::*;
use crate::store::SCRIPT_DISTANCE;
use sightline_protocol::links::hamming;

const NOW: u64 = 1_800_000_000;

/// The held reports, in memory: the store's reads over a list.
#[derive(Default)]
struct Held(Vec<(Linked, Vec<Link>)>);

impl Held {
    fn report(&mut self, number: u8, block: u8, origin: u8, last_seen: u64, links: &[Link]) {
        self.0.push((
            Linked {
                number: NumberHash::from_bytes([number; 32]),
                block: BlockHash::from_bytes([block; 32]),
                origin: OriginId::from_bytes([origin; 32]),
                last_seen,
                malicious: true,
            },
            links.to_vec(),
        ));
    }
}

impl Graph for Held {
    type Error = std::convert::Infallible;

    fn links(&self, number: &NumberHash) -> Result<Vec<(Linked, Vec<Link>)>, Self::Error> {
        Ok(self
            .0
            .iter()
            .filter(|(r, l)| r.number == *number && !l.is_empty())
            .cloned()
            .collect())
    }

    fn sharing(
        &self,
        link: &Link,
        origin: &OriginId,
        limit: usize,
    ) -> Result<Sharing, Self::Error> {
        let reports: Vec<Linked> = self
            .0
            .iter()
            .filter(|(r, _)| r.origin == *origin)
            .filter(|(_, links)| {
                links.iter().any(|l| match (l, link) {
                    (Link::Script(a), Link::Script(b)) => hamming(*a, *b) <= SCRIPT_DISTANCE,
                    _ => l == link,
                })
            })
            .map(|(r, _)| *r)
            .collect();
        Ok(Sharing {
            too_common: reports.len() > limit,
            read: reports.len().min(limit + 1),
            reports,
        })
    }

    fn block(&self, block: &BlockHash, limit: usize) -> Result<(Vec<Linked>, bool), Self::Error> {
        let all: Vec<Linked> = self
            .0
            .iter()
            .filter(|(r, _)| r.block == *block)
            .map(|(r, _)| *r)
            .collect();
        Ok((all.iter().take(limit).copied().collect(), all.len() > limit))
    }
}

fn n(b: u8) -> NumberHash {
    NumberHash::from_bytes([b; 32])
}

fn start(number: u8, block: u8) -> Start {
    Start::Number(n(number), BlockHash::from_bytes([block; 32]))
}

/// Origins 1-9 at trust 0.8, 50 and 51 at 0.5; any other has none.
fn trust() -> Vec<(OriginId, f64)> {
    (1..=9u8)
        .map(|o| (OriginId::from_bytes([o; 32]), 0.8))
        .chain([50u8, 51].map(|o| (OriginId::from_bytes([o; 32]), 0.5)))
        .collect()
}
const DOMAIN: Link = Link::UrlDomain([7; 32]);
const SENDER: Link = Link::Sender([8; 32]);

fn numbers(c: &Campaign) -> Vec<u8> {
    c.members.iter().map(|m| m.number.as_bytes()[0]).collect()
}

#[test]
fn numbers_sharing_a_token_are_one_campaign_named_the_same_from_each() {
    let mut held = Held::default();
    // Three organizations, three numbers in different blocks, one domain;
    // the third number also shares a sender with a fourth.
    held.report(1, 10, 1, NOW, &[DOMAIN]);
    held.report(2, 20, 2, NOW, &[DOMAIN]);
    held.report(3, 30, 3, NOW, &[DOMAIN, SENDER]);
    held.report(4, 40, 1, NOW, &[SENDER]);
    held.report(5, 50, 2, NOW, &[Link::UrlDomain([9; 32])]);
    let ids: Vec<String> = [(1, 10), (2, 20), (3, 30), (4, 40)]
        .into_iter()
        .map(|(num, block)| {
            let c = explore(&held, start(num, block), &trust())
                .unwrap()
                .unwrap();
            assert_eq!(numbers(&c), [1, 2, 3, 4]);
            assert!(c.complete);
            c.id
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(ids[0], format!("t00{}", "07".repeat(32)));
    // The id leads back to the same campaign.
    let again = explore(&held, parse_id(&ids[0]).unwrap(), &trust())
        .unwrap()
        .unwrap();
    assert_eq!(numbers(&again), [1, 2, 3, 4]);
    let c = explore(&held, start(3, 30), &trust()).unwrap().unwrap();
    let via: Vec<Via> = c.member(&n(3)).unwrap().via.iter().copied().collect();
    assert_eq!(
        via,
        [Via::Link(LinkKind::UrlDomain), Via::Link(LinkKind::Sender)]
    );
    // Nothing links the fifth.
    assert!(explore(&held, start(5, 50), &trust()).unwrap().is_none());
}

#[test]
fn links_of_untrusted_origins_and_other_verdicts_link_nothing() {
    let mut held = Held::default();
    held.report(1, 10, 1, NOW, &[DOMAIN]);
    held.report(2, 20, 2, NOW, &[SENDER]);
    // Origin 200 is not trusted: it plants both tokens on one number.
    held.report(3, 30, 200, NOW, &[DOMAIN, SENDER]);
    held.report(2, 20, 200, NOW, &[DOMAIN]);
    assert!(explore(&held, start(1, 10), &trust()).unwrap().is_none());
    let mut fp = Held::default();
    fp.report(1, 10, 1, NOW, &[DOMAIN]);
    fp.report(2, 20, 2, NOW, &[DOMAIN]);
    fp.0[1].0.malicious = false;
    assert!(explore(&fp, start(1, 10), &trust()).unwrap().is_none());
}

#[test]
fn a_member_below_link_trust_links_nothing_alone_and_cannot_bridge_campaigns() {
    let mut held = Held::default();
    // Campaign A (domain) and campaign B (sender), each by trusted members.
    held.report(1, 10, 1, NOW, &[DOMAIN]);
    held.report(2, 20, 2, NOW, &[DOMAIN]);
    held.report(3, 30, 3, NOW, &[SENDER]);
    held.report(4, 40, 4, NOW, &[SENDER]);
    // Member 50 (trust 0.5) reports a number of each with both tokens, and
    // its own numbers with a tag of its own.
    let tag = Link::Campaign([5; 32]);
    held.report(2, 20, 50, NOW, &[DOMAIN, SENDER, tag]);
    held.report(3, 30, 50, NOW, &[DOMAIN, SENDER, tag]);
    held.report(5, 50, 50, NOW, &[tag]);
    let a = explore(&held, start(1, 10), &trust()).unwrap().unwrap();
    assert_eq!(numbers(&a), [1, 2]);
    let b = explore(&held, start(4, 40), &trust()).unwrap().unwrap();
    assert_eq!(numbers(&b), [3, 4]);
    assert!(explore(&held, start(5, 50), &trust()).unwrap().is_none());
    // Two members at 0.5 that agree on a number tie it.
    held.report(5, 50, 51, NOW, &[tag]);
    held.report(6, 60, 50, NOW, &[tag]);
    held.report(6, 60, 51, NOW, &[tag]);
    let agreed = explore(&held, start(5, 50), &trust()).unwrap().unwrap();
    assert_eq!(numbers(&agreed), [5, 6]);
}

#[test]
fn a_token_on_too_many_reports_links_nothing() {
    let mut held = Held::default();
    for i in 0..=u8::try_from(MAX_TOKEN_REPORTS).unwrap() {
        held.report(i, i, 1, NOW, &[DOMAIN]);
    }
    assert!(explore(&held, start(0, 0), &trust()).unwrap().is_none());
    held.report(0, 0, 2, NOW, &[SENDER]);
    held.report(7, 7, 2, NOW, &[SENDER]);
    let c = explore(&held, start(0, 0), &trust()).unwrap().unwrap();
    assert_eq!(numbers(&c), [0, 7]);
    assert_eq!(c.too_common, 1);
    // Another member's word on the flooded token still counts.
    held.report(0, 0, 3, NOW, &[DOMAIN]);
    held.report(9, 9, 3, NOW, &[DOMAIN]);
    let c = explore(&held, start(9, 9), &trust()).unwrap().unwrap();
    assert_eq!(numbers(&c), [0, 7, 9]);
}

#[test]
fn near_scripts_link_and_distant_ones_do_not() {
    let mut held = Held::default();
    held.report(1, 10, 1, NOW, &[Link::Script(0b1011)]);
    held.report(2, 20, 2, NOW, &[Link::Script(0xf0f0)]); // far from both
    held.report(3, 30, 3, NOW, &[Link::Script(0b1000)]); // 2 bits away
    let c = explore(&held, start(1, 10), &trust()).unwrap().unwrap();
    assert_eq!(numbers(&c), [1, 3]);
}

#[test]
fn a_block_links_numbers_in_one_run_of_activity_and_not_across_a_long_gap() {
    let mut held = Held::default();
    // An operation rotates through block 9 with 20-day cool-downs, then
    // after 60 quiet days another one starts in the same block.
    held.report(1, 9, 1, NOW - 100 * DAY, &[]);
    held.report(2, 9, 2, NOW - 80 * DAY, &[]);
    held.report(3, 9, 3, NOW - 60 * DAY, &[]);
    held.report(4, 9, 1, NOW, &[]);
    held.report(5, 9, 2, NOW - DAY, &[]);
    // The 1,000-block token links nothing.
    held.report(6, 8, 1, NOW, &[Link::Block1000([1; 32])]);
    held.report(7, 7, 2, NOW, &[Link::Block1000([1; 32])]);
    let old = explore(&held, start(2, 9), &trust()).unwrap().unwrap();
    assert_eq!(numbers(&old), [1, 2, 3]);
    assert!(old.id.starts_with('b'));
    assert_eq!(
        old.member(&n(1)).unwrap().via.iter().collect::<Vec<_>>(),
        [&Via::Block]
    );
    let new = explore(&held, start(5, 9), &trust()).unwrap().unwrap();
    assert_eq!(numbers(&new), [4, 5]);
    assert_eq!(new.id, old.id, "named by the block when no token links");
    assert!(explore(&held, start(6, 8), &trust()).unwrap().is_none());
}

#[test]
fn a_campaign_stops_growing_at_its_bound_and_says_so() {
    let mut held = Held::default();
    // A chain: number i shares a token with number i + 1.
    for i in 0..600u16 {
        let mut a = [0u8; 32];
        a[..2].copy_from_slice(&i.to_be_bytes());
        let mut b = [0u8; 32];
        b[..2].copy_from_slice(&(i + 1).to_be_bytes());
        let number = |bytes: [u8; 32]| NumberHash::from_bytes(bytes);
        for (num, token) in [(a, a), (b, a)] {
            held.0.push((
                Linked {
                    number: number(num),
                    block: BlockHash::from_bytes(num),
                    origin: OriginId::from_bytes([1; 32]),
                    last_seen: NOW,
                    malicious: true,
                },
                vec![Link::Campaign(token)],
            ));
        }
    }
    let first = held.0[0].0;
    let c = explore(&held, Start::Number(first.number, first.block), &trust())
        .unwrap()
        .unwrap();
    assert_eq!(c.members.len(), MAX_NUMBERS);
    assert!(!c.complete);
}

#[test]
fn states_follow_report_times() {
    assert_eq!(
        state(&[NOW - 90 * DAY], NOW - 31 * DAY, NOW),
        State::Dormant
    );
    assert_eq!(state(&[NOW - 20 * DAY], NOW - 8 * DAY, NOW), State::Cooling);
    // Two new numbers this week against two in the three weeks before.
    let rising = [NOW - 20 * DAY, NOW - 15 * DAY, NOW - DAY, NOW];
    assert_eq!(state(&rising, NOW, NOW), State::Rising);
    let steady = [
        NOW - 29 * DAY,
        NOW - 25 * DAY,
        NOW - 20 * DAY,
        NOW - 15 * DAY,
        NOW - 10 * DAY,
        NOW,
    ];
    assert_eq!(state(&steady, NOW, NOW), State::Active);
}

#[test]
fn ids_parse_back_and_garbage_does_not() {
    assert!(
        matches!(parse_id(&format!("t01{}", "08".repeat(32))), Some(Start::Token(l)) if l == SENDER)
    );
    assert!(matches!(
        parse_id(&format!("b{}", "ab".repeat(32))),
        Some(Start::Block(_))
    ));
    for bad in [
        "",
        "t",
        "x00",
        "t0",
        "tzz",
        "b00",
        &format!("t05{}", "00".repeat(32)),
    ] {
        assert!(parse_id(bad).is_none(), "{bad}");
    }
}
