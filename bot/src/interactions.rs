//! The interactions endpoint: one handler over `http::Request`/`http::Response`, hosted
//! by the `interactions` Lambda function and by local mode alike.
//!
//! Every request is verified first (Ed25519 over timestamp and body, and a timestamp
//! within five minutes) and refused with 401 otherwise. A PING gets a PONG. A slash
//! command or a button click is worked out against the store and the engine; when that
//! takes longer than the budget (well inside Discord's three seconds) the handler
//! answers with a deferral (type 5 for commands, type 6 for clicks) and hands the rest
//! of the work back to the host, which finishes it through the interaction's follow-up
//! webhook. Nothing an interaction carries can make the handler answer 500: an unknown
//! command or button gets an ephemeral explanation.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use ripcord_api::error::ApiError;
use ripcord_core::driver::Driver;
use ripcord_core::history::Actor;
use ripcord_core::ports::FlagStore;
use serenity::all::{
    CommandDataOptionValue, CreateActionRow, CreateEmbed, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, EditInteractionResponse,
    Interaction, Member, User,
};

use crate::rest::DiscordRest;
use crate::verify::RequestVerifier;
use crate::{commands, components};

/// The largest body accepted; Discord's interactions are a few kilobytes.
pub const MAX_BODY: usize = 64 * 1024;

/// How long the handler works before it defers, leaving room inside Discord's three
/// seconds for the network both ways.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(2_000);

/// Work still running after the answer was sent; the host must drive it to the end.
pub type Remaining<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What the interactions endpoint needs besides the request.
pub struct Interactions<'a> {
    /// The driver over the store, the providers, the notifier and the clock.
    pub driver: Driver<'a>,
    /// The application's public key.
    pub verifier: &'a RequestVerifier,
    /// Discord's REST API, for finishing deferred answers.
    pub rest: &'a DiscordRest,
    /// The flag store that `/flag` changes; without one, `/flag` says it is not
    /// available.
    pub flags: Option<&'a dyn FlagStore>,
    /// How long to work before deferring.
    pub budget: Duration,
}

/// The handler's answer, and the work left to finish after it, if it deferred.
pub struct InteractionOutcome<'a> {
    /// The HTTP response for Discord.
    pub response: Response<String>,
    /// Work that continues after the response, finished through the follow-up webhook.
    pub remaining: Option<Remaining<'a>>,
}

impl std::fmt::Debug for InteractionOutcome<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InteractionOutcome")
            .field("response", &self.response)
            .field("deferred", &self.remaining.is_some())
            .finish()
    }
}

/// An answer worked out for an interaction.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Whether it replaces the message the button was on, or is a new message.
    pub update: bool,
    /// Whether only the person who asked sees it (new messages only).
    pub ephemeral: bool,
    /// Text.
    pub content: String,
    /// An embed, e.g. a deployment's view.
    pub embed: Option<CreateEmbed>,
    /// Buttons.
    pub components: Vec<CreateActionRow>,
}

impl Reply {
    /// An answer only the person who asked sees.
    pub fn ephemeral(content: impl Into<String>) -> Self {
        Self {
            update: false,
            ephemeral: true,
            content: content.into(),
            embed: None,
            components: Vec::new(),
        }
    }

    /// A new message for the channel.
    pub fn public(content: impl Into<String>) -> Self {
        Self {
            ephemeral: false,
            ..Self::ephemeral(content)
        }
    }

    /// A replacement for the message the button was on.
    pub fn update(content: impl Into<String>) -> Self {
        Self {
            update: true,
            ephemeral: false,
            ..Self::ephemeral(content)
        }
    }

    /// With an embed.
    pub fn with_embed(mut self, embed: CreateEmbed) -> Self {
        self.embed = Some(embed);
        self
    }

    /// With buttons.
    pub fn with_components(mut self, components: Vec<CreateActionRow>) -> Self {
        self.components = components;
        self
    }

    fn message(&self) -> CreateInteractionResponseMessage {
        let mut message = CreateInteractionResponseMessage::new()
            .content(self.content.clone())
            .components(self.components.clone());
        if let Some(embed) = &self.embed {
            message = message.embeds(vec![embed.clone()]);
        } else if self.update {
            message = message.embeds(Vec::new());
        }
        if !self.update {
            message = message.ephemeral(self.ephemeral);
        }
        message
    }

    fn into_response(self) -> CreateInteractionResponse {
        if self.update {
            CreateInteractionResponse::UpdateMessage(self.message())
        } else {
            CreateInteractionResponse::Message(self.message())
        }
    }
}

/// Who sent an interaction, as the history records them.
pub fn actor(member: Option<&Member>, user: &User) -> Actor {
    let user = member.map(|m| &m.user).unwrap_or(user);
    let name = member
        .and_then(|m| m.nick.clone())
        .or_else(|| user.global_name.clone())
        .unwrap_or_else(|| user.name.clone());
    Actor::Chat {
        user_id: user.id.to_string(),
        name,
        roles: member
            .map(|m| m.roles.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
    }
}

/// An option of a slash command, as given.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// A string option.
    Text(String),
    /// An integer option.
    Integer(i64),
}

/// A slash command, reduced to what the handlers need.
#[derive(Debug, Clone)]
pub struct SlashCommand {
    /// The command's name.
    pub name: String,
    /// Its options by name.
    pub options: Vec<(String, OptionValue)>,
    /// Who sent it.
    pub actor: Actor,
}

impl SlashCommand {
    /// A text option.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.options.iter().find_map(|(n, v)| match v {
            OptionValue::Text(t) if n == name => Some(t.as_str()),
            _ => None,
        })
    }

    /// An integer option.
    pub fn integer(&self, name: &str) -> Option<i64> {
        self.options.iter().find_map(|(n, v)| match v {
            OptionValue::Integer(i) if n == name => Some(*i),
            _ => None,
        })
    }
}

/// A button click, reduced to what the handlers need.
#[derive(Debug, Clone)]
pub struct Click {
    /// The button's custom id.
    pub custom_id: String,
    /// The text of the message the button is on.
    pub message_content: String,
    /// Who clicked.
    pub actor: Actor,
}

enum Job {
    Command(SlashCommand),
    Click(Click),
}

/// Handles one request to the interactions endpoint.
pub async fn handle<'a>(
    bot: &'a Interactions<'a>,
    request: Request<Vec<u8>>,
) -> InteractionOutcome<'a> {
    let (job, token) = match accept(bot, &request) {
        Ok(Accepted::Ping) => {
            return answer(CreateInteractionResponse::Pong);
        }
        Ok(Accepted::Job(job, token)) => (job, token),
        Ok(Accepted::Unsupported(kind)) => {
            return answer(
                Reply::ephemeral(format!(
                    "Ripcord does not handle {kind} interactions; use its slash commands and buttons"
                ))
                .into_response(),
            );
        }
        Err(error) => {
            return InteractionOutcome {
                response: error.into_response(),
                remaining: None,
            };
        }
    };
    let is_click = matches!(job, Job::Click(_));
    let mut work: Pin<Box<dyn Future<Output = Reply> + Send + 'a>> = Box::pin(async move {
        match job {
            Job::Command(command) => commands::run(bot, &command).await,
            Job::Click(click) => components::run(bot, &click).await,
        }
    });
    tokio::select! {
        // Work that is done is answered at once, even when the budget is spent too.
        biased;
        reply = &mut work => return answer(reply.into_response()),
        () = tokio::time::sleep(bot.budget) => {}
    }
    // Too slow to answer inline: defer, and finish through the follow-up webhook.
    let deferral = if is_click {
        CreateInteractionResponse::Acknowledge
    } else {
        CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(true))
    };
    let rest = bot.rest;
    let mut outcome = answer(deferral);
    outcome.remaining = Some(Box::pin(async move {
        let reply = work.await;
        finish(rest, &token, is_click, reply).await;
    }));
    outcome
}

/// Sends a deferred reply: an update of the clicked message or of the deferred answer
/// goes to `@original`; an ephemeral answer to a click is a follow-up message.
async fn finish(rest: &DiscordRest, token: &str, is_click: bool, reply: Reply) {
    let result = if is_click && !reply.update {
        let mut followup = CreateInteractionResponseFollowup::new()
            .content(reply.content)
            .ephemeral(reply.ephemeral)
            .components(reply.components);
        if let Some(embed) = reply.embed {
            followup = followup.embed(embed);
        }
        rest.create_followup(token, &followup).await
    } else {
        let mut edit = EditInteractionResponse::new()
            .content(reply.content)
            .components(reply.components);
        if let Some(embed) = reply.embed {
            edit = edit.embed(embed);
        }
        rest.edit_original_response(token, &edit).await
    };
    if let Err(error) = result {
        tracing::error!(%error, "a deferred interaction answer could not be sent");
    }
}

fn answer<'a>(response: CreateInteractionResponse) -> InteractionOutcome<'a> {
    let body = serde_json::to_string(&response).unwrap_or_else(|_| {
        r#"{"type":4,"data":{"content":"Ripcord could not encode its answer.","flags":64}}"#
            .to_string()
    });
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_default();
    InteractionOutcome {
        response,
        remaining: None,
    }
}

enum Accepted {
    Ping,
    Job(Job, String),
    Unsupported(&'static str),
}

fn accept(bot: &Interactions<'_>, request: &Request<Vec<u8>>) -> Result<Accepted, ApiError> {
    if request.method() != Method::POST {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the interactions endpoint takes POST requests from Discord only",
        ));
    }
    let body = request.body();
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {MAX_BODY} bytes; Discord's interactions are far smaller"),
        ));
    }
    bot.verifier
        .check(request.headers(), body, bot.driver.clock.now())
        .map_err(|why| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why.to_string()))?;
    let raw: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("body", format!("the body is not JSON: {e}")))?;
    match raw.get("type").and_then(serde_json::Value::as_u64) {
        Some(1) => return Ok(Accepted::Ping),
        Some(2 | 3) => {}
        Some(4) => return Ok(Accepted::Unsupported("autocomplete")),
        Some(5) => return Ok(Accepted::Unsupported("modal")),
        _ => {
            return Err(ApiError::bad_request(
                "type",
                "the interaction has no known `type`",
            ));
        }
    }
    let interaction: Interaction = serde_json::from_value(raw).map_err(|e| {
        ApiError::bad_request("body", format!("the interaction could not be read: {e}"))
    })?;
    match interaction {
        Interaction::Command(command) => {
            let actor = actor(command.member.as_deref(), &command.user);
            let options = command
                .data
                .options
                .iter()
                .filter_map(|option| {
                    let value = match &option.value {
                        CommandDataOptionValue::String(text) => OptionValue::Text(text.clone()),
                        CommandDataOptionValue::Integer(number) => OptionValue::Integer(*number),
                        _ => return None,
                    };
                    Some((option.name.clone(), value))
                })
                .collect();
            Ok(Accepted::Job(
                Job::Command(SlashCommand {
                    name: command.data.name.clone(),
                    options,
                    actor,
                }),
                command.token.clone(),
            ))
        }
        Interaction::Component(click) => Ok(Accepted::Job(
            Job::Click(Click {
                custom_id: click.data.custom_id.clone(),
                message_content: click.message.content.clone(),
                actor: actor(click.member.as_ref(), &click.user),
            }),
            click.token.clone(),
        )),
        _ => Ok(Accepted::Unsupported("this kind of")),
    }
}
