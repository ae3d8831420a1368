//! What the bot's tests share: real Ed25519 keys, Discord-shaped interaction payloads,
//! the handler hosted over real HTTP on loopback, and a fake Discord REST API (a small
//! HTTP server that records every request and answers as told, 429s included).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ripcord_bot::Interactions;
use ripcord_core::time::Timestamp;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

/// The application's signing key (Discord's side) and its public key in hex.
pub fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// Another key, whose signatures must be refused.
pub fn impostor_key() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

/// The hex public key of `key`.
pub fn public_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// Discord's headers for `body` signed by `key` at `timestamp` (Unix seconds).
pub fn signed_headers(key: &SigningKey, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let ts = timestamp.to_string();
    let message = [ts.as_bytes(), body].concat();
    let signature = hex::encode(key.sign(&message).to_bytes());
    vec![
        ("x-signature-ed25519".into(), signature),
        ("x-signature-timestamp".into(), ts),
        ("content-type".into(), "application/json".into()),
    ]
}

/// The time every test starts at.
pub const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

/// A person in a guild: their id, name and role ids.
#[derive(Clone)]
pub struct Person {
    pub id: &'static str,
    pub name: &'static str,
    pub roles: Vec<&'static str>,
}

pub fn person(id: &'static str, name: &'static str, roles: &[&'static str]) -> Person {
    Person {
        id,
        name,
        roles: roles.to_vec(),
    }
}

fn user_json(p: &Person) -> Value {
    json!({
        "id": p.id, "username": p.name.to_lowercase(), "discriminator": "0",
        "global_name": p.name, "avatar": null, "public_flags": 0
    })
}

fn member_json(p: &Person) -> Value {
    json!({
        "user": user_json(p), "nick": null, "avatar": null, "roles": p.roles,
        "joined_at": "2025-01-01T00:00:00.000000+00:00", "premium_since": null,
        "deaf": false, "mute": false, "flags": 0, "pending": false,
        "permissions": "2147483647", "communication_disabled_until": null
    })
}

fn envelope(kind: u8, p: &Person, token: &str) -> Value {
    json!({
        "type": kind, "id": "1300000000000000001", "application_id": "1300000000000000002",
        "guild_id": "1300000000000000003", "channel_id": "1300000000000000004",
        "member": member_json(p), "token": token, "version": 1,
        "app_permissions": "2147483647", "locale": "en-US", "guild_locale": "en-US",
        "entitlements": [], "authorizing_integration_owners": {"0": "1300000000000000003"},
        "context": 0, "attachment_size_limit": 10485760
    })
}

/// A slash command as Discord sends it. Options are `(name, value)`; integers are
/// sent as integers, anything else as strings.
pub fn command(p: &Person, name: &str, options: &[(&str, Value)]) -> Value {
    let mut v = envelope(2, p, "command-token");
    let options: Vec<Value> = options
        .iter()
        .map(|(n, value)| {
            let kind = if value.is_i64() { 4 } else { 3 };
            json!({"name": n, "type": kind, "value": value})
        })
        .collect();
    v["data"] = json!({"id": "1300000000000000010", "name": name, "type": 1, "options": options});
    v
}

/// A button click as Discord sends it, on a message with `content`.
pub fn click(p: &Person, custom_id: &str, content: &str) -> Value {
    let mut v = envelope(3, p, "click-token");
    v["data"] = json!({"custom_id": custom_id, "component_type": 2});
    v["message"] = json!({
        "id": "1300000000000000020", "channel_id": "1300000000000000004",
        "author": {"id": "1300000000000000002", "username": "ripcord", "discriminator": "0",
                   "global_name": null, "avatar": null, "bot": true, "public_flags": 0},
        "content": content, "timestamp": "2026-11-26T09:00:00.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0,
        "flags": 0, "components": []
    });
    v
}

/// A PING.
pub fn ping() -> Value {
    json!({"type": 1, "id": "1300000000000000001", "application_id": "1300000000000000002",
           "token": "ping-token", "version": 1})
}

/// An answer from the endpoint, with how long it took.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub took: Duration,
}

impl Answer {
    /// The interaction response type (1 PONG, 4 message, 5 deferred, 6 deferred update,
    /// 7 update).
    pub fn kind(&self) -> u64 {
        self.body["type"].as_u64().unwrap_or(0)
    }
    /// Whether the answer is a message only the clicker sees.
    pub fn ephemeral(&self) -> bool {
        self.body["data"]["flags"].as_u64().unwrap_or(0) & 64 == 64
    }
    /// The text of the answer.
    pub fn content(&self) -> String {
        self.body["data"]["content"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
    /// Every custom id of the answer's buttons.
    pub fn custom_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        if let Some(rows) = self.body["data"]["components"].as_array() {
            for row in rows {
                for c in row["components"].as_array().into_iter().flatten() {
                    if let Some(id) = c["custom_id"].as_str() {
                        ids.push(id.to_string());
                    }
                }
            }
        }
        ids
    }
}

/// Serves `bot` over HTTP on a loopback port, as a host would: the body is read whole,
/// the handler answers, and work it hands back is driven to the end on its own task.
pub async fn serve(bot: &'static Interactions<'static>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| async move {
                    let (parts, body) = request.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes().to_vec())
                        .unwrap_or_default();
                    let request = http::Request::from_parts(parts, bytes);
                    let outcome = ripcord_bot::handle(bot, request).await;
                    if let Some(remaining) = outcome.remaining {
                        tokio::spawn(remaining);
                    }
                    let (parts, body) = outcome.response.into_parts();
                    Ok::<_, std::convert::Infallible>(hyper::Response::from_parts(
                        parts,
                        Full::new(Bytes::from(body)),
                    ))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

/// Sends one HTTP request over a new loopback connection.
pub async fn send(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// Posts an interaction signed by `key` at `timestamp` and times the answer.
pub async fn post_signed(
    address: SocketAddr,
    key: &SigningKey,
    timestamp: i64,
    payload: &Value,
) -> Answer {
    let body = serde_json::to_vec(payload).unwrap();
    let headers = signed_headers(key, timestamp, &body);
    let started = Instant::now();
    let (status, _, bytes) = send(address, "POST", "/", &headers, body).await;
    let took = started.elapsed();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, body, took }
}

/// One request the fake Discord API received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

/// How the fake Discord API answers the next requests, in order; when the script is
/// empty it answers 200 with a new message id (or the request body for PUTs).
#[derive(Debug, Clone)]
pub enum Scripted {
    /// 429 with `Retry-After` (seconds) and Discord's JSON body.
    RateLimited(f64),
    /// An error status.
    Status(u16),
}

/// A local stand-in for Discord's REST API.
#[derive(Clone, Default)]
pub struct FakeDiscord {
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    pub script: Arc<Mutex<VecDeque<Scripted>>>,
    next_id: Arc<Mutex<u64>>,
}

impl FakeDiscord {
    /// Starts the server and returns it with its base URL.
    pub async fn start() -> (FakeDiscord, String) {
        let fake = FakeDiscord::default();
        *fake.next_id.lock().unwrap() = 1_400_000_000_000_000_000;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let fake = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let fake = fake.clone();
                        async move { Ok::<_, std::convert::Infallible>(fake.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (fake, base)
    }

    async fn answer(&self, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let authorization = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.requests.lock().unwrap().push(Recorded {
            method: method.clone(),
            path: path.clone(),
            authorization,
            body: body.clone(),
        });
        let scripted = self.script.lock().unwrap().pop_front();
        let respond = |status: u16, body: Value| {
            hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        };
        match scripted {
            Some(Scripted::RateLimited(seconds)) => {
                let mut response = respond(
                    429,
                    json!({"message": "You are being rate limited.", "retry_after": seconds, "global": false}),
                );
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
                response
            }
            Some(Scripted::Status(status)) => {
                respond(status, json!({"message": "scripted", "code": 0}))
            }
            None if method == "PUT" => respond(200, body),
            None if method == "DELETE" => respond(204, Value::Null),
            None => {
                let mut next = self.next_id.lock().unwrap();
                *next += 1;
                respond(
                    200,
                    json!({"id": next.to_string(), "channel_id": "1300000000000000004"}),
                )
            }
        }
    }

    /// Every request so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Answers the next request as scripted.
    pub fn then(&self, scripted: Scripted) {
        self.script.lock().unwrap().push_back(scripted);
    }
}

/// Leaks a value for the life of the test process, so that handlers can borrow it
/// for `'static` as a long-running host's state does.
pub fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// Every log line (event) written in this test process from now on, with all its
/// fields, so that tests can check that no secret is ever logged.
pub fn captured_logs() -> Arc<Mutex<Vec<String>>> {
    use std::sync::OnceLock;
    static LINES: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let capture = Capture(lines.clone());
            tracing::subscriber::set_global_default(capture).expect("the first subscriber");
            lines
        })
        .clone()
}

struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = Fields(format!("span {}", span.metadata().name()));
        span.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut fields = Fields("record".into());
        values.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(format!(
            "{} {}",
            event.metadata().level(),
            event.metadata().target()
        ));
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
