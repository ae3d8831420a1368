//! Discord's interactions on local mode's control port, at `POST /discord/interactions`:
//! the bot crate's handler (the one the `interactions` Lambda function hosts), with the
//! same Ed25519 and timestamp check, over the local store, flag store and proxies, so a
//! slash command or a click is applied by local mode's own driver at once.
//!
//! Discord's settings come from the same variables the Lambda function reads, as plain
//! environment variables only (local mode has no SSM). Without them the route answers
//! 404 saying which variable to set.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use ripcord_api::error::ApiError;
use ripcord_bot::interactions::DEFAULT_BUDGET;
use ripcord_bot::{DiscordRest, Interactions, RequestVerifier};
use serenity::model::id::ApplicationId;

use crate::runtime::Shared;

/// The path Discord's "Interactions Endpoint URL" points at on the control port.
pub const INTERACTIONS_PATH: &str = "/discord/interactions";

/// The variable holding the application's Ed25519 public key, 64 hex digits.
pub const PUBLIC_KEY: &str = "RIPCORD_DISCORD_PUBLIC_KEY";
/// The variable holding the application's id.
pub const APPLICATION_ID: &str = "RIPCORD_DISCORD_APPLICATION_ID";
/// The variable holding the bot's token.
pub const BOT_TOKEN: &str = "RIPCORD_DISCORD_BOT_TOKEN";

/// What local mode needs to serve Discord's interactions.
#[derive(Clone)]
pub struct LocalDiscord {
    /// The application's public key.
    pub verifier: RequestVerifier,
    /// Discord's REST API with the bot's token, for deferred answers.
    pub rest: DiscordRest,
}

impl std::fmt::Debug for LocalDiscord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key and the token are left out on purpose.
        f.debug_struct("LocalDiscord")
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

impl LocalDiscord {
    /// Reads the three settings from the environment: `None` when the public key is
    /// not set (the route then answers 404); an error naming the variable, never its
    /// value, when one is set wrongly or the others are missing.
    pub fn from_env() -> Result<Option<Self>, String> {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let Some(public_key) = read(PUBLIC_KEY) else {
            return Ok(None);
        };
        let missing = |name: &str| {
            format!(
                "{PUBLIC_KEY} is set but {name} is not: set both, or neither to leave Discord off"
            )
        };
        let application = read(APPLICATION_ID).ok_or_else(|| missing(APPLICATION_ID))?;
        let token = read(BOT_TOKEN).ok_or_else(|| missing(BOT_TOKEN))?;
        Self::new(&public_key, &application, &token).map(Some)
    }

    /// The settings from their values: the public key in hex, the application id and
    /// the bot token.
    pub fn new(public_key: &str, application_id: &str, bot_token: &str) -> Result<Self, String> {
        let verifier = RequestVerifier::from_hex(public_key).map_err(|e| e.to_string())?;
        let application = match application_id.trim().parse::<u64>() {
            Ok(id) if id > 0 => ApplicationId::new(id),
            _ => {
                return Err(format!(
                    "{APPLICATION_ID} is not a Discord id: copy \"Application ID\" from the application's General Information page"
                ));
            }
        };
        Ok(Self {
            verifier,
            rest: DiscordRest::new(bot_token, application),
        })
    }
}

/// Answers one request to the interactions route. The handler runs on a task of its
/// own that holds the runtime's state, so that a deferred answer's remaining work
/// carries on after the response has gone back, as on Lambda.
pub(crate) async fn handle(shared: &Arc<Shared>, request: Request<Vec<u8>>) -> Response<String> {
    if shared.discord.is_none() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "discord_not_configured",
            format!(
                "Discord is not configured: set {PUBLIC_KEY} (and {APPLICATION_ID} and {BOT_TOKEN}) before `ripcord up` to serve interactions at {INTERACTIONS_PATH}"
            ),
        )
        .into_response();
    }
    let shared = shared.clone();
    let (answer, answered) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Some(discord) = &shared.discord else {
            return;
        };
        let bot = Interactions {
            driver: shared.driver(),
            verifier: &discord.verifier,
            rest: &discord.rest,
            flags: Some(&*shared.store),
            budget: DEFAULT_BUDGET,
        };
        let outcome = ripcord_bot::handle(&bot, request).await;
        // A /flag change is served by OFREP at its next request, not after its cache's
        // refresh interval.
        shared.ofrep.invalidate();
        let _ = answer.send(outcome.response);
        if let Some(remaining) = outcome.remaining {
            remaining.await;
        }
        // A command may have changed a deployment: the controller loop looks again.
        shared.wake.notify_one();
    });
    answered.await.unwrap_or_else(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the interaction's handler stopped before answering; local mode's log says why",
        )
        .into_response()
    })
}
