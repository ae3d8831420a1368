//! The four function binaries as Lambda runs them: each polls `cargo lambda watch`'s
//! Lambda runtime API, the webhook is called over its Function URL route with a signed
//! body, the flags function over its Function URL route with an API key, the
//! interactions function over its own with a PING signed with Ed25519, and the
//! controller and alarm function through `cargo lambda invoke`, all
//! against the local AWS emulator (table, ALB, alarm and schedule group made here),
//! with the listener's weights read back afterwards.
//!
//! The binaries are the ones Cargo builds for this test (`CARGO_BIN_EXE_*`), and watch
//! runs with `--only-lambda-apis`, so it never starts a second Cargo build that would
//! wait on this one's lock or compile the workspace again. It needs `AWS_ENDPOINT_URL`
//! (the emulator) and `RIPCORD_CARGO_LAMBDA` (the `cargo-lambda` executable), both of
//! which `scripts/test` sets.

mod lambda_world;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use lambda_world::{
    BINARIES, CONTROLLER_ARN, FLAGS_KEY, Processes, SECRET, UNSET, World, free_port, http,
    required, weight_on, weights,
};
use ripcord_api::webhook::sign;
use ripcord_aws::scheduler::schedule_name;
use ripcord_core::ports::Clock;
use ripcord_functions::host::SystemClock;
use serde_json::{Value, json};

/// `cargo lambda invoke FUNCTION --data-ascii PAYLOAD` against watch; its JSON answer.
fn invoke(cargo_lambda: &str, port: u16, function: &str, payload: &Value) -> Value {
    let out = Command::new(cargo_lambda)
        .args([
            "lambda",
            "invoke",
            function,
            "--invoke-address",
            "127.0.0.1",
        ])
        .args([
            "--invoke-port",
            &port.to_string(),
            "--output-format",
            "json",
        ])
        .args(["--data-ascii", &payload.to_string()])
        .output()
        .expect("run cargo lambda invoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo lambda invoke {function} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{function} answered {stdout:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_function_binaries_run_under_cargo_lambda_watch() {
    let cargo_lambda = required("RIPCORD_CARGO_LAMBDA");
    let endpoint = required("AWS_ENDPOINT_URL");
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL must be the local emulator, got {endpoint}"
    );
    let world = World::build().await;
    let World {
        elb,
        scheduler,
        listener,
        blue,
        green,
        alarm,
        discord_key,
        group,
        ..
    } = &world;

    // cargo lambda watch's Lambda APIs, and the four binaries polling them.
    let port = free_port();
    let mut processes = Processes(Vec::new());
    processes.0.push(
        Command::new(&cargo_lambda)
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch"),
    );
    let mut started = false;
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started,
        "cargo lambda watch did not listen on port {port} within 30 seconds"
    );
    for (name, binary) in BINARIES {
        let mut command = Command::new(binary);
        command.envs(world.env(name, &format!("http://127.0.0.1:{port}/.rt/{name}")));
        for setting in UNSET {
            command.env_remove(setting);
        }
        processes.0.push(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("start {name}: {e}")),
        );
    }

    // CI's call over the Function URL: 202, and the first step is live at once.
    let body = json!({
        "service": "web",
        "version": "v43",
        "commit": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
        "committed_at": "2026-11-26T05:00:00Z",
        "author": "octocat",
        "slot": "green"
    })
    .to_string();
    let signed = |signature: String, delivery: &str| {
        vec![
            ("Content-Type", "application/json".to_string()),
            ("X-Ripcord-Signature-256", signature),
            ("X-Ripcord-Delivery", delivery.to_string()),
        ]
    };
    let url = "/lambda-url/ripcord-webhook/deployments";
    let created_at = SystemClock.now();
    let (status, answer) = http(
        port,
        "POST",
        url,
        &signed(sign(SECRET.as_bytes(), body.as_bytes()), "delivery-1"),
        body.as_bytes(),
    );
    assert_eq!(status, 202, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("a JSON answer");
    let id = answer["deployment_id"].as_str().expect("an id").to_string();
    let now = weights(elb, listener).await;
    assert_eq!(weight_on(&now, green), 10, "{now:?}");
    assert_eq!(weight_on(&now, blue), 90, "{now:?}");

    // Its next pass is booked at the pause's end.
    let id = ripcord_core::domain::DeploymentId::new(id).unwrap();
    let schedule = scheduler
        .get_schedule()
        .name(schedule_name(&id))
        .group_name(group)
        .send()
        .await
        .expect("the wake-up is booked");
    let expression = schedule
        .schedule_expression()
        .unwrap_or_default()
        .to_string();
    let due = created_at.plus(Duration::from_secs(300));
    let latest = SystemClock.now().plus(Duration::from_secs(301));
    let booked = ripcord_core::time::Timestamp::parse_rfc3339(&format!(
        "{}Z",
        expression.trim_start_matches("at(").trim_end_matches(')')
    ))
    .expect("an at() expression");
    assert!(
        booked >= due.minus(Duration::from_secs(1)) && booked <= latest,
        "{expression} is not the pause's end"
    );
    let target = schedule.target().expect("a target");
    assert_eq!(target.arn(), CONTROLLER_ARN);
    let input: Value = serde_json::from_str(target.input().unwrap()).unwrap();
    assert_eq!(input, json!({"deployment_id": id.as_str()}));

    // A bad signature: 401, a JSON error, nothing changed.
    let (status, refusal) = http(
        port,
        "POST",
        url,
        &signed(sign(b"not the secret", body.as_bytes()), "delivery-2"),
        body.as_bytes(),
    );
    assert_eq!(status, 401, "{refusal}");
    let refusal: Value = serde_json::from_str(&refusal).expect("a JSON error");
    assert!(
        refusal["error"].is_string() && refusal["message"].is_string(),
        "{refusal}"
    );

    // Discord's PING over the interactions function's URL, signed with the
    // application's key: a PONG. Signed with another key: 401 and a JSON error.
    let ping =
        br#"{"type":1,"id":"1","application_id":"1234567890123456789","token":"t","version":1}"#;
    let timestamp = (SystemClock.now().as_millis() / 1000).to_string();
    let discord_signed = |key: &SigningKey| {
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(ping);
        vec![
            ("Content-Type", "application/json".to_string()),
            (
                "X-Signature-Ed25519",
                hex::encode(key.sign(&message).to_bytes()),
            ),
            ("X-Signature-Timestamp", timestamp.clone()),
        ]
    };
    let interactions = "/lambda-url/ripcord-interactions/";
    let (status, pong) = http(
        port,
        "POST",
        interactions,
        &discord_signed(discord_key),
        ping,
    );
    assert_eq!(status, 200, "{pong}");
    let pong: Value = serde_json::from_str(&pong).expect("a JSON answer");
    assert_eq!(pong["type"], 1, "{pong}");
    let (status, refusal) = http(
        port,
        "POST",
        interactions,
        &discord_signed(&SigningKey::from_bytes(&[8; 32])),
        ping,
    );
    assert_eq!(status, 401, "{refusal}");
    let refusal: Value = serde_json::from_str(&refusal).expect("a JSON error");
    assert!(
        refusal["error"].is_string() && refusal["message"].is_string(),
        "{refusal}"
    );

    // The controller, invoked directly and by the schedule's event.
    let direct = invoke(
        &cargo_lambda,
        port,
        "ripcord-controller",
        &json!({"deployment_id": id.as_str()}),
    );
    assert_eq!(
        direct["passes"][0]["deployment_id"],
        id.as_str(),
        "{direct}"
    );
    assert_eq!(
        direct["passes"][0]["state"]["state"], "progressing",
        "{direct}"
    );
    let scheduled: Value = serde_json::from_slice(include_bytes!("events/scheduled.json")).unwrap();
    let every = invoke(&cargo_lambda, port, "ripcord-controller", &scheduled);
    assert_eq!(every["passes"].as_array().map(Vec::len), Some(1), "{every}");
    assert!(
        every["failed"].as_array().is_some_and(Vec::is_empty),
        "{every}"
    );

    // The alarm fires: everything goes back to blue at once.
    let mut fired: Value =
        serde_json::from_slice(include_bytes!("events/alarm-state-change.json")).unwrap();
    fired["detail"]["alarmName"] = json!(alarm);
    let rolled = invoke(&cargo_lambda, port, "ripcord-alarm", &fired);
    assert_eq!(
        rolled["passes"][0]["state"]["state"], "rolled_back",
        "{rolled}"
    );
    let after = weights(elb, listener).await;
    assert_eq!(weight_on(&after, blue), 100, "{after:?}");
    assert_eq!(weight_on(&after, green), 0, "{after:?}");

    // The flags function over its Function URL: the flag for a pro user with the key,
    // then a 401 without one.
    let flag_url = "/lambda-url/ripcord-flags/ofrep/v1/evaluate/flags/pro-search";
    let context = json!({"context": {"targetingKey": "user-42", "plan": "pro"}}).to_string();
    let (status, answer) = http(
        port,
        "POST",
        flag_url,
        &[
            ("Content-Type", "application/json".to_string()),
            ("Authorization", format!("Bearer {FLAGS_KEY}")),
        ],
        context.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).expect("a JSON answer");
    assert_eq!(answer["key"], "pro-search", "{answer}");
    assert_eq!(answer["value"], true, "{answer}");
    assert_eq!(answer["reason"], "TARGETING_MATCH", "{answer}");
    let (status, refusal) = http(
        port,
        "POST",
        flag_url,
        &[
            ("Content-Type", "application/json".to_string()),
            ("Authorization", "Bearer rcf_not_a_key".to_string()),
        ],
        context.as_bytes(),
    );
    assert_eq!(status, 401, "{refusal}");
    let refusal: Value = serde_json::from_str(&refusal).expect("a JSON error");
    assert!(
        refusal["error"].is_string() && refusal["message"].is_string(),
        "{refusal}"
    );
    assert!(!refusal.to_string().contains(FLAGS_KEY), "{refusal}");
}
