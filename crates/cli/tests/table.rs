//! The commands that work against the DynamoDB table, run as a user runs them, against
//! the local AWS emulator that `scripts/test` starts.

use std::path::Path;
use std::process::{Command, Output};

use ripcord_core::config::parse_config;
use ripcord_core::domain::{DeploymentId, ServiceName};
use ripcord_core::driver::{DeployRequest, Driver};
use ripcord_core::memory::{ManualClock, MemoryNotifier, MemoryWorld};
use ripcord_core::time::Timestamp;

fn ripcord(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .env("RIPCORD_TABLE", table)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"))
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_status_commands_history_and_dora_work_on_the_table() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL must point at the local AWS emulator; run scripts/test"
    );
    let config = ripcord_aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("ripcord-cli-{}", std::process::id());
    ripcord_aws::dynamo::create_table(&client, &table)
        .await
        .unwrap();

    let out = ripcord(&table, &["apply", "canary.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("as version 1"),
        "{}",
        text(&out.stdout)
    );
    let again = ripcord(&table, &["apply", "canary.toml"]);
    assert!(text(&again.stdout).contains("already applied as version 1"));

    let out = ripcord(&table, &["status"]);
    assert_eq!(text(&out.stdout).trim(), "no active deployment");

    // CI starts a deployment (the webhook does this in production).
    let store = ripcord_aws::DynamoStore::new(client.clone(), table.clone());
    let world = MemoryWorld::default();
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-11-26T06:00:00Z").unwrap());
    let driver = Driver {
        providers: &world,
        store: &store,
        notifier: &MemoryNotifier::default(),
        clock: &clock,
    };
    let text_config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/canary.toml"),
    )
    .unwrap();
    let parsed = parse_config("canary.toml", &text_config).unwrap();
    let request = DeployRequest {
        service: ServiceName::new("web").unwrap(),
        version: "v43".into(),
        commit: "abc1234".into(),
        committed_at: None,
        author: "octocat".into(),
        slot: None,
    };
    let id = DeploymentId::new("cli-test-1").unwrap();
    driver
        .start(&parsed, 1, request, id.clone(), None)
        .await
        .unwrap();

    let out = ripcord(&table, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["active"][0]["deployment_id"], "cli-test-1");
    assert_eq!(json["active"][0]["state"], "pending");

    // Aborting queues the command and runs a pass at once. This service is in local
    // mode, so the ALB router refuses to touch it and says why; the abort is recorded.
    let out = ripcord(&table, &["abort", "cli-test-1", "--reason", "wrong build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("abort queued for web v43"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("not behind an ALB"),
        "{}",
        text(&out.stderr)
    );

    let out = ripcord(&table, &["history", "cli-test-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let history = text(&out.stdout);
    assert!(
        history.contains("command_applied") && history.contains("wrong build"),
        "{history}"
    );
    assert!(
        history.trim_end().ends_with("hash chain intact"),
        "{history}"
    );

    let out = ripcord(&table, &["dora", "--json", "--days", "7"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dora: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dora["succeeded"], 0);

    let missing = ripcord(&table, &["history", "no-such-deployment"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no deployment no-such-deployment"));
}
