//! Numbering plans: which plan a national number belongs to and what type of
//! line it is, read from the embedded libphonenumber metadata.
//!
//! The `phonenumber` crate parses (digits, international prefixes, national
//! prefixes); the rules that decide validity and line type live here and
//! follow libphonenumber's `getRegionCodeForNumber` and `getNumberType`:
//! a national number matches a descriptor when its length is one of the
//! descriptor's possible lengths and the *whole* number matches its pattern,
//! with the national number's leading zeros kept (Italy's `02…`). The crate
//! accepts a prefix match and drops leading zeros when typing a number,
//! which made 20 of libphonenumber's own example numbers `unknown`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use phonenumber::metadata::{Database, Descriptor};
use phonenumber::{Metadata, Type};
use regex::Regex;

/// The libphonenumber release whose numbering plans Sightline parses with
/// (SPEC.md §2). The `phonenumber` crate's own copy lags upstream, so the
/// metadata is regenerated from this release by `metadata/generate.py` and
/// embedded here; `tests/example_numbers.rs` checks every example number
/// of the release.
pub const METADATA_RELEASE: &str = "9.0.43";

/// The embedded metadata, loaded on first use.
pub(crate) static METADATA: LazyLock<Database> = LazyLock::new(|| {
    Database::parse(include_str!("../../metadata/PhoneNumberMetadata.xml"))
        .expect("the embedded metadata parses (every test loads it)")
});

/// A metadata pattern compiled anchored at the start only (Java's
/// `lookingAt`) or at both ends (`matches`).
#[derive(Clone, Copy)]
enum Anchor {
    Start,
    Both,
}

/// Anchored patterns compiled on first use, keyed by the metadata's own
/// pattern text (a lookup allocates nothing): a few hundred of the ~3,000
/// patterns are ever needed by one node.
type Cache = Mutex<HashMap<String, Arc<Regex>>>;
static ANCHORED: LazyLock<[Cache; 2]> =
    LazyLock::new(|| [Mutex::new(HashMap::new()), Mutex::new(HashMap::new())]);

fn compiled(pattern: &str, anchor: Anchor) -> Arc<Regex> {
    let mut cache = ANCHORED[anchor as usize]
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(re) = cache.get(pattern) {
        return re.clone();
    }
    let text = match anchor {
        Anchor::Start => format!("^(?:{pattern})"),
        Anchor::Both => format!("^(?:{pattern})$"),
    };
    let re = Arc::new(
        Regex::new(&text).expect("a metadata pattern the crate compiled also compiles anchored"),
    );
    cache.insert(pattern.to_owned(), re.clone());
    re
}

fn anchored(pattern: &str) -> Arc<Regex> {
    compiled(pattern, Anchor::Both)
}

fn leading(pattern: &str) -> Arc<Regex> {
    compiled(pattern, Anchor::Start)
}

/// libphonenumber's `isNumberMatchingDesc`: a possible length (when the
/// descriptor lists any) and a whole-number pattern match.
fn matches(desc: &Descriptor, national: &str) -> bool {
    let lengths = desc.possible_length();
    if !lengths.is_empty() && !u16::try_from(national.len()).is_ok_and(|len| lengths.contains(&len))
    {
        return false;
    }
    anchored(desc.national_number().as_str()).is_match(national)
}

/// libphonenumber's `getNumberTypeHelper`: the line type of a national
/// number in one plan, `Type::Unknown` if the plan does not assign it.
pub(crate) fn number_type(plan: &Metadata, national: &str) -> Type {
    let d = plan.descriptors();
    if !matches(d.general(), national) {
        return Type::Unknown;
    }
    let exclusive = [
        (Type::PremiumRate, d.premium_rate()),
        (Type::TollFree, d.toll_free()),
        (Type::SharedCost, d.shared_cost()),
        (Type::Voip, d.voip()),
        (Type::PersonalNumber, d.personal_number()),
        (Type::Pager, d.pager()),
        (Type::Uan, d.uan()),
        (Type::Voicemail, d.voicemail()),
    ];
    for (kind, desc) in exclusive {
        if desc.is_some_and(|desc| matches(desc, national)) {
            return kind;
        }
    }
    let same_pattern = match (d.fixed_line(), d.mobile()) {
        (Some(f), Some(m)) => f.national_number().as_str() == m.national_number().as_str(),
        _ => false,
    };
    let mobile = d.mobile().is_some_and(|m| matches(m, national));
    if d.fixed_line().is_some_and(|f| matches(f, national)) {
        return if same_pattern || mobile {
            Type::FixedLineOrMobile
        } else {
            Type::FixedLine
        };
    }
    if mobile {
        Type::Mobile
    } else {
        Type::Unknown
    }
}

/// libphonenumber's `maybeStripNationalPrefixAndCarrierCode` followed by
/// its length test in `parseHelper`: the national number a plan's dialled
/// digits stand for. The national prefix (and carrier code) is removed only
/// if the digits start with it, a number the plan could hold remains when
/// the digits were one, and the rest has a possible length; otherwise the
/// digits are the national number as they are (Russia's toll-free 800…
/// starts with the national prefix 8; Belarus's 8011… with its 80).
pub(crate) fn national_number(plan: &Metadata, digits: &str) -> String {
    let Some(parsing) = plan.national_prefix_for_parsing() else {
        return digits.to_owned();
    };
    let Some(found) = leading(parsing.as_str()).captures(digits) else {
        return digits.to_owned();
    };
    // libphonenumber's viability test here is the general pattern alone
    // (`matchNationalNumber`), without the possible-length check.
    let general = plan.descriptors().general();
    let viable_pattern = anchored(general.national_number().as_str());
    let viable = viable_pattern.is_match(digits);
    let whole = found.get(0).map_or(0, |m| m.end());
    let last_group = found.iter().skip(1).last().flatten();
    let rest = match (plan.national_prefix_transform_rule(), last_group) {
        (Some(rule), Some(_)) => {
            let mut out = String::new();
            found.expand(rule, &mut out);
            out + &digits[whole..]
        }
        _ => digits[whole..].to_owned(),
    };
    if viable && !viable_pattern.is_match(&rest) {
        return digits.to_owned();
    }
    // parseHelper keeps the digits if what remains is too short, only
    // locally diallable, or of a length the plan does not have.
    let len = u16::try_from(rest.len()).unwrap_or(u16::MAX);
    let possible = general.possible_length();
    let local_only = general.possible_local_length();
    let too_short = possible.iter().min().is_some_and(|min| len < *min);
    let too_long = possible.iter().max().is_some_and(|max| len > *max);
    if too_short || local_only.contains(&len) || (!too_long && !possible.contains(&len)) {
        return digits.to_owned();
    }
    rest
}

/// The main plan of each calling code (index: the code) with its national
/// prefix pattern compiled, read once: the E.164 fast path
/// ([`super::e164_as_given`]) looks one up per check.
type MainPlan = (&'static Metadata, Option<Arc<Regex>>);
static MAIN_PLANS: LazyLock<Vec<Option<MainPlan>>> = LazyLock::new(|| {
    (0..1000u16)
        .map(|code| {
            let plan = *plans_for(code).first()?;
            let prefix = plan
                .national_prefix_for_parsing()
                .map(|p| leading(p.as_str()));
            Some((plan, prefix))
        })
        .collect()
});

/// Whether libphonenumber would read `national`, dialled after calling
/// code `code`, as something else (a national prefix to remove); `None`
/// for a code no plan has.
pub(crate) fn rereads(code: u16, national: &str) -> Option<bool> {
    let (plan, prefix) = MAIN_PLANS.get(usize::from(code))?.as_ref()?;
    Some(match prefix {
        None => false,
        Some(re) if !re.is_match(national) => false,
        Some(_) => national_number(plan, national) != national,
    })
}

/// The plans that share a calling code, the main country first (US for
/// +1, GB for +44), as libphonenumber lists them.
pub(crate) fn plans_for(code: u16) -> Vec<&'static Metadata> {
    let mut plans = METADATA.by_code(&code).unwrap_or_default();
    plans.sort_by_key(|m| !m.is_main_country_for_code());
    plans
}

/// libphonenumber's `getRegionCodeForNumber`: the plan a national number
/// belongs to among those of its calling code (by the plan's leading
/// digits where it has them, else by being assigned in it).
pub(crate) fn plan_of(code: u16, national: &str) -> Option<&'static Metadata> {
    let plans = plans_for(code);
    if let [only] = plans[..] {
        return Some(only);
    }
    plans.into_iter().find(|plan| match plan.leading_digits() {
        Some(leading) => leading.find(national).is_some_and(|m| m.start() == 0),
        None => number_type(plan, national) != Type::Unknown,
    })
}

/// The shortest and longest national number the plans allow, over every
/// type of line (the general descriptor's list is often empty).
pub(crate) fn length_range(plans: &[&Metadata]) -> Option<(usize, usize)> {
    plans
        .iter()
        .flat_map(|m| {
            let d = m.descriptors();
            std::iter::once(Some(d.general()))
                .chain([
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.personal_number(),
                    d.voip(),
                    d.pager(),
                    d.uan(),
                    d.voicemail(),
                ])
                .flatten()
                .flat_map(|desc| desc.possible_length().iter().copied())
        })
        .fold(None, |range, len| {
            let len = usize::from(len);
            Some(range.map_or((len, len), |(lo, hi): (usize, usize)| {
                (lo.min(len), hi.max(len))
            }))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_are_part_of_the_national_number() {
        // Italy's fixed lines keep their 0 after the country code.
        let it = plan_of(39, "0212345678").unwrap();
        assert_eq!(it.id(), "IT");
        assert_eq!(number_type(it, "0212345678"), Type::FixedLine);
        // Without its zero the same digits are not an Italian fixed line.
        assert_ne!(number_type(it, "212345678"), Type::FixedLine);
    }

    #[test]
    fn a_prefix_match_is_not_a_match() {
        let us = plan_of(1, "4155550134").unwrap();
        assert_eq!(us.id(), "US");
        assert_eq!(number_type(us, "4155550134"), Type::FixedLineOrMobile);
        // One digit more is not a US number, though its first ten digits are.
        assert_eq!(number_type(us, "41555501345"), Type::Unknown);
    }

    #[test]
    fn a_shared_calling_code_resolves_to_the_plan_that_assigns_the_number() {
        assert_eq!(plan_of(7, "7710009998").unwrap().id(), "KZ");
        assert_eq!(plan_of(7, "9123456789").unwrap().id(), "RU");
        assert_eq!(plan_of(39, "0669812345").unwrap().id(), "VA");
        assert_eq!(plans_for(1)[0].id(), "US");
        assert_eq!(plans_for(44)[0].id(), "GB");
    }

    #[test]
    fn a_national_prefix_is_removed_only_when_a_number_remains() {
        let ru = plan_of(7, "9123456789").unwrap();
        assert_eq!(national_number(ru, "88001234567"), "8001234567");
        assert_eq!(national_number(ru, "8001234567"), "8001234567");
        assert_eq!(national_number(ru, "89123456789"), "9123456789");
        let by = plans_for(375)[0];
        assert_eq!(national_number(by, "8011234567"), "8011234567");
        let gb = plans_for(44)[0];
        assert_eq!(national_number(gb, "02079460958"), "2079460958");
        // Argentina's transform rule inserts the mobile 9 for 0xx 15 numbers.
        let ar = plans_for(54)[0];
        assert_eq!(
            national_number(ar, "011 15 2345 6789".replace(' ', "").as_str()),
            "91123456789"
        );
    }

    #[test]
    fn length_ranges_come_from_every_type_of_line() {
        assert_eq!(length_range(&plans_for(44)[..1]), Some((7, 10)));
        assert_eq!(length_range(&[]), None);
    }
}
