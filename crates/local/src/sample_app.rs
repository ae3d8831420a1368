//! A small HTTP app that `ripcord demo` runs in each slot, and that tests use as a
//! real upstream: it answers `/healthz` with `ok` and every other path with a
//! greeting that names its version (also in the `x-version` header).
//!
//! A release can be faulty: from some time after it is deployed, a share of its
//! answers (other than `/healthz`, which keeps passing, as a real bad release's often
//! does) are 500s, spread evenly rather than bunched.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What a sample app serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRelease {
    /// The version it names, e.g. `v2`.
    pub version: String,
    /// The share of answers that are 500s once the fault starts, 0 to 100.
    pub error_percent: u8,
    /// How long after the release is deployed the fault starts.
    pub errors_after: Duration,
}

impl SampleRelease {
    /// A release that always answers well.
    pub fn healthy(version: &str) -> Self {
        Self {
            version: version.to_string(),
            error_percent: 0,
            errors_after: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
struct Deployed {
    release: SampleRelease,
    at: Instant,
}

/// A running sample app. Dropping it stops it.
#[derive(Debug)]
pub struct SampleApp {
    addr: SocketAddr,
    deployed: Arc<Mutex<Deployed>>,
    served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl SampleApp {
    /// Starts serving `release` on a free loopback port.
    pub async fn start(release: SampleRelease) -> std::io::Result<SampleApp> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let deployed = Arc::new(Mutex::new(Deployed {
            release,
            at: Instant::now(),
        }));
        let served = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let deployed = deployed.clone();
            let served = served.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let deployed = deployed.clone();
                    let served = served.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            let answer = answer(&deployed, &served, &request);
                            async move { Ok::<_, Infallible>(answer) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Ok(SampleApp {
            addr,
            deployed,
            served,
            task,
        })
    }

    /// The app's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces what the app serves, as a deploy to its slot would.
    pub fn deploy(&self, release: SampleRelease) {
        *self.deployed.lock().unwrap_or_else(|e| e.into_inner()) = Deployed {
            release,
            at: Instant::now(),
        };
        self.served.store(0, Ordering::Relaxed);
    }

    /// The version it serves.
    pub fn version(&self) -> String {
        self.deployed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release
            .version
            .clone()
    }
}

impl Drop for SampleApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(
    deployed: &Mutex<Deployed>,
    served: &AtomicU64,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (version, failing) = {
        let deployed = deployed.lock().unwrap_or_else(|e| e.into_inner());
        let release = &deployed.release;
        let faulty = release.error_percent > 0 && deployed.at.elapsed() >= release.errors_after;
        (
            release.version.clone(),
            faulty.then_some(release.error_percent),
        )
    };
    if request.uri().path() == "/healthz" {
        return respond(StatusCode::OK, &version, "ok\n".to_string());
    }
    let n = served.fetch_add(1, Ordering::Relaxed);
    // The same even spread as the proxy's split: every 100 requests carry exactly
    // the configured share of errors.
    if let Some(percent) = failing
        && (n % 100) * 37 % 100 < u64::from(percent)
    {
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            &version,
            format!("{{\"error\":\"internal\",\"message\":\"{version} failed this request\"}}\n"),
        );
    }
    respond(StatusCode::OK, &version, format!("hello from {version}\n"))
}

fn respond(status: StatusCode, version: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(version) {
        response.headers_mut().insert("x-version", value);
    }
    response
}
