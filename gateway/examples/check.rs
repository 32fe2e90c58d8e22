//! A gateway's check loop: senders on standard input, one per line; the
//! ones the feed lists on standard output. The filter is the file
//! `sightline feed pull` keeps; the key is the network's `hash_key` (the
//! base64 text of `network.toml`), read from a file only the gateway's
//! account can read.
//!
//! ```text
//! cargo run --release -p sightline-gateway --example check -- high.filter hash.key < senders.txt
//! ```

use std::io::{BufRead, Write};

use base64::Engine;
use sightline_gateway::{Check, Checker, Filter, HashKey};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(filter), Some(key)) = (args.next(), args.next()) else {
        return Err("usage: check FILTER KEY_FILE < senders".into());
    };
    let filter = Filter::from_bytes(&std::fs::read(filter)?)?;
    let key =
        base64::engine::general_purpose::STANDARD.decode(std::fs::read_to_string(key)?.trim())?;
    let key: [u8; 32] = key.try_into().map_err(|_| "the hash key is not 32 bytes")?;
    // National numbers are read as US ones; set the gateway's own region.
    let checker = Checker::new(HashKey::from_bytes(key), filter, Some("US"));
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let sender = line?;
        if let Check::Listed(number) = checker.check(&sender) {
            writeln!(out, "{number}")?;
        }
    }
    Ok(())
}
