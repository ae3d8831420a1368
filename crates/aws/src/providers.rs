//! The providers of a service behind an ALB, assembled in one place: ALB weights and
//! target health, CloudWatch alarms and metrics, and a smoke runner chosen by the host.

use ripcord_core::config::ServiceSpec;
use ripcord_core::domain::Slot;
use ripcord_core::driver::Providers;
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
}

impl AwsProviders {
    /// Builds the providers from one SDK configuration, with the host's smoke runner.
    pub fn new(config: &aws_config::SdkConfig, smoke: Box<dyn SmokeRunner>) -> Self {
        Self {
            router: AlbRouter::new(aws_sdk_elasticloadbalancingv2::Client::new(config)),
            alarms: CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(config)),
            metrics: CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(config)),
            smoke,
        }
    }
}

impl Providers for AwsProviders {
    fn router(&self, _service: &ServiceSpec) -> &dyn TrafficRouter {
        &self.router
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
