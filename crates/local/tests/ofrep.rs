//! OFREP flag evaluation on local mode's control port, over real HTTP on loopback:
//! flags and API keys in the SQLite store, a key's SHA-256 checked, a flag that does
//! not exist, and the bulk answer's ETag.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ripcord_core::domain::Weight;
use ripcord_core::flags::stored::{api_key_sha256, new_rollout_flag};
use ripcord_core::history::Actor;
use ripcord_core::ports::{ApiKeyRecord, FlagRecordKind, FlagWrite};
use ripcord_core::time::Timestamp;
use ripcord_local::probe::{ProbeAnswer, send};
use ripcord_local::proxy::ProxyOptions;
use ripcord_local::runtime::{LocalRuntime, RuntimeOptions};
use ripcord_local::sample_app::{SampleApp, SampleRelease};
use serde_json::{Value, json};

const SANITY: Duration = Duration::from_secs(30);
const KEY: &str = "rcf_local-ofrep-test-key";
const TOKEN: &str = "local-flags-token";
const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

/// The store file, removed with its WAL files when dropped.
struct TempStore(PathBuf);

impl TempStore {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "ripcord-local-{name}-{}-{}.sqlite",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
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

async fn start(blue: &SampleApp, green: &SampleApp, store: &TempStore) -> LocalRuntime {
    let config = format!(
        r#"
[services.web]
strategy = "all_at_once"
[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{}", "{}"]
"#,
        blue.url(),
        green.url()
    );
    LocalRuntime::start(RuntimeOptions {
        config_path: "ofrep.toml".into(),
        config_text: config,
        store_path: store.0.clone(),
        control_listen: "127.0.0.1:0".into(),
        webhook_secret: b"unused".to_vec(),
        token: TOKEN.into(),
        proxy: ProxyOptions {
            workers: 1,
            ..ProxyOptions::default()
        },
    })
    .await
    .unwrap()
}

async fn evaluate(
    runtime: &LocalRuntime,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> ProbeAnswer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(
        &format!("http://{}", runtime.control_addr()),
        "POST",
        path,
        &all,
        body.to_string().into_bytes(),
        SANITY,
    )
    .await
    .unwrap()
}

fn json_of(answer: &ProbeAnswer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_port_evaluates_stored_flags_for_a_known_key() {
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .unwrap();
    let green = SampleApp::start(SampleRelease::healthy("v2"))
        .await
        .unwrap();
    let store = TempStore::new("ofrep");
    let runtime = start(&blue, &green, &store).await;
    let flags = runtime.flag_store();
    let actor = Actor::Cli {
        user: "tester".into(),
    };
    for (name, percent) in [("everyone", 100), ("nobody", 0)] {
        flags
            .put_flag_record(FlagWrite {
                kind: FlagRecordKind::Flag,
                name: name.into(),
                expected_version: 0,
                definition: new_rollout_flag(name, Weight::new(percent).unwrap()),
                at: T0,
                actor: actor.clone(),
                summary: format!("created with rollout {percent}%"),
            })
            .await
            .unwrap();
    }
    flags
        .create_api_key(ApiKeyRecord {
            name: "web".into(),
            sha256: api_key_sha256(KEY),
            created_at: T0,
            created_by: actor,
        })
        .await
        .unwrap();
    let bearer = format!("Bearer {KEY}");
    let auth = [("authorization", bearer.as_str())];
    let context = json!({"context": {"targetingKey": "user-42"}});

    let one = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags/everyone",
        &auth,
        &context,
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.body);
    let one = json_of(&one);
    assert_eq!(one["key"], "everyone");
    assert_eq!(one["value"], true);
    assert_eq!(one["reason"], "TARGETING_MATCH");
    let off =
        json_of(&evaluate(&runtime, "/ofrep/v1/evaluate/flags/nobody", &auth, &context).await);
    assert_eq!(
        (off["value"].clone(), off["reason"].clone()),
        (json!(false), json!("DEFAULT"))
    );

    // The same key in X-API-Key works; no key, or another one, gets 401.
    let by_header = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags/everyone",
        &[("x-api-key", KEY)],
        &context,
    )
    .await;
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    let without = evaluate(&runtime, "/ofrep/v1/evaluate/flags/everyone", &[], &context).await;
    assert_eq!(without.status, 401, "{}", without.body);
    assert_eq!(json_of(&without)["error"], "unauthorized");
    let wrong = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags/everyone",
        &[("authorization", "Bearer rcf_not-a-key")],
        &context,
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(!wrong.body.contains("rcf_not-a-key"), "{}", wrong.body);

    let missing = evaluate(&runtime, "/ofrep/v1/evaluate/flags/absent", &auth, &context).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let missing = json_of(&missing);
    assert_eq!(missing["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(missing["key"], "absent");

    let bulk = evaluate(&runtime, "/ofrep/v1/evaluate/flags", &auth, &context).await;
    assert_eq!(bulk.status, 200, "{}", bulk.body);
    let keys: Vec<Value> = json_of(&bulk)["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].clone())
        .collect();
    assert_eq!(keys, [json!("everyone"), json!("nobody")]);
    let etag = bulk.headers["etag"].to_str().unwrap().to_string();
    let again = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags",
        &[auth[0], ("if-none-match", etag.as_str())],
        &context,
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other_etag = evaluate(
        &runtime,
        "/ofrep/v1/evaluate/flags",
        &[auth[0], ("if-none-match", "\"something-else\"")],
        &context,
    )
    .await;
    assert_eq!(other_etag.status, 200);

    // The 404 for anything else names OFREP among what the port serves.
    let elsewhere = evaluate(&runtime, "/nothing-here", &auth, &context).await;
    assert_eq!(elsewhere.status, 404);
    assert!(
        json_of(&elsewhere)["message"]
            .as_str()
            .unwrap()
            .contains("/ofrep/v1/evaluate/flags")
    );

    runtime.shutdown().await;
}
