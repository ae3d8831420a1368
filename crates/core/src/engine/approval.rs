//! The approval policy: who may approve a deployment, and whether their approval counts;
//! and who may steer it otherwise (roll back, promote, pause, resume, abort, reject);
//! and, by the same role rules, who may change a feature flag by hand from chat.
//!
//! The chat layer calls `check_approver` to answer a click at once; the engine calls it
//! again when it applies the approval, so a refusal is the same wherever it is made.

use crate::config::{Config, Ramp, ServiceSpec};
use crate::deployment::{CommandKind, Deployment, PauseReason, State};
use crate::history::Actor;

/// Why an approval was refused, for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApprovalRefusal(pub String);

/// The identity an approval is counted under: chat user id, or `cli:<user>`.
pub fn approver_id(actor: &Actor) -> Option<String> {
    match actor {
        Actor::Chat { user_id, .. } => Some(user_id.clone()),
        Actor::Cli { user } => Some(format!("cli:{user}")),
        _ => None,
    }
}

/// Checks that `actor` may approve `deployment` at `step` now, and that their approval
/// would count (it is not stale, not the author's own, and not a second one).
///
/// CLI users are trusted operators (they hold write access to the table), so the role
/// lists apply to chat users only; the author rule applies to both.
pub fn check_approver(
    deployment: &Deployment,
    actor: &Actor,
    step: usize,
) -> Result<(), ApprovalRefusal> {
    let refuse = |why: String| Err(ApprovalRefusal(why));
    match deployment.state {
        State::Paused {
            step: current,
            reason: PauseReason::AwaitingApproval,
            ..
        } if current == step => {}
        State::Paused {
            step: current,
            reason: PauseReason::AwaitingApproval,
            ..
        } => {
            return refuse(format!(
                "this approval is for step {}, but the deployment now waits at step {}; use the newest message",
                step + 1,
                current + 1
            ));
        }
        state => {
            return refuse(format!(
                "the deployment is not waiting for approval (it is {state}); nothing was changed"
            ));
        }
    }
    check_person(deployment, actor)?;
    let id = approver_id(actor).expect("check_person admits only people");
    if deployment.approvals.iter().any(|a| a.user_id == id) {
        return refuse(format!(
            "{} has already approved this step; an approver counts once",
            describe(actor)
        ));
    }
    Ok(())
}

/// Checks that `actor` is a person the approval policy lets approve this deployment:
/// not its author (unless allowed), and, for chat users, holding an allowed role or
/// named as an approver. Skipping an approval step by promoting needs the same.
pub fn check_person(deployment: &Deployment, actor: &Actor) -> Result<(), ApprovalRefusal> {
    let refuse = |why: String| Err(ApprovalRefusal(why));
    if approver_id(actor).is_none() {
        return refuse("only people can approve a deployment".to_string());
    }
    let policy = &deployment.spec.approval;
    if !policy.allow_author && is_author(deployment, actor) {
        return refuse(format!(
            "{} is the author of {} and may not approve it; ask another approver",
            describe(actor),
            deployment.release.version
        ));
    }
    if let Actor::Chat { user_id, roles, .. } = actor {
        let restricted = !policy.roles.is_empty() || !policy.users.is_empty();
        let allowed =
            policy.users.contains(user_id) || roles.iter().any(|r| policy.roles.contains(r));
        if restricted && !allowed {
            return refuse(format!(
                "{} does not hold a role allowed to approve {} deployments",
                describe(actor),
                deployment.service
            ));
        }
    }
    Ok(())
}

/// Checks that `actor` may send `command` to `deployment` at all: chat users need one of
/// the service's deployer roles (when it lists any) to roll back, promote, pause, resume
/// or abort, and an approver's or a deployer's role to reject. Approvals are checked by
/// `check_approver`. Other actors (CI, alarms, the schedule, the CLI) are not restricted
/// here.
pub fn check_command(
    deployment: &Deployment,
    actor: &Actor,
    command: &CommandKind,
) -> Result<(), ApprovalRefusal> {
    let Actor::Chat { roles, .. } = actor else {
        return Ok(());
    };
    let deployers = &deployment.spec.chat.deployers;
    let is_deployer = deployers.is_empty() || roles.iter().any(|r| deployers.contains(r));
    match command {
        CommandKind::Approve { .. } | CommandKind::Refused { .. } => Ok(()),
        CommandKind::Reject { .. } => {
            let policy = &deployment.spec.approval;
            let unrestricted = policy.roles.is_empty() && policy.users.is_empty();
            let is_approver = unrestricted
                || approver_id(actor).is_some_and(|id| policy.users.contains(&id))
                || roles.iter().any(|r| policy.roles.contains(r));
            if is_approver || (is_deployer && !deployers.is_empty()) {
                Ok(())
            } else {
                Err(ApprovalRefusal(format!(
                    "{} holds neither an approver's nor a deployer's role for {}, so may not reject it",
                    describe(actor),
                    deployment.service
                )))
            }
        }
        _ if is_deployer => Ok(()),
        other => Err(ApprovalRefusal(format!(
            "{} does not hold a deployer role of {}, so may not {} it; ask someone who does",
            describe(actor),
            deployment.service,
            other.name().replace("rollback", "roll back")
        ))),
    }
}

fn describe(actor: &Actor) -> String {
    match actor {
        Actor::Chat { name, .. } => name.clone(),
        Actor::Cli { user } => user.clone(),
        other => other.describe(),
    }
}

/// Whether the actor is the deployment's author, by chat id (from the `[authors]` map)
/// or by CI login.
fn is_author(deployment: &Deployment, actor: &Actor) -> bool {
    let release = &deployment.release;
    match actor {
        Actor::Chat { user_id, name, .. } => {
            release.author_chat_id.as_deref() == Some(user_id.as_str())
                || name.eq_ignore_ascii_case(&release.author)
        }
        Actor::Cli { user } => user.eq_ignore_ascii_case(&release.author),
        _ => false,
    }
}

/// Checks that `actor` may change `flag` by hand from chat, under the same role rules
/// as approvals. A flag that `flag` services ramp follows their approval policies: a
/// chat user must be one each of them lets approve (its roles or users; a policy that
/// names nobody admits anyone). Any other flag follows the configuration-wide flag
/// approvers (`[flags]`, or its environment's approvers; none: anyone). On success,
/// says whose rule admitted the change, for the answer and the flag's history.
pub fn check_flag_change(
    config: &Config,
    flag: &str,
    actor: &Actor,
) -> Result<String, ApprovalRefusal> {
    let ramps: Vec<&ServiceSpec> = config
        .services
        .values()
        .filter(|s| matches!(&s.plan.ramp, Ramp::Flag(f) if f == flag))
        .collect();
    let Actor::Chat { user_id, roles, .. } = actor else {
        return Ok("not a chat user".to_string());
    };
    let holds = |allowed: &[String]| roles.iter().any(|r| allowed.contains(r));
    if ramps.is_empty() {
        let approvers = &config.flags.approvers;
        if approvers.is_empty() || holds(approvers) {
            return Ok("the flag approvers of [flags]".to_string());
        }
        return Err(ApprovalRefusal(format!(
            "{} does not hold a flag approver's role ([flags] approvers), so may not change flag {flag}",
            describe(actor)
        )));
    }
    for service in &ramps {
        let policy = &service.approval;
        let unrestricted = policy.roles.is_empty() && policy.users.is_empty();
        if !(unrestricted || policy.users.contains(user_id) || holds(&policy.roles)) {
            return Err(ApprovalRefusal(format!(
                "{} does not hold a role allowed to approve {}, which ramps flag {flag}, so may not change it",
                describe(actor),
                service.name
            )));
        }
    }
    let names: Vec<&str> = ramps.iter().map(|s| s.name.as_str()).collect();
    Ok(format!("the approvers of {}", names.join(", ")))
}
