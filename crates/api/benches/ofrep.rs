//! OFREP latency: first the handler's own time, called in process; then on loopback,
//! the endpoint served by hyper from a multi-threaded runtime (as `ripcord up` serves
//! it) and called by hyper's client from a thread and runtime of its own over one
//! kept-alive connection, one request at a time, as an OpenFeature provider calls it.
//! Prints p50, p99 and the mean of single-flag and bulk (20 flags) evaluations.
//!
//! ```text
//! cargo bench -p ripcord-api --bench ofrep            # 20,000 requests of each kind
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ripcord_api::ofrep::Ofrep;
use ripcord_core::flags::stored::api_key_sha256;
use ripcord_core::history::Actor;
use ripcord_core::memory::MemoryFlagStore;
use ripcord_core::ports::{ApiKeyRecord, FlagRecordKind, FlagStore, FlagWrite};
use ripcord_core::time::Timestamp;
use serde_json::json;
use tokio::net::TcpListener;

const KEY: &str = "rcf_bench";
const REQUESTS: usize = 20_000;

fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_millis(millis)
}

/// Twenty flags of the kinds services use: rollouts with constraints, user lists,
/// variants with payloads.
async fn flags() -> Arc<MemoryFlagStore> {
    let store = Arc::new(MemoryFlagStore::new());
    store
        .create_api_key(ApiKeyRecord {
            name: "bench".into(),
            sha256: api_key_sha256(KEY),
            created_at: now(),
            created_by: Actor::Schedule,
        })
        .await
        .expect("stored");
    for n in 0..20 {
        let name = format!("flag-{n:02}");
        let definition = json!({
            "name": name,
            "enabled": true,
            "strategies": [
                {"name": "flexibleRollout",
                 "parameters": {"rollout": (n * 5).to_string(), "stickiness": "default", "groupId": name},
                 "constraints": [
                    {"contextName": "environment", "operator": "IN", "values": ["production", "staging"]},
                    {"contextName": "appVersion", "operator": "SEMVER_GTE", "value": "1.2.0"}
                 ]},
                {"name": "userWithId", "parameters": {"userIds": "qa-1,qa-2,qa-3"}}
            ],
            "variants": [
                {"name": "a", "weight": 500, "weightType": "variable", "stickiness": "default",
                 "payload": {"type": "string", "value": "blue"}},
                {"name": "b", "weight": 500, "weightType": "variable", "stickiness": "default",
                 "payload": {"type": "json", "value": "{\"size\": 2}"}}
            ]
        });
        store
            .put_flag_record(FlagWrite {
                kind: FlagRecordKind::Flag,
                name,
                expected_version: 0,
                definition,
                at: now(),
                actor: Actor::Schedule,
                summary: "bench".into(),
            })
            .await
            .expect("stored");
    }
    store
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Serves OFREP on loopback from a runtime of its own, as `ripcord up` does (a worker
/// per core), and returns its address.
fn serve(ofrep: Arc<Ofrep>) -> std::net::SocketAddr {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        runtime.block_on(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let ofrep = ofrep.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let ofrep = ofrep.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes().to_vec();
                            let response =
                                ofrep.handle(Request::from_parts(parts, body), now()).await;
                            Ok::<_, hyper::Error>(response.map(|b| Full::new(Bytes::from(b))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    });
    address
}

fn context(n: usize) -> String {
    format!(
        r#"{{"context": {{"targetingKey": "user-{n}", "environment": "production", "appVersion": "1.4.0"}}}}"#
    )
}

const PATHS: [(&str, &str); 2] = [
    ("single flag", "/ofrep/v1/evaluate/flags/flag-10"),
    ("bulk, 20 flags", "/ofrep/v1/evaluate/flags"),
];

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{label:30} {} requests: p50 {:?}, p99 {:?}, mean {:?}",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        mean
    );
}

/// The handler's own time, called in process: what the server adds to the round trip.
async fn handler_alone(ofrep: &Ofrep) {
    for (label, path) in PATHS {
        let mut times = Vec::with_capacity(REQUESTS);
        for n in 0..REQUESTS + 1_000 {
            let request = Request::post(path)
                .header("authorization", format!("Bearer {KEY}"))
                .header("content-type", "application/json")
                .body(context(n).into_bytes())
                .expect("a request");
            let started = Instant::now();
            let response = ofrep.handle(request, now()).await;
            let elapsed = started.elapsed();
            assert!(response.status().is_success(), "{}", response.status());
            if n >= 1_000 {
                times.push(elapsed);
            }
        }
        report(&format!("{label}, handler alone"), times);
    }
}

fn main() {
    let setup = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let store = setup.block_on(flags());
    let ofrep = Arc::new(Ofrep::new(store, Duration::from_secs(5), 7));
    setup.block_on(handler_alone(&ofrep));
    let address = serve(ofrep);
    // The client is the application's OpenFeature provider: a thread and runtime of
    // its own, apart from the server's.
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    client_runtime.block_on(measure(address));
}

async fn measure(address: std::net::SocketAddr) {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    for (label, path) in PATHS {
        let mut times = Vec::with_capacity(REQUESTS);
        for n in 0..REQUESTS + 1_000 {
            let request = Request::post(format!("http://{address}{path}"))
                .header("authorization", format!("Bearer {KEY}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(context(n))))
                .expect("a request");
            let started = Instant::now();
            let response = client.request(request).await.expect("answered");
            assert!(response.status().is_success(), "{}", response.status());
            response.into_body().collect().await.expect("a body");
            // The first thousand warm the connection and the cache.
            if n >= 1_000 {
                times.push(started.elapsed());
            }
        }
        report(&format!("{label}, over loopback"), times);
    }
}
