//! The JSON API that the command line (`--local URL`) and the dashboard use to read
//! and steer deployments, written against the core's ports:
//!
//! - `GET /api/status`: every configured service with its live slot, the weights its
//!   router serves and its active deployment, if any.
//! - `GET /api/deployments`: recent deployments, newest first (`?service=` filters).
//! - `GET /api/deployments/{id}`: one deployment, its events and whether its hash
//!   chain holds.
//! - `GET /api/dora?days=N&service=S`: the DORA figures of the last N days (30 when
//!   not given), as `ripcord dora` computes them on the table.
//! - `POST /api/deployments` with `Authorization: Bearer <token>` and the webhook's
//!   JSON (`committed_at` optional) plus an optional `"delivery"` id: starts a
//!   deployment through the webhook's own path (same checks, same 404 and 409), runs
//!   its first pass at once and answers 202 `{"deployment_id", "deployment"}`; the same
//!   `delivery` again gets 200 with the same id.
//! - `POST /api/deployments/{id}/{promote|pause|resume|abort|rollback|approve|reject}`
//!   with `Authorization: Bearer <token>` and an optional JSON body
//!   `{"reason": "...", "user": "..."}`: queues the command as CLI user `user` (default
//!   `local`) and runs a pass at once, answering 202 with the state after it. `approve`
//!   and `reject` are for the step the deployment waits on, and get 409 when it waits
//!   on no approval. A missing or wrong token gets 401; a finished deployment 409;
//!   nothing is written on any 4xx.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use ripcord_core::config::Config;
use ripcord_core::deployment::{CommandKind, Deployment, PauseReason, State};
use ripcord_core::domain::{DeploymentId, ServiceName};
use ripcord_core::dora::{DoraReport, dora};
use ripcord_core::driver::Driver;
use ripcord_core::history::{Actor, verify_history};
use ripcord_core::ports::{Store, StoreError};
use ripcord_core::time::Timestamp;
use serde_json::{Value, json};

use crate::error::{ApiError, json_response};
use crate::webhook::{deploy_request, start_deployment};

/// The largest command body accepted.
const MAX_COMMAND_BODY: usize = 16 * 1024;

/// How far back `GET /api/deployments` looks.
const LIST_WINDOW: Duration = Duration::from_secs(90 * 86_400);

/// What the API needs besides the request.
pub struct ControlApi<'a> {
    /// The driver over the store and providers.
    pub driver: Driver<'a>,
    /// The configuration being run (for the list of services).
    pub config: &'a Config,
    /// The token that commands must carry.
    pub token: &'a str,
    /// Makes a new deployment id, as for the webhook.
    pub new_id: &'a (dyn Fn() -> DeploymentId + Send + Sync),
}

/// Whether a request is for this API (its path starts with `/api/`).
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/")
}

/// Handles one request under `/api/`.
pub async fn handle(api: &ControlApi<'_>, request: Request<Vec<u8>>) -> Response<String> {
    match route(api, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn route(
    api: &ControlApi<'_>,
    request: Request<Vec<u8>>,
) -> Result<Response<String>, ApiError> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
    let method = request.method().clone();
    match (method, parts.as_slice()) {
        (Method::GET, ["status"]) => status(api).await,
        (Method::GET, ["deployments"]) => list(api, &query).await,
        (Method::GET, ["dora"]) => dora_figures(api, &query).await,
        (Method::POST, ["deployments"]) => {
            authorize(api.token, &request)?;
            deploy(api, request.body()).await
        }
        (Method::GET, ["deployments", id]) => one(api, id).await,
        (Method::POST, ["deployments", id, command]) => {
            authorize(api.token, &request)?;
            let body = request.body();
            command_on(api, id, command, body).await
        }
        (_, ["status"] | ["deployments", _] | ["dora"]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("use GET {path}"),
        )),
        (_, ["deployments"]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("use GET {path} to list deployments, or POST {path} to start one"),
        )),
        (_, ["deployments", _, _]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("use POST {path}"),
        )),
        _ => Err(not_found(&path)),
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "nothing at {path}: the API serves /api/status, /api/deployments, /api/deployments/{{id}}[/{{command}}], /api/dora, /api/flags[/{{name}}] and /api/flag-keys"
        ),
    )
}

/// Checks the bearer token in constant time.
pub(crate) fn authorize(token: &str, request: &Request<Vec<u8>>) -> Result<(), ApiError> {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), token.as_bytes()) && !token.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "commands need the local token: send Authorization: Bearer <token> (ripcord up prints where the token is)",
        ))
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A deployment as the API shows it.
pub fn deployment_json(d: &Deployment) -> Value {
    json!({
        "deployment_id": d.id.as_str(),
        "service": d.service.as_str(),
        "version": d.release.version,
        "commit": d.release.commit,
        "author": d.release.author,
        "state": d.state.name(),
        "state_text": d.state.to_string(),
        "step": d.state.step().map(|s| s + 1),
        "steps": d.spec.plan.steps.len(),
        "stable": d.stable,
        "canary": d.canary(),
        "weights": d.desired,
        "canary_weight": d.canary_weight(),
        "approvals": d.approvals.iter().map(|a| json!({"name": a.name, "at": a.at})).collect::<Vec<_>>(),
        "rollback": d.rollback.as_ref().map(|r| json!({"reason": r.reason, "trigger": r.trigger, "started_at": r.started_at})),
        "created_at": d.created_at,
        "finished_at": d.finished_at,
    })
}

async fn status(api: &ControlApi<'_>) -> Result<Response<String>, ApiError> {
    let store = api.driver.store;
    let active = store.active_deployments().await.map_err(ApiError::store)?;
    let mut services = Vec::new();
    for spec in api.config.services.values() {
        let live = store
            .service_status(&spec.name)
            .await
            .map_err(ApiError::store)?;
        let served = api.driver.providers.router(spec).read_weights(spec).await;
        let deployment = active.iter().find(|d| d.service == spec.name);
        services.push(json!({
            "service": spec.name.as_str(),
            "strategy": spec.strategy,
            "live": live.as_ref().map_or(spec.initial_live, |s| s.live),
            "live_version": live.as_ref().and_then(|s| s.version.clone()),
            "served_weights": served.as_ref().ok(),
            "router_error": served.as_ref().err().map(|e| e.message.clone()),
            "active": deployment.map(deployment_json),
        }));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"services": services}),
    ))
}

async fn list(api: &ControlApi<'_>, query: &str) -> Result<Response<String>, ApiError> {
    let service = match query_value(query, "service") {
        Some(name) => {
            Some(ServiceName::new(name).map_err(|e| ApiError::bad_request("service", e.0))?)
        }
        None => None,
    };
    let since = api.driver.clock.now().minus(LIST_WINDOW);
    let mut deployments = api
        .driver
        .store
        .deployments_since(service.as_ref(), since)
        .await
        .map_err(ApiError::store)?;
    deployments.reverse();
    let list: Vec<Value> = deployments.iter().map(deployment_json).collect();
    Ok(json_response(StatusCode::OK, &json!({"deployments": list})))
}

/// The days `GET /api/dora` looks back when the query names none.
pub const DEFAULT_DORA_DAYS: u32 = 30;

/// The DORA figures of the deployments that finished in the last `days` days before
/// `now`, for one service or all: what `ripcord dora` prints, on either store.
pub async fn dora_report(
    store: &dyn Store,
    service: Option<&ServiceName>,
    days: u32,
    now: Timestamp,
) -> Result<DoraReport, StoreError> {
    let window = Duration::from_secs(u64::from(days) * 86_400);
    let from = now.minus(window);
    // A deployment counts in the window it finished in, so look back one more window
    // for deployments that started earlier.
    let since = from.minus(window);
    let mut events = Vec::new();
    for d in store.deployments_since(service, since).await? {
        events.extend(store.events(&d.id).await?);
    }
    Ok(dora(&events, service, from, now))
}

async fn dora_figures(api: &ControlApi<'_>, query: &str) -> Result<Response<String>, ApiError> {
    let service = match query_value(query, "service") {
        Some(name) => {
            Some(ServiceName::new(name).map_err(|e| ApiError::bad_request("service", e.0))?)
        }
        None => None,
    };
    let days = match query_value(query, "days") {
        None => DEFAULT_DORA_DAYS,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|days| *days >= 1)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "days",
                    format!("days must be a whole number of at least 1, not {text:?}"),
                )
            })?,
    };
    let now = api.driver.clock.now();
    let report = dora_report(api.driver.store, service.as_ref(), days, now)
        .await
        .map_err(ApiError::store)?;
    Ok(json_response(StatusCode::OK, &json!(report)))
}

fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn parse_id(id: &str) -> Result<DeploymentId, ApiError> {
    DeploymentId::new(id).map_err(|e| ApiError::bad_request("deployment_id", e.0))
}

async fn existing(api: &ControlApi<'_>, id: &DeploymentId) -> Result<Deployment, ApiError> {
    api.driver
        .store
        .deployment(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_deployment",
                format!("no deployment {id}; GET /api/deployments lists them"),
            )
        })
}

async fn one(api: &ControlApi<'_>, id: &str) -> Result<Response<String>, ApiError> {
    let id = parse_id(id)?;
    let d = existing(api, &id).await?;
    let events = api
        .driver
        .store
        .events(&id)
        .await
        .map_err(ApiError::store)?;
    let chain = verify_history(&events, Some(&d));
    let mut body = deployment_json(&d);
    body["verified"] = json!(chain.is_ok());
    body["chain_error"] = json!(chain.err().map(|e| e.to_string()));
    body["events"] = json!(events);
    Ok(json_response(StatusCode::OK, &body))
}

async fn command_on(
    api: &ControlApi<'_>,
    id: &str,
    command: &str,
    body: &[u8],
) -> Result<Response<String>, ApiError> {
    if body.len() > MAX_COMMAND_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is {} bytes; the limit is {MAX_COMMAND_BODY}",
                body.len()
            ),
        ));
    }
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("body", format!("the body is not valid JSON: {e}"))
        })?
    };
    let reason = optional_text(&value, "reason", MAX_COMMAND_BODY, false)?;
    let user = optional_text(&value, "user", 64, true)?.unwrap_or_else(|| "local".to_string());
    let id = parse_id(id)?;
    let d = existing(api, &id).await?;
    let kind = match command {
        "promote" => CommandKind::Promote,
        "pause" => CommandKind::Pause,
        "resume" => CommandKind::Resume,
        "abort" => CommandKind::Abort,
        "rollback" => CommandKind::Rollback,
        "approve" | "reject" => match d.state {
            State::Paused {
                step,
                reason: PauseReason::AwaitingApproval,
                ..
            } if command == "approve" => CommandKind::Approve { step },
            State::Paused {
                step,
                reason: PauseReason::AwaitingApproval,
                ..
            } => CommandKind::Reject { step },
            _ => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_awaiting_approval",
                    format!(
                        "deployment {id} is {}, not waiting for an approval; nothing was queued",
                        d.state
                    ),
                ));
            }
        },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_command",
                format!(
                    "unknown command {other:?}: use promote, pause, resume, abort, rollback, approve or reject"
                ),
            ));
        }
    };
    if !d.is_active() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!(
                "deployment {id} has already {}; nothing to {}",
                d.state.name(),
                kind.name()
            ),
        ));
    }
    let actor = Actor::Cli { user };
    let now = api.driver.clock.now();
    let queued = api
        .driver
        .store
        .enqueue_command(&id, actor, kind.clone(), reason, now)
        .await
        .map_err(ApiError::store)?;
    // Run a pass now, so the command takes effect before the answer.
    let report = api.driver.reconcile(&id).await;
    let after = existing(api, &id).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({
            "command": kind.name(),
            "seq": queued.seq,
            "deployment": deployment_json(&after),
            "errors": report.map(|r| r.errors).unwrap_or_else(|e| vec![e.to_string()]),
        }),
    ))
}

/// A string field of a body that may be absent or null: at most `max` bytes and, for
/// a `name` (a user or delivery id, shown inside history lines), on one line.
fn optional_text(
    value: &Value,
    field: &str,
    max: usize,
    name: bool,
) -> Result<Option<String>, ApiError> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text))
            if !text.trim().is_empty()
                && text.len() <= max
                && !(name && text.chars().any(char::is_control)) =>
        {
            Ok(Some(text.clone()))
        }
        Some(Value::String(_)) => Err(ApiError::bad_request(
            field,
            if name {
                format!("{field} must be 1 to {max} bytes on one line")
            } else {
                format!("{field} must be 1 to {max} bytes")
            },
        )),
        Some(_) => Err(ApiError::bad_request(
            field,
            format!("{field} must be a string"),
        )),
    }
}

/// `POST /api/deployments`: starts a deployment as the webhook does, then runs its
/// first pass before answering, as the webhook function does on AWS.
async fn deploy(api: &ControlApi<'_>, body: &[u8]) -> Result<Response<String>, ApiError> {
    if body.len() > crate::webhook::MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is {} bytes; the limit is {} bytes",
                body.len(),
                crate::webhook::MAX_BODY
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("body", format!("the body is not valid JSON: {e}")))?;
    let request = deploy_request(&value)?;
    let key = match optional_text(&value, "delivery", 200, true)? {
        Some(delivery) => format!("deploy:{delivery}"),
        // No delivery id: a key no other request will claim.
        None => format!("deploy:{}", (api.new_id)()),
    };
    let started = start_deployment(api.driver, api.new_id, request, &key).await?;
    let errors = if started.created {
        match api.driver.reconcile(&started.id).await {
            Ok(report) => report.errors,
            Err(e) => vec![e.to_string()],
        }
    } else {
        Vec::new()
    };
    let after = existing(api, &started.id).await?;
    let status = if started.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(json_response(
        status,
        &json!({
            "deployment_id": started.id.as_str(),
            "created": started.created,
            "deployment": deployment_json(&after),
            "errors": errors,
        }),
    ))
}
