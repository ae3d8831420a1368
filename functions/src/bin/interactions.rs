//! `ripcord-interactions`: Discord's interactions endpoint on a Function URL.

use lambda_http::{Body, Request, Response, service_fn};
use ripcord_api::error::ApiError;
use ripcord_aws::{DynamoFlagStore, Secrets};
use ripcord_bot::Interactions;
use ripcord_bot::interactions::DEFAULT_BUDGET;
use ripcord_functions::host::{AwsHost, TABLE, required};
use ripcord_functions::interactions::{self, Discord};
use tokio::sync::OnceCell;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    // Built once and kept for the container's life: a deferred answer's remaining work
    // runs on after its invocation returned, and borrows them.
    let host: &'static AwsHost = Box::leak(Box::new(
        AwsHost::from_env().await.map_err(|e| format!("{e:#}"))?,
    ));
    let flags: &'static DynamoFlagStore = Box::leak(Box::new(DynamoFlagStore::new(
        aws_sdk_dynamodb::Client::new(&host.sdk),
        required(TABLE, "the DynamoDB table (the stack's TableName output)")
            .map_err(|e| format!("{e:#}"))?,
    )));
    let secrets: &'static Secrets =
        Box::leak(Box::new(Secrets::new(aws_sdk_ssm::Client::new(&host.sdk))));
    // Discord's settings are resolved on the first request.
    let discord: &'static OnceCell<Discord> = Box::leak(Box::new(OnceCell::new()));
    let bot: &'static OnceCell<Interactions<'static>> = Box::leak(Box::new(OnceCell::new()));
    lambda_http::run(service_fn(move |request: Request| async move {
        let ready = bot
            .get_or_try_init(|| async {
                let discord = discord
                    .get_or_try_init(|| Discord::resolve(secrets))
                    .await?;
                Ok::<_, String>(Interactions {
                    driver: host.driver(),
                    verifier: &discord.verifier,
                    rest: &discord.rest,
                    flags: Some(flags),
                    budget: DEFAULT_BUDGET,
                })
            })
            .await;
        let response = match ready {
            Ok(bot) => {
                let (parts, body) = request.into_parts();
                interactions::handle(bot, http::Request::from_parts(parts, body.to_vec())).await
            }
            Err(message) => {
                // The message names the setting, never its value.
                tracing::error!("{message}");
                ApiError::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "misconfigured",
                    "the Discord settings could not be read; the function's log says why",
                )
                .into_response()
            }
        };
        let (parts, body) = response.into_parts();
        Ok::<_, lambda_http::Error>(Response::from_parts(parts, Body::from(body)))
    }))
    .await
}
