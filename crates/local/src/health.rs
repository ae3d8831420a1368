//! Local mode's target health: every upstream of every local service is probed over
//! HTTP in the background, as an ALB probes its targets, and `TargetHealth` reports
//! what the probes last concluded.
//!
//! An upstream starts unhealthy (an ALB's "initial" state) and becomes healthy after
//! `healthy_threshold` consecutive successes; a healthy one becomes unhealthy after
//! `unhealthy_threshold` consecutive failures. A success is a 2xx or 3xx answer to
//! `GET path` within the timeout. Each slot has one target: its upstream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ripcord_core::config::{LocalHealthCheck, ServiceSpec, TrafficTarget};
use ripcord_core::domain::{ServiceName, Slot};
use ripcord_core::observation::HealthReport;
use ripcord_core::ports::{BoxFuture, PortError, TargetHealth};
use tokio::task::JoinHandle;

use crate::probe::probe;

/// What the probes of one upstream have concluded so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    /// The upstream's base URL.
    pub url: String,
    /// Whether it counts as healthy.
    pub healthy: bool,
    /// Consecutive probes with the same outcome as the last one.
    pub streak: u32,
    /// What the last probe saw, or `initial` before the first one.
    pub last: String,
}

impl TargetState {
    fn initial(url: &str) -> Self {
        Self {
            url: url.to_string(),
            healthy: false,
            streak: 0,
            last: "initial: not probed yet".to_string(),
        }
    }

    /// Counts one probe's outcome against the thresholds.
    fn record(&mut self, check: &LocalHealthCheck, outcome: Result<String, String>) {
        let succeeded = outcome.is_ok();
        let same_direction = succeeded == self.last_succeeded();
        self.streak = if same_direction { self.streak + 1 } else { 1 };
        self.last = match outcome {
            Ok(seen) | Err(seen) => seen,
        };
        if succeeded && !self.healthy && self.streak >= check.healthy_threshold {
            self.healthy = true;
        } else if !succeeded && self.healthy && self.streak >= check.unhealthy_threshold {
            self.healthy = false;
        }
    }

    fn last_succeeded(&self) -> bool {
        self.last.starts_with("answered ")
    }
}

type Targets = BTreeMap<(ServiceName, Slot), TargetState>;

/// The background health checks of local services, and the `TargetHealth` port over
/// their results. Dropping it stops the probes.
#[derive(Debug, Default)]
pub struct LocalHealth {
    targets: Arc<Mutex<Targets>>,
    probes: Mutex<Vec<JoinHandle<()>>>,
}

impl LocalHealth {
    /// No services watched yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts probing both upstreams of a local service (on the current Tokio
    /// runtime). A service without a `[local]` target is refused.
    pub fn watch(&self, service: &ServiceSpec) -> Result<(), PortError> {
        let Some(TrafficTarget::Local(target)) = &service.traffic else {
            return Err(not_local(&service.name));
        };
        for slot in [Slot::Blue, Slot::Green] {
            let key = (service.name.clone(), slot);
            let url = target.upstream(slot).to_string();
            lock(&self.targets).insert(key.clone(), TargetState::initial(&url));
            let check = target.health_check.clone();
            let targets = self.targets.clone();
            let task = tokio::spawn(async move {
                let mut ticks = tokio::time::interval(check.interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let outcome = match probe(&url, "GET", &check.path, check.timeout).await {
                        Ok(answer)
                            if answer.status.is_success() || answer.status.is_redirection() =>
                        {
                            Ok(format!(
                                "answered {} to GET {}",
                                answer.status.as_u16(),
                                check.path
                            ))
                        }
                        Ok(answer) => Err(format!(
                            "GET {} answered {}",
                            check.path,
                            answer.status.as_u16()
                        )),
                        Err(error) => Err(format!("GET {}: {error}", check.path)),
                    };
                    if let Some(state) = lock(&targets).get_mut(&key) {
                        state.record(&check, outcome);
                    }
                }
            });
            self.probes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(task);
        }
        Ok(())
    }

    /// What the probes of a slot's upstream have concluded, if it is watched.
    pub fn target(&self, service: &ServiceName, slot: Slot) -> Option<TargetState> {
        lock(&self.targets).get(&(service.clone(), slot)).cloned()
    }

    /// Stops every probe.
    pub fn stop(&self) {
        for task in self
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Drop for LocalHealth {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TargetHealth for LocalHealth {
    fn health<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
    ) -> BoxFuture<'a, Result<HealthReport, PortError>> {
        Box::pin(async move {
            let state = self.target(&service.name, slot).ok_or_else(|| {
                PortError::permanent(format!(
                    "the upstreams of service {} are not health-checked: start local mode (`ripcord up`) with a configuration that has [services.{}.local]",
                    service.name, service.name
                ))
            })?;
            Ok(HealthReport {
                healthy: u32::from(state.healthy),
                total: 1,
                unhealthy: if state.healthy {
                    Vec::new()
                } else {
                    vec![format!("{} ({})", state.url, state.last)]
                },
            })
        })
    }
}

fn not_local(service: &ServiceName) -> PortError {
    PortError::permanent(format!(
        "service {service} has no [local] traffic target, so local mode cannot check its health: add [services.{service}.local]"
    ))
}

fn lock(targets: &Mutex<Targets>) -> MutexGuard<'_, Targets> {
    // Each change is one insert or one record on a single entry.
    targets.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(healthy: u32, unhealthy: u32) -> LocalHealthCheck {
        LocalHealthCheck {
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            ..LocalHealthCheck::default()
        }
    }

    fn ok() -> Result<String, String> {
        Ok("answered 200 to GET /".into())
    }

    fn failed() -> Result<String, String> {
        Err("GET / answered 503".into())
    }

    #[test]
    fn thresholds_count_consecutive_outcomes_only() {
        let check = check(3, 2);
        let mut state = TargetState::initial("http://127.0.0.1:1");
        // (outcome, healthy afterwards)
        let table = [
            (ok(), false),
            (ok(), false),
            (failed(), false), // the streak of successes is broken
            (ok(), false),
            (ok(), false),
            (ok(), true), // three in a row
            (failed(), true),
            (ok(), true), // one failure is below the unhealthy threshold
            (failed(), true),
            (failed(), false), // two in a row
            (ok(), false),
        ];
        for (index, (outcome, healthy)) in table.into_iter().enumerate() {
            state.record(&check, outcome);
            assert_eq!(state.healthy, healthy, "after probe {}", index + 1);
        }
    }

    #[test]
    fn a_threshold_of_one_follows_every_probe() {
        let check = check(1, 1);
        let mut state = TargetState::initial("http://127.0.0.1:1");
        state.record(&check, ok());
        assert!(state.healthy);
        state.record(&check, failed());
        assert!(!state.healthy);
        assert_eq!(state.last, "GET / answered 503");
    }
}
