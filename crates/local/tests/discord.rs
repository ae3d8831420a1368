//! Discord's interactions on local mode's control port, over real HTTP on loopback
//! with real Ed25519 signatures: a PING gets a PONG, another key's signature 401, and
//! `/rollback` confirmed on a running canary puts the local proxy back at 100% stable.
//! Discord's REST API is a local HTTP server that records whatever reaches it; without
//! Discord's settings the route answers 404 naming the variable to set.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ripcord_core::deployment::State;
use ripcord_core::domain::{DeploymentId, ServiceName, Slot, Weight, Weights};
use ripcord_core::history::{Actor, EventKind};
use ripcord_local::discord::{INTERACTIONS_PATH, LocalDiscord, PUBLIC_KEY};
use ripcord_local::probe::send;
use ripcord_local::runtime::{LocalRuntime, RuntimeOptions};
use ripcord_local::sample_app::SampleApp;
use ripcord_local::testing::{
    SANITY, TempDir, control_url, deliver, deployment_id, healthy_apps, json_of, options,
    start_runtime,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const DEPLOYER: &str = "1100000000000000333";
const APPLICATION: &str = "1300000000000000002";
const BOT_TOKEN: &str = "local-test-bot-token";

/// Discord's side: the application's signing key.
fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// A local stand-in for Discord's REST API that records every request.
async fn fake_discord() -> (Arc<Mutex<Vec<String>>>, String) {
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = recorded.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let line = format!("{} {}", request.method(), request.uri().path());
                        let _ = request.into_body().collect().await;
                        log.lock().unwrap().push(line);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(r#"{"id":"1400000000000000001"}"#),
                        )))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (recorded, base)
}

fn config(blue: &SampleApp, green: &SampleApp) -> String {
    format!(
        r#"
[services.web]
strategy = "canary"
steps = [{{ set_weight = 10 }}, {{ pause = "until_resumed" }}, {{ set_weight = 100 }}]

[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{blue}", "{green}"]
health_check = {{ path = "/healthz", interval = "50ms", healthy_threshold = 2 }}

[services.web.chat]
deployers = ["{DEPLOYER}"]
"#,
        blue = blue.url(),
        green = green.url()
    )
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Posts `payload` to the interactions route, signed by `key` now.
async fn interact(runtime: &LocalRuntime, key: &SigningKey, payload: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(payload).unwrap();
    let timestamp = now_seconds().to_string();
    let signature = hex::encode(key.sign(&[timestamp.as_bytes(), &body].concat()).to_bytes());
    let started = Instant::now();
    let answer = send(
        &control_url(runtime),
        "POST",
        INTERACTIONS_PATH,
        &[
            ("content-type", "application/json"),
            ("x-signature-ed25519", &signature),
            ("x-signature-timestamp", &timestamp),
        ],
        body,
        SANITY,
    )
    .await
    .unwrap();
    // Every interaction is answered inside Discord's three seconds.
    assert!(started.elapsed() < Duration::from_secs(3));
    (answer.status.as_u16(), json_of(&answer))
}

fn member(id: &str, name: &str, roles: &[&str]) -> Value {
    json!({
        "user": {"id": id, "username": name.to_lowercase(), "discriminator": "0",
                 "global_name": name, "avatar": null, "public_flags": 0},
        "nick": null, "avatar": null, "roles": roles,
        "joined_at": "2025-01-01T00:00:00.000000+00:00", "premium_since": null,
        "deaf": false, "mute": false, "flags": 0, "pending": false,
        "permissions": "2147483647", "communication_disabled_until": null
    })
}

fn envelope(kind: u8, member: Value) -> Value {
    json!({
        "type": kind, "id": "1300000000000000001", "application_id": APPLICATION,
        "guild_id": "1300000000000000003", "channel_id": "1300000000000000004",
        "member": member, "token": "interaction-token", "version": 1,
        "app_permissions": "2147483647", "locale": "en-US", "guild_locale": "en-US",
        "entitlements": [], "authorizing_integration_owners": {"0": "1300000000000000003"},
        "context": 0, "attachment_size_limit": 10485760
    })
}

fn slash(member: Value, name: &str, service: &str) -> Value {
    let mut v = envelope(2, member);
    v["data"] = json!({"id": "1300000000000000010", "name": name, "type": 1,
                       "options": [{"name": "service", "type": 3, "value": service}]});
    v
}

fn click(member: Value, custom_id: &str, content: &str) -> Value {
    let mut v = envelope(3, member);
    v["data"] = json!({"custom_id": custom_id, "component_type": 2});
    v["message"] = json!({
        "id": "1300000000000000020", "channel_id": "1300000000000000004",
        "author": {"id": APPLICATION, "username": "ripcord", "discriminator": "0",
                   "global_name": null, "avatar": null, "bot": true, "public_flags": 0},
        "content": content, "timestamp": "2026-11-26T09:00:00.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0,
        "flags": 0, "components": []
    });
    v
}

fn weights_of(runtime: &LocalRuntime) -> Weights {
    let web = ServiceName::new("web").unwrap();
    runtime.proxies().get(&web).unwrap().weights()
}

/// Starts a canary and waits until it holds at 10% on green.
async fn canary_at_ten(runtime: &LocalRuntime) -> DeploymentId {
    let accepted = deliver(&control_url(runtime), "v2", "delivery-1").await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = DeploymentId::new(deployment_id(&accepted)).unwrap();
    let ten = Weights::split(Slot::Green, Weight::new(10).unwrap());
    let deadline = Instant::now() + SANITY;
    loop {
        let d = runtime.store().deployment(&id).await.unwrap().unwrap();
        if matches!(d.state, State::Paused { .. }) && weights_of(runtime) == ten {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "never paused at 10%: {:?}",
            d.state
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_rollback_from_chat_puts_the_local_proxy_back_on_stable() {
    let (blue, green) = healthy_apps().await;
    let (recorded, rest_base) = fake_discord().await;
    let public_key = hex::encode(discord_key().verifying_key().to_bytes());
    let mut discord = LocalDiscord::new(&public_key, APPLICATION, BOT_TOKEN).unwrap();
    discord.rest = discord.rest.with_base(rest_base);
    let store = TempDir::new("discord-rollback");
    let runtime = LocalRuntime::start(RuntimeOptions {
        discord: Some(discord),
        ..options(&config(&blue, &green), &store)
    })
    .await
    .unwrap();

    // Discord's PING, signed with the application's key, gets a PONG.
    let (status, pong) = interact(
        &runtime,
        &discord_key(),
        &json!({
            "type": 1, "id": "1300000000000000001", "application_id": APPLICATION,
            "token": "ping-token", "version": 1
        }),
    )
    .await;
    assert_eq!((status, pong["type"].as_u64()), (200, Some(1)), "{pong}");

    let id = canary_at_ten(&runtime).await;
    let alice = member("1200000000000000501", "Alice", &[DEPLOYER]);

    // Another key's signature is refused with 401 and changes nothing.
    let impostor = SigningKey::from_bytes(&[9u8; 32]);
    let (status, refused) = interact(
        &runtime,
        &impostor,
        &slash(alice.clone(), "rollback", "web"),
    )
    .await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["error"], "unauthorized");

    // Someone without a deployer role is refused, ephemerally, and the traffic stays.
    let carol = member("1200000000000000503", "Carol", &["1100000000000000444"]);
    let (status, no) = interact(&runtime, &discord_key(), &slash(carol, "rollback", "web")).await;
    assert_eq!(status, 200);
    assert_eq!(no["data"]["flags"].as_u64().unwrap_or(0) & 64, 64, "{no}");
    assert!(
        no["data"]["content"].as_str().unwrap().contains("Refused"),
        "{no}"
    );
    assert_eq!(
        weights_of(&runtime),
        Weights::split(Slot::Green, Weight::new(10).unwrap())
    );

    // A deployer asks, sees the exact change, and confirms.
    let (status, question) = interact(
        &runtime,
        &discord_key(),
        &slash(alice.clone(), "rollback", "web"),
    )
    .await;
    assert_eq!(status, 200, "{question}");
    let content = question["data"]["content"].as_str().unwrap().to_string();
    assert!(content.contains("green 10% → 0%"), "{content}");
    let confirm = question["data"]["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(confirm.starts_with("rc1:rollback-confirm:"), "{confirm}");
    let (status, done) =
        interact(&runtime, &discord_key(), &click(alice, &confirm, &content)).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["type"], 7, "an update of the question: {done}");
    assert!(
        done["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Rolled back web v2"),
        "{done}"
    );

    // The proxy serves 100% blue, and the history names who asked.
    assert_eq!(weights_of(&runtime), Weights::all_on(Slot::Blue));
    let d = runtime.store().deployment(&id).await.unwrap().unwrap();
    assert!(
        matches!(d.state, State::RolledBack | State::RollingBack { .. }),
        "{:?}",
        d.state
    );
    let events = runtime.store().events(&id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::CommandApplied { .. })
                && matches!(&e.actor, Actor::Chat { name, .. } if name == "Alice")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::CommandRefused { .. })
                && matches!(&e.actor, Actor::Chat { name, .. } if name == "Carol")),
        "{events:#?}"
    );
    // Every answer went back inline: nothing needed Discord's REST API.
    assert_eq!(recorded.lock().unwrap().clone(), Vec::<String>::new());
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_discord_settings_the_route_says_which_variable_to_set() {
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("discord-off");
    let runtime = start_runtime(&config(&blue, &green), &store).await;
    let (status, body) = interact(&runtime, &discord_key(), &json!({"type": 1})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "discord_not_configured");
    assert!(
        body["message"].as_str().unwrap().contains(PUBLIC_KEY),
        "{body}"
    );
    runtime.shutdown().await;
}
