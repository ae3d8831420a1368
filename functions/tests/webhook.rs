//! The webhook function: the API's webhook, then the new deployment's first pass
//! before the answer, with real HMAC signatures over the in-memory ports.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use ripcord_api::webhook::{Webhook, sign};
use ripcord_core::deployment::State;
use ripcord_core::domain::{DeploymentId, ServiceName, Slot, Weight};
use ripcord_core::memory::{MemoryWakeUps, Sandbox, block_on};
use ripcord_core::ports::{BoxFuture, Store};
use ripcord_core::time::Timestamp;
use ripcord_functions::controller::Controller;
use serde_json::{Value, json};

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);
const SECRET: &[u8] = b"a shared secret of the kind CI keeps";

const CONFIG: &str = r#"
[services.web]
strategy = "canary"
steps = [{ set_weight = 10 }, { pause = "5m" }, { set_weight = 100 }]

[services.web.local]
listen = "127.0.0.1:8080"
upstreams = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
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
    DeploymentId::new(format!("fn-{}", IDS.fetch_add(1, Ordering::SeqCst))).unwrap()
}

fn call(sb: &Sandbox, wake_ups: &MemoryWakeUps, request: Request<Vec<u8>>) -> (StatusCode, Value) {
    let webhook = Webhook {
        driver: sb.driver(),
        secret: SECRET,
        new_id: &new_id,
    };
    let pause = |wait: Duration| -> BoxFuture<'static, ()> {
        sb.clock.advance(wait);
        Box::pin(async {})
    };
    let controller = Controller {
        driver: sb.driver(),
        wake_ups,
        pause: &pause,
        concurrency: 1,
    };
    let deadline = T0.plus(Duration::from_secs(30));
    let response = block_on(ripcord_functions::webhook::handle(
        &webhook,
        &controller,
        request,
        deadline,
    ));
    let body = serde_json::from_str(response.body()).expect("every answer is JSON");
    (response.status(), body)
}

fn body() -> Vec<u8> {
    json!({
        "service": "web",
        "version": "v43",
        "commit": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
        "committed_at": "2026-11-26T05:00:00Z",
        "author": "octocat",
        "slot": "green"
    })
    .to_string()
    .into_bytes()
}

fn delivery(body: &[u8], signature: &str, id: &str) -> Request<Vec<u8>> {
    Request::post("/deployments")
        .header("content-type", "application/json")
        .header("x-ripcord-signature-256", signature)
        .header("x-ripcord-delivery", id)
        .body(body.to_vec())
        .unwrap()
}

#[test]
fn a_new_deployment_has_its_first_step_applied_before_the_answer() {
    let sb = sandbox();
    let wake_ups = MemoryWakeUps::default();
    let body = body();
    let (status, answer) = call(&sb, &wake_ups, delivery(&body, &sign(SECRET, &body), "d-1"));
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = DeploymentId::new(answer["deployment_id"].as_str().unwrap()).unwrap();

    let web = ServiceName::new("web").unwrap();
    assert_eq!(
        sb.world.router.current(&web).unwrap().of(Slot::Green),
        Weight::new(10).unwrap(),
        "the first step is live when CI gets its answer"
    );
    assert_eq!(sb.deployment(&id).state, State::Progressing { step: 1 });
    assert_eq!(
        wake_ups.booked(&id),
        Some(T0.plus(Duration::from_secs(300))),
        "the pause's end is booked"
    );

    // The same delivery again answers with the same id and runs nothing more.
    let commits = sb.store.commit_count();
    let (again, answer_again) = call(&sb, &wake_ups, delivery(&body, &sign(SECRET, &body), "d-1"));
    assert_eq!(again, StatusCode::OK);
    assert_eq!(answer_again["deployment_id"], answer["deployment_id"]);
    assert_eq!(sb.store.commit_count(), commits);
}

#[test]
fn a_bad_signature_is_refused_and_nothing_runs() {
    let sb = sandbox();
    let wake_ups = MemoryWakeUps::default();
    let body = body();
    let (status, answer) = call(
        &sb,
        &wake_ups,
        delivery(&body, &sign(b"another secret", &body), "d-2"),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["error"].is_string() && answer["message"].is_string(),
        "{answer}"
    );
    assert!(block_on(sb.store.active_deployments()).unwrap().is_empty());
    assert_eq!(sb.store.commit_count(), 0);
    assert_eq!(wake_ups.count(), 0);
    let web = ServiceName::new("web").unwrap();
    assert_eq!(
        sb.world.router.set_calls(),
        0,
        "{:?}",
        sb.world.router.current(&web)
    );
}
