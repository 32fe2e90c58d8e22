//! Any text with any default region: parsing never panics, and an accepted
//! number is well-formed E.164 that parses to itself again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_protocol::parse_number;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (region, number) = match text.split_once('|') {
        Some((r, n)) => (Some(r), n),
        None => (None, text),
    };
    if let Ok(parsed) = parse_number(number, region) {
        let e164 = parsed.e164.as_str();
        assert!(e164.starts_with('+') && e164.len() <= 16, "{e164}");
        assert!(e164[1..].bytes().all(|b| b.is_ascii_digit()), "{e164}");
        let again = parse_number(e164, None).expect("E.164 output parses again");
        assert_eq!(again.e164, parsed.e164);
    }
});
