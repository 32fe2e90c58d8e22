//! Commands an operator runs on the node's own host: print the node's peer
//! id, add or revoke API tokens and set local trust in `sightline.toml`
//! (keeping its comments), and wait for the node to answer `/healthz`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use rand_core::{OsRng, RngCore};
use sightline_node::identity::NodeIdentity;
use sightline_node::NodeConfig;

use crate::client::Connection;
use crate::exit::{Failure, EXIT_UNREACHABLE};

/// `sightline peer-id`: the id to send to the network admin, read from the
/// node's existing key (never creates one).
pub(crate) fn peer_id(config: &Path) -> Result<ExitCode, Failure> {
    let config = NodeConfig::load(config).map_err(Failure::input)?;
    let identity = NodeIdentity::load(&config.key_file).map_err(Failure::input)?;
    println!("{}", identity.peer_id());
    Ok(ExitCode::SUCCESS)
}

/// `sightline token …`: edits the `[[token]]` entries of `sightline.toml`,
/// keeping its comments and layout. The node reads tokens at start-up, so
/// changes apply when it is restarted.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Add a token with a fresh random secret; prints the secret (only) on stdout.
    Add {
        /// The node's sightline.toml.
        #[arg(long)]
        config: PathBuf,
        /// Who holds it, e.g. "sms-gateway" (unique; shown in logs).
        #[arg(long)]
        name: String,
        /// `read`, `submit` or `admin`; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// Remove the token with this name.
    Revoke {
        /// The node's sightline.toml.
        #[arg(long)]
        config: PathBuf,
        /// The token's name.
        #[arg(long)]
        name: String,
    },
}

/// A fresh API secret: 32 random bytes, URL-safe.
pub(crate) fn new_secret() -> String {
    use base64::Engine as _;
    loop {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        // URL-safe, unpadded: always 43 characters, nothing a shell or a
        // TOML string needs quoted; never a leading '-', which a command
        // line reads as an option (`--token -T…`: one secret in 64 was
        // refused that way). Redrawing costs under a bit of the 256.
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        if !secret.starts_with('-') {
            return secret;
        }
    }
}

/// Runs a `token` subcommand.
pub(crate) fn token(command: TokenCommand) -> Result<ExitCode, Failure> {
    match command {
        TokenCommand::Add {
            config,
            name,
            scopes,
        } => {
            let mut doc = read_document(&config)?;
            if token_names(&doc).any(|n| n == name) {
                return Err(Failure::input(anyhow!(
                    "{} already has a token named {name:?}; revoke it first",
                    config.display()
                )));
            }
            let secret = new_secret();
            let mut table = toml_edit::Table::new();
            table.insert("name", toml_edit::value(name.as_str()));
            table.insert("token", toml_edit::value(secret.as_str()));
            let mut list = toml_edit::Array::new();
            for scope in &scopes {
                list.push(scope.as_str());
            }
            table.insert("scopes", toml_edit::value(list));
            doc.entry("token")
                .or_insert_with(|| toml_edit::ArrayOfTables::new().into())
                .as_array_of_tables_mut()
                .ok_or_else(|| Failure::input(anyhow!("`token` is not an array of tables")))?
                .push(table);
            replace_config(&config, &doc.to_string())?;
            eprintln!(
                "added token {name:?} ({}) to {}; restart the node to apply",
                scopes.join(", "),
                config.display()
            );
            println!("{secret}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { config, name } => {
            let mut doc = read_document(&config)?;
            let tokens = doc
                .get_mut("token")
                .and_then(toml_edit::Item::as_array_of_tables_mut)
                .ok_or_else(|| Failure::input(anyhow!("{} has no tokens", config.display())))?;
            let before = tokens.len();
            tokens.retain(|t| t.get("name").and_then(toml_edit::Item::as_str) != Some(&name));
            if tokens.len() == before {
                return Err(Failure::input(anyhow!(
                    "{} has no token named {name:?}",
                    config.display()
                )));
            }
            replace_config(&config, &doc.to_string())?;
            eprintln!(
                "revoked token {name:?} in {}; restart the node to apply",
                config.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sightline trust`.
#[derive(Debug, Args)]
pub(crate) struct TrustArgs {
    /// The node's sightline.toml.
    #[arg(long)]
    config: PathBuf,
    /// The organization, as named in network.toml.
    #[arg(long)]
    org: String,
    /// This node's weight for the organization's reports, 0.0–1.0.
    #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
    weight: Option<f64>,
    /// Remove the override: network.toml's trust applies again.
    #[arg(long)]
    clear: bool,
}

/// `sightline trust`: sets or clears this node's local trust override for an
/// organization (`[trust]` in sightline.toml). Applies on restart.
pub(crate) fn trust(args: &TrustArgs) -> Result<ExitCode, Failure> {
    let mut doc = read_document(&args.config)?;
    let table = doc
        .entry("trust")
        .or_insert_with(toml_edit::table)
        .as_table_mut()
        .ok_or_else(|| {
            Failure::input(anyhow!(
                "`trust` in {} is not a table",
                args.config.display()
            ))
        })?;
    if let Some(weight) = args.weight {
        table.insert(&args.org, toml_edit::value(weight));
    } else if table.remove(&args.org).is_none() {
        return Err(Failure::input(anyhow!(
            "{} has no trust override for {:?}",
            args.config.display(),
            args.org
        )));
    }
    replace_config(&args.config, &doc.to_string())?;
    match args.weight {
        Some(weight) => eprintln!(
            "{:?} trusted at {weight} by this node; restart the node to apply",
            args.org
        ),
        None => eprintln!(
            "{:?} back to network.toml's trust; restart the node to apply",
            args.org
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn read_document(config: &Path) -> Result<toml_edit::DocumentMut, Failure> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("reading {}", config.display()))
        .map_err(Failure::input)?;
    text.parse::<toml_edit::DocumentMut>()
        .with_context(|| format!("parsing {}", config.display()))
        .map_err(Failure::input)
}

/// Replaces `sightline.toml` with an edit the node would accept.
fn replace_config(config: &Path, text: &str) -> Result<(), Failure> {
    crate::files::replace_validated(config, text, |staged| {
        NodeConfig::load(staged).map(drop).map_err(Into::into)
    })
}

fn token_names(doc: &toml_edit::DocumentMut) -> impl Iterator<Item = &str> {
    doc.get("token")
        .and_then(toml_edit::Item::as_array_of_tables)
        .into_iter()
        .flat_map(toml_edit::ArrayOfTables::iter)
        .filter_map(|t| t.get("name").and_then(toml_edit::Item::as_str))
}

/// `sightline health`.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// Keep trying for up to this many seconds (for start-up scripts).
    #[arg(long, default_value_t = 0)]
    wait: u64,
    #[command(flatten)]
    conn: Connection,
}

/// `sightline health`: exit 0 once `/healthz` answers, 3 if it does not.
/// Needs no token, so it suits container health checks.
pub(crate) async fn health(args: &HealthArgs) -> Result<ExitCode, Failure> {
    let base = crate::client::base_url(&args.conn)?;
    let url = format!("{base}/healthz");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    loop {
        let outcome = match http.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                println!("ok: {base}");
                return Ok(ExitCode::SUCCESS);
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                format!("{url} answered {status}: {}", text.trim())
            }
            Err(e) => format!("node unreachable at {base}: {e}"),
        };
        if Instant::now() >= deadline {
            return Err(Failure {
                code: EXIT_UNREACHABLE,
                error: anyhow!(outcome),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
