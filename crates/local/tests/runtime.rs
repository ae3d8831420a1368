//! Local mode run whole, as `ripcord up` runs it: real sample apps as upstreams, the
//! proxy, the SQLite store in a temporary file, and the control port over real HTTP
//! with real HMAC signatures. A canary to success, an alarm rollback, a baseline
//! alarm that does not roll back, the API's refusals, and a restart in the middle of
//! a deployment that resumes it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ripcord_api::webhook::sign;
use ripcord_local::probe::{ProbeAnswer, probe, send};
use ripcord_local::proxy::ProxyOptions;
use ripcord_local::runtime::{LocalRuntime, RuntimeOptions};
use ripcord_local::sample_app::{SampleApp, SampleRelease};
use serde_json::{Value, json};

/// A generous bound for what should take a few seconds, so that a broken runtime
/// fails a test instead of hanging it.
const SANITY: Duration = Duration::from_secs(30);
const SECRET: &[u8] = b"test webhook secret";
const TOKEN: &str = "test-local-token";

/// A store file in the temporary directory, removed with its WAL files when dropped.
struct TempStore(PathBuf);

impl TempStore {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(std::env::temp_dir().join(format!(
            "ripcord-runtime-{name}-{}-{}-{nanos}.sqlite",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        )))
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn config(blue: &SampleApp, green: &SampleApp, steps: &str, bake: &str) -> String {
    format!(
        r#"
[services.web]
strategy = "canary"
steps = [{steps}]
bake = "{bake}"

[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{blue}", "{green}"]
health_check = {{ path = "/healthz", interval = "50ms", healthy_threshold = 2 }}

[[services.web.local.alarms]]
name = "web-5xx"
metric = "error_rate"
max = 5.0
window = "2s"
min_requests = 10

[services.web.alarms]
names = ["web-5xx"]

[[services.web.smoke]]
name = "health"
path = "/healthz"
body_contains = "ok"
"#,
        blue = blue.url(),
        green = green.url()
    )
}

async fn start(config: &str, store: &TempStore) -> LocalRuntime {
    LocalRuntime::start(RuntimeOptions {
        config_path: "test.toml".into(),
        config_text: config.into(),
        store_path: store.0.clone(),
        control_listen: "127.0.0.1:0".into(),
        webhook_secret: SECRET.to_vec(),
        token: TOKEN.into(),
        proxy: ProxyOptions {
            workers: 1,
            ..ProxyOptions::default()
        },
        discord: None,
    })
    .await
    .unwrap()
}

fn base(runtime: &LocalRuntime) -> String {
    format!("http://{}", runtime.control_addr())
}

async fn deploy(runtime: &LocalRuntime, version: &str, delivery: &str) -> ProbeAnswer {
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
        &base(runtime),
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
    .unwrap()
}

fn json_of(answer: &ProbeAnswer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

async fn get(runtime: &LocalRuntime, path: &str) -> Value {
    let answer = probe(&base(runtime), "GET", path, SANITY).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    json_of(&answer)
}

/// Polls the deployment until `done` holds for it, and returns it.
async fn wait_for(
    runtime: &LocalRuntime,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + SANITY;
    loop {
        let d = get(runtime, &format!("/api/deployments/{id}")).await;
        if done(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "never {what}: {d:#}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn served_green(runtime: &LocalRuntime) -> u64 {
    let status = get(runtime, "/api/status").await;
    status["services"][0]["served_weights"]["green"]
        .as_u64()
        .unwrap_or_else(|| panic!("{status:#}"))
}

/// Sends requests through the proxy until dropped.
struct Load(Arc<AtomicBool>);

impl Load {
    fn start(proxy: String) -> Load {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        tokio::spawn(async move {
            while flag.load(Ordering::Relaxed) {
                let _ = probe(&proxy, "GET", "/", Duration::from_secs(2)).await;
                tokio::time::sleep(Duration::from_millis(3)).await;
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

fn proxy_url(runtime: &LocalRuntime) -> String {
    let web = ripcord_core::domain::ServiceName::new("web").unwrap();
    format!("http://{}", runtime.proxy_addr(&web).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_runs_a_canary_to_success_and_the_api_shows_it() {
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .unwrap();
    let green = SampleApp::start(SampleRelease::healthy("v2"))
        .await
        .unwrap();
    let store = TempStore::new("success");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 50 }, { pause = \"300ms\" }, { set_weight = 100 }",
        "300ms",
    );
    let runtime = start(&config, &store).await;
    assert_eq!(served_green(&runtime).await, 0);

    // A bad signature is refused and writes nothing.
    let forged = send(
        &base(&runtime),
        "POST",
        "/deployments",
        &[
            ("x-ripcord-signature-256", "sha256=00"),
            ("x-ripcord-delivery", "d0"),
        ],
        b"{}".to_vec(),
        SANITY,
    )
    .await
    .unwrap();
    assert_eq!(forged.status, 401);
    assert_eq!(json_of(&forged)["error"], "bad_signature");
    assert_eq!(
        get(&runtime, "/api/deployments").await["deployments"],
        json!([])
    );

    let accepted = deploy(&runtime, "v2", "delivery-1").await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = json_of(&accepted)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The same delivery again is recognised.
    let again = deploy(&runtime, "v2", "delivery-1").await;
    assert_eq!(
        (
            again.status.as_u16(),
            json_of(&again)["deployment_id"].as_str()
        ),
        (200, Some(id.as_str()))
    );

    let _load = Load::start(proxy_url(&runtime));
    let done = wait_for(&runtime, &id, "finished", |d| {
        d["finished_at"] != Value::Null
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["verified"], true);
    let kinds: Vec<&str> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["kind"]["kind"]
                .as_str()
                .or(e["kind"].as_str())
                .unwrap_or("?")
        })
        .collect();
    assert!(kinds.len() >= 5, "{kinds:?}");

    let status = get(&runtime, "/api/status").await;
    let web = &status["services"][0];
    assert_eq!(web["live"], "green");
    assert_eq!(web["live_version"], "v2");
    assert_eq!(web["served_weights"]["green"], 100);
    assert_eq!(web["active"], Value::Null);

    // Commands need the token, and a finished deployment takes none.
    let path = format!("/api/deployments/{id}/rollback");
    let no_token = send(&base(&runtime), "POST", &path, &[], Vec::new(), SANITY)
        .await
        .unwrap();
    assert_eq!(no_token.status, 401);
    let auth = format!("Bearer {TOKEN}");
    let finished = send(
        &base(&runtime),
        "POST",
        &path,
        &[("authorization", &auth)],
        Vec::new(),
        SANITY,
    )
    .await
    .unwrap();
    assert_eq!(finished.status, 409, "{}", finished.body);
    assert_eq!(json_of(&finished)["error"], "finished");
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_rolls_the_canary_back_at_once() {
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .unwrap();
    let green = SampleApp::start(SampleRelease {
        version: "v3".into(),
        error_percent: 20,
        errors_after: Duration::ZERO,
    })
    .await
    .unwrap();
    let store = TempStore::new("alarm");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 50 }, { pause = \"1h\" }, { set_weight = 100 }",
        "1m",
    );
    let runtime = start(&config, &store).await;
    let _load = Load::start(proxy_url(&runtime));
    let id = json_of(&deploy(&runtime, "v3", "delivery-bad").await)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_for(&runtime, &id, "rolled back", |d| {
        d["finished_at"] != Value::Null
    })
    .await;
    assert_eq!(done["state"], "rolled_back", "{done:#}");
    let trigger = &done["rollback"]["trigger"];
    assert_eq!(
        (&trigger["type"], &trigger["name"]),
        (&json!("alarm"), &json!("web-5xx")),
        "{trigger:#}"
    );
    let reason = done["rollback"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("alarm web-5xx is firing (green error_rate"),
        "{reason}"
    );
    assert_eq!(served_green(&runtime).await, 0);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_firing_at_the_start_is_baseline_and_does_not_roll_back() {
    // The live slot is the faulty one: the alarm fires before the deployment starts.
    let blue = SampleApp::start(SampleRelease {
        version: "v1".into(),
        error_percent: 20,
        errors_after: Duration::ZERO,
    })
    .await
    .unwrap();
    let green = SampleApp::start(SampleRelease::healthy("v2"))
        .await
        .unwrap();
    let store = TempStore::new("baseline");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 50 }, { pause = \"1s\" }, { set_weight = 100 }",
        "500ms",
    );
    let runtime = start(&config, &store).await;
    let _load = Load::start(proxy_url(&runtime));
    let web = ripcord_core::domain::ServiceName::new("web").unwrap();
    let deadline = Instant::now() + SANITY;
    while runtime
        .proxies()
        .get(&web)
        .unwrap()
        .totals(ripcord_core::domain::Slot::Blue)
        .errors_5xx
        < 20
    {
        assert!(Instant::now() < deadline, "blue never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = json_of(&deploy(&runtime, "v2", "delivery-fix").await)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_for(&runtime, &id, "finished", |d| {
        d["finished_at"] != Value::Null
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let baseline_recorded = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["reason"].as_str().is_some_and(|r| r.contains("web-5xx")));
    assert!(
        baseline_recorded,
        "the baseline alarm is in the history: {:#}",
        done["events"]
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runtime_resumes_the_deployment_in_flight() {
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .unwrap();
    let green = SampleApp::start(SampleRelease::healthy("v2"))
        .await
        .unwrap();
    let store = TempStore::new("restart");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 30 }, { pause = \"until_resumed\" }, { set_weight = 100 }",
        "200ms",
    );
    let first = start(&config, &store).await;
    let id = json_of(&deploy(&first, "v2", "delivery-r").await)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(&first, &id, "paused", |d| d["state"] == "paused").await;
    assert_eq!(served_green(&first).await, 30);
    let old_proxy = proxy_url(&first);
    first.shutdown().await;
    assert!(
        probe(&old_proxy, "GET", "/", Duration::from_secs(2))
            .await
            .is_err(),
        "the proxy stopped with the runtime"
    );

    let second = start(&config, &store).await;
    assert_eq!(
        second.config_version(),
        1,
        "the same file is not stored twice"
    );
    // The proxy comes back at the deployment's weights, before any pass.
    assert_eq!(served_green(&second).await, 30);
    let paused = get(&second, &format!("/api/deployments/{id}")).await;
    assert_eq!(paused["state"], "paused");

    let auth = format!("Bearer {TOKEN}");
    let resumed = send(
        &base(&second),
        "POST",
        &format!("/api/deployments/{id}/resume"),
        &[("authorization", &auth)],
        br#"{"reason": "checked by hand"}"#.to_vec(),
        SANITY,
    )
    .await
    .unwrap();
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    let done = wait_for(&second, &id, "finished", |d| {
        d["finished_at"] != Value::Null
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["verified"], true);
    assert_eq!(served_green(&second).await, 100);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_live_weights_and_its_roll_back_button_works() {
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .unwrap();
    let green = SampleApp::start(SampleRelease::healthy("v2"))
        .await
        .unwrap();
    let store = TempStore::new("dashboard");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 25 }, { pause = \"until_resumed\" }, { set_weight = 100 }",
        "1m",
    );
    let runtime = start(&config, &store).await;
    let id = json_of(&deploy(&runtime, "v2", "delivery-ui").await)["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(&runtime, &id, "paused", |d| d["state"] == "paused").await;

    // Without the token the page shows no buttons.
    let anonymous = probe(&base(&runtime), "GET", "/", SANITY).await.unwrap();
    assert_eq!(anonymous.status, 200);
    assert!(
        anonymous
            .body
            .contains(&format!("data-deployment=\"{id}\""))
    );
    assert!(!anonymous.body.contains("id=\"rollback\""));

    let page = probe(&base(&runtime), "GET", &format!("/?token={TOKEN}"), SANITY)
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    // The weights shown are the ones the API reports the proxy serving.
    let served = served_green(&runtime).await;
    assert_eq!(served, 25);
    assert!(
        page.body
            .contains("id=\"served\" data-blue=\"75\" data-green=\"25\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"rollback\""));
    assert!(page.body.contains("id=\"approve\""));
    assert!(page.body.contains("<svg class=\"chart\""));

    // A form post with a wrong token is refused and changes nothing.
    let action = format!("/ui/deployments/{id}/rollback");
    let forged = send(
        &base(&runtime),
        "POST",
        &action,
        &[],
        b"token=guess".to_vec(),
        SANITY,
    )
    .await
    .unwrap();
    assert_eq!(forged.status, 401);
    assert_eq!(
        get(&runtime, &format!("/api/deployments/{id}")).await["state"],
        "paused"
    );

    let clicked = send(
        &base(&runtime),
        "POST",
        &action,
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("token={TOKEN}").into_bytes(),
        SANITY,
    )
    .await
    .unwrap();
    assert_eq!(clicked.status, 303, "{}", clicked.body);
    let done = wait_for(&runtime, &id, "rolled back", |d| {
        d["finished_at"] != Value::Null
    })
    .await;
    assert_eq!(done["state"], "rolled_back");
    assert_eq!(served_green(&runtime).await, 0);
    let after = probe(&base(&runtime), "GET", "/", SANITY).await.unwrap();
    assert!(
        after
            .body
            .contains("id=\"served\" data-blue=\"100\" data-green=\"0\"")
    );
    assert!(after.body.contains(&format!("id=\"history-{id}\"")));
    runtime.shutdown().await;
}
