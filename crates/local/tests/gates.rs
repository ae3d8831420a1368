//! Local mode's gates over real HTTP on loopback: the background health checks, the
//! smoke runner against one slot's upstream, and the local alarms over the proxy's
//! metrics. Every upstream is a real `SampleApp` started by the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ripcord_core::config::{Config, ServiceSpec, parse_config};
use ripcord_core::domain::{ServiceName, Slot, Weight, Weights};
use ripcord_core::ports::{AlarmSource, SmokeRunner, TargetHealth};
use ripcord_local::alarms::{AlarmSetupError, LocalAlarms};
use ripcord_local::health::LocalHealth;
use ripcord_local::probe::probe;
use ripcord_local::providers::SystemClock;
use ripcord_local::proxy::{ProxyOptions, ProxyRegistry};
use ripcord_local::sample_app::{SampleApp, SampleRelease};
use ripcord_local::smoke::LocalSmoke;

/// A generous bound for what should happen within a few probe intervals, so that a
/// broken checker fails the test instead of hanging it.
const SANITY: Duration = Duration::from_secs(20);

fn config(blue: &str, green: &str, extra: &str) -> Config {
    let text = format!(
        r#"
[services.web]
strategy = "all_at_once"

[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{blue}", "{green}"]
health_check = {{ path = "/healthz", interval = "50ms", timeout = "1s", healthy_threshold = 2, unhealthy_threshold = 2 }}
{extra}
"#
    );
    parse_config("test.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn web(config: &Config) -> &ServiceSpec {
    config.service(&ServiceName::new("web").unwrap()).unwrap()
}

/// A loopback URL where nothing listens.
async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

async fn wait_for_health(health: &LocalHealth, spec: &ServiceSpec, slot: Slot, healthy: bool) {
    let deadline = Instant::now() + SANITY;
    loop {
        let report = health.health(spec, slot).await.unwrap();
        if (report.healthy == 1) == healthy {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{slot} never became {} ({report:?})",
            if healthy { "healthy" } else { "unhealthy" }
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn health_checks_follow_the_upstreams_through_the_thresholds() {
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .unwrap();
    let config = config(&blue.url(), &closed_url().await, "");
    let spec = web(&config);
    let health = LocalHealth::new();

    // Before the first probes, nothing is healthy: an upstream must earn it.
    let first = health.health(spec, Slot::Blue).await;
    assert!(first.is_err(), "not watched yet: {first:?}");
    health.watch(spec).unwrap();
    let initial = health.health(spec, Slot::Blue).await.unwrap();
    assert_eq!((initial.healthy, initial.total), (0, 1));

    wait_for_health(&health, spec, Slot::Blue, true).await;
    let blue_state = health
        .target(&spec.name, Slot::Blue)
        .expect("blue is watched");
    assert!(blue_state.streak >= 2, "{blue_state:?}");

    let green = health.health(spec, Slot::Green).await.unwrap();
    assert_eq!((green.healthy, green.total), (0, 1));
    assert!(
        green.unhealthy[0].contains("cannot connect"),
        "{:?}",
        green.unhealthy
    );

    // The app goes away: after two failed probes in a row, blue is unhealthy.
    drop(blue);
    wait_for_health(&health, spec, Slot::Blue, false).await;
    let report = health.health(spec, Slot::Blue).await.unwrap();
    assert_eq!(report.unhealthy.len(), 1);
}

#[tokio::test]
async fn smoke_checks_go_to_the_slot_asked_and_report_each_failure() {
    let blue = SampleApp::start(SampleRelease::healthy("v1"))
        .await
        .unwrap();
    let green = SampleApp::start(SampleRelease::healthy("v2"))
        .await
        .unwrap();
    let checks = r#"
[[services.web.smoke]]
name = "health"
path = "/healthz"
body_contains = "ok"

[[services.web.smoke]]
name = "version"
path = "/"
header = { name = "x-version", value = "v2" }

[[services.web.smoke]]
name = "greeting"
path = "/"
body_contains = "hello from v2"
"#;
    let config = config(&blue.url(), &green.url(), checks);
    let spec = web(&config);

    let on_green = LocalSmoke.run(spec, Slot::Green).await.unwrap();
    assert!(on_green.passed(), "{on_green:?}");
    assert_eq!(on_green.results.len(), 3);

    // Against blue, the same checks see v1: the answers came from blue's upstream.
    let on_blue = LocalSmoke.run(spec, Slot::Blue).await.unwrap();
    let passed: Vec<bool> = on_blue.results.iter().map(|r| r.passed).collect();
    assert_eq!(passed, [true, false, false]);
    assert!(
        on_blue.results[1]
            .detail
            .contains("header x-version is \"v1\""),
        "{}",
        on_blue.results[1].detail
    );
    assert!(
        on_blue.results[2]
            .detail
            .contains("without \"hello from v2\""),
        "{}",
        on_blue.results[2].detail
    );

    // An upstream that does not answer fails every check, with the reason.
    let unreachable = self::config(&blue.url(), &closed_url().await, checks);
    let down = LocalSmoke
        .run(web(&unreachable), Slot::Green)
        .await
        .unwrap();
    assert!(down.results.iter().all(|r| !r.passed));
    assert!(down.results[0].detail.contains("cannot connect"));
}

const ALARMS: &str = r#"
[services.web.alarms]
names = ["web-5xx", "web-latency"]

[[services.web.local.alarms]]
name = "web-5xx"
metric = "error_rate"
max = 5.0
window = "30s"
min_requests = 20

[[services.web.local.alarms]]
name = "web-latency"
metric = "latency_p99"
max = 5000.0
window = "30s"
"#;

#[tokio::test]
async fn a_local_alarm_fires_when_a_slot_crosses_its_threshold() {
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
    let config = config(&blue.url(), &green.url(), ALARMS);
    let spec = web(&config);
    let registry = Arc::new(ProxyRegistry::new());
    let proxy = registry
        .start(
            spec,
            Weights::all_on(Slot::Blue),
            ProxyOptions {
                workers: 1,
                ..ProxyOptions::default()
            },
        )
        .unwrap();
    let alarms = LocalAlarms::new(&config, registry.clone(), Arc::new(SystemClock)).unwrap();
    assert_eq!(alarms.names(), ["web-5xx", "web-latency"]);
    let names = spec.alarms.names.clone();
    let base = format!("http://{}", proxy.local_addr());

    // All traffic on the healthy slot: nothing fires.
    for _ in 0..40 {
        let answer = probe(&base, "GET", "/", SANITY).await.unwrap();
        assert_eq!(answer.status, 200);
    }
    let quiet = alarms.firing(&names).await.unwrap();
    assert!(quiet.firing.is_empty(), "{quiet:?}");

    // Half the traffic on the faulty slot: 20% of its answers are 500s.
    proxy.set_weights(Weights::split(Slot::Green, Weight::new(50).unwrap()));
    for _ in 0..200 {
        probe(&base, "GET", "/", SANITY).await.unwrap();
    }
    let report = alarms.firing(&names).await.unwrap();
    let keys: Vec<&String> = report.firing.keys().collect();
    assert_eq!(keys, ["web-5xx"], "{report:?}");
    let why = &report.firing["web-5xx"];
    assert!(
        why.starts_with("green error_rate 20.0% is above 5.0% over 30s (100 requests)"),
        "{why}"
    );
    assert_eq!(alarms.firing_now().len(), 1);

    let unknown = alarms.firing(&["nope".to_string()]).await;
    assert!(unknown.unwrap_err().message.contains("not a local alarm"));
    registry.shutdown_all(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn local_alarms_refuse_undefined_and_duplicate_names() {
    let registry = Arc::new(ProxyRegistry::new());
    let undefined = config(
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        "[services.web.alarms]\nnames = [\"web-5xx\"]\n",
    );
    let error = LocalAlarms::new(&undefined, registry.clone(), Arc::new(SystemClock)).unwrap_err();
    assert!(matches!(error, AlarmSetupError::Undefined { .. }));
    assert!(error.to_string().contains("[[services.web.local.alarms]]"));

    let text = r#"
[services.a]
strategy = "all_at_once"
[services.a.local]
listen = "127.0.0.1:0"
upstreams = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
[[services.a.local.alarms]]
name = "shared"
metric = "error_rate"
max = 1.0
[services.b]
strategy = "all_at_once"
[services.b.local]
listen = "127.0.0.1:0"
upstreams = ["http://127.0.0.1:3", "http://127.0.0.1:4"]
[[services.b.local.alarms]]
name = "shared"
metric = "error_rate"
max = 1.0
"#;
    let duplicate = parse_config("t.toml", text).unwrap();
    let error = LocalAlarms::new(&duplicate, registry, Arc::new(SystemClock)).unwrap_err();
    assert_eq!(
        error,
        AlarmSetupError::Duplicate {
            name: "shared".into(),
            first: ServiceName::new("a").unwrap(),
            second: ServiceName::new("b").unwrap(),
        }
    );
}

#[test]
fn local_mode_settings_are_checked_with_their_line() {
    let text = r#"[services.web]
strategy = "all_at_once"
[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
health_check = { path = "healthz", healthy_threshold = 0 }
[[services.web.local.alarms]]
metric = "error_rate"
max = 1.0
"#;
    let error = parse_config("t.toml", text).unwrap_err();
    let problems: Vec<(usize, String)> = error
        .problems()
        .iter()
        .map(|p| (p.line, p.message.clone()))
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].1.contains("does not start with '/'"));
    assert!(
        problems[1]
            .1
            .contains("healthy_threshold 0 is out of range")
    );
    assert_eq!(problems[2].0, 7);
    assert!(problems[2].1.contains("a local alarm needs `name`"));
}
