//! Turning what people paste into an E.164 number, with libphonenumber metadata.
//!
//! Everything downstream (privacy hashing, line type, country) starts from the
//! validated [`E164`] this module returns; nothing else constructs one.

use std::fmt;
use std::str::FromStr;

use phonenumber::{country, ParseError};

use crate::fields::LineType;

mod plan;
mod text;

use plan::METADATA;
pub use plan::METADATA_RELEASE;
pub use text::{candidates_in, MAX_CANDIDATES};

/// Longest input accepted before parsing. Real pasted numbers with formatting
/// and a `tel:` prefix stay far below this; longer input is not a phone number
/// and would only cost regex time.
pub const MAX_INPUT_LEN: usize = 64;

/// Why a piece of text is not a phone number Sightline can hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Nothing but whitespace was given.
    #[error("empty input")]
    Empty,
    /// Longer than [`MAX_INPUT_LEN`] bytes.
    #[error("input is longer than {MAX_INPUT_LEN} characters")]
    InputTooLong,
    /// No phone number could be read from the text.
    #[error("not a phone number")]
    NotANumber,
    /// A national number was given without `+` or a default region.
    #[error(
        "national number without a country: write it as +<country code>… or give a default region"
    )]
    NoRegion,
    /// The default region is not an ISO 3166-1 alpha-2 code libphonenumber knows.
    #[error("unknown region {0:?} (expected an ISO 3166 code such as US or GB)")]
    UnknownRegion(String),
    /// The country calling code is not assigned.
    #[error("unknown country calling code")]
    UnknownCountryCode,
    /// Fewer digits than any number of that country has.
    #[error("too short for {0}")]
    TooShort(String),
    /// More digits than any number of that country has.
    #[error("too long for {0}")]
    TooLong(String),
    /// Right length range, but not a number the numbering plan assigns.
    #[error("not a valid number for {0}")]
    InvalidForRegion(String),
    /// An extension (`ext. 12`) is not part of E.164 and would be silently lost.
    #[error("has an extension; submit the number without it")]
    HasExtension,
    /// Letters in the input: libphonenumber reads them as keypad digits
    /// (`O` as 6), which turns a typo into another number. Refused unless
    /// the caller opts in to vanity numbers ([`Letters::Vanity`]).
    #[error(
        "contains letters, which would be read as keypad digits (O as 6); check the number, or opt in to vanity numbers such as +1-800-FLOWERS"
    )]
    HasLetters,
}

/// What letters in the input mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Letters {
    /// Refuse input with letters ([`NumberError::HasLetters`]): the default,
    /// since a letter O typed for a zero would silently become a 6.
    #[default]
    Refuse,
    /// Read letters as keypad digits (`+1-800-FLOWERS` is +18003569377),
    /// for callers that explicitly ask for vanity numbers. As in
    /// libphonenumber, only a number with at least three (ASCII) letters is
    /// a vanity number; one or two stray letters are still refused.
    Vanity,
}

impl NumberError {
    /// A short, stable code for metrics and machine-readable errors.
    pub fn code(&self) -> &'static str {
        match self {
            NumberError::Empty => "empty",
            NumberError::InputTooLong => "input_too_long",
            NumberError::NotANumber => "not_a_number",
            NumberError::NoRegion => "no_region",
            NumberError::UnknownRegion(_) => "unknown_region",
            NumberError::UnknownCountryCode => "unknown_country_code",
            NumberError::TooShort(_) => "too_short",
            NumberError::TooLong(_) => "too_long",
            NumberError::InvalidForRegion(_) => "invalid_for_region",
            NumberError::HasExtension => "has_extension",
            NumberError::HasLetters => "has_letters",
        }
    }
}

/// A phone number in E.164 form (`+` followed by up to 15 digits), known to be
/// valid in libphonenumber's metadata.
///
/// This is the raw number: it is hashed before anything leaves the node, and
/// its `Debug` output is redacted so it does not end up in logs by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

impl E164 {
    /// The E.164 string, e.g. `+14155550134`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The E.164 string with its last two digits removed: the prefix shared by
    /// the 100-number block this number belongs to.
    pub fn block_prefix(&self) -> &str {
        &self.0[..self.0.len() - 2]
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep the country code visible for debugging, never the subscriber digits.
        write!(f, "E164(+…{} digits)", self.0.len() - 1)
    }
}

/// A validated number with what libphonenumber's metadata says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedNumber {
    /// The normalized number.
    pub e164: E164,
    /// Country calling code, e.g. 44.
    pub country_code: u16,
    /// ISO 3166-1 alpha-2 region of the number (`GB`), or `001` for
    /// non-geographic numbers (global services), as libphonenumber names them.
    pub region: String,
    /// Line type from the numbering plan: a supporting signal, never a verdict.
    pub line: LineType,
}

/// Parses what a person or a gateway pasted into a validated E.164 number,
/// refusing letters ([`parse_number_with`] with [`Letters::Refuse`]).
///
/// # Errors
/// A [`NumberError`] saying why the input is not a valid number.
pub fn parse_number(
    input: &str,
    default_region: Option<&str>,
) -> Result<ParsedNumber, NumberError> {
    parse_number_with(input, default_region, Letters::Refuse)
}

/// Parses what a person or a gateway pasted into a validated E.164 number.
///
/// Accepts international form (`+1 (415) 555-0134`), the `00` international
/// prefix when no default region is given (`00 44 20 7946 0958`), RFC 3966
/// URIs (`tel:+33-1-23-45-67-89`), and national numbers when `default_region`
/// (ISO 3166 alpha-2, e.g. `"US"`) says which plan they belong to. With a
/// default region, that region's own international prefix is understood too
/// (`011 44 …` for US).
///
/// Letters (any alphabetic character outside a leading `tel:`) are refused
/// unless `letters` is [`Letters::Vanity`]; an extension is reported as such
/// first.
///
/// # Errors
/// A [`NumberError`] saying why the input is not a valid number.
pub fn parse_number_with(
    input: &str,
    default_region: Option<&str>,
    letters: Letters,
) -> Result<ParsedNumber, NumberError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(NumberError::Empty);
    }
    if trimmed.len() > MAX_INPUT_LEN {
        return Err(NumberError::InputTooLong);
    }
    if !trimmed.chars().any(|c| c.is_ascii_digit()) {
        return Err(NumberError::NotANumber);
    }
    let region = match default_region {
        Some(code) => Some(
            country::Id::from_str(&code.trim().to_ascii_uppercase())
                .map_err(|_| NumberError::UnknownRegion(code.to_owned()))?,
        ),
        None => None,
    };

    // The common input of gateways and automation, a number already in
    // E.164 form, is read without libphonenumber's parser (its regular
    // expressions were a fifth of a lookup's CPU, BENCHMARKS.md): the
    // calling code and national number are the digits themselves when
    // reading them removes no national prefix ([`e164_as_given`]). A
    // number its plan does not assign takes the full path below, which
    // says why it is refused.
    if let Some(parsed) = fast_path(trimmed) {
        return Ok(parsed);
    }
    read_full(trimmed, region, letters)
}

/// What libphonenumber's parser reads in `trimmed`, validated.
fn read_full(
    trimmed: &str,
    region: Option<country::Id>,
    letters: Letters,
) -> Result<ParsedNumber, NumberError> {
    let explicit_international = trimmed.starts_with('+') || trimmed.starts_with("tel:+");
    let text = if region.is_none() && !explicit_international {
        // Without a region, only an explicit international form can be read;
        // "00" is the ITU-recommended international prefix used by most countries.
        match strip_double_zero(trimmed) {
            Some(rest) => format!("+{rest}"),
            None => return Err(NumberError::NoRegion),
        }
    } else {
        trimmed.to_owned()
    };

    let number = match phonenumber::parse_with(&METADATA, region, &text) {
        Ok(number) => number,
        // The crate refuses as too short a number it shortened itself by
        // removing a "national prefix" (Lithuania's toll-free 800…).
        Err(e @ (ParseError::TooShortNsn | ParseError::TooShortAfterIdd)) => {
            return match dialled_digits(&text, region) {
                Some((code, national)) => {
                    assigned(code, &national).ok_or_else(|| unassigned(code, &national))
                }
                None => Err(from_parse_error(&e, region)),
            };
        }
        Err(e) => return Err(from_parse_error(&e, region)),
    };
    if number.extension().is_some() {
        return Err(NumberError::HasExtension);
    }
    let found = letters_in(trimmed);
    let vanity_word = found.iter().all(char::is_ascii_alphabetic) && found.len() >= 3;
    if !found.is_empty() && (letters == Letters::Refuse || !vanity_word) {
        return Err(NumberError::HasLetters);
    }
    let code = number.code().value();
    let national = number.national().to_string();
    if let Some(parsed) = assigned(code, &national) {
        return Ok(parsed);
    }
    // libphonenumber removes a national prefix only if what remains is still
    // a possible number of the plan; the crate removes it regardless
    // (Belarus's toll-free 8011… lost its 80) and sometimes twice (Russia's
    // 8 800…). Read the number by libphonenumber's rule before giving up.
    // The second reading is only worked out here, off the common path.
    if let Some(parsed) = dialled_digits(&text, region)
        .filter(|(c, n)| *c == code && *n != national)
        .and_then(|(c, n)| assigned(c, &n))
    {
        return Ok(parsed);
    }
    Err(unassigned(code, &national))
}

/// A number already written in E.164 form (`+`, then only digits, at most
/// 15), when reading it would give it back unchanged: no national prefix
/// to remove after the calling code by libphonenumber's rule. A fast path
/// for gateways checking senders at line rate (no full parse, no
/// validation): `None` means "use [`parse_number`]", and an invalid number
/// given back is harmless there, as no member can have reported it.
pub fn e164_as_given(input: &str) -> Option<E164> {
    e164_parts(input).map(|_| E164(input.to_owned()))
}

/// The calling code and national number of `input` in E.164 form that
/// reads unchanged ([`e164_as_given`]): the calling code is the one of 1–3
/// digits a plan has (calling codes are prefix-free), found once.
fn e164_parts(input: &str) -> Option<(u16, &str)> {
    let digits = input.strip_prefix('+')?;
    if !(2..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (code, national, rereads) = (1..=3).find_map(|len| {
        let code: u16 = digits.get(..len)?.parse().ok()?;
        Some((code, &digits[len..], plan::rereads(code, &digits[len..])?))
    })?;
    (!rereads).then_some((code, national))
}

/// An E.164 number that reads unchanged, as its plan assigns it; `None`
/// sends the input down the full path.
fn fast_path(input: &str) -> Option<ParsedNumber> {
    let (code, national) = e164_parts(input)?;
    assigned(code, national)
}

/// The calling code and national number as libphonenumber reads them, when
/// the input is only ASCII digits and separators: after the `+` of an
/// international number (the calling code is the one of 1–3 digits the
/// metadata knows; calling codes are prefix-free), or a national number
/// with the default region's code; either way with a national prefix
/// removed by libphonenumber's rule ([`plan::national_number`]).
fn dialled_digits(text: &str, region: Option<country::Id>) -> Option<(u16, String)> {
    let rest = text
        .strip_prefix('+')
        .or_else(|| text.strip_prefix("tel:+"));
    let body = rest.unwrap_or(text);
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || " -.()/".contains(c))
    {
        return None;
    }
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    let (plan, digits) = if rest.is_some() {
        (1..=3).find_map(|len| {
            let code: u16 = digits.get(..len)?.parse().ok()?;
            Some((*plan::plans_for(code).first()?, &digits[len..]))
        })?
    } else {
        (METADATA.by_id(region?.as_ref())?, digits.as_str())
    };
    Some((plan.country_code(), plan::national_number(plan, digits)))
}

/// The number if its plan assigns it (libphonenumber's `isValidNumber`),
/// with the plan's region and the line type.
fn assigned(code: u16, national: &str) -> Option<ParsedNumber> {
    let plan = plan::plan_of(code, national)?;
    let kind = plan::number_type(plan, national);
    if kind == phonenumber::Type::Unknown {
        return None;
    }
    // E.164 is at most 15 digits: anything longer is not hashable as a number.
    let e164 = format!("+{code}{national}");
    if e164.len() > 16 || !national.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(ParsedNumber {
        e164: E164(e164),
        country_code: code,
        region: plan.id().to_owned(),
        line: LineType::from(kind),
    })
}

/// Why a number no plan of its calling code assigns is refused: too short
/// or too long for every type of line of the plan (the number's own plan
/// if the leading digits tell, else the main country of the calling code:
/// US for +1, GB for +44), else not assigned.
fn unassigned(code: u16, national: &str) -> NumberError {
    let plans = plan::plans_for(code);
    let Some(main_plan) = plans.first() else {
        return NumberError::UnknownCountryCode;
    };
    let own = plan::plan_of(code, national).unwrap_or(main_plan);
    let place = format!("{} (+{code})", own.id());
    match plan::length_range(&[own]) {
        Some((min, _)) if national.len() < min => NumberError::TooShort(place),
        Some((_, max)) if national.len() > max => NumberError::TooLong(place),
        _ if 1 + code.to_string().len() + national.len() > 16 => {
            NumberError::TooLong(format!("E.164 (+{code})"))
        }
        _ => NumberError::InvalidForRegion(place),
    }
}

/// The letters in `text` outside a leading `tel:` (RFC 3966's scheme is
/// case-insensitive).
fn letters_in(text: &str) -> Vec<char> {
    let rest = match text.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => &text[4..],
        _ => text,
    };
    rest.chars().filter(|c| c.is_alphabetic()).collect()
}

/// Returns what follows a leading `00` (ignoring separators between the zeros),
/// or `None` if the text does not start with the `00` international prefix.
fn strip_double_zero(text: &str) -> Option<&str> {
    let mut zeros = 0;
    for (i, c) in text.char_indices() {
        match c {
            '0' => {
                zeros += 1;
                if zeros == 2 {
                    return Some(&text[i + 1..]);
                }
            }
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    None
}

fn from_parse_error(error: &ParseError, region: Option<country::Id>) -> NumberError {
    let place = region.map_or_else(|| "any country".to_owned(), |r| r.as_ref().to_owned());
    match error {
        ParseError::InvalidCountryCode => NumberError::UnknownCountryCode,
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => NumberError::TooShort(place),
        ParseError::TooLong => NumberError::TooLong(place),
        ParseError::NoNumber | ParseError::MalformedInteger(_) => NumberError::NotANumber,
    }
}

impl From<phonenumber::Type> for LineType {
    fn from(kind: phonenumber::Type) -> Self {
        use phonenumber::Type;
        match kind {
            Type::Mobile => LineType::Mobile,
            Type::FixedLine => LineType::Fixed,
            Type::FixedLineOrMobile => LineType::FixedOrMobile,
            Type::Voip => LineType::Voip,
            Type::TollFree => LineType::TollFree,
            Type::PremiumRate => LineType::Premium,
            Type::SharedCost => LineType::SharedCost,
            Type::Pager => LineType::Pager,
            Type::Uan => LineType::Uan,
            Type::PersonalNumber => LineType::Personal,
            _ => LineType::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(input: &str, region: Option<&str>) -> String {
        parse_number(input, region)
            .unwrap()
            .e164
            .as_str()
            .to_owned()
    }

    /// The E.164 fast path of [`parse_number_with`] answers what the full
    /// reading answers, for every example number of the metadata release
    /// written in E.164 form and for neighbours of each (other last digits,
    /// a national prefix written after the calling code, one digit more or
    /// less): the same number, region and line type, or a refusal.
    #[test]
    fn the_e164_fast_path_reads_what_libphonenumber_reads() {
        let examples = include_str!("../metadata/examples.tsv");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut fast, mut compared) = (0, 0);
        for line in examples
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let e164 = line.split('\t').nth(3).expect("examples.tsv: e164 field");
            let mut inputs = vec![
                e164.to_owned(),
                format!("{e164}7"),
                e164[..e164.len() - 1].to_owned(),
            ];
            for prefix in ["0", "1", "8", "06"] {
                inputs.push(format!("{}{prefix}{}", &e164[..3], &e164[3..]));
            }
            let tail = format!("{:03}", next() % 1000);
            inputs.push(format!(
                "{}{tail}",
                &e164[..e164.len().saturating_sub(3).max(2)]
            ));
            for input in inputs {
                let full = read_full(&input, None, Letters::Refuse);
                let got = parse_number(&input, None);
                assert_eq!(got, full, "{input}");
                compared += 1;
                fast += usize::from(fast_path(&input).is_some());
            }
        }
        assert!(
            compared > 5_000 && fast * 4 > compared,
            "{fast} of {compared} took the fast path"
        );
    }

    #[test]
    fn accepts_what_people_paste() {
        assert_eq!(e164("+1 (415) 555-0134", None), "+14155550134");
        assert_eq!(e164("00 44 20 7946 0958", None), "+442079460958");
        assert_eq!(e164("tel:+33-1-23-45-67-89", None), "+33123456789");
        assert_eq!(e164("(415) 555-0134", Some("US")), "+14155550134");
        assert_eq!(e164("020 7946 0958", Some("gb")), "+442079460958");
        assert_eq!(e164("011 44 20 7946 0958", Some("US")), "+442079460958");
        assert_eq!(e164("  +49 30 901820  ", None), "+4930901820");
    }

    #[test]
    fn letters_are_refused_unless_vanity_is_asked_for() {
        // A letter O typed for a zero used to become a 6, silently.
        for typo in [
            "+1 415 555 01O1",
            "+1 415 555 O136",
            "+1-800-FLOWERS",
            "+1 415 555 0l34",
        ] {
            assert_eq!(
                parse_number(typo, None),
                Err(NumberError::HasLetters),
                "{typo}"
            );
        }
        let vanity = |t: &str| {
            parse_number_with(t, None, Letters::Vanity)
                .unwrap()
                .e164
                .as_str()
                .to_owned()
        };
        assert_eq!(vanity("+1-800-FLOWERS"), "+18003569377");
        // One or two stray letters are a typo, not a vanity word.
        assert_eq!(
            parse_number_with("+1 415 555 01O1", None, Letters::Vanity),
            Err(NumberError::HasLetters)
        );
        // The tel: scheme is not a letter of the number; an extension is
        // still reported as an extension.
        assert_eq!(e164("tel:+1-415-555-0134", None), "+14155550134");
        assert_eq!(
            parse_number("+1 415 555 0134 ext. 12", None),
            Err(NumberError::HasExtension)
        );
        assert_eq!(NumberError::HasLetters.code(), "has_letters");
    }

    #[test]
    fn derives_country_and_line_type() {
        let n = parse_number("+44 7400 123456", None).unwrap();
        assert_eq!(
            (n.country_code, n.region.as_str(), n.line),
            (44, "GB", LineType::Mobile)
        );
        let n = parse_number("+1 800 555 0199", None).unwrap();
        assert_eq!(n.line, LineType::TollFree);
        let n = parse_number("+44 56 1234 5678", None).unwrap();
        assert_eq!(n.line, LineType::Voip);
        let n = parse_number("+49 30 901820", None).unwrap();
        assert_eq!(n.line, LineType::Fixed);
    }

    #[test]
    fn rejects_with_a_reason() {
        let err = |input: &str, region: Option<&str>| parse_number(input, region).unwrap_err();
        assert_eq!(err("", None), NumberError::Empty);
        assert_eq!(err("   ", None), NumberError::Empty);
        assert_eq!(err("call me maybe", None), NumberError::NotANumber);
        assert_eq!(err(&"1".repeat(65), None), NumberError::InputTooLong);
        assert_eq!(err("415 555 0134", None), NumberError::NoRegion);
        assert_eq!(
            err("415 555 0134", Some("XX")),
            NumberError::UnknownRegion("XX".into())
        );
        assert_eq!(err("+999 1234 5678", None), NumberError::UnknownCountryCode);
        assert!(matches!(err("+1 415", None), NumberError::TooShort(_)));
        assert!(matches!(
            err("+44 20 7946 0958 1234 5678", None),
            NumberError::TooLong(_)
        ));
        assert!(matches!(
            err("+1 415 555 013", None),
            NumberError::TooShort(_)
        ));
        assert!(matches!(
            err("+1 011 555 0134", None),
            NumberError::InvalidForRegion(_)
        ));
        assert_eq!(
            err("+1 415 555 0134 ext. 12", None),
            NumberError::HasExtension
        );
    }

    #[test]
    fn error_codes_are_distinct() {
        let all = [
            NumberError::Empty,
            NumberError::InputTooLong,
            NumberError::NotANumber,
            NumberError::NoRegion,
            NumberError::UnknownRegion(String::new()),
            NumberError::UnknownCountryCode,
            NumberError::TooShort(String::new()),
            NumberError::TooLong(String::new()),
            NumberError::InvalidForRegion(String::new()),
            NumberError::HasExtension,
            NumberError::HasLetters,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(NumberError::code).collect();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn debug_does_not_print_the_number() {
        let n = parse_number("+1 415 555 0134", None).unwrap();
        let printed = format!("{n:?}");
        assert!(!printed.contains("4155550134"), "{printed}");
    }

    #[test]
    fn block_prefix_drops_two_digits() {
        let n = parse_number("+1 415 555 0134", None).unwrap();
        assert_eq!(n.e164.block_prefix(), "+141555501");
    }
}
