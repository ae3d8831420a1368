//! Feature-flag evaluation over OpenFeature's Remote Evaluation Protocol (OFREP):
//! `POST /ofrep/v1/evaluate/flags/{key}` evaluates one flag and
//! `POST /ofrep/v1/evaluate/flags` every flag, for the context in the body
//! (`{"context": {"targetingKey": "user-42", ...}}`).
//!
//! - **Keys.** A request carries an API key as `Authorization: Bearer <key>` or
//!   `X-API-Key: <key>`. The flag store keeps only each key's SHA-256; the key's hash
//!   is compared with every stored one in constant time. A missing or unknown key gets
//!   401 and nothing is evaluated.
//! - **Cache.** Flags, segments and key hashes are read from the flag store at most
//!   once per refresh interval ([`DEFAULT_REFRESH`]) and evaluated from memory, so a
//!   request does not read the store. When the store cannot be read, the last good
//!   copy is served and the next request tries again. A host that writes to the
//!   store itself (local mode) calls [`Ofrep::invalidate`] after the write, and from
//!   then on no copy read before it answers: a revoked key is refused at once there,
//!   and within one refresh interval everywhere else.
//! - **Context.** `targetingKey` is Unleash's `userId`; `userId`, `sessionId`,
//!   `remoteAddress`, `environment`, `appName` and `currentTime` are Unleash's own
//!   fields; every other attribute is a property (strings, numbers and booleans).
//!   `currentTime` defaults to the time of the request.
//! - **Results.** A flag without variants gives a boolean `value` (variant `on` or
//!   `off`); a flag with variants gives the variant's payload (a `number` payload as a
//!   number, `json` as JSON, anything else as a string; the variant's name when it has
//!   none). `reason` is `DISABLED` (the switch is off), `DEFAULT` (off for this
//!   context), `TARGETING_MATCH` (on) or `SPLIT` (on, with a variant).
//! - **Errors** are OFREP's: 400 with `errorCode` `PARSE_ERROR` (the body is not a JSON
//!   object with an object `context`), `INVALID_CONTEXT` (an attribute that is not a
//!   string, number or boolean, or a bad `currentTime`) or `TARGETING_KEY_MISSING` (the
//!   flag buckets by user id and none was given); 404 `FLAG_NOT_FOUND`; 500 `GENERAL`.
//!   Each error body also carries Ripcord's `error` and `message`, so that it reads like
//!   every other Ripcord error.
//! - **ETag.** The bulk answer carries an `ETag` (a hash of its body); a request whose
//!   `If-None-Match` names it gets 304 with no body.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use ripcord_core::flags::stored::flag_set;
use ripcord_core::flags::{
    Context, Flag, FlagSet, Outcome, Payload, SeededRandom, Stickiness, StrategyKind,
};
use ripcord_core::ports::{FlagStore, FlagStoreError};
use ripcord_core::time::Timestamp;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, json_response};

/// How often flags and keys are read again from the store.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// The largest body accepted.
pub const MAX_BODY: usize = 256 * 1024;

/// The path of the bulk evaluation; a single flag is at `{BULK_PATH}/{key}`.
pub const BULK_PATH: &str = "/ofrep/v1/evaluate/flags";

/// What one copy of the store holds, ready to evaluate.
struct Snapshot {
    /// The flags, or why the stored ones could not be read.
    flags: Result<FlagSet, String>,
    /// The SHA-256 of every API key.
    keys: Vec<[u8; 32]>,
    /// When it was read.
    loaded_at: Timestamp,
    /// The endpoint's generation when the read began: a copy of an older generation
    /// may predate a write (a revoked key), so it is never served once that write
    /// is known.
    generation: u64,
}

/// The OFREP endpoint: the flag store, the in-memory copy of it, and the randomness
/// for random rollouts.
pub struct Ofrep {
    store: Arc<dyn FlagStore>,
    refresh: Duration,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    refreshing: AtomicBool,
    /// Raised by one each time the host wrote to the store, so that no copy read
    /// before the write answers after it.
    generation: AtomicU64,
    random: AtomicU64,
}

impl Ofrep {
    /// An endpoint over `store`, reading it again every `refresh`; `seed` starts the
    /// random draws of random rollouts (the host passes one from the system).
    pub fn new(store: Arc<dyn FlagStore>, refresh: Duration, seed: u64) -> Self {
        Self {
            store,
            refresh,
            snapshot: RwLock::new(None),
            refreshing: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            random: AtomicU64::new(seed),
        }
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the store into a copy of `generation` and keeps it, unless a copy of a
    /// later generation was kept meanwhile (a slower read must not replace it).
    async fn load(&self, now: Timestamp, generation: u64) -> Result<Arc<Snapshot>, FlagStoreError> {
        let records = self.store.flag_records().await?;
        let keys = self.store.api_keys().await?;
        let snapshot = Arc::new(Snapshot {
            flags: flag_set(&records).map_err(|e| e.to_string()),
            keys: keys
                .iter()
                .filter_map(|k| hex::decode(&k.sha256).ok())
                .filter_map(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .collect(),
            loaded_at: now,
            generation,
        });
        let mut kept = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        if kept.as_ref().is_none_or(|k| k.generation <= generation) {
            *kept = Some(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// The copy to answer from: the current one while it is fresh. When it is merely
    /// old, one request reads the store again while the others go on with it; when
    /// the host wrote since it was read, every request reads again rather than answer
    /// from it, so that a revoked key is refused from the write on.
    async fn snapshot(&self, now: Timestamp) -> Result<Arc<Snapshot>, ApiError> {
        let generation = self.generation.load(Ordering::Acquire);
        let current = self.current();
        let written_since = current
            .as_ref()
            .is_some_and(|snapshot| snapshot.generation != generation);
        if let Some(snapshot) = &current
            && !written_since
            && now.since(snapshot.loaded_at) < self.refresh
        {
            return Ok(snapshot.clone());
        }
        let first = self
            .refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !first
            && !written_since
            && let Some(snapshot) = current.clone()
        {
            return Ok(snapshot);
        }
        let loaded = self.load(now, generation).await;
        if first {
            self.refreshing.store(false, Ordering::Release);
        }
        match (loaded, current) {
            (Ok(snapshot), _) => Ok(snapshot),
            // The store is unreachable: keep serving the last good copy (the next
            // request tries again, as the copy is still old or of an older generation).
            (Err(_), Some(snapshot)) => Ok(snapshot),
            (Err(error), None) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the flag store cannot be read ({error}); retry shortly"),
            )),
        }
    }

    /// Makes every later request answer from a copy read after this call rather than
    /// wait for the refresh interval: the host calls it after it wrote flags or keys
    /// itself.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Answers one OFREP request received at `now`.
    pub async fn handle(&self, request: Request<Vec<u8>>, now: Timestamp) -> Response<String> {
        match self.handle_inner(request, now).await {
            Ok(response) | Err(response) => response,
        }
    }

    async fn handle_inner(
        &self,
        request: Request<Vec<u8>>,
        now: Timestamp,
    ) -> Result<Response<String>, Response<String>> {
        let path = request.uri().path();
        let target = if path == BULK_PATH {
            None
        } else if let Some(key) = path
            .strip_prefix(BULK_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|key| !key.is_empty() && !key.contains('/'))
        {
            Some(percent_decode(key))
        } else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such endpoint: use POST {BULK_PATH} or POST {BULK_PATH}/{{key}}"),
            )
            .into_response());
        };
        if request.method() != Method::POST {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("use POST {path}"),
            )
            .into_response());
        }
        if request.body().len() > MAX_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the body is {} bytes; the limit is {MAX_BODY} bytes",
                    request.body().len()
                ),
            )
            .into_response());
        }
        let snapshot = self.snapshot(now).await.map_err(ApiError::into_response)?;
        authorize(request.headers(), &snapshot.keys).map_err(ApiError::into_response)?;
        let flags = snapshot.flags.as_ref().map_err(|reason| {
            ofrep_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                target.as_deref(),
                "GENERAL",
                format!(
                    "the stored flags cannot be read: {reason}; fix them with `ripcord flags set`"
                ),
            )
        })?;
        let context = read_context(request.body(), now).map_err(|(code, details)| {
            ofrep_error(StatusCode::BAD_REQUEST, target.as_deref(), code, details)
        })?;
        let seed = self
            .random
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        let mut random = SeededRandom::new(seed);
        let (unleash, has_user) = (&context.unleash, context.has_user);
        match target {
            Some(key) => {
                let Some(flag) = flags.flag(&key) else {
                    return Err(ofrep_error(
                        StatusCode::NOT_FOUND,
                        Some(&key),
                        "FLAG_NOT_FOUND",
                        format!("there is no flag {key:?}; `ripcord flags list` shows the flags"),
                    ));
                };
                let answer =
                    answer(flags, flag, unleash, has_user, &mut random).map_err(|details| {
                        ofrep_error(
                            StatusCode::BAD_REQUEST,
                            Some(&key),
                            "TARGETING_KEY_MISSING",
                            details,
                        )
                    })?;
                let mut body = Vec::with_capacity(128);
                answer.write(&mut body);
                Ok(json_body(StatusCode::OK, body))
            }
            None => {
                // Written straight into the body: no JSON tree is built per flag.
                let mut body = Vec::with_capacity(64 + 128 * flags.len());
                body.extend_from_slice(br#"{"flags":["#);
                for (n, flag) in flags.flags().enumerate() {
                    if n > 0 {
                        body.push(b',');
                    }
                    match answer(flags, flag, unleash, has_user, &mut random) {
                        Ok(answer) => answer.write(&mut body),
                        Err(details) => serde_json::to_writer(
                            &mut body,
                            &json!({
                                "key": flag.name,
                                "errorCode": "TARGETING_KEY_MISSING",
                                "errorDetails": details,
                            }),
                        )
                        .expect("writing JSON to memory cannot fail"),
                    }
                }
                body.extend_from_slice(b"]}");
                let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
                let builder = Response::builder().header(header::ETAG, &etag);
                if if_none_match(request.headers(), &etag) {
                    return Ok(builder
                        .status(StatusCode::NOT_MODIFIED)
                        .body(String::new())
                        .expect("a status and an ETag make a valid response"));
                }
                Ok(builder
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(utf8(body))
                    .expect("a status and headers make a valid response"))
            }
        }
    }
}

/// A JSON body already written out.
fn json_body(status: StatusCode, body: Vec<u8>) -> Response<String> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(utf8(body))
        .expect("a status and a content type always make a valid response")
}

/// JSON written by serde_json from Rust strings is UTF-8.
fn utf8(body: Vec<u8>) -> String {
    String::from_utf8(body).expect("JSON written from strings is UTF-8")
}

/// An OFREP error: OFREP's `key`, `errorCode` and `errorDetails`, with Ripcord's
/// `error` and `message` alongside.
fn ofrep_error(
    status: StatusCode,
    key: Option<&str>,
    code: &'static str,
    details: String,
) -> Response<String> {
    let mut body = json!({
        "errorCode": code,
        "errorDetails": details,
        "error": code.to_ascii_lowercase(),
        "message": details,
    });
    if let Some(key) = key {
        body["key"] = Value::String(key.to_string());
    }
    json_response(status, &body)
}

/// Checks the API key against every stored hash, in constant time.
fn authorize(headers: &HeaderMap, keys: &[[u8; 32]]) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|key| !key.is_empty());
    let Some(presented) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`; `ripcord flags keys create NAME` makes one",
        ));
    };
    let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut matched = 0u8;
    for key in keys {
        matched |= constant_time_eq(&hash, key);
    }
    if matched == 1 {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API key is not known: check it, or create one with `ripcord flags keys create NAME`",
        ))
    }
}

/// 1 when equal, 0 otherwise, looking at every byte whatever the first difference.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> u8 {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // 1 when difference is 0: (0 - 1) >> 8 has the low bit set only then.
    ((u16::from(difference).wrapping_sub(1) >> 8) & 1) as u8
}

/// Whether `If-None-Match` names this ETag (or is `*`); weak tags match too.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// The evaluation context: Unleash's, and whether it names a user.
struct RequestContext {
    unleash: Context,
    has_user: bool,
}

/// The Unleash fields an OFREP context may set directly.
const UNLEASH_FIELDS: [&str; 6] = [
    "userId",
    "sessionId",
    "remoteAddress",
    "environment",
    "appName",
    "currentTime",
];

fn read_context(body: &[u8], now: Timestamp) -> Result<RequestContext, (&'static str, String)> {
    let parse = |details: String| ("PARSE_ERROR", details);
    let document: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            parse(format!(
                "the body is not JSON ({e}); send {{\"context\": {{\"targetingKey\": \"...\"}}}}"
            ))
        })?
    };
    let Value::Object(document) = document else {
        return Err(parse(
            "the body must be a JSON object such as {\"context\": {\"targetingKey\": \"user-42\"}}"
                .into(),
        ));
    };
    let context = match document.get("context") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(context)) => context.clone(),
        Some(_) => return Err(parse("\"context\" must be a JSON object".into())),
    };
    let invalid = |details: String| ("INVALID_CONTEXT", details);
    let mut unleash = Map::new();
    let mut properties = Map::new();
    for (name, value) in &context {
        match name.as_str() {
            "targetingKey" => {
                if !context.contains_key("userId") {
                    unleash.insert("userId".into(), value.clone());
                }
            }
            "properties" => match value {
                Value::Object(inner) => properties.extend(inner.clone()),
                _ => {
                    return Err(invalid(
                        "context attribute \"properties\" must be an object".into(),
                    ));
                }
            },
            field if UNLEASH_FIELDS.contains(&field) => {
                unleash.insert(name.clone(), value.clone());
            }
            _ => {
                properties.insert(name.clone(), value.clone());
            }
        }
    }
    if !properties.is_empty() {
        unleash.insert("properties".into(), Value::Object(properties));
    }
    let mut unleash = Context::from_json(&Value::Object(unleash))
        .map_err(|e| invalid(e.to_string().replace("properties.", "")))?;
    if unleash.current_time.is_none() {
        unleash.current_time = Some(now);
    }
    let has_user = unleash.field("userId").is_some();
    Ok(RequestContext { unleash, has_user })
}

/// Whether a flag's answer depends on the user id, so that asking without one is an
/// error rather than a silent "off".
fn needs_user(flag: &Flag) -> bool {
    flag.enabled
        && flag.strategies.iter().any(|strategy| match &strategy.kind {
            StrategyKind::UserWithId { .. } | StrategyKind::GradualRolloutUserId { .. } => true,
            StrategyKind::FlexibleRollout { stickiness, .. } => {
                *stickiness == Stickiness::Field("userId".into())
            }
            _ => false,
        })
}

/// One flag's OFREP answer, borrowed from the flag set.
struct Answer<'a> {
    key: &'a str,
    value: AnswerValue<'a>,
    reason: &'static str,
    variant: &'a str,
}

/// An answer's `value`.
enum AnswerValue<'a> {
    Bool(bool),
    /// Written as a JSON string.
    Text(&'a str),
    /// JSON text checked to be one value (a number or a `json` payload), written as is.
    Json(&'a str),
}

impl Answer<'_> {
    /// Writes `{"key", "value", "reason", "variant", "metadata"}` as JSON.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"key":"#);
        push_json_string(out, self.key);
        out.extend_from_slice(br#","value":"#);
        match self.value {
            AnswerValue::Bool(true) => out.extend_from_slice(b"true"),
            AnswerValue::Bool(false) => out.extend_from_slice(b"false"),
            AnswerValue::Text(text) => push_json_string(out, text),
            AnswerValue::Json(json) => out.extend_from_slice(json.as_bytes()),
        }
        out.extend_from_slice(br#","reason":"#);
        push_json_string(out, self.reason);
        out.extend_from_slice(br#","variant":"#);
        push_json_string(out, self.variant);
        out.extend_from_slice(br#","metadata":{}}"#);
    }
}

/// Appends `text` as a JSON string, quoted and escaped.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(out, text).expect("writing a string to memory cannot fail");
}

/// A payload's OFREP value: a `number` payload as a number, `json` as JSON, anything
/// else (or a payload that does not parse as its type) as a string. Checking the text
/// allocates nothing: it is written out as it stands.
fn payload_value(payload: &Payload) -> AnswerValue<'_> {
    let text = payload.value.trim();
    let parses = match payload.kind.as_str() {
        "number" => serde_json::from_str::<serde_json::Number>(text).is_ok(),
        "json" => serde_json::from_str::<IgnoredAny>(text).is_ok(),
        _ => false,
    };
    if parses {
        AnswerValue::Json(text)
    } else {
        AnswerValue::Text(&payload.value)
    }
}

/// One flag's OFREP answer, or why the context cannot be evaluated.
fn answer<'a>(
    flags: &'a FlagSet,
    flag: &'a Flag,
    context: &'a Context,
    has_user: bool,
    random: &'a mut SeededRandom,
) -> Result<Answer<'a>, String> {
    if !has_user && needs_user(flag) {
        return Err(format!(
            "flag {:?} is targeted by user id: send the user's id as \"targetingKey\"",
            flag.name
        ));
    }
    let off = |reason| Answer {
        key: &flag.name,
        value: AnswerValue::Bool(false),
        reason,
        variant: "off",
    };
    if !flag.enabled {
        return Ok(off("DISABLED"));
    }
    Ok(match flags.outcome(flag, context, random) {
        Outcome::Off => off("DEFAULT"),
        Outcome::On => Answer {
            key: &flag.name,
            value: AnswerValue::Bool(true),
            reason: "TARGETING_MATCH",
            variant: "on",
        },
        Outcome::Variant(variant) => Answer {
            key: &flag.name,
            value: variant
                .payload
                .as_ref()
                .map_or(AnswerValue::Text(&variant.name), payload_value),
            reason: "SPLIT",
            variant: &variant.name,
        },
    })
}

/// Decodes `%XX` escapes in a path segment; anything malformed stays as written.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ripcord_core::flags::stored::api_key_sha256;
    use ripcord_core::history::Actor;
    use ripcord_core::memory::MemoryFlagStore;
    use ripcord_core::ports::{
        ApiKeyRecord, BoxFuture, FlagChange, FlagRecord, FlagRecordKind, FlagWrite,
    };
    use tokio::sync::oneshot;

    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);
    const KEY: &str = "rcf_key_that_leaks";

    /// The in-memory store, whose next read of the keys can be held after it read
    /// them: a slow read that began before a write.
    #[derive(Default)]
    struct HeldRead {
        inner: MemoryFlagStore,
        hold: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    }

    impl FlagStore for HeldRead {
        fn flag_records(&self) -> BoxFuture<'_, Result<Vec<FlagRecord>, FlagStoreError>> {
            self.inner.flag_records()
        }
        fn flag_record<'a>(
            &'a self,
            kind: FlagRecordKind,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Option<FlagRecord>, FlagStoreError>> {
            self.inner.flag_record(kind, name)
        }
        fn put_flag_record(
            &self,
            write: FlagWrite,
        ) -> BoxFuture<'_, Result<FlagRecord, FlagStoreError>> {
            self.inner.put_flag_record(write)
        }
        fn flag_changes<'a>(
            &'a self,
            kind: FlagRecordKind,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Vec<FlagChange>, FlagStoreError>> {
            self.inner.flag_changes(kind, name)
        }
        fn create_api_key(&self, key: ApiKeyRecord) -> BoxFuture<'_, Result<(), FlagStoreError>> {
            self.inner.create_api_key(key)
        }
        fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKeyRecord>, FlagStoreError>> {
            Box::pin(async move {
                let keys = self.inner.api_keys().await?;
                let hold = self.hold.lock().unwrap().take();
                if let Some((reading, release)) = hold {
                    reading.send(()).unwrap();
                    release.await.unwrap();
                }
                Ok(keys)
            })
        }
        fn revoke_api_key<'a>(
            &'a self,
            name: &'a str,
        ) -> BoxFuture<'a, Result<ApiKeyRecord, FlagStoreError>> {
            self.inner.revoke_api_key(name)
        }
    }

    async fn status(ofrep: &Ofrep, now: Timestamp) -> StatusCode {
        let request = Request::post(BULK_PATH)
            .header("authorization", format!("Bearer {KEY}"))
            .body(b"{}".to_vec())
            .unwrap();
        ofrep.handle(request, now).await.status()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_begun_before_a_revocation_never_answers_after_it() {
        let store = Arc::new(HeldRead::default());
        store
            .create_api_key(ApiKeyRecord {
                name: "web".into(),
                sha256: api_key_sha256(KEY),
                created_at: T0,
                created_by: Actor::Cli { user: "ops".into() },
            })
            .await
            .unwrap();
        let ofrep = Arc::new(Ofrep::new(store.clone(), Duration::from_secs(5), 1));
        assert_eq!(status(&ofrep, T0).await, StatusCode::OK);

        // The copy is old: a request reads again, and is held after reading the key.
        let later = T0.plus(Duration::from_secs(6));
        let (reading, read) = oneshot::channel();
        let (release, held) = oneshot::channel();
        *store.hold.lock().unwrap() = Some((reading, held));
        let slow = tokio::spawn({
            let ofrep = ofrep.clone();
            async move { status(&ofrep, later).await }
        });
        read.await.unwrap();

        store.revoke_api_key("web").await.unwrap();
        ofrep.invalidate();
        assert_eq!(
            status(&ofrep, later).await,
            StatusCode::UNAUTHORIZED,
            "a request after the revocation does not wait for, nor use, the older read"
        );
        release.send(()).unwrap();
        assert_eq!(
            slow.await.unwrap(),
            StatusCode::OK,
            "the request that began before the revocation may still pass"
        );
        assert_eq!(
            status(&ofrep, later).await,
            StatusCode::UNAUTHORIZED,
            "the older read, finished last, did not replace the newer copy"
        );
    }

    fn written(value: AnswerValue<'_>) -> Value {
        let mut out = Vec::new();
        Answer {
            key: "checkout \"v2\"",
            value,
            reason: "SPLIT",
            variant: "b",
        }
        .write(&mut out);
        serde_json::from_slice(&out).expect("an answer is JSON")
    }

    fn payload(kind: &str, value: &str) -> Payload {
        Payload {
            kind: kind.into(),
            value: value.into(),
        }
    }

    #[test]
    fn payloads_become_values_of_their_type_or_text() {
        let table = [
            (payload("number", " 10 "), json!(10)),
            (payload("number", "2.5e3"), json!(2500.0)),
            (payload("number", "ten"), json!("ten")),
            (payload("json", "{\"size\":\n 3}"), json!({"size": 3})),
            (payload("json", "{\"size\": 3"), json!("{\"size\": 3")),
            (payload("json", "[1] [2]"), json!("[1] [2]")),
            (payload("string", "say \"hi\"\n"), json!("say \"hi\"\n")),
            (payload("csv", "1,2"), json!("1,2")),
        ];
        for (payload, expected) in table {
            let answer = written(payload_value(&payload));
            assert_eq!(answer["value"], expected, "{payload:?}");
            assert_eq!(answer["key"], "checkout \"v2\"");
            assert_eq!(answer["variant"], "b");
            assert_eq!(answer["metadata"], json!({}));
        }
    }
}
