//! Discord: one message per deployment, edited in place as it progresses, a separate
//! alert on rollback or failure that says why and mentions the on-call role, and a
//! final summary with the duration.
//!
//! The message's id is kept in the store's idempotency records, so that every pass,
//! in any process, edits the same message. Only the pass that claims the deployment's
//! creation key posts the message; others find its id, or skip an edit made while the
//! message is being posted (every edit draws the whole deployment, so the next one
//! catches up). Finding an id claims an empty record in a numbered slot when none is
//! there yet; the poster then records the id in the first slot nobody emptied.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ripcord_core::deployment::Deployment;
use ripcord_core::domain::DeploymentId;
use ripcord_core::engine::{Notification, NotificationKind};
use ripcord_core::ports::{BoxFuture, Clock, Notifier, PortError, Store, StoreError};
use ripcord_core::time::Timestamp;
use serenity::all::{
    ChannelId, CreateAllowedMentions, CreateMessage, EditMessage, MessageId, RoleId,
};

use crate::render::{deployment_view, human_duration, title};
use crate::rest::DiscordRest;

/// How long a deployment's message id is remembered.
const MESSAGE_ID_TTL: Duration = Duration::from_secs(90 * 86_400);

/// Numbered slots for a message id (see the module documentation).
const ID_SLOTS: u32 = 8;

/// The `Notifier` on Discord.
pub struct DiscordNotifier<'a> {
    rest: &'a DiscordRest,
    store: &'a dyn Store,
    clock: &'a dyn Clock,
    known: Mutex<HashMap<DeploymentId, MessageId>>,
}

impl<'a> DiscordNotifier<'a> {
    /// A notifier posting with `rest`, reading deployments from `store`.
    pub fn new(rest: &'a DiscordRest, store: &'a dyn Store, clock: &'a dyn Clock) -> Self {
        Self {
            rest,
            store,
            clock,
            known: Mutex::new(HashMap::new()),
        }
    }

    async fn send(&self, notification: &Notification) -> Result<(), PortError> {
        let Some(deployment) = self
            .store
            .deployment(&notification.deployment_id)
            .await
            .map_err(port)?
        else {
            return Ok(());
        };
        let Some(channel) = channel_of(&deployment)? else {
            return Ok(());
        };
        self.update_message(&deployment, channel, &notification.text)
            .await?;
        match notification.kind {
            NotificationKind::Progress => Ok(()),
            NotificationKind::Alert => self.alert(&deployment, channel, notification).await,
            NotificationKind::Summary => self.summary(&deployment, channel).await,
        }
    }

    /// Edits the deployment's message, or posts it if this pass is the one to.
    async fn update_message(
        &self,
        deployment: &Deployment,
        channel: ChannelId,
        latest: &str,
    ) -> Result<(), PortError> {
        let events = self.store.events(&deployment.id).await.map_err(port)?;
        let view = deployment_view(deployment, &events, latest);
        if let Some(message) = self.message_id(deployment).await? {
            let edit = EditMessage::new()
                .content("")
                .embed(view.embed)
                .components(view.components);
            return self.rest.edit_message(channel, message, &edit).await;
        }
        let claim = format!("discord-message:{}:poster", deployment.id);
        let expires = self.expiry(deployment);
        if self
            .store
            .claim_idempotency(&claim, "1", expires)
            .await
            .map_err(port)?
            .is_some()
        {
            // Another pass is posting it; its message shows the deployment as it was,
            // and the next notification edits it.
            return Ok(());
        }
        let create = CreateMessage::new()
            .embed(view.embed)
            .components(view.components);
        let posted = self.rest.create_message(channel, &create).await?;
        self.remember(deployment, posted).await
    }

    async fn alert(
        &self,
        deployment: &Deployment,
        channel: ChannelId,
        notification: &Notification,
    ) -> Result<(), PortError> {
        let role = on_call_role(deployment)?;
        let mention = role.map(|r| format!("<@&{r}> ")).unwrap_or_default();
        let content = format!(
            "{mention}**{}** {}: {}",
            deployment.service, deployment.release.version, notification.text
        );
        let mentions = CreateAllowedMentions::new().roles(role);
        let message = CreateMessage::new()
            .content(content)
            .allowed_mentions(mentions);
        self.rest.create_message(channel, &message).await.map(drop)
    }

    async fn summary(&self, deployment: &Deployment, channel: ChannelId) -> Result<(), PortError> {
        let end = deployment.finished_at.unwrap_or_else(|| self.clock.now());
        let mut content = format!(
            "**{}** in {} (deployment `{}`)",
            title(deployment),
            human_duration(end.since(deployment.created_at)),
            deployment.id
        );
        if let Some(rollback) = &deployment.rollback {
            content.push_str(&format!("\nWhy: {}", rollback.reason));
        }
        let message = CreateMessage::new()
            .content(content)
            .allowed_mentions(CreateAllowedMentions::new());
        self.rest.create_message(channel, &message).await.map(drop)
    }

    fn expiry(&self, deployment: &Deployment) -> Timestamp {
        deployment.created_at.plus(MESSAGE_ID_TTL)
    }

    fn slot_key(deployment: &Deployment, slot: u32) -> String {
        format!("discord-message:{}:{slot}", deployment.id)
    }

    /// The id of the deployment's message, if it has been posted and recorded.
    async fn message_id(&self, deployment: &Deployment) -> Result<Option<MessageId>, PortError> {
        if let Some(id) = self.cached(&deployment.id) {
            return Ok(Some(id));
        }
        for slot in 0..ID_SLOTS {
            let key = Self::slot_key(deployment, slot);
            let found = self
                .store
                .claim_idempotency(&key, "", self.expiry(deployment))
                .await
                .map_err(port)?;
            match found.as_deref() {
                // Newly claimed (empty): nothing recorded past this slot.
                None => return Ok(None),
                Some("") => continue,
                Some(text) => {
                    let id = parse_message_id(text)?;
                    self.cache(&deployment.id, id);
                    return Ok(Some(id));
                }
            }
        }
        Ok(None)
    }

    /// Records the id of the message just posted, in the first slot nobody emptied.
    async fn remember(&self, deployment: &Deployment, posted: MessageId) -> Result<(), PortError> {
        let text = posted.to_string();
        for slot in 0..ID_SLOTS {
            let key = Self::slot_key(deployment, slot);
            let found = self
                .store
                .claim_idempotency(&key, &text, self.expiry(deployment))
                .await
                .map_err(port)?;
            match found.as_deref() {
                None => {
                    self.cache(&deployment.id, posted);
                    return Ok(());
                }
                Some("") => continue,
                Some(other) if other == text => return Ok(()),
                Some(other) => {
                    // Only the poster records an id, so this cannot happen; if it does,
                    // keep the recorded message and drop ours.
                    let kept = parse_message_id(other)?;
                    self.cache(&deployment.id, kept);
                    let channel = channel_of(deployment)?.expect("checked by the caller");
                    return self.rest.delete_message(channel, posted).await;
                }
            }
        }
        Err(PortError::transient(format!(
            "the Discord message of {} could not be recorded: all {ID_SLOTS} slots are taken",
            deployment.id
        )))
    }

    fn cached(&self, id: &DeploymentId) -> Option<MessageId> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
    }

    fn cache(&self, id: &DeploymentId, message: MessageId) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), message);
    }
}

impl Notifier for DiscordNotifier<'_> {
    fn notify<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(self.send(notification))
    }
}

fn port(error: StoreError) -> PortError {
    match error {
        StoreError::Unavailable(error) => error,
        other => PortError::transient(other.to_string()),
    }
}

fn snowflake(text: &str, what: &str) -> Result<u64, PortError> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            PortError::permanent(format!(
                "{what} {text:?} is not a Discord id; copy it with Developer Mode on"
            ))
        })
}

fn channel_of(deployment: &Deployment) -> Result<Option<ChannelId>, PortError> {
    deployment
        .spec
        .notifications
        .discord_channel
        .as_deref()
        .map(|c| snowflake(c, "discord_channel").map(ChannelId::new))
        .transpose()
}

fn on_call_role(deployment: &Deployment) -> Result<Option<RoleId>, PortError> {
    deployment
        .spec
        .notifications
        .on_call_role
        .as_deref()
        .map(|r| snowflake(r, "on_call_role").map(RoleId::new))
        .transpose()
}

fn parse_message_id(text: &str) -> Result<MessageId, PortError> {
    snowflake(text, "recorded message id").map(MessageId::new)
}
