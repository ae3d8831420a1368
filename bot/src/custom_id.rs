//! The `custom_id` of every button Ripcord puts on a message: namespaced (`rc`),
//! versioned (`1`) and bound to one deployment and one stage of it, e.g.
//! `rc1:approve:web-20261126-0930-a1b2:s3`. A click is parsed back into a [`Button`]
//! in one place; anything else is refused with an explanation.

use ripcord_core::deployment::{Deployment, State};
use ripcord_core::domain::DeploymentId;

/// The namespace and version every custom id starts with.
pub const PREFIX: &str = "rc1";

/// What a button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonAction {
    /// Approve the approval step.
    Approve,
    /// Reject the approval step (traffic back, deployment aborted).
    Reject,
    /// Skip the remaining steps.
    Promote,
    /// Ask for a rollback (shows the weight change with Confirm / Cancel).
    Rollback,
    /// Confirm a rollback: traffic back on the stable slot now.
    ConfirmRollback,
    /// Dismiss a rollback question.
    CancelRollback,
}

impl ButtonAction {
    const ALL: [ButtonAction; 6] = [
        ButtonAction::Approve,
        ButtonAction::Reject,
        ButtonAction::Promote,
        ButtonAction::Rollback,
        ButtonAction::ConfirmRollback,
        ButtonAction::CancelRollback,
    ];

    /// The action's name inside a custom id.
    pub fn as_str(self) -> &'static str {
        match self {
            ButtonAction::Approve => "approve",
            ButtonAction::Reject => "reject",
            ButtonAction::Promote => "promote",
            ButtonAction::Rollback => "rollback",
            ButtonAction::ConfirmRollback => "rollback-confirm",
            ButtonAction::CancelRollback => "rollback-cancel",
        }
    }
}

/// A parsed button: what it does, to which deployment, made at which stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// What it does.
    pub action: ButtonAction,
    /// The deployment it belongs to.
    pub deployment: DeploymentId,
    /// The stage the deployment was at when the button was drawn (see [`stage`]).
    pub stage: String,
}

impl Button {
    /// A button for `deployment` at its current stage.
    pub fn for_deployment(action: ButtonAction, deployment: &Deployment) -> Self {
        Self {
            action,
            deployment: deployment.id.clone(),
            stage: stage(deployment),
        }
    }

    /// The custom id, at most 100 characters as Discord requires (deployment ids are
    /// at most 128, so a longer one is refused when the message is drawn).
    pub fn custom_id(&self) -> String {
        format!(
            "{PREFIX}:{}:{}:{}",
            self.action.as_str(),
            self.deployment.as_str(),
            self.stage
        )
    }

    /// Parses a custom id, saying what is wrong with one that is not Ripcord's.
    pub fn parse(custom_id: &str) -> Result<Self, String> {
        let mut parts = custom_id.split(':');
        let (Some(prefix), Some(action), Some(id), Some(stage), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(format!("button {custom_id:?} is not one of Ripcord's"));
        };
        if prefix != PREFIX {
            return Err(if prefix.starts_with("rc") {
                format!(
                    "this button was made by another version of Ripcord ({prefix}); use the newest message"
                )
            } else {
                format!("button {custom_id:?} is not one of Ripcord's")
            });
        }
        let action = ButtonAction::ALL
            .into_iter()
            .find(|a| a.as_str() == action)
            .ok_or_else(|| format!("unknown button action {action:?}"))?;
        let deployment = DeploymentId::new(id).map_err(|e| e.0)?;
        Ok(Self {
            action,
            deployment,
            stage: stage.to_string(),
        })
    }
}

/// The stage a deployment is at, as buttons are bound to it: `s<step>` (1-based) while
/// at a step, else the state's name. A button from another stage is stale.
pub fn stage(deployment: &Deployment) -> String {
    match deployment.state {
        State::Progressing { step } | State::Paused { step, .. } => format!("s{}", step + 1),
        other => other.name().to_string(),
    }
}

/// How a stage reads for a person.
pub fn describe_stage(stage: &str) -> String {
    match stage
        .strip_prefix('s')
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(step) => format!("step {step}"),
        None => stage.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_round_trip_and_refuse_what_is_not_ours() {
        let button = Button {
            action: ButtonAction::ConfirmRollback,
            deployment: DeploymentId::new("web-v43").unwrap(),
            stage: "s3".into(),
        };
        assert_eq!(button.custom_id(), "rc1:rollback-confirm:web-v43:s3");
        assert_eq!(Button::parse(&button.custom_id()), Ok(button));
        for (id, expected) in [
            ("rc0:approve:web-v43:s1", "another version of Ripcord"),
            ("rc1:launch:web-v43:s1", "unknown button action \"launch\""),
            ("other:thing", "not one of Ripcord's"),
            ("rc1:approve:web-v43:s1:extra", "not one of Ripcord's"),
        ] {
            let error = Button::parse(id).unwrap_err();
            assert!(error.contains(expected), "{id}: {error}");
        }
        assert_eq!(describe_stage("s2"), "step 2");
        assert_eq!(describe_stage("rolling_back"), "rolling back");
    }
}
