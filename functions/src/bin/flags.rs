//! `ripcord-flags`: OFREP flag evaluation (`POST /ofrep/v1/evaluate/flags[/{key}]`) on
//! a Function URL.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use lambda_http::{Body, Request, Response, service_fn};
use ripcord_api::ofrep::{DEFAULT_REFRESH, Ofrep};
use ripcord_aws::DynamoFlagStore;
use ripcord_core::ports::Clock;
use ripcord_functions::host::{self, SystemClock};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let table = host::required(
        host::TABLE,
        "the DynamoDB table (the stack's TableName output)",
    )
    .map_err(|e| format!("{e:#}"))?;
    let sdk = ripcord_aws::sdk_config().await;
    let store = DynamoFlagStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    // Random rollouts draw from a seed the operating system's randomness starts.
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    // The flags and keys are cached for the container's life, read again every
    // DEFAULT_REFRESH.
    let ofrep = Ofrep::new(Arc::new(store), DEFAULT_REFRESH, seed);
    let ofrep = &ofrep;
    lambda_http::run(service_fn(move |request: Request| async move {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, body.to_vec());
        let response = ofrep.handle(request, SystemClock.now()).await;
        let (parts, body) = response.into_parts();
        Ok::<_, lambda_http::Error>(Response::from_parts(parts, Body::from(body)))
    }))
    .await
}
