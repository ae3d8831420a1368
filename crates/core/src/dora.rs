//! DORA metrics from the history: deployment frequency, lead time for changes,
//! change failure rate and time to restore, over a window of time.
//!
//! The figures are computed from sealed history events alone (of any number of
//! deployments, in any order), so anyone holding the history can recompute them, and
//! the CLI, chat and local mode always agree.
//!
//! # What counts
//!
//! - A deployment *starts* with its `created` event, which carries the commit time.
//! - It *finishes* with its `finished` event, whose state is the outcome. A deployment
//!   belongs to the window `[from, to)` when its `finished` event does, wherever its
//!   start lies. Deployments still running have no `finished` event and are left out.
//! - *Succeeded*: finished in [`State::Succeeded`]. Only these count toward deployment
//!   frequency and lead time.
//! - *Failed change*: finished in [`State::RolledBack`]: traffic had moved to the new
//!   release and was put back, whether an alarm, a metric check, the judge or a person
//!   started the rollback.
//! - *Aborted* ([`State::Aborted`]) and *failed before traffic* ([`State::Failed`]) are
//!   counted apart and are not change failures: an abort is a person deciding not to
//!   ship, and a failed gate before any traffic moved caught the problem before users
//!   met it. Neither was judged in production, which is what DORA's change failure
//!   rate measures.
//!
//! # The four metrics
//!
//! - *Deployment frequency*: succeeded deployments per day of the window.
//! - *Lead time for changes*: from `committed_at` on the `created` event to the
//!   `finished` event of a succeeded deployment. Deployments without a commit time, or
//!   whose commit time is after their finish (a skewed clock), are skipped.
//! - *Change failure rate*: failed changes / (succeeded + failed changes), `None` when
//!   both are zero. Aborted and failed-before-traffic deployments are in neither part.
//! - *Time to restore*: from the deployment's first `rollback_started` event (the
//!   failure was detected) to its `finished` event in `rolled_back` (traffic verified
//!   back on the stable slot). A rolled-back deployment without a `rollback_started`
//!   event before its finish still counts as a failed change but gives no duration.
//!
//! Durations are summarised by [`Stats`]: count, median and 90th percentile (linear
//! interpolation between the two nearest ranks, as numpy and spreadsheets do by
//! default) and mean.
//!
//! # Odd records
//!
//! For each deployment the earliest `created`, the earliest `rollback_started` and the
//! earliest `finished` event in a terminal state are used (earliest by time, then by
//! sequence number). Events read twice are therefore counted once, and a `finished`
//! event carrying a non-terminal state is ignored.
//!
//! # Tiers
//!
//! Each metric is placed in a performance tier following the bands of DORA's State of
//! DevOps reports (2021 to 2023), simplified to one threshold per tier. Lead time and
//! time to restore are judged on their median.
//!
//! | metric               | elite       | high         | medium          | low    |
//! |----------------------|-------------|--------------|-----------------|--------|
//! | deployment frequency | >= 1 a day  | >= 1 a week  | >= 1 in 30 days | less   |
//! | lead time            | < 1 day     | < 1 week     | < 30 days       | longer |
//! | change failure rate  | <= 15%      | <= 30%       | <= 45%          | > 45%  |
//! | time to restore      | < 1 hour    | < 1 day      | < 1 week        | longer |
//!
//! A tier is `None` when its metric has no data. For deployment frequency that is when
//! no deployment at all finished in the window: there is nothing to judge, and an empty
//! report is as likely to mean a mistyped service or window as a team that never ships.
//! Deployments that finished without succeeding do give a frequency of 0 and `low`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deployment::State;
use crate::domain::{DeploymentId, ServiceName};
use crate::history::{Event, EventKind};
use crate::time::{Timestamp, format_duration};

const HOUR_SECS: f64 = 3_600.0;
const DAY_SECS: f64 = 86_400.0;
const WEEK_SECS: f64 = 7.0 * DAY_SECS;

/// A performance tier from DORA's published bands, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The best-performing band.
    Elite,
    /// The second band.
    High,
    /// The third band.
    Medium,
    /// The lowest band.
    Low,
}

impl Tier {
    /// The tier for a number of succeeded deployments per day.
    pub fn for_deployment_frequency(per_day: f64) -> Tier {
        if per_day >= 1.0 {
            Tier::Elite
        } else if per_day >= 1.0 / 7.0 {
            Tier::High
        } else if per_day >= 1.0 / 30.0 {
            Tier::Medium
        } else {
            Tier::Low
        }
    }

    /// The tier for a (median) lead time for changes, in seconds.
    pub fn for_lead_time(secs: f64) -> Tier {
        if secs < DAY_SECS {
            Tier::Elite
        } else if secs < WEEK_SECS {
            Tier::High
        } else if secs < 30.0 * DAY_SECS {
            Tier::Medium
        } else {
            Tier::Low
        }
    }

    /// The tier for a change failure rate, as a fraction from 0 to 1.
    pub fn for_change_failure_rate(rate: f64) -> Tier {
        // Rates come from a division of two counts, which is correctly rounded, so a
        // rate of exactly 15% compares equal to the literal 0.15 below.
        if rate <= 0.15 {
            Tier::Elite
        } else if rate <= 0.30 {
            Tier::High
        } else if rate <= 0.45 {
            Tier::Medium
        } else {
            Tier::Low
        }
    }

    /// The tier for a (median) time to restore, in seconds.
    pub fn for_time_to_restore(secs: f64) -> Tier {
        if secs < HOUR_SECS {
            Tier::Elite
        } else if secs < DAY_SECS {
            Tier::High
        } else if secs < WEEK_SECS {
            Tier::Medium
        } else {
            Tier::Low
        }
    }

    /// The tier's name in output, e.g. `elite`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Elite => "elite",
            Tier::High => "high",
            Tier::Medium => "medium",
            Tier::Low => "low",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The tier of each metric; `None` where the metric has no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tiers {
    /// The tier of the deployment frequency.
    pub deployment_frequency: Option<Tier>,
    /// The tier of the median lead time.
    pub lead_time: Option<Tier>,
    /// The tier of the change failure rate.
    pub change_failure_rate: Option<Tier>,
    /// The tier of the median time to restore.
    pub time_to_restore: Option<Tier>,
}

/// A summary of a set of durations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// How many durations there were.
    pub count: u64,
    /// The median.
    pub median_secs: f64,
    /// The 90th percentile, interpolated between the two nearest ranks.
    pub p90_secs: f64,
    /// The arithmetic mean.
    pub mean_secs: f64,
}

impl Stats {
    /// Summarises durations given in seconds; `None` when there are none.
    pub fn from_secs(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let sum: f64 = sorted.iter().sum();
        Some(Stats {
            count: sorted.len() as u64,
            median_secs: percentile(&sorted, 0.5),
            p90_secs: percentile(&sorted, 0.9),
            mean_secs: sum / sorted.len() as f64,
        })
    }
}

/// The `p` quantile (0 to 1) of sorted, non-empty values, interpolating linearly
/// between the two nearest ranks. With it the median of an even count is the mean of
/// the two middle values, as people expect.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = rank.ceil() as usize;
    let fraction = rank - lower as f64;
    sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
}

/// DORA metrics for one window, and for one service or all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoraReport {
    /// The window's start, included.
    pub from: Timestamp,
    /// The window's end, excluded.
    pub to: Timestamp,
    /// The service the report is limited to, if any.
    pub service: Option<String>,
    /// Deployments that finished in the window, whatever their outcome.
    pub deployments: u64,
    /// Of those, how many succeeded.
    pub succeeded: u64,
    /// Of those, how many were rolled back after traffic moved: the failed changes.
    pub failed_changes: u64,
    /// Of those, how many a person aborted.
    pub aborted: u64,
    /// Of those, how many failed a gate before any traffic moved.
    pub failed_before_traffic: u64,
    /// Succeeded deployments per day of the window; 0 for an empty window.
    pub deployment_frequency_per_day: f64,
    /// From commit to success, over the succeeded deployments with a commit time.
    pub lead_time: Option<Stats>,
    /// Failed changes over succeeded plus failed changes, from 0 to 1.
    pub change_failure_rate: Option<f64>,
    /// From failure detected to traffic back on the stable slot, over the failed changes.
    pub time_to_restore: Option<Stats>,
    /// Where each metric stands in DORA's bands.
    pub tier: Tiers,
}

/// The events of one deployment that the metrics read.
#[derive(Default)]
struct Milestones<'a> {
    created: Option<&'a Event>,
    rollback_started: Option<&'a Event>,
    finished: Option<&'a Event>,
}

/// Keeps the earlier of the kept event and `event`, by time and then sequence number.
fn keep_earliest<'a>(kept: &mut Option<&'a Event>, event: &'a Event) {
    if kept.is_none_or(|current| (event.at, event.seq) < (current.at, current.seq)) {
        *kept = Some(event);
    }
}

/// Seconds from `earlier` to `later`, or `None` if `later` comes first.
fn secs_between(earlier: Timestamp, later: Timestamp) -> Option<f64> {
    let millis = later.as_millis().checked_sub(earlier.as_millis())?;
    (millis >= 0).then(|| millis as f64 / 1000.0)
}

/// Computes the DORA metrics of the deployments that finished in `[from, to)`, from
/// their history events (in any order), for one service or, with `None`, for all.
pub fn dora(
    events: &[Event],
    service: Option<&ServiceName>,
    from: Timestamp,
    to: Timestamp,
) -> DoraReport {
    let mut by_deployment: BTreeMap<&DeploymentId, Milestones<'_>> = BTreeMap::new();
    for event in events {
        if service.is_some_and(|wanted| &event.service != wanted) {
            continue;
        }
        let milestones = by_deployment.entry(&event.deployment_id).or_default();
        match event.kind {
            EventKind::Created { .. } => keep_earliest(&mut milestones.created, event),
            EventKind::RollbackStarted => keep_earliest(&mut milestones.rollback_started, event),
            EventKind::Finished if event.state.is_terminal() => {
                keep_earliest(&mut milestones.finished, event)
            }
            _ => {}
        }
    }

    let mut succeeded = 0;
    let mut failed_changes = 0;
    let mut aborted = 0;
    let mut failed_before_traffic = 0;
    let mut lead_times = Vec::new();
    let mut restore_times = Vec::new();
    for milestones in by_deployment.values() {
        let Some(finished) = milestones.finished else {
            continue;
        };
        if finished.at < from || finished.at >= to {
            continue;
        }
        match finished.state {
            State::Succeeded => {
                succeeded += 1;
                let committed_at = milestones.created.and_then(|created| match &created.kind {
                    EventKind::Created { committed_at, .. } => *committed_at,
                    _ => None,
                });
                if let Some(committed_at) = committed_at
                    && let Some(secs) = secs_between(committed_at, finished.at)
                {
                    lead_times.push(secs);
                }
            }
            State::RolledBack => {
                failed_changes += 1;
                if let Some(started) = milestones.rollback_started
                    && let Some(secs) = secs_between(started.at, finished.at)
                {
                    restore_times.push(secs);
                }
            }
            State::Aborted => aborted += 1,
            State::Failed => failed_before_traffic += 1,
            // Only terminal finished events were kept above.
            _ => {}
        }
    }

    let deployments = succeeded + failed_changes + aborted + failed_before_traffic;
    let window_secs = secs_between(from, to).unwrap_or(0.0);
    let deployment_frequency_per_day = if window_secs > 0.0 {
        succeeded as f64 * DAY_SECS / window_secs
    } else {
        0.0
    };
    let judged = succeeded + failed_changes;
    let change_failure_rate = (judged > 0).then(|| failed_changes as f64 / judged as f64);
    let lead_time = Stats::from_secs(&lead_times);
    let time_to_restore = Stats::from_secs(&restore_times);
    let tier = Tiers {
        deployment_frequency: (deployments > 0)
            .then(|| Tier::for_deployment_frequency(deployment_frequency_per_day)),
        lead_time: lead_time.map(|s| Tier::for_lead_time(s.median_secs)),
        change_failure_rate: change_failure_rate.map(Tier::for_change_failure_rate),
        time_to_restore: time_to_restore.map(|s| Tier::for_time_to_restore(s.median_secs)),
    };

    DoraReport {
        from,
        to,
        service: service.map(|s| s.to_string()),
        deployments,
        succeeded,
        failed_changes,
        aborted,
        failed_before_traffic,
        deployment_frequency_per_day,
        lead_time,
        change_failure_rate,
        time_to_restore,
        tier,
    }
}

/// A duration in seconds as people write it, rounded to the second: `2h30m`.
fn human_secs(secs: f64) -> String {
    format_duration(Duration::from_secs(secs.max(0.0).round() as u64))
}

/// `value (tier)`, or just `value` when there is no tier.
fn with_tier(value: String, tier: Option<Tier>) -> String {
    match tier {
        Some(tier) => format!("{value} ({tier})"),
        None => value,
    }
}

/// How a duration summary reads in a report line.
fn stats_line(stats: Option<Stats>, tier: Option<Tier>, none: &str) -> String {
    match stats {
        Some(s) => with_tier(
            format!(
                "median {}, p90 {} over {}",
                human_secs(s.median_secs),
                human_secs(s.p90_secs),
                s.count
            ),
            tier,
        ),
        None => none.to_string(),
    }
}

/// A short summary of a report for a person: a heading and one aligned line per metric.
pub fn render_text(report: &DoraReport) -> String {
    let scope = report.service.as_deref().unwrap_or("all services");
    let window = format_duration(report.to.since(report.from));
    let frequency = with_tier(
        format!(
            "{:.2} per day ({} succeeded in {window})",
            report.deployment_frequency_per_day, report.succeeded
        ),
        report.tier.deployment_frequency,
    );
    let failure_rate = match report.change_failure_rate {
        Some(rate) => with_tier(
            format!(
                "{:.0}% ({} of {})",
                rate * 100.0,
                report.failed_changes,
                report.succeeded + report.failed_changes
            ),
            report.tier.change_failure_rate,
        ),
        None => "no succeeded or rolled-back deployments".to_string(),
    };
    let lines = [
        (
            "deployments",
            format!(
                "{} finished: {} succeeded, {} rolled back, {} aborted, {} failed before traffic",
                report.deployments,
                report.succeeded,
                report.failed_changes,
                report.aborted,
                report.failed_before_traffic
            ),
        ),
        ("deployment frequency", frequency),
        (
            "lead time",
            stats_line(
                report.lead_time,
                report.tier.lead_time,
                "no succeeded deployment with a commit time",
            ),
        ),
        ("change failure rate", failure_rate),
        (
            "time to restore",
            stats_line(
                report.time_to_restore,
                report.tier.time_to_restore,
                "no rollback to restore from",
            ),
        ),
    ];
    let mut out = format!(
        "DORA metrics for {scope}, {} to {} ({window})\n",
        report.from, report.to
    );
    for (label, value) in lines {
        out.push_str(&format!("  {label:<22}{value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::RollbackEnd;
    use crate::history::{Actor, EventDraft, GENESIS_HASH, seal, verify_history};

    const MINUTE: i64 = 60;
    const HOUR: i64 = 3_600;
    const DAY: i64 = 86_400;

    /// The instant `secs` seconds after 2026-11-01T00:00:00Z, where every test starts.
    fn at(secs: i64) -> Timestamp {
        let start = Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").unwrap();
        Timestamp::from_millis(start.as_millis() + secs * 1000)
    }

    /// The sealed history of one deployment, from `(seconds, kind, state)` entries.
    fn sealed(id: &str, service: &str, timeline: &[(i64, EventKind, State)]) -> Vec<Event> {
        let drafts: Vec<EventDraft> = timeline
            .iter()
            .map(|(secs, kind, state)| EventDraft {
                at: at(*secs),
                actor: Actor::Schedule,
                kind: kind.clone(),
                reason: format!("{} at {secs}s", kind.name()),
                weights_before: None,
                weights_after: None,
                state: *state,
            })
            .collect();
        let id = DeploymentId::new(id).unwrap();
        let service = ServiceName::new(service).unwrap();
        let (events, _, _) = seal(&id, &service, 0, GENESIS_HASH, &drafts);
        // The metrics are meant for real histories, so the fixtures must be valid ones.
        assert_eq!(verify_history(&events, None), Ok(()));
        events
    }

    fn created(committed_at: Option<i64>) -> EventKind {
        EventKind::Created {
            version: "v43".to_string(),
            commit: "0a1b2c3".to_string(),
            committed_at: committed_at.map(at),
        }
    }

    /// A deployment created at `start` that succeeded at `end`.
    fn succeeded(
        id: &str,
        service: &str,
        committed: Option<i64>,
        start: i64,
        end: i64,
    ) -> Vec<Event> {
        sealed(
            id,
            service,
            &[
                (start, created(committed), State::Pending),
                (
                    start + 1,
                    EventKind::StepStarted { step: 0 },
                    State::Progressing { step: 0 },
                ),
                (end, EventKind::Finished, State::Succeeded),
            ],
        )
    }

    /// A deployment whose failure was detected at `detected` and that was rolled back,
    /// traffic verified on stable, at `end`.
    fn rolled_back(id: &str, service: &str, start: i64, detected: i64, end: i64) -> Vec<Event> {
        let rolling_back = State::RollingBack {
            end: RollbackEnd::RolledBack,
        };
        sealed(
            id,
            service,
            &[
                (start, created(Some(start - HOUR)), State::Pending),
                (
                    start + 1,
                    EventKind::StepStarted { step: 0 },
                    State::Progressing { step: 0 },
                ),
                (detected, EventKind::RollbackStarted, rolling_back),
                (end, EventKind::Finished, State::RolledBack),
            ],
        )
    }

    /// A deployment that ended at `end` in `state` without a rollback.
    fn stopped(id: &str, service: &str, start: i64, end: i64, state: State) -> Vec<Event> {
        sealed(
            id,
            service,
            &[
                (start, created(Some(start - HOUR)), State::Pending),
                (end, EventKind::Finished, state),
            ],
        )
    }

    fn web() -> ServiceName {
        ServiceName::new("web").unwrap()
    }

    fn assert_close(actual: f64, expected: f64, what: &str) {
        assert!(
            (actual - expected).abs() < 1e-6,
            "{what}: expected {expected}, got {actual}"
        );
    }

    #[test]
    fn an_empty_window_has_no_metrics() {
        // One deployment before the window and one still running inside it.
        let mut events = succeeded("before", "web", Some(0), HOUR, 2 * HOUR);
        events.extend(sealed(
            "running",
            "web",
            &[(DAY + HOUR, created(Some(DAY)), State::Pending)],
        ));
        for events in [&events[..], &[]] {
            let report = dora(events, None, at(DAY), at(8 * DAY));
            assert_eq!(report.deployments, 0);
            assert_eq!(report.succeeded, 0);
            assert_eq!(report.deployment_frequency_per_day, 0.0);
            assert_eq!(report.lead_time, None);
            assert_eq!(report.change_failure_rate, None);
            assert_eq!(report.time_to_restore, None);
            assert_eq!(report.tier, Tiers::default());
            assert_eq!(report.service, None);
        }
    }

    #[test]
    fn a_zero_length_or_reversed_window_is_empty() {
        let events = succeeded("a", "web", Some(0), 0, HOUR);
        for (from, to) in [(at(HOUR), at(HOUR)), (at(2 * HOUR), at(0))] {
            let report = dora(&events, None, from, to);
            assert_eq!(report.deployments, 0);
            assert_eq!(report.deployment_frequency_per_day, 0.0);
        }
    }

    #[test]
    fn outcomes_are_counted_by_their_finished_state() {
        let mut events = Vec::new();
        events.extend(succeeded("s1", "web", Some(0), HOUR, 2 * HOUR));
        events.extend(succeeded("s2", "web", Some(0), DAY, DAY + HOUR));
        events.extend(succeeded("s3", "web", Some(0), 2 * DAY, 2 * DAY + HOUR));
        events.extend(rolled_back(
            "r1",
            "web",
            3 * DAY,
            3 * DAY + 10 * MINUTE,
            3 * DAY + 12 * MINUTE,
        ));
        events.extend(stopped(
            "a1",
            "web",
            4 * DAY,
            4 * DAY + MINUTE,
            State::Aborted,
        ));
        events.extend(stopped(
            "f1",
            "web",
            5 * DAY,
            5 * DAY + MINUTE,
            State::Failed,
        ));
        let report = dora(&events, None, at(0), at(30 * DAY));
        assert_eq!(report.deployments, 6);
        assert_eq!(report.succeeded, 3);
        assert_eq!(report.failed_changes, 1);
        assert_eq!(report.aborted, 1);
        assert_eq!(report.failed_before_traffic, 1);
        // Aborted and failed-before-traffic deployments are in neither part of the rate.
        assert_eq!(report.change_failure_rate, Some(0.25));
        assert_close(report.deployment_frequency_per_day, 0.1, "frequency");
        assert_eq!(report.tier.deployment_frequency, Some(Tier::Medium));
        assert_eq!(report.tier.change_failure_rate, Some(Tier::High));
    }

    #[test]
    fn order_and_duplicates_do_not_change_the_report() {
        let mut events = Vec::new();
        events.extend(succeeded("s1", "web", Some(0), HOUR, 3 * HOUR));
        events.extend(rolled_back(
            "r1",
            "web",
            DAY,
            DAY + MINUTE,
            DAY + 5 * MINUTE,
        ));
        events.extend(succeeded("s2", "web", Some(DAY), 2 * DAY, 2 * DAY + HOUR));
        let expected = dora(&events, None, at(0), at(7 * DAY));
        assert_eq!(expected.deployments, 3);

        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(dora(&reversed, None, at(0), at(7 * DAY)), expected);

        let mut twice = events.clone();
        twice.extend(events.iter().cloned());
        assert_eq!(dora(&twice, None, at(0), at(7 * DAY)), expected);
    }

    #[test]
    fn lead_time_statistics_use_known_numbers() {
        // Lead times of 1h, 2h, 3h, 4h and 10h: median 3h, mean 4h, and p90 at rank 3.6,
        // 60% of the way from 4h to 10h, i.e. 7h36m.
        let mut events = Vec::new();
        for (i, hours) in [1, 2, 3, 4, 10].into_iter().enumerate() {
            let end = (i as i64 + 1) * DAY;
            let id = format!("s{i}");
            events.extend(succeeded(
                &id,
                "web",
                Some(end - hours * HOUR),
                end - HOUR / 2,
                end,
            ));
        }
        // Without a commit time, or committed after the finish: no lead time, but a success.
        events.extend(succeeded("unknown", "web", None, 6 * DAY, 6 * DAY + HOUR));
        events.extend(succeeded(
            "skewed",
            "web",
            Some(7 * DAY + HOUR),
            7 * DAY,
            7 * DAY + MINUTE,
        ));
        let report = dora(&events, None, at(0), at(30 * DAY));
        assert_eq!(report.succeeded, 7);
        let lead = report.lead_time.expect("lead time");
        assert_eq!(lead.count, 5);
        assert_close(lead.median_secs, 3.0 * 3600.0, "median");
        assert_close(lead.p90_secs, 7.6 * 3600.0, "p90");
        assert_close(lead.mean_secs, 4.0 * 3600.0, "mean");
        assert_eq!(report.tier.lead_time, Some(Tier::Elite));
    }

    /// The expected median, p90 and mean of a set, or `None` for no summary.
    type ExpectedStats = Option<(f64, f64, f64)>;

    #[test]
    fn statistics_of_small_sets() {
        let table: [(&[f64], ExpectedStats); 4] = [
            (&[], None),
            (&[42.0], Some((42.0, 42.0, 42.0))),
            // An even count: the median is the mean of the two middle values.
            (&[30.0, 10.0], Some((20.0, 28.0, 20.0))),
            (
                &[
                    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0,
                ],
                Some((50.0, 90.0, 50.0)),
            ),
        ];
        for (values, expected) in table {
            let stats = Stats::from_secs(values);
            match expected {
                None => assert_eq!(stats, None),
                Some((median, p90, mean)) => {
                    let stats = stats.expect("stats");
                    assert_eq!(stats.count, values.len() as u64);
                    assert_close(stats.median_secs, median, "median");
                    assert_close(stats.p90_secs, p90, "p90");
                    assert_close(stats.mean_secs, mean, "mean");
                }
            }
        }
    }

    #[test]
    fn time_to_restore_runs_from_first_rollback_start_to_finish() {
        let mut events = Vec::new();
        events.extend(rolled_back("r1", "web", 0, 10 * MINUTE, 12 * MINUTE));
        // A rollback that had to retry: it is timed from its first start.
        events.extend(sealed(
            "r2",
            "web",
            &[
                (DAY, created(None), State::Pending),
                (
                    DAY + MINUTE,
                    EventKind::RollbackStarted,
                    State::RollingBack {
                        end: RollbackEnd::RolledBack,
                    },
                ),
                (
                    DAY + 2 * MINUTE,
                    EventKind::RollbackRetrying { attempts: 1 },
                    State::RollingBack {
                        end: RollbackEnd::RolledBack,
                    },
                ),
                (
                    DAY + 3 * MINUTE,
                    EventKind::RollbackStarted,
                    State::RollingBack {
                        end: RollbackEnd::RolledBack,
                    },
                ),
                (DAY + 6 * MINUTE, EventKind::Finished, State::RolledBack),
            ],
        ));
        // Rolled back without a recorded start: a failed change, but no duration.
        events.extend(stopped(
            "r3",
            "web",
            2 * DAY,
            2 * DAY + MINUTE,
            State::RolledBack,
        ));
        // An abort also rolls traffic back, but it is not a failure to restore from.
        events.extend(sealed(
            "a1",
            "web",
            &[
                (3 * DAY, created(None), State::Pending),
                (
                    3 * DAY + MINUTE,
                    EventKind::RollbackStarted,
                    State::RollingBack {
                        end: RollbackEnd::Aborted,
                    },
                ),
                (3 * DAY + 9 * HOUR, EventKind::Finished, State::Aborted),
            ],
        ));
        let report = dora(&events, None, at(0), at(7 * DAY));
        assert_eq!(report.failed_changes, 3);
        assert_eq!(report.aborted, 1);
        assert_eq!(report.change_failure_rate, Some(1.0));
        let restore = report.time_to_restore.expect("time to restore");
        assert_eq!(restore.count, 2);
        assert_close(restore.median_secs, 210.0, "median");
        assert_close(restore.mean_secs, 210.0, "mean");
        assert_close(restore.p90_secs, 120.0 + 0.9 * 180.0, "p90");
        assert_eq!(report.tier.time_to_restore, Some(Tier::Elite));
        assert_eq!(report.tier.change_failure_rate, Some(Tier::Low));
    }

    #[test]
    fn a_service_filter_keeps_only_that_service() {
        let mut events = Vec::new();
        events.extend(succeeded("w1", "web", Some(0), HOUR, 2 * HOUR));
        events.extend(rolled_back(
            "w2",
            "web",
            DAY,
            DAY + MINUTE,
            DAY + 2 * MINUTE,
        ));
        events.extend(succeeded("a1", "api", Some(0), HOUR, 3 * HOUR));
        events.extend(succeeded("a2", "api", Some(0), 2 * DAY, 2 * DAY + HOUR));
        events.extend(stopped(
            "a3",
            "api",
            3 * DAY,
            3 * DAY + MINUTE,
            State::Failed,
        ));

        let table = [
            (Some(web()), 2, 1, 1, 0),
            (Some(ServiceName::new("api").unwrap()), 3, 2, 0, 1),
            (Some(ServiceName::new("billing").unwrap()), 0, 0, 0, 0),
            (None, 5, 3, 1, 1),
        ];
        for (service, deployments, succeeded, failed_changes, failed_before) in table {
            let report = dora(&events, service.as_ref(), at(0), at(7 * DAY));
            let what = format!("{service:?}");
            assert_eq!(
                report.service,
                service.as_ref().map(|s| s.to_string()),
                "{what}"
            );
            assert_eq!(report.deployments, deployments, "{what}");
            assert_eq!(report.succeeded, succeeded, "{what}");
            assert_eq!(report.failed_changes, failed_changes, "{what}");
            assert_eq!(report.failed_before_traffic, failed_before, "{what}");
        }
    }

    #[test]
    fn a_deployment_belongs_to_the_window_of_its_finish() {
        let from = 10 * DAY;
        let to = 20 * DAY;
        // (created, finished, in the window)
        let table = [
            (from - HOUR, from, true),
            (from - 2 * DAY, from + HOUR, true),
            (to - HOUR, to - 1, true),
            (to - HOUR, to, false),
            (from - HOUR, from - 1, false),
            (to + HOUR, to + 2 * HOUR, false),
        ];
        for (created_at, finished_at, inside) in table {
            let events = succeeded("d", "web", Some(created_at), created_at, finished_at);
            let report = dora(&events, Some(&web()), at(from), at(to));
            assert_eq!(
                report.succeeded,
                u64::from(inside),
                "created {created_at}s, finished {finished_at}s"
            );
        }
    }

    #[test]
    fn tiers_follow_the_documented_bands() {
        let week = 7.0 * DAY_SECS;
        let frequency = [
            (3.0, Tier::Elite),
            (1.0, Tier::Elite),
            (0.999, Tier::High),
            (1.0 / 7.0, Tier::High),
            (1.0 / 7.0 - 1e-9, Tier::Medium),
            (1.0 / 30.0, Tier::Medium),
            (1.0 / 30.0 - 1e-9, Tier::Low),
            (0.0, Tier::Low),
        ];
        for (per_day, tier) in frequency {
            assert_eq!(
                Tier::for_deployment_frequency(per_day),
                tier,
                "frequency {per_day}"
            );
        }
        let lead_time = [
            (0.0, Tier::Elite),
            (DAY_SECS - 1.0, Tier::Elite),
            (DAY_SECS, Tier::High),
            (week - 1.0, Tier::High),
            (week, Tier::Medium),
            (30.0 * DAY_SECS - 1.0, Tier::Medium),
            (30.0 * DAY_SECS, Tier::Low),
        ];
        for (secs, tier) in lead_time {
            assert_eq!(Tier::for_lead_time(secs), tier, "lead time {secs}");
        }
        let failure_rate = [
            (0.0, Tier::Elite),
            (0.15, Tier::Elite),
            (0.16, Tier::High),
            (0.30, Tier::High),
            (0.31, Tier::Medium),
            (0.45, Tier::Medium),
            (0.46, Tier::Low),
            (1.0, Tier::Low),
        ];
        for (rate, tier) in failure_rate {
            assert_eq!(Tier::for_change_failure_rate(rate), tier, "rate {rate}");
        }
        let restore = [
            (0.0, Tier::Elite),
            (HOUR_SECS - 1.0, Tier::Elite),
            (HOUR_SECS, Tier::High),
            (DAY_SECS - 1.0, Tier::High),
            (DAY_SECS, Tier::Medium),
            (week - 1.0, Tier::Medium),
            (week, Tier::Low),
        ];
        for (secs, tier) in restore {
            assert_eq!(Tier::for_time_to_restore(secs), tier, "restore {secs}");
        }
    }

    #[test]
    fn tiers_at_boundaries_computed_from_counts() {
        // (succeeded, rolled back, window days, frequency tier, failure-rate tier)
        let table = [
            (7, 0, 7, Tier::Elite, Tier::Elite),
            (1, 0, 7, Tier::High, Tier::Elite),
            (2, 0, 14, Tier::High, Tier::Elite),
            (1, 0, 30, Tier::Medium, Tier::Elite),
            (1, 0, 31, Tier::Low, Tier::Elite),
            (17, 3, 1, Tier::Elite, Tier::Elite),
            (7, 3, 1, Tier::Elite, Tier::High),
            (11, 9, 1, Tier::Elite, Tier::Medium),
            (1, 1, 1, Tier::Elite, Tier::Low),
        ];
        for (ok, bad, days, frequency, failure_rate) in table {
            let mut events = Vec::new();
            for i in 0..ok {
                let end = i * HOUR + HOUR;
                events.extend(succeeded(
                    &format!("s{i}"),
                    "web",
                    Some(0),
                    end - MINUTE,
                    end,
                ));
            }
            for i in 0..bad {
                let end = i * HOUR + HOUR;
                events.extend(rolled_back(
                    &format!("r{i}"),
                    "web",
                    end - 2 * MINUTE,
                    end - MINUTE,
                    end,
                ));
            }
            let report = dora(&events, None, at(0), at(days * DAY));
            let what = format!("{ok} succeeded, {bad} rolled back in {days} days");
            assert_eq!(report.tier.deployment_frequency, Some(frequency), "{what}");
            assert_eq!(
                report.tier.change_failure_rate,
                Some(failure_rate),
                "{what}"
            );
        }
    }

    #[test]
    fn failed_deployments_alone_rate_the_frequency_low() {
        let events = stopped("f1", "web", 0, MINUTE, State::Failed);
        let report = dora(&events, None, at(0), at(DAY));
        assert_eq!(report.deployments, 1);
        assert_eq!(report.deployment_frequency_per_day, 0.0);
        assert_eq!(report.tier.deployment_frequency, Some(Tier::Low));
        assert_eq!(report.change_failure_rate, None);
    }

    #[test]
    fn a_report_round_trips_through_json() {
        let mut events = succeeded("s1", "web", Some(0), HOUR, 2 * HOUR);
        events.extend(rolled_back(
            "r1",
            "web",
            DAY,
            DAY + MINUTE,
            DAY + 3 * MINUTE,
        ));
        let report = dora(&events, Some(&web()), at(0), at(7 * DAY));
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""change_failure_rate":0.5"#), "{json}");
        assert!(
            json.contains(r#""tier":{"deployment_frequency":"high""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<DoraReport>(&json).unwrap(), report);
    }

    #[test]
    fn text_summary_reads_as_aligned_lines() {
        let mut events = Vec::new();
        events.extend(succeeded(
            "s1",
            "web",
            Some(0),
            2 * HOUR,
            2 * HOUR + 30 * MINUTE,
        ));
        events.extend(succeeded(
            "s2",
            "web",
            Some(DAY),
            DAY + HOUR,
            DAY + 2 * HOUR,
        ));
        events.extend(succeeded(
            "s3",
            "web",
            Some(2 * DAY),
            2 * DAY + HOUR,
            2 * DAY + 3 * HOUR,
        ));
        events.extend(rolled_back(
            "r1",
            "web",
            3 * DAY,
            3 * DAY + MINUTE,
            3 * DAY + 5 * MINUTE,
        ));
        events.extend(stopped(
            "a1",
            "web",
            4 * DAY,
            4 * DAY + MINUTE,
            State::Aborted,
        ));
        let report = dora(&events, Some(&web()), at(0), at(7 * DAY));
        let text = render_text(&report);
        let expected = "\
DORA metrics for web, 2026-11-01T00:00:00Z to 2026-11-08T00:00:00Z (7d)
  deployments           5 finished: 3 succeeded, 1 rolled back, 1 aborted, 0 failed before traffic
  deployment frequency  0.43 per day (3 succeeded in 7d) (high)
  lead time             median 2h30m, p90 2h54m over 3 (elite)
  change failure rate   25% (1 of 4) (high)
  time to restore       median 4m, p90 4m over 1 (elite)
";
        assert_eq!(text, expected);
    }

    #[test]
    fn text_summary_of_an_empty_window_says_there_is_no_data() {
        let report = dora(&[], None, at(0), at(30 * DAY));
        let text = render_text(&report);
        assert!(text.starts_with("DORA metrics for all services"), "{text}");
        assert!(
            text.contains("0.00 per day (0 succeeded in 30d)\n"),
            "{text}"
        );
        assert!(
            text.contains("no succeeded deployment with a commit time"),
            "{text}"
        );
        assert!(
            text.contains("no succeeded or rolled-back deployments"),
            "{text}"
        );
        assert!(text.contains("no rollback to restore from"), "{text}");
        assert!(!text.contains("elite") && !text.contains("low"), "{text}");
    }
}
