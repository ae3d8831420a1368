//! The alarm function: an EventBridge "CloudWatch Alarm State Change" event to ALARM
//! rolls back, at once, every active deployment that watches the alarm and did not
//! have it firing when it started.

use ripcord_core::driver::{Driver, DriverError, PassReport};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The fields of the event the function reads (the wire format, kept apart from the
/// domain).
#[derive(Debug, Deserialize)]
struct AlarmEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: AlarmDetail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlarmDetail {
    alarm_name: String,
    state: AlarmState,
}

#[derive(Debug, Deserialize)]
struct AlarmState {
    value: String,
    #[serde(default)]
    reason: String,
}

/// What an alarm invocation did.
#[derive(Debug, Serialize)]
pub struct AlarmOutput {
    /// The alarm.
    pub alarm: String,
    /// Its new state.
    pub state: String,
    /// One report per deployment that watches the alarm.
    pub passes: Vec<PassReport>,
}

/// Why an alarm event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    /// Not a CloudWatch Alarm State Change event; retrying will not help.
    #[error("not a CloudWatch Alarm State Change event: {0}")]
    BadEvent(String),
    /// The store failed; the invocation should be retried.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// Handles one alarm event. A change to any state but ALARM does nothing: clearing is
/// seen by the controller's next pass.
pub async fn handle(driver: &Driver<'_>, event: &Value) -> Result<AlarmOutput, AlarmError> {
    let event: AlarmEvent =
        serde_json::from_value(event.clone()).map_err(|e| AlarmError::BadEvent(e.to_string()))?;
    if event.detail_type != "CloudWatch Alarm State Change" {
        return Err(AlarmError::BadEvent(format!(
            "detail-type is {:?}",
            event.detail_type
        )));
    }
    let mut output = AlarmOutput {
        alarm: event.detail.alarm_name.clone(),
        state: event.detail.state.value.clone(),
        passes: Vec::new(),
    };
    if event.detail.state.value == "ALARM" {
        output.passes = driver
            .on_alarm(&event.detail.alarm_name, &event.detail.state.reason)
            .await?;
    }
    Ok(output)
}

impl AlarmError {
    /// Whether invoking again with the same event can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AlarmError::Driver(_))
    }
}

/// The error the Lambda runtime reports: its type says whether a retry can help.
impl From<AlarmError> for lambda_runtime::Diagnostic {
    fn from(error: AlarmError) -> Self {
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
