//! Local mode's one control port: it hosts the handlers written in `ripcord-api`
//! (the CI webhook, the JSON API with its flags part, and OFREP flag evaluation),
//! Discord's interactions (`ripcord-bot`) and the dashboard, over hyper. A write
//! through the flags API makes OFREP read the store again at its next request, so a
//! change is served at once.
//!
//! Routes are matched in `route`, one block each.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ripcord_api::control::{self, ControlApi};
use ripcord_api::error::ApiError;
use ripcord_api::flags_api::{self, FlagsApi};
use ripcord_api::webhook::{self, MAX_BODY, Webhook};
use ripcord_core::history::Actor;
use ripcord_core::ports::Clock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::debug;

use crate::dashboard;
use crate::discord::{self, INTERACTIONS_PATH};
use crate::runtime::Shared;

/// How long a connection may take to finish its request at shutdown.
const CONNECTION_GRACE: Duration = Duration::from_secs(2);

/// Accepts connections until `stopped` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, request).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        debug!(%error, "control connection ended with an error");
                    }
                }
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CONNECTION_GRACE, connection).await;
                }
            }
        });
    }
}

async fn respond(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // One byte over the webhook's limit is enough to know it is too large.
    let body = match Limited::new(body, MAX_BODY + 1).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(error) => {
            let too_large = error.is::<http_body_util::LengthLimitError>();
            let error = if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body is over {MAX_BODY} bytes, the limit"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    format!("the request body could not be read: {error}"),
                )
            };
            return into_full(error.into_response());
        }
    };
    into_full(route(shared, Request::from_parts(parts, body)).await)
}

async fn route(shared: &Arc<Shared>, request: Request<Vec<u8>>) -> Response<String> {
    let path = request.uri().path().to_string();
    if path == INTERACTIONS_PATH {
        return discord::handle(shared, request).await;
    }
    if path == "/deployments" {
        let new_id = || shared.new_id();
        let hook = Webhook {
            driver: shared.driver(),
            secret: &shared.webhook_secret,
            new_id: &new_id,
        };
        let outcome = webhook::handle(&hook, request).await;
        if outcome.created.is_some() {
            shared.wake.notify_one();
        }
        return outcome.response;
    }
    if path.starts_with("/ofrep/") {
        return shared.ofrep.handle(request, shared.clock.now()).await;
    }
    if flags_api::is_flags_path(&path) {
        let write = flags_api::is_write(&request);
        let api = FlagsApi {
            store: &*shared.store,
            token: &shared.token,
            actor: Actor::Cli {
                user: "local".to_string(),
            },
            now: shared.clock.now(),
        };
        let response = flags_api::handle(&api, request).await;
        if write && response.status().is_success() {
            shared.ofrep.invalidate();
        }
        return response;
    }
    if control::is_api_path(&path) {
        let new_id = || shared.new_id();
        let api = ControlApi {
            driver: shared.driver(),
            config: &shared.config,
            token: &shared.token,
            new_id: &new_id,
        };
        let response = control::handle(&api, request).await;
        shared.wake.notify_one();
        return response;
    }
    if let Some(page) = dashboard::route(shared, &request).await {
        return page;
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "nothing at {path}: this port serves POST /deployments (the webhook), /api/ (the JSON API), POST /ofrep/v1/evaluate/flags[/{{key}}] (OFREP), POST {INTERACTIONS_PATH} (Discord) and / (the dashboard)"
        ),
    )
    .into_response()
}

fn into_full(response: Response<String>) -> Response<Full<Bytes>> {
    response.map(|body| Full::new(Bytes::from(body)))
}
