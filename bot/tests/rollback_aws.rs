//! `/rollback` end to end on the local AWS emulator (moto, which `scripts/test`
//! starts): a canary at 10% on a real ALB listener, its deployment in the DynamoDB
//! table, the question showing the weights read back from the ALB, and the confirmed
//! rollback that leaves the listener at 100% blue.

mod common;
#[path = "../../crates/aws/tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use aws_sdk_elasticloadbalancingv2::Client as ElbClient;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ProtocolEnum, TargetDescription,
};
use common::*;
use ripcord_aws::dynamo::create_table;
use ripcord_aws::{AwsProviders, DynamoStore};
use ripcord_bot::{DiscordRest, Interactions, RequestVerifier};
use ripcord_core::config::{ServiceSpec, parse_config};
use ripcord_core::deployment::State;
use ripcord_core::domain::{DeploymentId, ServiceName, Slot, Weight, Weights};
use ripcord_core::driver::{DeployRequest, Driver, Providers};
use ripcord_core::history::{Actor, EventKind};
use ripcord_core::memory::{ManualClock, MemoryNotifier};
use ripcord_core::observation::SmokeReport;
use ripcord_core::ports::{BoxFuture, PortError, SmokeRunner, Store};
use serde_json::json;
use serenity::model::id::ApplicationId;

const DEPLOYER: &str = "1100000000000000333";

/// Calls one EC2 action of the emulator (for the VPC, subnets and instance an ALB
/// needs) and returns the body; the emulator does not check signatures.
fn ec2(action: &str, params: &[(&str, &str)]) -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "eu-west-1".to_string());
    let mut body = format!("Action={action}&Version=2016-11-15");
    for (key, value) in params {
        let value: String = value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        body.push_str(&format!("&{key}={value}"));
    }
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(&address).expect("connect to the emulator");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.contains(" 200 "),
        "EC2 {action} failed: {head}\n{body}"
    );
    body.to_string()
}

fn first_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).expect(tag) + open.len();
    let end = xml[start..].find('<').unwrap();
    xml[start..start + end].to_string()
}

/// Smoke checks pass (the service has none; the controller runs them on AWS).
struct NoSmokeChecks;

impl SmokeRunner for NoSmokeChecks {
    fn run<'a>(
        &'a self,
        _: &'a ServiceSpec,
        _: Slot,
    ) -> BoxFuture<'a, Result<SmokeReport, PortError>> {
        Box::pin(async { Ok(SmokeReport::default()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_from_discord_puts_the_alb_back_at_100_percent_stable() {
    let sdk = support::config().await;
    let elb = ElbClient::new(&sdk);

    // An ALB listener forwarding to blue, and a running instance in green.
    let vpc = first_value(&ec2("CreateVpc", &[("CidrBlock", "10.1.0.0/16")]), "vpcId");
    let subnet = |cidr: &str, zone: &str| {
        first_value(
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
    };
    let subnets = vec![
        subnet("10.1.1.0/24", "eu-west-1a"),
        subnet("10.1.2.0/24", "eu-west-1b"),
    ];
    let lb = elb
        .create_load_balancer()
        .name(support::unique("rcbot"))
        .set_subnets(Some(subnets.clone()))
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let mut groups = Vec::new();
    for slot in ["blue", "green"] {
        let out = elb
            .create_target_group()
            .name(support::unique(&format!("rcbot-{slot}")))
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap();
        groups.push(
            out.target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_string(),
        );
    }
    let (blue, green) = (groups[0].clone(), groups[1].clone());
    let listener = elb
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&blue)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let listener = listener.listeners()[0].listener_arn().unwrap().to_string();
    let instance = first_value(
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
        .unwrap();

    // The configuration and the table.
    let text = format!(
        "[services.web]\nstrategy = \"canary\"\nsteps = [{{ set_weight = 10 }}, {{ approval = true }}, {{ set_weight = 100 }}]\n\
         [services.web.aws]\nlistener_arn = \"{listener}\"\ntarget_groups = [\"{blue}\", \"{green}\"]\n\
         [services.web.chat]\ndeployers = [\"{DEPLOYER}\"]\n"
    );
    let config = parse_config("ripcord.toml", &text).unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = support::unique("ripcord-bot");
    create_table(&dynamodb, &table).await.unwrap();
    let store = leak(DynamoStore::new(dynamodb, table));
    let providers = leak(AwsProviders::new(&sdk, Box::new(NoSmokeChecks)));
    let clock = leak(ManualClock::new(T0));
    let driver = Driver {
        providers,
        store,
        notifier: leak(MemoryNotifier::default()),
        clock,
    };

    // A deployment that moved 10% to green and waits for approval.
    let request = DeployRequest {
        service: ServiceName::new("web").unwrap(),
        version: "v43".into(),
        commit: "0a1b2c3".into(),
        committed_at: None,
        author: "octocat".into(),
        slot: None,
    };
    let id = DeploymentId::new("d-aws-rollback").unwrap();
    driver
        .start(&config, 1, request, id.clone(), None)
        .await
        .unwrap();
    driver.reconcile(&id).await.unwrap();
    let d = store.deployment(&id).await.unwrap().unwrap();
    assert!(
        matches!(d.state, State::Paused { step: 1, .. }),
        "{:?}",
        d.state
    );
    let spec = &d.spec;
    let ten = Weights::split(Slot::Green, Weight::new(10).unwrap());
    assert_eq!(
        providers.router(spec).read_weights(spec).await.unwrap(),
        ten
    );

    // The bot over HTTP, on the same ports.
    let (_fake, base) = FakeDiscord::start().await;
    let bot = leak(Interactions {
        driver,
        verifier: leak(RequestVerifier::from_hex(&public_hex(&discord_key())).unwrap()),
        rest: leak(DiscordRest::new("test-bot-token", ApplicationId::new(1)).with_base(base)),
        flags: None,
        budget: std::time::Duration::from_millis(2_500),
    });
    let address = serve(bot).await;
    let now = T0.as_millis() / 1000;
    let alice = person("1200000000000000501", "Alice", &[DEPLOYER]);

    let question = post_signed(
        address,
        &discord_key(),
        now,
        &command(
            &alice,
            "rollback",
            &[
                ("service", json!("web")),
                ("reason", json!("5xx on checkout")),
            ],
        ),
    )
    .await;
    assert!(
        question.took < std::time::Duration::from_secs(3),
        "took {:?}",
        question.took
    );
    assert!(
        question
            .content()
            .contains("`blue 90% → 100%, green 10% → 0%`"),
        "{:?}",
        question.body
    );
    let confirm = question.custom_ids()[0].clone();
    assert_eq!(confirm, "rc1:rollback-confirm:d-aws-rollback:s2");

    let done = post_signed(
        address,
        &discord_key(),
        now,
        &click(&alice, &confirm, &question.content()),
    )
    .await;
    assert!(
        done.took < std::time::Duration::from_secs(3),
        "took {:?}",
        done.took
    );
    assert_eq!(done.kind(), 7, "{:?}", done.body);
    assert!(
        done.content()
            .contains("Rolled back web v43: traffic is back on blue"),
        "{}",
        done.content()
    );

    // The listener itself: 100% blue, read back through the ELB API.
    let described = elb
        .describe_listeners()
        .listener_arns(&listener)
        .send()
        .await
        .unwrap();
    let forward = described.listeners()[0].default_actions()[0]
        .forward_config()
        .unwrap();
    let weights: Vec<(String, i32)> = forward
        .target_groups()
        .iter()
        .map(|t| {
            (
                t.target_group_arn().unwrap().to_string(),
                t.weight().unwrap_or(0),
            )
        })
        .collect();
    assert!(weights.contains(&(blue.clone(), 100)), "{weights:?}");
    assert!(
        weights.iter().all(|(arn, w)| arn == &blue || *w == 0),
        "{weights:?}"
    );
    assert_eq!(
        providers.router(spec).read_weights(spec).await.unwrap(),
        Weights::all_on(Slot::Blue)
    );

    // The table: rolled back, by Alice, for her reason, with the click in the history.
    let d = store.deployment(&id).await.unwrap().unwrap();
    assert_eq!(d.state, State::RolledBack);
    assert_eq!(
        d.rollback.unwrap().reason,
        "rollback requested by chat Alice: 5xx on checkout"
    );
    let events = store.events(&id).await.unwrap();
    let by_alice = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::CommandApplied { .. }))
        .unwrap();
    assert_eq!(
        by_alice.actor,
        Actor::Chat {
            user_id: alice.id.into(),
            name: "Alice".into(),
            roles: vec![DEPLOYER.into()]
        }
    );
}
