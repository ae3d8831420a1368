//! `status`, `history` and the deployment commands with `--local URL`, run as a user
//! runs them against a local mode started by the test (sample apps as upstreams, the
//! SQLite store in a temporary file, the control port on a free loopback port).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ripcord_local::runtime::LocalRuntime;
use ripcord_local::sample_app::SampleApp;
use ripcord_local::testing::{
    SANITY, TOKEN, TempDir, control_url, deliver, deployment_id, healthy_apps, start_runtime,
};

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
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("cli-local");
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
    let local = start_runtime(&config, &store).await;
    let url = control_url(&local);

    let idle = ripcord(&["status", "--local", &url]);
    assert!(idle.status.success());
    assert_eq!(
        stdout(&idle).trim(),
        "web: no active deployment; live on blue"
    );

    let answer = deliver(&url, "v2", "cli-1").await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let id = deployment_id(&answer);

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
}

/// A service whose plan waits for a resume, then for an approval.
async fn local_mode_with_approval(name: &str) -> (LocalRuntime, String, TempDir, [SampleApp; 2]) {
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new(&format!("cli-{name}"));
    let config = format!(
        r#"
[services.web]
strategy = "canary"
steps = [{{ set_weight = 30 }}, {{ pause = "until_resumed" }}, {{ approval = true }}, {{ set_weight = 100 }}]
bake = "200ms"
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
    (local, url, store, [blue, green])
}

fn ripcord_as(user: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .env_remove("RIPCORD_TABLE")
        .env_remove("RIPCORD_LOCAL_TOKEN")
        .env("USER", user)
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits until `ripcord status` shows `what`, and returns that output.
async fn wait_for_status(url: &str, what: &str) -> String {
    let deadline = Instant::now() + SANITY;
    loop {
        let out = stdout(&ripcord(&["status", "web", "--local", url]));
        if out.contains(what) {
            return out;
        }
        assert!(Instant::now() < deadline, "never {what}: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn events_of(url: &str, id: &str) -> Vec<serde_json::Value> {
    let out = ripcord(&["history", id, "--local", url, "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    value["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_watch_approve_and_reject_against_local_mode() {
    let (local, url, _store, _apps) = local_mode_with_approval("verbs").await;
    let deploy = |version: &str, delivery: &str| {
        ripcord_as(
            "alice",
            &[
                "deploy",
                "web",
                "--version",
                version,
                "--commit",
                "abc1234",
                "--committed-at",
                "2026-11-26T09:00:00Z",
                "--author",
                "octocat",
                "--delivery",
                delivery,
                "--local",
                &url,
                "--token",
                TOKEN,
            ],
        )
    };

    // Refusals name what is wrong and start nothing.
    let unknown = ripcord_as(
        "alice",
        &[
            "deploy",
            "api",
            "--version",
            "v2",
            "--commit",
            "a",
            "--local",
            &url,
            "--token",
            TOKEN,
        ],
    );
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("unknown service api") && stderr(&unknown).contains("404"),
        "{}",
        stderr(&unknown)
    );
    let bad_time = ripcord_as(
        "alice",
        &[
            "deploy",
            "web",
            "--version",
            "v2",
            "--commit",
            "a",
            "--committed-at",
            "yesterday",
            "--local",
            &url,
            "--token",
            TOKEN,
        ],
    );
    assert!(!bad_time.status.success());
    assert!(
        stderr(&bad_time).contains("check --committed-at"),
        "{}",
        stderr(&bad_time)
    );
    let no_token = ripcord_as(
        "alice",
        &[
            "deploy",
            "web",
            "--version",
            "v2",
            "--commit",
            "a",
            "--local",
            &url,
            "--token",
            "wrong",
        ],
    );
    assert!(stderr(&no_token).contains("(401 unauthorized)"));
    assert_eq!(
        stdout(&ripcord(&["status", "--local", &url])).trim(),
        "web: no active deployment; live on blue"
    );

    // deploy prints the id alone; the first pass has run before it returns.
    let started = deploy("v2", "ci-run-1");
    assert!(started.status.success(), "{}", stderr(&started));
    let id = stdout(&started).trim().to_string();
    assert!(id.starts_with('d'), "{id}");
    assert!(
        stderr(&started).contains("web v2 started"),
        "{}",
        stderr(&started)
    );
    // The same delivery again is the same deployment; another one is refused (409).
    let again = deploy("v2", "ci-run-1");
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), id);
    let second = deploy("v2", "ci-run-2");
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("already has an active deployment")
            && stderr(&second).contains("409"),
        "{}",
        stderr(&second)
    );

    // watch follows it from another process until it ends.
    let watcher = Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(["watch", &id, "--local", &url, "--interval", "100ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    wait_for_status(&url, "AwaitingResume").await;
    // Not waiting for an approval: refused, and nothing is queued or recorded.
    let before = events_of(&url, &id).len();
    let early = ripcord_as(
        "alice",
        &["approve", &id, "--local", &url, "--token", TOKEN],
    );
    assert!(!early.status.success());
    assert!(
        stderr(&early).contains("not waiting for an approval") && stderr(&early).contains("409"),
        "{}",
        stderr(&early)
    );
    assert_eq!(events_of(&url, &id).len(), before);

    let resumed = ripcord_as("alice", &["resume", &id, "--local", &url, "--token", TOKEN]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    wait_for_status(&url, "AwaitingApproval").await;

    // The author may not approve their own release: the engine refuses and records it.
    let own = ripcord_as(
        "octocat",
        &["approve", &id, "--local", &url, "--token", TOKEN],
    );
    assert!(own.status.success(), "{}", stderr(&own));
    assert!(
        stdout(&own).contains("paused at step 3"),
        "{}",
        stdout(&own)
    );
    let refused = events_of(&url, &id);
    let last = refused.last().unwrap();
    assert_eq!(last["kind"]["kind"], "command_refused", "{last}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("octocat is the author"),
        "{last}"
    );

    let approved = ripcord_as(
        "alice",
        &[
            "approve",
            &id,
            "--local",
            &url,
            "--token",
            TOKEN,
            "--reason",
            "canary looks fine",
        ],
    );
    assert!(approved.status.success(), "{}", stderr(&approved));

    let watched = watcher.wait_with_output().unwrap();
    let out = stdout(&watched);
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{out}\n{}",
        stderr(&watched)
    );
    assert!(out.starts_with(&format!("watching web v2 {id}")), "{out}");
    assert!(out.contains("approved by cli alice (1 of 1)"), "{out}");
    assert!(out.contains("octocat is the author"), "{out}");
    assert!(
        out.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("web v2 succeeded after"),
        "{out}"
    );
    // Every event is shown once, in order.
    let history = events_of(&url, &id);
    let shown = out.lines().filter(|l| l.contains(" +")).count();
    assert_eq!(shown, history.len(), "{out}");

    // A rejected release: traffic goes back and watch exits 3 (aborted).
    let started = deploy("v3", "ci-run-3");
    assert!(started.status.success(), "{}", stderr(&started));
    let id = stdout(&started).trim().to_string();
    wait_for_status(&url, "AwaitingResume").await;
    let resumed = ripcord_as("alice", &["resume", &id, "--local", &url, "--token", TOKEN]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    wait_for_status(&url, "AwaitingApproval").await;
    let rejected = ripcord_as(
        "alice",
        &[
            "reject",
            &id,
            "--local",
            &url,
            "--token",
            TOKEN,
            "--reason",
            "wrong colour",
        ],
    );
    assert!(rejected.status.success(), "{}", stderr(&rejected));
    assert!(
        stdout(&rejected).contains("green 100% / blue 0%")
            || stdout(&rejected).contains("blue 0% / green 100%"),
        "{}",
        stdout(&rejected)
    );
    let watched = ripcord(&[
        "watch",
        &id,
        "--local",
        &url,
        "--json",
        "--interval",
        "100ms",
    ]);
    assert_eq!(watched.status.code(), Some(3), "{}", stdout(&watched));
    let lines: Vec<serde_json::Value> = stdout(&watched)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.last().unwrap(),
        &serde_json::json!({"deployment_id": id, "outcome": "aborted", "exit_code": 3})
    );
    assert!(
        lines.iter().any(|e| e["reason"]
            .as_str()
            .is_some_and(|r| r.contains("rejected by cli alice: wrong colour"))),
        "{lines:?}"
    );

    let unknown = ripcord(&["watch", "no-such-deployment", "--local", &url]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no deployment no-such-deployment"),
        "{}",
        stderr(&unknown)
    );

    local.shutdown().await;
}
