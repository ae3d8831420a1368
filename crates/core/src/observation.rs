//! What the driver saw of the world in one pass, as input to `decide`.
//!
//! Every part is optional: `None` means "not observed or could not be read", and the
//! engine never moves forward on what it does not know. It still rolls back on what
//! it does know (an alarm firing), which is why the alarm path can decide from an
//! observation that holds nothing but the alarm.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{MetricKind, SmokeCheck};
use crate::deployment::Command;
use crate::domain::{Slot, Weights};

/// Target health of one slot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthReport {
    /// Targets reported healthy.
    pub healthy: u32,
    /// All registered targets.
    pub total: u32,
    /// Target ids that are not healthy, with their state or reason.
    pub unhealthy: Vec<String>,
}

/// The state of the watched alarms.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlarmReport {
    /// Alarms in ALARM, with their state reason (which carries the value).
    pub firing: BTreeMap<String, String>,
}

/// The result of one smoke check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeResult {
    /// The check's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was seen (status, missing text, error).
    pub detail: String,
}

/// What a slot answered to a smoke check's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmokeAnswer {
    /// The status.
    pub status: u16,
    /// The value of the header the check names, when it names one and it was sent.
    pub header: Option<String>,
    /// The body, as text.
    pub body: String,
}

impl SmokeResult {
    /// Judges `answer` (or the error that kept one from coming) by `check`. `request`
    /// says what was sent where, e.g. `GET http://10.0.0.5:8080/health`, for the detail.
    pub fn judge(check: &SmokeCheck, request: &str, answer: Result<SmokeAnswer, String>) -> Self {
        let failed = |detail: String| SmokeResult {
            name: check.name.clone(),
            passed: false,
            detail,
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => return failed(format!("{request}: {error}")),
        };
        let status = answer.status;
        if status != check.expect_status {
            return failed(format!(
                "{request} answered {status}, expected {}",
                check.expect_status
            ));
        }
        if let Some(text) = &check.body_contains
            && !answer.body.contains(text.as_str())
        {
            return failed(format!(
                "{request} answered {status} without {text:?} in its body"
            ));
        }
        if let Some((name, value)) = &check.header
            && answer.header.as_deref() != Some(value.as_str())
        {
            return failed(match &answer.header {
                Some(seen) => format!("{request}: header {name} is {seen:?}, expected {value:?}"),
                None => format!("{request}: header {name} is missing, expected {value:?}"),
            });
        }
        SmokeResult {
            name: check.name.clone(),
            passed: true,
            detail: format!("{request} answered {status}"),
        }
    }
}

/// The results of a smoke run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SmokeReport {
    /// One result per configured check.
    pub results: Vec<SmokeResult>,
}

impl SmokeReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }
}

/// One slot's metrics over a window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SlotMetrics {
    /// Requests in the window.
    pub requests: u64,
    /// Of which answered with a 5xx.
    pub errors_5xx: u64,
    /// 95th percentile latency, milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency, milliseconds.
    pub latency_p99_ms: Option<f64>,
    /// Per-period values of each metric over the window, for the judge.
    pub series: BTreeMap<MetricKind, Vec<f64>>,
}

impl SlotMetrics {
    /// The aggregate value of a metric over the window, if it can be computed.
    pub fn value(&self, metric: MetricKind) -> Option<f64> {
        match metric {
            MetricKind::ErrorRate => {
                (self.requests > 0).then(|| self.errors_5xx as f64 * 100.0 / self.requests as f64)
            }
            MetricKind::LatencyP95 => self.latency_p95_ms,
            MetricKind::LatencyP99 => self.latency_p99_ms,
            MetricKind::RequestCount => Some(self.requests as f64),
        }
    }
}

/// Metrics of one slot over one window ending now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricReading {
    /// The slot.
    pub slot: Slot,
    /// The window's length.
    pub window: Duration,
    /// The values.
    pub metrics: SlotMetrics,
}

/// Everything one pass observed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// The weights the router serves, read back.
    pub weights: Option<Weights>,
    /// Health of the new slot.
    pub health: Option<HealthReport>,
    /// The watched alarms.
    pub alarms: Option<AlarmReport>,
    /// Metric readings asked for by `Needs::metrics`.
    pub metrics: Vec<MetricReading>,
    /// Smoke results, when asked for by `Needs::smoke`.
    pub smoke: Option<SmokeReport>,
    /// Commands not yet applied, in order.
    pub commands: Vec<Command>,
}

impl Observation {
    /// The reading for a slot and window, if one was taken.
    pub fn reading(&self, slot: Slot, window: Duration) -> Option<&SlotMetrics> {
        self.metrics
            .iter()
            .find(|r| r.slot == slot && r.window == window)
            .map(|r| &r.metrics)
    }
}

/// What the driver should observe for a deployment in its current state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Needs {
    /// Read the router's weights.
    pub weights: bool,
    /// Check the health of this slot.
    pub health: Option<Slot>,
    /// Read the watched alarms.
    pub alarms: bool,
    /// Read metrics for these slots and windows.
    pub metrics: Vec<(Slot, Duration)>,
    /// Run the smoke checks against this slot.
    pub smoke: Option<Slot>,
    /// Read queued commands.
    pub commands: bool,
}
