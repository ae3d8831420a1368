//! `ripcord watch DEPLOYMENT`: follows a deployment until it ends, one line per new
//! event, and exits with a code that says how it ended, so that a CI job can run
//! `ripcord deploy ... && ripcord watch ...` and fail when the release did not go out.
//!
//! It only reads: the table (`--table`) or local mode's JSON API (`--local`), polled
//! every `--interval`. The controller moves the deployment; `watch` steers nothing.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ripcord_core::history::Event;
use ripcord_core::ports::Store;
use ripcord_core::time::{Timestamp, format_duration, parse_duration};
use serde_json::json;

use crate::ops::{TableArg, deployment_arg, render_event, runtime, table_store};

/// Exit code when the deployment rolled back.
pub const EXIT_ROLLED_BACK: u8 = 2;
/// Exit code when the deployment was aborted or rejected.
pub const EXIT_ABORTED: u8 = 3;
/// Exit code when a gate failed before any traffic moved.
pub const EXIT_FAILED: u8 = 4;

/// Consecutive failed reads tolerated once the deployment has been seen.
const READ_RETRIES: u32 = 5;

/// Arguments of `ripcord watch`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Exit status: 0 succeeded, 2 rolled back, 3 aborted or rejected, 4 failed before traffic moved, 1 could not follow it (unknown deployment, store or local mode unreachable)."
)]
pub struct Args {
    /// The deployment id (`ripcord deploy` prints it; `ripcord status` lists them).
    pub deployment: String,
    #[command(flatten)]
    pub table: TableArg,
    /// How often to look, e.g. 2s or 500ms.
    #[arg(long, default_value = "2s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Print each event as one JSON object per line, then a last line
    /// `{"deployment_id", "outcome", "exit_code"}`.
    #[arg(long)]
    pub json: bool,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_millis(100) {
        return Err("the interval must be at least 100ms".to_string());
    }
    Ok(duration)
}

/// A deployment as `watch` sees it at one look.
struct Look {
    service: String,
    version: String,
    created_at: Timestamp,
    state: String,
    events: Vec<Event>,
}

/// Where to look.
enum Source {
    Table(ripcord_aws::DynamoStore),
    Local(String),
}

impl Source {
    async fn look(&self, id: &str) -> anyhow::Result<Look> {
        match self {
            Source::Table(store) => {
                let id = deployment_arg(id)?;
                let Some(d) = store.deployment(&id).await? else {
                    bail!("no deployment {id}; `ripcord status` lists the active ones");
                };
                let events = store.events(&id).await?;
                Ok(Look {
                    service: d.service.to_string(),
                    version: d.release.version.clone(),
                    created_at: d.created_at,
                    state: d.state.name().to_string(),
                    events,
                })
            }
            Source::Local(base) => {
                let value = crate::local_client::deployment(base, id).await?;
                Ok(Look {
                    service: value["service"].as_str().unwrap_or("?").to_string(),
                    version: value["version"].as_str().unwrap_or("?").to_string(),
                    created_at: serde_json::from_value(value["created_at"].clone())
                        .context("local mode sent no creation time")?,
                    state: value["state"].as_str().unwrap_or("?").to_string(),
                    events: serde_json::from_value(value["events"].clone())
                        .context("local mode sent events this build cannot read")?,
                })
            }
        }
    }
}

/// The exit code for a final state, or `None` while the deployment runs.
pub fn exit_code(state: &str) -> Option<u8> {
    match state {
        "succeeded" => Some(0),
        "rolled_back" => Some(EXIT_ROLLED_BACK),
        "aborted" => Some(EXIT_ABORTED),
        "failed" => Some(EXIT_FAILED),
        _ => None,
    }
}

/// Runs `ripcord watch`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let source = match &args.table.local {
            Some(base) => Source::Local(base.clone()),
            None => Source::Table(table_store(&args.table).await),
        };
        follow(&source, args).await
    })
}

async fn follow(source: &Source, args: &Args) -> anyhow::Result<ExitCode> {
    let id = &args.deployment;
    // An unknown deployment or an unreachable store ends the watch at once.
    let mut look = source.look(id).await?;
    if !args.json {
        println!(
            "watching {} {} {} ({})",
            look.service, look.version, id, look.state
        );
    }
    // Sequence numbers start at 0: nothing is shown yet.
    let mut shown: Option<u64> = None;
    let mut failures = 0;
    loop {
        let seen = shown;
        for event in look
            .events
            .iter()
            .filter(|e| seen.is_none_or(|s| e.seq > s))
        {
            if args.json {
                println!("{}", serde_json::to_string(event)?);
            } else {
                println!("{}", render_event(event, look.created_at));
            }
            shown = Some(event.seq);
        }
        if let Some(code) = exit_code(&look.state) {
            let took = look
                .events
                .last()
                .map(|e| format_duration(e.at.since(look.created_at)))
                .unwrap_or_default();
            if args.json {
                println!(
                    "{}",
                    json!({"deployment_id": id, "outcome": look.state, "exit_code": code})
                );
            } else {
                println!(
                    "{} {} {} after {took}",
                    look.service, look.version, look.state
                );
            }
            return Ok(ExitCode::from(code));
        }
        tokio::time::sleep(args.interval).await;
        match source.look(id).await {
            Ok(next) => {
                look = next;
                failures = 0;
            }
            Err(e) if failures < READ_RETRIES => {
                failures += 1;
                eprintln!("warning: {e:#}; looking again ({failures} of {READ_RETRIES})");
            }
            Err(e) => return Err(e.context(format!("gave up after {READ_RETRIES} failed reads"))),
        }
    }
}
