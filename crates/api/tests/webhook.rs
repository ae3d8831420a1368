//! The webhook's whole status matrix, with real HMAC signatures, real GitHub payloads,
//! and the store checked for "nothing written" after every refusal.

use http::{Request, StatusCode};
use ripcord_api::webhook::{MAX_BODY, Webhook, WebhookOutcome, handle, sign};
use ripcord_core::deployment::State;
use ripcord_core::domain::DeploymentId;
use ripcord_core::memory::{Sandbox, block_on};
use ripcord_core::ports::Store;
use ripcord_core::time::Timestamp;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);
const SECRET: &[u8] = b"a shared secret of the kind CI keeps";

const CONFIG: &str = r#"
[services.web]
strategy = "canary"
steps = [{ set_weight = 10 }, { pause = "1m" }, { set_weight = 100 }]

[services.web.local]
listen = "127.0.0.1:8080"
upstreams = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]

[services.hello-world]
preset = "AllAtOnce"

[services.hello-world.local]
listen = "127.0.0.1:8081"
upstreams = ["http://127.0.0.1:9101", "http://127.0.0.1:9102"]
"#;

fn sandbox() -> Sandbox {
    let sb = Sandbox::new(
        ripcord_core::config::parse_config("test", CONFIG).unwrap(),
        T0,
    );
    block_on(sb.store.put_config(CONFIG, 0, T0)).unwrap();
    sb
}

static IDS: AtomicU32 = AtomicU32::new(1);

fn new_id() -> DeploymentId {
    DeploymentId::new(format!("wh-{}", IDS.fetch_add(1, Ordering::SeqCst))).unwrap()
}

fn call(sb: &Sandbox, request: Request<Vec<u8>>) -> (StatusCode, Value, WebhookOutcome) {
    let webhook = Webhook {
        driver: sb.driver(),
        secret: SECRET,
        new_id: &new_id,
    };
    let outcome = block_on(handle(&webhook, request));
    let status = outcome.response.status();
    let body: Value = serde_json::from_str(outcome.response.body()).expect("every answer is JSON");
    (status, body, outcome)
}

fn ripcord_delivery(body: &[u8], delivery: &str) -> Request<Vec<u8>> {
    Request::post("/deployments")
        .header("content-type", "application/json")
        .header("x-ripcord-signature-256", sign(SECRET, body))
        .header("x-ripcord-delivery", delivery)
        .body(body.to_vec())
        .unwrap()
}

fn good_body(service: &str) -> Vec<u8> {
    json!({
        "service": service,
        "version": "v43",
        "commit": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
        "committed_at": "2026-11-26T05:00:00Z",
        "author": "octocat",
        "slot": "green"
    })
    .to_string()
    .into_bytes()
}

/// Everything the store holds that a refused request could have written.
fn written(sb: &Sandbox) -> (u64, usize) {
    let all = block_on(sb.store.deployments_since(None, Timestamp::from_millis(0))).unwrap();
    (sb.store.commit_count(), all.len())
}

#[test]
fn a_signed_delivery_starts_a_deployment_and_a_redelivery_finds_it() {
    let sb = sandbox();
    let (status, body, outcome) = call(&sb, ripcord_delivery(&good_body("web"), "delivery-1"));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["deployment_id"].as_str().unwrap().to_string();
    assert_eq!(
        outcome.created.as_ref().map(|d| d.as_str().to_string()),
        Some(id.clone())
    );
    let d = sb.deployment(&DeploymentId::new(id.clone()).unwrap());
    assert_eq!(d.state, State::Pending);
    assert_eq!(d.release.version, "v43");
    assert_eq!(
        d.release.committed_at,
        Some(Timestamp::parse_rfc3339("2026-11-26T05:00:00Z").unwrap())
    );
    assert_eq!(d.config_version, 1);

    let before = written(&sb);
    let (again, body, outcome) = call(&sb, ripcord_delivery(&good_body("web"), "delivery-1"));
    assert_eq!(again, StatusCode::OK);
    assert_eq!(body["deployment_id"], id);
    assert!(outcome.created.is_none());
    assert_eq!(written(&sb), before, "a redelivery writes nothing");
}

/// A refused request: its name, the request, the status, error code and field expected.
type Case = (
    &'static str,
    Request<Vec<u8>>,
    StatusCode,
    &'static str,
    Option<&'static str>,
);

#[test]
fn refusals_answer_with_their_status_and_write_nothing() {
    let sb = sandbox();
    let (_, first, _) = call(&sb, ripcord_delivery(&good_body("web"), "first"));
    let active = first["deployment_id"].as_str().unwrap().to_string();
    let before = written(&sb);

    let good = good_body("web");
    let mut tampered = good.clone();
    tampered[5] ^= 1;
    let mut cases: Vec<Case> = vec![
        (
            "no signature",
            Request::post("/deployments")
                .header("x-ripcord-delivery", "a")
                .body(good.clone())
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            None,
        ),
        (
            "wrong secret",
            Request::post("/deployments")
                .header("x-ripcord-signature-256", sign(b"other", &good))
                .header("x-ripcord-delivery", "b")
                .body(good.clone())
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            None,
        ),
        (
            "body changed after signing",
            Request::post("/deployments")
                .header("x-ripcord-signature-256", sign(SECRET, &good))
                .header("x-ripcord-delivery", "c")
                .body(tampered)
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            None,
        ),
        (
            "not hex",
            Request::post("/deployments")
                .header("x-ripcord-signature-256", "sha256=zz")
                .header("x-ripcord-delivery", "d")
                .body(good.clone())
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            None,
        ),
        (
            "no delivery id",
            Request::post("/deployments")
                .header("x-ripcord-signature-256", sign(SECRET, &good))
                .body(good.clone())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("x-ripcord-delivery"),
        ),
        (
            "not JSON",
            ripcord_delivery(b"{service:", "e"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some("body"),
        ),
        (
            "unknown service",
            ripcord_delivery(&good_body("shop"), "f"),
            StatusCode::NOT_FOUND,
            "unknown_service",
            None,
        ),
        (
            "already active",
            ripcord_delivery(&good_body("web"), "g"),
            StatusCode::CONFLICT,
            "deployment_active",
            None,
        ),
        (
            "too large",
            ripcord_delivery(&vec![b' '; MAX_BODY + 1], "h"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            None,
        ),
        (
            "wrong method",
            Request::get("/deployments").body(Vec::new()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        ),
    ];
    for (field, bad) in [
        (
            "service",
            json!({"service": "Web!", "version": "v1", "commit": "a", "committed_at": "2026-11-26T05:00:00Z", "author": "x"}),
        ),
        (
            "version",
            json!({"service": "web", "commit": "a", "committed_at": "2026-11-26T05:00:00Z", "author": "x"}),
        ),
        (
            "commit",
            json!({"service": "web", "version": "v1", "commit": 7, "committed_at": "2026-11-26T05:00:00Z", "author": "x"}),
        ),
        (
            "committed_at",
            json!({"service": "web", "version": "v1", "commit": "a", "committed_at": "yesterday", "author": "x"}),
        ),
        (
            "author",
            json!({"service": "web", "version": "v1", "commit": "a", "committed_at": "2026-11-26T05:00:00Z", "author": ""}),
        ),
        (
            "slot",
            json!({"service": "web", "version": "v1", "commit": "a", "committed_at": "2026-11-26T05:00:00Z", "author": "x", "slot": "purple"}),
        ),
    ] {
        let body = bad.to_string().into_bytes();
        cases.push((
            "a bad field",
            ripcord_delivery(&body, &format!("bad-{field}")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(field),
        ));
    }
    for (name, request, status, code, field) in cases {
        let (got, body, outcome) = call(&sb, request);
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error"], code, "{name}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {body}"
        );
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{name}: {body}");
        }
        assert!(outcome.created.is_none());
        assert_eq!(written(&sb), before, "{name} wrote something");
    }
    let (status, body, _) = call(&sb, ripcord_delivery(&good_body("web"), "g"));
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a refused delivery id was not remembered: {body}"
    );
    assert!(body["message"].as_str().unwrap().contains(&active));
}

#[test]
fn the_live_slot_is_refused() {
    let sb = sandbox();
    let body = String::from_utf8(good_body("web"))
        .unwrap()
        .replace("green", "blue");
    let (status, answer, _) = call(&sb, ripcord_delivery(body.as_bytes(), "live"));
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["error"], "slot_is_live");
    assert_eq!(written(&sb).1, 0);
}

fn github(event: &str, body: &[u8], delivery: &str) -> Request<Vec<u8>> {
    Request::post("/deployments")
        .header("x-github-event", event)
        .header("x-hub-signature-256", sign(SECRET, body))
        .header("x-github-delivery", delivery)
        .body(body.to_vec())
        .unwrap()
}

#[test]
fn a_github_deployment_event_starts_a_deployment() {
    let sb = sandbox();
    let payload = include_bytes!("data/github-webhooks/deployment-basic.payload.json");
    let (status, body, _) = call(
        &sb,
        github(
            "deployment",
            payload,
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        ),
    );
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let d = sb.deployment(&DeploymentId::new(body["deployment_id"].as_str().unwrap()).unwrap());
    assert_eq!(d.service.as_str(), "hello-world");
    assert_eq!(d.release.commit, "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
    assert_eq!(d.release.version, "master");
    assert_eq!(d.release.author, "Codertocat");
    assert_eq!(
        d.release.committed_at,
        Some(Timestamp::parse_rfc3339("2019-05-15T15:20:53Z").unwrap())
    );

    let (again, second, _) = call(
        &sb,
        github(
            "deployment",
            payload,
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        ),
    );
    assert_eq!(again, StatusCode::OK);
    assert_eq!(second["deployment_id"], body["deployment_id"]);

    // A GitHub delivery signed for another body is refused.
    let mut forged = github("deployment", payload, "other");
    *forged.body_mut() =
        include_bytes!("data/github-webhooks/deployment-gh-pages.payload.json").to_vec();
    let before = written(&sb);
    let (status, _, _) = call(&sb, forged);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(written(&sb), before);
}

#[test]
fn other_github_events_are_acknowledged_and_ignored() {
    let sb = sandbox();
    let payload = include_bytes!("data/github-webhooks/workflow_run-completed.payload.json");
    let (status, body, outcome) = call(&sb, github("workflow_run", payload, "wr-1"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ignored"], "workflow_run");
    assert!(outcome.created.is_none());
    assert_eq!(written(&sb), (0, 0), "nothing is written");
}

#[test]
fn without_an_applied_configuration_every_service_is_unknown() {
    let sb = Sandbox::new(
        ripcord_core::config::parse_config("test", CONFIG).unwrap(),
        T0,
    );
    let (status, body, _) = call(&sb, ripcord_delivery(&good_body("web"), "x"));
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("ripcord apply"));
}
