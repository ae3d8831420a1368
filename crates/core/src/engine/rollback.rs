//! The fast path back to the stable slot, and its retries until traffic is verified there.
//!
//! Starting a rollback is one action, all traffic to the stable slot, and no step of
//! the plan is re-run. The rollback only ends once the router is read back at 100%
//! stable; until then every pass re-applies it and the team is alerted.

use std::time::Duration;

use super::{NotificationKind, Working};
use crate::deployment::{RollbackEnd, RollbackInfo, State};
use crate::domain::Weights;
use crate::history::{Actor, EventKind};

/// How soon to look again while traffic is not yet verified on the stable slot.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Starts a rollback: all traffic to the stable slot, now.
pub(crate) fn start(w: &mut Working<'_>, trigger: Actor, reason: String, end: RollbackEnd) {
    w.d.rollback = Some(RollbackInfo {
        trigger: trigger.clone(),
        reason: reason.clone(),
        started_at: w.now,
        attempts: 1,
    });
    w.d.approvals.clear();
    w.enter(State::RollingBack { end });
    w.set_weights(Weights::all_on(w.d.stable));
    w.record(trigger.clone(), EventKind::RollbackStarted, reason.clone());
    let text = format!(
        "Rolling back {} {} to {} ({}): {reason}",
        w.d.service,
        w.d.release.version,
        w.d.stable,
        trigger.describe()
    );
    let kind = if end == RollbackEnd::Aborted {
        NotificationKind::Progress
    } else {
        NotificationKind::Alert
    };
    w.notify(kind, text);
}

/// Finishes a rollback once traffic is verified on the stable slot, or re-applies it.
pub(crate) fn continue_rollback(w: &mut Working<'_>) {
    let State::RollingBack { end } = w.d.state else {
        return;
    };
    let target = Weights::all_on(w.d.stable);
    if w.obs.weights == Some(target) && w.d.desired == target {
        let terminal = match end {
            RollbackEnd::RolledBack => State::RolledBack,
            RollbackEnd::Aborted => State::Aborted,
            RollbackEnd::Failed => State::Failed,
        };
        w.enter(terminal);
        let reason =
            w.d.rollback
                .as_ref()
                .map(|r| r.reason.clone())
                .unwrap_or_default();
        let took =
            w.d.rollback
                .as_ref()
                .map(|r| w.now.since(r.started_at))
                .unwrap_or_default();
        let text = format!(
            "{} {} {}: traffic is back on {} (100%) after {}. Cause: {reason}",
            w.d.service,
            w.d.release.version,
            terminal.name().replace('_', " "),
            w.d.stable,
            crate::time::format_duration(took),
        );
        w.record(Actor::Schedule, EventKind::Finished, text.clone());
        w.notify(NotificationKind::Summary, text);
        return;
    }
    if w.d.desired == target && !w.settled() {
        // Another pass set these weights a moment ago and may still be applying them.
        w.wake(w.d.desired_at.plus(super::SETTLE));
        return;
    }
    w.set_weights(target);
    let attempts = {
        let info = w.d.rollback.get_or_insert_with(|| RollbackInfo {
            trigger: Actor::Schedule,
            reason: "rollback resumed".to_string(),
            started_at: w.now,
            attempts: 0,
        });
        info.attempts += 1;
        info.attempts
    };
    let seen = match w.obs.weights {
        Some(actual) => format!("the router still serves {actual}"),
        None => "the router's weights could not be read".to_string(),
    };
    let text = format!(
        "Rollback of {} {} not yet verified: {seen}; re-applying 100% {} (attempt {attempts})",
        w.d.service, w.d.release.version, w.d.stable
    );
    w.record(
        Actor::Schedule,
        EventKind::RollbackRetrying { attempts },
        text.clone(),
    );
    w.notify(NotificationKind::Alert, text);
    w.wake(w.now.plus(RETRY_AFTER));
}
