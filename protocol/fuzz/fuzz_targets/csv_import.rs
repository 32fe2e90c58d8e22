//! Any bytes as a CSV import file, with and without a default region: never
//! a panic, rows and errors come in file order, and every imported number
//! is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_protocol::import::parse_csv;
use sightline_protocol::parse_number;

fuzz_target!(|data: &[u8]| {
    for region in [None, Some("US")] {
        if let Ok(import) = parse_csv(data, region) {
            for row in &import.rows {
                assert!(parse_number(&row.number, region).is_ok(), "imported an invalid number");
                assert!(row.confidence.is_none_or(|c| c <= 100));
                assert!(row.count.is_none_or(|c| c >= 1));
            }
            // Line numbers count \n; a lone \r also ends a record, so two
            // records may share a line number, but never go backwards.
            assert!(import.rows.windows(2).all(|w| w[0].line <= w[1].line));
            assert!(import.errors.windows(2).all(|w| w[0].line <= w[1].line));
        }
    }
});
