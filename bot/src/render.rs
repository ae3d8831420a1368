//! What a deployment looks like in chat: its one message (a weights bar, the current
//! step, gate results, who approved, the latest change) and the buttons that fit its
//! state, built with serenity's builders.

use std::collections::BTreeMap;
use std::time::Duration;

use ripcord_core::config::Step;
use ripcord_core::deployment::{Deployment, PauseReason, State};
use ripcord_core::domain::{Slot, Weights};
use ripcord_core::history::{Event, EventKind};
use ripcord_core::time::format_duration;
use serenity::all::{ButtonStyle, Colour, CreateActionRow, CreateButton, CreateEmbed};

use crate::custom_id::{Button, ButtonAction};

/// How many cells the weights bar has.
const BAR_CELLS: usize = 20;

/// A deployment's message: one embed and its buttons.
#[derive(Debug, Clone)]
pub struct DeploymentView {
    /// The embed.
    pub embed: CreateEmbed,
    /// The rows of buttons (none once the deployment is over).
    pub components: Vec<CreateActionRow>,
}

/// A bar per slot, e.g. `blue  ██████████████████░░  90%`.
pub fn weights_bar(weights: Weights) -> String {
    [Slot::Blue, Slot::Green]
        .into_iter()
        .map(|slot| {
            let percent = usize::from(weights.of(slot).get());
            let full = (percent * BAR_CELLS + 50) / 100;
            format!(
                "{:<5} {}{} {percent:>3}%",
                slot.as_str(),
                "█".repeat(full),
                "░".repeat(BAR_CELLS - full)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A plan step for a person, e.g. `10% to green` or `approval (2 of 2)`.
pub fn describe_step(deployment: &Deployment, step: &Step) -> String {
    match step {
        Step::SetWeight(weight) => format!("{}% to {}", weight.get(), deployment.canary().as_str()),
        Step::Pause(duration) => format!("pause {}", format_duration(*duration)),
        Step::PauseUntilResumed => "pause until resumed".to_string(),
        Step::Approval => format!("approval (quorum {})", deployment.spec.approval.quorum),
        Step::Analysis(duration) => format!("analysis over {}", format_duration(*duration)),
        Step::Smoke => "smoke checks".to_string(),
    }
}

/// The exact weight change a rollback makes, e.g. `blue 70% → 100%, green 30% → 0%`.
pub fn rollback_change(deployment: &Deployment, current: Weights) -> String {
    let target = Weights::all_on(deployment.stable);
    [Slot::Blue, Slot::Green]
        .into_iter()
        .map(|slot| {
            format!(
                "{} {}% → {}%",
                slot.as_str(),
                current.of(slot).get(),
                target.of(slot).get()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The title line of a deployment, e.g. `web v43: paused at step 3 (awaiting approval)`.
pub fn title(deployment: &Deployment) -> String {
    format!(
        "{} {}: {}",
        deployment.service,
        deployment.release.version,
        state_text(deployment)
    )
}

/// The state for a person.
pub fn state_text(deployment: &Deployment) -> String {
    let steps = deployment.spec.plan.steps.len();
    match deployment.state {
        State::Progressing { step } => format!("step {} of {steps}", step + 1),
        State::Paused { step, reason, .. } => {
            let why = match reason {
                PauseReason::AwaitingApproval => "awaiting approval",
                PauseReason::AwaitingResume => "waiting to be resumed",
                PauseReason::Inconclusive => "analysis inconclusive",
                PauseReason::Manual => "paused by hand",
            };
            format!("paused at step {} of {steps} ({why})", step + 1)
        }
        State::Verifying { .. } => "verifying the new slot".to_string(),
        State::Baking { .. } => "baking at 100%".to_string(),
        State::RollingBack { .. } => "rolling back".to_string(),
        State::RolledBack => "rolled back".to_string(),
        other => other.name().replace('_', " "),
    }
}

/// The deployment's message as it is now. `latest` is the newest change, in words.
pub fn deployment_view(deployment: &Deployment, events: &[Event], latest: &str) -> DeploymentView {
    let colour = match deployment.state {
        State::Succeeded => Colour::DARK_GREEN,
        State::RollingBack { .. } | State::RolledBack | State::Failed => Colour::RED,
        State::Aborted => Colour::DARK_GREY,
        State::Paused { .. } => Colour::GOLD,
        _ => Colour::BLUE,
    };
    let mut embed = CreateEmbed::new()
        .title(title(deployment))
        .colour(colour)
        .description(format!("```\n{}\n```", weights_bar(deployment.desired)))
        .field(
            "Release",
            format!(
                "{} ({}) by {}",
                deployment.release.version,
                short_commit(&deployment.release.commit),
                deployment.release.author
            ),
            true,
        );
    if let Some(index) = deployment.state.step()
        && let Some(step) = deployment.spec.plan.steps.get(index)
    {
        embed = embed.field(
            "Step",
            format!(
                "{} of {}: {}",
                index + 1,
                deployment.spec.plan.steps.len(),
                describe_step(deployment, step)
            ),
            true,
        );
    }
    let gates = gate_results(events);
    if !gates.is_empty() {
        embed = embed.field("Gates", gates, false);
    }
    if !deployment.approvals.is_empty() || awaiting_approval(deployment) {
        let names: Vec<&str> = deployment
            .approvals
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        let list = if names.is_empty() {
            "nobody yet".to_string()
        } else {
            names.join(", ")
        };
        embed = embed.field(
            "Approved by",
            format!(
                "{list} ({} of {})",
                deployment.approvals.len(),
                deployment.spec.approval.quorum
            ),
            false,
        );
    }
    if let Some(rollback) = &deployment.rollback {
        embed = embed.field("Rollback", rollback.reason.clone(), false);
    }
    if !latest.is_empty() {
        embed = embed.field("Latest", latest.to_string(), false);
    }
    embed = embed.footer(serenity::all::CreateEmbedFooter::new(format!(
        "deployment {}",
        deployment.id
    )));
    DeploymentView {
        embed,
        components: buttons(deployment),
    }
}

fn awaiting_approval(deployment: &Deployment) -> bool {
    matches!(
        deployment.state,
        State::Paused {
            reason: PauseReason::AwaitingApproval,
            ..
        }
    )
}

/// The buttons that fit the deployment's state: Approve and Reject while it waits for
/// approval, Promote now while it runs its steps or bakes, and Roll back until it is over.
pub fn buttons(deployment: &Deployment) -> Vec<CreateActionRow> {
    if deployment.state.is_terminal() || matches!(deployment.state, State::RollingBack { .. }) {
        return Vec::new();
    }
    let button = |action, label: &str, style| {
        CreateButton::new(Button::for_deployment(action, deployment).custom_id())
            .label(label)
            .style(style)
    };
    let mut row = Vec::new();
    if awaiting_approval(deployment) {
        row.push(button(
            ButtonAction::Approve,
            "Approve",
            ButtonStyle::Success,
        ));
        row.push(button(ButtonAction::Reject, "Reject", ButtonStyle::Danger));
    }
    if matches!(
        deployment.state,
        State::Progressing { .. } | State::Paused { .. } | State::Baking { .. }
    ) {
        row.push(button(
            ButtonAction::Promote,
            "Promote now",
            ButtonStyle::Primary,
        ));
    }
    row.push(button(
        ButtonAction::Rollback,
        "Roll back",
        ButtonStyle::Danger,
    ));
    vec![CreateActionRow::Buttons(row)]
}

/// The newest result of each gate, e.g. `health passed · smoke passed · alarms failed`.
fn gate_results(events: &[Event]) -> String {
    let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
    for event in events {
        let (gate, result) = match &event.kind {
            EventKind::GatePassed { gate } => (gate, "passed"),
            EventKind::GateFailed { gate } => (gate, "failed"),
            EventKind::GateWaiting { gate } => (gate, "waiting"),
            EventKind::GateInconclusive { gate } => (gate, "inconclusive"),
            _ => continue,
        };
        latest.insert(gate.as_str(), result);
    }
    latest
        .into_iter()
        .map(|(gate, result)| format!("{gate} {result}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn short_commit(commit: &str) -> &str {
    commit.get(..7).unwrap_or(commit)
}

/// A duration for a person, rounded to the second.
pub fn human_duration(duration: Duration) -> String {
    format_duration(Duration::from_secs(duration.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripcord_core::domain::Weight;

    #[test]
    fn the_weights_bar_shows_each_slot_in_proportion() {
        let weights = Weights::split(Slot::Green, Weight::new(10).unwrap());
        assert_eq!(
            weights_bar(weights),
            "blue  ██████████████████░░  90%\ngreen ██░░░░░░░░░░░░░░░░░░  10%"
        );
    }
}
