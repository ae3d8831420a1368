//! Commands people send: approve, reject, promote, pause, resume, abort, rollback.
//!
//! Every command lands in the history, applied or refused, with who sent it. A refusal
//! changes nothing but the record of it.

use super::approval::{approver_id, check_approver, check_command, check_person};
use super::{NotificationKind, Working, progress, rollback};
use crate::config::Step;
use crate::deployment::{Approval, Command, CommandKind, PauseReason, RollbackEnd, State};
use crate::history::EventKind;

/// Applies the observation's commands that are newer than the last one applied.
pub(crate) fn apply(w: &mut Working<'_>) {
    let pending: Vec<Command> = w
        .obs
        .commands
        .iter()
        .filter(|c| c.seq > w.d.commands_applied)
        .cloned()
        .collect();
    for command in pending {
        w.d.commands_applied = command.seq;
        if w.d.state.is_terminal() {
            refuse(
                w,
                &command,
                format!("the deployment has already {}", w.d.state.name()),
            );
            continue;
        }
        apply_one(w, &command);
    }
}

fn refuse(w: &mut Working<'_>, command: &Command, why: String) {
    w.record(
        command.actor.clone(),
        EventKind::CommandRefused {
            command: command.kind.clone(),
        },
        why,
    );
}

fn applied(w: &mut Working<'_>, command: &Command, what: String) {
    w.record(
        command.actor.clone(),
        EventKind::CommandApplied {
            command: command.kind.clone(),
        },
        what,
    );
}

fn reason_suffix(command: &Command) -> String {
    command
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

fn apply_one(w: &mut Working<'_>, command: &Command) {
    if let Err(refusal) = check_command(&w.d, &command.actor, &command.kind) {
        return refuse(w, command, refusal.0);
    }
    let who = command.actor.describe();
    let rolling_back = matches!(w.d.state, State::RollingBack { .. });
    match &command.kind {
        CommandKind::Refused { why, .. } => refuse(w, command, why.clone()),
        CommandKind::Approve { step } => approve(w, command, *step),
        CommandKind::Reject { step } => {
            let stale = !matches!(
                w.d.state,
                State::Paused { step: s, reason: PauseReason::AwaitingApproval, .. } if s == *step
            );
            if stale {
                return refuse(
                    w,
                    command,
                    format!(
                        "the deployment is not waiting for approval at step {}",
                        step + 1
                    ),
                );
            }
            let reason = format!("rejected by {who}{}", reason_suffix(command));
            applied(w, command, reason.clone());
            rollback::start(w, command.actor.clone(), reason, RollbackEnd::Aborted);
        }
        CommandKind::Promote => match w.d.state {
            State::Baking { .. } => {
                // The bake ends now; success still waits for the weights to read back.
                w.d.state = State::Baking { until: w.now };
                applied(w, command, format!("bake ended early by {who}"));
            }
            State::Progressing { step } | State::Paused { step, .. } => {
                let skips_approval =
                    w.d.spec
                        .plan
                        .steps
                        .iter()
                        .skip(step)
                        .any(|s| *s == Step::Approval);
                if skips_approval && let Err(refusal) = check_person(&w.d, &command.actor) {
                    return refuse(
                        w,
                        command,
                        format!(
                            "promoting now would skip an approval step, which needs an approver: {refusal}"
                        ),
                    );
                }
                let last = w.d.spec.plan.steps.len();
                w.enter(State::Progressing { step: last });
                w.d.approvals.clear();
                applied(
                    w,
                    command,
                    format!(
                        "promoted by {who}: remaining steps skipped, going to 100% then baking"
                    ),
                );
                w.notify(NotificationKind::Progress, format!("Promoted by {who}"));
            }
            state => refuse(
                w,
                command,
                format!("cannot promote while {state}: the health and smoke gates must pass first"),
            ),
        },
        CommandKind::Pause => match w.d.state {
            State::Progressing { step } => {
                let elapsed = w.d.step_elapsed(w.now).as_millis() as u64;
                w.enter(State::Paused {
                    step,
                    reason: PauseReason::Manual,
                    elapsed_ms: elapsed,
                });
                applied(w, command, format!("paused by {who}; alarms stay armed"));
                w.notify(NotificationKind::Progress, format!("Paused by {who}"));
            }
            state => refuse(w, command, format!("cannot pause while {state}")),
        },
        CommandKind::Resume => match w.d.state {
            State::Paused {
                step,
                reason: PauseReason::Manual,
                elapsed_ms,
            } => {
                w.enter(State::Progressing { step });
                w.d.step_started_at = w.now.minus(std::time::Duration::from_millis(elapsed_ms));
                applied(w, command, format!("resumed by {who}"));
                w.notify(NotificationKind::Progress, format!("Resumed by {who}"));
            }
            State::Paused {
                reason: PauseReason::AwaitingResume | PauseReason::Inconclusive,
                ..
            } => {
                applied(w, command, format!("resumed by {who}"));
                progress::next_step(w);
            }
            State::Paused {
                reason: PauseReason::AwaitingApproval,
                ..
            } => refuse(
                w,
                command,
                "the deployment waits for approval: approve or reject it".to_string(),
            ),
            state => refuse(
                w,
                command,
                format!("cannot resume while {state}: it is not paused"),
            ),
        },
        CommandKind::Abort | CommandKind::Rollback if rolling_back => {
            refuse(w, command, "a rollback is already under way".to_string())
        }
        CommandKind::Abort => {
            let reason = format!("aborted by {who}{}", reason_suffix(command));
            applied(w, command, reason.clone());
            rollback::start(w, command.actor.clone(), reason, RollbackEnd::Aborted);
        }
        CommandKind::Rollback => {
            // Before any traffic has moved there is no change to fail, so stopping
            // then is an abort, not a failed change.
            let end = match w.d.state {
                State::Pending | State::Verifying { .. } => RollbackEnd::Aborted,
                _ => RollbackEnd::RolledBack,
            };
            let reason = format!("rollback requested by {who}{}", reason_suffix(command));
            applied(w, command, reason.clone());
            rollback::start(w, command.actor.clone(), reason, end);
        }
    }
}

fn approve(w: &mut Working<'_>, command: &Command, step: usize) {
    if let Err(refusal) = check_approver(&w.d, &command.actor, step) {
        return refuse(w, command, refusal.0);
    }
    // `check_approver` admits people only, and every person has an approver id.
    let user_id = approver_id(&command.actor).expect("an admitted approver is a person");
    let name = match &command.actor {
        crate::history::Actor::Chat { name, .. } => name.clone(),
        other => other.describe(),
    };
    w.d.approvals.push(Approval {
        user_id,
        name: name.clone(),
        at: command.at,
    });
    let count = w.d.approvals.len() as u32;
    let quorum = w.d.spec.approval.quorum;
    w.record(
        command.actor.clone(),
        EventKind::Approved { count, quorum },
        format!("approved by {name} ({count} of {quorum})"),
    );
    if count >= quorum {
        w.notify(
            NotificationKind::Progress,
            format!("Approved ({count} of {quorum}); continuing"),
        );
        progress::next_step(w);
    } else {
        w.notify(
            NotificationKind::Progress,
            format!("Approved by {name}: {count} of {quorum}"),
        );
    }
}
