//! `sightline export stix|misp` and `sightline import --misp`: the node's
//! picture out to analysts' tools, and MISP's phone numbers in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use sightline_node::config::Scope;
use sightline_node::interop::misp;
use sightline_protocol::Kind;

use crate::client::{Api, BadRow, Connection, Row};
use crate::exit::Failure;

/// `sightline export`.
#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// A STIX 2.1 bundle (`OpenCTI`, TAXII clients).
    Stix(ExportArgs),
    /// A MISP event (MISP, `PyMISP`).
    Misp(ExportArgs),
}

/// What to export, and where.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Numbers (E.164 or international form).
    numbers: Vec<String>,
    /// A campaign id (from a lookup): the campaign, and its numbers this
    /// node can name (its own reports, numbers it was asked about).
    #[arg(long)]
    campaign: Option<String>,
    /// Default region for national numbers.
    #[arg(long)]
    region: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    conn: Connection,
}

/// A query value, form-encoded (`+` as `%2B`, as a number needs).
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `sightline export stix|misp`.
pub(crate) async fn export(command: &ExportCommand) -> Result<ExitCode, Failure> {
    let (format, args) = match command {
        ExportCommand::Stix(args) => ("stix", args),
        ExportCommand::Misp(args) => ("misp", args),
    };
    if args.numbers.is_empty() && args.campaign.is_none() {
        return Err(Failure::input(anyhow!(
            "name what to export: numbers, --campaign ID, or both"
        )));
    }
    // A campaign's raw numbers come only with a token that may see this
    // organization's own numbers.
    let scope = if args.campaign.is_some() {
        Scope::Submit
    } else {
        Scope::Read
    };
    let api = Api::new(&args.conn, scope)?;
    let mut path = format!(
        "/api/v1/export/{format}?numbers={}",
        encode(&args.numbers.join(","))
    );
    if let Some(c) = &args.campaign {
        path.push_str("&campaign=");
        path.push_str(&encode(c));
    }
    if let Some(r) = &args.region {
        path.push_str("&region=");
        path.push_str(&encode(r));
    }
    let (body, left_out) = api
        .get_raw(&path, sightline_web::api::LEFT_OUT_HEADER)
        .await?;
    if let Some(file) = &args.out {
        std::fs::write(file, &body).with_context(|| format!("writing {}", file.display()))?;
        eprintln!("wrote {} ({} bytes)", file.display(), body.len());
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(&body)?;
        out.write_all(b"\n")?;
    }
    for number in left_out.iter().flat_map(|l| l.split(',')) {
        eprintln!("left out {number}: a trusted member operates it (reports of it are spoofing)");
    }
    Ok(ExitCode::SUCCESS)
}

fn read_json(path: &Path) -> Result<serde_json::Value, Failure> {
    let text = std::fs::read(path)
        .with_context(|| format!("reading {}", path.display()))
        .map_err(Failure::input)?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{} is not JSON", path.display()))
        .map_err(Failure::input)
}

/// The rows of a MISP event file or feed directory, ready to send; the
/// attributes it leaves alone are printed with the reason.
pub(crate) fn read_misp(
    path: &Path,
    kind: Kind,
    region: Option<&str>,
) -> Result<(Vec<Row>, Vec<BadRow>), Failure> {
    let mut read = misp::Read::default();
    if path.is_dir() {
        let manifest = read_json(&path.join("manifest.json"))?;
        let files = misp::feed_files(&manifest)
            .with_context(|| format!("{}", path.join("manifest.json").display()))
            .map_err(Failure::input)?;
        for file in files {
            let doc = read_json(&path.join(&file))?;
            misp::read(&doc, kind, &mut read)
                .with_context(|| file.clone())
                .map_err(Failure::input)?;
        }
    } else {
        let doc = read_json(path)?;
        misp::read(&doc, kind, &mut read)
            .with_context(|| format!("{}", path.display()))
            .map_err(Failure::input)?;
    }
    if !read.skipped.is_empty() {
        println!("skipped {} phone-number attribute(s):", read.skipped.len());
        for s in &read.skipped {
            println!("  {} ({}): {}", s.place, s.value, s.reason);
        }
    }
    let rows = read
        .found
        .into_iter()
        .zip(1u64..)
        .map(|(mut found, order)| {
            found.submission.region = region.map(str::to_owned);
            Row {
                order,
                place: found.place,
                number: found.submission.number.clone(),
                submission: found.submission,
            }
        })
        .collect();
    Ok((rows, Vec::new()))
}

/// `sightline feed`.
#[derive(Debug, Subcommand)]
pub(crate) enum FeedCommand {
    /// Bring a local compact filter up to date from the node's feed: a
    /// full snapshot the first time (and when the node says its snapshot
    /// is due), then only what changed. Writes FILE (the filter a gateway
    /// loads with the sightline-gateway crate) and FILE.state (the listed
    /// numbers' keys and the cursor), each replaced whole.
    Pull(PullArgs),
    /// Check numbers against a filter file as a gateway does (with the
    /// sightline-gateway crate): exit 1 if any is listed.
    Check(CheckArgs),
}

/// `sightline feed check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The filter file `feed pull` wrote.
    #[arg(long)]
    filter: PathBuf,
    /// The network.toml whose hash key the filter's numbers are under.
    #[arg(long)]
    network: PathBuf,
    /// Default region for national numbers.
    #[arg(long)]
    region: Option<String>,
    /// Senders to check.
    #[arg(required = true)]
    senders: Vec<String>,
}

/// `sightline feed check`.
fn check(args: &CheckArgs) -> Result<ExitCode, Failure> {
    let network = sightline_node::NetworkConfig::load(&args.network).map_err(Failure::input)?;
    let bytes = std::fs::read(&args.filter)
        .with_context(|| format!("reading {}", args.filter.display()))
        .map_err(Failure::input)?;
    let filter = sightline_gateway::Filter::from_bytes(&bytes).map_err(Failure::input)?;
    if filter.network != network.id.to_string() {
        return Err(Failure::input(anyhow!(
            "{} holds numbers of network {:?}, {} is network {:?}",
            args.filter.display(),
            filter.network,
            args.network.display(),
            network.id.to_string()
        )));
    }
    let checker =
        sightline_gateway::Checker::new(network.hash_key.clone(), filter, args.region.as_deref());
    let mut any = false;
    for sender in &args.senders {
        match checker.check(sender) {
            sightline_gateway::Check::Listed(n) => {
                any = true;
                println!("{n}: listed (band {} or above)", checker.filter().min_band);
            }
            sightline_gateway::Check::Clear(n) => println!("{n}: clear"),
            sightline_gateway::Check::NotANumber => println!("{sender}: not a phone number"),
        }
    }
    Ok(if any {
        ExitCode::from(crate::exit::EXIT_MATCHED)
    } else {
        ExitCode::SUCCESS
    })
}

/// `sightline feed pull`.
#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// The filter file to write.
    #[arg(long)]
    out: PathBuf,
    /// The lowest band to list: high (default), medium or low.
    #[arg(long, default_value = "high")]
    min_band: String,
    #[command(flatten)]
    conn: Connection,
}

/// What `feed pull` keeps beside the filter (CBOR).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct PullState {
    network: String,
    min_band: String,
    cursor: Option<String>,
    keys: std::collections::BTreeSet<u64>,
}

/// Writes `bytes` to `path` whole: a private file beside it, synced, then
/// renamed over it.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staged = tempfile::Builder::new()
        .prefix(".sightline-feed-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    staged.write_all(bytes)?;
    staged.as_file().sync_all()?;
    staged
        .persist(path)
        .map_err(|e| anyhow!("writing {}: {}", path.display(), e.error))?;
    Ok(())
}

fn hash_key(hex: &str) -> Option<u64> {
    let bytes = hex.get(..16)?;
    u64::from_str_radix(bytes, 16).ok()
}

/// `sightline feed pull`.
pub(crate) async fn feed(command: &FeedCommand) -> Result<ExitCode, Failure> {
    let args = match command {
        FeedCommand::Pull(args) => args,
        FeedCommand::Check(args) => return check(args),
    };
    if !["high", "medium", "low"].contains(&args.min_band.as_str()) {
        return Err(Failure::input(anyhow!(
            "--min-band {:?}: expected high, medium or low",
            args.min_band
        )));
    }
    let api = Api::new(&args.conn, Scope::Read)?;
    let state_path = PathBuf::from(format!("{}.state", args.out.display()));
    let mut state: PullState = match std::fs::read(&state_path) {
        Ok(bytes) => ciborium::from_reader(bytes.as_slice())
            .with_context(|| format!("{} is not a feed state file", state_path.display()))
            .map_err(Failure::input)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PullState::default(),
        Err(e) => return Err(anyhow!("reading {}: {e}", state_path.display()).into()),
    };
    if state.min_band != args.min_band {
        // Another band: start over.
        state = PullState {
            min_band: args.min_band.clone(),
            ..PullState::default()
        };
    }
    let before = state.keys.clone();
    let (mut pages, mut reset) = (0, false);
    loop {
        let mut path = format!("/api/v1/feed?min_band={}&limit=10000", args.min_band);
        if let Some(c) = &state.cursor {
            path.push_str("&since=");
            path.push_str(&encode(c));
        }
        let Some(page) = api
            .get_unless_unchanged::<sightline_web::api::model::Feed>(&path)
            .await?
        else {
            break;
        };
        pages += 1;
        if page.reset {
            state.keys.clear();
            reset = true;
        }
        for e in &page.entries {
            let key = hash_key(&e.number_hash)
                .ok_or_else(|| anyhow!("the node sent a malformed number hash"))?;
            if e.listed {
                state.keys.insert(key);
            } else {
                state.keys.remove(&key);
            }
        }
        state.network = page.network;
        state.cursor = Some(page.cursor);
        if !page.more {
            break;
        }
    }
    let keys: Vec<u64> = state.keys.iter().copied().collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let filter = sightline_gateway::Filter::build(&state.network, &state.min_band, now, &keys)
        .map_err(|e| anyhow!("{e}"))?;
    replace(&args.out, &filter.to_bytes())?;
    let mut bytes = Vec::new();
    ciborium::into_writer(&state, &mut bytes).map_err(|e| anyhow!("{e}"))?;
    replace(&state_path, &bytes)?;
    let added = state.keys.difference(&before).count();
    let removed = before.difference(&state.keys).count();
    println!(
        "{}: {} number(s) at band {} or above ({}+{added} -{removed} in {pages} page(s)); false positives at 1 in 65,536",
        args.out.display(),
        state.keys.len(),
        state.min_band,
        if reset { "new snapshot, " } else { "" },
    );
    Ok(ExitCode::SUCCESS)
}
