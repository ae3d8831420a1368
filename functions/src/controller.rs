//! The controller: one reconcile pass over every active deployment (the per-minute
//! EventBridge schedule), or over one (`{"deployment_id": "..."}`, as the webhook and
//! the one-time wake-ups invoke it).

use ripcord_core::domain::DeploymentId;
use ripcord_core::driver::{Driver, DriverError, PassReport};
use serde::Serialize;
use serde_json::Value;

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
/// "Scheduled Event" (or any event without a deployment id) for all of them.
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

/// Handles one controller invocation.
pub async fn handle(
    driver: &Driver<'_>,
    event: &Value,
) -> Result<ControllerOutput, ControllerError> {
    let mut output = ControllerOutput {
        passes: Vec::new(),
        failed: Vec::new(),
    };
    match parse_event(event)? {
        ControllerEvent::One(id) => output.passes.push(driver.reconcile(&id).await?),
        ControllerEvent::All => {
            for result in driver.reconcile_all().await? {
                match result {
                    Ok(report) => output.passes.push(report),
                    Err(e) => output.failed.push(e.to_string()),
                }
            }
        }
    }
    Ok(output)
}
