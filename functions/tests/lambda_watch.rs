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

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, ProtocolEnum, TargetDescription, TargetGroupTuple,
};
use ed25519_dalek::{Signer, SigningKey};
use ripcord_api::webhook::sign;
use ripcord_aws::scheduler::schedule_name;
use ripcord_aws::{DynamoFlagStore, DynamoStore};
use ripcord_core::flags::stored::api_key_sha256;
use ripcord_core::history::Actor;
use ripcord_core::ports::{ApiKeyRecord, Clock, FlagRecordKind, FlagStore, FlagWrite, Store};
use ripcord_functions::host::SystemClock;
use serde_json::{Value, json};

const SECRET: &str = "the secret CI signs with";
const FLAGS_KEY: &str = "rcf_the_key_apps_evaluate_flags_with";
const CONTROLLER_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:ripcord-controller";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ripcord-scheduler";

/// A setting the test cannot run without; fails saying how to get it.
fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: run scripts/test, which installs cargo-lambda into \
             .venv-cargo-lambda and starts the AWS emulator, and sets \
             RIPCORD_CARGO_LAMBDA and AWS_ENDPOINT_URL for this test"
        ),
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SystemClock.now().as_millis() % 1_000_000
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Processes that are killed when the test ends, however it ends.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request over a fresh connection; the status and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).expect("connect to cargo lambda watch");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// EC2 through its Query API (the emulator checks no signature), for the network and
/// the instance an ALB's target group needs, without an EC2 SDK.
fn ec2(action: &str, params: &[(&str, &str)]) -> String {
    let endpoint = required("AWS_ENDPOINT_URL");
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("AWS_ENDPOINT_URL ends with a port");
    let mut body = format!("Action={action}&Version=2016-11-15");
    for (key, value) in params {
        body.push_str(&format!("&{key}={}", value.replace('/', "%2F")));
    }
    let (status, answer) = http(
        port,
        "POST",
        "/",
        &[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=0".to_string(),
            ),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "EC2 {action}: {answer}");
    answer
}

fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect("the tag") + open.len();
    let end = xml[start..].find('<').expect("a closing tag") + start;
    xml[start..end].to_string()
}

/// The listener's weight on each target group.
async fn weights(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener: &str,
) -> Vec<(String, i32)> {
    let out = elb
        .describe_listeners()
        .listener_arns(listener)
        .send()
        .await
        .expect("DescribeListeners");
    let action = &out.listeners()[0].default_actions()[0];
    match action.forward_config() {
        Some(forward) => forward
            .target_groups()
            .iter()
            .map(|g| {
                (
                    g.target_group_arn().unwrap().to_string(),
                    g.weight().unwrap_or(1),
                )
            })
            .collect(),
        None => vec![(action.target_group_arn().unwrap().to_string(), 1)],
    }
}

fn weight_on(weights: &[(String, i32)], group: &str) -> i32 {
    weights
        .iter()
        .find(|(arn, _)| arn == group)
        .map_or(0, |(_, w)| *w)
}

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
    let sdk = ripcord_aws::sdk_config().await;

    // The world: a table, an ALB whose listener sends everything to blue, a healthy
    // instance in green, an alarm in OK, a schedule group.
    let table = unique("ripcord-watch");
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    ripcord_aws::dynamo::create_table(&dynamo, &table)
        .await
        .expect("create the table");
    let vpc = xml_value(&ec2("CreateVpc", &[("CidrBlock", "10.9.0.0/16")]), "vpcId");
    let subnets: Vec<String> = [("10.9.1.0/24", "eu-west-1a"), ("10.9.2.0/24", "eu-west-1b")]
        .iter()
        .map(|(cidr, zone)| {
            xml_value(
                &ec2(
                    "CreateSubnet",
                    &[
                        ("VpcId", &vpc),
                        ("CidrBlock", cidr),
                        ("AvailabilityZone", zone),
                    ],
                ),
                "subnetId",
            )
        })
        .collect();
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let lb = elb
        .create_load_balancer()
        .name(unique("rcw"))
        .set_subnets(Some(subnets.clone()))
        .send()
        .await
        .expect("CreateLoadBalancer");
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let mut groups = Vec::new();
    for slot in ["blue", "green"] {
        let out = elb
            .create_target_group()
            .name(unique(&format!("rcw-{slot}")))
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&vpc)
            .send()
            .await
            .expect("CreateTargetGroup");
        groups.push(
            out.target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_string(),
        );
    }
    let (blue, green) = (groups[0].clone(), groups[1].clone());
    let forward = |blue_weight: i32| {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .forward_config(
                ForwardActionConfig::builder()
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(&blue)
                            .weight(blue_weight)
                            .build(),
                    )
                    .target_groups(
                        TargetGroupTuple::builder()
                            .target_group_arn(&green)
                            .weight(100 - blue_weight)
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    let listener = elb
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(forward(100))
        .send()
        .await
        .expect("CreateListener");
    let listener = listener.listeners()[0].listener_arn().unwrap().to_string();
    let instance = xml_value(
        &ec2(
            "RunInstances",
            &[
                ("ImageId", "ami-12c6146b"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "t3.micro"),
                ("SubnetId", &subnets[0]),
            ],
        ),
        "instanceId",
    );
    elb.register_targets()
        .target_group_arn(&green)
        .targets(
            TargetDescription::builder()
                .id(&instance)
                .port(8080)
                .build(),
        )
        .send()
        .await
        .expect("RegisterTargets");
    let alarm = unique("web-5xx");
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm)
        .metric_name("HTTPCode_Target_5XX_Count")
        .namespace("AWS/ApplicationELB")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    cloudwatch
        .set_alarm_state()
        .alarm_name(&alarm)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("quiet")
        .send()
        .await
        .expect("SetAlarmState");
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    let group = unique("ripcord-wakeups");
    scheduler
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("CreateScheduleGroup");
    let config = format!(
        r#"
[services.web]
strategy = "canary"
steps = [{{ set_weight = 10 }}, {{ pause = "5m" }}, {{ set_weight = 100 }}]

[services.web.aws]
listener_arn = "{listener}"
target_groups = ["{blue}", "{green}"]

[services.web.alarms]
names = ["{alarm}"]
"#
    );
    ripcord_core::config::parse_config("ripcord.toml", &config).expect("a valid configuration");
    let store = DynamoStore::new(dynamo.clone(), &table);
    store
        .put_config(&config, 0, SystemClock.now())
        .await
        .expect("apply the configuration");
    // A flag on for the pro plan, and the API key apps evaluate it with.
    let flags = DynamoFlagStore::new(dynamo.clone(), &table);
    flags
        .put_flag_record(FlagWrite {
            kind: FlagRecordKind::Flag,
            name: "pro-search".into(),
            expected_version: 0,
            definition: json!({"name": "pro-search", "enabled": true, "strategies": [
                {"name": "default", "constraints": [
                    {"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]}),
            at: SystemClock.now(),
            actor: Actor::Cli { user: "ops".into() },
            summary: "created".into(),
        })
        .await
        .expect("create the flag");
    flags
        .create_api_key(ApiKeyRecord {
            name: "web".into(),
            sha256: api_key_sha256(FLAGS_KEY),
            created_at: SystemClock.now(),
            created_by: Actor::Cli { user: "ops".into() },
        })
        .await
        .expect("create the API key");

    // The Discord application's key pair; the function gets the public half.
    let discord_key = SigningKey::from_bytes(&[7; 32]);

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
    for (name, binary) in [
        ("ripcord-webhook", env!("CARGO_BIN_EXE_ripcord-webhook")),
        (
            "ripcord-controller",
            env!("CARGO_BIN_EXE_ripcord-controller"),
        ),
        ("ripcord-alarm", env!("CARGO_BIN_EXE_ripcord-alarm")),
        ("ripcord-flags", env!("CARGO_BIN_EXE_ripcord-flags")),
        (
            "ripcord-interactions",
            env!("CARGO_BIN_EXE_ripcord-interactions"),
        ),
    ] {
        processes.0.push(
            Command::new(binary)
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{port}/.rt/{name}"),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                // Warnings and errors only, so a failure's log is short enough to read.
                .env("AWS_LAMBDA_LOG_LEVEL", "warn")
                .env("RIPCORD_TABLE", &table)
                .env("RIPCORD_WEBHOOK_SECRET", SECRET)
                .env_remove("RIPCORD_WEBHOOK_SECRET_PARAM")
                .env(
                    "RIPCORD_DISCORD_PUBLIC_KEY",
                    hex::encode(discord_key.verifying_key().as_bytes()),
                )
                .env_remove("RIPCORD_DISCORD_PUBLIC_KEY_PARAM")
                .env("RIPCORD_DISCORD_APPLICATION_ID", "1234567890123456789")
                .env_remove("RIPCORD_DISCORD_APPLICATION_ID_PARAM")
                .env("RIPCORD_DISCORD_BOT_TOKEN", "a bot token")
                .env_remove("RIPCORD_DISCORD_BOT_TOKEN_PARAM")
                .env("RIPCORD_SCHEDULE_GROUP", &group)
                .env("RIPCORD_CONTROLLER_ARN", CONTROLLER_ARN)
                .env("RIPCORD_SCHEDULER_ROLE_ARN", ROLE_ARN)
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
    let now = weights(&elb, &listener).await;
    assert_eq!(weight_on(&now, &green), 10, "{now:?}");
    assert_eq!(weight_on(&now, &blue), 90, "{now:?}");

    // Its next pass is booked at the pause's end.
    let id = ripcord_core::domain::DeploymentId::new(id).unwrap();
    let schedule = scheduler
        .get_schedule()
        .name(schedule_name(&id))
        .group_name(&group)
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
        &discord_signed(&discord_key),
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
    let after = weights(&elb, &listener).await;
    assert_eq!(weight_on(&after, &blue), 100, "{after:?}");
    assert_eq!(weight_on(&after, &green), 0, "{after:?}");

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
