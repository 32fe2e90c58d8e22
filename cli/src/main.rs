//! `sightline`: the one binary operators, analysts and scripts use.
//!
//! At this stage only the protocol exists (see README.md "Status"); the
//! `demo` command exercises it end to end in one process.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

/// Peer-to-peer threat sharing for phone-number indicators.
#[derive(Debug, Parser)]
#[command(name = "sightline", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Three organizations sign, exchange and verify the bundled sample of
    /// privacy-hashed sightings (protocol only, in one process).
    Demo,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => demo::run(&mut std::io::stdout().lock()),
    }
}
