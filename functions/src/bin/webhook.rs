//! `ripcord-webhook`: CI's `POST /deployments` on a Function URL.

use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use ripcord_api::error::ApiError;
use ripcord_api::webhook::{Webhook, new_deployment_id};
use ripcord_aws::Secrets;
use ripcord_core::ports::Clock;
use ripcord_functions::host::{self, AwsHost, SystemClock};

/// The setting holding the webhook's HMAC secret (or, with `_PARAM`, the name of the
/// SSM SecureString parameter that holds it).
const SECRET: &str = "RIPCORD_WEBHOOK_SECRET";

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let host = AwsHost::from_env().await.map_err(|e| format!("{e:#}"))?;
    let wake_ups = host.wake_ups_from_env().map_err(|e| format!("{e:#}"))?;
    // Resolved on the first request and cached for the container's life.
    let secrets = Secrets::new(aws_sdk_ssm::Client::new(&host.sdk));
    let (host, wake_ups, secrets) = (&host, &wake_ups, &secrets);
    lambda_http::run(service_fn(move |request: Request| async move {
        let deadline = host::deadline(&request.lambda_context());
        let response = match secrets.resolve(SECRET).await {
            Ok(secret) => {
                let webhook = Webhook {
                    driver: host.driver(),
                    secret: secret.expose().as_bytes(),
                    new_id: &|| new_deployment_id(SystemClock.now()),
                };
                let (parts, body) = request.into_parts();
                let request = http::Request::from_parts(parts, body.to_vec());
                ripcord_functions::webhook::handle(
                    &webhook,
                    &host.controller(wake_ups, 1),
                    request,
                    deadline,
                )
                .await
            }
            Err(e) => {
                // The message names the setting and the parameter, never the value.
                tracing::error!("{}", e.message);
                ApiError::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "misconfigured",
                    "the webhook's secret could not be read; the function's log says why",
                )
                .into_response()
            }
        };
        let (parts, body) = response.into_parts();
        Ok::<_, lambda_http::Error>(Response::from_parts(parts, Body::from(body)))
    }))
    .await
}
