//! Local mode's providers, assembled in one place: the proxies route traffic and
//! measure it, the background probes report target health, the proxies' metrics feed
//! the local alarms, and smoke checks go straight to the upstreams.

use std::sync::Arc;

use ripcord_core::config::ServiceSpec;
use ripcord_core::driver::Providers;
use ripcord_core::ports::{
    AlarmSource, Clock, MetricSource, SmokeRunner, TargetHealth, TrafficRouter,
};
use ripcord_core::time::Timestamp;

use crate::alarms::LocalAlarms;
use crate::health::LocalHealth;
use crate::proxy::ProxyRegistry;
use crate::smoke::LocalSmoke;

/// Every adapter a pass needs for local services.
#[derive(Debug)]
pub struct LocalProviders {
    /// The proxies: weights and metrics.
    pub proxies: Arc<ProxyRegistry>,
    /// The upstreams' health.
    pub health: LocalHealth,
    /// The local alarms.
    pub alarms: LocalAlarms,
    /// The smoke runner.
    pub smoke: LocalSmoke,
}

impl Providers for LocalProviders {
    fn router(&self, _service: &ServiceSpec) -> &dyn TrafficRouter {
        self.proxies.as_ref()
    }
    fn health(&self, _service: &ServiceSpec) -> &dyn TargetHealth {
        &self.health
    }
    fn alarms(&self, _service: &ServiceSpec) -> &dyn AlarmSource {
        &self.alarms
    }
    fn metrics(&self, _service: &ServiceSpec) -> &dyn MetricSource {
        self.proxies.as_ref()
    }
    fn smoke(&self, _service: &ServiceSpec) -> &dyn SmokeRunner {
        &self.smoke
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        Timestamp::from_millis(millis)
    }
}
