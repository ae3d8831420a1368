//! The notifiers against local HTTP servers: the Discord message edited in place, the
//! alert and the summary, 429s honoured, the Slack and JSON webhooks, and no secret in
//! any log line or error.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use ripcord_bot::DiscordRest;
use ripcord_bot::notify::{
    DiscordNotifier, JsonWebhookNotifier, Notifiers, SecretLookup, SlackNotifier,
};
use ripcord_core::config::Step;
use ripcord_core::deployment::State;
use ripcord_core::domain::{DeploymentId, ServiceName, Weight};
use ripcord_core::driver::{DeployRequest, Driver};
use ripcord_core::engine::{Notification, NotificationKind};
use ripcord_core::memory::{Sandbox, test_service};
use ripcord_core::ports::{BoxFuture, Notifier, PortError};
use serenity::model::id::ApplicationId;

const CHANNEL: &str = "1300000000000000004";
const ON_CALL: &str = "1100000000000000777";
const TOKEN: &str = "MTAx.bot-token-that-must-never-be-logged";

fn sandbox(webhook_url: Option<String>) -> &'static Sandbox {
    let mut spec = test_service(
        "web",
        vec![
            Step::SetWeight(Weight::new(10).unwrap()),
            Step::Pause(Duration::from_secs(60)),
            Step::SetWeight(Weight::new(50).unwrap()),
            Step::Pause(Duration::from_secs(60)),
            Step::SetWeight(Weight::FULL),
        ],
    );
    spec.notifications.discord_channel = Some(CHANNEL.into());
    spec.notifications.on_call_role = Some(ON_CALL.into());
    spec.notifications.slack_webhook_param = Some("/ripcord/slack-webhook".into());
    spec.notifications.webhook_url = webhook_url;
    leak(Sandbox::single(spec, T0))
}

fn driver<'a>(sb: &'a Sandbox, notifier: &'a dyn Notifier) -> Driver<'a> {
    let mut driver = sb.driver();
    driver.notifier = notifier;
    driver
}

async fn deploy(driver: &Driver<'_>, sb: &Sandbox) -> DeploymentId {
    let request = DeployRequest {
        service: ServiceName::new("web").unwrap(),
        version: "v43".into(),
        commit: "0a1b2c3d4e".into(),
        committed_at: None,
        author: "octocat".into(),
        slot: None,
    };
    let id = DeploymentId::new("d-notify").unwrap();
    driver
        .start(&sb.config, 1, request, id.clone(), None)
        .await
        .unwrap();
    id
}

fn channel_posts(fake: &FakeDiscord) -> Vec<Recorded> {
    fake.recorded()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == format!("/api/v10/channels/{CHANNEL}/messages"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_per_deployment_is_edited_in_place_then_an_alert_and_a_summary() {
    let logs = captured_logs();
    let (fake, base) = FakeDiscord::start().await;
    let rest = DiscordRest::new(TOKEN, ApplicationId::new(1)).with_base(base);
    let sb = sandbox(None);
    let discord = DiscordNotifier::new(&rest, &sb.store, &sb.clock);
    let driver = driver(sb, &discord);
    let id = deploy(&driver, sb).await;
    driver.reconcile(&id).await.unwrap();
    sb.clock.advance(Duration::from_secs(61));
    driver.reconcile(&id).await.unwrap();
    assert_eq!(sb.deployment(&id).canary_weight(), 50);

    // One message, then edits of that same message.
    let posts = channel_posts(&fake);
    assert_eq!(posts.len(), 1, "{:#?}", fake.recorded());
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("Bot {TOKEN}").as_str())
    );
    let edits: Vec<Recorded> = fake
        .recorded()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(edits.len() >= 2, "{:#?}", fake.recorded());
    let message_path = edits[0].path.clone();
    assert!(message_path.starts_with(&format!("/api/v10/channels/{CHANNEL}/messages/14")));
    assert!(edits.iter().all(|e| e.path == message_path));
    let last = &edits.last().unwrap().body["embeds"][0];
    assert!(
        last["title"]
            .as_str()
            .unwrap()
            .starts_with("web v43: step 4 of 5"),
        "{last}"
    );
    assert!(
        last["description"]
            .as_str()
            .unwrap()
            .contains("green ██████████░░░░░░░░░░  50%"),
        "{last}"
    );
    let fields = last["fields"].to_string();
    assert!(
        fields.contains("health passed") && fields.contains("smoke passed"),
        "{fields}"
    );
    let buttons = edits.last().unwrap().body["components"][0]["components"].to_string();
    assert!(
        buttons.contains("rc1:promote:d-notify:s4") && buttons.contains("rc1:rollback:d-notify:s4"),
        "{buttons}"
    );

    // The alarm fires: the message shows the rollback, an alert names the alarm and
    // mentions the on-call role, and a summary gives the duration.
    sb.world.alarms.fire(
        "web-5xx",
        "Threshold Crossed: 1 datapoint [12.5] was greater than the threshold (5.0)",
    );
    sb.clock.advance(Duration::from_secs(30));
    driver.reconcile(&id).await.unwrap();
    assert_eq!(sb.deployment(&id).state, State::RolledBack);
    let posts = channel_posts(&fake);
    assert_eq!(posts.len(), 3, "{posts:#?}");
    let alert = &posts[1].body;
    let text = alert["content"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("<@&{ON_CALL}> **web** v43: ")),
        "{text}"
    );
    assert!(text.contains("web-5xx") && text.contains("12.5"), "{text}");
    assert_eq!(
        alert["allowed_mentions"]["roles"],
        serde_json::json!([ON_CALL])
    );
    let summary = posts[2].body["content"].as_str().unwrap();
    assert!(
        summary.starts_with("**web v43: rolled back** in 1m31s"),
        "{summary}"
    );
    assert!(summary.contains("web-5xx"), "{summary}");
    let last = fake
        .recorded()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(last.path, message_path);
    assert_eq!(last.body["components"], serde_json::json!([]));

    // Another process (a new notifier, as a new Lambda container) edits the same message.
    let other = DiscordNotifier::new(&rest, &sb.store, &sb.clock);
    let before = channel_posts(&fake).len();
    other.notify(&progress(&id, "checked again")).await.unwrap();
    assert_eq!(channel_posts(&fake).len(), before);
    assert_eq!(fake.recorded().last().unwrap().path, message_path);

    assert_no_secret(&logs, &[TOKEN]);
}

fn progress(id: &DeploymentId, text: &str) -> Notification {
    Notification {
        deployment_id: id.clone(),
        service: ServiceName::new("web").unwrap(),
        version: "v43".into(),
        kind: NotificationKind::Progress,
        state: State::Progressing { step: 0 },
        weights: ripcord_core::domain::Weights::all_on(ripcord_core::domain::Slot::Blue),
        canary: ripcord_core::domain::Slot::Green,
        text: text.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_as_discord_asks() {
    let logs = captured_logs();
    let (fake, base) = FakeDiscord::start().await;
    let rest = DiscordRest::new(TOKEN, ApplicationId::new(1)).with_base(base);
    let sb = sandbox(None);
    let discord = DiscordNotifier::new(&rest, &sb.store, &sb.clock);
    let driver = driver(sb, &discord);
    let id = deploy(&driver, sb).await;

    fake.then(Scripted::RateLimited(0.25));
    let started = Instant::now();
    discord.notify(&progress(&id, "first")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the wait asked for was honoured"
    );
    let posts = channel_posts(&fake);
    assert_eq!(posts.len(), 2, "sent again after the wait, once");
    assert_eq!(posts[0].body, posts[1].body);
    // The message recorded is the one that was created, and is edited next.
    discord.notify(&progress(&id, "second")).await.unwrap();
    assert_eq!(fake.recorded().last().unwrap().method, "PATCH");
    assert_eq!(channel_posts(&fake).len(), 2);

    // A wait longer than a Lambda function should hold is a transient error.
    fake.then(Scripted::RateLimited(120.0));
    let error = discord.notify(&progress(&id, "third")).await.unwrap_err();
    assert_eq!(error.kind, ripcord_core::ports::ErrorKind::Transient);
    assert!(
        error.message.contains("rate limited for 120.0s"),
        "{}",
        error.message
    );
    assert!(!error.message.contains(TOKEN));
    assert!(
        logs.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("rate limited (429)"))
    );
    assert_no_secret(&logs, &[TOKEN]);
}

struct Secrets(BTreeMap<String, String>);

impl SecretLookup for Secrets {
    fn secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, PortError>> {
        Box::pin(async move {
            self.0
                .get(name)
                .cloned()
                .ok_or_else(|| PortError::permanent(format!("no parameter {name}")))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_json_webhooks_receive_every_notification() {
    let logs = captured_logs();
    let (hooks, base) = FakeDiscord::start().await;
    let slack_url = format!("{base}/services/T0001/B0001/slack-secret-part");
    let secrets = Secrets(BTreeMap::from([(
        "/ripcord/slack-webhook".to_string(),
        slack_url.clone(),
    )]));
    let sb = sandbox(Some(format!("{base}/hooks/ripcord")));
    let slack = SlackNotifier::new(&sb.store, &secrets);
    let json = JsonWebhookNotifier::new(&sb.store);
    let both = Notifiers(vec![&slack, &json]);
    let driver = driver(sb, &both);
    let id = deploy(&driver, sb).await;
    driver.reconcile(&id).await.unwrap();

    let recorded = hooks.recorded();
    let slack_posts: Vec<&Recorded> = recorded
        .iter()
        .filter(|r| r.path == "/services/T0001/B0001/slack-secret-part")
        .collect();
    let json_posts: Vec<&Recorded> = recorded
        .iter()
        .filter(|r| r.path == "/hooks/ripcord")
        .collect();
    assert!(!slack_posts.is_empty());
    assert_eq!(slack_posts.len(), json_posts.len());
    let text = slack_posts.last().unwrap().body["text"].as_str().unwrap();
    assert!(
        text.starts_with("*web v43* (paused)") || text.starts_with("*web v43* (progressing)"),
        "{text}"
    );
    assert!(text.contains("green ██░░░░░░░░░░░░░░░░░░  10%"), "{text}");
    let body = &json_posts.last().unwrap().body;
    assert_eq!(body["deployment_id"], "d-notify");
    assert_eq!(body["service"], "web");
    assert_eq!(body["kind"], "progress");
    assert_eq!(body["weights"]["green"], 10, "{body}");

    // A failing webhook says which service's webhook failed, never its URL.
    hooks.then(Scripted::Status(500));
    let error = slack.notify(&progress(&id, "again")).await.unwrap_err();
    assert!(
        error
            .message
            .starts_with("Slack webhook of web answered 500"),
        "{}",
        error.message
    );
    assert!(!error.message.contains("slack-secret-part"));
    assert_no_secret(&logs, &["slack-secret-part"]);
}

fn assert_no_secret(logs: &std::sync::Mutex<Vec<String>>, secrets: &[&str]) {
    let lines = logs.lock().unwrap();
    for line in lines.iter() {
        for secret in secrets {
            assert!(!line.contains(secret), "a log line holds a secret: {line}");
        }
    }
}
