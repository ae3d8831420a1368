//! Each function binary as Lambda starts it: the time from process start to its first
//! request for an event on the Lambda runtime API (ready for the first event), the
//! time it then takes to answer that event, its peak resident memory once it has, and
//! the binary's size (the `bootstrap` that `cargo lambda build` packages).
//!
//! The runtime API is served here, on loopback, as Lambda serves it; the binaries run
//! against the local AWS emulator, each with a real event that makes it do its work:
//! the webhook starts a deployment and applies its first step, the controller passes
//! over it, the alarm function rolls it back, the flags function evaluates a flag with
//! an API key, the interactions function answers a signed PING.
//!
//! Run it with `scripts/bench-functions`, which starts the emulator and builds in
//! release; it is not a test.

#[path = "../tests/lambda_world/mod.rs"]
mod lambda_world;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::Signer;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use lambda_world::{BINARIES, FLAGS_KEY, SECRET, UNSET, World};
use ripcord_api::webhook::sign;
use ripcord_core::ports::Clock;
use ripcord_functions::host::SystemClock;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Cold starts measured per binary.
fn rounds() -> usize {
    std::env::var("RIPCORD_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10)
}

/// What the runtime API saw of one process, by the generation it was started in.
enum Seen {
    /// The process asked for an event.
    Ready(u64, Instant),
    /// The process answered the event: `/response` or `/error`, and the body.
    Answered(u64, Instant, &'static str, Vec<u8>),
}

/// The Lambda runtime API, with one event to hand out at a time. Each process is
/// started in a generation of its own and given the API under `/g<generation>`, so that
/// a stopped process's last request can neither take a later process's event nor be
/// taken for it.
struct RuntimeApi {
    event: Mutex<(u64, Option<Vec<u8>>)>,
    seen: mpsc::UnboundedSender<Seen>,
}

impl RuntimeApi {
    async fn serve(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let full = request.uri().path().to_string();
        let (generation, path) = full
            .strip_prefix("/g")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(g, path)| Some((g.parse::<u64>().ok()?, format!("/{path}"))))
            .unwrap_or((0, full.clone()));
        let method = request.method().clone();
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        if method == Method::GET && path == "/2018-06-01/runtime/invocation/next" {
            let _ = self.seen.send(Seen::Ready(generation, Instant::now()));
            // Hands out the event once, and only to its own generation's process; any
            // other request waits until its process is stopped, as an idle Lambda
            // environment's would.
            let event = {
                let mut slot = self.event.lock().unwrap();
                if slot.0 == generation {
                    slot.1.take()
                } else {
                    None
                }
            };
            let Some(event) = event else {
                return std::future::pending().await;
            };
            let deadline = SystemClock.now().as_millis() + 900_000;
            return Ok(Response::builder()
                .header("Lambda-Runtime-Aws-Request-Id", "bench-request")
                .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
                .header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:eu-west-1:123456789012:function:bench",
                )
                .header("Lambda-Runtime-Trace-Id", "Root=1-bench")
                .body(Full::new(Bytes::from(event)))
                .unwrap());
        }
        let kind = if path.ends_with("/response") {
            "response"
        } else {
            "error"
        };
        let _ = self
            .seen
            .send(Seen::Answered(generation, Instant::now(), kind, body));
        Ok(Response::builder()
            .status(202)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap())
    }
}

async fn start_runtime_api() -> (Arc<RuntimeApi>, mpsc::UnboundedReceiver<Seen>, SocketAddr) {
    let (seen, receiver) = mpsc::unbounded_channel();
    let api = Arc::new(RuntimeApi {
        event: Mutex::new((0, None)),
        seen,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = api.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let api = served.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| api.clone().serve(request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (api, receiver, address)
}

/// A Function URL request event (the payload format version 2.0 Lambda sends).
fn url_event(path: &str, headers: Value, body: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "bench",
            "domainName": "bench.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "bench",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "ripcord-bench"
            },
            "requestId": "bench-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:12:00:00 +0000",
            "timeEpoch": SystemClock.now().as_millis()
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// The event for `name` in round `round`, and a check that its answer did the work.
fn event_for(world: &World, name: &str, round: usize) -> (Value, fn(&Value) -> bool) {
    match name {
        "ripcord-webhook" => {
            let body = json!({
                "service": "web",
                "version": format!("v{round}"),
                "commit": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                "committed_at": "2026-11-26T05:00:00Z",
                "author": "octocat",
                "slot": "green"
            })
            .to_string();
            let headers = json!({
                "content-type": "application/json",
                "x-ripcord-signature-256": sign(SECRET.as_bytes(), body.as_bytes()),
                "x-ripcord-delivery": format!("bench-{}-{round}", world.table),
            });
            (url_event("/deployments", headers, &body), |a| {
                a["statusCode"] == 202
            })
        }
        "ripcord-controller" => (
            serde_json::from_slice(include_bytes!("../tests/events/scheduled.json")).unwrap(),
            |a| a["passes"].as_array().map(Vec::len) == Some(1),
        ),
        "ripcord-alarm" => {
            let mut fired: Value =
                serde_json::from_slice(include_bytes!("../tests/events/alarm-state-change.json"))
                    .unwrap();
            fired["detail"]["alarmName"] = json!(world.alarm);
            (fired, |a| a["passes"][0]["state"]["state"] == "rolled_back")
        }
        "ripcord-flags" => {
            let headers = json!({
                "content-type": "application/json",
                "authorization": format!("Bearer {FLAGS_KEY}"),
            });
            let body = json!({"context": {"targetingKey": "user-42", "plan": "pro"}});
            (
                url_event(
                    "/ofrep/v1/evaluate/flags/pro-search",
                    headers,
                    &body.to_string(),
                ),
                |a| a["statusCode"] == 200,
            )
        }
        _ => {
            let ping = r#"{"type":1,"id":"1","application_id":"1234567890123456789","token":"t","version":1}"#;
            let timestamp = (SystemClock.now().as_millis() / 1000).to_string();
            let mut message = timestamp.as_bytes().to_vec();
            message.extend_from_slice(ping.as_bytes());
            let headers = json!({
                "content-type": "application/json",
                "x-signature-ed25519": hex::encode(world.discord_key.sign(&message).to_bytes()),
                "x-signature-timestamp": timestamp,
            });
            (url_event("/", headers, ping), |a| {
                a["statusCode"] == 200
                    && a["body"]
                        .as_str()
                        .and_then(|b| serde_json::from_str::<Value>(b).ok())
                        .is_some_and(|b| b["type"] == 1)
            })
        }
    }
}

/// The process's peak resident set size in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Timings of one binary over the rounds.
#[derive(Default)]
struct Figures {
    ready: Vec<Duration>,
    handled: Vec<Duration>,
    peak_kib: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let world = World::build().await;
    let (api, mut seen, address) = start_runtime_api().await;
    let mut figures: Vec<(&str, &str, Figures)> = BINARIES
        .iter()
        .map(|(name, binary)| (*name, *binary, Figures::default()))
        .collect();
    let rounds = rounds();
    for round in 0..rounds {
        // Each round: the alarm quiet, a deployment started by the webhook, a
        // controller pass, the alarm firing and rolling it back.
        world
            .cloudwatch
            .set_alarm_state()
            .alarm_name(&world.alarm)
            .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
            .state_reason("quiet")
            .send()
            .await
            .expect("SetAlarmState");
        for (name, binary, figures) in &mut figures {
            if *name == "ripcord-alarm" {
                world
                    .cloudwatch
                    .set_alarm_state()
                    .alarm_name(&world.alarm)
                    .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
                    .state_reason("Threshold Crossed: 61.0 > 5.0")
                    .send()
                    .await
                    .expect("SetAlarmState");
            }
            let (event, did_its_work) = event_for(&world, name, round);
            let generation = {
                let mut slot = api.event.lock().unwrap();
                *slot = (slot.0 + 1, Some(event.to_string().into_bytes()));
                slot.0
            };
            let mut command = Command::new(*binary);
            command
                .envs(world.env(name, &format!("http://{address}/g{generation}")))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            for setting in UNSET {
                command.env_remove(setting);
            }
            let started = Instant::now();
            let mut child = command.spawn().expect("start the binary");
            let mut ready = None;
            let mut answer = None;
            while answer.is_none() {
                let next = tokio::time::timeout(Duration::from_secs(60), seen.recv())
                    .await
                    .unwrap_or_else(|_| panic!("{name} did not answer within 60 s"))
                    .expect("the runtime API runs");
                match next {
                    Seen::Ready(g, at) if g == generation => {
                        ready.get_or_insert(at);
                    }
                    Seen::Answered(g, at, kind, body) if g == generation => {
                        answer = Some((at, kind, body));
                    }
                    _ => {}
                }
            }
            let peak = peak_rss_kib(child.id());
            let _ = child.kill();
            let _ = child.wait();
            let ready = ready.expect("asked for an event before answering");
            let (answered, kind, body) = answer.unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            assert!(
                kind == "response" && did_its_work(&body),
                "{name} answered on /{kind}: {body}"
            );
            figures.ready.push(ready - started);
            figures.handled.push(answered - ready);
            figures.peak_kib = figures.peak_kib.max(peak);
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    println!(
        "{} cold starts per binary (process start to its first request for an event), the first event's handling, peak RSS and size:\n",
        rounds
    );
    println!(
        "| Binary | size | ready p50 | ready max | first event p50 | first event max | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, binary, mut f) in figures {
        f.ready.sort();
        f.handled.sort();
        let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
        println!(
            "| {name} | {:.1} MiB | {} | {} | {} | {} | {:.1} MiB |",
            size as f64 / (1024.0 * 1024.0),
            ms(percentile(&f.ready, 50.0)),
            ms(*f.ready.last().unwrap()),
            ms(percentile(&f.handled, 50.0)),
            ms(*f.handled.last().unwrap()),
            f.peak_kib as f64 / 1024.0
        );
    }
}
