//! `ripcord-controller`: the per-minute pass over every active deployment, and the
//! one-time wake-ups for one (`{"deployment_id": "..."}`).

use lambda_runtime::{LambdaEvent, service_fn};
use ripcord_functions::controller::{self, ControllerError, ControllerOutput};
use ripcord_functions::host::{self, AwsHost};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let host = AwsHost::from_env().await.map_err(|e| format!("{e:#}"))?;
    let wake_ups = host.wake_ups_from_env().map_err(|e| format!("{e:#}"))?;
    let concurrency = host::concurrency().map_err(|e| format!("{e:#}"))?;
    let (host, wake_ups) = (&host, &wake_ups);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = host::deadline(&event.context);
        let output: Result<ControllerOutput, ControllerError> = controller::handle(
            &host.controller(wake_ups, concurrency),
            &event.payload,
            deadline,
        )
        .await;
        if let Err(e) = &output {
            tracing::error!("{e}");
        }
        output
    }))
    .await
}
