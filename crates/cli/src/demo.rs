//! `ripcord demo [--fast]`: the whole story on local mode, with nothing to install
//! and no network: two sample apps (the blue and green slots), the proxy in front of
//! them, real HTTP load through it, and two deployments sent to the webhook:
//!
//! 1. v2 onto green, a canary that passes every gate and is promoted;
//! 2. v3 onto blue, which starts answering 20% of requests with 500s a little after
//!    it is deployed, so the `web-5xx` local alarm fires and traffic goes back.
//!
//! Progress is drawn as a weights bar (redrawn in place on a terminal, one line per
//! change otherwise); the end shows both histories and the DORA figures, and what to
//! try next. It exits 0 only when the story went as told.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ripcord_core::deployment::Deployment;
use ripcord_core::domain::{DeploymentId, ServiceName, Slot};
use ripcord_core::ports::Clock as _;
use ripcord_local::probe::{probe, send};
use ripcord_local::providers::SystemClock;
use ripcord_local::proxy::ProxyOptions;
use ripcord_local::runtime::{LocalRuntime, RuntimeOptions};
use ripcord_local::sample_app::{SampleApp, SampleRelease};
use serde_json::json;

use crate::ops;
use crate::up::random_hex;

/// `ripcord demo`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Shorter pauses, for tests and the impatient (under 20 seconds instead of about a minute).
    #[arg(long)]
    pub fast: bool,
}

/// The timings of one pace of the demo.
struct Pace {
    pause: &'static str,
    bake: &'static str,
    health_interval: &'static str,
    alarm_window: &'static str,
    /// How long after v3 is deployed it starts failing.
    fault_after: Duration,
    /// Time between requests of each load worker.
    load_gap: Duration,
    /// The longest either deployment may take before the demo gives up.
    limit: Duration,
}

const FAST: Pace = Pace {
    pause: "1s",
    bake: "1s",
    health_interval: "100ms",
    alarm_window: "2s",
    fault_after: Duration::from_millis(1500),
    load_gap: Duration::from_millis(4),
    limit: Duration::from_secs(30),
};

const NORMAL: Pace = Pace {
    pause: "8s",
    bake: "6s",
    health_interval: "500ms",
    alarm_window: "5s",
    fault_after: Duration::from_secs(10),
    load_gap: Duration::from_millis(10),
    limit: Duration::from_secs(60),
};

/// The demo's service, in the same format a user writes.
fn config(pace: &Pace, blue: &str, green: &str) -> String {
    format!(
        r#"# The demo's service: a canary behind local mode's proxy.
[services.web]
strategy = "canary"
steps = [
  {{ set_weight = 20 }},
  {{ pause = "{pause}" }},
  {{ set_weight = 50 }},
  {{ pause = "{pause}" }},
  {{ set_weight = 100 }},
]
bake = "{bake}"

[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{blue}", "{green}"]
health_check = {{ path = "/healthz", interval = "{interval}", healthy_threshold = 2 }}

[[services.web.local.alarms]]
name = "web-5xx"
metric = "error_rate"
max = 5.0
window = "{window}"
min_requests = 10

[services.web.alarms]
names = ["web-5xx"]

[[services.web.smoke]]
name = "health"
path = "/healthz"
body_contains = "ok"
"#,
        pause = pace.pause,
        bake = pace.bake,
        interval = pace.health_interval,
        window = pace.alarm_window,
    )
}

/// Runs the demo.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let store = std::env::temp_dir().join(format!(
        "ripcord-demo-{}-{}.sqlite",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let result = runtime.block_on(story(if args.fast { &FAST } else { &NORMAL }, &store));
    for suffix in ["", "-wal", "-shm"] {
        let mut path = store.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
    result
}

async fn story(pace: &Pace, store_path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .context("cannot start the blue sample app")?;
    let green = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .context("cannot start the green sample app")?;
    let secret = random_hex(32)?;
    let token = random_hex(16)?;
    let local = LocalRuntime::start(RuntimeOptions {
        config_path: "demo.toml".into(),
        config_text: config(pace, &blue.url(), &green.url()),
        store_path: store_path.to_path_buf(),
        control_listen: "127.0.0.1:0".into(),
        webhook_secret: secret.clone().into_bytes(),
        token,
        proxy: ProxyOptions::default(),
        discord: None,
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let web = ServiceName::new("web").expect("a valid name");
    let proxy = format!(
        "http://{}",
        local
            .proxy_addr(&web)
            .context("the proxy of web is not running")?
    );
    let control = format!("http://{}", local.control_addr());
    println!("Ripcord demo: one service, `web`, behind local mode's proxy at {proxy}.");
    println!(
        "Blue serves v1 and takes all traffic; a load generator sends requests through the proxy."
    );
    let load = Load::start(&proxy, pace.load_gap);

    println!();
    println!("1. CI puts v2 on green and calls the webhook: a canary, 20% -> 50% -> 100%.");
    green.deploy(SampleRelease::healthy("v2"));
    let first = deploy(&control, &secret, "v2", "demo-1").await?;
    let first_end = watch(&local, &first, pace.limit).await?;

    println!();
    println!(
        "2. CI puts v3 on blue. v3 has a bug: {}s after it starts, 20% of its answers are 500s.",
        pace.fault_after.as_secs_f32()
    );
    blue.deploy(SampleRelease {
        version: "v3".into(),
        error_percent: 20,
        errors_after: pace.fault_after,
    });
    let second = deploy(&control, &secret, "v3", "demo-2").await?;
    let second_end = watch(&local, &second, pace.limit).await?;
    let (requests, errors) = load.stop();

    println!();
    println!("History of the first deployment:");
    println!("{}", ops::history(local.store(), &first, false).await?.0);
    println!();
    println!("History of the second deployment:");
    println!("{}", ops::history(local.store(), &second, false).await?.0);
    println!();
    println!("DORA figures of this run:");
    println!(
        "{}",
        ops::dora_report(local.store(), Some(&web), 1, SystemClock.now(), false).await?
    );
    println!();
    println!(
        "The load generator sent {requests} requests; {errors} got a 5xx, all from v3 before the rollback."
    );
    local.shutdown().await;

    let story_held = first_end.state.name() == "succeeded"
        && second_end.state.name() == "rolled_back"
        && second_end
            .rollback
            .as_ref()
            .is_some_and(|r| matches!(&r.trigger, ripcord_core::history::Actor::Alarm { name } if name == "web-5xx"));
    if !story_held {
        bail!(
            "the demo did not go as planned: the first deployment {} and the second {}",
            first_end.state,
            second_end.state
        );
    }
    println!();
    println!(
        "Done in {:.0}s: v2 was promoted, v3 was rolled back by the web-5xx alarm.",
        started.elapsed().as_secs_f32()
    );
    println!("Next:");
    println!(
        "  ripcord up -c examples/local.toml       run local mode in front of your own two upstreams"
    );
    println!("  open the dashboard URL it prints        watch deployments, approve, roll back");
    println!("  ripcord simulate examples/canary.toml --service web --alarm-at 4m");
    Ok(ExitCode::SUCCESS)
}

/// Sends a signed webhook delivery and returns the new deployment's id.
async fn deploy(
    control: &str,
    secret: &str,
    version: &str,
    delivery: &str,
) -> anyhow::Result<DeploymentId> {
    let committed_at =
        ripcord_core::time::Timestamp::from_millis(SystemClock.now().as_millis() - 20 * 60 * 1000);
    let body = json!({
        "service": "web",
        "version": version,
        "commit": format!("{:0>7}", version.trim_start_matches('v')),
        "committed_at": committed_at.to_rfc3339(),
        "author": "demo",
    })
    .to_string();
    let signature = ripcord_api::webhook::sign(secret.as_bytes(), body.as_bytes());
    let answer = send(
        control,
        "POST",
        "/deployments",
        &[
            ("content-type", "application/json"),
            ("x-ripcord-signature-256", &signature),
            ("x-ripcord-delivery", delivery),
        ],
        body.into_bytes(),
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| anyhow::anyhow!("the webhook did not answer: {e}"))?;
    if answer.status != 202 {
        bail!(
            "the webhook refused {version}: {} {}",
            answer.status,
            answer.body
        );
    }
    let value: serde_json::Value = serde_json::from_str(&answer.body)?;
    let id = value["deployment_id"]
        .as_str()
        .context("the webhook's answer has no deployment_id")?;
    println!("   webhook: 202, deployment {id}");
    DeploymentId::new(id).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Shows a deployment's progress until it ends; returns it as it ended.
async fn watch(
    local: &LocalRuntime,
    id: &DeploymentId,
    limit: Duration,
) -> anyhow::Result<Deployment> {
    let terminal = std::io::stdout().is_terminal();
    let deadline = Instant::now() + limit;
    let mut last_line = String::new();
    loop {
        let d = local
            .store()
            .deployment(id)
            .await?
            .context("the deployment disappeared from the store")?;
        let line = progress_line(&d);
        if line != last_line {
            if terminal {
                print!("\r\x1b[2K{line}");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
            last_line = line;
        }
        if d.state.is_terminal() {
            if terminal {
                println!();
            }
            if let Some(rollback) = &d.rollback {
                println!("   rolled back: {}", rollback.reason);
            }
            return Ok(d);
        }
        if Instant::now() > deadline {
            bail!("deployment {id} did not finish within {}s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `   [██████████░░░░░░░░░░] blue 50% | green 50%  progressing (step 3 of 5)`
fn progress_line(d: &Deployment) -> String {
    const WIDTH: usize = 20;
    let blue = d.desired.of(Slot::Blue).get();
    let green = d.desired.of(Slot::Green).get();
    let blue_cells = (usize::from(blue) * WIDTH + 50) / 100;
    let step = d
        .state
        .step()
        .map(|s| format!(" (step {} of {})", s + 1, d.spec.plan.steps.len()))
        .unwrap_or_default();
    format!(
        "   [{}{}] blue {blue:>3}% | green {green:>3}%  {} {}{step}",
        "█".repeat(blue_cells),
        "░".repeat(WIDTH - blue_cells),
        d.release.version,
        d.state.name(),
    )
}

/// The load generator: two workers sending requests through the proxy.
struct Load {
    running: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
}

impl Load {
    fn start(proxy: &str, gap: Duration) -> Load {
        let load = Load {
            running: Arc::new(AtomicBool::new(true)),
            requests: Arc::new(AtomicU64::new(0)),
            errors: Arc::new(AtomicU64::new(0)),
        };
        for _ in 0..2 {
            let proxy = proxy.to_string();
            let running = load.running.clone();
            let requests = load.requests.clone();
            let errors = load.errors.clone();
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    let answer = probe(&proxy, "GET", "/", Duration::from_secs(2)).await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    if answer.map_or(true, |a| a.status.is_server_error()) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(gap).await;
                }
            });
        }
        load
    }

    /// Stops the workers; returns the requests sent and the 5xx answers (or failures).
    fn stop(self) -> (u64, u64) {
        self.running.store(false, Ordering::Relaxed);
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}
