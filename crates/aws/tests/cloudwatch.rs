//! CloudWatch alarms and ALB metrics against the local emulator.

mod support;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StandardUnit, StateValue, Statistic,
};
use ripcord_aws::{CloudWatchAlarms, CloudWatchMetrics};
use ripcord_core::config::{MetricKind, ServiceSpec, parse_config};
use ripcord_core::domain::Slot;
use ripcord_core::ports::{AlarmSource, MetricSource};
use ripcord_core::time::Timestamp;

async fn client() -> Client {
    Client::new(&support::config().await)
}

async fn put_alarm(cw: &Client, name: &str) {
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
}

async fn set_state(cw: &Client, name: &str, state: StateValue, reason: &str) {
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason(reason)
        .send()
        .await
        .expect("SetAlarmState");
}

fn breach(value: u32) -> String {
    format!(
        "Threshold Crossed: 1 out of the last 1 datapoints [{value}.0 (26/11/26 07:40:00)] was greater than the threshold (5.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )
}

#[tokio::test]
async fn only_watched_alarms_in_alarm_are_reported_with_their_reason() {
    let cw = client().await;
    let prefix = support::unique("rc-alarm");
    let (firing, quiet, unwatched) = (
        format!("{prefix}-5xx"),
        format!("{prefix}-latency"),
        format!("{prefix}-other"),
    );
    for name in [&firing, &quiet, &unwatched] {
        put_alarm(&cw, name).await;
    }
    set_state(&cw, &firing, StateValue::Alarm, &breach(17)).await;
    set_state(
        &cw,
        &quiet,
        StateValue::Ok,
        "Threshold Crossed: back to normal",
    )
    .await;
    set_state(&cw, &unwatched, StateValue::Alarm, &breach(99)).await;

    let watched = vec![
        firing.clone(),
        quiet.clone(),
        format!("{prefix}-not-created-yet"),
    ];
    let report = CloudWatchAlarms::new(cw).firing(&watched).await.unwrap();
    assert_eq!(report.firing, BTreeMap::from([(firing, breach(17))]));
}

#[tokio::test]
async fn more_than_a_hundred_watched_alarms_are_read_in_batches() {
    let cw = client().await;
    let prefix = support::unique("rc-many");
    let names: Vec<String> = (0..150).map(|i| format!("{prefix}-{i:03}")).collect();
    for name in &names {
        put_alarm(&cw, name).await;
    }
    // Sorted, the names fall into batches 0..=99 and 100..=149: fire on both sides of
    // the boundary and at both ends.
    let firing = [0, 99, 100, 149];
    for i in firing {
        set_state(&cw, &names[i], StateValue::Alarm, &breach(i as u32)).await;
    }

    // Watched in another order, with a repeat, as a configuration may list them.
    let mut watched: Vec<String> = names.iter().rev().cloned().collect();
    watched.push(names[0].clone());
    let report = CloudWatchAlarms::new(cw).firing(&watched).await.unwrap();
    let expected: BTreeMap<String, String> = firing
        .iter()
        .map(|&i| (names[i].clone(), breach(i as u32)))
        .collect();
    assert_eq!(report.firing, expected);
}

#[tokio::test]
async fn no_watched_alarms_means_nothing_firing() {
    let report = CloudWatchAlarms::new(client().await)
        .firing(&[])
        .await
        .unwrap();
    assert!(report.firing.is_empty());
}

/// A service whose ARNs exist only as metric dimensions: the metric source derives the
/// dimensions from the ARNs and never calls ELBv2.
fn service(lb: &str) -> ServiceSpec {
    let arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012";
    let text = format!(
        "[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\nlistener_arn = \"{arn}:listener/app/{lb}/50dc6c495c0c9188/f2f7dc8efc522ab2\"\ntarget_groups = [\"{arn}:targetgroup/{lb}-blue/0123456789abcdef\", \"{arn}:targetgroup/{lb}-green/fedcba9876543210\"]\n"
    );
    parse_config("ripcord.toml", &text)
        .unwrap()
        .services
        .into_values()
        .next()
        .unwrap()
}

/// Puts one ALB datapoint for a target group of load balancer `lb`.
async fn put(cw: &Client, lb: &str, group: &str, metric: &str, at_ms: i64, value: f64) {
    let dimension =
        |name: &str, value: String| Dimension::builder().name(name).value(value).build();
    let datum = MetricDatum::builder()
        .metric_name(metric)
        .dimensions(dimension("TargetGroup", format!("targetgroup/{group}")))
        .dimensions(dimension(
            "LoadBalancer",
            format!("app/{lb}/50dc6c495c0c9188"),
        ))
        .timestamp(DateTime::from_millis(at_ms))
        .value(value)
        .unit(StandardUnit::Count)
        .build();
    cw.put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum)
        .send()
        .await
        .expect("PutMetricData");
}

#[tokio::test]
async fn alb_metrics_of_a_slot_are_summed_per_period_over_the_window() {
    let cw = client().await;
    let lb = support::unique("rc-metrics");
    let blue = format!("{lb}-blue/0123456789abcdef");
    let green = format!("{lb}-green/fedcba9876543210");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let minute = |n: i64| (now_ms / 60_000 - 10 + n) * 60_000;
    let within = |n: i64| minute(n) + 10_000;

    // Blue: 100 requests (in two datapoints) with 5 errors, then 200 without errors,
    // a quiet minute, then 50 requests that all failed.
    put(&cw, &lb, &blue, "RequestCount", within(0), 60.0).await;
    put(&cw, &lb, &blue, "RequestCount", within(0) + 20_000, 40.0).await;
    put(&cw, &lb, &blue, "HTTPCode_Target_5XX_Count", within(0), 5.0).await;
    put(&cw, &lb, &blue, "RequestCount", within(1), 200.0).await;
    put(&cw, &lb, &blue, "RequestCount", within(3), 50.0).await;
    put(
        &cw,
        &lb,
        &blue,
        "HTTPCode_Target_5XX_Count",
        within(3),
        50.0,
    )
    .await;
    // Outside the window [minute 0, minute 5): before it, and at its exclusive end.
    put(&cw, &lb, &blue, "RequestCount", within(-1), 1000.0).await;
    put(&cw, &lb, &blue, "RequestCount", minute(5), 1000.0).await;
    // The other slot, and the same target group name behind another load balancer.
    put(&cw, &lb, &green, "RequestCount", within(0), 7.0).await;
    put(
        &cw,
        &format!("{lb}-x"),
        &blue,
        "RequestCount",
        within(0),
        500.0,
    )
    .await;

    let source = CloudWatchMetrics::new(cw);
    let service = service(&lb);
    // The start is rounded down to the minute, as CloudWatch itself does.
    let start = Timestamp::from_millis(minute(0) + 25_000);
    let end = Timestamp::from_millis(minute(5));

    let metrics = source
        .slot_metrics(&service, Slot::Blue, start, end)
        .await
        .unwrap();
    assert_eq!(metrics.requests, 350);
    assert_eq!(metrics.errors_5xx, 55);
    assert_eq!(
        metrics.series.get(&MetricKind::RequestCount),
        Some(&vec![100.0, 200.0, 50.0])
    );
    assert_eq!(
        metrics.series.get(&MetricKind::ErrorRate),
        Some(&vec![5.0, 0.0, 100.0])
    );
    // The emulator computes no percentile statistics: asked for p95 or p99 over data it
    // holds, its GetMetricData fails with an HTTP 500. This test therefore puts no
    // TargetResponseTime data, and the latencies come back empty. Against AWS the same
    // queries return per-minute p95 and p99 in seconds, which the unit tests of
    // `cloudwatch::summarize` cover (milliseconds, request-weighted mean).
    assert_eq!(metrics.latency_p95_ms, None);
    assert_eq!(metrics.latency_p99_ms, None);
    assert!(!metrics.series.contains_key(&MetricKind::LatencyP95));

    let green = source
        .slot_metrics(&service, Slot::Green, start, end)
        .await
        .unwrap();
    assert_eq!((green.requests, green.errors_5xx), (7, 0));
    assert_eq!(green.series.get(&MetricKind::ErrorRate), Some(&vec![0.0]));
}

#[tokio::test]
async fn a_window_without_data_reads_as_no_requests() {
    let cw = client().await;
    let lb = support::unique("rc-quiet");
    let metrics = CloudWatchMetrics::new(cw)
        .slot_metrics(
            &service(&lb),
            Slot::Blue,
            Timestamp::from_millis(1_700_000_000_000),
            Timestamp::from_millis(1_700_000_300_000),
        )
        .await
        .unwrap();
    assert_eq!(metrics.requests, 0);
    assert!(metrics.series.is_empty());
    assert_eq!(metrics.value(MetricKind::ErrorRate), None);
}
