//! `ripcord flags`: feature flags from the command line. `ripcord flags eval` reads a
//! Ripcord flag file or an Unleash feature state (the format is detected) and
//! evaluates one flag for a context, as an Unleash SDK would. The other subcommands
//! read and change the stored flags: in the table (module `flag_admin`), or in local
//! mode with `--local URL` (module `local_flags`).

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use ripcord_core::flags::{
    Context, FlagFormat, FlagSet, FlagsError, SeededRandom, VariantResult, parse_flags,
};
use ripcord_core::time::Timestamp;
use serde::Serialize;

use crate::local_flags::LocalFlags;
use crate::ops::TableArg;
use crate::validate::render_problem;
use ripcord_aws::DynamoFlagStore;
use ripcord_core::ports::FlagStore;

/// The `ripcord flags` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FlagsCommand {
    /// Evaluate one flag for a context: is it on, and which variant does the context get.
    Eval(EvalArgs),
    /// List the stored flags: switch, rollout, version, last change.
    List {
        #[command(flatten)]
        table: TableArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a stored flag's definition and every change made to it.
    Get {
        /// The flag's name.
        flag: String,
        #[command(flatten)]
        table: TableArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a flag's definition with the flag of that name in a Ripcord flag file
    /// (TOML) or an Unleash feature state, or with an Unleash feature (a JSON object);
    /// the segments the flag uses are stored with it. `-` reads standard input.
    Set {
        /// The flag's name.
        flag: String,
        /// A Ripcord flag file (TOML), an Unleash feature state or an Unleash feature
        /// (JSON); the format is detected.
        #[arg(long = "from", value_name = "FILE")]
        from: PathBuf,
        #[command(flatten)]
        table: TableArg,
    },
    /// Turn a flag on (its strategies decide for whom).
    Enable {
        /// The flag's name.
        flag: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// Turn a flag off for everyone: the kill switch.
    Disable {
        /// The flag's name.
        flag: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// Set the rollout of a flag's flexibleRollout strategies; creates the flag if absent.
    Rollout {
        /// The flag's name.
        flag: String,
        /// Percent of contexts, 0 to 100.
        percent: u32,
        #[command(flatten)]
        table: TableArg,
    },
    /// Import every feature and segment of an Unleash feature state.
    Import {
        /// The state as served by Unleash's GET /api/client/features.
        #[arg(long, value_name = "FILE")]
        unleash: PathBuf,
        #[command(flatten)]
        table: TableArg,
    },
    /// API keys for flag evaluation over OFREP.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

/// The `ripcord flags keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it, once; only its SHA-256 is stored.
    Create {
        /// A name for the key, e.g. the application that will use it.
        name: String,
        #[command(flatten)]
        table: TableArg,
    },
    /// List the keys' names (never the keys).
    List {
        #[command(flatten)]
        table: TableArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key, e.g. one that leaked: OFREP refuses it from then on (within 5
    /// seconds on AWS, at once in local mode). The name may then be used again.
    Revoke {
        /// The key's name, as `ripcord flags keys list` shows it.
        name: String,
        #[command(flatten)]
        table: TableArg,
    },
}

/// `ripcord flags eval` arguments.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The flag's name.
    flag: String,
    /// A Ripcord flag file (TOML) or an Unleash feature state (JSON, as served by
    /// GET /api/client/features); the format is detected.
    #[arg(long = "from", value_name = "FILE")]
    from: PathBuf,
    /// The Unleash context as JSON, e.g. '{"userId": "42", "properties": {"plan": "pro"}}'.
    /// currentTime defaults to now.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    context: String,
    /// Seed for random rollouts and random stickiness, to repeat an evaluation exactly;
    /// without it each run draws afresh.
    #[arg(long)]
    seed: Option<u64>,
    /// Print {"flag", "enabled", "variant"} as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `ripcord flags` subcommand.
pub fn run(command: &FlagsCommand) -> anyhow::Result<ExitCode> {
    use crate::flag_admin as admin;
    let now = now();
    match command {
        FlagsCommand::Eval(args) => eval(args),
        FlagsCommand::List { table, json } => on_store(
            table,
            |l| l.list(*json),
            async |s| admin::list(s, *json).await,
        ),
        FlagsCommand::Get { flag, table, json } => on_store(
            table,
            |l| l.get(flag, *json),
            async |s| admin::get(s, flag, *json).await,
        ),
        FlagsCommand::Set { flag, from, table } => on_store(
            table,
            |l| l.set(flag, from),
            async |s| admin::set(s, flag, from, now).await,
        ),
        FlagsCommand::Enable { flag, table } => on_store(
            table,
            |l| l.switch(flag, true),
            async |s| admin::switch(s, flag, true, now).await,
        ),
        FlagsCommand::Disable { flag, table } => on_store(
            table,
            |l| l.switch(flag, false),
            async |s| admin::switch(s, flag, false, now).await,
        ),
        FlagsCommand::Rollout {
            flag,
            percent,
            table,
        } => on_store(
            table,
            |l| l.rollout(flag, *percent),
            async |s| admin::set_rollout(s, flag, *percent, now).await,
        ),
        FlagsCommand::Import { unleash, table } => on_store(
            table,
            |l| l.import(unleash),
            async |s| admin::import(s, unleash, now).await,
        ),
        FlagsCommand::Keys {
            command: KeysCommand::Create { name, table },
        } => on_store(
            table,
            |l| l.create_key(name),
            async |s| admin::create_key(s, name, now).await,
        ),
        FlagsCommand::Keys {
            command: KeysCommand::List { table, json },
        } => on_store(
            table,
            |l| l.list_keys(*json),
            async |s| admin::list_keys(s, *json).await,
        ),
        FlagsCommand::Keys {
            command: KeysCommand::Revoke { name, table },
        } => on_store(
            table,
            |l| l.revoke_key(name),
            async |s| admin::revoke_key(s, name).await,
        ),
    }
}

/// Runs a command on local mode's flags API when `--local` is given (`local`), or
/// on the flag store in the DynamoDB table (`work`), and prints what it returns.
fn on_store(
    table: &TableArg,
    local: impl FnOnce(&LocalFlags<'_>) -> anyhow::Result<String>,
    work: impl AsyncFnOnce(&dyn FlagStore) -> anyhow::Result<String>,
) -> anyhow::Result<ExitCode> {
    let out = match &table.local {
        Some(base) => local(&LocalFlags {
            base,
            token: table.token.as_deref(),
        })?,
        None => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async {
                let config = ripcord_aws::sdk_config().await;
                let store = DynamoFlagStore::new(
                    aws_sdk_dynamodb::Client::new(&config),
                    table.name().to_string(),
                );
                work(&store).await
            })?
        }
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// What `--json` prints, in this key order.
#[derive(Serialize)]
struct EvalOutput<'a> {
    flag: &'a str,
    enabled: bool,
    variant: &'a VariantResult,
}

fn eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let flags = load(&args.from)?;
    let mut context =
        Context::parse_json(&args.context).map_err(|error| anyhow!("--context: {error}"))?;
    if context.current_time.is_none() {
        context.current_time = Some(now());
    }
    let mut random = SeededRandom::new(args.seed.unwrap_or_else(fresh_seed));
    let Some(evaluation) = flags.evaluate(&args.flag, &context, &mut random) else {
        return Err(unknown_flag(&args.flag, &args.from, &flags));
    };
    if args.json {
        let output = EvalOutput {
            flag: &args.flag,
            enabled: evaluation.enabled,
            variant: &evaluation.variant,
        };
        println!("{}", serde_json::to_string(&output)?);
    } else {
        println!(
            "{}",
            describe(&args.flag, evaluation.enabled, &evaluation.variant)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads and parses a flag file in either format; problems become one error.
fn load(file: &Path) -> anyhow::Result<FlagSet> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}: check the path", file.display()))?;
    parse(&file.display().to_string(), &text)
}

/// Parses the text of a flag file in either format, `path` naming it in errors;
/// every problem is shown at its line, in one error.
pub(crate) fn parse(path: &str, text: &str) -> anyhow::Result<FlagSet> {
    match parse_flags(path, text) {
        Ok((_, flags)) => Ok(flags),
        Err(FlagsError::Ripcord(error)) => {
            let shown: Vec<String> = error
                .problems()
                .iter()
                .map(|problem| render_problem(problem, text))
                .collect();
            Err(anyhow!(
                "{path} is not a valid flag file:\n{}",
                shown.join("\n")
            ))
        }
        Err(FlagsError::Unleash(error)) => Err(anyhow!(
            "{path} looks like {} (it starts with '{{') but cannot be read: {error}",
            FlagFormat::Unleash
        )),
    }
}

/// One line for people, e.g. `new-checkout: on, variant blue (string "blue")`.
fn describe(flag: &str, enabled: bool, variant: &VariantResult) -> String {
    if !enabled {
        return format!("{flag}: off");
    }
    if !variant.enabled {
        return format!("{flag}: on, no variant");
    }
    match &variant.payload {
        Some(payload) => format!(
            "{flag}: on, variant {} ({} {:?})",
            variant.name, payload.kind, payload.value
        ),
        None => format!("{flag}: on, variant {}", variant.name),
    }
}

/// An unknown flag, with the known flags closest to the name asked for.
fn unknown_flag(name: &str, file: &Path, flags: &FlagSet) -> anyhow::Error {
    const SHOWN: usize = 5;
    if flags.is_empty() {
        return anyhow!("unknown flag {name:?}: {} defines no flags", file.display());
    }
    let mut known: Vec<&str> = flags.names().collect();
    known.sort_by_key(|candidate| (edit_distance(name, candidate), *candidate));
    let more = known.len().saturating_sub(SHOWN);
    let mut list = known[..known.len().min(SHOWN)].join(", ");
    if more > 0 {
        list.push_str(&format!(" (and {more} more)"));
    }
    anyhow!(
        "unknown flag {name:?} in {}: known flags are {list}",
        file.display()
    )
}

/// Levenshtein distance in characters, to list likely typos first.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

/// A seed the operating system chose: std's hasher keys are random per process.
fn fresh_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_sort_first() {
        assert_eq!(edit_distance("new-chekout", "new-checkout"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
