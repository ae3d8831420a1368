//! `ripcord deploy SERVICE --version V`: starts a deployment exactly as CI's webhook
//! does, from a shell or a CI job.
//!
//! The request is read with the webhook's own rules and started through the same
//! function (`ripcord_api::webhook::start_deployment`), so it is refused in the same
//! cases (unknown service, the live slot, a deployment already active) and writes
//! nothing then. Against the table it then runs the first pass itself, as the webhook
//! function does; against local mode it calls the token-protected
//! `POST /api/deployments`, which does the same there. No webhook secret is needed:
//! AWS credentials, or local mode's token, are the authority.
//!
//! Standard output is the deployment id alone (or one JSON object with `--json`), so
//! that `id=$(ripcord deploy ...)` and `ripcord deploy ... && ripcord watch ...` work.

use std::process::ExitCode;

use anyhow::bail;
use ripcord_api::webhook::new_deployment_id;
use ripcord_core::ports::Store;
use serde_json::{Value, json};

use crate::ops::{AwsDriver, TableArg, cli_actor, now, runtime};

/// Arguments of `ripcord deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The service, as ripcord.toml names it.
    pub service: String,
    /// The version label of what is on the idle slot, e.g. v43.
    #[arg(long)]
    pub version: String,
    /// The commit it was built from (default: `git rev-parse HEAD` where this runs).
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    /// When that commit was made, in RFC 3339, for the lead time (default: git's
    /// commit time when git knows the commit; otherwise none is recorded).
    #[arg(long, value_name = "TIME")]
    pub committed_at: Option<String>,
    /// The slot the new version is on (blue or green); it must be the idle one.
    #[arg(long, value_name = "SLOT")]
    pub slot: Option<String>,
    /// Who made the change, for the rule that an author may not approve (default:
    /// the local user).
    #[arg(long)]
    pub author: Option<String>,
    /// A unique id for this request: the same id again gets the same deployment
    /// instead of a second one, so a retried CI job is safe (default: a new id).
    #[arg(long, value_name = "ID")]
    pub delivery: Option<String>,
    #[command(flatten)]
    pub table: TableArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ripcord deploy`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let payload = payload(args)?;
    // The webhook's own reading of the request: the same fields, the same errors.
    let request = ripcord_api::webhook::deploy_request(&payload).map_err(|e| {
        anyhow::anyhow!(
            "{} (check --{})",
            e.message,
            e.field.as_deref().unwrap_or("arguments").replace('_', "-")
        )
    })?;
    let answer = match &args.table.local {
        Some(base) => {
            let mut body = payload.clone();
            body["delivery"] = json!(args.delivery);
            crate::local_client::deploy(base, args.table.token.as_deref(), &body)?
        }
        None => runtime()?.block_on(async {
            let aws = AwsDriver::new(&args.table).await;
            let driver = aws.driver();
            let key = match &args.delivery {
                Some(delivery) => format!("deploy:{delivery}"),
                None => format!("deploy:{}", new_deployment_id(now())),
            };
            let new_id = || new_deployment_id(now());
            let started = ripcord_api::webhook::start_deployment(driver, &new_id, request, &key)
                .await
                .map_err(|e| anyhow::anyhow!("{} ({} {})", e.message, e.status.as_u16(), e.code))?;
            let mut errors = Vec::new();
            if started.created {
                // The first pass, as the webhook function runs it before answering CI.
                match driver.reconcile(&started.id).await {
                    Ok(report) => errors = report.errors,
                    Err(e) => errors.push(format!("{e}; the controller's next pass retries")),
                }
            }
            let Some(d) = aws.store.deployment(&started.id).await? else {
                bail!("deployment {} disappeared from the table", started.id);
            };
            Ok(json!({
                "deployment_id": started.id.as_str(),
                "created": started.created,
                "deployment": ripcord_api::control::deployment_json(&d),
                "errors": errors,
            }))
        })?,
    };
    print_answer(&answer, args.json)
}

fn print_answer(answer: &Value, as_json: bool) -> anyhow::Result<ExitCode> {
    let d = &answer["deployment"];
    for error in answer["errors"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", error.as_str().unwrap_or_default());
    }
    if as_json {
        let out = json!({
            "deployment_id": answer["deployment_id"],
            "created": answer["created"],
            "service": d["service"],
            "version": d["version"],
            "state": d["state"],
            "weights": d["weights"],
        });
        println!("{out}");
    } else {
        let started = if answer["created"] == true {
            "started"
        } else {
            "already started by this delivery id"
        };
        eprintln!(
            "{} {} {started}: {}, blue {}% / green {}%",
            d["service"].as_str().unwrap_or("?"),
            d["version"].as_str().unwrap_or("?"),
            d["state_text"].as_str().unwrap_or("?"),
            d["weights"]["blue"],
            d["weights"]["green"],
        );
        println!("{}", answer["deployment_id"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// The webhook's JSON for these arguments, with git's answers for what is not given.
fn payload(args: &Args) -> anyhow::Result<Value> {
    let commit = match &args.commit {
        Some(commit) => commit.clone(),
        None => match git(&["rev-parse", "HEAD"]) {
            Some(head) => head,
            None => {
                bail!("give --commit SHA: this is not a git checkout, so the commit is unknown")
            }
        },
    };
    let committed_at = match &args.committed_at {
        Some(time) => Some(time.clone()),
        None => git(&["show", "-s", "--format=%cI", &commit]),
    };
    let author = match &args.author {
        Some(author) => author.clone(),
        None => match cli_actor() {
            ripcord_core::history::Actor::Cli { user } => user,
            other => other.describe(),
        },
    };
    Ok(json!({
        "service": args.service,
        "version": args.version,
        "commit": commit,
        "committed_at": committed_at,
        "author": author,
        "slot": args.slot,
    }))
}

/// One line of git's output, or `None` when git is missing or refuses.
fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_string())
}
