//! `SchedulerWakeUps`: the `WakeUps` port on EventBridge Scheduler.
//!
//! Each deployment that waits on time has one one-time schedule, named after its id, in
//! Ripcord's schedule group. It invokes the controller function with
//! `{"deployment_id": "..."}` at the second the deployment is due and then deletes
//! itself (`ActionAfterCompletion` `DELETE`). Booking again updates the schedule in
//! place; cancelling deletes it. The per-minute schedule stays as the backstop, so a
//! wake-up that could not be booked delays a deployment by a minute at most.

use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, Target,
};
use ripcord_core::domain::DeploymentId;
use ripcord_core::ports::{BoxFuture, PortError, WakeUps};
use ripcord_core::time::Timestamp;

use crate::errors::port_error;

/// The longest schedule name EventBridge Scheduler accepts.
const MAX_NAME: usize = 64;

/// Every schedule name starts with this, so that a person can tell Ripcord's apart.
const PREFIX: &str = "ripcord-";

/// Where the wake-ups go: the schedule group, the controller function they invoke and
/// the role the scheduler assumes to invoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeUpTarget {
    /// The schedule group (`RIPCORD_SCHEDULE_GROUP`).
    pub group: String,
    /// The controller function's ARN (`RIPCORD_CONTROLLER_ARN`).
    pub controller_arn: String,
    /// The role EventBridge Scheduler assumes (`RIPCORD_SCHEDULER_ROLE_ARN`).
    pub role_arn: String,
}

/// One-time EventBridge Scheduler schedules that invoke the controller for one
/// deployment when it is next due.
#[derive(Debug, Clone)]
pub struct SchedulerWakeUps {
    client: Client,
    target: WakeUpTarget,
}

impl SchedulerWakeUps {
    /// Wake-ups booked with `client` for `target`.
    pub fn new(client: Client, target: WakeUpTarget) -> Self {
        Self { client, target }
    }

    /// Where the wake-ups go.
    pub fn target(&self) -> &WakeUpTarget {
        &self.target
    }

    async fn update(&self, name: &str, at: Timestamp, input: &str) -> Result<(), Outcome> {
        let result = self
            .client
            .update_schedule()
            .name(name)
            .group_name(&self.target.group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(exact())
            .target(self.invoke(input)?)
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Err(Outcome::Missing)
            }
            Err(e) => Err(Outcome::Failed(port_error(
                &format!(
                    "Scheduler UpdateSchedule {name} in group {}",
                    self.target.group
                ),
                &e,
            ))),
        }
    }

    async fn create(&self, name: &str, at: Timestamp, input: &str) -> Result<(), Outcome> {
        let result = self
            .client
            .create_schedule()
            .name(name)
            .group_name(&self.target.group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(exact())
            .target(self.invoke(input)?)
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Err(Outcome::Exists)
            }
            Err(e) => Err(Outcome::Failed(port_error(
                &format!(
                    "Scheduler CreateSchedule {name} in group {}",
                    self.target.group
                ),
                &e,
            ))),
        }
    }

    /// The controller as the schedule's target, with the deployment's id as input.
    fn invoke(&self, input: &str) -> Result<Target, Outcome> {
        Target::builder()
            .arn(&self.target.controller_arn)
            .role_arn(&self.target.role_arn)
            .input(input)
            // A late wake-up is worth little: the per-minute pass covers a lost one.
            .retry_policy(
                RetryPolicy::builder()
                    .maximum_event_age_in_seconds(120)
                    .maximum_retry_attempts(2)
                    .build(),
            )
            .build()
            .map_err(|e| Outcome::Failed(PortError::permanent(format!("building a wake-up: {e}"))))
    }
}

/// Why one scheduler call did not book the wake-up.
enum Outcome {
    /// No schedule of that name (it has fired and deleted itself, or was never made).
    Missing,
    /// A schedule of that name exists (another pass booked it first).
    Exists,
    /// Anything else.
    Failed(PortError),
}

impl Outcome {
    fn into_error(self, name: &str) -> PortError {
        match self {
            Outcome::Failed(e) => e,
            Outcome::Missing | Outcome::Exists => PortError::transient(format!(
                "wake-up {name} was created and deleted by other passes meanwhile; the next pass books it again"
            )),
        }
    }
}

impl WakeUps for SchedulerWakeUps {
    fn book<'a>(
        &'a self,
        id: &'a DeploymentId,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let name = schedule_name(id);
            let input = serde_json::json!({ "deployment_id": id.as_str() }).to_string();
            // Most bookings follow a wake-up that deleted its schedule, so creating is
            // tried first; a schedule still waiting is updated in place.
            match self.create(&name, at, &input).await {
                Ok(()) => Ok(()),
                Err(Outcome::Exists) => self
                    .update(&name, at, &input)
                    .await
                    .map_err(|o| o.into_error(&name)),
                Err(other) => Err(other.into_error(&name)),
            }
        })
    }

    fn cancel<'a>(&'a self, id: &'a DeploymentId) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            let name = schedule_name(id);
            let result = self
                .client
                .delete_schedule()
                .name(&name)
                .group_name(&self.target.group)
                .send()
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(port_error(
                    &format!(
                        "Scheduler DeleteSchedule {name} in group {}",
                        self.target.group
                    ),
                    &e,
                )),
            }
        })
    }
}

/// No flexible window: the deployment is due at that second, not within minutes of it.
fn exact() -> FlexibleTimeWindow {
    FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .expect("the mode is set")
}

/// The schedule of a deployment: `ripcord-<id>` when the id is made only of the
/// characters a schedule name allows and fits; otherwise the id's allowed characters
/// (others replaced by `-`) cut short, then a hash of the whole id, so that two ids
/// never share a schedule.
pub fn schedule_name(id: &DeploymentId) -> String {
    let id = id.as_str();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if PREFIX.len() + id.len() <= MAX_NAME && id.chars().all(allowed) {
        return format!("{PREFIX}{id}");
    }
    let hash = format!("{:016x}", fnv1a(id.as_bytes()));
    let room = MAX_NAME - PREFIX.len() - 1 - hash.len();
    let readable: String = id
        .chars()
        .take(room)
        .map(|c| if allowed(c) { c } else { '-' })
        .collect();
    format!("{PREFIX}{readable}-{hash}")
}

/// The one-time schedule expression for `at`, in UTC, rounded up to the next whole
/// second (a wake-up a little late finds the deployment due; one early would not).
pub fn at_expression(at: Timestamp) -> String {
    let millis = at.as_millis();
    let second = Timestamp::from_millis(
        millis.div_euclid(1000) * 1000 + if millis % 1000 == 0 { 0 } else { 1000 },
    );
    let text = second.to_rfc3339();
    format!("at({})", text.trim_end_matches('Z'))
}

/// 64-bit FNV-1a: a stable hash that needs no dependency, for schedule names only.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_id_names_its_schedule_and_others_get_a_hash() {
        let plain = DeploymentId::new("web-20261126T0930-ab12").unwrap();
        assert_eq!(schedule_name(&plain), "ripcord-web-20261126T0930-ab12");

        let odd = DeploymentId::new("web/2026:ab").unwrap();
        let odd_name = schedule_name(&odd);
        assert!(odd_name.starts_with("ripcord-web-2026-ab-"), "{odd_name}");
        let similar = DeploymentId::new("web:2026/ab").unwrap();
        assert_ne!(schedule_name(&similar), odd_name, "ids never share a name");

        let long = DeploymentId::new("x".repeat(128)).unwrap();
        let long_name = schedule_name(&long);
        assert_eq!(long_name.len(), MAX_NAME);
        for name in [odd_name, long_name] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{name}"
            );
        }
    }

    #[test]
    fn the_expression_is_utc_and_rounds_up_to_the_second() {
        let at = Timestamp::parse_rfc3339("2026-11-26T09:30:05Z").unwrap();
        assert_eq!(at_expression(at), "at(2026-11-26T09:30:05)");
        assert_eq!(
            at_expression(Timestamp::from_millis(at.as_millis() + 1)),
            "at(2026-11-26T09:30:06)"
        );
        assert_eq!(
            at_expression(Timestamp::from_millis(at.as_millis() + 999)),
            "at(2026-11-26T09:30:06)"
        );
    }
}
