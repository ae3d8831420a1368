//! `ripcord-alarm`: a CloudWatch alarm going to ALARM rolls back, at once, every
//! active deployment that watches it.

use lambda_runtime::{LambdaEvent, service_fn};
use ripcord_functions::alarm::{self, AlarmError, AlarmOutput};
use ripcord_functions::host::AwsHost;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let host = AwsHost::from_env().await.map_err(|e| format!("{e:#}"))?;
    let host = &host;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let output: Result<AlarmOutput, AlarmError> =
            alarm::handle(&host.driver(), &event.payload).await;
        if let Err(e) = &output {
            tracing::error!("{e}");
        }
        output
    }))
    .await
}
