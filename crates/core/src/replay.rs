//! Rebuilding what a deployment's history says about it, from the events alone.
//!
//! The history is the record people and auditors read, so it must be complete: folding
//! the events gives back the state, the weights, the approvals of the current step and
//! the alarm baseline that the deployment record holds. Tests check that it does.

use std::collections::BTreeSet;

use crate::deployment::{PauseReason, State};
use crate::domain::Weights;
use crate::engine::approver_id;
use crate::history::{Event, EventKind};
use crate::time::Timestamp;

/// A deployment as its events describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// The state after the last event.
    pub state: State,
    /// The weights set after the last event.
    pub desired: Option<Weights>,
    /// Who has approved the current approval step, in order.
    pub approvals: Vec<String>,
    /// The alarms in the baseline.
    pub baseline: Option<BTreeSet<String>>,
    /// When the deployment reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// When a rollback started.
    pub rollback_started_at: Option<Timestamp>,
}

/// Folds a deployment's events, in order. `None` for an empty history.
pub fn replay(events: &[Event]) -> Option<Replayed> {
    let first = events.first()?;
    let mut out = Replayed {
        state: first.state,
        desired: None,
        approvals: Vec::new(),
        baseline: None,
        finished_at: None,
        rollback_started_at: None,
    };
    for event in events {
        let awaiting = |s: State| match s {
            State::Paused {
                step,
                reason: PauseReason::AwaitingApproval,
                ..
            } => Some(step),
            _ => None,
        };
        if awaiting(event.state).is_none() || awaiting(event.state) != awaiting(out.state) {
            out.approvals.clear();
        }
        out.state = event.state;
        if event.weights_after.is_some() {
            out.desired = event.weights_after;
        }
        match &event.kind {
            EventKind::Approved { .. } => {
                if let Some(id) = approver_id(&event.actor) {
                    out.approvals.push(id);
                }
            }
            EventKind::BaselineTaken { firing } => out.baseline = Some(firing.clone()),
            EventKind::BaselineCleared { alarm } => {
                if let Some(b) = out.baseline.as_mut() {
                    b.remove(alarm);
                }
            }
            EventKind::RollbackStarted => {
                out.rollback_started_at.get_or_insert(event.at);
            }
            _ => {}
        }
        if event.state.is_terminal() && out.finished_at.is_none() {
            out.finished_at = Some(event.at);
        }
    }
    Some(out)
}
