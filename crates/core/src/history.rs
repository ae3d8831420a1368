//! The append-only history: one event per transition or action, hash-chained per
//! deployment so that an edited, reordered or deleted event is detected.
//!
//! Each event's hash is SHA-256 over the previous event's hash and the event's own
//! canonical JSON (every field but `hash`). The deployment record keeps the head of the
//! chain (`event_count`, `last_hash`), so that dropping the newest events is detected too.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::deployment::{CommandKind, Deployment, State};
use crate::domain::{DeploymentId, ServiceName, Weights};
use crate::time::Timestamp;

/// The hash the first event of every chain links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who or what caused an event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Actor {
    /// The CI system, on behalf of a commit author.
    Ci {
        /// The author's login.
        author: String,
    },
    /// A person in chat.
    Chat {
        /// Chat user id.
        user_id: String,
        /// Display name.
        name: String,
        /// The user's role ids at the time.
        roles: Vec<String>,
    },
    /// A CloudWatch (or local) alarm.
    Alarm {
        /// The alarm's name.
        name: String,
    },
    /// The controller's own pass (timers, gates, metric checks).
    Schedule,
    /// Someone at the command line.
    Cli {
        /// The local user name, when known.
        user: String,
    },
}

impl Actor {
    /// A short description for output, e.g. `alarm web-5xx` or `chat alice`.
    pub fn describe(&self) -> String {
        match self {
            Actor::Ci { author } => format!("ci ({author})"),
            Actor::Chat { name, .. } => format!("chat {name}"),
            Actor::Alarm { name } => format!("alarm {name}"),
            Actor::Schedule => "schedule".to_string(),
            Actor::Cli { user } => format!("cli {user}"),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    /// The deployment was created.
    Created {
        /// The release version.
        version: String,
        /// The commit.
        commit: String,
        /// When the commit was made, for lead time.
        committed_at: Option<Timestamp>,
    },
    /// Alarms firing at the start were recorded as the baseline.
    BaselineTaken {
        /// The alarms firing then.
        firing: BTreeSet<String>,
    },
    /// A baseline alarm cleared; from now on it rolls the deployment back if it fires.
    BaselineCleared {
        /// The alarm.
        alarm: String,
    },
    /// A gate passed (health, smoke, analysis, metric checks).
    GatePassed {
        /// The gate's name.
        gate: String,
    },
    /// A gate is not yet satisfied and is being waited for.
    GateWaiting {
        /// The gate's name.
        gate: String,
    },
    /// A gate failed.
    GateFailed {
        /// The gate's name.
        gate: String,
    },
    /// An analysis could not decide.
    GateInconclusive {
        /// The gate's name.
        gate: String,
    },
    /// A step began.
    StepStarted {
        /// Index of the step.
        step: usize,
    },
    /// Weights were set.
    WeightsSet,
    /// The router serves the weights that were set.
    WeightsVerified,
    /// The router served other weights than those set; they are being re-applied.
    Drift,
    /// An approval was counted.
    Approved {
        /// How many distinct approvals the step has now.
        count: u32,
        /// How many it needs.
        quorum: u32,
    },
    /// A command was refused; nothing changed.
    CommandRefused {
        /// The command.
        command: CommandKind,
    },
    /// A command was applied.
    CommandApplied {
        /// The command.
        command: CommandKind,
    },
    /// An approval step timed out.
    ApprovalTimedOut,
    /// A rollback started.
    RollbackStarted,
    /// Putting traffic back failed this time; it is retried on every pass.
    RollbackRetrying {
        /// How many attempts have been made.
        attempts: u32,
    },
    /// Baking at 100% began.
    BakeStarted,
    /// The deployment reached a terminal state.
    Finished,
    /// Carrying out an action failed.
    ActionFailed {
        /// What the action was.
        action: String,
    },
}

impl EventKind {
    /// The kind's name in output.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "created",
            EventKind::BaselineTaken { .. } => "baseline_taken",
            EventKind::BaselineCleared { .. } => "baseline_cleared",
            EventKind::GatePassed { .. } => "gate_passed",
            EventKind::GateWaiting { .. } => "gate_waiting",
            EventKind::GateFailed { .. } => "gate_failed",
            EventKind::GateInconclusive { .. } => "gate_inconclusive",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::WeightsSet => "weights_set",
            EventKind::WeightsVerified => "weights_verified",
            EventKind::Drift => "drift",
            EventKind::Approved { .. } => "approved",
            EventKind::CommandRefused { .. } => "command_refused",
            EventKind::CommandApplied { .. } => "command_applied",
            EventKind::ApprovalTimedOut => "approval_timed_out",
            EventKind::RollbackStarted => "rollback_started",
            EventKind::RollbackRetrying { .. } => "rollback_retrying",
            EventKind::BakeStarted => "bake_started",
            EventKind::Finished => "finished",
            EventKind::ActionFailed { .. } => "action_failed",
        }
    }
}

/// An event before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDraft {
    /// When.
    pub at: Timestamp,
    /// Who or what.
    pub actor: Actor,
    /// What.
    pub kind: EventKind,
    /// Why, for a person.
    pub reason: String,
    /// The weights the router served before (as observed), if known.
    pub weights_before: Option<Weights>,
    /// The weights after the event (as desired), if it changed them or they are known.
    pub weights_after: Option<Weights>,
    /// The deployment's state after the event.
    pub state: State,
}

/// One sealed event in a deployment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Its service.
    pub service: ServiceName,
    /// Position in the deployment's chain, from 0.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who or what.
    pub actor: Actor,
    /// What.
    pub kind: EventKind,
    /// Why, for a person.
    pub reason: String,
    /// The weights served before, if known.
    pub weights_before: Option<Weights>,
    /// The weights after.
    pub weights_after: Option<Weights>,
    /// The deployment's state after the event.
    pub state: State,
    /// The previous event's hash (`GENESIS_HASH` for the first).
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this event's other fields, hex.
    pub hash: String,
}

/// The fields an event's hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    deployment_id: &'a DeploymentId,
    service: &'a ServiceName,
    seq: u64,
    at: Timestamp,
    actor: &'a Actor,
    kind: &'a EventKind,
    reason: &'a str,
    weights_before: Option<Weights>,
    weights_after: Option<Weights>,
    state: State,
    prev_hash: &'a str,
}

impl Event {
    /// Computes the hash this event should carry.
    pub fn compute_hash(&self) -> String {
        let hashed = Hashed {
            deployment_id: &self.deployment_id,
            service: &self.service,
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            kind: &self.kind,
            reason: &self.reason,
            weights_before: self.weights_before,
            weights_after: self.weights_after,
            state: self.state,
            prev_hash: &self.prev_hash,
        };
        // Serializing plain structs and enums to JSON cannot fail.
        let body = serde_json::to_vec(&hashed).expect("event serializes");
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(&body);
        hex::encode(hasher.finalize())
    }
}

/// Seals drafts onto the end of a deployment's chain, whose head is
/// (`event_count`, `last_hash`). Returns the events and the new head.
pub fn seal(
    deployment_id: &DeploymentId,
    service: &ServiceName,
    event_count: u64,
    last_hash: &str,
    drafts: &[EventDraft],
) -> (Vec<Event>, u64, String) {
    let mut prev = last_hash.to_string();
    let mut events = Vec::with_capacity(drafts.len());
    for (i, draft) in drafts.iter().enumerate() {
        let mut event = Event {
            deployment_id: deployment_id.clone(),
            service: service.clone(),
            seq: event_count + i as u64,
            at: draft.at,
            actor: draft.actor.clone(),
            kind: draft.kind.clone(),
            reason: draft.reason.clone(),
            weights_before: draft.weights_before,
            weights_after: draft.weights_after,
            state: draft.state,
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        prev = event.hash.clone();
        events.push(event);
    }
    (events, event_count + drafts.len() as u64, prev)
}

/// A break in a history's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An event's content does not match its hash: it was edited.
    #[error("event {seq} was altered: its content no longer matches its hash")]
    Altered {
        /// The event's position.
        seq: u64,
    },
    /// An event does not link to the one before it: one was removed or reordered.
    #[error("event {seq} does not follow event {expected_prev}: an event was removed, inserted or reordered")]
    Broken {
        /// The event's position.
        seq: u64,
        /// The position it should have followed.
        expected_prev: u64,
    },
    /// The chain ends before the head the deployment records: its newest events are gone.
    #[error("the history ends at {found} events but the deployment records {expected}: its newest events were removed")]
    Truncated {
        /// How many events were found.
        found: u64,
        /// How many the deployment records.
        expected: u64,
    },
    /// The chain's last hash is not the head the deployment records.
    #[error("the history's last hash does not match the deployment's record")]
    HeadMismatch,
}

/// Checks a deployment's events, in stored order, against their hashes, their links
/// and, when given, the head recorded on the deployment.
pub fn verify_history(events: &[Event], head: Option<&Deployment>) -> Result<(), ChainError> {
    let mut prev_hash = GENESIS_HASH.to_string();
    for (i, event) in events.iter().enumerate() {
        let position = i as u64;
        if event.compute_hash() != event.hash {
            return Err(ChainError::Altered { seq: event.seq });
        }
        if event.seq != position || event.prev_hash != prev_hash {
            return Err(ChainError::Broken {
                seq: event.seq,
                expected_prev: position.saturating_sub(1),
            });
        }
        prev_hash = event.hash.clone();
    }
    if let Some(deployment) = head {
        let found = events.len() as u64;
        if found < deployment.event_count {
            return Err(ChainError::Truncated {
                found,
                expected: deployment.event_count,
            });
        }
        if found != deployment.event_count || prev_hash != deployment.last_hash {
            return Err(ChainError::HeadMismatch);
        }
    }
    Ok(())
}
