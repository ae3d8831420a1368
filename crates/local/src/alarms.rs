//! Local mode's alarms: thresholds over rolling windows of the proxy's own per-slot
//! metrics, serving the engine's `AlarmSource` port in CloudWatch's place.
//!
//! A local alarm is in ALARM while either slot's metric, over the window ending now,
//! is beyond its threshold with at least `min_requests` requests in the window; it is
//! OK otherwise. The engine treats these exactly as CloudWatch alarms: one already in
//! ALARM when a deployment starts is its baseline and does not roll it back until it
//! has cleared once (see `ripcord_core::engine`).

use std::collections::BTreeMap;
use std::sync::Arc;

use ripcord_core::config::{Config, LocalAlarm, MetricKind, TrafficTarget};
use ripcord_core::domain::{ServiceName, Slot};
use ripcord_core::observation::AlarmReport;
use ripcord_core::ports::{AlarmSource, BoxFuture, Clock, PortError};
use ripcord_core::time::format_duration;

use crate::proxy::ProxyRegistry;

/// Why local alarms could not be set up from a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmSetupError {
    /// Two services define an alarm of the same name; `AlarmSource` asks by name only.
    #[error(
        "local alarm {name:?} is defined by both {first} and {second}: alarm names must be unique across services; rename one"
    )]
    Duplicate {
        /// The alarm.
        name: String,
        /// The first service defining it.
        first: ServiceName,
        /// The second.
        second: ServiceName,
    },
    /// A service watches an alarm that no local service defines.
    #[error(
        "service {service} watches alarm {name:?}, which is not defined: add [[services.{service}.local.alarms]] with name = {name:?}, or remove it from [services.{service}.alarms]"
    )]
    Undefined {
        /// The watching service.
        service: ServiceName,
        /// The alarm.
        name: String,
    },
}

/// Every local alarm of a configuration, evaluated on the proxies' metrics.
pub struct LocalAlarms {
    registry: Arc<ProxyRegistry>,
    clock: Arc<dyn Clock>,
    alarms: BTreeMap<String, (ServiceName, LocalAlarm)>,
}

impl std::fmt::Debug for LocalAlarms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAlarms")
            .field("alarms", &self.alarms.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalAlarms {
    /// The alarms of every local service in `config`. Refuses duplicate names and a
    /// local service watching an alarm that no service defines.
    pub fn new(
        config: &Config,
        registry: Arc<ProxyRegistry>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AlarmSetupError> {
        let mut alarms: BTreeMap<String, (ServiceName, LocalAlarm)> = BTreeMap::new();
        for spec in config.services.values() {
            let Some(TrafficTarget::Local(target)) = &spec.traffic else {
                continue;
            };
            for alarm in &target.alarms {
                if let Some((first, _)) = alarms.get(&alarm.name) {
                    return Err(AlarmSetupError::Duplicate {
                        name: alarm.name.clone(),
                        first: first.clone(),
                        second: spec.name.clone(),
                    });
                }
                alarms.insert(alarm.name.clone(), (spec.name.clone(), alarm.clone()));
            }
        }
        for spec in config.services.values() {
            if !matches!(spec.traffic, Some(TrafficTarget::Local(_))) {
                continue;
            }
            if let Some(name) = spec.alarms.names.iter().find(|n| !alarms.contains_key(*n)) {
                return Err(AlarmSetupError::Undefined {
                    service: spec.name.clone(),
                    name: name.clone(),
                });
            }
        }
        Ok(Self {
            registry,
            clock,
            alarms,
        })
    }

    /// The names of every alarm, in order.
    pub fn names(&self) -> Vec<String> {
        self.alarms.keys().cloned().collect()
    }

    /// Every alarm now in ALARM, with the reason (which carries the value).
    pub fn firing_now(&self) -> BTreeMap<String, String> {
        self.alarms
            .keys()
            .filter_map(|name| {
                self.evaluate(name)
                    .ok()
                    .flatten()
                    .map(|why| (name.clone(), why))
            })
            .collect()
    }

    /// One alarm's state: `Some(reason)` in ALARM, `None` when OK.
    pub fn evaluate(&self, name: &str) -> Result<Option<String>, PortError> {
        let (service, alarm) = self.alarms.get(name).ok_or_else(|| {
            PortError::permanent(format!(
                "alarm {name:?} is not a local alarm: define it under [[services.<service>.local.alarms]]"
            ))
        })?;
        let proxy = self.registry.get(service).ok_or_else(|| {
            PortError::transient(format!(
                "the proxy of service {service} is not running, so alarm {name} cannot be evaluated"
            ))
        })?;
        let check = &alarm.check;
        let now = self.clock.now();
        let start = now.minus(check.window);
        for slot in [Slot::Blue, Slot::Green] {
            let metrics = proxy.metrics(slot, start, now);
            if metrics.requests < check.min_requests {
                continue;
            }
            let Some(value) = metrics.value(check.metric) else {
                continue;
            };
            let over = check
                .max
                .filter(|max| value > *max)
                .map(|max| ("above", max));
            let under = check
                .min
                .filter(|min| value < *min)
                .map(|min| ("below", min));
            if let Some((side, threshold)) = over.or(under) {
                return Ok(Some(format!(
                    "{slot} {} {} is {side} {} over {} ({} requests)",
                    check.metric.as_str(),
                    shown(check.metric, value),
                    shown(check.metric, threshold),
                    format_duration(check.window),
                    metrics.requests
                )));
            }
        }
        Ok(None)
    }
}

/// A metric's value with its unit.
fn shown(metric: MetricKind, value: f64) -> String {
    match metric {
        MetricKind::ErrorRate => format!("{value:.1}%"),
        MetricKind::LatencyP95 | MetricKind::LatencyP99 => format!("{value:.1} ms"),
        MetricKind::RequestCount => format!("{value:.0}"),
    }
}

impl AlarmSource for LocalAlarms {
    fn firing<'a>(&'a self, names: &'a [String]) -> BoxFuture<'a, Result<AlarmReport, PortError>> {
        Box::pin(async move {
            let mut report = AlarmReport::default();
            for name in names {
                if let Some(why) = self.evaluate(name)? {
                    report.firing.insert(name.clone(), why);
                }
            }
            Ok(report)
        })
    }
}
