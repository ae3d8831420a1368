//! The commands that read and steer deployments, against local mode (`--local URL`):
//! they call the JSON API that `ripcord up` serves on its control port, so they work
//! while it runs, from any shell. Commands send the local token from `--token`,
//! `RIPCORD_LOCAL_TOKEN`, or the `token` file in `ripcord up`'s state directory.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ripcord_core::domain::ServiceName;
use ripcord_core::dora::DoraReport;
use ripcord_core::history::Event;
use ripcord_core::time::Timestamp;
use ripcord_local::probe::{ProbeAnswer, send};
use serde_json::{Value, json};

use crate::ops::{cli_actor, render_dora, render_event};

/// How long to wait for local mode to answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where `ripcord up` keeps its token by default.
const DEFAULT_TOKEN_FILE: &str = ".ripcord/token";

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Sends one request to local mode's control port and reads its JSON answer; an
/// error answer becomes an error with its message.
pub(crate) async fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> anyhow::Result<Value> {
    let base = base.trim_end_matches('/');
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let answer: ProbeAnswer = send(base, method, path, &headers, body, TIMEOUT)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "local mode at {base} did not answer ({e}): is `ripcord up` running there?"
            )
        })?;
    let value: Value = serde_json::from_str(&answer.body).with_context(|| {
        format!(
            "{base}{path} answered {} with something other than JSON: is {base} local mode's control port?",
            answer.status
        )
    })?;
    if !answer.status.is_success() {
        let message = value["message"].as_str().unwrap_or("no message");
        bail!(
            "{message} ({} {})",
            answer.status.as_u16(),
            value["error"].as_str().unwrap_or("")
        );
    }
    Ok(value)
}

/// The token for a command that changes something: `--token` (or
/// `RIPCORD_LOCAL_TOKEN`), else the file `ripcord up` keeps it in.
pub(crate) fn local_token(token: Option<&str>, command: &str) -> anyhow::Result<String> {
    match token {
        Some(token) => Ok(token.to_string()),
        None => std::fs::read_to_string(Path::new(DEFAULT_TOKEN_FILE))
            .map(|t| t.trim().to_string())
            .map_err(|_| {
                anyhow::anyhow!(
                    "{command} needs local mode's token: pass --token, set RIPCORD_LOCAL_TOKEN, or run from the directory where `ripcord up` keeps {DEFAULT_TOKEN_FILE}"
                )
            }),
    }
}

/// `ripcord status [SERVICE] --local URL`.
pub fn status(base: &str, service: Option<&str>, as_json: bool) -> anyhow::Result<ExitCode> {
    let value = runtime()?.block_on(call(base, "GET", "/api/status", None, Vec::new()))?;
    let services: Vec<&Value> = value["services"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|s| service.is_none_or(|name| s["service"] == name))
                .collect()
        })
        .unwrap_or_default();
    if let Some(name) = service
        && services.is_empty()
    {
        bail!("local mode at {base} runs no service {name}");
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"services": services}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for s in services {
        let name = s["service"].as_str().unwrap_or("?");
        match s.get("active").filter(|a| !a.is_null()) {
            Some(d) => println!(
                "{name} {} ({}): {}, blue {}% / green {}%; deployment {}",
                d["version"].as_str().unwrap_or("?"),
                d["author"].as_str().unwrap_or("?"),
                d["state_text"].as_str().unwrap_or("?"),
                d["weights"]["blue"],
                d["weights"]["green"],
                d["deployment_id"].as_str().unwrap_or("?"),
            ),
            None => println!(
                "{name}: no active deployment; live on {}{}",
                s["live"].as_str().unwrap_or("?"),
                s["live_version"]
                    .as_str()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ripcord dora [--service S] [--days N] --local URL`: the figures local mode
/// computes over its store, printed as on the table.
pub fn dora(
    base: &str,
    service: Option<&ServiceName>,
    days: u32,
    as_json: bool,
) -> anyhow::Result<String> {
    let mut path = format!("/api/dora?days={days}");
    if let Some(service) = service {
        path.push_str(&format!("&service={service}"));
    }
    let value = runtime()?.block_on(call(base, "GET", &path, None, Vec::new()))?;
    let report: DoraReport = serde_json::from_value(value)
        .context("local mode sent DORA figures this build cannot read")?;
    render_dora(&report, as_json)
}

/// `ripcord history DEPLOYMENT --local URL`. Exits 1 when the hash chain is broken.
pub fn history(base: &str, id: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let path = format!("/api/deployments/{id}");
    let value = runtime()?.block_on(call(base, "GET", &path, None, Vec::new()))?;
    let verified = value["verified"] == true;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let events: Vec<Event> = serde_json::from_value(value["events"].clone())
            .context("local mode sent events this build cannot read")?;
        let start: Timestamp = serde_json::from_value(value["created_at"].clone())
            .context("local mode sent no creation time")?;
        let mut out = format!(
            "{} {} {} ({})\n",
            value["service"].as_str().unwrap_or("?"),
            value["version"].as_str().unwrap_or("?"),
            id,
            value["state"].as_str().unwrap_or("?")
        );
        for e in &events {
            let _ = writeln!(out, "{}", render_event(e, start));
        }
        if verified {
            let _ = write!(
                out,
                "history verified: {} events, hash chain intact",
                events.len()
            );
        } else {
            let _ = write!(
                out,
                "HISTORY TAMPERED: {}",
                value["chain_error"]
                    .as_str()
                    .unwrap_or("the chain does not verify")
            );
        }
        println!("{out}");
    }
    Ok(if verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `ripcord promote|pause|resume|abort|rollback|approve|reject DEPLOYMENT --local URL`:
/// the command is queued as the local user and a pass runs at once, so it has taken
/// effect when this returns.
pub fn command(
    base: &str,
    token: Option<&str>,
    id: &str,
    command: &str,
    reason: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let token = local_token(token, command)?;
    let body = json!({"reason": reason, "user": cli_user()})
        .to_string()
        .into_bytes();
    let path = format!("/api/deployments/{id}/{command}");
    let value = runtime()?.block_on(call(base, "POST", &path, Some(&token), body))?;
    let d = &value["deployment"];
    println!(
        "{command} applied to {} {}: {}, blue {}% / green {}%",
        d["service"].as_str().unwrap_or("?"),
        d["version"].as_str().unwrap_or("?"),
        d["state_text"].as_str().unwrap_or("?"),
        d["weights"]["blue"],
        d["weights"]["green"],
    );
    if let Some(errors) = value["errors"].as_array() {
        for error in errors {
            eprintln!("warning: {}", error.as_str().unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The user name commands are recorded under, as on the table.
fn cli_user() -> String {
    match cli_actor() {
        ripcord_core::history::Actor::Cli { user } => user,
        other => other.describe(),
    }
}

/// `ripcord deploy SERVICE --local URL`: `POST /api/deployments` with the webhook's
/// JSON; local mode starts the deployment and runs its first pass before answering.
pub(crate) fn deploy(base: &str, token: Option<&str>, body: &Value) -> anyhow::Result<Value> {
    let token = local_token(token, "deploy")?;
    runtime()?.block_on(call(
        base,
        "POST",
        "/api/deployments",
        Some(&token),
        body.to_string().into_bytes(),
    ))
}

/// One deployment and its events, as `GET /api/deployments/{id}` shows them, for
/// `ripcord watch`.
pub(crate) async fn deployment(base: &str, id: &str) -> anyhow::Result<Value> {
    call(
        base,
        "GET",
        &format!("/api/deployments/{id}"),
        None,
        Vec::new(),
    )
    .await
}
