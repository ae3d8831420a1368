//! The server side of the proxy benchmark that `scripts/bench-proxy` runs: the same
//! two upstreams behind both local mode's proxy and nginx, so that one `wrk` run
//! against each compares the proxies and nothing else.
//!
//! ```text
//! proxy upstreams BLUE_ADDR GREEN_ADDR          serve both slots; GET /__counts reports
//! proxy proxy LISTEN BLUE_URL GREEN_URL GREEN%  run the local proxy at that split
//! proxy counts ADDR                             print an upstream's /__counts
//! ```
//!
//! It is a bench target so that it builds with the release profile and stays out of
//! the library, but it measures nothing itself: run by `cargo bench` it only says
//! where the benchmark is.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ripcord_core::config::{LocalHealthCheck, LocalTarget};
use ripcord_core::domain::{ServiceName, Slot, Weight, Weights};
use ripcord_local::proxy::{LocalProxy, ProxyOptions};
use tokio::net::TcpListener;

const USAGE: &str = "usage: proxy upstreams BLUE_ADDR GREEN_ADDR
       proxy proxy LISTEN BLUE_URL GREEN_URL GREEN_PERCENT
       proxy counts UPSTREAM_ADDR
The benchmark itself is scripts/bench-proxy, which runs these next to nginx and wrk.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The proxy runs on worker threads of its own; this runtime serves the
    // upstreams, and the proxy's start and the counts client.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the Tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.as_slice() {
        ["upstreams", blue, green] => runtime.block_on(upstreams(blue, green)),
        ["proxy", listen, blue, green, percent] => {
            runtime.block_on(proxy(listen, blue, green, percent))
        }
        ["counts", addr] => runtime.block_on(counts(addr)),
        // `cargo bench` runs every bench target with `--bench`, and `cargo test
        // --benches` with no argument; this one is driven from outside, so say where
        // and succeed.
        [] | ["--bench", ..] => {
            println!("the proxy benchmark is run by scripts/bench-proxy");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Requests answered by each slot, for the split each proxy really served.
#[derive(Default)]
struct Counts {
    blue: AtomicU64,
    green: AtomicU64,
}

/// Serves both upstreams until killed: each answers every request with its slot's
/// name, except `/__counts`, which reports both slots' counts.
async fn upstreams(blue: &str, green: &str) -> Result<(), String> {
    let counts = Arc::new(Counts::default());
    let blue = serve_upstream(Slot::Blue, parse_addr(blue)?, counts.clone()).await?;
    let green = serve_upstream(Slot::Green, parse_addr(green)?, counts).await?;
    println!("upstreams listening: blue on {blue}, green on {green}");
    std::future::pending::<()>().await;
    Ok(())
}

fn parse_addr(addr: &str) -> Result<SocketAddr, String> {
    addr.parse()
        .map_err(|e| format!("{addr:?} is not an address such as 127.0.0.1:18081 ({e})"))
}

async fn serve_upstream(
    slot: Slot,
    addr: SocketAddr,
    counts: Arc<Counts>,
) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for {slot}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let counts = counts.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let counts = counts.clone();
                    async move {
                        let body = if request.uri().path() == "/__counts" {
                            format!(
                                "{} {}\n",
                                counts.blue.load(Ordering::Relaxed),
                                counts.green.load(Ordering::Relaxed)
                            )
                        } else {
                            match slot {
                                Slot::Blue => counts.blue.fetch_add(1, Ordering::Relaxed),
                                Slot::Green => counts.green.fetch_add(1, Ordering::Relaxed),
                            };
                            format!("{slot}\n")
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

/// Runs the local proxy at the given split until killed.
async fn proxy(listen: &str, blue: &str, green: &str, percent: &str) -> Result<(), String> {
    let percent = percent
        .parse::<u32>()
        .ok()
        .and_then(|p| Weight::new(p).ok())
        .ok_or_else(|| format!("{percent:?} is not a percentage from 0 to 100"))?;
    let target = LocalTarget {
        listen: listen.to_owned(),
        blue: blue.to_owned(),
        green: green.to_owned(),
        health_check: LocalHealthCheck::default(),
        alarms: Vec::new(),
    };
    let service = ServiceName::new("bench").map_err(|e| e.to_string())?;
    let proxy = LocalProxy::start(
        service,
        &target,
        Weights::split(Slot::Green, percent),
        ProxyOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "proxy listening on {} ({})",
        proxy.local_addr(),
        proxy.weights()
    );
    std::future::pending::<()>().await;
    Ok(())
}

/// Prints an upstream's counts: blue's, then green's.
async fn counts(addr: &str) -> Result<(), String> {
    let addr = parse_addr(addr)?;
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = Request::get(format!("http://{addr}/__counts"))
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("cannot reach the upstream at {addr}: {e}"))?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    print!("{}", String::from_utf8_lossy(&body));
    Ok(())
}
