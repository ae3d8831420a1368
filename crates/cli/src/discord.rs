//! `ripcord discord register [--guild ID]`: registers Ripcord's slash commands with
//! Discord, in one guild (at once) or globally (Discord may take up to an hour to show
//! them everywhere). The application id and bot token come from
//! `RIPCORD_DISCORD_APPLICATION_ID` and `RIPCORD_DISCORD_BOT_TOKEN`, or from the SSM
//! parameters named by the same variables with `_PARAM`.

use anyhow::{Context, bail};
use clap::Subcommand;
use ripcord_aws::secrets::Secrets;
use ripcord_bot::DiscordRest;
use ripcord_bot::commands::definitions;
use serenity::model::id::{ApplicationId, GuildId};

/// `ripcord discord ...`.
#[derive(Debug, Subcommand)]
pub enum DiscordCommand {
    /// Register (or update) Ripcord's slash commands: /rollback, /promote, /pause,
    /// /resume, /abort, /flag, /status, /history and /dora.
    Register {
        /// Register in this guild (server) only; they appear at once. Without it they
        /// are registered globally.
        #[arg(long)]
        guild: Option<String>,
        /// Send the requests to this base URL instead of https://discord.com.
        #[arg(long, hide = true)]
        api_url: Option<String>,
    },
}

/// Runs a `discord` subcommand.
pub fn run(command: &DiscordCommand) -> anyhow::Result<std::process::ExitCode> {
    let DiscordCommand::Register { guild, api_url } = command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = runtime.block_on(register(guild.as_deref(), api_url.as_deref()))?;
    println!("{out}");
    Ok(std::process::ExitCode::SUCCESS)
}

fn snowflake(text: &str, what: &str) -> anyhow::Result<u64> {
    match text.trim().parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => bail!(
            "{what} {text:?} is not a Discord id: copy it with Developer Mode on (a number such as 1234567890123456789)"
        ),
    }
}

async fn register(guild: Option<&str>, api_url: Option<&str>) -> anyhow::Result<String> {
    let guild = guild
        .map(|g| snowflake(g, "--guild").map(GuildId::new))
        .transpose()?;
    let sdk = ripcord_aws::sdk_config().await;
    let secrets = Secrets::new(aws_sdk_ssm::Client::new(&sdk));
    let application = secrets
        .resolve("RIPCORD_DISCORD_APPLICATION_ID")
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let application = snowflake(application.expose(), "RIPCORD_DISCORD_APPLICATION_ID")?;
    let token = secrets
        .resolve("RIPCORD_DISCORD_BOT_TOKEN")
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let mut rest = DiscordRest::new(token.expose(), ApplicationId::new(application));
    if let Some(url) = api_url {
        rest = rest.with_base(url);
    }
    let commands = definitions();
    let count = rest
        .overwrite_commands(guild, &commands)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))
        .context("Discord refused the commands; check the bot token and the application id")?;
    Ok(match guild {
        Some(guild) => format!("Registered {count} slash commands in guild {guild}."),
        None => format!(
            "Registered {count} global slash commands; Discord may take up to an hour to show them in every server."
        ),
    })
}
