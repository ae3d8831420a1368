//! The webhook function: the CI contract of `ripcord_api::webhook`, then the new
//! deployment's first pass at once, before answering.
//!
//! Running the first pass in the request (rather than waiting for the per-minute
//! schedule, or invoking the controller) means that CI's 202 comes back with the first
//! step already applied or its failure recorded, and that nothing else has to carry
//! the deployment from creation to its first step. The pass is bounded by
//! [`FIRST_PASS_BUDGET`]; whatever it leaves undone, the wake-up it books (or the
//! per-minute pass) picks up.

use std::time::Duration;

use http::{Request, Response};
use ripcord_api::webhook::{self, Webhook};
use ripcord_core::time::Timestamp;

use crate::controller::{self, Controller};

/// The longest the first pass may keep CI waiting, short waits included.
pub const FIRST_PASS_BUDGET: Duration = Duration::from_secs(8);

/// Handles one request: the webhook's answer, after the first pass of the deployment
/// it created, if any. The answer does not depend on how the pass went: the
/// deployment exists, and its later passes report on it.
pub async fn handle(
    webhook: &Webhook<'_>,
    controller: &Controller<'_>,
    request: Request<Vec<u8>>,
    deadline: Timestamp,
) -> Response<String> {
    let outcome = webhook::handle(webhook, request).await;
    if let Some(id) = &outcome.created {
        let budget = controller.driver.clock.now().plus(FIRST_PASS_BUDGET);
        match controller::drive(controller, id, deadline.min(budget)).await {
            Ok(report) => {
                tracing::info!(
                    deployment = id.as_str(),
                    state = ?report.state,
                    transitions = report.transitions,
                    errors = ?report.errors,
                    "first pass"
                );
            }
            Err(e) => {
                tracing::warn!(
                    deployment = id.as_str(),
                    "first pass failed: {e}; the per-minute pass retries it"
                );
            }
        }
    }
    outcome.response
}
