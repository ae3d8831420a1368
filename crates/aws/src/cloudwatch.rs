//! CloudWatch behind the core's ports: which watched alarms are firing, and a slot's
//! request metrics as the ALB publishes them per target group.
//!
//! Both read only: Ripcord watches alarms and metrics, it never creates or changes
//! them.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, ScanBy, StateValue, StatusCode,
};
use ripcord_core::config::{AwsSwitch, MetricKind, ServiceSpec, TrafficTarget};
use ripcord_core::domain::{Slot, TargetGroupArn};
use ripcord_core::observation::{AlarmReport, SlotMetrics};
use ripcord_core::ports::{AlarmSource, BoxFuture, MetricSource, PortError};
use ripcord_core::time::Timestamp;

use crate::errors::port_error;

/// DescribeAlarms takes at most this many alarm names per call.
const ALARM_NAMES_PER_CALL: usize = 100;

/// Reports which of the watched CloudWatch metric alarms are in the ALARM state.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: Client,
}

impl CloudWatchAlarms {
    /// An alarm source that works through this CloudWatch client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl AlarmSource for CloudWatchAlarms {
    fn firing<'a>(&'a self, names: &'a [String]) -> BoxFuture<'a, Result<AlarmReport, PortError>> {
        Box::pin(async move {
            let watched: Vec<String> = names
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut report = AlarmReport::default();
            let mut found = BTreeSet::new();
            for batch in watched.chunks(ALARM_NAMES_PER_CALL) {
                let mut next_token: Option<String> = None;
                loop {
                    let out = self
                        .client
                        .describe_alarms()
                        .set_alarm_names(Some(batch.to_vec()))
                        .alarm_types(AlarmType::MetricAlarm)
                        .max_records(100)
                        .set_next_token(next_token.take())
                        .send()
                        .await
                        .map_err(|e| {
                            port_error(
                                &format!(
                                    "DescribeAlarms for {} alarm(s) starting with {:?}",
                                    batch.len(),
                                    batch[0]
                                ),
                                &e,
                            )
                        })?;
                    for alarm in out.metric_alarms() {
                        let Some(name) = alarm.alarm_name() else {
                            continue;
                        };
                        // Only watched alarms are reported, whatever the service returns.
                        if batch.binary_search_by(|w| w.as_str().cmp(name)).is_err() {
                            continue;
                        }
                        found.insert(name.to_string());
                        if alarm.state_value() == Some(&StateValue::Alarm) {
                            let reason = alarm
                                .state_reason()
                                .unwrap_or("in ALARM (CloudWatch gave no reason)");
                            report.firing.insert(name.to_string(), reason.to_string());
                        }
                    }
                    match out.next_token() {
                        Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
                        _ => break,
                    }
                }
            }
            // A misspelt alarm name would never fire: say so, without failing the pass,
            // because the alarm may simply not have been created yet.
            let missing: Vec<&str> = watched
                .iter()
                .map(String::as_str)
                .filter(|name| !found.contains(*name))
                .collect();
            if !missing.is_empty() {
                tracing::warn!(
                    alarms = ?missing,
                    "watched CloudWatch metric alarms do not exist; check the alarm names in ripcord.toml"
                );
            }
            Ok(report)
        })
    }
}

/// The period of every metric Ripcord reads: ALBs publish one datapoint a minute.
const PERIOD_SECONDS: i32 = 60;

/// Where ALB metrics live.
const NAMESPACE: &str = "AWS/ApplicationELB";

/// One GetMetricData query: its id, the ALB metric and the statistic.
struct Query {
    id: &'static str,
    metric: &'static str,
    stat: &'static str,
}

const QUERIES: [Query; 4] = [
    Query {
        id: "requests",
        metric: "RequestCount",
        stat: "Sum",
    },
    Query {
        id: "errors",
        metric: "HTTPCode_Target_5XX_Count",
        stat: "Sum",
    },
    Query {
        id: "p95",
        metric: "TargetResponseTime",
        stat: "p95",
    },
    Query {
        id: "p99",
        metric: "TargetResponseTime",
        stat: "p99",
    },
];

/// Reads a slot's ALB metrics (requests, target 5xx answers and response time
/// percentiles) for its target group from CloudWatch.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: Client,
}

impl CloudWatchMetrics {
    /// A metric source that works through this CloudWatch client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// The `TargetGroup` dimension of a target group: its ARN's resource part,
/// `targetgroup/<name>/<id>`.
fn target_group_dimension(arn: &TargetGroupArn) -> &str {
    // The ARN was checked on parsing: six colon-separated parts, the last one starting
    // with `targetgroup/`.
    arn.as_str().splitn(6, ':').nth(5).unwrap_or(arn.as_str())
}

/// The `LoadBalancer` dimension, `app/<name>/<id>`, taken from the listener or rule ARN
/// (`listener/app/<name>/<id>/...` or `listener-rule/app/<name>/<id>/...`).
fn load_balancer_dimension(switch: &AwsSwitch) -> Result<String, PortError> {
    let arn = match switch {
        AwsSwitch::Listener(arn) => arn.as_str(),
        AwsSwitch::Rule(arn) => arn.as_str(),
    };
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let parts: Vec<&str> = resource.split('/').skip(1).take(3).collect();
    match parts.as_slice() {
        [kind, name, id] if !name.is_empty() && !id.is_empty() => Ok(format!("{kind}/{name}/{id}")),
        _ => Err(PortError::permanent(format!(
            "cannot tell the load balancer from {arn}: expected an ARN whose resource reads listener/app/<name>/<id>/... or listener-rule/app/<name>/<id>/..."
        ))),
    }
}

/// Each query's values by period start (milliseconds since the epoch).
#[derive(Debug, Default, Clone, PartialEq)]
struct Periods {
    requests: BTreeMap<i64, f64>,
    errors: BTreeMap<i64, f64>,
    p95_seconds: BTreeMap<i64, f64>,
    p99_seconds: BTreeMap<i64, f64>,
}

impl Periods {
    fn values_mut(&mut self, id: &str) -> Option<&mut BTreeMap<i64, f64>> {
        match id {
            "requests" => Some(&mut self.requests),
            "errors" => Some(&mut self.errors),
            "p95" => Some(&mut self.p95_seconds),
            "p99" => Some(&mut self.p99_seconds),
            _ => None,
        }
    }
}

/// A count from a CloudWatch sum, which arrives as a float.
fn count(sum: f64) -> u64 {
    if sum.is_finite() && sum > 0.0 {
        sum.round() as u64
    } else {
        0
    }
}

/// The mean of per-period percentiles weighted by each period's requests, which is
/// the closest one gets to a window percentile without the raw latencies. Periods
/// without a request count are left out; if no period has one, the plain mean is
/// the best estimate left.
fn request_weighted_mean(
    values: &BTreeMap<i64, f64>,
    requests: &BTreeMap<i64, f64>,
) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let (sum, weight) = values
        .iter()
        .filter_map(|(at, value)| {
            requests
                .get(at)
                .filter(|r| **r > 0.0)
                .map(|r| (value * r, *r))
        })
        .fold((0.0, 0.0), |(s, w), (vs, vw)| (s + vs, w + vw));
    if weight > 0.0 {
        Some(sum / weight)
    } else {
        Some(values.values().sum::<f64>() / values.len() as f64)
    }
}

/// Folds the per-period values into a slot's metrics for the window.
fn summarize(periods: &Periods) -> SlotMetrics {
    let requests = count(periods.requests.values().sum());
    let errors_5xx = count(periods.errors.values().sum());

    // ALBs publish HTTPCode_Target_5XX_Count only for minutes that had a 5xx, so a
    // period with requests and no error datapoint had no errors.
    let counted: BTreeSet<i64> = periods
        .requests
        .keys()
        .chain(periods.errors.keys())
        .copied()
        .collect();
    let mut series = BTreeMap::new();
    let request_series: Vec<f64> = counted
        .iter()
        .map(|at| periods.requests.get(at).copied().unwrap_or(0.0))
        .collect();
    let error_rate_series: Vec<f64> = counted
        .iter()
        .filter_map(|at| {
            let requests = periods.requests.get(at).copied().filter(|r| *r > 0.0)?;
            let errors = periods.errors.get(at).copied().unwrap_or(0.0);
            Some(errors * 100.0 / requests)
        })
        .collect();
    let millis = |values: &BTreeMap<i64, f64>| -> Vec<f64> {
        values.values().map(|seconds| seconds * 1000.0).collect()
    };
    for (kind, values) in [
        (MetricKind::RequestCount, request_series),
        (MetricKind::ErrorRate, error_rate_series),
        (MetricKind::LatencyP95, millis(&periods.p95_seconds)),
        (MetricKind::LatencyP99, millis(&periods.p99_seconds)),
    ] {
        if !values.is_empty() {
            series.insert(kind, values);
        }
    }

    SlotMetrics {
        requests,
        errors_5xx,
        latency_p95_ms: request_weighted_mean(&periods.p95_seconds, &periods.requests)
            .map(|s| s * 1000.0),
        latency_p99_ms: request_weighted_mean(&periods.p99_seconds, &periods.requests)
            .map(|s| s * 1000.0),
        series,
    }
}

impl MetricSource for CloudWatchMetrics {
    fn slot_metrics<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
        start: Timestamp,
        end: Timestamp,
    ) -> BoxFuture<'a, Result<SlotMetrics, PortError>> {
        Box::pin(async move {
            let Some(TrafficTarget::Aws(target)) = &service.traffic else {
                return Err(PortError::permanent(format!(
                    "service {name} is not behind an ALB, so it has no ALB metrics in CloudWatch; give it [services.{name}.aws] or use local mode's metrics",
                    name = service.name
                )));
            };
            let group = target.target_group(slot);
            let dimensions = [
                Dimension::builder()
                    .name("TargetGroup")
                    .value(target_group_dimension(group))
                    .build(),
                Dimension::builder()
                    .name("LoadBalancer")
                    .value(load_balancer_dimension(&target.switch)?)
                    .build(),
            ];

            // CloudWatch rounds a recent start time down to the whole minute anyway;
            // doing it here makes the periods the same against any endpoint.
            let period_ms = i64::from(PERIOD_SECONDS) * 1000;
            let start_ms = start.as_millis().div_euclid(period_ms) * period_ms;
            if end.as_millis() <= start_ms {
                return Ok(SlotMetrics::default());
            }

            let queries: Vec<MetricDataQuery> = QUERIES
                .iter()
                .map(|q| {
                    let metric = Metric::builder()
                        .namespace(NAMESPACE)
                        .metric_name(q.metric)
                        .set_dimensions(Some(dimensions.to_vec()))
                        .build();
                    MetricDataQuery::builder()
                        .id(q.id)
                        .metric_stat(
                            MetricStat::builder()
                                .metric(metric)
                                .period(PERIOD_SECONDS)
                                .stat(q.stat)
                                .build(),
                        )
                        .return_data(true)
                        .build()
                })
                .collect();

            let mut periods = Periods::default();
            let mut next_token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(DateTime::from_millis(start_ms))
                    .end_time(DateTime::from_millis(end.as_millis()))
                    .scan_by(ScanBy::TimestampAscending)
                    .set_next_token(next_token.take())
                    .send()
                    .await
                    .map_err(|e| {
                        port_error(&format!("GetMetricData for target group {group}"), &e)
                    })?;
                for result in out.metric_data_results() {
                    match result.status_code() {
                        Some(StatusCode::Forbidden) => {
                            return Err(PortError::permanent(format!(
                                "CloudWatch refused to read {} of target group {group}: allow cloudwatch:GetMetricData on the role Ripcord runs as",
                                result.id().unwrap_or("a metric")
                            )));
                        }
                        Some(StatusCode::InternalError) => {
                            return Err(PortError::transient(format!(
                                "CloudWatch failed to read {} of target group {group}; the next pass will try again",
                                result.id().unwrap_or("a metric")
                            )));
                        }
                        _ => {}
                    }
                    let Some(values) = result.id().and_then(|id| periods.values_mut(id)) else {
                        continue;
                    };
                    for (at, value) in result.timestamps().iter().zip(result.values()) {
                        if let Ok(at) = at.to_millis() {
                            values.insert(at, *value);
                        }
                    }
                }
                match out.next_token() {
                    Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
                    _ => break,
                }
            }
            Ok(summarize(&periods))
        })
    }
}

#[cfg(test)]
mod tests {
    use ripcord_core::domain::{ListenerArn, ListenerRuleArn};

    use super::*;

    #[test]
    fn dimensions_come_from_the_arns() {
        let group = TargetGroupArn::new(
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-blue/0123456789abcdef",
        )
        .unwrap();
        assert_eq!(
            target_group_dimension(&group),
            "targetgroup/web-blue/0123456789abcdef"
        );
        let listener = AwsSwitch::Listener(
            ListenerArn::new("arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2").unwrap(),
        );
        assert_eq!(
            load_balancer_dimension(&listener).unwrap(),
            "app/web/50dc6c495c0c9188"
        );
        let rule = AwsSwitch::Rule(
            ListenerRuleArn::new("arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee").unwrap(),
        );
        assert_eq!(
            load_balancer_dimension(&rule).unwrap(),
            "app/web/50dc6c495c0c9188"
        );
        let short = AwsSwitch::Listener(
            ListenerArn::new(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/web",
            )
            .unwrap(),
        );
        assert!(load_balancer_dimension(&short).is_err());
    }

    #[test]
    fn periods_fold_into_sums_weighted_percentiles_and_series() {
        let minute = |n: i64| n * 60_000;
        let periods = Periods {
            requests: BTreeMap::from([(minute(0), 100.0), (minute(1), 300.0), (minute(2), 0.0)]),
            errors: BTreeMap::from([(minute(1), 6.0)]),
            p95_seconds: BTreeMap::from([(minute(0), 0.2), (minute(1), 0.4)]),
            p99_seconds: BTreeMap::from([(minute(0), 1.0)]),
        };
        let metrics = summarize(&periods);
        assert_eq!(metrics.requests, 400);
        assert_eq!(metrics.errors_5xx, 6);
        // (0.2 s * 100 + 0.4 s * 300) / 400 = 0.35 s.
        assert!((metrics.latency_p95_ms.unwrap() - 350.0).abs() < 1e-9);
        assert!((metrics.latency_p99_ms.unwrap() - 1000.0).abs() < 1e-9);
        assert_eq!(
            metrics.series[&MetricKind::RequestCount],
            vec![100.0, 300.0, 0.0]
        );
        // The period with no requests has no error rate.
        assert_eq!(metrics.series[&MetricKind::ErrorRate], vec![0.0, 2.0]);
        assert_eq!(metrics.series[&MetricKind::LatencyP95], vec![200.0, 400.0]);
        assert_eq!(metrics.value(MetricKind::ErrorRate), Some(1.5));
    }

    #[test]
    fn no_data_means_no_latency_and_no_series() {
        let metrics = summarize(&Periods::default());
        assert_eq!(metrics, SlotMetrics::default());
        assert_eq!(metrics.value(MetricKind::LatencyP99), None);
    }

    #[test]
    fn percentiles_without_request_counts_take_the_plain_mean() {
        let values = BTreeMap::from([(0, 0.1), (60_000, 0.3)]);
        let mean = request_weighted_mean(&values, &BTreeMap::new()).unwrap();
        assert!((mean - 0.2).abs() < 1e-12);
    }
}
