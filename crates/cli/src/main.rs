//! The `ripcord` command line.
//!
//! `main` only parses arguments and hands each command to its module; every command
//! prints what went wrong and what to do, and exits non-zero on failure.

mod demo;
mod deploy;
mod discord;
mod flag_admin;
mod flags;
mod local_client;
mod local_flags;
mod ops;
mod simulate;
mod up;
mod validate;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ops::Verb;
use ripcord_core::deployment::CommandKind;

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
    /// Check a configuration and store it as the next version in the table.
    Apply {
        /// The configuration file, e.g. ripcord.toml.
        file: PathBuf,
        #[command(flatten)]
        table: ops::TableArg,
    },
    /// Show the active deployments (of one service, if given).
    Status {
        /// Only this service.
        service: Option<String>,
        #[command(flatten)]
        table: ops::TableArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a deployment's history and check its hash chain.
    History {
        /// The deployment id.
        deployment: String,
        #[command(flatten)]
        table: ops::TableArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// DORA figures over the last days: frequency, lead time, failure rate, time to restore.
    Dora {
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// How many days back.
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[command(flatten)]
        table: ops::TableArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a deployment of the version on a service's idle slot, as CI's webhook does.
    Deploy(deploy::Args),
    /// Follow a deployment until it ends; the exit status says how it ended.
    Watch(watch::Args),
    /// Skip the remaining steps of a deployment: 100% to the new slot, then bake.
    Promote(ops::CommandArgs),
    /// Hold a deployment at its current step; gates stay armed.
    Pause(ops::CommandArgs),
    /// Continue a paused deployment.
    Resume(ops::CommandArgs),
    /// Put all traffic back on the stable slot and stop the deployment.
    Abort(ops::CommandArgs),
    /// Put all traffic back on the stable slot now.
    Rollback(ops::CommandArgs),
    /// Approve the step a deployment waits on, as the local user.
    Approve(ops::CommandArgs),
    /// Reject the step a deployment waits on: traffic goes back to the stable slot.
    Reject(ops::CommandArgs),
    /// Discord: register Ripcord's slash commands.
    Discord {
        #[command(subcommand)]
        command: discord::DiscordCommand,
    },
    /// Run local mode: the proxies, the controller and the control port, until Ctrl-C.
    Up(up::Args),
    /// Play a canary that is promoted and a bad release that an alarm rolls back, locally.
    Demo(demo::Args),
    /// Feature flags: evaluate, list, change and ramp flags; import Unleash states; API keys.
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
        Command::Discord { command } => discord::run(&command),
        Command::Up(args) => up::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Apply { file, table } => ops::run_apply(&table, &file),
        Command::Status {
            service,
            table,
            json,
        } => ops::run_status(&table, service.as_deref(), json),
        Command::History {
            deployment,
            table,
            json,
        } => ops::run_history(&table, &deployment, json),
        Command::Dora {
            service,
            days,
            table,
            json,
        } => ops::run_dora(&table, service.as_deref(), days, json),
        Command::Deploy(args) => deploy::run(&args),
        Command::Watch(args) => watch::run(&args),
        Command::Promote(args) => ops::run_command(&args, Verb::Fixed(CommandKind::Promote)),
        Command::Pause(args) => ops::run_command(&args, Verb::Fixed(CommandKind::Pause)),
        Command::Resume(args) => ops::run_command(&args, Verb::Fixed(CommandKind::Resume)),
        Command::Abort(args) => ops::run_command(&args, Verb::Fixed(CommandKind::Abort)),
        Command::Rollback(args) => ops::run_command(&args, Verb::Fixed(CommandKind::Rollback)),
        Command::Approve(args) => ops::run_command(&args, Verb::Approve),
        Command::Reject(args) => ops::run_command(&args, Verb::Reject),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
