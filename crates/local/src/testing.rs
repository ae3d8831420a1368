//! Local mode set up for a test (feature `testing`): sample apps as the upstreams, a
//! temporary directory for the SQLite store, a runtime on free loopback ports with a
//! known webhook secret and token, and the few requests every test of it makes (a
//! signed delivery, a JSON read, polling until a deployment gets somewhere, load
//! through the proxy).
//!
//! Tests of ripcord-local and of the command line's `--local` paths share it, so that
//! each of them says only what it is about: its configuration, and what it checks.
//! Nothing here is used outside tests; a helper that cannot do its job panics, saying
//! why, as a test would.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ripcord_api::webhook::sign;
use ripcord_core::domain::ServiceName;
use serde_json::{Value, json};

use crate::probe::{ProbeAnswer, probe, send};
use crate::proxy::ProxyOptions;
use crate::runtime::{LocalRuntime, RuntimeOptions};
use crate::sample_app::{SampleApp, SampleRelease};

/// The webhook secret of every runtime started here.
pub const SECRET: &[u8] = b"local test webhook secret";

/// The local token of every runtime started here.
pub const TOKEN: &str = "local-test-token";

/// A generous bound for what should take a few seconds, so that a broken runtime fails
/// a test instead of hanging it.
pub const SANITY: Duration = Duration::from_secs(30);

/// A fresh directory under the system's temporary directory, removed with everything
/// in it when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes `ripcord-<name>-<process>-<counter>-<nanoseconds>`, a name no other test
    /// (in this process or another) uses at the same time.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "ripcord-{name}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The SQLite store's file in it.
    pub fn store(&self) -> PathBuf {
        self.0.join("ripcord.sqlite")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts two sample apps on free loopback ports, for the blue and the green slot.
pub async fn sample_apps(blue: SampleRelease, green: SampleRelease) -> (SampleApp, SampleApp) {
    let start = |release: SampleRelease| async move {
        SampleApp::start(release)
            .await
            .unwrap_or_else(|e| panic!("a sample app cannot start: {e}"))
    };
    (start(blue).await, start(green).await)
}

/// Sample apps with a healthy `v1` on blue and a healthy `v2` on green.
pub async fn healthy_apps() -> (SampleApp, SampleApp) {
    sample_apps(SampleRelease::healthy("v1"), SampleRelease::healthy("v2")).await
}

/// What `ripcord up` would be given, as tests want it: `config_text`, the store in
/// `dir`, the control port on a free loopback port, [`SECRET`] and [`TOKEN`], one
/// proxy worker, and no Discord.
pub fn options(config_text: &str, dir: &TempDir) -> RuntimeOptions {
    RuntimeOptions {
        config_path: "test.toml".into(),
        config_text: config_text.into(),
        store_path: dir.store(),
        control_listen: "127.0.0.1:0".into(),
        webhook_secret: SECRET.to_vec(),
        token: TOKEN.into(),
        proxy: ProxyOptions {
            workers: 1,
            ..ProxyOptions::default()
        },
        discord: None,
    }
}

/// Starts local mode with [`options`]; it is ready when this returns.
pub async fn start_runtime(config_text: &str, dir: &TempDir) -> LocalRuntime {
    LocalRuntime::start(options(config_text, dir))
        .await
        .unwrap_or_else(|e| panic!("local mode does not start: {e}"))
}

/// The control port's URL: the webhook, the JSON API, the dashboard and OFREP.
pub fn control_url(runtime: &LocalRuntime) -> String {
    format!("http://{}", runtime.control_addr())
}

/// The URL of the proxy of the service `web`.
pub fn proxy_url(runtime: &LocalRuntime) -> String {
    let web = ServiceName::new("web").expect("a valid service name");
    let addr = runtime
        .proxy_addr(&web)
        .unwrap_or_else(|| panic!("no proxy for web"));
    format!("http://{addr}")
}

/// CI's delivery of `version` of `web` to the webhook at `url`, signed with [`SECRET`]
/// and sent as delivery `delivery`, committed by `octocat` at 09:00 on 26 November 2026.
pub async fn deliver(url: &str, version: &str, delivery: &str) -> ProbeAnswer {
    let body = json!({
        "service": "web",
        "version": version,
        "commit": format!("c0ffee-{version}"),
        "committed_at": "2026-11-26T09:00:00Z",
        "author": "octocat",
    })
    .to_string();
    let signature = sign(SECRET, body.as_bytes());
    send(
        url,
        "POST",
        "/deployments",
        &[
            ("content-type", "application/json"),
            ("x-ripcord-signature-256", &signature),
            ("x-ripcord-delivery", delivery),
        ],
        body.into_bytes(),
        SANITY,
    )
    .await
    .unwrap_or_else(|e| panic!("the webhook at {url} does not answer: {e}"))
}

/// The deployment id in the webhook's answer, after checking that the answer is a 202
/// (a deployment created) or a 200 (a delivery seen before).
pub fn deployment_id(answer: &ProbeAnswer) -> String {
    assert!(
        matches!(answer.status.as_u16(), 200 | 202),
        "{} {}",
        answer.status,
        answer.body
    );
    json_of(answer)["deployment_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no deployment_id: {}", answer.body))
        .to_string()
}

/// An answer's body as JSON.
pub fn json_of(answer: &ProbeAnswer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

/// `GET path` from the server at `url`, checked to be a 200, as JSON.
pub async fn get_json(url: &str, path: &str) -> Value {
    let answer = probe(url, "GET", path, SANITY)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    json_of(&answer)
}

/// Polls `GET path` until `done` holds for it, and returns it; fails the test, saying
/// it was never `what`, after [`SANITY`].
pub async fn wait_for(url: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SANITY;
    loop {
        let value = get_json(url, path).await;
        if done(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "never {what}: {value:#}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls the deployment `id` as the JSON API shows it until `done` holds for it.
pub async fn wait_for_deployment(
    url: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(url, &format!("/api/deployments/{id}"), what, done).await
}

/// Requests sent through a proxy, one after another, until dropped: the traffic that
/// the proxy's metrics, and so the local alarms, are made of.
#[derive(Debug)]
pub struct Load(Arc<AtomicBool>);

impl Load {
    /// Starts sending `GET /` to `proxy_url`, with `pause` between requests.
    pub fn start(proxy_url: String, pause: Duration) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        tokio::spawn(async move {
            while flag.load(Ordering::Relaxed) {
                let _ = probe(&proxy_url, "GET", "/", Duration::from_secs(2)).await;
                tokio::time::sleep(pause).await;
            }
        });
        Load(running)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}
