//! The slash commands: their definitions for registration, and what each one does.
//!
//! `/rollback service [reason]` shows the exact weight change with Confirm and Cancel;
//! Confirm takes the fast path (one weight change to 100% stable). `/promote`, `/pause`,
//! `/resume` and `/abort` are queued and applied by one pass at once. `/flag` changes a
//! feature flag (see `flag`). `/status`, `/history` and `/dora` read.

use std::time::Duration;

use ripcord_core::deployment::{CommandKind, Deployment};
use ripcord_core::domain::ServiceName;
use ripcord_core::dora::{dora, render_text};
use ripcord_core::engine::check_command;
use serenity::all::{
    ButtonStyle, CommandOptionType, CreateActionRow, CreateButton, CreateCommand,
    CreateCommandOption, InteractionContext, Permissions,
};

use crate::custom_id::{Button, ButtonAction};
use crate::interactions::{Interactions, Reply, SlashCommand};
use crate::render::{human_duration, rollback_change, weights_bar};
use crate::steer::{self, Verdict, active_deployment, unavailable};

/// The line of a rollback question that carries its reason to the Confirm click.
pub const REASON_LINE: &str = "Reason: ";

/// Commands that change traffic or a deployment's course are hidden by default from
/// members without "Manage Server"; a server admin can open them to other roles under
/// Server Settings → Integrations. Ripcord's own role checks apply on top.
pub const STEERING_PERMISSIONS: Permissions = Permissions::MANAGE_GUILD;

/// Every slash command, as `ripcord discord register` sends them.
pub fn definitions() -> Vec<CreateCommand> {
    let service = |required: bool| {
        CreateCommandOption::new(
            CommandOptionType::String,
            "service",
            "The service, e.g. web",
        )
        .required(required)
        .max_length(63)
    };
    let steering = |name: &str, description: &str| {
        CreateCommand::new(name)
            .description(description)
            .default_member_permissions(STEERING_PERMISSIONS)
            .contexts(vec![InteractionContext::Guild])
            .add_option(service(true))
    };
    let reading = |name: &str, description: &str| {
        CreateCommand::new(name)
            .description(description)
            .contexts(vec![InteractionContext::Guild])
    };
    vec![
        steering(
            "rollback",
            "Put all traffic back on the stable target group now (asks to confirm)",
        )
        .add_option(
            CreateCommandOption::new(CommandOptionType::String, "reason", "Why, for the history")
                .max_length(300),
        ),
        steering("promote", "Skip the remaining steps: go to 100% and bake"),
        steering(
            "pause",
            "Hold the deployment at its current step; alarms stay armed",
        ),
        steering("resume", "Continue a paused deployment"),
        steering(
            "abort",
            "Put traffic back on the stable target group and stop",
        ),
        CreateCommand::new("flag")
            .description("Turn a feature flag on or off, or set its rollout percentage")
            .default_member_permissions(STEERING_PERMISSIONS)
            .contexts(vec![InteractionContext::Guild])
            .add_option(
                CreateCommandOption::new(CommandOptionType::String, "name", "The flag")
                    .required(true)
                    .max_length(100),
            )
            .add_option(
                CreateCommandOption::new(
                    CommandOptionType::String,
                    "value",
                    "on, off, or a rollout percentage from 0 to 100",
                )
                .required(true)
                .max_length(8),
            ),
        reading(
            "status",
            "Active deployments: state, step, weights, approvals",
        )
        .add_option(service(false)),
        reading(
            "history",
            "A service's latest deployments and how they ended",
        )
        .add_option(service(true))
        .add_option(
            CreateCommandOption::new(CommandOptionType::Integer, "n", "How many (1 to 25)")
                .min_int_value(1)
                .max_int_value(25),
        ),
        reading(
            "dora",
            "DORA metrics: frequency, lead time, failure rate, time to restore",
        )
        .add_option(service(false))
        .add_option(
            CreateCommandOption::new(
                CommandOptionType::Integer,
                "days",
                "Window in days (1 to 365)",
            )
            .min_int_value(1)
            .max_int_value(365),
        ),
    ]
}

/// Runs one slash command.
pub async fn run(bot: &Interactions<'_>, command: &SlashCommand) -> Reply {
    let result = match command.name.as_str() {
        "rollback" => rollback(bot, command).await,
        "promote" => steer_command(bot, command, CommandKind::Promote).await,
        "pause" => steer_command(bot, command, CommandKind::Pause).await,
        "resume" => steer_command(bot, command, CommandKind::Resume).await,
        "abort" => steer_command(bot, command, CommandKind::Abort).await,
        "status" => status(bot, command).await,
        "history" => history(bot, command).await,
        "dora" => dora_command(bot, command).await,
        "flag" => crate::flag::run(bot, command).await,
        other => Err(format!(
            "/{other} is not one of Ripcord's commands (/rollback, /promote, /pause, /resume, /abort, /flag, /status, /history, /dora); run `ripcord discord register` if Discord shows an outdated list"
        )),
    };
    result.unwrap_or_else(Reply::ephemeral)
}

fn required_service(command: &SlashCommand) -> Result<&str, String> {
    command.text("service").ok_or_else(|| {
        format!(
            "/{} needs a service, e.g. /{} service:web",
            command.name, command.name
        )
    })
}

/// `/rollback service [reason]`: the question, with the exact weight change.
async fn rollback(bot: &Interactions<'_>, command: &SlashCommand) -> Result<Reply, String> {
    let deployment = active_deployment(bot, required_service(command)?).await?;
    let reason = command.text("reason").map(str::to_string);
    rollback_question(bot, &deployment, &command.actor, reason).await
}

/// Asks to confirm a rollback, showing the weights read back from the router now and
/// what they become. Someone who may not roll back is refused at once, and the refusal
/// is recorded.
pub async fn rollback_question(
    bot: &Interactions<'_>,
    deployment: &Deployment,
    actor: &ripcord_core::history::Actor,
    reason: Option<String>,
) -> Result<Reply, String> {
    if let Err(refusal) = check_command(deployment, actor, &CommandKind::Rollback) {
        // Queued so that the engine records the refusal; it refuses it the same way.
        steer::send(bot, deployment, actor, CommandKind::Rollback, reason).await;
        return Err(format!("Refused: {refusal}. Nothing was changed."));
    }
    let spec = &deployment.spec;
    let current = match bot.driver.providers.router(spec).read_weights(spec).await {
        Ok(weights) => weights,
        Err(_) => deployment.desired,
    };
    let mut content = format!(
        "Roll back **{} {}** now? In one change: `{}`. No step is re-run.",
        deployment.service,
        deployment.release.version,
        rollback_change(deployment, current)
    );
    if let Some(reason) = reason.as_deref().filter(|r| !r.trim().is_empty()) {
        let reason = reason.replace('\n', " ");
        content.push_str(&format!("\n{REASON_LINE}{reason}"));
    }
    let button = |action| Button::for_deployment(action, deployment).custom_id();
    let row = CreateActionRow::Buttons(vec![
        CreateButton::new(button(ButtonAction::ConfirmRollback))
            .label("Confirm rollback")
            .style(ButtonStyle::Danger),
        CreateButton::new(button(ButtonAction::CancelRollback))
            .label("Cancel")
            .style(ButtonStyle::Secondary),
    ]);
    Ok(Reply::ephemeral(content).with_components(vec![row]))
}

/// `/promote`, `/pause`, `/resume`, `/abort`: queued and applied by one pass now.
async fn steer_command(
    bot: &Interactions<'_>,
    command: &SlashCommand,
    kind: CommandKind,
) -> Result<Reply, String> {
    let deployment = active_deployment(bot, required_service(command)?).await?;
    match steer::send(bot, &deployment, &command.actor, kind, None).await {
        Verdict::Applied(what) => Ok(Reply::public(format!(
            "{} {}: {what}",
            deployment.service, deployment.release.version
        ))),
        Verdict::Refused(why) => Err(format!("Refused: {why}. Nothing was changed.")),
        Verdict::Queued(what) => Ok(Reply::ephemeral(what)),
    }
}

/// `/status [service]`.
async fn status(bot: &Interactions<'_>, command: &SlashCommand) -> Result<Reply, String> {
    let service = command
        .text("service")
        .map(|s| ServiceName::new(s.trim()).map_err(|e| e.0))
        .transpose()?;
    let mut active = bot
        .driver
        .store
        .active_deployments()
        .await
        .map_err(unavailable)?;
    active.retain(|d| service.as_ref().is_none_or(|s| &d.service == s));
    if active.is_empty() {
        return Ok(Reply::ephemeral(match service {
            Some(s) => format!("{s} has no active deployment."),
            None => "No deployment is active.".to_string(),
        }));
    }
    let lines: Vec<String> = active
        .iter()
        .map(|d| {
            let approvals = if d.approvals.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = d.approvals.iter().map(|a| a.name.as_str()).collect();
                format!(
                    "\napproved by {} ({} of {})",
                    names.join(", "),
                    d.approvals.len(),
                    d.spec.approval.quorum
                )
            };
            format!(
                "**{}**{approvals}\n```\n{}\n```",
                crate::render::title(d),
                weights_bar(d.desired)
            )
        })
        .collect();
    Ok(Reply::ephemeral(lines.join("\n")))
}

/// `/history service [n]`: the latest deployments of a service and how they ended.
async fn history(bot: &Interactions<'_>, command: &SlashCommand) -> Result<Reply, String> {
    let service = ServiceName::new(required_service(command)?.trim()).map_err(|e| e.0)?;
    let n = command.integer("n").unwrap_or(5).clamp(1, 25) as usize;
    let now = bot.driver.clock.now();
    let since = now.minus(Duration::from_secs(365 * 86_400));
    let deployments = bot
        .driver
        .store
        .deployments_since(Some(&service), since)
        .await
        .map_err(unavailable)?;
    if deployments.is_empty() {
        return Ok(Reply::ephemeral(format!(
            "{service} has no deployments in the last year."
        )));
    }
    let lines: Vec<String> = deployments
        .iter()
        .rev()
        .take(n)
        .map(|d| {
            let took = d
                .finished_at
                .map(|end| format!(" in {}", human_duration(end.since(d.created_at))))
                .unwrap_or_default();
            let why = d
                .rollback
                .as_ref()
                .map(|r| format!(" ({})", r.reason))
                .unwrap_or_default();
            format!(
                "`{}` {} {}{took}{why}, started {}",
                d.id,
                d.release.version,
                d.state.name().replace('_', " "),
                d.created_at.to_rfc3339()
            )
        })
        .collect();
    Ok(Reply::ephemeral(lines.join("\n")))
}

/// `/dora [service] [days]`.
async fn dora_command(bot: &Interactions<'_>, command: &SlashCommand) -> Result<Reply, String> {
    let service = command
        .text("service")
        .map(|s| ServiceName::new(s.trim()).map_err(|e| e.0))
        .transpose()?;
    let days = command.integer("days").unwrap_or(30).clamp(1, 365) as u64;
    let now = bot.driver.clock.now();
    let window = Duration::from_secs(days * 86_400);
    let from = now.minus(window);
    // A deployment counts in the window it finished in: look back one more window.
    let store = bot.driver.store;
    let mut events = Vec::new();
    for d in store
        .deployments_since(service.as_ref(), from.minus(window))
        .await
        .map_err(unavailable)?
    {
        events.extend(store.events(&d.id).await.map_err(unavailable)?);
    }
    let report = dora(&events, service.as_ref(), from, now);
    Ok(Reply::ephemeral(format!(
        "```\n{}\n```",
        render_text(&report)
    )))
}
