//! The notifiers: the core's `Notifier` port on Discord (one message per deployment,
//! edited in place, plus alerts and a final summary), on a Slack incoming webhook, and
//! on any URL that takes JSON; and `Notifiers`, which sends to each of them.

mod discord;
mod webhook;

pub use discord::DiscordNotifier;
pub use webhook::{JsonWebhookNotifier, SecretLookup, SlackNotifier};

use ripcord_core::engine::Notification;
use ripcord_core::ports::{BoxFuture, Notifier, PortError};

/// Sends every notification to each notifier in turn; one failing does not stop the
/// others, and the first failure is returned.
pub struct Notifiers<'a>(pub Vec<&'a dyn Notifier>);

impl Notifier for Notifiers<'_> {
    fn notify<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let mut first_error = None;
            for notifier in &self.0 {
                if let Err(error) = notifier.notify(notification).await {
                    tracing::warn!(%error, deployment = %notification.deployment_id, "a notifier failed");
                    first_error.get_or_insert(error);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}
