//! The CI webhook: `POST /deployments`, exactly as PRODUCT.md's contract states it.
//!
//! Two kinds of delivery start a deployment: Ripcord's own JSON, signed with
//! `X-Ripcord-Signature-256` and deduplicated on `X-Ripcord-Delivery`, and GitHub
//! `deployment` events, signed with `X-Hub-Signature-256` and deduplicated on
//! `X-GitHub-Delivery`. Answers: 202 `{"deployment_id"}`; 200 with the same id for a
//! delivery seen before; 401 for a bad or missing signature; 400 naming the bad field;
//! 404 for an unknown service; 409 when the service already has an active deployment;
//! 413 for a body over 256 KiB. Nothing is written on any 4xx: the deployment, its first
//! event and the delivery id are stored in one conditional write, or not at all.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use ripcord_core::config::parse_config;
use ripcord_core::domain::{DeploymentId, ServiceName, Slot};
use ripcord_core::driver::{DeployRequest, Driver, StartError};
use ripcord_core::ports::StoreError;
use ripcord_core::time::Timestamp;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::error::{ApiError, json_response};

/// The largest body accepted.
pub const MAX_BODY: usize = 256 * 1024;

/// How long a delivery id is remembered, so that a redelivery finds its deployment.
pub const DELIVERY_TTL: Duration = Duration::from_secs(7 * 86_400);

/// What the webhook needs besides the request.
pub struct Webhook<'a> {
    /// The driver over the store and providers.
    pub driver: Driver<'a>,
    /// The shared secret both kinds of delivery are signed with.
    pub secret: &'a [u8],
    /// Makes a new deployment id (the host decides how: time and randomness).
    pub new_id: &'a (dyn Fn() -> DeploymentId + Send + Sync),
}

/// The webhook's answer, and the deployment it created, if any, so that the host can
/// run its first pass at once.
#[derive(Debug)]
pub struct WebhookOutcome {
    /// The HTTP response.
    pub response: Response<String>,
    /// The deployment created by this request.
    pub created: Option<DeploymentId>,
}

impl From<ApiError> for WebhookOutcome {
    fn from(error: ApiError) -> Self {
        WebhookOutcome {
            response: error.into_response(),
            created: None,
        }
    }
}

/// Handles one webhook request.
pub async fn handle(webhook: &Webhook<'_>, request: Request<Vec<u8>>) -> WebhookOutcome {
    match handle_inner(webhook, request).await {
        Ok(outcome) => outcome,
        Err(error) => error.into(),
    }
}

/// Which kind of delivery a request is.
enum Delivery {
    Ripcord,
    GitHub { event: String },
}

async fn handle_inner(
    webhook: &Webhook<'_>,
    request: Request<Vec<u8>>,
) -> Result<WebhookOutcome, ApiError> {
    if request.method() != Method::POST {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST /deployments",
        ));
    }
    let body = request.body();
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY} bytes",
                body.len()
            ),
        ));
    }
    let headers = request.headers();
    let (delivery, signature_header, delivery_header) = match header(headers, "x-github-event") {
        Some(event) => (
            Delivery::GitHub {
                event: event.to_string(),
            },
            "x-hub-signature-256",
            "x-github-delivery",
        ),
        None => (
            Delivery::Ripcord,
            "x-ripcord-signature-256",
            "x-ripcord-delivery",
        ),
    };
    verify_signature(webhook.secret, headers, signature_header, body)?;
    let delivery_id = match header(headers, delivery_header) {
        Some(id) if !id.is_empty() && id.len() <= 200 => id.to_string(),
        _ => {
            return Err(ApiError::bad_request(
                delivery_header,
                format!("the {delivery_header} header is missing: send a unique id per delivery"),
            ));
        }
    };
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("body", format!("the body is not valid JSON: {e}")))?;
    let deploy = match delivery {
        Delivery::Ripcord => ripcord_request(&payload)?,
        Delivery::GitHub { event } if event == "deployment" => github_request(&payload)?,
        Delivery::GitHub { event } if event == "ping" => {
            return Ok(WebhookOutcome {
                response: json_response(StatusCode::OK, &json!({"ok": true})),
                created: None,
            });
        }
        Delivery::GitHub { event } => {
            return Ok(WebhookOutcome {
                response: json_response(
                    StatusCode::OK,
                    &json!({"ignored": event, "message": "only deployment events start a deployment"}),
                ),
                created: None,
            });
        }
    };
    start(webhook, deploy, delivery_id).await
}

async fn start(
    webhook: &Webhook<'_>,
    deploy: DeployRequest,
    delivery_id: String,
) -> Result<WebhookOutcome, ApiError> {
    let started = start_deployment(
        webhook.driver,
        webhook.new_id,
        deploy,
        &format!("delivery:{delivery_id}"),
    )
    .await?;
    let status = if started.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(WebhookOutcome {
        response: json_response(status, &json!({"deployment_id": started.id.as_str()})),
        created: started.created.then_some(started.id),
    })
}

/// A deployment that [`start_deployment`] created, or found already created under the
/// same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The deployment's id.
    pub id: DeploymentId,
    /// False when the key had been used before and `id` is that earlier deployment.
    pub created: bool,
}

/// Starts a deployment under the latest stored configuration, claiming
/// `idempotency_key` in the same write; every entry point that starts deployments (the
/// webhook, local mode's JSON API, `ripcord deploy`) goes through here, so they refuse
/// the same requests with the same errors. Nothing is written when it fails.
pub async fn start_deployment(
    driver: Driver<'_>,
    new_id: &(dyn Fn() -> DeploymentId + Send + Sync),
    deploy: DeployRequest,
    idempotency_key: &str,
) -> Result<Started, ApiError> {
    let stored = driver
        .store
        .latest_config()
        .await
        .map_err(ApiError::store)?;
    let Some(stored) = stored else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_service",
            format!(
                "unknown service {}: no configuration has been applied yet; run `ripcord apply ripcord.toml`",
                deploy.service
            ),
        ));
    };
    let config = parse_config("stored configuration", &stored.text).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad_configuration",
            format!("the stored configuration does not parse; apply a valid one: {e}"),
        )
    })?;
    let now = driver.clock.now();
    let id = new_id();
    match driver
        .start(
            &config,
            stored.version,
            deploy,
            id,
            Some((idempotency_key.to_string(), now.plus(DELIVERY_TTL))),
        )
        .await
    {
        Ok(deployment) => Ok(Started {
            id: deployment.id,
            created: true,
        }),
        Err(StartError::Store(StoreError::Duplicate { existing })) => Ok(Started {
            id: DeploymentId::new(existing.clone()).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "store_error",
                    format!("the store holds an unreadable deployment id {existing:?}: {e}"),
                )
            })?,
            created: false,
        }),
        Err(StartError::UnknownService(service)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_service",
            format!("unknown service {service}: add it to ripcord.toml and run `ripcord apply`"),
        )),
        Err(StartError::SlotIsLive(slot)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "slot_is_live",
            format!(
                "slot {slot} is live; put the new version on the idle slot {} and deploy again",
                slot.other()
            ),
        )),
        Err(StartError::Store(StoreError::AlreadyActive { service, active })) => {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "deployment_active",
                format!(
                    "{service} already has an active deployment ({active}); wait for it, or abort it with `ripcord abort {active}`"
                ),
            ))
        }
        Err(StartError::Store(e)) => Err(ApiError::store(e)),
    }
}

/// A new deployment id: the UTC time `now` to the second, then 64 random bits, e.g.
/// `d-20261126T093005-3f9a0c2be1d47a55`. Sorting ids sorts them by creation time (to the
/// second), which keeps listings and the table's keys in the order people expect.
///
/// Every host that starts deployments against the table (the webhook function and
/// `ripcord deploy`) makes its ids here, so ids from both look alike and never collide.
pub fn new_deployment_id(now: Timestamp) -> DeploymentId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the operating system's randomness, so two machines or
    // containers starting deployments in the same second still make different ids; the
    // counter and the process id keep ids made in one process apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(now.as_millis());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let stamp: String = now
        .to_rfc3339()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    DeploymentId::new(format!("d-{stamp}-{:016x}", hasher.finish()))
        .expect("digits, a T and dashes make a valid id")
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks `sha256=<hex HMAC-SHA256(secret, body)>` in constant time.
fn verify_signature(
    secret: &[u8],
    headers: &HeaderMap,
    name: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let unauthorized = |why: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            format!(
                "{why}: sign the raw body with HMAC-SHA256 and the shared secret, and send {name}: sha256=<hex>"
            ),
        )
    };
    let Some(value) = header(headers, name) else {
        return Err(unauthorized("the signature header is missing"));
    };
    let Some(hex_digest) = value.strip_prefix("sha256=") else {
        return Err(unauthorized("the signature does not start with sha256="));
    };
    let Ok(given) = hex::decode(hex_digest.trim()) else {
        return Err(unauthorized("the signature is not hexadecimal"));
    };
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| unauthorized("the signature does not match the body"))
}

fn text_field<'v>(payload: &'v Value, field: &str, path: &str) -> Result<&'v str, ApiError> {
    match payload.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => Ok(s),
        Some(Value::String(_)) => Err(ApiError::bad_request(
            path,
            format!("{path} must be 1 to 200 characters"),
        )),
        Some(_) => Err(ApiError::bad_request(
            path,
            format!("{path} must be a string"),
        )),
        None => Err(ApiError::bad_request(path, format!("{path} is missing"))),
    }
}

fn service_field(name: &str, path: &str) -> Result<ServiceName, ApiError> {
    ServiceName::new(name).map_err(|e| ApiError::bad_request(path, format!("{path}: {e}")))
}

fn slot_field(payload: &Value, path: &str) -> Result<Option<Slot>, ApiError> {
    match payload.get("slot") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "blue" => Ok(Some(Slot::Blue)),
        Some(Value::String(s)) if s == "green" => Ok(Some(Slot::Green)),
        Some(_) => Err(ApiError::bad_request(
            path,
            format!("{path} must be \"blue\" or \"green\" (the idle slot the new version is on)"),
        )),
    }
}

fn time_field(value: &str, path: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(value).map_err(|e| ApiError::bad_request(path, format!("{path}: {e}")))
}

/// `{"service", "version", "commit", "committed_at", "author", "slot"?}`: the contract
/// requires the commit's time of CI.
fn ripcord_request(payload: &Value) -> Result<DeployRequest, ApiError> {
    let request = deploy_request(payload)?;
    if request.committed_at.is_none() {
        return Err(ApiError::bad_request(
            "committed_at",
            "committed_at is missing",
        ));
    }
    Ok(request)
}

/// Reads `{"service", "version", "commit", "committed_at"?, "author", "slot"?}` with the
/// webhook's rules, naming the field at fault. `committed_at` may be absent or null
/// here (local mode's JSON API takes it so); the webhook itself requires it.
pub fn deploy_request(payload: &Value) -> Result<DeployRequest, ApiError> {
    if !payload.is_object() {
        return Err(ApiError::bad_request(
            "body",
            "the body must be a JSON object",
        ));
    }
    // Fields are checked in the contract's order, so the first one at fault is named.
    Ok(DeployRequest {
        service: service_field(text_field(payload, "service", "service")?, "service")?,
        version: text_field(payload, "version", "version")?.to_string(),
        commit: text_field(payload, "commit", "commit")?.to_string(),
        committed_at: match payload.get("committed_at") {
            None | Some(Value::Null) => None,
            Some(_) => Some(time_field(
                text_field(payload, "committed_at", "committed_at")?,
                "committed_at",
            )?),
        },
        author: text_field(payload, "author", "author")?.to_string(),
        slot: slot_field(payload, "slot")?,
    })
}

/// A GitHub `deployment` event. The service is `deployment.payload.service`, or else
/// the repository's name in lower case; the version is `deployment.payload.version`,
/// or else the ref; the commit time is `deployment.payload.committed_at`, or else the
/// deployment's creation time (GitHub does not send the commit's time).
fn github_request(event: &Value) -> Result<DeployRequest, ApiError> {
    let deployment = event
        .get("deployment")
        .filter(|d| d.is_object())
        .ok_or_else(|| ApiError::bad_request("deployment", "deployment is missing"))?;
    let extra = deployment.get("payload").filter(|p| p.is_object());
    let from_extra = |field: &str| extra.and_then(|p| p.get(field)).and_then(Value::as_str);
    let service = match from_extra("service") {
        Some(name) => service_field(name, "deployment.payload.service")?,
        None => {
            let repository = event
                .get("repository")
                .and_then(|r| r.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "deployment.payload.service",
                        "deployment.payload.service is missing and the event names no repository",
                    )
                })?;
            service_field(&repository.to_lowercase(), "repository.name")?
        }
    };
    let commit = text_field(deployment, "sha", "deployment.sha")?.to_string();
    let version = match from_extra("version") {
        Some(v) => v.to_string(),
        None => text_field(deployment, "ref", "deployment.ref")?.to_string(),
    };
    let committed_at = match from_extra("committed_at") {
        Some(t) => time_field(t, "deployment.payload.committed_at")?,
        None => time_field(
            text_field(deployment, "created_at", "deployment.created_at")?,
            "deployment.created_at",
        )?,
    };
    let author = deployment
        .get("creator")
        .and_then(|c| c.get("login"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_request(
                "deployment.creator.login",
                "deployment.creator.login is missing",
            )
        })?
        .to_string();
    let slot = match extra {
        Some(p) => slot_field(p, "deployment.payload.slot")?,
        None => None,
    };
    Ok(DeployRequest {
        service,
        version,
        commit,
        committed_at: Some(committed_at),
        author,
        slot,
    })
}

/// Signs a body as the webhook expects: `sha256=<hex>`. For CI scripts and tests.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_deployment_id_is_the_second_then_sixteen_hex_digits() {
        let id = new_deployment_id(at("2026-11-26T09:30:05.250Z"));
        let (stamp, random) = id.as_str().rsplit_once('-').unwrap();
        assert_eq!(stamp, "d-20261126T093005");
        assert_eq!(random.len(), 16);
        assert!(random.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }

    #[test]
    fn two_ids_made_at_the_same_instant_differ() {
        let now = at("2026-11-26T09:30:05Z");
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| new_deployment_id(now).as_str().to_string())
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn ids_sort_by_the_second_they_were_made_in() {
        let times = [
            "2026-11-26T09:30:05.999Z",
            "2026-11-26T09:30:06Z",
            "2026-11-26T10:00:00Z",
            "2026-12-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ];
        // Made newest first, so that sorting has work to do.
        let mut ids: Vec<String> = times
            .iter()
            .rev()
            .map(|t| new_deployment_id(at(t)).as_str().to_string())
            .collect();
        ids.sort();
        let stamps: Vec<&str> = ids.iter().map(|id| &id[2..17]).collect();
        assert_eq!(
            stamps,
            [
                "20261126T093005",
                "20261126T093006",
                "20261126T100000",
                "20261201T000000",
                "20270101T000000"
            ]
        );
    }
}
