//! The `ripcord` command line.
//!
//! `main` only parses arguments and hands each command to its module; every command
//! prints what went wrong and what to do, and exits non-zero on failure.

mod flags;
mod simulate;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Progressive delivery and one-pull rollback for services behind an AWS ALB.
#[derive(Debug, Parser)]
#[command(name = "ripcord", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a configuration file; problems are printed with their line and column.
    Validate {
        /// The configuration file, e.g. ripcord.toml.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a deployment of a service's plan on a simulated clock and show what it would do.
    Simulate(simulate::Args),
    /// Feature flags: evaluate a flag from a Ripcord flag file or an Unleash feature state.
    Flags {
        #[command(subcommand)]
        command: flags::FlagsCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { file, json } => validate::run(&file, json),
        Command::Simulate(args) => simulate::run(&args),
        Command::Flags { command } => flags::run(&command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
