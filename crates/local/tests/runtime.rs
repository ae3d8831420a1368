//! Local mode run whole, as `ripcord up` runs it: real sample apps as upstreams, the
//! proxy, the SQLite store in a temporary file, and the control port over real HTTP
//! with real HMAC signatures. A canary to success, an alarm rollback, a baseline
//! alarm that does not roll back, the API's refusals, and a restart in the middle of
//! a deployment that resumes it.

use std::time::{Duration, Instant};

use ripcord_local::probe::{probe, send};
use ripcord_local::runtime::LocalRuntime;
use ripcord_local::sample_app::{SampleApp, SampleRelease};
use ripcord_local::testing::{
    Load, SANITY, TOKEN, TempDir, control_url, deliver, deployment_id, get_json, healthy_apps,
    json_of, proxy_url, sample_apps, start_runtime, wait_for_deployment,
};
use serde_json::{Value, json};

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

async fn served_green(runtime: &LocalRuntime) -> u64 {
    let status = get_json(&control_url(runtime), "/api/status").await;
    status["services"][0]["served_weights"]["green"]
        .as_u64()
        .unwrap_or_else(|| panic!("{status:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_runs_a_canary_to_success_and_the_api_shows_it() {
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("success");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 50 }, { pause = \"300ms\" }, { set_weight = 100 }",
        "300ms",
    );
    let runtime = start_runtime(&config, &store).await;
    let url = control_url(&runtime);
    assert_eq!(served_green(&runtime).await, 0);

    // A bad signature is refused and writes nothing.
    let forged = send(
        &url,
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
        get_json(&url, "/api/deployments").await["deployments"],
        json!([])
    );

    let accepted = deliver(&url, "v2", "delivery-1").await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = deployment_id(&accepted);
    // The same delivery again is recognised.
    let again = deliver(&url, "v2", "delivery-1").await;
    assert_eq!(
        (
            again.status.as_u16(),
            json_of(&again)["deployment_id"].as_str()
        ),
        (200, Some(id.as_str()))
    );

    let _load = Load::start(proxy_url(&runtime), Duration::from_millis(3));
    let done =
        wait_for_deployment(&url, &id, "finished", |d| d["finished_at"] != Value::Null).await;
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

    let status = get_json(&url, "/api/status").await;
    let web = &status["services"][0];
    assert_eq!(web["live"], "green");
    assert_eq!(web["live_version"], "v2");
    assert_eq!(web["served_weights"]["green"], 100);
    assert_eq!(web["active"], Value::Null);

    // Commands need the token, and a finished deployment takes none.
    let path = format!("/api/deployments/{id}/rollback");
    let no_token = send(&url, "POST", &path, &[], Vec::new(), SANITY)
        .await
        .unwrap();
    assert_eq!(no_token.status, 401);
    let auth = format!("Bearer {TOKEN}");
    let finished = send(
        &url,
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
    let (blue, green) = sample_apps(
        SampleRelease::healthy("v1"),
        SampleRelease {
            version: "v3".into(),
            error_percent: 20,
            errors_after: Duration::ZERO,
        },
    )
    .await;
    let store = TempDir::new("alarm");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 50 }, { pause = \"1h\" }, { set_weight = 100 }",
        "1m",
    );
    let runtime = start_runtime(&config, &store).await;
    let url = control_url(&runtime);
    let _load = Load::start(proxy_url(&runtime), Duration::from_millis(3));
    let id = deployment_id(&deliver(&url, "v3", "delivery-bad").await);
    let done = wait_for_deployment(&url, &id, "rolled back", |d| {
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
    let (blue, green) = sample_apps(
        SampleRelease {
            version: "v1".into(),
            error_percent: 20,
            errors_after: Duration::ZERO,
        },
        SampleRelease::healthy("v2"),
    )
    .await;
    let store = TempDir::new("baseline");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 50 }, { pause = \"1s\" }, { set_weight = 100 }",
        "500ms",
    );
    let runtime = start_runtime(&config, &store).await;
    let url = control_url(&runtime);
    let _load = Load::start(proxy_url(&runtime), Duration::from_millis(3));
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
    let id = deployment_id(&deliver(&url, "v2", "delivery-fix").await);
    let done =
        wait_for_deployment(&url, &id, "finished", |d| d["finished_at"] != Value::Null).await;
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
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("restart");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 30 }, { pause = \"until_resumed\" }, { set_weight = 100 }",
        "200ms",
    );
    let first = start_runtime(&config, &store).await;
    let id = deployment_id(&deliver(&control_url(&first), "v2", "delivery-r").await);
    wait_for_deployment(&control_url(&first), &id, "paused", |d| {
        d["state"] == "paused"
    })
    .await;
    assert_eq!(served_green(&first).await, 30);
    let old_proxy = proxy_url(&first);
    first.shutdown().await;
    assert!(
        probe(&old_proxy, "GET", "/", Duration::from_secs(2))
            .await
            .is_err(),
        "the proxy stopped with the runtime"
    );

    let second = start_runtime(&config, &store).await;
    assert_eq!(
        second.config_version(),
        1,
        "the same file is not stored twice"
    );
    // The proxy comes back at the deployment's weights, before any pass.
    assert_eq!(served_green(&second).await, 30);
    let paused = get_json(&control_url(&second), &format!("/api/deployments/{id}")).await;
    assert_eq!(paused["state"], "paused");

    let auth = format!("Bearer {TOKEN}");
    let resumed = send(
        &control_url(&second),
        "POST",
        &format!("/api/deployments/{id}/resume"),
        &[("authorization", &auth)],
        br#"{"reason": "checked by hand"}"#.to_vec(),
        SANITY,
    )
    .await
    .unwrap();
    assert_eq!(resumed.status, 202, "{}", resumed.body);
    let done = wait_for_deployment(&control_url(&second), &id, "finished", |d| {
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
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("dashboard");
    let config = config(
        &blue,
        &green,
        "{ set_weight = 25 }, { pause = \"until_resumed\" }, { set_weight = 100 }",
        "1m",
    );
    let runtime = start_runtime(&config, &store).await;
    let url = control_url(&runtime);
    let id = deployment_id(&deliver(&url, "v2", "delivery-ui").await);
    wait_for_deployment(&url, &id, "paused", |d| d["state"] == "paused").await;

    // Without the token the page shows no buttons.
    let anonymous = probe(&url, "GET", "/", SANITY).await.unwrap();
    assert_eq!(anonymous.status, 200);
    assert!(
        anonymous
            .body
            .contains(&format!("data-deployment=\"{id}\""))
    );
    assert!(!anonymous.body.contains("id=\"rollback\""));

    let page = probe(&url, "GET", &format!("/?token={TOKEN}"), SANITY)
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
    let forged = send(&url, "POST", &action, &[], b"token=guess".to_vec(), SANITY)
        .await
        .unwrap();
    assert_eq!(forged.status, 401);
    assert_eq!(
        get_json(&url, &format!("/api/deployments/{id}")).await["state"],
        "paused"
    );

    let clicked = send(
        &url,
        "POST",
        &action,
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("token={TOKEN}").into_bytes(),
        SANITY,
    )
    .await
    .unwrap();
    assert_eq!(clicked.status, 303, "{}", clicked.body);
    let done = wait_for_deployment(&url, &id, "rolled back", |d| {
        d["finished_at"] != Value::Null
    })
    .await;
    assert_eq!(done["state"], "rolled_back");
    assert_eq!(served_green(&runtime).await, 0);
    let after = probe(&url, "GET", "/", SANITY).await.unwrap();
    assert!(
        after
            .body
            .contains("id=\"served\" data-blue=\"100\" data-green=\"0\"")
    );
    assert!(after.body.contains(&format!("id=\"history-{id}\"")));
    runtime.shutdown().await;
}
