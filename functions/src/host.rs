//! What the function binaries share: their settings from the environment, the AWS
//! adapters built once per container, the system clock, a notifier that logs, and how
//! the Lambda runtime's deadline and timers reach the handlers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ripcord_aws::{AwsProviders, DynamoStore, PreviewSmoke, SchedulerWakeUps, WakeUpTarget};
use ripcord_core::driver::Driver;
use ripcord_core::engine::{Notification, NotificationKind};
use ripcord_core::ports::{BoxFuture, Clock, Notifier, PortError};
use ripcord_core::time::Timestamp;

use crate::controller::{Controller, DEFAULT_CONCURRENCY, Pause};

/// The setting naming the DynamoDB table.
pub const TABLE: &str = "RIPCORD_TABLE";
/// The setting naming the schedule group where wake-ups are booked.
pub const SCHEDULE_GROUP: &str = "RIPCORD_SCHEDULE_GROUP";
/// The setting holding the controller function's ARN, the wake-ups' target.
pub const CONTROLLER_ARN: &str = "RIPCORD_CONTROLLER_ARN";
/// The setting holding the ARN of the role EventBridge Scheduler assumes.
pub const SCHEDULER_ROLE_ARN: &str = "RIPCORD_SCHEDULER_ROLE_ARN";
/// The setting bounding how many deployments the controller passes over at once.
pub const CONCURRENCY: &str = "RIPCORD_CONTROLLER_CONCURRENCY";

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(millis)
    }
}

/// Writes each notification to the function's log, where CloudWatch Logs keeps it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let id = notification.deployment_id.as_str();
            let service = notification.service.as_str();
            match notification.kind {
                NotificationKind::Alert => {
                    tracing::warn!(deployment = id, service, "{}", notification.text);
                }
                NotificationKind::Progress | NotificationKind::Summary => {
                    tracing::info!(deployment = id, service, "{}", notification.text);
                }
            }
            Ok(())
        })
    }
}

/// Waits on the Tokio timer.
pub fn sleep(wait: Duration) -> BoxFuture<'static, ()> {
    Box::pin(tokio::time::sleep(wait))
}

/// The instant an invocation must have answered by, from the runtime's context.
pub fn deadline(context: &lambda_runtime::Context) -> Timestamp {
    Timestamp::from_millis(i64::try_from(context.deadline).unwrap_or(i64::MAX))
}

/// A required setting, or an error saying what to set.
pub fn required(name: &str, what: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => anyhow::bail!("{name} is not set: set it to {what}"),
    }
}

/// The controller's concurrency bound from `RIPCORD_CONTROLLER_CONCURRENCY`, or the
/// default.
pub fn concurrency() -> anyhow::Result<usize> {
    match std::env::var(CONCURRENCY) {
        Err(_) => Ok(DEFAULT_CONCURRENCY),
        Ok(text) => match text.parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => Ok(n),
            _ => anyhow::bail!("{CONCURRENCY} is {text:?}: set it to a whole number from 1 to 64"),
        },
    }
}

/// Everything a function builds once per container: the SDK configuration and the
/// adapters over it.
pub struct AwsHost {
    /// The SDK configuration every client is built from.
    pub sdk: aws_config::SdkConfig,
    /// The table.
    pub store: DynamoStore,
    /// The ALB, CloudWatch and smoke adapters.
    pub providers: AwsProviders,
}

impl AwsHost {
    /// Builds the adapters from the environment; fails with what to set when a
    /// setting is missing.
    pub async fn from_env() -> anyhow::Result<Self> {
        let table = required(TABLE, "the DynamoDB table (the stack's TableName output)")?;
        let sdk = ripcord_aws::sdk_config().await;
        Ok(Self {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table),
            // Smoke checks go to each service's preview URL, through its preview
            // listener pointed at the new slot.
            providers: AwsProviders::new(&sdk, Box::new(PreviewSmoke::from_config(&sdk))),
            sdk,
        })
    }

    /// The wake-ups, from `RIPCORD_SCHEDULE_GROUP`, `RIPCORD_CONTROLLER_ARN` and
    /// `RIPCORD_SCHEDULER_ROLE_ARN`.
    pub fn wake_ups_from_env(&self) -> anyhow::Result<SchedulerWakeUps> {
        let target = WakeUpTarget {
            group: required(
                SCHEDULE_GROUP,
                "the EventBridge Scheduler group for wake-ups",
            )?,
            controller_arn: required(CONTROLLER_ARN, "the controller function's ARN")?,
            role_arn: required(
                SCHEDULER_ROLE_ARN,
                "the ARN of the role EventBridge Scheduler assumes to invoke the controller",
            )?,
        };
        Ok(SchedulerWakeUps::new(
            aws_sdk_scheduler::Client::new(&self.sdk),
            target,
        ))
    }

    /// A driver over the adapters.
    pub fn driver(&self) -> Driver<'_> {
        Driver {
            providers: &self.providers,
            store: &self.store,
            notifier: &LogNotifier,
            clock: &SystemClock,
        }
    }

    /// The controller over the adapters, booking with `wake_ups`, waiting on the
    /// Tokio timer, passing over `concurrency` deployments at once.
    pub fn controller<'a>(
        &'a self,
        wake_ups: &'a SchedulerWakeUps,
        concurrency: usize,
    ) -> Controller<'a> {
        static SLEEP: &Pause<'static> = &sleep;
        Controller {
            driver: self.driver(),
            wake_ups,
            pause: SLEEP,
            concurrency,
        }
    }
}
