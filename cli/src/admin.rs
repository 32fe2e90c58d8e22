//! `network new`, `network add-member` and `init`: the files an operator and
//! a network admin exchange.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rand_core::{OsRng, RngCore};
use sightline_node::config::{
    encode_key32, MemberFile, NetworkConfig, NetworkFile, NodeFile, TokenFile,
};
use sightline_node::identity::NodeIdentity;

use crate::exit::Failure;
use crate::files::{replace_validated, write_private};

/// `sightline network …`.
#[derive(Debug, Subcommand)]
pub(crate) enum NetworkCommand {
    /// Create a new network.toml with a random hash key.
    New {
        /// Display name, e.g. "Example Banking ISAC".
        #[arg(long)]
        name: String,
        /// Short id (a-z, 0-9, -), used in topics and every record.
        #[arg(long)]
        id: String,
        /// Where to write network.toml (mode 0600; refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
        /// Also generate a private-network pre-shared key (TCP only; QUIC off).
        #[arg(long)]
        psk: bool,
    },
    /// Add a member organization's node to network.toml.
    AddMember {
        /// The network.toml to edit.
        #[arg(long)]
        network: PathBuf,
        /// Organization display name.
        #[arg(long)]
        org: String,
        /// The node's peer id (printed by `sightline init`).
        #[arg(long)]
        peer_id: String,
        /// Trust weight for its reports, 0.0–1.0.
        #[arg(long, default_value_t = 0.5)]
        trust: f64,
        /// A reachable address of the node, added to the bootstrap list.
        #[arg(long)]
        addr: Option<String>,
    },
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}

/// Runs a `network` subcommand.
pub(crate) fn network(command: NetworkCommand) -> Result<ExitCode, Failure> {
    match command {
        NetworkCommand::New { name, id, out, psk } => {
            let file = NetworkFile {
                name,
                id,
                hash_key: encode_key32(&random_key()).into(),
                psk: psk.then(|| encode_key32(&random_key()).into()),
                bootstrap: Vec::new(),
                members: Vec::new(),
                limits: sightline_node::store::Limits::default(),
                // A new network: every member reads version 2 from the start.
                record_version: 2,
                half_life_days: std::collections::BTreeMap::new(),
            };
            NetworkConfig::from_file(&out, file.clone()).map_err(Failure::input)?;
            let text = format!(
                "# Sightline network file. Distribute to member organizations only:\n\
                 # hash_key (and psk) are secret to members.\n{}",
                toml::to_string(&file)?
            );
            write_private(&out, text.as_bytes()).map_err(Failure::input)?;
            println!(
                "wrote {} (mode 0600). Add members with `sightline network add-member`.",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::AddMember {
            network,
            org,
            peer_id,
            trust,
            addr,
        } => {
            let text = std::fs::read_to_string(&network)
                .with_context(|| format!("reading {}", network.display()))
                .map_err(Failure::input)?;
            let mut file: NetworkFile = toml::from_str(&text)
                .with_context(|| format!("parsing {}", network.display()))
                .map_err(Failure::input)?;
            file.members.push(MemberFile {
                org: org.clone(),
                peer_id: peer_id.clone(),
                trust,
            });
            if let Some(addr) = addr {
                let full = if addr.contains("/p2p/") {
                    addr
                } else {
                    format!("{addr}/p2p/{peer_id}")
                };
                file.bootstrap.push(full);
            }
            NetworkConfig::from_file(&network, file.clone()).map_err(Failure::input)?;
            let text = format!(
                "# Sightline network file. Distribute to member organizations only:\n\
                 # hash_key (and psk) are secret to members.\n{}",
                toml::to_string(&file)?
            );
            replace_validated(&network, &text, |staged| {
                NetworkConfig::load(staged).map(drop).map_err(Into::into)
            })?;
            println!(
                "added {org} ({peer_id}) with trust {trust} to {}",
                network.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `sightline init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The community's network.toml.
    #[arg(long)]
    network: PathBuf,
    /// This organization's name (as the admin will list it).
    #[arg(long)]
    org: String,
    /// Directory for sightline.toml, the key and the store.
    #[arg(long)]
    dir: PathBuf,
    /// libp2p port (TCP and QUIC/UDP).
    #[arg(long, default_value_t = 7400)]
    p2p_port: u16,
    /// Web UI / API port on 127.0.0.1.
    #[arg(long, default_value_t = 7300)]
    web_port: u16,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A token `init` creates: one per kind of holder, each with the least
/// scope its holder needs.
#[derive(Debug, Clone, Copy)]
struct Role {
    name: &'static str,
    scopes: &'static [&'static str],
    purpose: &'static str,
}

const ROLES: [Role; 3] = [
    Role {
        name: "analyst",
        scopes: &["read"],
        purpose: "read: analysts sign in to the web UI with it",
    },
    Role {
        name: "automation",
        scopes: &["read", "submit"],
        purpose: "read + submit: gateways, SOAR and import scripts",
    },
    Role {
        name: "operator",
        scopes: &["read", "admin"],
        purpose: "read + admin: status, metrics and backups",
    },
];

/// Creates the node key and `DIR/sightline.toml` with an analyst, an
/// automation and an operator token.
pub(crate) fn init(args: &InitArgs) -> Result<ExitCode, Failure> {
    let network_path = std::fs::canonicalize(&args.network)
        .with_context(|| format!("network file {}", args.network.display()))
        .map_err(Failure::input)?;
    let network = NetworkConfig::load(&network_path).map_err(Failure::input)?;
    let config_path = args.dir.join("sightline.toml");
    if config_path.exists() {
        return Err(Failure::input(anyhow::anyhow!(
            "{} already exists",
            config_path.display()
        )));
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let key_path = args.dir.join("data/node.key");
    let new_key = !key_path.exists();
    let identity = NodeIdentity::load_or_create(&key_path)?;
    if new_key {
        new_node_store(&args.dir.join("data"))?;
    }
    let peer_id = identity.peer_id();
    let mut file = NodeFile::new(network_path.clone());
    file.data_dir = PathBuf::from("data");
    file.listen = if network.psk.is_some() {
        vec![format!("/ip4/0.0.0.0/tcp/{}", args.p2p_port)]
    } else {
        vec![
            format!("/ip4/0.0.0.0/tcp/{}", args.p2p_port),
            format!("/ip4/0.0.0.0/udp/{}/quic-v1", args.p2p_port),
        ]
    };
    file.web_bind = std::net::SocketAddr::from(([127, 0, 0, 1], args.web_port));
    let tokens: Vec<(Role, String)> = ROLES
        .iter()
        .map(|role| (*role, crate::operate::new_secret()))
        .collect();
    file.tokens = tokens
        .iter()
        .map(|(role, secret)| TokenFile {
            name: role.name.to_owned(),
            token: secret.as_str().into(),
            scopes: role.scopes.iter().map(|s| (*s).to_owned()).collect(),
        })
        .collect();
    let text = format!(
        "# Sightline node configuration for {}. Contains API tokens: keep it private.\n\
         # Tokens: `analyst` (read: sign in to the web UI), `automation` (read + submit:\n\
         # gateways and scripts), `operator` (read + admin: status and backups).\n{}",
        args.org,
        toml::to_string(&file)?
    );
    write_private(&config_path, text.as_bytes())?;
    let api = format!("http://127.0.0.1:{}", args.web_port);
    let add_member = format!(
        "sightline network add-member --network network.toml --org {:?} --peer-id {peer_id} --trust 0.5 --addr /ip4/<this host's address>/tcp/{}",
        args.org, args.p2p_port
    );
    if args.json {
        let tokens: serde_json::Map<String, serde_json::Value> = tokens
            .iter()
            .map(|(role, secret)| (role.name.to_owned(), secret.clone().into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "peer_id": peer_id.to_string(), "tokens": tokens, "api": api, "config": config_path, "add_member": add_member })
        );
    } else {
        println!(
            "created {} and the node key (mode 0600)",
            config_path.display()
        );
        println!("peer id: {peer_id}");
        println!("web UI:  {api}/   (sign in with the analyst token)");
        println!("tokens (each in sightline.toml; hand each to its holder only):");
        for (role, secret) in &tokens {
            println!("  {:<11} {secret}   {}", role.name, role.purpose);
        }
        println!("\nSend this to your network admin:\n  {add_member}");
        if network.member(&peer_id).is_none() {
            println!("\nThe node will start once network.toml lists it as a member.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sightline restore`.
#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// The node's sightline.toml (where the key and store go).
    #[arg(long)]
    config: PathBuf,
    /// The archive written by `sightline backup`.
    #[arg(long)]
    archive: PathBuf,
    /// The age identity file whose recipient the archive was encrypted to.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// The file holding the passphrase the archive was encrypted with (or
    /// set `SIGHTLINE_BACKUP_PASSPHRASE`).
    #[arg(long, conflicts_with = "identity")]
    passphrase_file: Option<PathBuf>,
}

/// `sightline restore`: the node must be stopped (its store is locked while
/// it runs) and its store empty. Every record is verified as a peer's would
/// be; one that fails aborts the restore with nothing written.
pub(crate) fn restore(args: &RestoreArgs) -> Result<ExitCode, Failure> {
    use sightline_node::backup::{self, Decryption};
    let config = sightline_node::NodeConfig::load(&args.config).map_err(Failure::input)?;
    let decryption = match (
        &args.identity,
        crate::files::backup_passphrase(args.passphrase_file.as_deref())?,
    ) {
        (Some(identity), _) => Decryption::identity_file(identity).map_err(Failure::input)?,
        (None, Some(passphrase)) => Decryption::passphrase(passphrase),
        (None, None) => {
            return Err(Failure::input(anyhow::anyhow!(
                "the archive is encrypted: give --identity FILE or --passphrase-file FILE \
                 (or SIGHTLINE_BACKUP_PASSPHRASE)"
            )))
        }
    };
    let archive = std::fs::File::open(&args.archive)
        .with_context(|| format!("reading {}", args.archive.display()))
        .map_err(Failure::input)?;
    let clock: std::sync::Arc<dyn sightline_node::clock::Clock> =
        std::sync::Arc::new(sightline_node::clock::SystemClock);
    let summary = backup::restore(archive, &decryption, &config, clock)
        .with_context(|| {
            format!(
                "restoring {} into {} (is the node stopped?)",
                args.archive.display(),
                config.data_dir.display()
            )
        })
        .map_err(Failure::input)?;
    println!(
        "restored {} into {}: {} record(s), {} equivocation record(s), {} own raw number(s)",
        args.archive.display(),
        config.data_dir.display(),
        summary.records,
        summary.evidence,
        summary.own_numbers,
    );
    for (reason, count) in &summary.skipped {
        println!("  left out {count} record(s): {reason}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `sightline backup-key`.
#[derive(Debug, clap::Args)]
pub(crate) struct BackupKeyArgs {
    /// Where to write the new age identity (0600; must not exist). Keep it
    /// off the node: whoever holds it can read every backup made to it.
    #[arg(long)]
    out: PathBuf,
}

/// `sightline backup-key`: a new age identity for encrypting backups; prints
/// its recipient, which is what `sightline backup --recipient` takes.
pub(crate) fn backup_key(args: &BackupKeyArgs) -> Result<ExitCode, Failure> {
    let (identity, recipient) = sightline_node::backup::new_identity();
    crate::files::write_private(&args.out, identity.as_bytes()).map_err(Failure::input)?;
    println!(
        "wrote {} (mode 0600): keep it off the node, where backups are restored from",
        args.out.display()
    );
    println!("recipient: {recipient}");
    println!("back up with: sightline backup --recipient {recipient} --out FILE");
    Ok(ExitCode::SUCCESS)
}

/// Creates the store of a node whose key was just made: no peer can hold a
/// record of that key, so the store starts with its own seq confirmed
/// (a store re-created later for an existing key is not, and waits for a
/// peer before signing: `sightline_node::store::Store::own_seq_confirmed`).
pub(crate) fn new_node_store(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let store = sightline_node::store::Store::open(&data_dir.join("store"))?;
    store.confirm_own_seq()?;
    Ok(())
}
