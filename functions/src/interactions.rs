//! The interactions function: Discord's slash commands and buttons, through the bot
//! crate's handler, on a Function URL.
//!
//! The handler answers inside its budget when it can. When it defers, the deferral is
//! this invocation's response, and with `lambda_http` an invocation's response goes out
//! only when the handler returns; so the rest of the work cannot run inside the same
//! invocation without holding the deferral past Discord's three seconds. It is spawned
//! on the runtime instead, as every host of the handler does, and runs while the
//! container is active; Lambda may freeze the container between invocations, in which
//! case it resumes with the next one. A command is queued in the store before its
//! pass, and the controller's next pass applies a queued command even if the follow-up
//! message is never sent.

use http::{Request, Response};
use ripcord_aws::Secrets;
use ripcord_bot::{DiscordRest, Interactions, RequestVerifier};
use serenity::model::id::ApplicationId;

/// The setting holding the application's Ed25519 public key, 64 hex digits.
pub const PUBLIC_KEY: &str = "RIPCORD_DISCORD_PUBLIC_KEY";
/// The setting holding the application's id.
pub const APPLICATION_ID: &str = "RIPCORD_DISCORD_APPLICATION_ID";
/// The setting holding the bot's token.
pub const BOT_TOKEN: &str = "RIPCORD_DISCORD_BOT_TOKEN";

/// What the function needs from Discord's settings.
pub struct Discord {
    /// The application's public key.
    pub verifier: RequestVerifier,
    /// Discord's REST API with the bot's token, for deferred answers.
    pub rest: DiscordRest,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key and the token are left out on purpose.
        f.debug_struct("Discord")
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

impl Discord {
    /// Resolves the three settings (each from the environment, or from the SSM
    /// parameter named by `<NAME>_PARAM`). The error names the setting and what to set,
    /// never a value.
    pub async fn resolve(secrets: &Secrets) -> Result<Self, String> {
        let public_key = secrets.resolve(PUBLIC_KEY).await.map_err(|e| e.message)?;
        let verifier = RequestVerifier::from_hex(public_key.expose()).map_err(|e| e.to_string())?;
        let application = secrets
            .resolve(APPLICATION_ID)
            .await
            .map_err(|e| e.message)?;
        let application = match application.expose().trim().parse::<u64>() {
            Ok(id) if id > 0 => ApplicationId::new(id),
            _ => {
                return Err(format!(
                    "{APPLICATION_ID} is not a Discord id: copy \"Application ID\" from the application's General Information page"
                ));
            }
        };
        let token = secrets.resolve(BOT_TOKEN).await.map_err(|e| e.message)?;
        Ok(Self {
            verifier,
            rest: DiscordRest::new(token.expose(), application),
        })
    }
}

/// Handles one request: the handler's answer; a deferred answer's remaining work is
/// spawned on the runtime to finish through the interaction's follow-up webhook.
pub async fn handle(
    bot: &'static Interactions<'static>,
    request: Request<Vec<u8>>,
) -> Response<String> {
    let outcome = ripcord_bot::handle(bot, request).await;
    if let Some(remaining) = outcome.remaining {
        tokio::spawn(remaining);
    }
    outcome.response
}
