//! The providers of a service behind an ALB, assembled in one place: ALB weights and
//! target health, CloudWatch alarms and metrics, and a smoke runner chosen by the host.
//! A `flag` service's router is the `FlagRouter` over the flag store, when the host
//! gives one ([`AwsProviders::with_flag_router`]).

use ripcord_core::config::{Ramp, ServiceSpec};
use ripcord_core::domain::Slot;
use ripcord_core::domain::Weights;
use ripcord_core::driver::Providers;
use ripcord_core::flag_ramp::FlagRouter;
use ripcord_core::observation::SmokeReport;
use ripcord_core::ports::{
    AlarmSource, BoxFuture, MetricSource, PortError, SmokeRunner, TargetHealth, TrafficRouter,
};

use crate::{AlbRouter, CloudWatchAlarms, CloudWatchMetrics};

/// Every adapter a pass needs for services behind an ALB.
pub struct AwsProviders {
    router: AlbRouter,
    alarms: CloudWatchAlarms,
    metrics: CloudWatchMetrics,
    smoke: Box<dyn SmokeRunner>,
    flags: Option<FlagRouter>,
}

impl AwsProviders {
    /// Builds the providers from one SDK configuration, with the host's smoke runner.
    pub fn new(config: &aws_config::SdkConfig, smoke: Box<dyn SmokeRunner>) -> Self {
        Self {
            router: AlbRouter::new(aws_sdk_elasticloadbalancingv2::Client::new(config)),
            alarms: CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(config)),
            metrics: CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(config)),
            smoke,
            flags: None,
        }
    }

    /// Routes `flag` services through `flags`, which ramps their flag's rollout.
    pub fn with_flag_router(mut self, flags: FlagRouter) -> Self {
        self.flags = Some(flags);
        self
    }
}

/// The router of `flag` services on a host that was given no flag store: every call
/// fails, saying so, rather than touching an ALB.
struct NoFlagStore;

impl TrafficRouter for NoFlagStore {
    fn set_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
        _weights: Weights,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move { Err(no_flag_store(service)) })
    }

    fn read_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
    ) -> BoxFuture<'a, Result<Weights, PortError>> {
        Box::pin(async move { Err(no_flag_store(service)) })
    }
}

fn no_flag_store(service: &ServiceSpec) -> PortError {
    PortError::permanent(format!(
        "service {} ramps a feature flag, but this host was started without the flag store; this is a bug in how the host builds AwsProviders",
        service.name
    ))
}

impl Providers for AwsProviders {
    fn router(&self, service: &ServiceSpec) -> &dyn TrafficRouter {
        match (&service.plan.ramp, &self.flags) {
            (Ramp::Traffic, _) => &self.router,
            (Ramp::Flag(_), Some(flags)) => flags,
            (Ramp::Flag(_), None) => &NoFlagStore,
        }
    }
    fn health(&self, _service: &ServiceSpec) -> &dyn TargetHealth {
        &self.router
    }
    fn alarms(&self, _service: &ServiceSpec) -> &dyn AlarmSource {
        &self.alarms
    }
    fn metrics(&self, _service: &ServiceSpec) -> &dyn MetricSource {
        &self.metrics
    }
    fn smoke(&self, _service: &ServiceSpec) -> &dyn SmokeRunner {
        self.smoke.as_ref()
    }
}

/// For hosts that do not run smoke checks (the command line): every run is refused
/// with an explanation, so a pass there never treats a smoke gate as passed. The
/// controller function runs them.
pub struct SmokeChecksElsewhere;

impl SmokeRunner for SmokeChecksElsewhere {
    fn run<'a>(
        &'a self,
        service: &'a ServiceSpec,
        _slot: Slot,
    ) -> BoxFuture<'a, Result<SmokeReport, PortError>> {
        Box::pin(async move {
            Err(PortError::permanent(format!(
                "smoke checks of {} run in the controller function, not here; its next pass runs them",
                service.name
            )))
        })
    }
}
