//! Link tokens (record version 2, SPEC.md §13): what ties numbers into one
//! operation — the domain of a link in the lure, the sender it came from,
//! the lure's text, an analyst's campaign tag and the number's 1,000-block —
//! each keyed with the network's hash key, so nothing raw leaves the node.
//!
//! Normalization is part of the protocol (two members must turn the same
//! lure into the same token): it lives here with the E.164 rules, pure and
//! with no I/O. The public suffix list is compiled in (`psl`), like the
//! numbering plans.

use std::collections::BTreeSet;
use std::fmt;

use crate::hash::HashKey;
use crate::phone::E164;

/// At most this many links in one record (SPEC.md §13.2).
pub const MAX_LINKS: usize = 8;
/// Longest URL, sender or message text accepted, in bytes.
pub const MAX_LINK_INPUT_BYTES: usize = 2048;
/// Longest lure text fingerprinted, in bytes (a long email body).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest campaign tag after normalization, in bytes.
pub const MAX_CAMPAIGN_BYTES: usize = 64;

/// Domain tags of the link tokens (SPEC.md §13.1).
pub const URL_DOMAIN_DOMAIN: &[u8] = b"sightline/url-domain/v1";
/// Sender token tag.
pub const SENDER_DOMAIN: &[u8] = b"sightline/sender/v1";
/// Campaign tag token tag.
pub const CAMPAIGN_DOMAIN: &[u8] = b"sightline/campaign/v1";
/// 1,000-block token tag.
pub const BLOCK1000_DOMAIN: &[u8] = b"sightline/block1000/v1";
/// Tag of the per-shingle hashes a script fingerprint sums.
pub const SCRIPT_DOMAIN: &[u8] = b"sightline/script/v1";

/// What a link says ties numbers together. The code is the first byte of
/// the link's wire entry; the name is its text form in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkKind {
    /// The registrable domain of a URL in the lure.
    UrlDomain,
    /// The email address, SMS sender id or short code the lure came from.
    Sender,
    /// A locality-sensitive fingerprint of the lure's text.
    Script,
    /// A tag the reporting analyst gave the operation.
    Campaign,
    /// The number's block of 1,000 (NANP assigns numbers in such blocks).
    Block1000,
}

impl LinkKind {
    /// Every kind, in code order.
    pub const ALL: [LinkKind; 5] = [
        LinkKind::UrlDomain,
        LinkKind::Sender,
        LinkKind::Script,
        LinkKind::Campaign,
        LinkKind::Block1000,
    ];

    /// Wire code.
    pub const fn code(self) -> u8 {
        match self {
            LinkKind::UrlDomain => 0,
            LinkKind::Sender => 1,
            LinkKind::Script => 2,
            LinkKind::Campaign => 3,
            LinkKind::Block1000 => 4,
        }
    }

    /// Text form.
    pub const fn name(self) -> &'static str {
        match self {
            LinkKind::UrlDomain => "url_domain",
            LinkKind::Sender => "sender",
            LinkKind::Script => "script",
            LinkKind::Campaign => "campaign",
            LinkKind::Block1000 => "block1000",
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One link token. The derived order is the order of the wire entries'
/// bytes (kind code first; hashes bytewise; a script as 8 big-endian
/// bytes), which is the canonical order in a record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// HMAC of a registrable domain.
    UrlDomain([u8; 32]),
    /// HMAC of a normalized sender.
    Sender([u8; 32]),
    /// Keyed 64-bit `SimHash` of the lure text; compared by Hamming distance.
    Script(u64),
    /// HMAC of a normalized campaign tag.
    Campaign([u8; 32]),
    /// HMAC of the E.164 text without its last three digits.
    Block1000([u8; 32]),
}

/// Why a wire link entry is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadEntry {
    /// The first byte is not a link kind code.
    UnknownKind(u8),
    /// The entry's length does not fit its kind.
    Length(u8, usize),
}

impl Link {
    /// Its kind.
    pub const fn kind(&self) -> LinkKind {
        match self {
            Link::UrlDomain(_) => LinkKind::UrlDomain,
            Link::Sender(_) => LinkKind::Sender,
            Link::Script(_) => LinkKind::Script,
            Link::Campaign(_) => LinkKind::Campaign,
            Link::Block1000(_) => LinkKind::Block1000,
        }
    }

    /// The wire entry: kind code ‖ 32 hash bytes, or ‖ 8 fingerprint bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.kind().code()];
        match self {
            Link::UrlDomain(h) | Link::Sender(h) | Link::Campaign(h) | Link::Block1000(h) => {
                out.extend_from_slice(h);
            }
            Link::Script(f) => out.extend_from_slice(&f.to_be_bytes()),
        }
        out
    }

    /// Reads a wire entry.
    ///
    /// # Errors
    /// [`BadEntry`] for an unknown kind or a length that does not fit it.
    pub fn decode(entry: &[u8]) -> Result<Self, BadEntry> {
        let (&code, rest) = entry.split_first().ok_or(BadEntry::Length(0, 0))?;
        let kind = LinkKind::from_code(code).ok_or(BadEntry::UnknownKind(code))?;
        let bad = || BadEntry::Length(code, entry.len());
        if kind == LinkKind::Script {
            let f: [u8; 8] = rest.try_into().map_err(|_| bad())?;
            return Ok(Link::Script(u64::from_be_bytes(f)));
        }
        let h: [u8; 32] = rest.try_into().map_err(|_| bad())?;
        Ok(match kind {
            LinkKind::UrlDomain => Link::UrlDomain(h),
            LinkKind::Sender => Link::Sender(h),
            LinkKind::Campaign => Link::Campaign(h),
            _ => Link::Block1000(h),
        })
    }

    /// The token as lower-case hex (a script fingerprint: 16 digits).
    pub fn token_hex(&self) -> String {
        crate::hex_lower(&self.encode()[1..])
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.token_hex())
    }
}

/// Checks a record's links: 1–[`MAX_LINKS`], strictly ascending (sorted,
/// no duplicates), at most one 1,000-block. `Err` carries what is wrong.
pub(crate) fn check(links: &[Link]) -> Result<(), &'static str> {
    if links.is_empty() || links.len() > MAX_LINKS {
        return Err("must hold 1-8 links");
    }
    if links.windows(2).any(|w| w[0] >= w[1]) {
        return Err("must be sorted by their bytes and distinct");
    }
    if links
        .iter()
        .filter(|l| l.kind() == LinkKind::Block1000)
        .count()
        > 1
    {
        return Err("may hold one block1000 link");
    }
    Ok(())
}

/// Why a link could not be made from what a user gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The text is empty after trimming.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// The text is over its limit.
    #[error("{what} is {len} bytes, over the {limit}-byte limit")]
    TooLong {
        /// Which input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a URL with a host.
    #[error("{0:?} is not a URL with a host name")]
    NotAUrl(String),
    /// The host has no registrable domain (a public suffix, a single label).
    #[error("{0:?} has no registrable domain (it is a public suffix or a local name)")]
    NoRegistrableDomain(String),
    /// An email address whose domain is not a valid host name.
    #[error("{0:?} is not a valid email address")]
    BadEmail(String),
    /// Control characters in a sender or campaign tag.
    #[error("{0} contains control characters")]
    ControlCharacters(&'static str),
    /// The lure text holds no word to fingerprint.
    #[error("the message holds no words to fingerprint")]
    NoWords,
    /// More links than a record holds.
    #[error("{0} links, over the {MAX_LINKS}-link limit of a record")]
    TooMany(usize),
}

/// What a user gives to link a report: raw text, turned into tokens by
/// [`LinkInput::tokens`]. The message is fingerprinted and never kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkInput {
    /// URLs in the lure.
    pub urls: Vec<String>,
    /// Where the lure came from.
    pub sender: Option<String>,
    /// The analyst's name for the operation.
    pub campaign: Option<String>,
    /// The lure's text.
    pub message: Option<String>,
}

impl LinkInput {
    /// Whether no link was given.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
            && self.sender.is_none()
            && self.campaign.is_none()
            && self.message.is_none()
    }

    /// The record's links for `number`: the number's 1,000-block, then one
    /// token per given input, sorted and deduplicated (SPEC.md §13).
    ///
    /// # Errors
    /// [`LinkError`] for the first input that cannot be normalized, or
    /// more than [`MAX_LINKS`] distinct links.
    pub fn tokens(&self, key: &HashKey, number: &E164) -> Result<Vec<Link>, LinkError> {
        let mut links = BTreeSet::new();
        links.insert(block1000(key, number));
        for url in &self.urls {
            links.insert(Link::UrlDomain(
                key.link_mac(URL_DOMAIN_DOMAIN, &url_domain(url)?),
            ));
        }
        if let Some(sender) = &self.sender {
            links.insert(Link::Sender(
                key.link_mac(SENDER_DOMAIN, &normalize_sender(sender)?),
            ));
        }
        if let Some(tag) = &self.campaign {
            links.insert(Link::Campaign(
                key.link_mac(CAMPAIGN_DOMAIN, &normalize_campaign(tag)?),
            ));
        }
        if let Some(message) = &self.message {
            links.insert(Link::Script(script_fingerprint(key, message)?));
        }
        if links.len() > MAX_LINKS {
            return Err(LinkError::TooMany(links.len()));
        }
        Ok(links.into_iter().collect())
    }
}

/// The 1,000-block link of `number`.
pub fn block1000(key: &HashKey, number: &E164) -> Link {
    Link::Block1000(key.link_mac(BLOCK1000_DOMAIN, block1000_input(number)))
}

/// The 1,000-block token's input: the E.164 text without its last three
/// characters (`+14155550134` → `+14155550`).
pub fn block1000_input(number: &E164) -> &str {
    let text = number.as_str();
    &text[..text.len() - 3]
}

fn trimmed<'a>(text: &'a str, what: &'static str, limit: usize) -> Result<&'a str, LinkError> {
    let text = text.trim_matches(char::is_whitespace);
    if text.is_empty() {
        return Err(LinkError::Empty(what));
    }
    if text.len() > limit {
        return Err(LinkError::TooLong {
            what,
            len: text.len(),
            limit,
        });
    }
    Ok(text)
}

/// The registrable domain of a URL (SPEC.md §13.1): WHATWG URL parsing
/// (`http://` assumed without a scheme; IDNs become their ASCII form),
/// then the public suffix list's registrable domain; an IP address host
/// stands for itself.
///
/// # Errors
/// [`LinkError`] if there is no host or it has no registrable domain.
pub fn url_domain(text: &str) -> Result<String, LinkError> {
    let text = trimmed(text, "url", MAX_LINK_INPUT_BYTES)?;
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|_| LinkError::NotAUrl(text.to_owned()))?;
    match url.host() {
        Some(url::Host::Domain(host)) => {
            let host = host.trim_end_matches('.');
            psl::domain_str(host)
                .map(str::to_owned)
                .ok_or_else(|| LinkError::NoRegistrableDomain(host.to_owned()))
        }
        Some(ip) => Ok(ip.to_string()),
        None => Err(LinkError::NotAUrl(text.to_owned())),
    }
}

/// A sender as the protocol hashes it (SPEC.md §13.1): an email address
/// lower-cased with its domain in ASCII form; a number or short code as
/// its digits (and a leading `+`); an alphanumeric sender id lower-cased
/// with runs of white space as one space.
///
/// # Errors
/// [`LinkError`] for empty or overlong text, control characters, or an
/// email address with an invalid domain.
pub fn normalize_sender(text: &str) -> Result<String, LinkError> {
    let text = trimmed(text, "sender", MAX_LINK_INPUT_BYTES)?;
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(LinkError::ControlCharacters("sender"));
    }
    if let Some((local, domain)) = text.rsplit_once('@') {
        let bad = || LinkError::BadEmail(text.to_owned());
        if local.is_empty() {
            return Err(bad());
        }
        let url::Host::Domain(domain) = url::Host::parse(domain).map_err(|_| bad())? else {
            return Err(bad());
        };
        return Ok(format!("{}@{domain}", local.to_lowercase()));
    }
    let compact: String = text.chars().filter(|c| !" -.()".contains(*c)).collect();
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(compact);
    }
    Ok(collapse_white_space(&text.to_lowercase()))
}

/// A campaign tag as the protocol hashes it: lower-cased, runs of white
/// space as one space, 1–64 bytes.
///
/// # Errors
/// [`LinkError`] for empty or overlong tags and control characters.
pub fn normalize_campaign(text: &str) -> Result<String, LinkError> {
    let text = trimmed(text, "campaign", MAX_LINK_INPUT_BYTES)?;
    if text.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return Err(LinkError::ControlCharacters("campaign"));
    }
    let tag = collapse_white_space(&text.to_lowercase());
    if tag.len() > MAX_CAMPAIGN_BYTES {
        return Err(LinkError::TooLong {
            what: "campaign",
            len: tag.len(),
            limit: MAX_CAMPAIGN_BYTES,
        });
    }
    Ok(tag)
}

fn collapse_white_space(text: &str) -> String {
    text.split(char::is_whitespace)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words a script fingerprint is made of (SPEC.md §13.1): chunks
/// between white space, lower-cased; a chunk holding `://` or starting
/// with `www.` is the word `url`; other chunks split at every ASCII
/// character that is not a letter or digit; in each word every run of
/// ASCII digits becomes `0` (lures differ in numbers and links, not in
/// their script).
pub fn script_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    for chunk in text.split(char::is_whitespace).filter(|c| !c.is_empty()) {
        let lower = chunk.to_lowercase();
        if lower.contains("://") || lower.starts_with("www.") {
            words.push("url".to_owned());
            continue;
        }
        for word in lower
            .split(|c: char| c.is_ascii() && !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let mut out = String::with_capacity(word.len());
            let mut in_digits = false;
            for c in word.chars() {
                if c.is_ascii_digit() {
                    if !in_digits {
                        out.push('0');
                    }
                    in_digits = true;
                } else {
                    out.push(c);
                    in_digits = false;
                }
            }
            words.push(out);
        }
    }
    words
}

/// The keyed 64-bit `SimHash` of a lure's text: over the distinct shingles
/// of three consecutive words (one shingle of all words when there are
/// fewer than three), each hashed as the first 8 bytes (big-endian) of
/// `HMAC-SHA256(hash_key, "sightline/script/v1" ‖ shingle)`; bit i of the
/// fingerprint is set when more shingles have bit i set than clear.
///
/// # Errors
/// [`LinkError::TooLong`] over [`MAX_MESSAGE_BYTES`]; [`LinkError::NoWords`].
pub fn script_fingerprint(key: &HashKey, text: &str) -> Result<u64, LinkError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(LinkError::TooLong {
            what: "message",
            len: text.len(),
            limit: MAX_MESSAGE_BYTES,
        });
    }
    let words = script_words(text);
    if words.is_empty() {
        return Err(LinkError::NoWords);
    }
    let shingles: BTreeSet<String> = if words.len() < 3 {
        std::iter::once(words.join(" ")).collect()
    } else {
        words.windows(3).map(|w| w.join(" ")).collect()
    };
    let mut votes = [0i64; 64];
    for shingle in &shingles {
        let mac = key.link_mac(SCRIPT_DOMAIN, shingle);
        let mut first = [0u8; 8];
        first.copy_from_slice(&mac[..8]);
        let h = u64::from_be_bytes(first);
        for (bit, vote) in votes.iter_mut().enumerate() {
            *vote += if h >> bit & 1 == 1 { 1 } else { -1 };
        }
    }
    Ok(votes
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0)
        .fold(0u64, |f, (bit, _)| f | 1 << bit))
}

/// The links written in a message, as written, in order, each once: the
/// white-space separated chunks holding `://` or starting with `www.`,
/// without the punctuation around them.
pub fn urls_in(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for chunk in text.split(char::is_whitespace) {
        let url = chunk
            .trim_start_matches(['(', '<', '[', '"', '\''])
            .trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '>', ']', '"', '\'']);
        let lower = url.to_ascii_lowercase();
        if (lower.contains("://") || lower.starts_with("www.")) && !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

/// The sender of a pasted email: the address of its first `From:` line
/// (the part in `<…>` when there is one). SMS bodies carry no sender.
pub fn sender_in(text: &str) -> Option<&str> {
    let line = text
        .lines()
        .map(str::trim_start)
        .find(|l| l.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("from:")))?;
    let value = line[5..].trim();
    let address = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value,
    };
    (!address.trim().is_empty()).then(|| address.trim())
}

/// Bits in which two script fingerprints differ.
pub const fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::parse_number;

    fn key() -> HashKey {
        HashKey::from_bytes([7; 32])
    }

    #[test]
    fn url_domains_are_registrable_domains() {
        for (url, domain) in [
            (
                "https://secure-login.example-bank.co.uk/verify?id=1",
                "example-bank.co.uk",
            ),
            ("example-bank.com/pay", "example-bank.com"),
            ("HTTP://WWW.Example.COM.", "example.com"),
            ("https://bücher.example/x", "xn--bcher-kva.example"),
            ("http://user:pw@203.0.113.7:8080/a", "203.0.113.7"),
            ("https://someone.blogspot.com", "someone.blogspot.com"),
        ] {
            assert_eq!(url_domain(url).as_deref(), Ok(domain), "{url}");
        }
        assert!(matches!(
            url_domain("co.uk"),
            Err(LinkError::NoRegistrableDomain(_))
        ));
        assert!(matches!(
            url_domain("http://localhost/"),
            Err(LinkError::NoRegistrableDomain(_))
        ));
        assert!(matches!(url_domain("http://"), Err(LinkError::NotAUrl(_))));
        assert_eq!(url_domain("  "), Err(LinkError::Empty("url")));
    }

    #[test]
    fn senders_normalize_by_what_they_are() {
        for (sender, normalized) in [
            ("  Alerts@Example-Bank.COM ", "alerts@example-bank.com"),
            ("no-reply@bücher.example", "no-reply@xn--bcher-kva.example"),
            ("+44 7700-900 123", "+447700900123"),
            ("(727) 23", "72723"),
            ("EXAMPLE  Bank", "example bank"),
        ] {
            assert_eq!(
                normalize_sender(sender).as_deref(),
                Ok(normalized),
                "{sender}"
            );
        }
        assert!(normalize_sender("@example.com").is_err());
        assert!(normalize_sender("a@exa mple.com").is_err());
        assert!(normalize_sender("x\u{7}y").is_err());
    }

    #[test]
    fn links_and_the_sender_are_found_in_a_pasted_message() {
        let email = "From: \"Example Bank\" <alerts@example-bank.com>\nSubject: locked\n\n\
                     Your card is locked (see https://secure.example-bank.co.uk/x?id=1). \
                     Or www.unlock-card.example.com, or https://secure.example-bank.co.uk/x?id=1.";
        assert_eq!(
            urls_in(email),
            [
                "https://secure.example-bank.co.uk/x?id=1",
                "www.unlock-card.example.com"
            ]
        );
        assert_eq!(sender_in(email), Some("alerts@example-bank.com"));
        assert_eq!(sender_in("from: 72723\nhi"), Some("72723"));
        assert_eq!(sender_in("Your parcel is held"), None);
        assert!(urls_in("no links here: 1.99 GBP").is_empty());
    }

    #[test]
    fn campaign_tags_ignore_case_and_spacing() {
        assert_eq!(
            normalize_campaign(" Parcel  Fee\tWave ").as_deref(),
            Ok("parcel fee wave")
        );
        assert!(normalize_campaign(&"x".repeat(65)).is_err());
        assert!(normalize_campaign(" \n").is_err());
    }

    #[test]
    fn script_words_drop_what_varies_between_lures() {
        assert_eq!(
            script_words(
                "Your parcel #A123 is held: pay 1.99 GBP at https://x.example/p?id=9 now!"
            ),
            ["your", "parcel", "a0", "is", "held", "pay", "0", "0", "gbp", "at", "url", "now"]
        );
    }

    #[test]
    fn lures_of_one_template_share_a_fingerprint_and_rewording_moves_it() {
        let lure = "Your parcel could not be delivered. Pay the redelivery fee of 1.99 at https://a.example/x within 24 hours or it will be returned to the sender.";
        // The same template with other amounts, links and deadlines: the
        // words that differ are normalized away, so the fingerprints agree.
        let same = "Your parcel could not be delivered. Pay the redelivery fee of 2.49 at http://other.example/y within 48 hours or it will be returned to the sender.";
        // One word dropped changes three shingles of twenty-two: 8 bits
        // here, beyond the 3 that link numbers (node/src/store/links.rs).
        let reworded = "Your parcel could not be delivered. Pay the redelivery fee of 2.49 at https://other.example/y within 48 hours or it will be returned to sender.";
        let other = "Hi mum, I dropped my phone in the toilet, this is my new number, can you text me back when you get this please";
        let fp = |text: &str| script_fingerprint(&key(), text).unwrap();
        let a = fp(lure);
        assert_eq!(fp(same), a);
        assert_eq!(hamming(a, fp(reworded)), 8);
        assert!(hamming(a, fp(other)) > 16, "{}", hamming(a, fp(other)));
        // Keyed: another network's key gives an unrelated fingerprint.
        let elsewhere = script_fingerprint(&HashKey::from_bytes([8; 32]), lure).unwrap();
        assert!(hamming(a, elsewhere) > 16);
        assert_eq!(script_fingerprint(&key(), " ,;: "), Err(LinkError::NoWords));
    }

    #[test]
    fn tokens_are_sorted_distinct_bounded_and_carry_the_1000_block() {
        let number = parse_number("+1 415 555 0134", None).unwrap().e164;
        assert_eq!(block1000_input(&number), "+14155550");
        let input = LinkInput {
            urls: vec!["https://a.example.com/1".into(), "a.example.com/2".into()],
            sender: Some("72723".into()),
            campaign: Some("Parcel fee".into()),
            message: Some("pay the fee now".into()),
        };
        let links = input.tokens(&key(), &number).unwrap();
        assert_eq!(links.len(), 5, "{links:?}");
        assert_eq!(check(&links), Ok(()));
        let many = LinkInput {
            urls: (0..8).map(|i| format!("https://example{i}.com")).collect(),
            ..LinkInput::default()
        };
        assert_eq!(many.tokens(&key(), &number), Err(LinkError::TooMany(9)));
    }

    #[test]
    fn wire_entries_round_trip_and_order_like_their_bytes() {
        let links = [
            Link::UrlDomain([9; 32]),
            Link::Sender([1; 32]),
            Link::Script(0x0102_0304_0506_0708),
            Link::Script(0xff00_0000_0000_0000),
            Link::Campaign([0; 32]),
            Link::Block1000([3; 32]),
        ];
        for pair in links.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].encode() < pair[1].encode());
        }
        for link in links {
            assert_eq!(Link::decode(&link.encode()), Ok(link));
        }
        assert_eq!(Link::decode(&[5; 33]), Err(BadEntry::UnknownKind(5)));
        assert_eq!(Link::decode(&[2; 33]), Err(BadEntry::Length(2, 33)));
        assert_eq!(Link::decode(&[]), Err(BadEntry::Length(0, 0)));
        assert!(check(&[Link::Block1000([1; 32]), Link::Block1000([2; 32])]).is_err());
        assert!(check(&[Link::Sender([1; 32]), Link::UrlDomain([2; 32])]).is_err());
    }
}
