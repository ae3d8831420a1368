//! The buttons: one dispatcher that parses a click's namespaced custom id and acts on
//! the deployment and stage it was drawn for.
//!
//! A button from an earlier stage changes nothing: the click is recorded as refused
//! and answered ephemerally. Approve, Reject, Promote now and a confirmed rollback are
//! queued and applied by one pass, so the engine's checks (roles, the author rule, the
//! quorum of distinct approvers) decide, and a refusal is answered with its reason.

use ripcord_core::deployment::{CommandKind, Deployment};
use ripcord_core::domain::Weights;

use crate::commands::{REASON_LINE, rollback_question};
use crate::custom_id::{Button, ButtonAction, describe_stage, stage};
use crate::interactions::{Click, Interactions, Reply};
use crate::render::{deployment_view, weights_bar};
use crate::steer::{self, Verdict, unavailable};

/// Handles one click.
pub async fn run(bot: &Interactions<'_>, click: &Click) -> Reply {
    match run_inner(bot, click).await {
        Ok(reply) => reply,
        Err(why) => Reply::ephemeral(why),
    }
}

async fn run_inner(bot: &Interactions<'_>, click: &Click) -> Result<Reply, String> {
    let button = Button::parse(&click.custom_id)?;
    let deployment = bot
        .driver
        .store
        .deployment(&button.deployment)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| format!("deployment {} is not known to Ripcord", button.deployment))?;
    if button.action == ButtonAction::CancelRollback {
        return Ok(Reply::update("Rollback cancelled; nothing was changed."));
    }
    if deployment.state.is_terminal() {
        return Err(format!(
            "{} {} has already {}; nothing was changed.",
            deployment.service,
            deployment.release.version,
            deployment.state.name().replace('_', " ")
        ));
    }
    let actor = &click.actor;
    match button.action {
        // Pulling the ripcord is never refused for being late: the question shows the
        // weights as they are now.
        ButtonAction::Rollback => rollback_question(bot, &deployment, actor, None).await,
        ButtonAction::ConfirmRollback => {
            let reason = click
                .message_content
                .lines()
                .find_map(|line| line.strip_prefix(REASON_LINE))
                .map(str::to_string);
            match steer::send(bot, &deployment, actor, CommandKind::Rollback, reason).await {
                Verdict::Applied(_) => {
                    let after = read_back(bot, &deployment).await;
                    Ok(Reply::update(format!(
                        "Rolled back {} {}: traffic is back on {}.\n```\n{}\n```",
                        deployment.service,
                        deployment.release.version,
                        deployment.stable.as_str(),
                        weights_bar(after)
                    )))
                }
                Verdict::Refused(why) => Err(format!("Refused: {why}. Nothing was changed.")),
                Verdict::Queued(what) => Ok(Reply::update(what)),
            }
        }
        ButtonAction::Approve | ButtonAction::Reject | ButtonAction::Promote => {
            let now_at = stage(&deployment);
            let kind = match (button.action, deployment.state.step()) {
                (ButtonAction::Approve, Some(step)) => CommandKind::Approve { step },
                (ButtonAction::Reject, Some(step)) => CommandKind::Reject { step },
                _ => CommandKind::Promote,
            };
            if button.stage != now_at {
                let why = format!(
                    "this button is from {}, but {} {} is now at {}; use the newest message",
                    describe_stage(&button.stage),
                    deployment.service,
                    deployment.release.version,
                    describe_stage(&now_at)
                );
                let refused = CommandKind::Refused {
                    asked: button.action.as_str().to_string(),
                    why: why.clone(),
                };
                steer::send(bot, &deployment, actor, refused, None).await;
                return Err(format!("{why}. Nothing was changed."));
            }
            match steer::send(bot, &deployment, actor, kind, None).await {
                Verdict::Applied(what) => updated_view(bot, &deployment, &what).await,
                Verdict::Refused(why) => Err(format!("Refused: {why}. Nothing was changed.")),
                Verdict::Queued(what) => Err(what),
            }
        }
        ButtonAction::CancelRollback => unreachable!("handled above"),
    }
}

/// The deployment's message as it is after the pass.
async fn updated_view(
    bot: &Interactions<'_>,
    before: &Deployment,
    latest: &str,
) -> Result<Reply, String> {
    let store = bot.driver.store;
    let deployment = store
        .deployment(&before.id)
        .await
        .map_err(unavailable)?
        .unwrap_or_else(|| before.clone());
    let events = store.events(&deployment.id).await.unwrap_or_default();
    let view = deployment_view(&deployment, &events, latest);
    Ok(Reply::update(String::new())
        .with_embed(view.embed)
        .with_components(view.components))
}

async fn read_back(bot: &Interactions<'_>, deployment: &Deployment) -> Weights {
    let spec = &deployment.spec;
    match bot.driver.providers.router(spec).read_weights(spec).await {
        Ok(weights) => weights,
        Err(_) => Weights::all_on(deployment.stable),
    }
}
