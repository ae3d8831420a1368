//! The stored-flag commands (`ripcord flags list | get | set | enable | disable |
//! rollout | import` and `keys create | list | revoke`) run as a user runs them, against a table in the local
//! AWS emulator that `scripts/test` starts.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn ripcord(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .env("RIPCORD_TABLE", table)
        .env("USER", "ops")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(table: &str, args: &[&str]) -> String {
    let out = ripcord(table, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_are_created_ramped_switched_imported_and_listed_on_the_table() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL must point at the local AWS emulator; run scripts/test"
    );
    let config = ripcord_aws::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("ripcord-cli-flags-{}", std::process::id());
    ripcord_aws::dynamo::create_table(&client, &table)
        .await
        .unwrap();

    assert!(ok(&table, &["flags", "list"]).starts_with("no flags"));
    assert_eq!(
        ok(&table, &["flags", "rollout", "checkout", "10"]).trim(),
        "checkout: created with rollout 10% (version 1)"
    );
    assert_eq!(
        ok(&table, &["flags", "rollout", "checkout", "40"]).trim(),
        "checkout: rollout 10% → 40% (version 2)"
    );
    assert_eq!(
        ok(&table, &["flags", "disable", "checkout"]).trim(),
        "checkout disabled (version 3)"
    );
    let refused = ripcord(&table, &["flags", "rollout", "checkout", "140"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("PERCENT"),
        "{}",
        text(&refused.stderr)
    );

    let state = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unleash-state.json");
    let imported = ok(
        &table,
        &["flags", "import", "--unleash", state.to_str().unwrap()],
    );
    assert!(imported.contains("created"), "{imported}");

    let listed: Value = serde_json::from_str(&ok(&table, &["flags", "list", "--json"])).unwrap();
    let checkout = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "checkout")
        .unwrap();
    assert_eq!(checkout["enabled"], false);
    assert_eq!(checkout["rollout"], 40.0);
    assert_eq!(checkout["version"], 3);
    assert_eq!(checkout["updated_by"], "cli ops");
    assert!(
        listed.as_array().unwrap().len() > 1,
        "the import added flags"
    );

    let shown: Value =
        serde_json::from_str(&ok(&table, &["flags", "get", "checkout", "--json"])).unwrap();
    let history: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["created with rollout 10%", "rollout 10% → 40%", "disabled"]
    );

    let key = ok(&table, &["flags", "keys", "create", "web"]);
    let key = key.trim();
    assert!(key.starts_with("rcf_"), "{key}");
    let keys = ok(&table, &["flags", "keys", "list"]);
    assert!(keys.contains("web") && !keys.contains(key), "{keys}");
    let again = ripcord(&table, &["flags", "keys", "create", "web"]);
    assert!(text(&again.stderr).contains("exists already"));
    let unknown = ripcord(&table, &["flags", "keys", "revoke", "absent"]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no API key named \"absent\""),
        "{}",
        text(&unknown.stderr)
    );
    let revoked = ok(&table, &["flags", "keys", "revoke", "web"]);
    assert!(
        revoked.starts_with("API key web revoked (created ") && revoked.contains("by cli ops"),
        "{revoked}"
    );
    let keys = ok(&table, &["flags", "keys", "list"]);
    assert!(keys.starts_with("no API keys"), "{keys}");
    let renewed = ok(&table, &["flags", "keys", "create", "web"]);
    assert!(
        renewed.trim().starts_with("rcf_") && renewed.trim() != key,
        "the name is free again, for a new key"
    );

    let missing = ripcord(&table, &["flags", "get", "nope"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("ripcord flags list"));
}
