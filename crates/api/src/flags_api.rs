//! The flags JSON API that the command line (`ripcord flags ... --local URL`) uses on
//! local mode's control port, over the core's `FlagStore` port. Reads are open, as
//! the rest of the JSON API's; every write needs `Authorization: Bearer <token>`
//! (401 without it) and is recorded in the flag's history with who made it.
//!
//! - `GET /api/flags`: every flag, as stored (`{"flags": [record, ...]}`).
//! - `POST /api/flags` with `{"state": <Unleash feature state>, "source": "..."}`:
//!   imports every feature and segment of the state.
//! - `GET /api/flags/{name}`: the flag and its history (`{"flag", "history"}`).
//! - `PUT /api/flags/{name}` with `{"definition": <Unleash feature, or a state
//!   holding it>, "source": "..."}`: replaces the flag's definition.
//! - `POST /api/flags/{name}/enable`, `.../disable`, and `.../rollout` with
//!   `{"percent": N}`: the switch and the rollout.
//! - `GET /api/flag-keys`: the OFREP API keys' names (never the keys).
//! - `POST /api/flag-keys` with `{"name": "..."}`: creates a key and answers 201 with
//!   it, this once; only its SHA-256 is stored.
//! - `DELETE /api/flag-keys/{name}`: revokes the key; OFREP refuses it from then on.
//!
//! Writes answer `{"message": "..."}` in the words the command line prints. A bad
//! input gets 400 naming the field, an unknown flag or key 404, a lost race or a taken
//! key name 409; nothing is written on any 4xx. Keys live under their own prefix so that
//! no flag's name can collide with them.

use http::{Method, Request, Response, StatusCode};
use ripcord_core::history::Actor;
use ripcord_core::ports::{ErrorKind, FlagRecordKind, FlagStore, FlagStoreError};
use ripcord_core::time::Timestamp;
use serde_json::{Value, json};

use crate::control::authorize;
use crate::error::{ApiError, json_response};
use crate::flag_admin::{self, Change, FlagAdminError, KeySummary};
use crate::ofrep::percent_decode;

/// What the flags API needs besides the request.
pub struct FlagsApi<'a> {
    /// The flag store.
    pub store: &'a dyn FlagStore,
    /// The token that writes must carry.
    pub token: &'a str,
    /// Who writes are recorded as.
    pub actor: Actor,
    /// The time of the request.
    pub now: Timestamp,
}

/// The source recorded when a write names none.
const DEFAULT_SOURCE: &str = "the flags API";

/// Whether a request is for this API.
pub fn is_flags_path(path: &str) -> bool {
    ["/api/flags", "/api/flag-keys"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// Whether a request can change the flags or keys (so that caches know to read again).
pub fn is_write(request: &Request<Vec<u8>>) -> bool {
    request.method() != Method::GET && request.method() != Method::HEAD
}

/// Handles one request under `/api/flags` or `/api/flag-keys`.
pub async fn handle(api: &FlagsApi<'_>, request: Request<Vec<u8>>) -> Response<String> {
    match route(api, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn route(
    api: &FlagsApi<'_>,
    request: Request<Vec<u8>>,
) -> Result<Response<String>, ApiError> {
    let path = request.uri().path().to_string();
    let parts: Vec<String> = path
        .trim_end_matches('/')
        .split('/')
        .skip(2)
        .map(percent_decode)
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let method = request.method().clone();
    if is_write(&request) {
        authorize(api.token, &request)?;
    }
    let change = Change {
        actor: api.actor.clone(),
        at: api.now,
    };
    let store = api.store;
    let message = |text: String| json_response(StatusCode::OK, &json!({ "message": text }));
    match (method, parts.as_slice()) {
        (Method::GET, ["flags"]) => list(store).await,
        (Method::POST, ["flags"]) => {
            let body = body_object(&request)?;
            let state = body.get("state").ok_or_else(|| {
                ApiError::bad_request(
                    "state",
                    "send {\"state\": <an Unleash feature state>, \"source\": \"...\"}",
                )
            })?;
            let source = source(&body)?;
            let text = flag_admin::import_state(store, state, &source, &change)
                .await
                .map_err(admin_error)?;
            Ok(message(text))
        }
        (Method::GET, ["flags", name]) => one(store, name).await,
        (Method::PUT, ["flags", name]) => {
            let body = body_object(&request)?;
            let definition = body.get("definition").cloned().ok_or_else(|| {
                ApiError::bad_request(
                    "definition",
                    "send {\"definition\": <an Unleash feature>, \"source\": \"...\"}",
                )
            })?;
            let source = source(&body)?;
            let text = flag_admin::set_definition(store, name, definition, &source, &change)
                .await
                .map_err(admin_error)?;
            Ok(message(text))
        }
        (Method::POST, ["flags", name, verb @ ("enable" | "disable")]) => {
            let text = flag_admin::switch(store, name, *verb == "enable", &change)
                .await
                .map_err(admin_error)?;
            Ok(message(text))
        }
        (Method::POST, ["flags", name, "rollout"]) => {
            let body = body_object(&request)?;
            let percent = body
                .get("percent")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "percent",
                        "send {\"percent\": N} with N a whole number from 0 to 100",
                    )
                })?;
            let text = flag_admin::set_rollout(store, name, percent, &change)
                .await
                .map_err(admin_error)?;
            Ok(message(text))
        }
        (Method::GET, ["flag-keys"]) => {
            let keys = store.api_keys().await.map_err(store_error)?;
            let keys: Vec<KeySummary> = keys.iter().map(KeySummary::from).collect();
            Ok(json_response(StatusCode::OK, &json!({ "keys": keys })))
        }
        (Method::POST, ["flag-keys"]) => {
            let body = body_object(&request)?;
            let name = body.get("name").and_then(Value::as_str).ok_or_else(|| {
                ApiError::bad_request("name", "send {\"name\": \"web-frontend\"}")
            })?;
            flag_admin::check_key_name(name).map_err(admin_error)?;
            let key = flag_admin::new_key().map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "no_randomness",
                    format!("cannot read random bytes for the key ({e}); nothing was stored"),
                )
            })?;
            flag_admin::create_key(store, name, &key, &change)
                .await
                .map_err(admin_error)?;
            Ok(json_response(
                StatusCode::CREATED,
                &json!({ "name": name, "key": key }),
            ))
        }
        (Method::DELETE, ["flag-keys", name]) => {
            let text = flag_admin::revoke_key(store, name)
                .await
                .map_err(admin_error)?;
            Ok(message(text))
        }
        (_, ["flags"] | ["flag-keys"]) => Err(method_not_allowed(&path, "GET or POST")),
        (_, ["flag-keys", _]) => Err(method_not_allowed(&path, "DELETE")),
        (_, ["flags", _]) => Err(method_not_allowed(&path, "GET or PUT")),
        (_, ["flags", _, "enable" | "disable" | "rollout"]) => {
            Err(method_not_allowed(&path, "POST"))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "nothing at {path}: the flags API serves /api/flags, /api/flags/{{name}}[/enable|/disable|/rollout] and /api/flag-keys[/{{name}}]"
            ),
        )),
    }
}

fn method_not_allowed(path: &str, allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("use {allowed} {path}"),
    )
}

/// The body as a JSON object.
fn body_object(request: &Request<Vec<u8>>) -> Result<serde_json::Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(request.body())
        .map_err(|e| ApiError::bad_request("body", format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::bad_request(
            "body",
            "the body must be a JSON object",
        )),
    }
}

/// Where a definition or state came from, for messages and the history.
fn source(body: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    match body.get("source") {
        None | Some(Value::Null) => Ok(DEFAULT_SOURCE.to_string()),
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        Some(_) => Err(ApiError::bad_request(
            "source",
            "source must be a non-empty string, such as the file's name",
        )),
    }
}

async fn list(store: &dyn FlagStore) -> Result<Response<String>, ApiError> {
    let records = store.flag_records().await.map_err(store_error)?;
    let flags: Vec<_> = records
        .iter()
        .filter(|r| r.kind == FlagRecordKind::Flag)
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "flags": flags })))
}

async fn one(store: &dyn FlagStore, name: &str) -> Result<Response<String>, ApiError> {
    let record = flag_admin::existing(store, name)
        .await
        .map_err(admin_error)?;
    let history = store
        .flag_changes(FlagRecordKind::Flag, name)
        .await
        .map_err(store_error)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "flag": record, "history": history }),
    ))
}

fn store_error(error: FlagStoreError) -> ApiError {
    let retryable =
        matches!(&error, FlagStoreError::Unavailable(e) if e.kind == ErrorKind::Transient);
    if retryable {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the flag store is unavailable ({error}); nothing was written; retry"),
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            format!("the flag store refused the request: {error}"),
        )
    }
}

fn admin_error(error: FlagAdminError) -> ApiError {
    match error {
        FlagAdminError::UnknownFlag(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_flag", error.to_string())
        }
        FlagAdminError::UnknownKey(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_key", error.to_string())
        }
        FlagAdminError::Invalid { field, message } => ApiError::bad_request(field, message),
        FlagAdminError::Conflict(message) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", message)
        }
        FlagAdminError::Store(error) => store_error(error),
    }
}
