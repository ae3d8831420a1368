//! The commands that read and steer stored state: `apply`, `status`, `history`, `dora`
//! and the deployment commands (`promote`, `pause`, `resume`, `abort`, `rollback`,
//! `approve`, `reject`).
//!
//! Each is written against the core's `Store` port, so the same code serves the
//! DynamoDB table and the in-memory store of the tests; with `--local` they go to local
//! mode's JSON API instead (`local_client`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use ripcord_core::config::parse_config;
use ripcord_core::deployment::{CommandKind, Deployment, PauseReason, State};
use ripcord_core::domain::{DeploymentId, ServiceName, Slot};
use ripcord_core::dora::{DoraReport, render_text};
use ripcord_core::history::{Actor, Event, verify_history};
use ripcord_core::ports::{Store, StoreError};
use ripcord_core::time::{Timestamp, format_duration};
use serde_json::json;

use crate::validate::render_problem;

/// `ripcord apply FILE`: checks the configuration and stores it as the next version.
/// Returns what to print.
pub async fn apply(store: &dyn Store, file: &Path, now: Timestamp) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}: check the path", file.display()))?;
    let path = file.display().to_string();
    if let Err(error) = parse_config(&path, &text) {
        let shown: Vec<String> = error
            .problems()
            .iter()
            .map(|p| render_problem(p, &text))
            .collect();
        bail!(
            "{path} is not valid; nothing was applied:\n{}",
            shown.join("\n")
        );
    }
    let latest = store.latest_config().await?;
    let previous = latest.as_ref().map_or(0, |c| c.version);
    if latest.is_some_and(|c| c.text == text) {
        return Ok(format!(
            "{path} is already applied as version {previous}; nothing changed"
        ));
    }
    match store.put_config(&text, previous, now).await {
        Ok(stored) => Ok(format!(
            "applied {path} as version {} (running deployments keep the configuration they started with)",
            stored.version
        )),
        Err(StoreError::ConfigConflict { .. }) => bail!(
            "someone applied another configuration at the same moment; run `ripcord apply {path}` again"
        ),
        Err(e) => Err(e.into()),
    }
}

fn weights_line(d: &Deployment) -> String {
    let canary = d.canary();
    format!(
        "{} {}% / {} {}%",
        d.stable,
        d.desired.of(d.stable).get(),
        canary,
        d.desired.of(canary).get()
    )
}

/// `ripcord status [SERVICE]`: the active deployments, or one service's.
pub async fn status(
    store: &dyn Store,
    service: Option<&ServiceName>,
    as_json: bool,
) -> anyhow::Result<String> {
    let mut active = store.active_deployments().await?;
    if let Some(service) = service {
        active.retain(|d| &d.service == service);
    }
    active.sort_by(|a, b| a.service.cmp(&b.service));
    if as_json {
        let list: Vec<_> = active
            .iter()
            .map(|d| {
                json!({
                    "deployment_id": d.id.as_str(),
                    "service": d.service.as_str(),
                    "version": d.release.version,
                    "state": d.state.name(),
                    "step": d.state.step().map(|s| s + 1),
                    "stable": d.stable,
                    "canary": d.canary(),
                    "weights": d.desired,
                    "approvals": d.approvals.iter().map(|a| &a.name).collect::<Vec<_>>(),
                    "created_at": d.created_at,
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&json!({"active": list}))?);
    }
    if active.is_empty() {
        return Ok(match service {
            Some(s) => format!("{s}: no active deployment"),
            None => "no active deployment".to_string(),
        });
    }
    let mut out = String::new();
    for d in &active {
        let _ = writeln!(
            out,
            "{} {} ({}): {}, {}; deployment {}",
            d.service,
            d.release.version,
            d.release.author,
            d.state,
            weights_line(d),
            d.id
        );
    }
    Ok(out.trim_end().to_string())
}

/// One event as a line of `ripcord history`.
pub fn render_event(e: &Event, start: Timestamp) -> String {
    let weights = e
        .weights_after
        .map(|w| {
            format!(
                "blue {:>3}% green {:>3}%",
                w.of(Slot::Blue).get(),
                w.of(Slot::Green).get()
            )
        })
        .unwrap_or_default();
    format!(
        "{:>4} {} +{:<8} {:<14} {:<18} {:<22} {}",
        e.seq,
        e.at,
        format_duration(e.at.since(start)),
        e.state.name(),
        e.kind.name(),
        weights,
        e.reason
    )
}

/// `ripcord history DEPLOYMENT`: every event, and whether the hash chain holds (the
/// second value is `false` when it does not).
pub async fn history(
    store: &dyn Store,
    id: &DeploymentId,
    as_json: bool,
) -> anyhow::Result<(String, bool)> {
    let Some(d) = store.deployment(id).await? else {
        bail!("no deployment {id}; `ripcord status` lists the active ones");
    };
    let events = store.events(id).await?;
    let chain = verify_history(&events, Some(&d));
    let intact = chain.is_ok();
    if as_json {
        let out = serde_json::to_string_pretty(&json!({
            "deployment_id": id.as_str(),
            "service": d.service.as_str(),
            "state": d.state.name(),
            "verified": chain.is_ok(),
            "chain_error": chain.as_ref().err().map(|e| e.to_string()),
            "events": events,
        }))?;
        return Ok((out, intact));
    }
    let mut out = format!(
        "{} {} {} ({})\n",
        d.service, d.release.version, d.id, d.state
    );
    for e in &events {
        let _ = writeln!(out, "{}", render_event(e, d.created_at));
    }
    match chain {
        Ok(()) => {
            let _ = write!(
                out,
                "history verified: {} events, hash chain intact",
                events.len()
            );
        }
        Err(e) => {
            let _ = write!(out, "HISTORY TAMPERED: {e}");
        }
    }
    Ok((out, intact))
}

/// `ripcord dora [--service S] [--days N]`: DORA figures over the last N days.
pub async fn dora_report(
    store: &dyn Store,
    service: Option<&ServiceName>,
    days: u32,
    now: Timestamp,
    as_json: bool,
) -> anyhow::Result<String> {
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let report = ripcord_api::control::dora_report(store, service, days, now).await?;
    render_dora(&report, as_json)
}

/// What `ripcord dora` prints for a report.
pub fn render_dora(report: &DoraReport, as_json: bool) -> anyhow::Result<String> {
    if as_json {
        return Ok(serde_json::to_string_pretty(report)?);
    }
    Ok(render_text(report))
}

/// Who the CLI acts as: the local user name.
pub fn cli_actor() -> Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    Actor::Cli { user }
}

/// What a deployment command asks for: a command as it is, or an answer to the
/// approval the deployment waits on, whose step is read from the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `promote`, `pause`, `resume`, `abort` or `rollback`.
    Fixed(CommandKind),
    /// `approve`: counts toward the quorum of the approval step it waits on.
    Approve,
    /// `reject`: ends the deployment at the approval step it waits on.
    Reject,
}

impl Verb {
    /// The verb as typed, e.g. `approve`.
    pub fn name(&self) -> &'static str {
        match self {
            Verb::Fixed(kind) => kind.name(),
            Verb::Approve => "approve",
            Verb::Reject => "reject",
        }
    }

    /// The command to queue for `d`, or why there is none: an approval answers the
    /// step `d` waits on, and there must be one. The engine then applies its own rules
    /// (the author may not approve, an approver counts once, the quorum).
    pub fn command_for(&self, d: &Deployment) -> anyhow::Result<CommandKind> {
        let waiting = match d.state {
            State::Paused {
                step,
                reason: PauseReason::AwaitingApproval,
                ..
            } => Some(step),
            _ => None,
        };
        match (self, waiting) {
            (Verb::Fixed(kind), _) => Ok(kind.clone()),
            (Verb::Approve, Some(step)) => Ok(CommandKind::Approve { step }),
            (Verb::Reject, Some(step)) => Ok(CommandKind::Reject { step }),
            (verb, None) => bail!(
                "deployment {} is {}, not waiting for an approval; nothing to {}",
                d.id,
                d.state,
                verb.name()
            ),
        }
    }
}

/// Queues a command for a deployment, as the CLI user. Returns what to print.
pub async fn command(
    store: &dyn Store,
    id: &DeploymentId,
    verb: &Verb,
    reason: Option<String>,
    now: Timestamp,
) -> anyhow::Result<String> {
    let Some(d) = store.deployment(id).await? else {
        bail!("no deployment {id}; `ripcord status` lists the active ones");
    };
    if !d.is_active() {
        bail!(
            "deployment {id} has already {}; nothing to {}",
            d.state.name(),
            verb.name()
        );
    }
    let kind = verb.command_for(&d)?;
    let queued = store
        .enqueue_command(id, cli_actor(), kind.clone(), reason, now)
        .await?;
    let step = kind_step(&kind)
        .map(|step| format!(" at step {}", step + 1))
        .unwrap_or_default();
    Ok(format!(
        "{}{step} queued for {} {} (command {})",
        verb.name(),
        d.service,
        d.release.version,
        queued.seq
    ))
}

fn kind_step(kind: &CommandKind) -> Option<usize> {
    match kind {
        CommandKind::Approve { step } | CommandKind::Reject { step } => Some(*step),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::memory::{Sandbox, block_on, test_service};
    use std::time::Duration;

    const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

    #[test]
    fn apply_stores_versions_and_refuses_a_bad_file() {
        let sb = Sandbox::single(test_service("web", vec![]), T0);
        let dir = std::env::temp_dir().join(format!("ripcord-ops-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, include_str!("../../../examples/canary.toml")).unwrap();
        let out = block_on(apply(&sb.store, &good, T0)).unwrap();
        assert!(out.contains("version 1"), "{out}");
        let same = block_on(apply(&sb.store, &good, T0)).unwrap();
        assert!(same.contains("already applied as version 1"), "{same}");
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[services.web]\nstrategy = \"sideways\"\n").unwrap();
        let err = block_on(apply(&sb.store, &bad, T0))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nothing was applied") && err.contains(":2:"),
            "{err}"
        );
        assert_eq!(
            block_on(sb.store.latest_config()).unwrap().unwrap().version,
            1
        );
    }

    #[test]
    fn status_history_and_commands_read_the_store() {
        let sb = Sandbox::single(
            test_service(
                "web",
                vec![ripcord_core::config::Step::SetWeight(
                    ripcord_core::domain::Weight::new(100).unwrap(),
                )],
            ),
            T0,
        );
        let d = sb.deploy("web", "v43", "octocat").unwrap();
        sb.pass(&d.id);
        let text = block_on(status(&sb.store, None, false)).unwrap();
        assert!(
            text.contains("web v43 (octocat): baking") && text.contains("green 100%"),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&block_on(status(&sb.store, None, true)).unwrap()).unwrap();
        assert_eq!(json["active"][0]["state"], "baking");
        let other = ServiceName::new("api").unwrap();
        assert_eq!(
            block_on(status(&sb.store, Some(&other), false)).unwrap(),
            "api: no active deployment"
        );

        let queued = block_on(command(
            &sb.store,
            &d.id,
            &Verb::Fixed(CommandKind::Rollback),
            Some("looks off".into()),
            T0,
        ))
        .unwrap();
        assert!(
            queued.starts_with("rollback queued for web v43"),
            "{queued}"
        );
        sb.pass(&d.id);
        let (text, intact) = block_on(history(&sb.store, &d.id, false)).unwrap();
        assert!(intact);
        assert!(
            text.contains("rollback_started") && text.ends_with("hash chain intact"),
            "{text}"
        );
        let again = block_on(command(
            &sb.store,
            &d.id,
            &Verb::Fixed(CommandKind::Promote),
            None,
            T0,
        ))
        .unwrap_err()
        .to_string();
        assert!(again.contains("has already rolled_back"), "{again}");
        let missing = DeploymentId::new("nope").unwrap();
        assert!(block_on(history(&sb.store, &missing, false)).is_err());
    }

    #[test]
    fn dora_reads_the_window() {
        let sb = Sandbox::single(
            test_service(
                "web",
                vec![ripcord_core::config::Step::SetWeight(
                    ripcord_core::domain::Weight::new(100).unwrap(),
                )],
            ),
            T0,
        );
        let d = sb.deploy("web", "v1", "octocat").unwrap();
        sb.pass(&d.id);
        sb.clock.advance(Duration::from_secs(120));
        sb.pass(&d.id);
        let now = T0.plus(Duration::from_secs(3600));
        let json: serde_json::Value =
            serde_json::from_str(&block_on(dora_report(&sb.store, None, 7, now, true)).unwrap())
                .unwrap();
        assert_eq!(json["succeeded"], 1);
        assert!(block_on(dora_report(&sb.store, None, 0, now, false)).is_err());
    }
}

/// Where the stored state is: the DynamoDB table, or local mode's control port.
#[derive(Debug, Clone, clap::Args)]
pub struct TableArg {
    /// The DynamoDB table (standard AWS credentials; AWS_ENDPOINT_URL is honoured).
    #[arg(long, env = "RIPCORD_TABLE", required_unless_present = "local")]
    pub table: Option<String>,
    /// Local mode's control port instead of a table, e.g. http://127.0.0.1:7070.
    #[arg(long, value_name = "URL")]
    pub local: Option<String>,
    /// Local mode's token, for commands (default: the file .ripcord/token).
    #[arg(long, env = "RIPCORD_LOCAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl TableArg {
    /// The table's name.
    pub(crate) fn name(&self) -> &str {
        // clap requires --table unless --local is given, and --local is handled first.
        self.table.as_deref().unwrap_or_default()
    }
}

/// Arguments of the deployment commands.
#[derive(Debug, Clone, clap::Args)]
pub struct CommandArgs {
    /// The deployment id (`ripcord status` lists them).
    pub deployment: String,
    /// Why, recorded in the history.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub table: TableArg,
}

/// The system clock, for the command line.
pub(crate) struct SystemClock;

impl ripcord_core::ports::Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Timestamp::from_millis(millis)
    }
}

pub(crate) fn now() -> Timestamp {
    use ripcord_core::ports::Clock;
    SystemClock.now()
}

/// Prints notifications of a pass the command line runs, so the user sees what it did.
struct PrintNotifier;

impl ripcord_core::ports::Notifier for PrintNotifier {
    fn notify<'a>(
        &'a self,
        notification: &'a ripcord_core::engine::Notification,
    ) -> ripcord_core::ports::BoxFuture<'a, Result<(), ripcord_core::ports::PortError>> {
        Box::pin(async move {
            eprintln!("{}", notification.text);
            Ok(())
        })
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) async fn table_store(table: &TableArg) -> ripcord_aws::DynamoStore {
    let config = ripcord_aws::sdk_config().await;
    ripcord_aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        table.name().to_string(),
    )
}

fn service_arg(service: Option<&str>) -> anyhow::Result<Option<ServiceName>> {
    service
        .map(|s| ServiceName::new(s).map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()
}

pub(crate) fn deployment_arg(id: &str) -> anyhow::Result<DeploymentId> {
    DeploymentId::new(id).map_err(|e| anyhow::anyhow!("{e}"))
}

fn print(out: String) -> std::process::ExitCode {
    println!("{out}");
    std::process::ExitCode::SUCCESS
}

/// `ripcord apply FILE --table T`.
pub fn run_apply(table: &TableArg, file: &Path) -> anyhow::Result<std::process::ExitCode> {
    if table.local.is_some() {
        bail!(
            "local mode runs the file it was started with: restart `ripcord up -c {}` to apply it",
            file.display()
        );
    }
    runtime()?.block_on(async {
        let store = table_store(table).await;
        apply(&store, file, now()).await.map(print)
    })
}

/// `ripcord status [SERVICE] --table T`.
pub fn run_status(
    table: &TableArg,
    service: Option<&str>,
    as_json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    if let Some(base) = &table.local {
        return crate::local_client::status(base, service, as_json);
    }
    let service = service_arg(service)?;
    runtime()?.block_on(async {
        let store = table_store(table).await;
        status(&store, service.as_ref(), as_json).await.map(print)
    })
}

/// `ripcord history DEPLOYMENT --table T`. Exits 1 when the hash chain is broken.
pub fn run_history(
    table: &TableArg,
    id: &str,
    as_json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    if let Some(base) = &table.local {
        return crate::local_client::history(base, id, as_json);
    }
    let id = deployment_arg(id)?;
    runtime()?.block_on(async {
        let store = table_store(table).await;
        let (out, intact) = history(&store, &id, as_json).await?;
        println!("{out}");
        Ok(if intact {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        })
    })
}

/// `ripcord dora [--service S] [--days N] --table T`.
pub fn run_dora(
    table: &TableArg,
    service: Option<&str>,
    days: u32,
    as_json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let service = service_arg(service)?;
    if let Some(base) = &table.local {
        if days == 0 {
            bail!("--days must be at least 1");
        }
        return crate::local_client::dora(base, service.as_ref(), days, as_json).map(print);
    }
    runtime()?.block_on(async {
        let store = table_store(table).await;
        dora_report(&store, service.as_ref(), days, now(), as_json)
            .await
            .map(print)
    })
}

/// `ripcord promote|pause|resume|abort|rollback|approve|reject DEPLOYMENT --table T`:
/// queues the command, then runs one pass at once so that it takes effect now rather
/// than at the controller's next tick.
pub fn run_command(args: &CommandArgs, verb: Verb) -> anyhow::Result<std::process::ExitCode> {
    if let Some(base) = &args.table.local {
        return crate::local_client::command(
            base,
            args.table.token.as_deref(),
            &args.deployment,
            verb.name(),
            args.reason.as_deref(),
        );
    }
    let id = deployment_arg(&args.deployment)?;
    runtime()?.block_on(async {
        let aws = AwsDriver::new(&args.table).await;
        let queued = command(&aws.store, &id, &verb, args.reason.clone(), now()).await?;
        println!("{queued}");
        let report = aws.driver().reconcile(&id).await?;
        for error in &report.errors {
            eprintln!("warning: {error}");
        }
        let d = aws
            .store
            .deployment(&id)
            .await?
            .context("the deployment disappeared")?;
        println!(
            "{} {}: {}, {}",
            d.service,
            d.release.version,
            d.state,
            weights_line(&d)
        );
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// The driver's collaborators on AWS, as the controller builds them, for the commands
/// that run a pass themselves (`promote`... and `deploy`). Smoke checks are left to
/// the controller.
pub(crate) struct AwsDriver {
    /// The table.
    pub store: ripcord_aws::DynamoStore,
    providers: ripcord_aws::AwsProviders,
}

impl AwsDriver {
    /// Builds the store and the adapters from the standard AWS settings.
    pub async fn new(table: &TableArg) -> AwsDriver {
        let config = ripcord_aws::sdk_config().await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        let store = ripcord_aws::DynamoStore::new(client.clone(), table.name().to_string());
        let flags = ripcord_core::flag_ramp::FlagRouter::new(
            std::sync::Arc::new(ripcord_aws::DynamoFlagStore::new(
                client.clone(),
                table.name().to_string(),
            )),
            std::sync::Arc::new(ripcord_aws::DynamoStore::new(
                client,
                table.name().to_string(),
            )),
            std::sync::Arc::new(SystemClock),
        );
        let providers =
            ripcord_aws::AwsProviders::new(&config, Box::new(ripcord_aws::SmokeChecksElsewhere))
                .with_flag_router(flags);
        AwsDriver { store, providers }
    }

    /// A driver over them, on the system clock; notifications go to stderr.
    pub fn driver(&self) -> ripcord_core::driver::Driver<'_> {
        ripcord_core::driver::Driver {
            providers: &self.providers,
            store: &self.store,
            notifier: &PrintNotifier,
            clock: &SystemClock,
        }
    }
}
