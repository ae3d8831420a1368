//! `ripcord simulate`: run a deployment of one service's plan against the in-memory
//! ports on a simulated clock, and show the timeline and the outcome.
//!
//! Metrics are either synthetic (both slots healthy and alike) or replayed from a CSV
//! of recorded per-slot samples, which shows when and why the plan would roll back.
//! Simulated people approve and resume after `--approve-after`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use ripcord_core::config::{Config, ServiceSpec};
use ripcord_core::deployment::{CommandKind, PauseReason, State};
use ripcord_core::domain::{ServiceName, Slot, Weights};
use ripcord_core::history::Actor;
use ripcord_core::memory::{MetricSample, Sandbox};
use ripcord_core::ports::Clock;
use ripcord_core::time::{Timestamp, format_duration, parse_duration};
use serde::Serialize;

use crate::validate::{load, plan_summary};

/// The simulated clock starts here, so that output is the same on every run.
const START: Timestamp = Timestamp::from_millis(1_767_225_600_000); // 2026-01-01T00:00:00Z

/// A simulation never runs longer than this much simulated time.
const HORIZON: Duration = Duration::from_secs(7 * 86_400);

fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.0)
}

/// `ripcord simulate` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file.
    file: PathBuf,
    /// The service whose plan to run.
    #[arg(long)]
    service: String,
    /// Recorded per-slot metrics to replay: a CSV with the columns
    /// time,slot,requests,errors_5xx,p95_ms,p99_ms (time from the start, e.g. 90s;
    /// slot is canary or stable).
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Fire the service's first alarm this long after the start, e.g. 4m.
    #[arg(long, value_parser = duration_arg)]
    alarm_at: Option<Duration>,
    /// How long simulated people take to approve, resume or settle an inconclusive analysis.
    #[arg(long, value_parser = duration_arg, default_value = "0s")]
    approve_after: Duration,
    /// Simulated time between controller passes.
    #[arg(long, value_parser = duration_arg, default_value = "10s")]
    tick: Duration,
    /// Print the timeline and the outcome as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 unless the outcome is this: succeeded, rolled_back, aborted or failed.
    #[arg(long)]
    expect: Option<String>,
}

/// One recorded sample from the metrics CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvSample {
    /// Time from the start.
    pub offset: Duration,
    /// Whether it is the new slot's (`true`) or the stable slot's.
    pub canary: bool,
    /// Requests in the period.
    pub requests: u64,
    /// 5xx answers in the period.
    pub errors_5xx: u64,
    /// p95 latency, milliseconds.
    pub p95_ms: Option<f64>,
    /// p99 latency, milliseconds.
    pub p99_ms: Option<f64>,
}

/// Parses the metrics CSV. A first line starting with `time` is a header.
pub fn parse_metrics_csv(path: &str, text: &str) -> anyhow::Result<Vec<CsvSample>> {
    let mut samples = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = index + 1;
        if line.is_empty() || line.starts_with('#') || (index == 0 && line.starts_with("time")) {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 4 || fields.len() > 6 {
            bail!(
                "{path}:{at}: expected 4 to 6 fields (time,slot,requests,errors_5xx,p95_ms,p99_ms), found {}",
                fields.len()
            );
        }
        let offset = match fields[0].parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => {
                parse_duration(fields[0]).map_err(|e| anyhow::anyhow!("{path}:{at}: {}", e.0))?
            }
        };
        let canary = match fields[1] {
            "canary" | "new" => true,
            "stable" => false,
            other => bail!("{path}:{at}: slot {other:?} is not canary or stable"),
        };
        let count = |i: usize, name: &str| -> anyhow::Result<u64> {
            fields[i].parse().map_err(|_| {
                anyhow::anyhow!("{path}:{at}: {name} {:?} is not a whole number", fields[i])
            })
        };
        let millis = |i: usize, name: &str| -> anyhow::Result<Option<f64>> {
            match fields.get(i).copied() {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .map(Some)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{path}:{at}: {name} {v:?} is not a number of milliseconds")
                    }),
            }
        };
        let requests = count(2, "requests")?;
        let errors_5xx = count(3, "errors_5xx")?;
        if errors_5xx > requests {
            bail!("{path}:{at}: errors_5xx {errors_5xx} is more than requests {requests}");
        }
        samples.push(CsvSample {
            offset,
            canary,
            requests,
            errors_5xx,
            p95_ms: millis(4, "p95_ms")?,
            p99_ms: millis(5, "p99_ms")?,
        });
    }
    if samples.is_empty() {
        bail!("{path}: no samples found; expected lines like 60s,canary,120,3,85.0,140.0");
    }
    Ok(samples)
}

/// Options of one simulation.
#[derive(Debug, Clone)]
pub struct Options {
    /// Recorded samples; synthetic healthy metrics when `None`.
    pub metrics: Option<Vec<CsvSample>>,
    /// When to fire the first alarm.
    pub alarm_at: Option<Duration>,
    /// How long simulated people take.
    pub approve_after: Duration,
    /// Time between passes.
    pub tick: Duration,
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Seconds from the start.
    pub at_secs: f64,
    /// The state after the event.
    pub state: String,
    /// The step (1-based) the state is at, if any.
    pub step: Option<usize>,
    /// Percent of traffic on the stable slot after the event.
    pub stable_weight: u8,
    /// Percent of traffic on the new slot after the event.
    pub canary_weight: u8,
    /// The event kind.
    pub event: String,
    /// Who or what caused it.
    pub actor: String,
    /// Why.
    pub reason: String,
}

/// The result of a simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    /// The service.
    pub service: String,
    /// The plan in one line.
    pub plan: String,
    /// The stable slot.
    pub stable: Slot,
    /// The new slot.
    pub canary: Slot,
    /// The terminal state: succeeded, rolled_back, aborted or failed.
    pub outcome: String,
    /// Seconds from the start to the terminal state.
    pub duration_secs: f64,
    /// When a rollback started, in seconds from the start, and why.
    pub rollback: Option<RollbackSummary>,
    /// Every event, in order.
    pub timeline: Vec<Entry>,
}

/// When and why a simulated deployment rolled back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackSummary {
    /// Seconds from the start to the moment the failure was detected.
    pub at_secs: f64,
    /// Seconds from detection to traffic verified back on the stable slot.
    pub restore_secs: f64,
    /// What triggered it.
    pub trigger: String,
    /// Why.
    pub reason: String,
}

fn secs(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

/// Runs a simulation of `service` under `config`.
pub fn simulate(
    config: &Config,
    service: &ServiceName,
    options: &Options,
) -> anyhow::Result<Simulation> {
    let spec: ServiceSpec = config.service(service).cloned().with_context(|| {
        let known: Vec<&str> = config.services.keys().map(|s| s.as_str()).collect();
        format!(
            "no service {service} in the configuration; it has: {}",
            known.join(", ")
        )
    })?;
    let alarm = match options.alarm_at {
        Some(at) => match spec.alarms.names.first() {
            Some(name) => Some((name.clone(), START.plus(at))),
            None => bail!(
                "--alarm-at needs an alarm: add [services.{service}.alarms] names = [\"...\"] to the configuration"
            ),
        },
        None => None,
    };
    if options.tick.is_zero() {
        bail!("--tick must be longer than 0s, e.g. 10s");
    }
    let sandbox = Sandbox::new(config.clone(), START);
    let deployment = sandbox
        .deploy(service.as_str(), "candidate", "ci")
        .map_err(|e| anyhow::anyhow!("the simulated deployment could not start: {e}"))?;
    let id = deployment.id.clone();
    let (stable, canary) = (deployment.stable, deployment.canary());
    if let Some(samples) = &options.metrics {
        sandbox
            .world
            .metrics
            .record(samples.iter().map(|s| MetricSample {
                at: START.plus(s.offset),
                slot: if s.canary { canary } else { stable },
                requests: s.requests,
                errors_5xx: s.errors_5xx,
                latency_p95_ms: s.p95_ms,
                latency_p99_ms: s.p99_ms,
            }));
    }

    let mut alarm_fired = false;
    let mut last_sample = START;
    let mut waiting_since: Option<Timestamp> = None;
    let mut approvals_sent = 0u32;
    loop {
        let now = sandbox.clock.now();
        if now.since(START) > HORIZON {
            bail!(
                "the simulated deployment had not finished after {}; it is {}",
                format_duration(HORIZON),
                sandbox.deployment(&id).state
            );
        }
        if options.metrics.is_none() {
            while last_sample.plus(options.tick) <= now {
                let weights = sandbox
                    .world
                    .router
                    .current(&spec.name)
                    .unwrap_or(Weights::all_on(stable));
                sandbox.world.metrics.record(synthetic(
                    last_sample,
                    options.tick,
                    weights,
                    stable,
                    canary,
                ));
                last_sample = last_sample.plus(options.tick);
            }
        }
        if let Some((name, at)) = &alarm
            && !alarm_fired
            && now >= *at
        {
            sandbox.world.alarms.fire(
                name,
                &format!(
                    "simulated: in ALARM from +{}",
                    format_duration(at.since(START))
                ),
            );
            alarm_fired = true;
        }
        let report = sandbox.pass(&id);
        let current = sandbox.deployment(&id);
        if current.state.is_terminal() {
            break;
        }
        let mut next = report
            .wake_at
            .filter(|w| *w > now)
            .unwrap_or(now.plus(options.tick))
            .min(now.plus(options.tick));
        if let State::Paused { step, reason, .. } = current.state
            && reason != PauseReason::Manual
        {
            let since = *waiting_since.get_or_insert(now);
            let due = since.plus(options.approve_after);
            if now >= due {
                waiting_since = None;
                if reason == PauseReason::AwaitingApproval {
                    let policy = &current.spec.approval;
                    for _ in current.approvals.len() as u32..policy.quorum {
                        approvals_sent += 1;
                        sandbox.command(
                            &id,
                            approver(policy, approvals_sent),
                            CommandKind::Approve { step },
                        );
                    }
                } else {
                    sandbox.command(
                        &id,
                        approver(&current.spec.approval, 0),
                        CommandKind::Resume,
                    );
                }
                continue;
            }
            next = next.min(due);
        } else {
            waiting_since = None;
        }
        if let Some((_, at)) = &alarm
            && !alarm_fired
            && *at > now
        {
            next = next.min(*at);
        }
        sandbox.clock.set(next);
    }

    let done = sandbox.deployment(&id);
    let events = sandbox.store.events_of(&id);
    let timeline = events
        .iter()
        .map(|e| {
            let weights = e.weights_after.unwrap_or(Weights::all_on(stable));
            Entry {
                at_secs: secs(e.at.since(START)),
                state: e.state.name().to_string(),
                step: e
                    .state
                    .step()
                    .filter(|s| *s < spec.plan.steps.len())
                    .map(|s| s + 1),
                stable_weight: weights.of(stable).get(),
                canary_weight: weights.of(canary).get(),
                event: e.kind.name().to_string(),
                actor: e.actor.describe(),
                reason: e.reason.clone(),
            }
        })
        .collect();
    let finished = done.finished_at.unwrap_or(done.created_at);
    let rollback = done.rollback.as_ref().map(|r| RollbackSummary {
        at_secs: secs(r.started_at.since(START)),
        restore_secs: secs(finished.since(r.started_at)),
        trigger: r.trigger.describe(),
        reason: r.reason.clone(),
    });
    Ok(Simulation {
        service: service.to_string(),
        plan: plan_summary(&spec),
        stable,
        canary,
        outcome: done.state.name().to_string(),
        duration_secs: secs(finished.since(START)),
        rollback,
        timeline,
    })
}

/// A simulated person allowed to approve under `policy`.
fn approver(policy: &ripcord_core::config::ApprovalPolicy, n: u32) -> Actor {
    let user_id = match policy.users.get(n.saturating_sub(1) as usize) {
        Some(id) if policy.roles.is_empty() => id.clone(),
        _ => format!("simulated-approver-{n}"),
    };
    Actor::Chat {
        user_id,
        name: format!("simulated approver {n}"),
        roles: policy.roles.first().cloned().into_iter().collect(),
    }
}

/// Healthy, alike traffic on both slots for one period, split by the weights served.
fn synthetic(
    at: Timestamp,
    period: Duration,
    weights: Weights,
    stable: Slot,
    canary: Slot,
) -> Vec<MetricSample> {
    let total = (period.as_secs_f64() * 20.0).round().max(1.0);
    // The same small, deterministic wobble on both slots, so the judge sees two
    // samples from one distribution.
    let wobble = ((at.as_millis() / 1000) % 7) as f64;
    [stable, canary]
        .into_iter()
        .map(|slot| {
            let requests = (total * f64::from(weights.of(slot).get()) / 100.0).round() as u64;
            MetricSample {
                at,
                slot,
                requests,
                errors_5xx: requests / 1000,
                latency_p95_ms: (requests > 0).then_some(80.0 + wobble),
                latency_p99_ms: (requests > 0).then_some(120.0 + 2.0 * wobble),
            }
        })
        .collect()
}

fn clock(at_secs: f64) -> String {
    format!(
        "+{}",
        format_duration(Duration::from_millis((at_secs * 1000.0) as u64))
    )
}

/// Renders the timeline and the outcome for a person.
pub fn render_text(sim: &Simulation, metrics_source: &str) -> String {
    let mut out = format!(
        "Simulating {}: {}\nstable slot {}, new slot {}; {metrics_source}\n\n",
        sim.service, sim.plan, sim.stable, sim.canary
    );
    out.push_str(&format!(
        "{:>9}  {:<14} {:>4}  {:>6} {:>4}  {:<18} {}\n",
        "TIME", "STATE", "STEP", "STABLE", "NEW", "EVENT", "DETAIL"
    ));
    for e in &sim.timeline {
        out.push_str(&format!(
            "{:>9}  {:<14} {:>4}  {:>5}% {:>3}%  {:<18} {}\n",
            clock(e.at_secs),
            e.state,
            e.step.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            e.stable_weight,
            e.canary_weight,
            e.event,
            e.reason
        ));
    }
    out.push('\n');
    match &sim.rollback {
        Some(r) => out.push_str(&format!(
            "Outcome: {} at {} by {}; traffic was back on {} {} later.\nWhy: {}\n",
            sim.outcome.replace('_', " "),
            clock(r.at_secs),
            r.trigger,
            sim.stable,
            format_duration(Duration::from_millis((r.restore_secs * 1000.0) as u64)),
            r.reason
        )),
        None => out.push_str(&format!(
            "Outcome: {} after {}.\n",
            sim.outcome.replace('_', " "),
            format_duration(Duration::from_millis((sim.duration_secs * 1000.0) as u64))
        )),
    }
    out
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let config = load(&args.file)?;
    let service =
        ServiceName::new(args.service.clone()).map_err(|e| anyhow::anyhow!("--service: {e}"))?;
    let metrics = match &args.metrics {
        Some(path) => Some(read_metrics(path)?),
        None => None,
    };
    if let Some(expect) = &args.expect
        && !["succeeded", "rolled_back", "aborted", "failed"].contains(&expect.as_str())
    {
        bail!(
            "--expect {expect:?} is not an outcome: use succeeded, rolled_back, aborted or failed"
        );
    }
    let source = match &args.metrics {
        Some(path) => format!("metrics replayed from {}", path.display()),
        None => "synthetic healthy metrics".to_string(),
    };
    let options = Options {
        metrics,
        alarm_at: args.alarm_at,
        approve_after: args.approve_after,
        tick: args.tick,
    };
    let sim = simulate(&config, &service, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sim)?);
    } else {
        print!("{}", render_text(&sim, &source));
    }
    match &args.expect {
        Some(expect) if *expect != sim.outcome => {
            eprintln!(
                "error: expected the outcome {expect}, but the deployment {}",
                sim.outcome
            );
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn read_metrics(path: &Path) -> anyhow::Result<Vec<CsvSample>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}: check the path", path.display()))?;
    parse_metrics_csv(&path.display().to_string(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_csv_reads_seconds_durations_and_blank_latencies() {
        let text = "time,slot,requests,errors_5xx,p95_ms,p99_ms\n# a comment\n30,stable,100,1,80,120\n1m30s,canary,50,0,,\n";
        let samples = parse_metrics_csv("m.csv", text).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].offset, Duration::from_secs(30));
        assert!(!samples[0].canary);
        assert_eq!(samples[0].p99_ms, Some(120.0));
        assert_eq!(samples[1].offset, Duration::from_secs(90));
        assert!(samples[1].canary);
        assert_eq!(samples[1].p95_ms, None);
    }

    #[test]
    fn metrics_csv_refuses_what_it_cannot_use() {
        let table = [
            (
                "30s,blue,1,0",
                "m.csv:1: slot \"blue\" is not canary or stable",
            ),
            (
                "30s,canary,1,2",
                "m.csv:1: errors_5xx 2 is more than requests 1",
            ),
            ("30s,canary", "m.csv:1: expected 4 to 6 fields"),
            ("soon,canary,1,0", "m.csv:1: \"soon\" is not a duration"),
            (
                "30s,canary,1,0,-5",
                "m.csv:1: p95_ms \"-5\" is not a number of milliseconds",
            ),
            ("time,slot,requests,errors_5xx\n", "m.csv: no samples found"),
        ];
        for (text, expected) in table {
            let error = parse_metrics_csv("m.csv", text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }
}
