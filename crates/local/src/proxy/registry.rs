//! The running proxies of every local service, keyed by service name, and the
//! engine's ports over them: `TrafficRouter` sets and reads a service's weights,
//! `MetricSource` reads a slot's metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ripcord_core::config::{ServiceSpec, TrafficTarget};
use ripcord_core::domain::{ServiceName, Slot, Weights};
use ripcord_core::observation::SlotMetrics;
use ripcord_core::ports::{BoxFuture, MetricSource, PortError, TrafficRouter};
use ripcord_core::time::Timestamp;

use super::{LocalProxy, ProxyError, ProxyOptions, ShutdownOutcome};

/// Every service's proxy. Each service gets its own listener, weights and metrics.
#[derive(Debug, Default)]
pub struct ProxyRegistry {
    proxies: RwLock<BTreeMap<ServiceName, Arc<LocalProxy>>>,
}

impl ProxyRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the proxy of a service with a `[local]` traffic target, serving
    /// `weights`, and keeps it under the service's name.
    pub fn start(
        &self,
        service: &ServiceSpec,
        weights: Weights,
        options: ProxyOptions,
    ) -> Result<Arc<LocalProxy>, ProxyError> {
        let Some(TrafficTarget::Local(target)) = &service.traffic else {
            return Err(ProxyError::NotLocal {
                service: service.name.clone(),
            });
        };
        // Checked before binding, so that a second start does not fail on the port
        // the first one holds.
        if self.get(&service.name).is_some() {
            return Err(ProxyError::AlreadyRunning {
                service: service.name.clone(),
            });
        }
        let proxy = Arc::new(LocalProxy::start(
            service.name.clone(),
            target,
            weights,
            options,
        )?);
        let mut proxies = self.write();
        if proxies.contains_key(&service.name) {
            // Another start for the same service won the race while this one was
            // binding; this proxy is dropped, which stops it.
            return Err(ProxyError::AlreadyRunning {
                service: service.name.clone(),
            });
        }
        proxies.insert(service.name.clone(), proxy.clone());
        Ok(proxy)
    }

    /// The proxy of a service, if one runs.
    pub fn get(&self, service: &ServiceName) -> Option<Arc<LocalProxy>> {
        self.read().get(service).cloned()
    }

    /// The services with a running proxy, in name order.
    pub fn services(&self) -> Vec<ServiceName> {
        self.read().keys().cloned().collect()
    }

    /// Removes a service's proxy and shuts it down, letting requests in flight finish
    /// for up to `grace`. `None` if none ran.
    pub async fn stop(&self, service: &ServiceName, grace: Duration) -> Option<ShutdownOutcome> {
        let proxy = self.write().remove(service)?;
        Some(proxy.shutdown(grace).await)
    }

    /// Shuts every proxy down, each with up to `grace` for its requests in flight.
    pub async fn shutdown_all(&self, grace: Duration) -> Vec<(ServiceName, ShutdownOutcome)> {
        let proxies: Vec<Arc<LocalProxy>> =
            std::mem::take(&mut *self.write()).into_values().collect();
        let mut outcomes = Vec::with_capacity(proxies.len());
        for proxy in proxies {
            let outcome = proxy.shutdown(grace).await;
            outcomes.push((proxy.service().clone(), outcome));
        }
        outcomes
    }

    /// The running proxy of a service, or the port error the engine reports.
    fn running(&self, service: &ServiceSpec) -> Result<Arc<LocalProxy>, PortError> {
        self.get(&service.name).ok_or_else(|| {
            PortError::permanent(format!(
                "no local proxy runs for service {}: start local mode (`ripcord up`) with a configuration that has [services.{}.local]",
                service.name, service.name
            ))
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ServiceName, Arc<LocalProxy>>> {
        // The map is only ever replaced whole or changed by one insert or remove, so
        // a panic elsewhere cannot leave it half-changed.
        self.proxies
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ServiceName, Arc<LocalProxy>>> {
        self.proxies
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TrafficRouter for ProxyRegistry {
    fn set_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
        weights: Weights,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.running(service)?.set_weights(weights);
            Ok(())
        })
    }

    fn read_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
    ) -> BoxFuture<'a, Result<Weights, PortError>> {
        Box::pin(async move { Ok(self.running(service)?.weights()) })
    }
}

impl MetricSource for ProxyRegistry {
    fn slot_metrics<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
        start: Timestamp,
        end: Timestamp,
    ) -> BoxFuture<'a, Result<SlotMetrics, PortError>> {
        Box::pin(async move { Ok(self.running(service)?.metrics(slot, start, end)) })
    }
}
