//! `sightline demo`: three organizations of a throwaway network turn the
//! bundled sample into signed, privacy-hashed sightings, exchange the wire
//! bytes, and verify and tally what they received — everything the wire
//! protocol guarantees, in one process. The node, gossip, store and web UI
//! are not built yet (README.md "Status").

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use rand_core::{OsRng, RngCore};
use sightline_protocol::{
    parse_number, verify_batch, Channel, HashKey, Kind, NetworkId, Sighting, SignedSighting,
    SigningKey, UnverifiedSighting, Verdict,
};

/// The bundled synthetic sample (numbers from ranges reserved for fiction).
const SAMPLE: &str = include_str!("../assets/demo-sightings.csv");
const ORGS: [&str; 3] = ["bank", "carrier", "cert"];

/// One row of the sample.
struct Row<'a> {
    org: &'a str,
    number: &'a str,
    kind: Kind,
    verdict: Verdict,
    channel: Channel,
    brand: Option<&'a str>,
    confidence: u8,
    count: u32,
}

fn sample_rows() -> anyhow::Result<Vec<Row<'static>>> {
    let mut rows = Vec::new();
    let mut lines = SAMPLE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'));
    lines.next().context("sample has no header")?;
    for (index, line) in lines {
        let f: Vec<&str> = line.split(',').collect();
        let [org, number, kind, verdict, channel, brand, confidence, count] = f[..] else {
            bail!("sample line {}: expected 8 fields", index + 1);
        };
        rows.push(Row {
            org,
            number,
            kind: kind.parse()?,
            verdict: verdict.parse()?,
            channel: channel.parse()?,
            brand: (!brand.is_empty()).then_some(brand),
            confidence: confidence.parse()?,
            count: count.parse()?,
        });
    }
    Ok(rows)
}

/// Decodes and batch-verifies received wire bytes, as a node's ingest does.
fn verify_incoming(incoming: &[&Vec<u8>]) -> (Vec<SignedSighting>, BTreeMap<&'static str, usize>) {
    let mut rejected: BTreeMap<&'static str, usize> = BTreeMap::new();
    let decoded: Vec<UnverifiedSighting> = incoming
        .iter()
        .filter_map(|b| {
            UnverifiedSighting::decode(b)
                .map_err(|e| *rejected.entry(e.code()).or_default() += 1)
                .ok()
        })
        .collect();
    let mut accepted = Vec::new();
    for result in verify_batch(decoded) {
        match result {
            Ok(record) => accepted.push(record),
            Err(e) => *rejected.entry(e.code()).or_default() += 1,
        }
    }
    (accepted, rejected)
}

/// Prints what one organization sees, by privacy hash: the raw numbers
/// never left the organizations that reported them.
fn print_view(
    out: &mut impl Write,
    keys: &BTreeMap<&str, SigningKey>,
    received: &[SignedSighting],
) -> anyhow::Result<()> {
    // 4. What the community sees, by privacy hash (the raw numbers never left
    //    their organization). The cert's view includes bank and carrier reports.
    writeln!(
        out,
        "\nWhat the cert sees from its peers (number hash → reporting orgs):"
    )?;
    let names: BTreeMap<_, _> = keys.iter().map(|(org, k)| (k.origin(), *org)).collect();
    let mut by_number: BTreeMap<String, BTreeSet<(&str, Verdict)>> = BTreeMap::new();
    let mut by_block: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for record in received {
        let s = record.sighting();
        by_number
            .entry(s.number.to_hex()[..16].to_owned())
            .or_default()
            .insert((names[&s.origin], s.verdict));
        by_block
            .entry(s.block.to_hex()[..16].to_owned())
            .or_default()
            .insert(s.number.to_hex());
    }
    for (number, reports) in &by_number {
        let list: Vec<String> = reports.iter().map(|(o, v)| format!("{o} ({v})")).collect();
        writeln!(out, "  {number}…  {}", list.join(", "))?;
    }
    let busiest = by_block.values().map(BTreeSet::len).max().unwrap_or(0);
    writeln!(
        out,
        "  busiest 100-block: {busiest} distinct numbers reported (sequential rotation)"
    )?;
    Ok(())
}

pub(crate) fn run(out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let network = NetworkId::new("demo-net").expect("valid id");
    let mut key_bytes = [0u8; 32];
    OsRng.fill_bytes(&mut key_bytes);
    let hash_key = HashKey::from_bytes(key_bytes);
    let keys: BTreeMap<&str, SigningKey> = ORGS
        .iter()
        .map(|org| (*org, SigningKey::generate(&mut OsRng)))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_secs();

    writeln!(
        out,
        "Sightline demo — network {network}, three organizations (protocol only)\n"
    )?;
    // 1. Each organization signs its own reports.
    let mut outbox: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut next_seq: BTreeMap<&str, u64> = BTreeMap::new();
    for row in sample_rows()? {
        let parsed = parse_number(row.number, None)
            .with_context(|| format!("sample number {}", row.number))?;
        let key = &keys[row.org];
        let seq = next_seq.entry(row.org).or_insert(0);
        *seq += 1;
        let record = Sighting {
            network: network.clone(),
            origin: key.origin(),
            seq: *seq,
            number: hash_key.number_hash(&parsed.e164),
            block: hash_key.block_hash(&parsed.e164),
            cc: parsed.country_code,
            line: parsed.line,
            kind: row.kind,
            verdict: row.verdict,
            channel: row.channel,
            brand: row.brand.map(str::to_owned),
            confidence: row.confidence,
            count: row.count,
            first_seen: now - 86_400,
            last_seen: now,
            expires: None,
        }
        .sign(key)?;
        outbox.push((row.org, record.as_bytes().to_vec()));
    }
    for org in ORGS {
        let (n, bytes) = outbox
            .iter()
            .filter(|(o, _)| *o == org)
            .fold((0, 0), |(n, b), (_, rec)| (n + 1, b + rec.len()));
        writeln!(
            out,
            "{org:>8}: signed {n} sightings ({bytes} bytes on the wire)"
        )?;
    }

    // 2. A forged record joins the traffic: the bank's first record with its
    //    confidence changed after signing.
    let mut forged = outbox[0].1.clone();
    let at = forged
        .windows(2)
        .position(|w| w == [0x0c, 0x18])
        .context("confidence field")?;
    forged[at + 2] = 25; // 90 → 25, still canonical: only the signature catches it
    outbox.push(("bank", forged));

    // 3. Each organization decodes and batch-verifies what the others sent.
    let mut tallies: BTreeMap<&str, Vec<SignedSighting>> = BTreeMap::new();
    for receiver in ORGS {
        let incoming: Vec<&Vec<u8>> = outbox
            .iter()
            .filter(|(o, _)| *o != receiver)
            .map(|(_, b)| b)
            .collect();
        let (accepted, rejected) = verify_incoming(&incoming);
        writeln!(
            out,
            "{receiver:>8}: received {}, verified {}, rejected {:?}",
            incoming.len(),
            accepted.len(),
            rejected
        )?;
        tallies.insert(receiver, accepted);
    }

    print_view(out, &keys, &tallies["cert"])?;
    writeln!(
        out,
        "\nNext: the node (store, gossip, catch-up), then `sightline demo` starts three real\n\
         nodes with a web UI. See README.md \"Status\"."
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn demo_verifies_honest_records_and_rejects_the_forgery() {
        let mut out = Vec::new();
        super::run(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        // bank sends 6 + 1 forged; carrier 5; cert 3 (see the sample).
        assert!(
            text.contains("cert: received 12, verified 11, rejected {\"bad_signature\": 1}"),
            "{text}"
        );
        assert!(
            text.contains("bank: received 8, verified 8, rejected {}"),
            "{text}"
        );
        assert!(
            text.contains("busiest 100-block: 6 distinct numbers"),
            "{text}"
        );
        for raw in ["4155550101", "491570110", "491570156"] {
            assert!(!text.contains(raw), "raw number {raw} printed");
        }
    }
}
