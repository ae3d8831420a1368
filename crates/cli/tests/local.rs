//! `status`, `history` and the deployment commands with `--local URL`, run as a user
//! runs them against a local mode started by the test (sample apps as upstreams, the
//! SQLite store in a temporary file, the control port on a free loopback port).

use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ripcord_api::webhook::sign;
use ripcord_local::probe::send;
use ripcord_local::proxy::ProxyOptions;
use ripcord_local::runtime::{LocalRuntime, RuntimeOptions};
use ripcord_local::sample_app::{SampleApp, SampleRelease};

const SECRET: &[u8] = b"cli test secret";
const TOKEN: &str = "cli-test-token";
const SANITY: Duration = Duration::from_secs(30);

fn ripcord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .env_remove("RIPCORD_TABLE")
        .env_remove("RIPCORD_LOCAL_TOKEN")
        .output()
        .expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_and_steers_local_mode() {
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .unwrap();
    let green = SampleApp::start(SampleRelease::healthy("v2"))
        .await
        .unwrap();
    let store = std::env::temp_dir().join(format!(
        "ripcord-cli-local-{}-{}.sqlite",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let config = format!(
        r#"
[services.web]
strategy = "canary"
steps = [{{ set_weight = 40 }}, {{ pause = "until_resumed" }}, {{ set_weight = 100 }}]
bake = "1h"
[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{}", "{}"]
health_check = {{ path = "/healthz", interval = "50ms" }}
"#,
        blue.url(),
        green.url()
    );
    let local = LocalRuntime::start(RuntimeOptions {
        config_path: "cli.toml".into(),
        config_text: config,
        store_path: store.clone(),
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
    .unwrap();
    let url = format!("http://{}", local.control_addr());

    let idle = ripcord(&["status", "--local", &url]);
    assert!(idle.status.success());
    assert_eq!(
        stdout(&idle).trim(),
        "web: no active deployment; live on blue"
    );

    let body = r#"{"service":"web","version":"v2","commit":"abc1234","committed_at":"2026-11-26T09:00:00Z","author":"octocat"}"#;
    let signature = sign(SECRET, body.as_bytes());
    let answer = send(
        &url,
        "POST",
        "/deployments",
        &[
            ("x-ripcord-signature-256", &signature),
            ("x-ripcord-delivery", "cli-1"),
        ],
        body.as_bytes().to_vec(),
        SANITY,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = serde_json::from_str::<serde_json::Value>(&answer.body).unwrap()["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();

    let deadline = Instant::now() + SANITY;
    loop {
        let out = stdout(&ripcord(&["status", "web", "--local", &url]));
        if out.contains("paused") {
            assert!(out.contains("blue 60% / green 40%"), "{out}");
            assert!(out.contains(&id), "{out}");
            break;
        }
        assert!(Instant::now() < deadline, "never paused: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Commands need the token.
    let refused = ripcord(&["rollback", &id, "--local", &url, "--token", "wrong"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("(401 unauthorized)"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let rolled = ripcord(&[
        "rollback",
        &id,
        "--local",
        &url,
        "--token",
        TOKEN,
        "--reason",
        "seen enough",
    ]);
    assert!(
        rolled.status.success(),
        "{}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    let out = stdout(&rolled);
    assert!(
        out.starts_with("rollback applied to web v2: rolled_back"),
        "{out}"
    );
    assert!(out.contains("blue 100% / green 0%"), "{out}");

    let history = ripcord(&["history", &id, "--local", &url]);
    assert!(history.status.success());
    let out = stdout(&history);
    assert!(
        out.starts_with(&format!("web v2 {id} (rolled_back)")),
        "{out}"
    );
    assert!(out.contains("seen enough"), "{out}");
    assert!(out.trim_end().ends_with("hash chain intact"), "{out}");

    let json = ripcord(&["history", &id, "--local", &url, "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["verified"], true);

    let nothing = ripcord(&["status", "--local", "http://127.0.0.1:1"]);
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("is `ripcord up` running there?"));

    local.shutdown().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = store.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}
