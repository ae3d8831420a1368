//! The plan itself: leaving `Pending`, the steps in order, pauses, approvals and their
//! timeouts, the bake, and success. Also weight drift: the router is made to serve the
//! weights Ripcord set, and every difference found is recorded.

use std::time::Duration;

use super::{GATE_POLL, NotificationKind, Working, gates, rollback};
use crate::config::{Step, TimeoutAction};
use crate::deployment::{PauseReason, RollbackEnd, State, VerifyGate};
use crate::domain::Weights;
use crate::history::{Actor, EventKind};
use crate::ports::ServiceStatus;
use crate::time::format_duration;

/// How soon to look again after setting weights, to verify them.
const VERIFY_AFTER: Duration = Duration::from_secs(2);

/// Re-applies the desired weights when the router serves others.
pub(crate) fn check_drift(w: &mut Working<'_>) {
    if matches!(w.d.state, State::Pending) {
        return;
    }
    let Some(actual) = w.obs.weights else {
        return;
    };
    if actual != w.d.desired && w.settled() {
        let desired = w.d.desired;
        w.actions
            .push(super::Action::SetWeights { weights: desired });
        w.record(
            Actor::Schedule,
            EventKind::Drift,
            format!("the router serves {actual} but {desired} was set; re-applying"),
        );
    }
}

/// Moves the plan forward by at most one transition.
pub(crate) fn advance(w: &mut Working<'_>) {
    let alarms_known = w.d.spec.alarms.names.is_empty() || w.obs.alarms.is_some();
    if w.obs.weights.is_none() || !alarms_known {
        // Never move forward on what could not be observed.
        w.wake(w.now.plus(GATE_POLL));
        return;
    }
    match w.d.state {
        State::Pending => leave_pending(w),
        State::Verifying {
            gate: VerifyGate::Health,
        } => gates::verify_health(w),
        State::Verifying {
            gate: VerifyGate::Smoke,
        } => {
            if gates::smoke_gate(w, RollbackEnd::Failed) == Some(true) {
                w.record(
                    Actor::Schedule,
                    EventKind::GatePassed {
                        gate: "smoke".into(),
                    },
                    format!(
                        "{} smoke checks passed on {}",
                        w.d.spec.smoke.len(),
                        w.d.canary()
                    ),
                );
                start_step(w, 0);
            }
        }
        State::Progressing { step } => run_step(w, step),
        State::Paused {
            step,
            reason: PauseReason::AwaitingApproval,
            ..
        } => approval_timeout(w, step),
        State::Paused { .. } => {}
        State::Baking { until } => {
            if w.now < until {
                w.wake(until);
            } else if w.obs.weights == Some(w.d.desired) {
                succeed(w);
            } else {
                // Success is only declared on weights read back at 100% new.
                w.wake(w.now.plus(super::SETTLE));
            }
        }
        State::RollingBack { .. }
        | State::Succeeded
        | State::RolledBack
        | State::Aborted
        | State::Failed => {}
    }
}

/// Takes the alarm baseline and checks that all traffic is on the stable slot.
fn leave_pending(w: &mut Working<'_>) {
    let firing: std::collections::BTreeMap<String, String> = w
        .obs
        .alarms
        .as_ref()
        .map(|a| {
            a.firing
                .iter()
                .filter(|(name, _)| w.d.spec.alarms.names.contains(name))
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect()
        })
        .unwrap_or_default();
    let names: std::collections::BTreeSet<String> = firing.keys().cloned().collect();
    let canary = w.d.canary();
    let actual = w.obs.weights.expect("advance checks the weights are known");
    if actual.of(canary).get() > 0 {
        // Ripcord does not move traffic it does not understand: some other change put
        // weight on the idle slot, and a person should settle it first.
        w.enter(State::Failed);
        let reason = format!(
            "the idle slot {canary} already takes {} of traffic ({actual}); finish or undo the change that put it there, then deploy again",
            actual.of(canary)
        );
        w.record(Actor::Schedule, EventKind::Finished, reason.clone());
        w.notify(NotificationKind::Alert, reason);
        return;
    }
    w.d.baseline = Some(firing);
    w.enter(State::Verifying {
        gate: VerifyGate::Health,
    });
    let text = if names.is_empty() {
        "no watched alarm is firing".to_string()
    } else {
        format!(
            "already firing at the start: {}",
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    w.record(
        Actor::Schedule,
        EventKind::BaselineTaken {
            firing: names.clone(),
        },
        text,
    );
    if w.d.spec.alarms.block_on_baseline && !names.is_empty() {
        let reason = format!(
            "alarms already firing at the start block this service's deployments: {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        );
        rollback::start(w, Actor::Schedule, reason, RollbackEnd::Failed);
        return;
    }
    if matches!(w.d.spec.plan.ramp, crate::config::Ramp::Flag(_)) {
        // A flag ramp has no new slot to check: the release is already running, and
        // the flag decides who sees the change.
        start_step(w, 0);
        return;
    }
    w.notify(
        NotificationKind::Progress,
        format!(
            "Deploying {} to {}: checking health",
            w.d.release.version, canary
        ),
    );
}

/// Enters step `index` (or the end of the plan when past the last step).
pub(crate) fn start_step(w: &mut Working<'_>, index: usize) {
    w.d.approvals.clear();
    w.enter(State::Progressing { step: index });
    let text = match w.d.spec.plan.steps.get(index) {
        Some(step) => format!("step {}: {}", index + 1, describe(step)),
        None => "all steps done: completing to 100%".to_string(),
    };
    w.record(
        Actor::Schedule,
        EventKind::StepStarted { step: index },
        text.clone(),
    );
    w.notify(NotificationKind::Progress, text);
}

/// Moves from the current step to the next one.
pub(crate) fn next_step(w: &mut Working<'_>) {
    let next = w.d.state.step().map_or(0, |s| s + 1);
    start_step(w, next);
}

fn describe(step: &Step) -> String {
    match step {
        Step::SetWeight(weight) => format!("set weight {weight}"),
        Step::Pause(d) => format!("pause {}", format_duration(*d)),
        Step::PauseUntilResumed => "pause until resumed".to_string(),
        Step::Approval => "approval".to_string(),
        Step::Analysis(d) => format!("analysis over {}", format_duration(*d)),
        Step::Smoke => "smoke checks".to_string(),
    }
}

/// Brings the weights to `target`: sets them, then waits until they are read back.
/// Returns true once the router serves them.
fn reach_weights(w: &mut Working<'_>, target: Weights, why: String) -> bool {
    if w.d.desired != target {
        w.set_weights(target);
        w.record(Actor::Schedule, EventKind::WeightsSet, why);
        w.notify(
            NotificationKind::Progress,
            format!("{} {}: {}", w.d.service, w.d.release.version, target),
        );
        w.wake(w.now.plus(VERIFY_AFTER));
        return false;
    }
    if w.obs.weights == Some(target) {
        return true;
    }
    w.wake(w.now.plus(VERIFY_AFTER));
    false
}

fn run_step(w: &mut Working<'_>, index: usize) {
    let canary = w.d.canary();
    let Some(step) = w.d.spec.plan.steps.get(index).cloned() else {
        let target = Weights::all_on(canary);
        if reach_weights(w, target, format!("plan complete: 100% on {canary}")) {
            let bake = w.d.spec.plan.bake;
            let until = w.now.plus(bake);
            w.enter(State::Baking { until });
            w.record(
                Actor::Schedule,
                EventKind::BakeStarted,
                format!(
                    "100% on {canary} verified; baking for {} with every gate armed",
                    format_duration(bake)
                ),
            );
            w.notify(NotificationKind::Progress, format!("Baking until {until}"));
            w.wake(until);
        }
        return;
    };
    let elapsed = w.d.step_elapsed(w.now);
    match step {
        Step::SetWeight(weight) => {
            let target = Weights::split(canary, weight);
            let why = format!("step {}: {weight} to {canary}", index + 1);
            if reach_weights(w, target, why) {
                w.record(
                    Actor::Schedule,
                    EventKind::WeightsVerified,
                    format!("the router serves {target}"),
                );
                next_step(w);
            }
        }
        Step::Pause(duration) => {
            if elapsed >= duration {
                next_step(w);
            } else {
                w.wake(w.d.step_started_at.plus(duration));
            }
        }
        Step::PauseUntilResumed => {
            w.enter(State::Paused {
                step: index,
                reason: PauseReason::AwaitingResume,
                elapsed_ms: 0,
            });
            let text = format!(
                "step {}: paused until someone resumes or promotes",
                index + 1
            );
            w.record(
                Actor::Schedule,
                EventKind::GateWaiting {
                    gate: "resume".into(),
                },
                text.clone(),
            );
            w.notify(NotificationKind::Progress, text);
        }
        Step::Approval => {
            w.d.approvals.clear();
            w.enter(State::Paused {
                step: index,
                reason: PauseReason::AwaitingApproval,
                elapsed_ms: 0,
            });
            let policy = &w.d.spec.approval;
            let mut text = format!(
                "step {}: waiting for {} approval(s)",
                index + 1,
                policy.quorum
            );
            if let Some(timeout) = policy.timeout {
                text.push_str(&format!(
                    "; after {} it will {}",
                    format_duration(timeout),
                    match policy.on_timeout {
                        TimeoutAction::Rollback => "roll back",
                        TimeoutAction::Promote => "continue",
                    }
                ));
                w.wake(w.now.plus(timeout));
            }
            w.record(
                Actor::Schedule,
                EventKind::GateWaiting {
                    gate: "approval".into(),
                },
                text.clone(),
            );
            w.notify(NotificationKind::Progress, text);
        }
        Step::Analysis(duration) => {
            if elapsed >= duration {
                gates::analyse(w, duration);
            } else {
                w.wake(w.d.step_started_at.plus(duration));
            }
        }
        Step::Smoke => {
            if gates::smoke_gate(w, RollbackEnd::RolledBack) == Some(true) {
                w.record(
                    Actor::Schedule,
                    EventKind::GatePassed {
                        gate: "smoke".into(),
                    },
                    format!("smoke checks passed on {canary}"),
                );
                next_step(w);
            }
        }
    }
}

fn approval_timeout(w: &mut Working<'_>, step: usize) {
    let policy = w.d.spec.approval.clone();
    let Some(timeout) = policy.timeout else {
        return;
    };
    let elapsed = w.d.step_elapsed(w.now);
    if elapsed < timeout {
        w.wake(w.d.step_started_at.plus(timeout));
        return;
    }
    let text = format!(
        "step {}: no quorum of approvals after {}",
        step + 1,
        format_duration(timeout)
    );
    w.record(Actor::Schedule, EventKind::ApprovalTimedOut, text.clone());
    match policy.on_timeout {
        TimeoutAction::Rollback => rollback::start(
            w,
            Actor::Schedule,
            format!("{text}; rolling back"),
            RollbackEnd::Aborted,
        ),
        TimeoutAction::Promote => next_step(w),
    }
}

/// The bake ended: the new slot is live.
pub(crate) fn succeed(w: &mut Working<'_>) {
    w.enter(State::Succeeded);
    let canary = w.d.canary();
    w.service = Some(ServiceStatus {
        service: w.d.service.clone(),
        live: canary,
        version: Some(w.d.release.version.clone()),
        deployment_id: Some(w.d.id.clone()),
    });
    let took = w.now.since(w.d.created_at);
    let text = format!(
        "{} {} succeeded: live on {canary} after {}",
        w.d.service,
        w.d.release.version,
        format_duration(took)
    );
    w.record(Actor::Schedule, EventKind::Finished, text.clone());
    w.notify(NotificationKind::Summary, text);
}
