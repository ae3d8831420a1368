//! What slash commands and buttons share: finding a service's active deployment, and
//! sending it a command the way every command goes, queued in the store and applied by
//! one pass of the driver, so that the engine decides and the history records every
//! request, applied or refused, with the user's id, name and roles.

use ripcord_core::deployment::{CommandKind, Deployment};
use ripcord_core::domain::ServiceName;
use ripcord_core::history::{Actor, Event, EventKind};
use ripcord_core::ports::StoreError;

use crate::interactions::Interactions;

/// What became of a command after the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Applied; what the history says happened.
    Applied(String),
    /// Refused; why, from the history.
    Refused(String),
    /// Queued, but the pass did not get to it; the next one will.
    Queued(String),
}

/// The active deployment of `service`, or a sentence saying why there is none.
pub async fn active_deployment(
    bot: &Interactions<'_>,
    service: &str,
) -> Result<Deployment, String> {
    let name = ServiceName::new(service.trim()).map_err(|e| e.0)?;
    let active = bot
        .driver
        .store
        .active_deployments()
        .await
        .map_err(unavailable)?;
    active
        .into_iter()
        .find(|d| d.service == name)
        .ok_or_else(|| format!("{name} has no active deployment; `/status` lists the active ones"))
}

/// Queues `kind` for the deployment as `actor` and runs a pass, then reads what the
/// history says became of it.
pub async fn send(
    bot: &Interactions<'_>,
    deployment: &Deployment,
    actor: &Actor,
    kind: CommandKind,
    reason: Option<String>,
) -> Verdict {
    let store = bot.driver.store;
    let now = bot.driver.clock.now();
    if let Err(error) = store
        .enqueue_command(&deployment.id, actor.clone(), kind.clone(), reason, now)
        .await
    {
        return Verdict::Refused(format!(
            "the request could not be stored ({error}); nothing was changed, try again"
        ));
    }
    let pass = bot.driver.reconcile(&deployment.id).await;
    let events = store.events(&deployment.id).await.unwrap_or_default();
    match verdict_of(&events, actor, &kind, now) {
        Some(verdict) => verdict,
        None => Verdict::Queued(match pass {
            Ok(_) => "the request is queued; the controller's next pass applies it".to_string(),
            Err(error) => format!(
                "the request is queued, and the controller's next pass applies it (this pass stopped: {error})"
            ),
        }),
    }
}

/// The newest record of `actor`'s `kind` in the history, made since `since`.
fn verdict_of(
    events: &[Event],
    actor: &Actor,
    kind: &CommandKind,
    since: ripcord_core::time::Timestamp,
) -> Option<Verdict> {
    let mine = |e: &&Event| &e.actor == actor && e.at >= since;
    events
        .iter()
        .rev()
        .filter(mine)
        .find_map(|e| match &e.kind {
            EventKind::CommandApplied { command } if command == kind => {
                Some(Verdict::Applied(e.reason.clone()))
            }
            EventKind::CommandRefused { command } if command == kind => {
                Some(Verdict::Refused(e.reason.clone()))
            }
            EventKind::Approved { .. } if matches!(kind, CommandKind::Approve { .. }) => {
                Some(Verdict::Applied(e.reason.clone()))
            }
            _ => None,
        })
}

/// A store failure for a person.
pub fn unavailable(error: StoreError) -> String {
    format!("Ripcord's store could not be read ({error}); try again in a moment")
}
