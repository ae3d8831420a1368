//! `ripcord up -c FILE`: local mode in the foreground. The proxies, the controller,
//! the alarm watch and the control port (webhook, JSON API, dashboard, and Discord's
//! interactions when `RIPCORD_DISCORD_PUBLIC_KEY` and its two companions are set) run until
//! Ctrl-C; the state lives in `--state` (an SQLite file, the local token and, unless
//! `RIPCORD_WEBHOOK_SECRET` is set, the webhook secret), so the next `ripcord up`
//! resumes whatever was in flight.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use ripcord_core::config::parse_config;
use ripcord_local::discord::{
    APPLICATION_ID, BOT_TOKEN, INTERACTIONS_PATH, LocalDiscord, PUBLIC_KEY,
};
use ripcord_local::proxy::ProxyOptions;
use ripcord_local::runtime::{LocalRuntime, RuntimeError, RuntimeOptions};

use crate::validate::render_problem;

/// `ripcord up`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file; every service with [services.NAME.local] runs.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// The control port: webhook (POST /deployments), JSON API (/api/), dashboard (/) and
    /// Discord's interactions (POST /discord/interactions).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Where local mode keeps its state: ripcord.sqlite, token, webhook-secret.
    #[arg(long, default_value = ".ripcord")]
    pub state: PathBuf,
}

/// Runs local mode until Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let path = args.config.display().to_string();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {path}: check the path"))?;
    if let Err(error) = parse_config(&path, &text) {
        let shown: Vec<String> = error
            .problems()
            .iter()
            .map(|p| render_problem(p, &text))
            .collect();
        bail!("{path} is not valid:\n{}", shown.join("\n"));
    }
    std::fs::create_dir_all(&args.state).with_context(|| {
        format!(
            "cannot create the state directory {}: pick another with --state",
            args.state.display()
        )
    })?;
    let token = secret_file(&args.state.join("token"))?;
    let (webhook_secret, secret_source) = match std::env::var("RIPCORD_WEBHOOK_SECRET") {
        Ok(secret) if !secret.is_empty() => (secret, "RIPCORD_WEBHOOK_SECRET".to_string()),
        _ => {
            let file = args.state.join("webhook-secret");
            (secret_file(&file)?, file.display().to_string())
        }
    };
    let discord = LocalDiscord::from_env().map_err(anyhow::Error::msg)?;
    let discord_line = match discord {
        Some(_) => format!("POST {{control}}{INTERACTIONS_PATH}"),
        None => format!("off (set {PUBLIC_KEY}, {APPLICATION_ID} and {BOT_TOKEN} to serve it)"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let local = LocalRuntime::start(RuntimeOptions {
            config_path: path.clone(),
            config_text: text,
            store_path: args.state.join("ripcord.sqlite"),
            control_listen: args.listen.clone(),
            webhook_secret: webhook_secret.into_bytes(),
            token: token.clone(),
            proxy: ProxyOptions::default(),
            discord,
        })
        .await
        .map_err(explain)?;
        let control = format!("http://{}", local.control_addr());
        println!(
            "ripcord local mode: {path} (configuration version {})",
            local.config_version()
        );
        for name in local.config().services.keys() {
            if let Some(addr) = local.proxy_addr(name) {
                println!("  {name}: proxy on http://{addr}");
            }
        }
        println!("  dashboard:  {control}/?token={token}");
        println!("  webhook:    POST {control}/deployments (secret in {secret_source})");
        println!(
            "  Discord:    {}",
            discord_line.replace("{control}", &control)
        );
        println!(
            "  JSON API:   {control}/api/status; commands need the token in {}",
            args.state.join("token").display()
        );
        println!("  from the CLI: ripcord status --local {control}");
        println!("Ctrl-C stops; a deployment in flight resumes at the next `ripcord up`.");
        let mut notifications = local.subscribe();
        loop {
            tokio::select! {
                signal = tokio::signal::ctrl_c() => {
                    signal.context("cannot listen for Ctrl-C")?;
                    break;
                }
                received = notifications.recv() => match received {
                    Ok(n) => println!("[{}] {} {}: {}", n.service, n.version, n.weights, n.text),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        println!("({missed} notifications skipped; the history has them all)");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        println!("stopping: letting requests in flight finish");
        local.shutdown().await;
        println!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// A runtime error with what to do about it.
fn explain(error: RuntimeError) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

/// The secret kept in `file`, made (32 random bytes, hex) and stored readable by the
/// owner only if the file does not exist yet.
pub fn secret_file(file: &Path) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(file) {
        let existing = existing.trim().to_string();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    let secret = random_hex(32)?;
    write_private(file, &secret)
        .with_context(|| format!("cannot write {}: check the state directory", file.display()))?;
    Ok(secret)
}

fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(file)?.write_all(text.as_bytes())
}

/// `bytes` random bytes from the operating system, as hex.
pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .context("cannot read random bytes from /dev/urandom for the local token")?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}
