//! Notifications to a Slack incoming webhook (its URL kept as an SSM parameter) and to
//! any URL that takes JSON, with 429s honoured as for Discord. Neither URL ever
//! appears in an error or a log line: a Slack webhook URL is a credential.

use std::time::Duration;

use reqwest::Client;
use ripcord_core::deployment::Deployment;
use ripcord_core::engine::{Notification, NotificationKind};
use ripcord_core::ports::{BoxFuture, Notifier, PortError, Store};
use serde_json::json;

use crate::render::weights_bar;
use crate::rest::execute;

/// Reads a secret by name (an SSM parameter on AWS).
pub trait SecretLookup: Send + Sync {
    /// The secret's value.
    fn secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, PortError>>;
}

fn client() -> Client {
    Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

async fn deployment_of(
    store: &dyn Store,
    notification: &Notification,
) -> Result<Option<Deployment>, PortError> {
    store
        .deployment(&notification.deployment_id)
        .await
        .map_err(|e| PortError::transient(e.to_string()))
}

async fn post_json(
    client: &Client,
    what: &str,
    url: &str,
    body: &serde_json::Value,
) -> Result<(), PortError> {
    let bytes =
        serde_json::to_vec(body).map_err(|e| PortError::permanent(format!("{what}: {e}")))?;
    execute(client, what, || {
        client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes.clone())
            .build()
            .map_err(|_| PortError::permanent(format!("{what}: the URL is not valid")))
    })
    .await
    .map(drop)
}

/// Posts every notification of services with `slack_webhook_param` to that Slack
/// incoming webhook.
pub struct SlackNotifier<'a> {
    client: Client,
    store: &'a dyn Store,
    secrets: &'a dyn SecretLookup,
}

impl<'a> SlackNotifier<'a> {
    /// A notifier reading deployments from `store` and webhook URLs from `secrets`.
    pub fn new(store: &'a dyn Store, secrets: &'a dyn SecretLookup) -> Self {
        Self {
            client: client(),
            store,
            secrets,
        }
    }

    async fn send(&self, notification: &Notification) -> Result<(), PortError> {
        let Some(deployment) = deployment_of(self.store, notification).await? else {
            return Ok(());
        };
        let Some(param) = deployment.spec.notifications.slack_webhook_param.as_deref() else {
            return Ok(());
        };
        let url = self.secrets.secret(param).await?;
        let icon = match notification.kind {
            NotificationKind::Alert => ":rotating_light: ",
            NotificationKind::Summary => ":checkered_flag: ",
            NotificationKind::Progress => "",
        };
        let text = format!(
            "{icon}*{} {}* ({}): {}\n```{}```",
            notification.service,
            notification.version,
            notification.state.name().replace('_', " "),
            notification.text,
            weights_bar(notification.weights)
        );
        let what = format!("Slack webhook of {}", notification.service);
        post_json(&self.client, &what, url.trim(), &json!({ "text": text })).await
    }
}

impl Notifier for SlackNotifier<'_> {
    fn notify<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(self.send(notification))
    }
}

/// Posts every notification of services with `webhook_url`, as JSON: the notification
/// itself (`deployment_id`, `service`, `version`, `kind`, `state`, `weights`, `canary`,
/// `text`).
pub struct JsonWebhookNotifier<'a> {
    client: Client,
    store: &'a dyn Store,
}

impl<'a> JsonWebhookNotifier<'a> {
    /// A notifier reading deployments from `store`.
    pub fn new(store: &'a dyn Store) -> Self {
        Self {
            client: client(),
            store,
        }
    }

    async fn send(&self, notification: &Notification) -> Result<(), PortError> {
        let Some(deployment) = deployment_of(self.store, notification).await? else {
            return Ok(());
        };
        let Some(url) = deployment.spec.notifications.webhook_url.as_deref() else {
            return Ok(());
        };
        let body = serde_json::to_value(notification).map_err(|e| {
            PortError::permanent(format!("a notification could not be encoded: {e}"))
        })?;
        let what = format!("JSON webhook of {}", notification.service);
        post_json(&self.client, &what, url, &body).await
    }
}

impl Notifier for JsonWebhookNotifier<'_> {
    fn notify<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(self.send(notification))
    }
}
