//! Ripcord's AWS adapters: the core's ports implemented on the official AWS SDK.
//!
//! Every client is built from one `aws_config::SdkConfig` made by [`sdk_config`], so
//! the SDK's standard settings apply (credentials, region, and endpoints from
//! `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, which is how tests point
//! everything at a local emulator), together with Ripcord's timeouts and retries.
//!
//! `dynamo` holds the store and `flag_store` the flag store on the same table; `errors` turns any SDK client's failure into the core's
//! `PortError`, which every adapter shares.

pub mod dynamo;
pub mod errors;
pub mod flag_store;

pub use dynamo::DynamoStore;
pub use flag_store::DynamoFlagStore;
pub mod providers;
pub use providers::{AwsProviders, SmokeChecksElsewhere};

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

pub mod cloudwatch;
pub mod elb;
pub mod scheduler;
pub mod secrets;
pub mod smoke;

pub use cloudwatch::{CloudWatchAlarms, CloudWatchMetrics};
pub use elb::AlbRouter;
pub use scheduler::{SchedulerWakeUps, WakeUpTarget};
pub use secrets::{Secret, Secrets};
pub use smoke::PreviewSmoke;

/// How long one attempt of an AWS call may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an AWS call may take, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// Attempts per call: throttling, timeouts and 5xx answers are retried with
/// exponential backoff and full jitter (the SDK's standard retry mode).
pub const MAX_ATTEMPTS: u32 = 4;

/// Loads the SDK configuration from the environment, with Ripcord's timeouts and
/// retries on every call.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(50)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .connect_timeout(Duration::from_secs(1))
                .build(),
        )
        .load()
        .await
}
