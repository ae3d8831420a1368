//! Temporary judge interface.
#![allow(missing_docs, unused_variables)]
use crate::config::{JudgeSpec, MetricCheck, MetricKind};
use crate::observation::SlotMetrics;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome { Pass, Marginal, Fail }
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict { pub outcome: Outcome, pub metric: MetricKind, pub reason: String }
pub fn judge(spec: &JudgeSpec, canary: &[f64], stable: &[f64]) -> Verdict {
    let m = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    let outcome = if canary.len() < spec.min_samples { Outcome::Marginal } else if m(canary) > m(stable) * (1.0 + spec.effect_tolerance) { Outcome::Fail } else { Outcome::Pass };
    Verdict { outcome, metric: spec.metric, reason: format!("{outcome:?}") }
}
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome { Pass { value: f64 }, Inconclusive { reason: String }, Fail { value: f64, reason: String } }
pub fn check_threshold(check: &MetricCheck, metrics: &SlotMetrics) -> CheckOutcome {
    if metrics.requests < check.min_requests { return CheckOutcome::Inconclusive { reason: "few".into() }; }
    let Some(value) = metrics.value(check.metric) else { return CheckOutcome::Inconclusive { reason: "none".into() } };
    if check.max.is_some_and(|m| value > m) || check.min.is_some_and(|m| value < m) { CheckOutcome::Fail { value, reason: format!("{} {value:.2} out of bounds", check.metric.as_str()) } } else { CheckOutcome::Pass { value } }
}
