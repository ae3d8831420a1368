//! `/flag name on|off|PERCENT`: a feature flag's switch or rollout changed by hand from
//! chat, through the flag store.
//!
//! Who may: the engine's rule for flags (`check_flag_change`), read from the newest
//! stored configuration: the approvers of the `flag` services that ramp the flag, or
//! the configuration-wide flag approvers for any other flag. A flag that an active flag
//! deployment is ramping is left to that deployment (`/pause`, `/rollback`,
//! `/promote`), so that the engine's weights and the flag never disagree. Every change
//! is one conditional write on the version read, kept in the flag's history with the
//! chat user's id, name and roles; bad input and refusals write nothing.

use ripcord_core::config::{Config, Ramp, parse_config};
use ripcord_core::domain::Weight;
use ripcord_core::engine::check_flag_change;
use ripcord_core::flags::stored::{
    format_percent, is_enabled, rollout, with_enabled, with_rollout,
};
use ripcord_core::history::Actor;
use ripcord_core::ports::{FlagRecordKind, FlagStoreError, FlagWrite};

use crate::interactions::{Interactions, Reply, SlashCommand};
use crate::steer::unavailable;

/// What `/flag` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChangeRequest {
    /// Turn the switch on or off.
    Switch(bool),
    /// Set every `flexibleRollout` strategy to this percentage.
    Rollout(Weight),
}

impl FlagChangeRequest {
    /// Reads `on`, `off`, or a whole percentage from 0 to 100 (`25` or `25%`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        match text.to_ascii_lowercase().as_str() {
            "on" => return Ok(Self::Switch(true)),
            "off" => return Ok(Self::Switch(false)),
            _ => {}
        }
        let number = text.strip_suffix('%').unwrap_or(text).trim();
        let percent: u32 = number.parse().map_err(|_| {
            format!(
                "`{text}` is not on, off or a whole percentage from 0 to 100, e.g. /flag name:checkout value:25"
            )
        })?;
        Weight::new(percent)
            .map(Self::Rollout)
            .map_err(|_| format!("{percent}% is over 100%: give a percentage from 0 to 100"))
    }
}

/// Runs `/flag`.
pub async fn run(bot: &Interactions<'_>, command: &SlashCommand) -> Result<Reply, String> {
    let Some(flags) = bot.flags else {
        return Err(
            "/flag is not available here: this Ripcord has no flag store configured".to_string(),
        );
    };
    let name = command
        .text("name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or("/flag needs a flag name, e.g. /flag name:checkout value:on")?;
    let request = FlagChangeRequest::parse(command.text("value").unwrap_or(""))?;
    let config = stored_config(bot).await?;
    let rule = check_flag_change(&config, name, &command.actor)
        .map_err(|refusal| format!("Refused: {refusal}. Nothing was changed."))?;
    let active = bot
        .driver
        .store
        .active_deployments()
        .await
        .map_err(unavailable)?;
    if let Some(d) = active
        .iter()
        .find(|d| matches!(&d.spec.plan.ramp, Ramp::Flag(f) if f == name))
    {
        return Err(format!(
            "Refused: flag {name} is being ramped by {} {} ({}); use /pause, /rollback or /promote {} instead. Nothing was changed.",
            d.service, d.release.version, d.id, d.service
        ));
    }
    let record = flags
        .flag_record(FlagRecordKind::Flag, name)
        .await
        .map_err(flag_unavailable)?
        .ok_or_else(|| {
            format!("There is no flag {name:?}; `ripcord flags list` shows the flags. Nothing was changed.")
        })?;
    let (definition, summary) = match request {
        FlagChangeRequest::Switch(on) => {
            if is_enabled(&record.definition) == on {
                return Ok(Reply::ephemeral(format!(
                    "Flag {name} is already {}; nothing was changed.",
                    if on { "on" } else { "off" }
                )));
            }
            let word = if on { "enabled" } else { "disabled" };
            (
                with_enabled(name, &record.definition, on).map_err(|e| e.to_string())?,
                word.to_string(),
            )
        }
        FlagChangeRequest::Rollout(weight) => {
            let before = rollout(&record.definition);
            let definition = with_rollout(name, &record.definition, weight)
                .map_err(|e| format!("{e}. Nothing was changed."))?;
            if definition == record.definition {
                return Ok(Reply::ephemeral(format!(
                    "Flag {name} is already at rollout {}%; nothing was changed.",
                    weight.get()
                )));
            }
            let before = before.map_or_else(|| "-".to_string(), format_percent);
            (definition, format!("rollout {before} → {}%", weight.get()))
        }
    };
    let who = describe(&command.actor);
    let write = FlagWrite {
        kind: FlagRecordKind::Flag,
        name: name.to_string(),
        expected_version: record.version,
        definition,
        at: bot.driver.clock.now(),
        actor: command.actor.clone(),
        summary: format!("{summary} from chat by {who}, allowed as one of {rule}"),
    };
    let stored = flags.put_flag_record(write).await.map_err(|e| match e {
        FlagStoreError::Conflict { .. } => format!(
            "Flag {name} changed while this was being applied; nothing was changed. Look at it again and repeat /flag if still needed."
        ),
        other => flag_unavailable(other),
    })?;
    Ok(Reply::public(format!(
        "Flag **{name}**: {summary} by {who} (version {}).",
        stored.version
    )))
}

/// The newest stored configuration, which says who may change which flag.
async fn stored_config(bot: &Interactions<'_>) -> Result<Config, String> {
    let stored = bot
        .driver
        .store
        .latest_config()
        .await
        .map_err(unavailable)?
        .ok_or("No configuration is stored, so nobody may change flags from chat yet: store one with `ripcord apply`. Nothing was changed.")?;
    parse_config("the stored configuration", &stored.text).map_err(|e| {
        format!("The stored configuration cannot be read ({e}); store a valid one with `ripcord apply`. Nothing was changed.")
    })
}

fn flag_unavailable(error: FlagStoreError) -> String {
    format!(
        "Ripcord's flag store could not be reached ({error}); nothing was changed, try again in a moment"
    )
}

fn describe(actor: &Actor) -> String {
    match actor {
        Actor::Chat { name, .. } => name.clone(),
        other => other.describe(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_a_switch_or_a_whole_percentage() {
        let rollout = |p| Ok(FlagChangeRequest::Rollout(Weight::new(p).unwrap()));
        let table = [
            ("on", Ok(FlagChangeRequest::Switch(true))),
            ("OFF", Ok(FlagChangeRequest::Switch(false))),
            ("25", rollout(25)),
            (" 0% ", rollout(0)),
            ("100", rollout(100)),
        ];
        for (text, expected) in table {
            assert_eq!(FlagChangeRequest::parse(text), expected, "{text:?}");
        }
        for bad in ["101", "12.5", "-1", "half", ""] {
            let error = FlagChangeRequest::parse(bad).unwrap_err();
            assert!(
                error.contains("percentage from 0 to 100"),
                "{bad:?}: {error}"
            );
        }
    }
}
