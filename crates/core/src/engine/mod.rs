//! The deployment state machine as a level-triggered reconciler.
//!
//! `decide(deployment, observation, now)` looks at where a deployment is and what the
//! world looks like, and returns the next state, the actions that move the world
//! toward it and the events that record why. It is pure: the same inputs always give
//! the same decision, so running it twice changes nothing more than running it once.
//!
//! The logic is split by concern: `commands` (what people asked), `gates` (alarms,
//! metric checks, health, smoke, analysis), `progress` (the plan's steps, pauses and
//! the bake) and `rollback` (the fast path back to the stable slot).

mod approval;
mod commands;
mod gates;
mod progress;
mod rollback;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use approval::{
    ApprovalRefusal, approver_id, check_approver, check_command, check_flag_change, check_person,
};

use crate::deployment::{Deployment, RollbackEnd, State, VerifyGate};
use crate::domain::{DeploymentId, ServiceName, Slot, Weights};
use crate::history::{Actor, EventDraft, EventKind};
use crate::observation::{Needs, Observation};
use crate::ports::ServiceStatus;
use crate::time::Timestamp;

/// How long to wait before looking again at a gate that is not yet satisfied.
pub const GATE_POLL: Duration = Duration::from_secs(10);

/// How long newly set weights may take to show when read back before a difference
/// counts as drift. Another pass may still be applying them.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Something the driver must do to the world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Set the service's weights. A rollback is exactly one of these, to 100% stable.
    SetWeights {
        /// The weights to apply.
        weights: Weights,
    },
}

/// How urgent a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The deployment's progress message, edited in place.
    Progress,
    /// A rollback or failure: someone should look.
    Alert,
    /// The deployment finished.
    Summary,
}

/// A message for the team about one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Its service.
    pub service: ServiceName,
    /// The release version.
    pub version: String,
    /// How urgent.
    pub kind: NotificationKind,
    /// The deployment's state after the change.
    pub state: State,
    /// The weights after the change.
    pub weights: Weights,
    /// The new slot, so a weights bar can be drawn.
    pub canary: Slot,
    /// What happened, for a person.
    pub text: String,
}

/// The outcome of one `decide` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The deployment after the decision, if anything changed (its revision is not
    /// raised here; the driver does that when it commits).
    pub next: Option<Deployment>,
    /// What to do to the world, in order.
    pub actions: Vec<Action>,
    /// What to record.
    pub events: Vec<EventDraft>,
    /// What to tell the team, once the change is stored.
    pub notifications: Vec<Notification>,
    /// The service's new live slot, when the deployment succeeded.
    pub service: Option<ServiceStatus>,
    /// When the deployment next needs a pass, if it is waiting on time.
    pub wake_at: Option<Timestamp>,
}

impl Decision {
    /// Whether the decision changes nothing and does nothing.
    pub fn is_noop(&self) -> bool {
        self.next.is_none() && self.actions.is_empty()
    }
}

/// A working copy of a deployment that collects a decision as the concerns run.
pub(crate) struct Working<'a> {
    pub(crate) original: &'a Deployment,
    pub(crate) d: Deployment,
    pub(crate) obs: &'a Observation,
    pub(crate) now: Timestamp,
    pub(crate) actions: Vec<Action>,
    pub(crate) events: Vec<EventDraft>,
    pub(crate) notifications: Vec<Notification>,
    pub(crate) service: Option<ServiceStatus>,
    pub(crate) wake_at: Option<Timestamp>,
}

impl<'a> Working<'a> {
    fn new(d: &'a Deployment, obs: &'a Observation, now: Timestamp) -> Self {
        Self {
            original: d,
            d: d.clone(),
            obs,
            now,
            actions: Vec::new(),
            events: Vec::new(),
            notifications: Vec::new(),
            service: None,
            wake_at: None,
        }
    }

    /// Records an event stamped with the working state and weights.
    pub(crate) fn record(&mut self, actor: Actor, kind: EventKind, reason: impl Into<String>) {
        self.events.push(EventDraft {
            at: self.now,
            actor,
            kind,
            reason: reason.into(),
            weights_before: self.obs.weights,
            weights_after: Some(self.d.desired),
            state: self.d.state,
        });
    }

    /// Moves to a new state; the current step's clock restarts.
    pub(crate) fn enter(&mut self, state: State) {
        self.d.state = state;
        self.d.step_started_at = self.now;
        if state.is_terminal() {
            self.d.finished_at = Some(self.now);
        }
    }

    /// Sets new desired weights and asks the driver to apply them.
    pub(crate) fn set_weights(&mut self, weights: Weights) {
        if self.d.desired != weights {
            self.d.desired_at = self.now;
        }
        self.d.desired = weights;
        self.actions
            .retain(|a| !matches!(a, Action::SetWeights { .. }));
        self.actions.push(Action::SetWeights { weights });
    }

    /// Queues a notification describing the working state.
    pub(crate) fn notify(&mut self, kind: NotificationKind, text: impl Into<String>) {
        self.notifications.push(Notification {
            deployment_id: self.d.id.clone(),
            service: self.d.service.clone(),
            version: self.d.release.version.clone(),
            kind,
            state: self.d.state,
            weights: self.d.desired,
            canary: self.d.canary(),
            text: text.into(),
        });
    }

    /// Asks for a pass no later than `at`.
    pub(crate) fn wake(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Whether newly set weights have had time to show when read back.
    pub(crate) fn settled(&self) -> bool {
        self.now >= self.d.desired_at.plus(SETTLE)
    }

    /// Whether the working copy has already left the state it started in this decision.
    pub(crate) fn state_changed(&self) -> bool {
        self.d.state != self.original.state
    }

    fn finish(self) -> Decision {
        let changed = self.d != *self.original || !self.events.is_empty();
        Decision {
            next: changed.then_some(self.d),
            actions: self.actions,
            events: self.events,
            notifications: self.notifications,
            service: self.service,
            wake_at: self.wake_at,
        }
    }
}

/// Decides a deployment's next move from what was observed, at `now`.
///
/// The concerns run in order of urgency: commands people sent, the alarm fast path,
/// weight drift, metric checks, then the plan itself. A rollback started by an earlier
/// concern stops the later ones.
pub fn decide(deployment: &Deployment, observation: &Observation, now: Timestamp) -> Decision {
    let mut w = Working::new(deployment, observation, now);
    if deployment.state.is_terminal() {
        return w.finish();
    }
    commands::apply(&mut w);
    if !w.d.state.is_terminal() && !matches!(w.d.state, State::RollingBack { .. }) {
        gates::watch_alarms(&mut w);
    }
    if matches!(w.d.state, State::RollingBack { .. }) {
        rollback::continue_rollback(&mut w);
        return w.finish();
    }
    if w.d.state.is_terminal() {
        return w.finish();
    }
    progress::check_drift(&mut w);
    gates::watch_metrics(&mut w);
    if !matches!(w.d.state, State::RollingBack { .. }) && !w.state_changed() {
        progress::advance(&mut w);
    }
    if matches!(w.d.state, State::RollingBack { .. }) && w.actions.is_empty() {
        rollback::continue_rollback(&mut w);
    }
    w.finish()
}

/// What a deployment in its current state needs observed for the next `decide`.
pub fn needs(deployment: &Deployment, now: Timestamp) -> Needs {
    let spec = &deployment.spec;
    let mut needs = Needs {
        weights: true,
        commands: !deployment.state.is_terminal(),
        alarms: !spec.alarms.names.is_empty() && !deployment.state.is_terminal(),
        ..Needs::default()
    };
    if deployment.state.is_terminal() {
        needs.weights = false;
        return needs;
    }
    let canary = deployment.canary();
    match deployment.state {
        State::Verifying {
            gate: VerifyGate::Health,
        } => needs.health = Some(canary),
        State::Verifying {
            gate: VerifyGate::Smoke,
        } => needs.smoke = Some(canary),
        _ => {}
    }
    if let Some(step) = deployment.current_step() {
        match step {
            crate::config::Step::Smoke if matches!(deployment.state, State::Progressing { .. }) => {
                needs.smoke = Some(canary)
            }
            crate::config::Step::Analysis(duration)
                if matches!(deployment.state, State::Progressing { .. })
                    && deployment.step_elapsed(now) >= *duration =>
            {
                needs
                    .metrics
                    .extend(gates::analysis_windows(deployment, *duration));
            }
            _ => {}
        }
    }
    if gates::canary_takes_traffic(deployment) {
        for check in &spec.metrics {
            let key = (canary, check.window);
            if !needs.metrics.contains(&key) {
                needs.metrics.push(key);
            }
        }
    }
    needs
}

/// The terminal state a rollback started in the deployment's current state ends in.
pub(crate) fn rollback_end_for(state: State) -> RollbackEnd {
    match state {
        State::Pending | State::Verifying { .. } => RollbackEnd::Failed,
        _ => RollbackEnd::RolledBack,
    }
}

/// The alarm fast path: `alarm` went to ALARM (with `reason`, which carries the value).
///
/// Decides from the alarm alone, without observing anything else, so that the alarm
/// function can act at once: if the deployment watches the alarm and it is not part of
/// the baseline, the decision is exactly one action that puts 100% on the stable slot.
pub fn alarm_fired(deployment: &Deployment, alarm: &str, reason: &str, now: Timestamp) -> Decision {
    let observation = Observation::default();
    let mut w = Working::new(deployment, &observation, now);
    let watched = deployment.spec.alarms.names.iter().any(|n| n == alarm);
    let in_baseline = deployment
        .baseline
        .as_ref()
        .is_some_and(|b| b.contains_key(alarm));
    let rolling_back = matches!(deployment.state, State::RollingBack { .. });
    if watched && !in_baseline && !rolling_back && !deployment.state.is_terminal() {
        let end = rollback_end_for(deployment.state);
        rollback::start(
            &mut w,
            Actor::Alarm {
                name: alarm.to_string(),
            },
            format!("alarm {alarm} is firing ({reason})"),
            end,
        );
    }
    w.finish()
}
