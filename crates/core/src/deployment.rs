//! A deployment: one release of one service moving through its plan, and the
//! commands people send it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ServiceSpec, Step};
use crate::domain::{DeploymentId, ServiceName, Slot, Weights};
use crate::history::{Actor, GENESIS_HASH};
use crate::time::Timestamp;

/// Why a deployment is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// An `approval` step waits for its quorum.
    AwaitingApproval,
    /// A `pause` step without a duration waits for resume or promote.
    AwaitingResume,
    /// An analysis could not decide (too few requests, or a marginal judge verdict).
    Inconclusive,
    /// Someone paused it; resuming continues the step where it was.
    Manual,
}

/// How a rollback ends once traffic is back on the stable slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackEnd {
    /// A gate failed after traffic moved, or someone asked for a rollback.
    RolledBack,
    /// Someone aborted or rejected it.
    Aborted,
    /// A gate failed before any traffic moved.
    Failed,
}

/// Where a deployment is. Terminal states are `Succeeded`, `RolledBack`, `Aborted`
/// and `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum State {
    /// Created; the alarm baseline has not been taken yet.
    Pending,
    /// Health and smoke gates on the new slot, before any traffic moves.
    Verifying {
        /// Which gate is running.
        gate: VerifyGate,
    },
    /// Running step `step` of the plan.
    Progressing {
        /// Index into the plan's steps.
        step: usize,
    },
    /// Waiting for a person at step `step`.
    Paused {
        /// Index into the plan's steps.
        step: usize,
        /// What it waits for.
        reason: PauseReason,
        /// For a manual pause: how much of the step had elapsed, so resuming continues it.
        elapsed_ms: u64,
    },
    /// At 100% with every gate armed until the bake window ends.
    Baking {
        /// When the bake window ends.
        until: Timestamp,
    },
    /// Done: the new slot is live.
    Succeeded,
    /// Putting all traffic back on the stable slot; retried until it is verified.
    RollingBack {
        /// The terminal state once traffic is verified back on the stable slot.
        end: RollbackEnd,
    },
    /// Traffic is back on the stable slot after a failure or a rollback command.
    RolledBack,
    /// Stopped by a person; traffic is back on the stable slot.
    Aborted,
    /// A gate failed before any traffic moved.
    Failed,
}

/// The gate a verifying deployment is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyGate {
    /// Waiting for every target of the new slot to be healthy.
    Health,
    /// Running the smoke checks against the new slot.
    Smoke,
}

impl State {
    /// Whether nothing more will happen to the deployment.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Succeeded | State::RolledBack | State::Aborted | State::Failed
        )
    }

    /// The state's name in output, e.g. `progressing`.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Verifying { .. } => "verifying",
            State::Progressing { .. } => "progressing",
            State::Paused { .. } => "paused",
            State::Baking { .. } => "baking",
            State::Succeeded => "succeeded",
            State::RollingBack { .. } => "rolling_back",
            State::RolledBack => "rolled_back",
            State::Aborted => "aborted",
            State::Failed => "failed",
        }
    }

    /// The plan step the state is at, if any.
    pub fn step(self) -> Option<usize> {
        match self {
            State::Progressing { step } | State::Paused { step, .. } => Some(step),
            _ => None,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Verifying { gate } => write!(f, "verifying ({gate:?})"),
            State::Progressing { step } => write!(f, "progressing (step {})", step + 1),
            State::Paused { step, reason, .. } => {
                write!(f, "paused at step {} ({reason:?})", step + 1)
            }
            State::Baking { until } => write!(f, "baking until {until}"),
            State::RollingBack { end } => write!(f, "rolling back (then {end:?})"),
            other => f.write_str(other.name()),
        }
    }
}

/// One approval counted toward the quorum of the current approval step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approver's chat user id.
    pub user_id: String,
    /// The approver's display name.
    pub name: String,
    /// When they approved.
    pub at: Timestamp,
}

/// Why and by whom a rollback was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackInfo {
    /// Who or what started it.
    pub trigger: Actor,
    /// Why, for a person (alarm name and value, failed check, who pressed it).
    pub reason: String,
    /// When it started: the moment the failure was detected.
    pub started_at: Timestamp,
    /// How many passes have tried to put traffic back so far.
    pub attempts: u32,
}

/// The release a deployment ships, as the webhook reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The version label, e.g. `v43`.
    pub version: String,
    /// The commit it was built from.
    pub commit: String,
    /// When that commit was made, for lead time.
    pub committed_at: Option<Timestamp>,
    /// The CI author (login).
    pub author: String,
    /// The author's chat user id, from the configuration's `[authors]` map.
    pub author_chat_id: Option<String>,
}

/// A deployment and everything the engine needs to decide its next move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Its identifier.
    pub id: DeploymentId,
    /// The service it deploys.
    pub service: ServiceName,
    /// What it ships.
    pub release: Release,
    /// The service's configuration as it was when the deployment started; later
    /// changes to the configuration do not affect a running deployment.
    pub spec: ServiceSpec,
    /// The version of the stored configuration `spec` came from.
    pub config_version: u64,
    /// The slot that was live when the deployment started.
    pub stable: Slot,
    /// Where it is.
    pub state: State,
    /// The weights Ripcord last set (or is setting); the router is made to match.
    pub desired: Weights,
    /// When `desired` was last changed.
    pub desired_at: Timestamp,
    /// When the current state or step began.
    pub step_started_at: Timestamp,
    /// Approvals of the current approval step.
    pub approvals: Vec<Approval>,
    /// Alarms already firing at the start (with their reason then); `None` until taken.
    pub baseline: Option<BTreeMap<String, String>>,
    /// The last command sequence number applied.
    pub commands_applied: u64,
    /// Set once a rollback starts.
    pub rollback: Option<RollbackInfo>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// The optimistic-concurrency revision, raised by one on every stored change.
    pub revision: u64,
    /// How many events its history holds.
    pub event_count: u64,
    /// The hash of its last event (the head of the hash chain).
    pub last_hash: String,
}

impl Deployment {
    /// A new deployment in `Pending`, with all traffic on `stable`.
    pub fn new(
        id: DeploymentId,
        spec: ServiceSpec,
        config_version: u64,
        release: Release,
        stable: Slot,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            service: spec.name.clone(),
            release,
            spec,
            config_version,
            stable,
            state: State::Pending,
            desired: Weights::all_on(stable),
            desired_at: now,
            step_started_at: now,
            approvals: Vec::new(),
            baseline: None,
            commands_applied: 0,
            rollback: None,
            created_at: now,
            finished_at: None,
            revision: 0,
            event_count: 0,
            last_hash: GENESIS_HASH.to_string(),
        }
    }

    /// The slot receiving the new release.
    pub fn canary(&self) -> Slot {
        self.stable.other()
    }

    /// The current step of the plan, if the state is at one.
    pub fn current_step(&self) -> Option<&Step> {
        self.state.step().and_then(|i| self.spec.plan.steps.get(i))
    }

    /// Whether the deployment is still running.
    pub fn is_active(&self) -> bool {
        !self.state.is_terminal()
    }

    /// The share of traffic the new slot is meant to have.
    pub fn canary_weight(&self) -> u8 {
        self.desired.of(self.canary()).get()
    }

    /// How long the current step has run.
    pub fn step_elapsed(&self, now: Timestamp) -> Duration {
        now.since(self.step_started_at)
    }
}

/// What a person (or CI, or the CLI) asks of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum CommandKind {
    /// Approve the approval step `step` (the index the button was made for).
    Approve {
        /// The step index the approval is for; an approval for another step is stale.
        step: usize,
    },
    /// Reject the approval step `step`: traffic goes back and the deployment is aborted.
    Reject {
        /// The step index the rejection is for.
        step: usize,
    },
    /// Skip the remaining steps: go to 100% and bake; during the bake, finish now.
    Promote,
    /// Hold the current step until resumed. Gates stay armed.
    Pause,
    /// Continue a paused deployment.
    Resume,
    /// Put traffic back on the stable slot and stop.
    Abort,
    /// Put traffic back on the stable slot now.
    Rollback,
    /// A request that chat refused at once (a button drawn for an earlier stage of the
    /// deployment), queued only so that the history records who tried what, and why it
    /// was refused. Applying it changes nothing.
    Refused {
        /// What was asked, e.g. `promote`.
        asked: String,
        /// Why it was refused, for a person.
        why: String,
    },
}

impl CommandKind {
    /// The command's name in output.
    pub fn name(&self) -> &'static str {
        match self {
            CommandKind::Approve { .. } => "approve",
            CommandKind::Reject { .. } => "reject",
            CommandKind::Promote => "promote",
            CommandKind::Pause => "pause",
            CommandKind::Resume => "resume",
            CommandKind::Abort => "abort",
            CommandKind::Rollback => "rollback",
            CommandKind::Refused { .. } => "refused",
        }
    }
}

/// A command queued for a deployment, applied in `seq` order by the next pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Its position in the deployment's command queue, from 1.
    pub seq: u64,
    /// When it was sent.
    pub at: Timestamp,
    /// Who sent it.
    pub actor: Actor,
    /// What it asks.
    pub kind: CommandKind,
    /// Why, if they said.
    pub reason: Option<String>,
}
