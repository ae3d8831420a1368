//! The world the function binaries run in on the local AWS emulator, shared by the
//! cargo-lambda-watch test and the cold-start benchmark: a table with a configuration
//! applied, a flag and the API key apps evaluate it with, an ALB whose listener sends
//! everything to blue with a healthy instance in green, an alarm in OK, a schedule
//! group, and the environment each binary is started with.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, ProtocolEnum, TargetDescription, TargetGroupTuple,
};
use ed25519_dalek::SigningKey;
use ripcord_aws::{DynamoFlagStore, DynamoStore};
use ripcord_core::flags::stored::api_key_sha256;
use ripcord_core::history::Actor;
use ripcord_core::ports::{ApiKeyRecord, Clock, FlagRecordKind, FlagStore, FlagWrite, Store};
use ripcord_functions::host::SystemClock;
use serde_json::json;

pub const SECRET: &str = "the secret CI signs with";
pub const FLAGS_KEY: &str = "rcf_the_key_apps_evaluate_flags_with";
pub const CONTROLLER_ARN: &str =
    "arn:aws:lambda:eu-west-1:123456789012:function:ripcord-controller";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/ripcord-scheduler";

/// The function binaries Cargo built, by their contract names.
pub const BINARIES: [(&str, &str); 5] = [
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
];

/// A setting the test cannot run without; fails saying how to get it.
pub fn required(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: run scripts/test, which installs cargo-lambda into \
             .venv-cargo-lambda and starts the AWS emulator, and sets \
             RIPCORD_CARGO_LAMBDA and AWS_ENDPOINT_URL for this test"
        ),
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SystemClock.now().as_millis() % 1_000_000
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Processes that are killed when the test ends, however it ends.
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request over a fresh connection; the status and the body.
pub fn http(
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
pub fn ec2(action: &str, params: &[(&str, &str)]) -> String {
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

pub fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect("the tag") + open.len();
    let end = xml[start..].find('<').expect("a closing tag") + start;
    xml[start..end].to_string()
}

/// The listener's weight on each target group.
pub async fn weights(
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

pub fn weight_on(weights: &[(String, i32)], group: &str) -> i32 {
    weights
        .iter()
        .find(|(arn, _)| arn == group)
        .map_or(0, |(_, w)| *w)
}

/// What the binaries run against, made on the emulator by [`World::build`].
pub struct World {
    pub sdk: aws_config::SdkConfig,
    pub table: String,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub group: String,
    pub listener: String,
    pub blue: String,
    pub green: String,
    pub alarm: String,
    /// The Discord application's key pair; the interactions function gets the public half.
    pub discord_key: SigningKey,
}

impl World {
    /// A table, an ALB whose listener sends everything to blue, a healthy instance in
    /// green, an alarm in OK, a schedule group, the configuration applied, a flag for the
    /// pro plan and the API key apps evaluate it with.
    pub async fn build() -> World {
        let sdk = ripcord_aws::sdk_config().await;
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
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
            )
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

        World {
            sdk,
            table,
            elb,
            cloudwatch,
            scheduler,
            group,
            listener,
            blue,
            green,
            alarm,
            discord_key: SigningKey::from_bytes(&[7; 32]),
        }
    }

    /// The environment a function binary starts with: the Lambda runtime API at `api`
    /// (`host:port/path`), its name, and Ripcord's settings for this world.
    pub fn env(&self, name: &str, api: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            // Warnings and errors only, so a failure's log is short enough to read.
            ("AWS_LAMBDA_LOG_LEVEL", "warn".into()),
            ("RIPCORD_TABLE", self.table.clone()),
            ("RIPCORD_WEBHOOK_SECRET", SECRET.into()),
            (
                "RIPCORD_DISCORD_PUBLIC_KEY",
                hex::encode(self.discord_key.verifying_key().as_bytes()),
            ),
            (
                "RIPCORD_DISCORD_APPLICATION_ID",
                "1234567890123456789".into(),
            ),
            ("RIPCORD_DISCORD_BOT_TOKEN", "a bot token".into()),
            ("RIPCORD_SCHEDULE_GROUP", self.group.clone()),
            ("RIPCORD_CONTROLLER_ARN", CONTROLLER_ARN.into()),
            ("RIPCORD_SCHEDULER_ROLE_ARN", ROLE_ARN.into()),
        ]
    }
}

/// The `*_PARAM` settings a binary must not inherit, so that it reads the plain ones.
pub const UNSET: [&str; 4] = [
    "RIPCORD_WEBHOOK_SECRET_PARAM",
    "RIPCORD_DISCORD_PUBLIC_KEY_PARAM",
    "RIPCORD_DISCORD_APPLICATION_ID_PARAM",
    "RIPCORD_DISCORD_BOT_TOKEN_PARAM",
];
