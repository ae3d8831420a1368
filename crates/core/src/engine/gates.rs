//! Gates: alarms and metric checks, armed whenever the new slot takes traffic; the
//! health and smoke gates before traffic moves; and analysis at `analysis` steps.

use std::time::Duration;

use super::{GATE_POLL, NotificationKind, Working, progress, rollback, rollback_end_for};
use crate::deployment::{Deployment, PauseReason, RollbackEnd, State};
use crate::domain::Slot;
use crate::history::{Actor, EventKind};
use crate::judge::{self, CheckOutcome, Outcome};
use crate::observation::HealthReport;

/// Whether the new slot is meant to take user traffic in this state.
pub(crate) fn canary_takes_traffic(d: &Deployment) -> bool {
    matches!(
        d.state,
        State::Progressing { .. } | State::Paused { .. } | State::Baking { .. }
    ) && d.canary_weight() > 0
}

/// The alarm fast path: an alarm outside the baseline rolls back at once. A baseline
/// alarm that has cleared leaves the baseline, so that firing again counts.
pub(crate) fn watch_alarms(w: &mut Working<'_>) {
    let Some(report) = w.obs.alarms.as_ref() else {
        return;
    };
    let Some(baseline) = w.d.baseline.clone() else {
        // The baseline is taken when the deployment leaves `Pending`.
        return;
    };
    for alarm in baseline.keys() {
        if !report.firing.contains_key(alarm) {
            if let Some(b) = w.d.baseline.as_mut() {
                b.remove(alarm);
            }
            w.record(
                Actor::Alarm {
                    name: alarm.clone(),
                },
                EventKind::BaselineCleared {
                    alarm: alarm.clone(),
                },
                format!("alarm {alarm}, firing at the start, has cleared; it is now armed"),
            );
        }
    }
    let new: Vec<(&String, &String)> = report
        .firing
        .iter()
        .filter(|(name, _)| !baseline.contains_key(*name))
        .filter(|(name, _)| w.d.spec.alarms.names.contains(name))
        .collect();
    if let Some((first, _)) = new.first() {
        let reason = new
            .iter()
            .map(|(name, why)| format!("alarm {name} is firing ({why})"))
            .collect::<Vec<_>>()
            .join("; ");
        let trigger = Actor::Alarm {
            name: (*first).clone(),
        };
        let end = rollback_end_for(w.d.state);
        rollback::start(w, trigger, reason, end);
    }
}

/// Metric thresholds, checked on every pass while the new slot takes traffic. Too few
/// requests is not a failure here; an analysis step decides what that means.
pub(crate) fn watch_metrics(w: &mut Working<'_>) {
    if !canary_takes_traffic(&w.d) {
        return;
    }
    let canary = w.d.canary();
    for check in w.d.spec.metrics.clone() {
        let Some(reading) = w.obs.reading(canary, check.window) else {
            continue;
        };
        if let CheckOutcome::Fail { reason, .. } = judge::check_threshold(&check, reading) {
            let reason = format!("metric check failed on {canary}: {reason}");
            w.record(
                Actor::Schedule,
                EventKind::GateFailed {
                    gate: format!("metric {}", check.metric.as_str()),
                },
                reason.clone(),
            );
            rollback::start(w, Actor::Schedule, reason, RollbackEnd::RolledBack);
            return;
        }
    }
}

/// The metric windows an analysis of `duration` reads.
pub(crate) fn analysis_windows(d: &Deployment, duration: Duration) -> Vec<(Slot, Duration)> {
    let mut windows = vec![(d.canary(), duration)];
    if d.spec.judge.is_some() {
        windows.push((d.stable, duration));
    }
    windows
}

/// Whether a health report satisfies the gate, and a sentence saying so.
pub(crate) fn health_verdict(d: &Deployment, report: &HealthReport) -> (bool, String) {
    let min = d.spec.health.min_healthy;
    let ok = report.healthy >= min && report.unhealthy.is_empty() && report.healthy == report.total;
    let mut text = format!(
        "{} of {} targets healthy in {} (at least {min} needed)",
        report.healthy,
        report.total,
        d.canary()
    );
    if !report.unhealthy.is_empty() {
        text.push_str(&format!("; not healthy: {}", report.unhealthy.join(", ")));
    }
    (ok, text)
}

/// The health gate before traffic moves: wait for every target, up to the timeout.
pub(crate) fn verify_health(w: &mut Working<'_>) {
    let Some(report) = w.obs.health.as_ref() else {
        w.wake(w.now.plus(GATE_POLL));
        return;
    };
    let (ok, text) = health_verdict(&w.d, report);
    if ok {
        if w.d.spec.smoke.is_empty() {
            w.record(
                Actor::Schedule,
                EventKind::GatePassed {
                    gate: "health".into(),
                },
                text,
            );
            progress::start_step(w, 0);
        } else {
            w.enter(State::Verifying {
                gate: crate::deployment::VerifyGate::Smoke,
            });
            w.record(
                Actor::Schedule,
                EventKind::GatePassed {
                    gate: "health".into(),
                },
                text,
            );
        }
        return;
    }
    let timeout = w.d.spec.health.timeout;
    if w.d.step_elapsed(w.now) >= timeout {
        let reason = format!(
            "health gate failed after {}: {text}",
            crate::time::format_duration(timeout)
        );
        w.record(
            Actor::Schedule,
            EventKind::GateFailed {
                gate: "health".into(),
            },
            reason.clone(),
        );
        rollback::start(w, Actor::Schedule, reason, RollbackEnd::Failed);
    } else {
        w.wake(w.now.plus(GATE_POLL).min(w.d.step_started_at.plus(timeout)));
    }
}

/// Runs a smoke result through the gate. Returns `Some(true)` when it passed,
/// `Some(false)` when it failed (and a rollback has started), `None` when no result yet.
pub(crate) fn smoke_gate(w: &mut Working<'_>, end: RollbackEnd) -> Option<bool> {
    let Some(report) = w.obs.smoke.as_ref() else {
        w.wake(w.now.plus(GATE_POLL));
        return None;
    };
    let details = report
        .results
        .iter()
        .map(|r| {
            format!(
                "{} {} ({})",
                r.name,
                if r.passed { "passed" } else { "FAILED" },
                r.detail
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if report.passed() {
        return Some(true);
    }
    let reason = format!("smoke checks failed on {}: {details}", w.d.canary());
    w.record(
        Actor::Schedule,
        EventKind::GateFailed {
            gate: "smoke".into(),
        },
        reason.clone(),
    );
    rollback::start(w, Actor::Schedule, reason, end);
    Some(false)
}

/// The end of an analysis step: metric checks and the judge over the step's window.
pub(crate) fn analyse(w: &mut Working<'_>, duration: Duration) {
    let canary = w.d.canary();
    let stable = w.d.stable;
    let Some(canary_metrics) = w.obs.reading(canary, duration).cloned() else {
        w.wake(w.now.plus(GATE_POLL));
        return;
    };
    let stable_metrics = w.obs.reading(stable, duration).cloned();
    let mut passed = Vec::new();
    let mut inconclusive = Vec::new();
    let mut failed = Vec::new();
    for check in &w.d.spec.metrics {
        let mut over_step = check.clone();
        over_step.window = duration;
        match judge::check_threshold(&over_step, &canary_metrics) {
            CheckOutcome::Pass { value } => {
                passed.push(format!("{} {value:.2}", check.metric.as_str()))
            }
            CheckOutcome::Inconclusive { reason } => inconclusive.push(reason),
            CheckOutcome::Fail { reason, .. } => failed.push(reason),
        }
    }
    if let Some(spec) = w.d.spec.judge.clone() {
        match stable_metrics {
            None => {
                w.wake(w.now.plus(GATE_POLL));
                return;
            }
            Some(stable_metrics) => {
                let empty = Vec::new();
                let c = canary_metrics.series.get(&spec.metric).unwrap_or(&empty);
                let s = stable_metrics.series.get(&spec.metric).unwrap_or(&empty);
                let verdict = judge::judge(&spec, c, s);
                match verdict.outcome {
                    Outcome::Pass => passed.push(format!("judge: {}", verdict.reason)),
                    Outcome::Marginal => inconclusive.push(format!("judge: {}", verdict.reason)),
                    Outcome::Fail => failed.push(format!("judge: {}", verdict.reason)),
                }
            }
        }
    }
    if !failed.is_empty() {
        let reason = format!("analysis failed: {}", failed.join("; "));
        w.record(
            Actor::Schedule,
            EventKind::GateFailed {
                gate: "analysis".into(),
            },
            reason.clone(),
        );
        rollback::start(w, Actor::Schedule, reason, RollbackEnd::RolledBack);
    } else if !inconclusive.is_empty() {
        let step = w.d.state.step().unwrap_or_default();
        w.enter(State::Paused {
            step,
            reason: PauseReason::Inconclusive,
            elapsed_ms: 0,
        });
        let reason = format!(
            "analysis inconclusive: {}; resume to continue or roll back",
            inconclusive.join("; ")
        );
        w.record(
            Actor::Schedule,
            EventKind::GateInconclusive {
                gate: "analysis".into(),
            },
            reason.clone(),
        );
        w.notify(NotificationKind::Alert, reason);
    } else {
        let reason = format!("analysis passed: {}", passed.join("; "));
        w.record(
            Actor::Schedule,
            EventKind::GatePassed {
                gate: "analysis".into(),
            },
            reason,
        );
        progress::next_step(w);
    }
}
