//! The `ripcord` binary, run as a user runs it: exit codes, output and error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn ripcord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(args)
        .current_dir(examples())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Writes `content` to a fresh temporary file and returns its path.
fn temp_file(name: &str, content: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ripcord-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn every_example_validates() {
    for file in [
        "canary.toml",
        "linear.toml",
        "blue-green.toml",
        "local.toml",
    ] {
        let out = ripcord(&["validate", file]);
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("valid"), "{}", text(&out.stdout));
    }
}

const BROKEN: &str = r#"[services.web]
strategy = "canary"
steps = [
  { set_weight = 50 },
  { set_weight = 20 },
]

[services.web.local]
listen = "127.0.0.1:8080"
upstreams = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
"#;

#[test]
fn a_broken_config_shows_line_and_column() {
    let file = temp_file("ripcord.toml", BROKEN);
    let out = ripcord(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let at = format!("{}:5:18:", file.display());
    assert!(err.contains(&at), "expected {at} in {err}");
    assert!(err.contains("5 |   { set_weight = 20 },"), "{err}");
    assert!(err.contains("|                  ^"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");

    let json = ripcord(&["validate", file.to_str().unwrap(), "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let problems = v["problems"].as_array().unwrap();
    assert!(problems.iter().any(|p| p["line"] == 5 && p["column"] == 18));
}

#[test]
fn an_unknown_key_is_refused_with_its_position() {
    let file = temp_file(
        "ripcord.toml",
        &BROKEN.replace(
            "strategy = \"canary\"",
            "strategy = \"canary\"\nstrategyy = 1",
        ),
    );
    let out = ripcord(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(":3:1:") && err.contains("strategyy"), "{err}");
}

#[test]
fn a_missing_file_says_so() {
    let out = ripcord(&["validate", "no-such-file.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read no-such-file.toml"));
}

#[test]
fn simulate_runs_the_canary_to_success() {
    let out = ripcord(&[
        "simulate",
        "canary.toml",
        "--service",
        "web",
        "--expect",
        "succeeded",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Outcome: succeeded after 10m."), "{stdout}");
    assert!(stdout.contains("analysis passed"), "{stdout}");
}

#[test]
fn simulate_json_shows_when_and_why_an_alarm_rolls_back() {
    let out = ripcord(&[
        "simulate",
        "canary.toml",
        "--service",
        "web",
        "--alarm-at",
        "4m",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "rolled_back");
    assert_eq!(v["rollback"]["at_secs"], 240.0);
    assert_eq!(v["rollback"]["trigger"], "alarm web-5xx");
    let timeline = v["timeline"].as_array().unwrap();
    let started = timeline
        .iter()
        .find(|e| e["event"] == "rollback_started")
        .unwrap();
    assert_eq!(started["stable_weight"], 100);
    assert_eq!(started["canary_weight"], 0);
    // Before the alarm, the plan had reached 50%.
    assert!(timeline.iter().any(|e| e["canary_weight"] == 50));
    assert!(timeline.iter().all(|e| e["stable_weight"].as_u64().unwrap()
        + e["canary_weight"].as_u64().unwrap()
        == 100));
}

#[test]
fn simulate_replays_recorded_metrics() {
    let out = ripcord(&[
        "simulate",
        "canary.toml",
        "--service",
        "web",
        "--metrics",
        "metrics/bad-release.csv",
        "--expect",
        "rolled_back",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("rolled back at +2m10s"), "{stdout}");
    assert!(
        stdout.contains("error_rate 4.10 is above the maximum 1.00"),
        "{stdout}"
    );

    let wrong = ripcord(&[
        "simulate",
        "canary.toml",
        "--service",
        "web",
        "--metrics",
        "metrics/bad-release.csv",
        "--expect",
        "succeeded",
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong.stderr).contains("expected the outcome succeeded"));
}

#[test]
fn simulate_runs_every_example_plan() {
    for (file, service) in [("linear.toml", "api"), ("blue-green.toml", "checkout")] {
        let out = ripcord(&["simulate", file, "--service", service, "--json"]);
        assert!(out.status.success(), "{file}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["outcome"], "succeeded", "{file}");
    }
    // The blue/green plan waits for two approvals, given after --approve-after.
    let out = ripcord(&[
        "simulate",
        "blue-green.toml",
        "--service",
        "checkout",
        "--approve-after",
        "3m",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let approvals: Vec<f64> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "approved")
        .map(|e| e["at_secs"].as_f64().unwrap())
        .collect();
    assert_eq!(approvals, vec![180.0, 180.0]);
}

#[test]
fn simulate_explains_bad_arguments() {
    let unknown = ripcord(&["simulate", "canary.toml", "--service", "shop"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no service shop in the configuration; it has: web"));

    let csv = temp_file("m.csv", "time,slot,requests,errors_5xx\n60s,canary,ten,0\n");
    let bad_csv = ripcord(&[
        "simulate",
        "canary.toml",
        "--service",
        "web",
        "--metrics",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(bad_csv.status.code(), Some(1));
    assert!(
        text(&bad_csv.stderr).contains("m.csv:2: requests \"ten\" is not a whole number"),
        "{}",
        text(&bad_csv.stderr)
    );

    let no_alarm = temp_file(
        "ripcord.toml",
        &BROKEN.replace("{ set_weight = 20 }", "{ set_weight = 100 }"),
    );
    let out = ripcord(&[
        "simulate",
        no_alarm.to_str().unwrap(),
        "--service",
        "web",
        "--alarm-at",
        "1m",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--alarm-at needs an alarm"),
        "{}",
        text(&out.stderr)
    );

    let bad_duration = ripcord(&[
        "simulate",
        "canary.toml",
        "--service",
        "web",
        "--alarm-at",
        "soon",
    ]);
    assert_eq!(bad_duration.status.code(), Some(2));
    assert!(text(&bad_duration.stderr).contains("is not a duration"));
}
