//! `ripcord dora --local URL`, run as a user runs it against a local mode started by
//! the test, after one deployment promoted to success and one rolled back: the same
//! figures as the table path computes over the same store.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use ripcord_api::control::dora_report;
use ripcord_core::domain::ServiceName;
use ripcord_core::dora::{DoraReport, render_text};
use ripcord_core::time::Timestamp;
use ripcord_local::probe::probe;
use ripcord_local::testing::{
    SANITY, TOKEN, TempDir, control_url, deliver, deployment_id, healthy_apps, start_runtime,
    wait_for_deployment,
};

fn ripcord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .env_remove("RIPCORD_TABLE")
        .env_remove("RIPCORD_LOCAL_TOKEN")
        .output()
        .expect("the binary runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn now() -> Timestamp {
    Timestamp::from_millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

/// Starts a deployment of `version` and waits until it bakes at 100%.
async fn deploy_and_bake(url: &str, version: &str) -> String {
    let answer = deliver(url, version, version).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = deployment_id(&answer);
    wait_for_state(url, &id, "baking").await;
    id
}

async fn wait_for_state(url: &str, id: &str, state: &str) {
    wait_for_deployment(url, id, state, |d| d["state"] == state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dora_against_local_mode_prints_the_table_paths_figures() {
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("cli-dora");
    let config = format!(
        r#"
[services.web]
strategy = "canary"
steps = [{{ set_weight = 100 }}]
bake = "1h"
[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{}", "{}"]
health_check = {{ path = "/healthz", interval = "50ms" }}
"#,
        blue.url(),
        green.url()
    );
    let local = start_runtime(&config, &store).await;
    let url = control_url(&local);

    let first = deploy_and_bake(&url, "v2").await;
    ok(&ripcord(&[
        "promote", &first, "--local", &url, "--token", TOKEN,
    ]));
    wait_for_state(&url, &first, "succeeded").await;
    let second = deploy_and_bake(&url, "v3").await;
    ok(&ripcord(&[
        "rollback", &second, "--local", &url, "--token", TOKEN,
    ]));
    wait_for_state(&url, &second, "rolled_back").await;

    let text = ok(&ripcord(&["dora", "--days", "7", "--local", &url]));
    let expected = dora_report(local.store(), None, 7, now()).await.unwrap();
    assert_eq!((expected.succeeded, expected.failed_changes), (1, 1));
    // The heading names the window's ends, the moments each was computed; the figures
    // below it are the same.
    let rendered = render_text(&expected);
    let (heading, figures) = text.split_once('\n').unwrap();
    assert!(
        heading.starts_with("DORA metrics for all services, ") && heading.ends_with(" (7d)"),
        "{heading}"
    );
    assert_eq!(figures, rendered.split_once('\n').unwrap().1.trim_end());
    assert!(
        text.contains("2 finished: 1 succeeded, 1 rolled back"),
        "{text}"
    );

    let web = ServiceName::new("web").unwrap();
    let json = ok(&ripcord(&[
        "dora",
        "--service",
        "web",
        "--days",
        "7",
        "--local",
        &url,
        "--json",
    ]));
    let shown: DoraReport = serde_json::from_str(&json).unwrap();
    let expected = dora_report(local.store(), Some(&web), 7, now())
        .await
        .unwrap();
    // The window's ends are the moments each was computed; everything else is equal.
    assert_eq!(
        DoraReport {
            from: expected.from,
            to: expected.to,
            ..shown.clone()
        },
        expected
    );
    assert_eq!(json, serde_json::to_string_pretty(&shown).unwrap());

    let refused = ripcord(&["dora", "--days", "0", "--local", &url]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--days must be at least 1"));
    let unknown = probe(&url, "GET", "/api/dora?days=soon", SANITY)
        .await
        .unwrap();
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(
        unknown.body.contains("\"field\":\"days\""),
        "{}",
        unknown.body
    );

    local.shutdown().await;
}
