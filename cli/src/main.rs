//! `sightline`: the one binary operators, analysts and scripts use.
//!
//! `main` is tiny: it parses flags, calls [`run`], and turns the outcome into
//! an exit code scripts can rely on (README.md, "Exit codes"):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | `lookup --fail-on` matched, and nothing else |
//! | 2 | usage or input error (a bad flag, number, file or token; a 4xx answer other than 429): nothing was done |
//! | 3 | the node could not be reached |
//! | 4 | the node is busy or failing (429, 5xx) or did not answer in time: retry later |
//! | 5 | any other failure (a local file, the node failing to start) |

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod client;
mod demo;
mod exit;
mod files;
mod interop;
mod operate;
mod serve;

use exit::{Failure, EXIT_INPUT};

/// jemalloc: faster than glibc malloc for the node's cross-thread ingest and
/// lookups at the same resident memory (BENCHMARKS.md, "Allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Peer-to-peer threat sharing for phone-number indicators.
#[derive(Debug, Parser)]
#[command(name = "sightline", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or edit a network.toml (network admins).
    #[command(subcommand)]
    Network(admin::NetworkCommand),
    /// Create this node's key and sightline.toml.
    Init(admin::InitArgs),
    /// Run the node and its web UI / API until ctrl-c or SIGTERM.
    Run {
        /// The node's sightline.toml.
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Start a throwaway three-organization network on loopback with the
    /// bundled sample, and print each organization's web URL and token.
    Demo(demo::DemoArgs),
    /// Submit one sighting.
    Submit(client::SubmitArgs),
    /// Import sightings from CSV (a file, or - for stdin), or from a MISP
    /// event or feed (--misp).
    Import(client::ImportArgs),
    /// Export numbers and campaigns for other tools: a STIX 2.1 bundle or
    /// a MISP event.
    #[command(subcommand)]
    Export(interop::ExportCommand),
    /// The gateway feed: keep a local compact filter of listed numbers.
    #[command(subcommand)]
    Feed(interop::FeedCommand),
    /// Look numbers up.
    Lookup(client::LookupArgs),
    /// Show a campaign (its id is in a lookup's answer): the numbers linked
    /// into one operation, and every report of them.
    Campaign(client::CampaignArgs),
    /// List the campaigns of the latest reports, largest first.
    Campaigns(client::CampaignsArgs),
    /// Attest that this organization operates a number: reports of it are
    /// then shown as spoofing, and lookups never block on it.
    Protect(client::ProtectArgs),
    /// Withdraw this organization's report of a number.
    Withdraw(client::WithdrawArgs),
    /// List member nodes, connected or not.
    Peers(client::JsonFlag),
    /// Show the node's status.
    Status(client::JsonFlag),
    /// Save an encrypted backup of a running node's store and key (0600).
    Backup(client::BackupArgs),
    /// Print this node's peer id (to send to the network admin).
    PeerId {
        /// The node's sightline.toml.
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Add or revoke API tokens in sightline.toml.
    #[command(subcommand)]
    Token(operate::TokenCommand),
    /// Set or clear this node's trust in an organization (sightline.toml).
    Trust(operate::TrustArgs),
    /// Check that the node's web server answers (exit 0), or exit 3.
    Health(operate::HealthArgs),
    /// Restore an encrypted backup into a stopped node's empty data directory.
    Restore(admin::RestoreArgs),
    /// Create an age identity to encrypt backups to (prints its recipient).
    BackupKey(admin::BackupKeyArgs),
}

fn main() -> ExitCode {
    // Everything the node writes (store, key, backups, edited config) is
    // private to its account, whatever umask the shell or unit started it
    // with; the node also tightens files made before (sightline_node::files).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_INPUT } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Network(command) => admin::network(command),
            Command::Init(args) => admin::init(&args),
            Command::Run { config } => serve::run(&config).await,
            Command::Demo(args) => demo::run(&args).await,
            Command::Submit(args) => client::submit(&args).await,
            Command::Import(args) => client::import(&args).await,
            Command::Export(command) => interop::export(&command).await,
            Command::Feed(command) => interop::feed(&command).await,
            Command::Lookup(args) => client::lookup(&args).await,
            Command::Campaign(args) => client::campaign(&args).await,
            Command::Campaigns(args) => client::campaigns(&args).await,
            Command::Protect(args) => client::protect(&args).await,
            Command::Withdraw(args) => client::withdraw(&args).await,
            Command::Peers(args) => client::peers(&args).await,
            Command::Status(args) => client::status(&args).await,
            Command::Backup(args) => client::backup(&args).await,
            Command::Restore(args) => admin::restore(&args),
            Command::BackupKey(args) => admin::backup_key(&args),
            Command::PeerId { config } => operate::peer_id(&config),
            Command::Token(command) => operate::token(command),
            Command::Trust(args) => operate::trust(&args),
            Command::Health(args) => operate::health(&args).await,
        }
    })
}
