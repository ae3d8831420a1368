//! The local proxy over real HTTP on loopback: two small upstream servers started by
//! each test on free ports, the proxy in front of them on another, and a real client.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{COOKIE, HOST, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ripcord_core::config::{LocalHealthCheck, LocalTarget, MetricKind, ServiceSpec, parse_config};
use ripcord_core::domain::{ServiceName, Slot, Weight, Weights};
use ripcord_core::ports::{ErrorKind, MetricSource, TrafficRouter};
use ripcord_core::time::Timestamp;
use ripcord_local::proxy::{
    LocalProxy, ProxyOptions, ProxyRegistry, ShutdownOutcome, SlotTotals, Splitter,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

/// A generous bound for anything that should happen at once, so that a broken proxy
/// fails a test instead of hanging it.
const SANITY: Duration = Duration::from_secs(20);

type TestBody = BoxBody<Bytes, Infallible>;

/// A body fed from a channel, so a test decides when each chunk is sent.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// What a test can see of and do to an upstream.
#[derive(Default)]
struct UpstreamControl {
    /// Requests the upstream has started answering.
    served: AtomicU64,
    /// Connections the upstream has accepted.
    connections: AtomicU64,
    /// Notified when a `/hold` or `/stream` request has arrived.
    arrived: Notify,
    /// Notified to let a held request or a stream go on.
    release: Notify,
}

/// An upstream that answers with its slot's name, and with a few test paths:
/// `/echo` (the request headers it got, one `name: value` per line, plus hop-by-hop
/// headers of its own), `/hold` (waits for `release`), `/stream` (a first chunk,
/// then the rest after `release`), `/count` (the size of the request body), `/fail`
/// (503). `?sleep_ms=N` delays any answer.
struct TestUpstream {
    addr: SocketAddr,
    control: Arc<UpstreamControl>,
}

impl TestUpstream {
    async fn start(name: &'static str) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(UpstreamControl::default());
        let shared = control.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let control = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(name, control.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestUpstream { addr, control }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn answer(
    name: &'static str,
    control: Arc<UpstreamControl>,
    request: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    control.served.fetch_add(1, Ordering::SeqCst);
    let query = request.uri().query().unwrap_or_default().to_owned();
    if let Some(ms) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sleep_ms="))
        .and_then(|ms| ms.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let text = |body: String| Full::new(Bytes::from(body)).boxed();
    let response = match request.uri().path() {
        "/echo" => {
            let mut lines = String::new();
            for (header, value) in request.headers() {
                lines.push_str(&format!("{header}: {}\n", value.to_str().unwrap_or("?")));
            }
            Response::builder()
                .header("connection", "x-upstream-hop")
                .header("x-upstream-hop", "1")
                .header("keep-alive", "timeout=5")
                .header("proxy-connection", "keep-alive")
                .header("trailer", "x-checksum")
                .header("x-end-to-end", "kept")
                .body(text(lines))
                .unwrap()
        }
        "/hold" => {
            let released = control.release.notified();
            control.arrived.notify_one();
            released.await;
            Response::new(text(name.to_owned()))
        }
        "/stream" => {
            let (sender, receiver) = mpsc::channel(1);
            let control = control.clone();
            tokio::spawn(async move {
                let released = control.release.notified();
                let _ = sender.send(Bytes::from_static(b"first|")).await;
                control.arrived.notify_one();
                released.await;
                let _ = sender.send(Bytes::from_static(b"second")).await;
            });
            Response::new(ChannelBody(receiver).boxed())
        }
        "/count" => {
            let mut body = request.into_body();
            let mut size = 0usize;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map(|f| f.into_data()) {
                    size += data.map(|d| d.len()).unwrap_or(0);
                }
            }
            Response::new(text(size.to_string()))
        }
        "/fail" => Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(text(format!("{name} is failing")))
            .unwrap(),
        _ => Response::new(text(name.to_owned())),
    };
    Ok(response)
}

/// Blue and green upstreams, and a proxy in front of them.
struct Stack {
    blue: TestUpstream,
    green: TestUpstream,
    proxy: LocalProxy,
    client: Client<HttpConnector, TestBody>,
}

impl Stack {
    async fn start(green_percent: u32, options: ProxyOptions) -> Stack {
        let blue = TestUpstream::start("blue").await;
        let green = TestUpstream::start("green").await;
        let target = LocalTarget {
            listen: "127.0.0.1:0".into(),
            blue: blue.url(),
            green: green.url(),
            health_check: LocalHealthCheck::default(),
            alarms: Vec::new(),
        };
        let proxy = LocalProxy::start(
            ServiceName::new("web").unwrap(),
            &target,
            green_weights(green_percent),
            options,
        )
        .unwrap();
        Stack {
            blue,
            green,
            proxy,
            client: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.local_addr())
    }

    async fn get(&self, path: &str) -> Answer {
        send(&self.client, get(&self.url(path))).await
    }
}

fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

fn green_weights(percent: u32) -> Weights {
    Weights::split(Slot::Green, Weight::new(percent).unwrap())
}

fn get(url: &str) -> Request<TestBody> {
    Request::get(url).body(Empty::new().boxed()).unwrap()
}

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn send(client: &Client<HttpConnector, TestBody>, request: Request<TestBody>) -> Answer {
    let response = tokio::time::timeout(SANITY, client.request(request))
        .await
        .expect("the proxy answered in time")
        .expect("the proxy answered");
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(SANITY, body.collect())
        .await
        .expect("the body arrived in time")
        .expect("the body arrived")
        .to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends `count` GETs from `concurrency` clients at once and counts the answers'
/// bodies.
async fn count_answers(stack: &Stack, count: usize, concurrency: usize) -> BTreeMap<String, usize> {
    let url = stack.url("/");
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let client = stack.client.clone();
        let url = url.clone();
        let share = count / concurrency + usize::from(worker < count % concurrency);
        tasks.push(tokio::spawn(async move {
            let mut seen = BTreeMap::new();
            for _ in 0..share {
                let answer = send(&client, get(&url)).await;
                assert_eq!(answer.status, StatusCode::OK);
                *seen.entry(answer.body).or_insert(0) += 1;
            }
            seen
        }));
    }
    let mut total = BTreeMap::new();
    for task in tasks {
        for (body, n) in task.await.unwrap() {
            *total.entry(body).or_insert(0) += n;
        }
    }
    total
}

fn now() -> Timestamp {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp::from_millis(since_epoch.as_millis() as i64)
}

fn service_spec(name: &str, listen: &str, blue: &str, green: &str) -> ServiceSpec {
    let text = format!(
        "[services.{name}]\nstrategy = \"all_at_once\"\n\
         [services.{name}.local]\nlisten = \"{listen}\"\nupstreams = [\"{blue}\", \"{green}\"]\n"
    );
    let config = parse_config("test.toml", &text).expect("the test configuration is valid");
    config.services.into_values().next().unwrap()
}

#[test]
fn the_choice_is_within_a_point_of_the_weight_over_100000_requests() {
    for green in [0u32, 1, 10, 50, 90, 100] {
        let splitter = Splitter::new(green_weights(green));
        let to_green = (0..100_000)
            .filter(|_| splitter.next_slot() == Slot::Green)
            .count();
        let share = to_green as f64 * 100.0 / 100_000.0;
        assert!(
            (share - f64::from(green)).abs() <= 1.0,
            "weight {green}%: {share}% went to green"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_requests_follow_the_weights() {
    let stack = Stack::start(0, ProxyOptions::default()).await;
    let mut expected = SlotTotals::default();
    for green in [0u32, 1, 10, 50, 90, 100] {
        stack.proxy.set_weights(green_weights(green));
        let seen = count_answers(&stack, 1_000, 8).await;
        let to_green = seen.get("green").copied().unwrap_or(0);
        let to_blue = seen.get("blue").copied().unwrap_or(0);
        assert_eq!(to_green + to_blue, 1_000, "unexpected answers: {seen:?}");
        let share = to_green as f64 * 100.0 / 1_000.0;
        assert!(
            (share - f64::from(green)).abs() <= 1.0,
            "weight {green}%: {share}% of real requests went to green"
        );
        expected.requests += to_green as u64;
    }
    assert_eq!(stack.proxy.totals(Slot::Green), expected);
    assert_eq!(
        stack.green.control.served.load(Ordering::SeqCst),
        expected.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_weights_apply_to_new_requests_while_an_in_flight_one_finishes() {
    let stack = Stack::start(0, ProxyOptions::default()).await;
    let arrived = stack.blue.control.arrived.notified();
    let client = stack.client.clone();
    let held_url = stack.url("/hold");
    let held = tokio::spawn(async move { send(&client, get(&held_url)).await });
    tokio::time::timeout(SANITY, arrived)
        .await
        .expect("the held request reached blue");

    // The switch happens while blue is still answering the held request.
    stack.proxy.set_weights(Weights::all_on(Slot::Green));
    let seen = count_answers(&stack, 50, 5).await;
    assert_eq!(
        seen.get("green"),
        Some(&50),
        "new requests went to {seen:?}"
    );
    assert!(
        !held.is_finished(),
        "the held request finished before release"
    );

    stack.blue.control.release.notify_one();
    let answer = tokio::time::timeout(SANITY, held).await.unwrap().unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "blue");
    assert_eq!(stack.proxy.totals(Slot::Blue).requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_cookie_keeps_a_client_on_its_slot_while_that_slot_has_weight() {
    let options = ProxyOptions {
        sticky: true,
        ..ProxyOptions::default()
    };
    let stack = Stack::start(50, options).await;

    // A new client is given a slot and told to keep it.
    let first = stack.get("/").await;
    let cookie = first.headers[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with(&format!("ripcord_slot={};", first.body)),
        "cookie {cookie:?} for an answer from {}",
        first.body
    );

    // With the cookie, every request goes to green, and the cookie is not set again.
    for _ in 0..20 {
        let request = Request::get(stack.url("/"))
            .header(COOKIE, "theme=dark; ripcord_slot=green")
            .body(Empty::new().boxed())
            .unwrap();
        let answer = send(&stack.client, request).await;
        assert_eq!(answer.body, "green");
        assert!(!answer.headers.contains_key(SET_COOKIE));
    }

    // Once green has no weight, the cookie no longer holds, and the client is moved.
    stack.proxy.set_weights(Weights::all_on(Slot::Blue));
    let request = Request::get(stack.url("/"))
        .header(COOKIE, "ripcord_slot=green")
        .body(Empty::new().boxed())
        .unwrap();
    let answer = send(&stack.client, request).await;
    assert_eq!(answer.body, "blue");
    assert!(
        answer.headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("ripcord_slot=blue;")
    );

    // A cookie naming no slot is ignored and replaced.
    let request = Request::get(stack.url("/"))
        .header(COOKIE, "ripcord_slot=purple")
        .body(Empty::new().boxed())
        .unwrap();
    let answer = send(&stack.client, request).await;
    assert_eq!(answer.body, "blue");
    assert!(answer.headers.contains_key(SET_COOKIE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stickiness_the_cookie_is_ignored_and_never_set() {
    let stack = Stack::start(50, ProxyOptions::default()).await;
    let mut seen = BTreeMap::new();
    for _ in 0..20 {
        let request = Request::get(stack.url("/"))
            .header(COOKIE, "ripcord_slot=green")
            .body(Empty::new().boxed())
            .unwrap();
        let answer = send(&stack.client, request).await;
        assert!(!answer.headers.contains_key(SET_COOKIE));
        *seen.entry(answer.body).or_insert(0) += 1;
    }
    // The split alone decides: about half each, not twenty on green.
    let (blue, green) = (seen.get("blue"), seen.get("green"));
    assert!(blue >= Some(&5) && green >= Some(&5), "answers: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_both_ways_and_forwarded_headers_added() {
    let stack = Stack::start(0, ProxyOptions::default()).await;
    let request = Request::get(stack.url("/echo?x=1"))
        .header(HOST, "shop.example")
        .header("connection", "x-client-hop")
        .header("x-client-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("upgrade", "h2c")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-end-to-end", "kept")
        .body(Empty::new().boxed())
        .unwrap();
    let answer = send(&stack.client, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen: BTreeMap<&str, &str> = answer
        .body
        .lines()
        .filter_map(|line| line.split_once(": "))
        .collect();
    for hop in [
        "connection",
        "x-client-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !seen.contains_key(hop),
            "{hop} reached the upstream: {seen:?}"
        );
    }
    assert_eq!(seen["x-end-to-end"], "kept");
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "shop.example");
    assert_eq!(seen["host"], stack.blue.addr.to_string());

    for hop in [
        "x-upstream-hop",
        "keep-alive",
        "proxy-connection",
        "trailer",
    ] {
        assert!(
            !answer.headers.contains_key(hop),
            "{hop} reached the client: {:?}",
            answer.headers
        );
    }
    assert_eq!(answer.headers["x-end-to-end"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_through_without_being_buffered() {
    let stack = Stack::start(100, ProxyOptions::default()).await;

    // The first chunk of an answer reaches the client while the upstream is still
    // holding back the rest: a proxy that buffered answers would never deliver it.
    let arrived = stack.green.control.arrived.notified();
    let response = tokio::time::timeout(SANITY, stack.client.request(get(&stack.url("/stream"))))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(SANITY, arrived).await.unwrap();
    let mut body = response.into_body();
    let first = tokio::time::timeout(SANITY, body.frame())
        .await
        .expect("the first chunk arrived before the upstream finished")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(&first[..], b"first|");
    stack.green.control.release.notify_one();
    let rest = tokio::time::timeout(SANITY, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(&rest[..], b"second");

    // A request body of unknown length, sent in chunks, arrives whole.
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        for _ in 0..64 {
            if sender
                .send(Bytes::from(vec![b'x'; 16 * 1024]))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let request = Request::builder()
        .method(Method::POST)
        .uri(stack.url("/count"))
        .body(ChannelBody(receiver).boxed())
        .unwrap();
    let answer = send(&stack.client, request).await;
    assert_eq!(answer.body, (64 * 16 * 1024).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_outlive_clients_that_close_theirs() {
    let options = ProxyOptions {
        workers: 1,
        ..ProxyOptions::default()
    };
    let stack = Stack::start(0, options).await;
    for _ in 0..20 {
        let request = Request::get(stack.url("/"))
            .header("connection", "close")
            .body(Empty::new().boxed())
            .unwrap();
        assert_eq!(send(&stack.client, request).await.body, "blue");
    }
    assert_eq!(stack.blue.control.served.load(Ordering::SeqCst), 20);
    // Each client connection closed after one request; the upstream connection was
    // kept and handed to the next one instead of being opened twenty times.
    let opened = stack.blue.control.connections.load(Ordering::SeqCst);
    assert!(opened <= 2, "{opened} upstream connections for 20 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_gets_a_json_502_counted_as_a_5xx_of_its_slot() {
    let blue = TestUpstream::start("blue").await;
    // A port that was free a moment ago and has nothing listening on it now.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let registry = ProxyRegistry::new();
    let spec = service_spec("web", "127.0.0.1:0", &blue.url(), &dead_url);
    let proxy = registry
        .start(&spec, Weights::all_on(Slot::Green), ProxyOptions::default())
        .unwrap();
    let start = now();

    let answer = send(&client(), get(&format!("http://{}/", proxy.local_addr()))).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(answer.headers["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["error"], "bad_gateway");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("upstream green ({dead_url}) is unreachable: ")),
        "message: {message}"
    );
    assert!(message.len() > format!("upstream green ({dead_url}) is unreachable: ").len());

    let metrics = registry
        .slot_metrics(
            &spec,
            Slot::Green,
            start,
            now().plus(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert_eq!((metrics.requests, metrics.errors_5xx), (1, 1));
    assert_eq!(metrics.value(MetricKind::ErrorRate), Some(100.0));
    // No upstream answered, so there is no latency to report.
    assert_eq!(metrics.latency_p99_ms, None);
    assert_eq!(proxy.totals(Slot::Blue), SlotTotals::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_5xx_answers_pass_through_and_count_as_errors() {
    let stack = Stack::start(100, ProxyOptions::default()).await;
    let start = now();
    for _ in 0..3 {
        let answer = stack.get("/fail").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.body, "green is failing");
    }
    stack.get("/").await;
    let metrics = stack
        .proxy
        .metrics(Slot::Green, start, now().plus(Duration::from_secs(1)));
    assert_eq!((metrics.requests, metrics.errors_5xx), (4, 3));
    assert_eq!(metrics.value(MetricKind::ErrorRate), Some(75.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_percentiles_follow_a_known_distribution() {
    let blue = TestUpstream::start("blue").await;
    let green = TestUpstream::start("green").await;
    let registry = ProxyRegistry::new();
    let spec = service_spec("web", "127.0.0.1:0", &blue.url(), &green.url());
    let proxy = registry
        .start(&spec, Weights::all_on(Slot::Green), ProxyOptions::default())
        .unwrap();
    let start = now();

    // 300 requests: 270 take 2 ms, 24 take 30 ms and 6 take 100 ms, so the true p95
    // is 30 ms and the true p99 is 100 ms.
    let client = client();
    let base = format!("http://{}/", proxy.local_addr());
    let mut tasks = Vec::new();
    for worker in 0..4u32 {
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..300).step_by(4) {
                let sleep = if i % 50 == 0 {
                    100
                } else if i % 10 == 0 {
                    30
                } else {
                    2
                };
                let answer = send(&client, get(&format!("{base}?sleep_ms={sleep}"))).await;
                assert_eq!(answer.status, StatusCode::OK);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let end = now().plus(Duration::from_secs(1));
    let metrics = registry
        .slot_metrics(&spec, Slot::Green, start, end)
        .await
        .unwrap();
    assert_eq!(metrics.requests, 300);
    assert_eq!(metrics.errors_5xx, 0);
    let p95 = metrics.latency_p95_ms.unwrap();
    let p99 = metrics.latency_p99_ms.unwrap();
    // The lower bounds are what the upstream slept, less the histogram's 10%; the
    // upper bounds leave room for a slow, shared test machine.
    assert!(
        (27.0..=80.0).contains(&p95),
        "p95 {p95} ms, expected about 30 ms"
    );
    assert!(
        (90.0..=200.0).contains(&p99),
        "p99 {p99} ms, expected about 100 ms"
    );
    assert!(p99 > p95);

    // The per-second series cover the window and add up to the whole.
    let counts = &metrics.series[&MetricKind::RequestCount];
    assert_eq!(counts.iter().sum::<f64>(), 300.0);
    assert!(!metrics.series[&MetricKind::LatencyP99].is_empty());

    let blue_metrics = registry
        .slot_metrics(&spec, Slot::Blue, start, end)
        .await
        .unwrap();
    assert_eq!(blue_metrics.requests, 0);
    assert_eq!(blue_metrics.latency_p99_ms, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_router_sets_and_reads_each_services_weights() {
    let blue = TestUpstream::start("blue").await;
    let green = TestUpstream::start("green").await;
    let registry = ProxyRegistry::new();
    let web = service_spec("web", "127.0.0.1:0", &blue.url(), &green.url());
    let api = service_spec("api", "127.0.0.1:0", &blue.url(), &green.url());
    let web_proxy = registry
        .start(&web, Weights::all_on(Slot::Blue), ProxyOptions::default())
        .unwrap();
    registry
        .start(&api, Weights::all_on(Slot::Blue), ProxyOptions::default())
        .unwrap();
    assert_eq!(
        registry.services(),
        [
            ServiceName::new("api").unwrap(),
            ServiceName::new("web").unwrap()
        ]
    );

    let router: &dyn TrafficRouter = &registry;
    let canary = green_weights(25);
    router.set_weights(&web, canary).await.unwrap();
    assert_eq!(router.read_weights(&web).await.unwrap(), canary);
    assert_eq!(
        router.read_weights(&api).await.unwrap(),
        Weights::all_on(Slot::Blue),
        "setting one service's weights changed another's"
    );

    // The weights read back are the ones served.
    let client = client();
    let mut to_green = 0;
    for _ in 0..100 {
        let answer = send(&client, get(&format!("http://{}/", web_proxy.local_addr()))).await;
        to_green += usize::from(answer.body == "green");
    }
    assert_eq!(to_green, 25);

    // A service without a running proxy is an error the engine can report.
    let other = service_spec("billing", "127.0.0.1:0", &blue.url(), &green.url());
    let error = router.read_weights(&other).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert!(error.message.contains("billing"), "{}", error.message);

    // A second proxy for the same service is refused.
    let again = registry.start(&web, Weights::all_on(Slot::Blue), ProxyOptions::default());
    assert!(again.is_err());

    let outcomes = registry.shutdown_all(Duration::from_secs(5)).await;
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes.iter().all(|(_, o)| *o == ShutdownOutcome::Drained));
    assert!(router.read_weights(&web).await.is_err());
}

/// Waits until nothing accepts connections at `addr` any more.
async fn refused(addr: SocketAddr) -> bool {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_connections_and_lets_in_flight_requests_finish() {
    let stack = Arc::new(Stack::start(0, ProxyOptions::default()).await);
    // An idle kept-alive connection must not hold the shutdown up.
    assert_eq!(stack.get("/").await.body, "blue");

    let arrived = stack.blue.control.arrived.notified();
    let client = stack.client.clone();
    let held_url = stack.url("/hold");
    let held = tokio::spawn(async move { send(&client, get(&held_url)).await });
    tokio::time::timeout(SANITY, arrived).await.unwrap();

    let stopping = stack.clone();
    let shutdown =
        tokio::spawn(async move { stopping.proxy.shutdown(Duration::from_secs(60)).await });
    assert!(
        refused(stack.proxy.local_addr()).await,
        "the proxy still accepts connections while shutting down"
    );
    assert!(
        !shutdown.is_finished(),
        "shutdown returned before the held request finished"
    );

    stack.blue.control.release.notify_one();
    let answer = tokio::time::timeout(SANITY, held).await.unwrap().unwrap();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "blue")
    );
    let outcome = tokio::time::timeout(SANITY, shutdown)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome, ShutdownOutcome::Drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_requests_still_in_flight_after_the_grace_period() {
    let stack = Stack::start(0, ProxyOptions::default()).await;
    let arrived = stack.blue.control.arrived.notified();
    let client = stack.client.clone();
    let held_url = stack.url("/hold");
    let held = tokio::spawn(async move { client.request(get(&held_url)).await });
    tokio::time::timeout(SANITY, arrived).await.unwrap();

    // The held request is never released, so the grace period runs out.
    let outcome = stack.proxy.shutdown(Duration::from_millis(200)).await;
    assert_eq!(
        outcome,
        ShutdownOutcome::TimedOut {
            aborted_connections: 1
        }
    );
    let result = tokio::time::timeout(SANITY, held).await.unwrap().unwrap();
    assert!(result.is_err(), "the cut request got an answer: {result:?}");
}
