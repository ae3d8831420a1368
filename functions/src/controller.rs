//! The controller: one reconcile pass over every active deployment (the per-minute
//! EventBridge schedule), or over one (`{"deployment_id": "..."}`, as its one-time
//! wake-ups invoke it).
//!
//! After each deployment's pass it books the deployment's next wake-up at the time the
//! pass says it is due, or removes it when nothing is due (a terminal state, or a
//! deployment that waits on people). A wake-up due within [`SHORT_WAIT`] is not
//! booked: the controller waits in place and passes again, so a plan with no pauses
//! runs through in one invocation, as long as the invocation's time allows.

use std::time::Duration;

use futures_util::{StreamExt, stream};
use ripcord_core::domain::DeploymentId;
use ripcord_core::driver::{Driver, DriverError, PassReport};
use ripcord_core::ports::{BoxFuture, WakeUps};
use ripcord_core::time::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// A deployment due within this long is passed over again in the same invocation
/// rather than booked: a one-time schedule costs more than the wait.
pub const SHORT_WAIT: Duration = Duration::from_secs(2);

/// Time kept free before the invocation's deadline, for booking the wake-up and
/// answering.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// A wake-up is booked at least this far ahead, so that it is never in the past by
/// the time the scheduler reads it.
pub const MIN_BOOKING: Duration = Duration::from_secs(1);

/// Passes over one deployment in one invocation, at most (each waiting at most
/// [`SHORT_WAIT`]), so that a deployment that is always due cannot hold the function.
pub const MAX_PASSES: u32 = 30;

/// How many deployments are passed over at once when no bound is configured.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Waits for a while, in whatever way the host waits (a timer in the functions; a
/// manual clock moved forward in tests).
pub type Pause<'a> = dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'a;

/// What the controller needs besides the event.
pub struct Controller<'a> {
    /// The driver over the store and providers.
    pub driver: Driver<'a>,
    /// Where the next passes are booked.
    pub wake_ups: &'a dyn WakeUps,
    /// How the host waits for a short wake-up.
    pub pause: &'a Pause<'a>,
    /// How many deployments are passed over at once (at least 1).
    pub concurrency: usize,
}

/// What the controller was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerEvent {
    /// A pass over every active deployment.
    All,
    /// A pass over one deployment.
    One(DeploymentId),
}

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The event is neither a scheduled event nor `{"deployment_id": ...}`. Retrying it
    /// will not help.
    #[error("unrecognised controller event: {0}")]
    BadEvent(String),
    /// The store failed; the invocation should be retried.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// Reads the event: `{"deployment_id": "..."}` for one deployment, an EventBridge
/// "Scheduled Event" for all of them.
pub fn parse_event(event: &Value) -> Result<ControllerEvent, ControllerError> {
    match event.get("deployment_id") {
        Some(Value::String(id)) => DeploymentId::new(id.clone())
            .map(ControllerEvent::One)
            .map_err(|e| ControllerError::BadEvent(e.to_string())),
        Some(other) => Err(ControllerError::BadEvent(format!(
            "deployment_id must be a string, found {other}"
        ))),
        None if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") => {
            Ok(ControllerEvent::All)
        }
        None => Err(ControllerError::BadEvent(
            "expected an EventBridge Scheduled Event or {\"deployment_id\": \"...\"}".to_string(),
        )),
    }
}

/// What one invocation did, as the function's result.
#[derive(Debug, Serialize)]
pub struct ControllerOutput {
    /// One report per deployment passed over.
    pub passes: Vec<PassReport>,
    /// Deployments whose pass failed, with why (they are retried on the next tick).
    pub failed: Vec<String>,
}

/// Handles one controller invocation, which must end by `deadline`.
pub async fn handle(
    controller: &Controller<'_>,
    event: &Value,
    deadline: Timestamp,
) -> Result<ControllerOutput, ControllerError> {
    let mut output = ControllerOutput {
        passes: Vec::new(),
        failed: Vec::new(),
    };
    match parse_event(event)? {
        ControllerEvent::One(id) => output.passes.push(drive(controller, &id, deadline).await?),
        ControllerEvent::All => {
            let active = controller
                .driver
                .store
                .active_deployments()
                .await
                .map_err(DriverError::from)?;
            let results: Vec<_> = stream::iter(active)
                .map(|deployment| async move {
                    drive(controller, &deployment.id, deadline)
                        .await
                        .map_err(|e| format!("{}: {e}", deployment.id))
                })
                .buffered(controller.concurrency.max(1))
                .collect()
                .await;
            for result in results {
                match result {
                    Ok(report) => output.passes.push(report),
                    Err(e) => output.failed.push(e),
                }
            }
        }
    }
    Ok(output)
}

/// Passes over one deployment until it is next due later than [`SHORT_WAIT`] from now
/// (or the invocation's time runs short), then books that wake-up, or removes the
/// deployment's wake-up when nothing is due. The report adds up every pass; a wake-up
/// that could not be booked is one of its errors (the per-minute pass covers it).
pub async fn drive(
    controller: &Controller<'_>,
    id: &DeploymentId,
    deadline: Timestamp,
) -> Result<PassReport, DriverError> {
    let clock = controller.driver.clock;
    let mut total: Option<PassReport> = None;
    for round in 1..=MAX_PASSES {
        let pass = controller.driver.reconcile(id).await?;
        let report = match total.take() {
            None => pass,
            Some(mut sum) => {
                sum.transitions += pass.transitions;
                sum.conflicts += pass.conflicts;
                sum.errors.extend(pass.errors);
                sum.state = pass.state;
                sum.wake_at = pass.wake_at;
                sum
            }
        };
        let now = clock.now();
        let wait = report.wake_at.map(|at| at.since(now));
        total = Some(report);
        match wait {
            Some(wait)
                if wait <= SHORT_WAIT
                    && round < MAX_PASSES
                    && now.plus(wait).plus(DEADLINE_MARGIN) <= deadline =>
            {
                if !wait.is_zero() {
                    (controller.pause)(wait).await;
                }
            }
            _ => break,
        }
    }
    let mut report = total.expect("at least one pass ran");
    let booked = match report.wake_at {
        Some(at) if !report.state.is_terminal() => {
            let earliest = clock.now().plus(MIN_BOOKING);
            controller.wake_ups.book(id, at.max(earliest)).await
        }
        _ => controller.wake_ups.cancel(id).await,
    };
    if let Err(e) = booked {
        report.errors.push(format!(
            "booking the next wake-up: {e}; the per-minute pass covers it"
        ));
    }
    Ok(report)
}

impl ControllerError {
    /// Whether invoking again with the same event can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ControllerError::Driver(_))
    }
}

/// The error the Lambda runtime reports: its type says whether a retry can help.
impl From<ControllerError> for lambda_runtime::Diagnostic {
    fn from(error: ControllerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: if error.is_retryable() {
                "Ripcord.Retryable"
            } else {
                "Ripcord.BadEvent"
            }
            .to_string(),
            error_message: error.to_string(),
        }
    }
}
