//! The OFREP endpoint over real HTTP: the handler served by hyper on a loopback port,
//! called with hyper's client, over flags in the in-memory flag store. Covers both
//! endpoints, every error code, API keys and their revocation, the ETag and the
//! cache's refresh.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ripcord_api::ofrep::Ofrep;
use ripcord_core::domain::Weight;
use ripcord_core::flags::stored::{api_key_sha256, new_rollout_flag, with_enabled};
use ripcord_core::history::Actor;
use ripcord_core::memory::MemoryFlagStore;
use ripcord_core::ports::{ApiKeyRecord, FlagRecordKind, FlagStore, FlagWrite};
use ripcord_core::time::Timestamp;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);
const KEY: &str = "rcf_test_key_for_the_ofrep_endpoint";

/// A server on a loopback port whose clock the test moves.
struct Server {
    address: SocketAddr,
    store: Arc<MemoryFlagStore>,
    ofrep: Arc<Ofrep>,
    now: Arc<AtomicI64>,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn put(store: &MemoryFlagStore, kind: FlagRecordKind, name: &str, definition: Value) {
    let expected = store
        .flag_record(kind, name)
        .await
        .unwrap()
        .map_or(0, |r| r.version);
    store
        .put_flag_record(FlagWrite {
            kind,
            name: name.into(),
            expected_version: expected,
            definition,
            at: T0,
            actor: Actor::Cli { user: "ops".into() },
            summary: "test".into(),
        })
        .await
        .unwrap();
}

impl Server {
    async fn start() -> Server {
        let store = Arc::new(MemoryFlagStore::new());
        store
            .create_api_key(ApiKeyRecord {
                name: "web".into(),
                sha256: api_key_sha256(KEY),
                created_at: T0,
                created_by: Actor::Cli { user: "ops".into() },
            })
            .await
            .unwrap();
        put(
            &store,
            FlagRecordKind::Flag,
            "everyone",
            json!({"name": "everyone", "enabled": true, "strategies": []}),
        )
        .await;
        put(
            &store,
            FlagRecordKind::Flag,
            "nobody",
            new_rollout_flag("nobody", Weight::new(0).unwrap()),
        )
        .await;
        put(
            &store,
            FlagRecordKind::Flag,
            "switched-off",
            json!({"name": "switched-off", "enabled": false, "strategies": []}),
        )
        .await;
        put(
            &store,
            FlagRecordKind::Flag,
            "vip",
            json!({"name": "vip", "enabled": true,
            "strategies": [{"name": "userWithId", "parameters": {"userIds": "alice,bob"}}]}),
        )
        .await;
        put(&store, FlagRecordKind::Flag, "pro-plan", json!({"name": "pro-plan", "enabled": true,
            "strategies": [{"name": "default", "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]})).await;
        put(
            &store,
            FlagRecordKind::Flag,
            "button",
            json!({"name": "button", "enabled": true,
            "strategies": [{"name": "default"}],
            "variants": [
                {"name": "big", "weight": 1000, "weightType": "fix", "stickiness": "default",
                 "payload": {"type": "json", "value": "{\"size\": 3}"}}
            ]}),
        )
        .await;
        put(&store, FlagRecordKind::Flag, "limit", json!({"name": "limit", "enabled": true,
            "strategies": [{"name": "default"}],
            "variants": [{"name": "ten", "weight": 1000, "payload": {"type": "number", "value": "10"}}]})).await;

        let now = Arc::new(AtomicI64::new(T0.as_millis()));
        let ofrep = Arc::new(Ofrep::new(store.clone(), Duration::from_secs(5), 42));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let clock = now.clone();
        let served = ofrep.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let ofrep = served.clone();
                let clock = clock.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let ofrep = ofrep.clone();
                        let now = Timestamp::from_millis(clock.load(Ordering::SeqCst));
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes().to_vec();
                            let response =
                                ofrep.handle(Request::from_parts(parts, body), now).await;
                            Ok::<_, hyper::Error>(response.map(|body| Full::new(Bytes::from(body))))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            address,
            store,
            ofrep,
            now,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, http::HeaderMap, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.address))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response: Response<Incoming> = self
            .client
            .request(
                request
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn eval(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let bearer = format!("Bearer {KEY}");
        let (status, _, body) = self
            .call("POST", path, &[("authorization", &bearer)], body)
            .await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

fn single(key: &str) -> String {
    format!("/ofrep/v1/evaluate/flags/{key}")
}

#[tokio::test]
async fn single_flags_answer_with_value_reason_and_variant() {
    let server = Server::start().await;
    let alice = r#"{"context": {"targetingKey": "alice", "plan": "pro"}}"#;
    let cases = [
        (
            "everyone",
            json!({"key": "everyone", "value": true, "reason": "TARGETING_MATCH", "variant": "on", "metadata": {}}),
        ),
        (
            "nobody",
            json!({"key": "nobody", "value": false, "reason": "DEFAULT", "variant": "off", "metadata": {}}),
        ),
        (
            "switched-off",
            json!({"key": "switched-off", "value": false, "reason": "DISABLED", "variant": "off", "metadata": {}}),
        ),
        (
            "vip",
            json!({"key": "vip", "value": true, "reason": "TARGETING_MATCH", "variant": "on", "metadata": {}}),
        ),
        (
            "pro-plan",
            json!({"key": "pro-plan", "value": true, "reason": "TARGETING_MATCH", "variant": "on", "metadata": {}}),
        ),
        (
            "button",
            json!({"key": "button", "value": {"size": 3}, "reason": "SPLIT", "variant": "big", "metadata": {}}),
        ),
        (
            "limit",
            json!({"key": "limit", "value": 10, "reason": "SPLIT", "variant": "ten", "metadata": {}}),
        ),
    ];
    for (flag, expected) in cases {
        let (status, body) = server.eval(&single(flag), alice).await;
        assert_eq!(status, StatusCode::OK, "{flag}: {body}");
        assert_eq!(body, expected, "{flag}");
    }
    // Another user, on the free plan: the targeted flags are off.
    let carol = r#"{"context": {"targetingKey": "carol", "plan": "free"}}"#;
    for flag in ["vip", "pro-plan"] {
        let (_, body) = server.eval(&single(flag), carol).await;
        assert_eq!(
            (body["value"].clone(), body["reason"].clone()),
            (json!(false), json!("DEFAULT")),
            "{flag}"
        );
    }
}

#[tokio::test]
async fn errors_are_ofreps_with_ripcords_fields_alongside() {
    let server = Server::start().await;
    let ok = r#"{"context": {"targetingKey": "alice"}}"#;
    let cases: [(&str, &str, StatusCode, &str); 6] = [
        ("missing", ok, StatusCode::NOT_FOUND, "FLAG_NOT_FOUND"),
        (
            "everyone",
            "{not json",
            StatusCode::BAD_REQUEST,
            "PARSE_ERROR",
        ),
        (
            "everyone",
            r#"{"context": 5}"#,
            StatusCode::BAD_REQUEST,
            "PARSE_ERROR",
        ),
        (
            "everyone",
            r#"{"context": {"targetingKey": "a", "tags": ["x"]}}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
        ),
        (
            "everyone",
            r#"{"context": {"currentTime": "yesterday"}}"#,
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
        ),
        (
            "vip",
            r#"{"context": {"plan": "pro"}}"#,
            StatusCode::BAD_REQUEST,
            "TARGETING_KEY_MISSING",
        ),
    ];
    for (flag, body, status, code) in cases {
        let (got, answer) = server.eval(&single(flag), body).await;
        assert_eq!(got, status, "{flag} {body}: {answer}");
        assert_eq!(answer["errorCode"], code, "{flag} {body}");
        assert_eq!(answer["key"], flag);
        assert!(
            answer["errorDetails"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert_eq!(answer["error"], code.to_ascii_lowercase());
        assert_eq!(answer["message"], answer["errorDetails"]);
    }
    // Bulk: a body that does not parse is a 400 with no key.
    let (status, answer) = server.eval("/ofrep/v1/evaluate/flags", "[1]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["errorCode"], "PARSE_ERROR");
    assert!(answer.get("key").is_none());
    // Not OFREP at all.
    let bearer = format!("Bearer {KEY}");
    let (status, _, body) = server
        .call(
            "GET",
            &single("everyone"),
            &[("authorization", &bearer)],
            "",
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "method_not_allowed"
    );
    let (status, _, _) = server
        .call(
            "POST",
            "/ofrep/v2/whatever",
            &[("authorization", &bearer)],
            "{}",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let big = format!(
        "{{\"context\": {{\"pad\": \"{}\"}}}}",
        "x".repeat(300 * 1024)
    );
    let (status, answer) = server.eval(&single("everyone"), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
}

#[tokio::test]
async fn only_known_api_keys_may_evaluate() {
    let server = Server::start().await;
    let body = r#"{"context": {"targetingKey": "alice"}}"#;
    let refused: [&[(&str, &str)]; 4] = [
        &[],
        &[("authorization", "Bearer rcf_wrong")],
        &[("authorization", "Basic dXNlcjpwYXNz")],
        &[("x-api-key", "rcf_test_key_for_the_ofrep_endpoinT")],
    ];
    for headers in refused {
        let (status, _, answer) = server
            .call("POST", &single("everyone"), headers, body)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"], "unauthorized");
        assert!(
            !answer.to_string().contains("rcf_"),
            "the key is never echoed: {answer}"
        );
    }
    let (status, _, _) = server
        .call("POST", &single("everyone"), &[("x-api-key", KEY)], body)
        .await;
    assert_eq!(status, StatusCode::OK, "X-API-Key works as well as Bearer");
}

#[tokio::test]
async fn bulk_evaluation_carries_an_etag_that_if_none_match_honours() {
    let server = Server::start().await;
    let body = r#"{"context": {"targetingKey": "alice", "plan": "pro"}}"#;
    let bearer = format!("Bearer {KEY}");
    let (status, headers, text) = server
        .call(
            "POST",
            "/ofrep/v1/evaluate/flags",
            &[("authorization", &bearer)],
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = answer["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "button",
            "everyone",
            "limit",
            "nobody",
            "pro-plan",
            "switched-off",
            "vip"
        ]
    );
    assert_eq!(answer["flags"][1]["value"], true);
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let (status, again, text) = server
        .call(
            "POST",
            "/ofrep/v1/evaluate/flags",
            &[("authorization", &bearer), ("if-none-match", &etag)],
            body,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(text.is_empty());
    assert_eq!(again["etag"].to_str().unwrap(), etag);

    // Another context gets other answers, and so another ETag.
    let other = r#"{"context": {"targetingKey": "carol"}}"#;
    let (status, headers, _) = server
        .call(
            "POST",
            "/ofrep/v1/evaluate/flags",
            &[("authorization", &bearer), ("if-none-match", &etag)],
            other,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(headers["etag"].to_str().unwrap(), etag);

    // Without a user, a flag that targets users reports its error in the list.
    let (status, _, text) = server
        .call(
            "POST",
            "/ofrep/v1/evaluate/flags",
            &[("authorization", &bearer)],
            "{}",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&text).unwrap();
    let vip = answer["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "vip")
        .unwrap();
    assert_eq!(vip["errorCode"], "TARGETING_KEY_MISSING");
}

#[tokio::test]
async fn changes_are_served_after_the_refresh_interval_and_not_before() {
    let server = Server::start().await;
    let body = r#"{"context": {"targetingKey": "alice"}}"#;
    let bearer = format!("Bearer {KEY}");
    let (_, headers, _) = server
        .call(
            "POST",
            "/ofrep/v1/evaluate/flags",
            &[("authorization", &bearer)],
            body,
        )
        .await;
    let etag = headers["etag"].to_str().unwrap().to_string();
    let (_, answer) = server.eval(&single("everyone"), body).await;
    assert_eq!(answer["value"], true);

    let current = server
        .store
        .flag_record(FlagRecordKind::Flag, "everyone")
        .await
        .unwrap()
        .unwrap();
    put(
        &server.store,
        FlagRecordKind::Flag,
        "everyone",
        with_enabled("everyone", &current.definition, false).unwrap(),
    )
    .await;
    server.advance(Duration::from_secs(4));
    let (_, answer) = server.eval(&single("everyone"), body).await;
    assert_eq!(
        answer["value"], true,
        "within the interval the cached copy answers"
    );
    let (status, _, _) = server
        .call(
            "POST",
            "/ofrep/v1/evaluate/flags",
            &[("authorization", &bearer), ("if-none-match", &etag)],
            body,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    server.advance(Duration::from_secs(2));
    let (_, answer) = server.eval(&single("everyone"), body).await;
    assert_eq!(
        answer["reason"], "DISABLED",
        "after it, the change is served"
    );
    let (status, _, _) = server
        .call(
            "POST",
            "/ofrep/v1/evaluate/flags",
            &[("authorization", &bearer), ("if-none-match", &etag)],
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "and the bulk answer's ETag changed");
}

#[tokio::test]
async fn a_revoked_key_is_refused_after_the_refresh_interval_or_at_once_when_the_host_says() {
    let server = Server::start().await;
    let body = r#"{"context": {"targetingKey": "alice"}}"#;
    let other = "rcf_a_second_key_that_stays";
    server
        .store
        .create_api_key(ApiKeyRecord {
            name: "app".into(),
            sha256: api_key_sha256(other),
            created_at: T0,
            created_by: Actor::Cli { user: "ops".into() },
        })
        .await
        .unwrap();
    let status_with = async |key: &str| {
        let bearer = format!("Bearer {key}");
        let (status, _, answer) = server
            .call(
                "POST",
                &single("everyone"),
                &[("authorization", &bearer)],
                body,
            )
            .await;
        (status, answer)
    };
    assert_eq!(status_with(KEY).await.0, StatusCode::OK);

    // A store written by someone else (the command line on the table): the cached
    // keys answer until the refresh interval is over, and not after.
    server.store.revoke_api_key("web").await.unwrap();
    server.advance(Duration::from_secs(4));
    assert_eq!(
        status_with(KEY).await.0,
        StatusCode::OK,
        "within the interval the cached keys answer"
    );
    server.advance(Duration::from_secs(2));
    let (status, answer) = status_with(KEY).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"], "unauthorized", "{answer}");
    assert!(!answer.to_string().contains("rcf_"), "{answer}");
    assert_eq!(
        status_with(other).await.0,
        StatusCode::OK,
        "the other key still works"
    );

    // A host that wrote the store itself says so, and the revocation holds at once.
    server.store.revoke_api_key("app").await.unwrap();
    server.ofrep.invalidate();
    assert_eq!(
        status_with(other).await.0,
        StatusCode::UNAUTHORIZED,
        "refused at once after invalidate, well within the interval"
    );
}
