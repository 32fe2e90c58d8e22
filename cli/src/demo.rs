//! `sightline demo`: a throwaway three-organization network on loopback.
//! Creates the network and node files in a temporary directory exactly as
//! operators would, starts three real nodes with their web servers, loads
//! the bundled synthetic sample (each organization submits its own rows),
//! waits until the nodes have exchanged everything, and prints each
//! organization's web URL and token. Ctrl-c stops everything and removes
//! the directory.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rand_core::{OsRng, RngCore};
use sightline_node::config::{encode_key32, MemberFile, NetworkFile, NodeFile, TokenFile};
use sightline_node::identity::NodeIdentity;
use sightline_node::{NodeConfig, Submission};

use crate::exit::Failure;
use crate::serve::{init_logs, terminate_signal, Running};

/// The bundled synthetic sample (numbers from ranges reserved for fiction).
const SAMPLE: &str = include_str!("../assets/demo-sightings.csv");
/// (key in the sample, organization name, trust).
const ORGS: [(&str, &str, f64); 3] = [
    ("bank", "Example Bank", 0.8),
    ("carrier", "Example Carrier", 0.7),
    ("cert", "National CERT", 0.9),
];

/// `sightline demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Start, load, verify that all three nodes converged, print, stop, exit
    /// (0 on success). For tests and CI.
    #[arg(long)]
    check: bool,
}

/// One row of the sample.
struct Row {
    org: String,
    submission: Submission,
}

fn sample_rows(now: u64) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut lines = SAMPLE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'));
    lines.next().context("sample has no header")?;
    for (index, line) in lines {
        let f: Vec<&str> = line.split(',').collect();
        let [org, number, kind, verdict, channel, brand, confidence, count, url, message] = f[..]
        else {
            bail!("sample line {}: expected 10 fields", index + 1);
        };
        let mut s = Submission::new(number, kind.parse()?);
        s.verdict = verdict.parse()?;
        if s.verdict == sightline_protocol::Verdict::Protected {
            // The sample's protected number is a fraud line: it never calls.
            s.role = Some(sightline_protocol::Role::InboundOnly);
        }
        s.channel = channel.parse()?;
        s.brand = (!brand.is_empty()).then(|| brand.to_owned());
        s.confidence = confidence.parse()?;
        s.count = count.parse()?;
        if !url.is_empty() {
            s.urls = vec![url.to_owned()];
        }
        s.message = (!message.is_empty()).then(|| message.to_owned());
        // Spread the sightings over the last two weeks.
        let age = u64::try_from(index).unwrap_or(0) * 20_000;
        s.first_seen = Some(now - age - 3_600);
        s.last_seen = Some(now - age);
        rows.push(Row {
            org: org.to_owned(),
            submission: s,
        });
    }
    Ok(rows)
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    encode_key32(&bytes).replace(['+', '/', '='], "")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Writes the network and the three node configs; returns the config paths and tokens.
fn write_files(dir: &std::path::Path) -> anyhow::Result<Vec<(std::path::PathBuf, String)>> {
    let mut hash_key = [0u8; 32];
    OsRng.fill_bytes(&mut hash_key);
    let mut network = NetworkFile {
        name: "Sightline demo network".into(),
        id: "demo-net".into(),
        hash_key: encode_key32(&hash_key).into(),
        psk: None,
        bootstrap: Vec::new(),
        members: Vec::new(),
        limits: sightline_node::store::Limits::default(),
        // A new network: every member reads version 2 from the start.
        record_version: 2,
        half_life_days: std::collections::BTreeMap::new(),
    };
    let mut nodes = Vec::new();
    for (key, org, trust) in ORGS {
        let node_dir = dir.join(key);
        let identity = NodeIdentity::load_or_create(&node_dir.join("data/node.key"))?;
        crate::admin::new_node_store(&node_dir.join("data"))?;
        let port = free_port()?;
        network.members.push(MemberFile {
            org: org.into(),
            peer_id: identity.peer_id().to_string(),
            trust,
        });
        network.bootstrap.push(format!(
            "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
            identity.peer_id()
        ));
        let token = random_token();
        let mut file = NodeFile::new(dir.join("network.toml"));
        file.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
        file.web_bind = "127.0.0.1:0".parse()?;
        file.sync_interval_secs = 5;
        file.tokens = vec![TokenFile {
            name: format!("{key}-analyst"),
            token: token.as_str().into(),
            scopes: vec!["read".into()],
        }];
        let path = node_dir.join("sightline.toml");
        std::fs::write(&path, toml::to_string(&file)?)?;
        nodes.push((path, token));
    }
    std::fs::write(dir.join("network.toml"), toml::to_string(&network)?)?;
    Ok(nodes)
}

/// Runs the demo.
#[allow(clippy::too_many_lines)]
pub(crate) async fn run(args: &DemoArgs) -> Result<ExitCode, Failure> {
    if !args.check {
        init_logs();
    }
    let dir = tempfile::Builder::new()
        .prefix("sightline-demo-")
        .tempdir()?;
    let files = write_files(dir.path())?;
    let mut running = Vec::new();
    for (path, _) in &files {
        let config = NodeConfig::load(path).map_err(Failure::input)?;
        running.push(Running::start(config).await?);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let rows = sample_rows(now)?;
    let total = rows.len();
    let mut by_org: BTreeMap<String, Vec<Submission>> = BTreeMap::new();
    for row in rows {
        by_org.entry(row.org).or_default().push(row.submission);
    }
    for ((key, _, _), node) in ORGS.iter().zip(&running) {
        if let Some(batch) = by_org.remove(*key) {
            node.node
                .submit(batch)
                .await
                .map_err(|e| anyhow::anyhow!("loading the sample: {e}"))?;
        }
    }

    // Wait until every node holds every report.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for r in &running {
        let mut changes = r.node.changes();
        loop {
            let status = r.node.status().await?;
            if status.records == total as u64 {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(anyhow::anyhow!(
                    "{} holds {} of {total} sightings after 60 s",
                    status.org,
                    status.records
                )
                .into());
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
    let digests: Vec<String> = futures_digests(&running).await?;
    if digests.windows(2).any(|w| w[0] != w[1]) {
        return Err(anyhow::anyhow!("the nodes hold different sets: {digests:?}").into());
    }

    println!("Sightline demo: three organizations, {total} sightings shared and verified on every node.\n");
    println!(
        "{:<18} {:<28} ANALYST TOKEN (sign in with it; it never goes in a URL)",
        "ORGANIZATION", "WEB UI"
    );
    for ((_, org, _), (r, (_, token))) in ORGS.iter().zip(running.iter().zip(&files)) {
        println!("{org:<18} {:<28} {token}", format!("http://{}/", r.web));
    }
    let cert = &running[2];
    let example = "+61 491 570 110";
    let lookup = cert
        .node
        .lookup(example, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "\nExample: National CERT looks up {example}: band {} (score {:.2}), reported by {} organization(s) as {}; brands: {}.",
        lookup.score.band.as_str().to_uppercase(),
        lookup.score.score,
        lookup.score.orgs,
        lookup.score.kinds.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        lookup.score.brands.iter().cloned().collect::<Vec<_>>().join(", "),
    );
    if let Some(c) = &lookup.campaign {
        println!(
            "It is part of a campaign of {} numbers ({}), tied in by {}: http://{}/campaigns/{}",
            c.numbers,
            c.brands.iter().cloned().collect::<Vec<_>>().join(", "),
            c.links.join(", "),
            cert.web,
            c.id
        );
    }
    let spoofed = "+44 20 7946 0123";
    let spoof = cert
        .node
        .lookup(spoofed, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(p) = spoof.score.protected_by.first() {
        println!(
            "Spoofed: {spoofed} is reported as {}, but {} operates it ({}): its reports are of spoofing, and lookup --fail-on never fires on it.",
            spoof.score.kinds.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            p.org,
            p.role
        );
    }
    let (_, token) = &files[2];
    // The binary's real path: after `cargo run` no `sightline` is on the PATH.
    let exe = std::env::current_exe()
        .map_or_else(|_| "sightline".to_owned(), |p| p.display().to_string());
    let exe = if exe.contains(char::is_whitespace) {
        format!("'{exe}'")
    } else {
        exe
    };
    println!(
        "Try:     {exe} lookup --api http://{} --token {token} \"+1 415 555 0103\" \"+1 415 555 0150\"",
        cert.web
    );
    println!("Files:   {}", dir.path().display());

    if !args.check {
        println!("\nPress ctrl-c to stop the nodes and remove the directory.");
        terminate_signal().await;
    }
    for r in running {
        r.stop().await;
    }
    let path = dir.path().to_owned();
    dir.close()?;
    if !args.check {
        println!("stopped; removed {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn futures_digests(running: &[Running]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for r in running {
        out.push(r.node.set_digest().await?);
    }
    Ok(out)
}
