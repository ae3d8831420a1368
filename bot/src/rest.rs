//! Discord's REST API, as the bot uses it: serenity's routes and request building,
//! sent with one reqwest client so that rate limits (429) are honoured here, with the
//! wait Discord asks for, whether the requests go to Discord or to a local stand-in.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use ripcord_core::ports::PortError;
use serde::de::DeserializeOwned;
use serenity::http::{LightMethod, Route};
use serenity::model::id::{ApplicationId, ChannelId, GuildId, MessageId};

/// Discord's API base, which serenity's routes start with.
pub const DISCORD_API: &str = "https://discord.com";

/// How many times a request is sent again after a 429 before giving up.
pub const MAX_RATE_LIMIT_RETRIES: u32 = 4;

/// The longest wait a 429 may ask for; longer means a global limit or a ban, and the
/// request fails (transiently) instead of holding a Lambda function for it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A client for Discord's REST API with the bot's token.
#[derive(Clone)]
pub struct DiscordRest {
    client: Client,
    token: String,
    base: Option<String>,
    application_id: ApplicationId,
}

impl std::fmt::Debug for DiscordRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is left out on purpose.
        f.debug_struct("DiscordRest")
            .field("base", &self.base)
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

impl DiscordRest {
    /// A client for Discord itself. `token` is the bot token, without `Bot `.
    pub fn new(token: &str, application_id: ApplicationId) -> Self {
        Self {
            client: Client::builder()
                .use_rustls_tls()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            token: format!("Bot {}", token.trim()),
            base: None,
            application_id,
        }
    }

    /// Sends every request to `base` (e.g. `http://127.0.0.1:5001`) instead of Discord,
    /// as serenity's `HttpBuilder::proxy` does: for tests and local mode.
    pub fn with_base(mut self, base: impl Into<String>) -> Self {
        self.base = Some(base.into());
        self
    }

    /// The application the client acts for.
    pub fn application_id(&self) -> ApplicationId {
        self.application_id
    }

    /// Posts a message to a channel and returns its id.
    pub async fn create_message(
        &self,
        channel: ChannelId,
        body: &impl serde::Serialize,
    ) -> Result<MessageId, PortError> {
        #[derive(serde::Deserialize)]
        struct Created {
            id: MessageId,
        }
        let route = Route::ChannelMessages {
            channel_id: channel,
        };
        let created: Created = self.send_json(route, LightMethod::Post, body).await?;
        Ok(created.id)
    }

    /// Replaces a message's content, embeds and components.
    pub async fn edit_message(
        &self,
        channel: ChannelId,
        message: MessageId,
        body: &impl serde::Serialize,
    ) -> Result<(), PortError> {
        let route = Route::ChannelMessage {
            channel_id: channel,
            message_id: message,
        };
        self.send(route, LightMethod::Patch, Some(to_json(body)?))
            .await
            .map(drop)
    }

    /// Deletes a message.
    pub async fn delete_message(
        &self,
        channel: ChannelId,
        message: MessageId,
    ) -> Result<(), PortError> {
        let route = Route::ChannelMessage {
            channel_id: channel,
            message_id: message,
        };
        self.send(route, LightMethod::Delete, None).await.map(drop)
    }

    /// Edits the answer to an interaction through its follow-up webhook (the way a
    /// deferred answer is finished).
    pub async fn edit_original_response(
        &self,
        interaction_token: &str,
        body: &impl serde::Serialize,
    ) -> Result<(), PortError> {
        let route = Route::WebhookOriginalInteractionResponse {
            application_id: self.application_id,
            token: interaction_token,
        };
        self.send(route, LightMethod::Patch, Some(to_json(body)?))
            .await
            .map(drop)
    }

    /// Sends a follow-up message to an interaction (an ephemeral answer to a deferred
    /// click, for instance).
    pub async fn create_followup(
        &self,
        interaction_token: &str,
        body: &impl serde::Serialize,
    ) -> Result<(), PortError> {
        let route = Route::WebhookFollowupMessages {
            application_id: self.application_id,
            token: interaction_token,
        };
        self.send(route, LightMethod::Post, Some(to_json(body)?))
            .await
            .map(drop)
    }

    /// Replaces the application's slash commands, globally or in one guild, and
    /// returns how many Discord now has.
    pub async fn overwrite_commands(
        &self,
        guild: Option<GuildId>,
        commands: &impl serde::Serialize,
    ) -> Result<usize, PortError> {
        let route = match guild {
            Some(guild_id) => Route::GuildCommands {
                application_id: self.application_id,
                guild_id,
            },
            None => Route::Commands {
                application_id: self.application_id,
            },
        };
        let registered: Vec<serde_json::Value> =
            self.send_json(route, LightMethod::Put, commands).await?;
        Ok(registered.len())
    }

    async fn send_json<T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: &impl serde::Serialize,
    ) -> Result<T, PortError> {
        let path = route.path().to_string();
        let bytes = self.send(route, method, Some(to_json(body)?)).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            PortError::permanent(format!("Discord's answer to {path} could not be read: {e}"))
        })
    }

    /// Sends one request, waiting and sending it again when Discord answers 429.
    async fn send(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, PortError> {
        let what = format!("{} {}", method.reqwest_method(), redact_path(&route.path()));
        // The request is built here rather than by serenity's `Request::build`, whose
        // tracing span records the route, and with it an interaction's token.
        let mut url = route.path().into_owned();
        if let Some(base) = &self.base {
            url = url.replace(DISCORD_API, base.trim_end_matches('/'));
        }
        execute(&self.client, &what, || {
            let mut request = self
                .client
                .request(method.reqwest_method(), &url)
                .header(reqwest::header::AUTHORIZATION, &self.token)
                .header(reqwest::header::USER_AGENT, serenity::constants::USER_AGENT);
            if let Some(bytes) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            request.build().map_err(|_| {
                PortError::permanent(format!("{what}: the request could not be built"))
            })
        })
        .await
    }
}

/// Sends a request built by `build`, and sends it again (built anew) after the wait a
/// 429 asks for, in its `Retry-After` header or its JSON `retry_after`, at most
/// [`MAX_RATE_LIMIT_RETRIES`] times. `what` names the request in errors and logs; it
/// must not hold a secret (a token, a webhook URL).
pub async fn execute(
    client: &Client,
    what: &str,
    build: impl Fn() -> Result<reqwest::Request, PortError>,
) -> Result<Vec<u8>, PortError> {
    let mut attempt = 0;
    loop {
        let response = client
            .execute(build()?)
            .await
            .map_err(|e| PortError::transient(format!("{what}: {}", without_url(&e))))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS && attempt < MAX_RATE_LIMIT_RETRIES {
            let header = retry_after_header(response.headers());
            let body = response.bytes().await.unwrap_or_default();
            let wait = header
                .or_else(|| retry_after_body(&body))
                .unwrap_or(Duration::from_secs(1));
            if wait > MAX_RETRY_AFTER {
                return Err(PortError::transient(format!(
                    "{what}: rate limited for {:.1}s; try again later",
                    wait.as_secs_f64()
                )));
            }
            tracing::warn!(
                request = %what,
                wait_ms = wait.as_millis() as u64,
                "rate limited (429); waiting as asked"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
            continue;
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| PortError::transient(format!("{what}: {}", without_url(&e))))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let detail: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
        let message = format!("{what} answered {status}: {detail}");
        return Err(
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                PortError::transient(message)
            } else {
                PortError::permanent(message)
            },
        );
    }
}

/// A path with an interaction's token (the segment after `webhooks/<application>/`)
/// replaced, so that it can be logged.
pub fn redact_path(path: &str) -> String {
    let Some(start) = path.find("/webhooks/") else {
        return path.to_string();
    };
    let head = start + "/webhooks/".len();
    let mut segments: Vec<&str> = path[head..].split('/').collect();
    if segments.len() > 1 {
        segments[1] = "<token>";
    }
    format!("{}{}", &path[..head], segments.join("/"))
}

fn to_json(body: &impl serde::Serialize) -> Result<Vec<u8>, PortError> {
    serde_json::to_vec(body)
        .map_err(|e| PortError::permanent(format!("a Discord message could not be encoded: {e}")))
}

/// A reqwest error without its URL: an interaction's follow-up URL holds its token.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

/// `Retry-After` in seconds, which Discord may send with a fraction.
fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    seconds(value.trim().parse().ok()?)
}

/// The `retry_after` field of a 429's JSON body, in seconds.
fn retry_after_body(body: &[u8]) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    seconds(value.get("retry_after")?.as_f64()?)
}

fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_tokens_are_cut_from_paths() {
        assert_eq!(
            redact_path(
                "https://discord.com/api/v10/webhooks/123/aW50ZXJhY3Rpb24/messages/@original"
            ),
            "https://discord.com/api/v10/webhooks/123/<token>/messages/@original"
        );
        assert_eq!(
            redact_path("/api/v10/channels/4/messages"),
            "/api/v10/channels/4/messages"
        );
        assert_eq!(
            retry_after_body(br#"{"retry_after": 0.5}"#),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after_body(b"not json"), None);
    }
}
