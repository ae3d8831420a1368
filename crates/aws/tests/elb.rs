//! The ALB router against the local emulator: weights set and read back on listeners
//! and rules, stickiness and listener settings kept, drift seen, foreign forward
//! actions refused without a change, and target health.

mod support;

use support::ec2;

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, Listener, RedirectActionConfig,
    RedirectActionStatusCodeEnum, Rule, RuleCondition, TargetDescription,
    TargetGroupStickinessConfig, TargetGroupTuple,
};
use ripcord_aws::AlbRouter;
use ripcord_core::config::{ServiceSpec, parse_config};
use ripcord_core::domain::{Slot, Weight, Weights};
use ripcord_core::observation::HealthReport;
use ripcord_core::ports::{ErrorKind, TargetHealth, TrafficRouter};

/// An ALB with a blue, a green and a third target group, and one listener.
struct Alb {
    elb: Client,
    router: AlbRouter,
    blue: String,
    green: String,
    third: String,
    listener: String,
}

fn forward_to(groups: &[(&str, i32)], stickiness: Option<TargetGroupStickinessConfig>) -> Action {
    let mut config = ForwardActionConfig::builder().set_target_group_stickiness_config(stickiness);
    for (arn, weight) in groups {
        config = config.target_groups(
            TargetGroupTuple::builder()
                .target_group_arn(*arn)
                .weight(*weight)
                .build(),
        );
    }
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(config.build())
        .build()
}

fn forward_single(arn: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(arn)
        .build()
}

impl Alb {
    /// A new ALB whose listener's default action is made by `default_action` from the
    /// blue, green and third target group ARNs.
    async fn new(default_action: impl FnOnce(&str, &str, &str) -> Action) -> Alb {
        let config = support::config().await;
        let elb = Client::new(&config);
        let network = ec2::network();
        let lb = elb
            .create_load_balancer()
            .name(support::unique("rc"))
            .set_subnets(Some(network.subnets.to_vec()))
            .send()
            .await
            .expect("CreateLoadBalancer");
        let lb_arn = lb.load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string();
        let mut groups = Vec::new();
        for slot in ["blue", "green", "third"] {
            let out = elb
                .create_target_group()
                .name(support::unique(&format!("rc-{slot}")))
                .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
                .port(8080)
                .vpc_id(&network.vpc)
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
        let [blue, green, third] = <[String; 3]>::try_from(groups).unwrap();
        let listener = elb
            .create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(80)
            .default_actions(default_action(&blue, &green, &third))
            .send()
            .await
            .expect("CreateListener");
        let listener = listener.listeners()[0].listener_arn().unwrap().to_string();
        Alb {
            elb,
            router: AlbRouter::new(Client::new(&config)),
            blue,
            green,
            third,
            listener,
        }
    }

    /// The service `web` switched by `switch_key` (`listener_arn` or `rule_arn`).
    fn service(&self, switch_key: &str, switch_arn: &str) -> ServiceSpec {
        let text = format!(
            "[services.web]\nstrategy = \"all_at_once\"\n[services.web.aws]\n{switch_key} = \"{switch_arn}\"\ntarget_groups = [\"{}\", \"{}\"]\n",
            self.blue, self.green
        );
        let config = parse_config("ripcord.toml", &text).expect("a valid configuration");
        config.services.into_values().next().unwrap()
    }

    fn listener_service(&self) -> ServiceSpec {
        self.service("listener_arn", &self.listener)
    }

    async fn describe_listener(&self) -> Listener {
        self.elb
            .describe_listeners()
            .listener_arns(&self.listener)
            .send()
            .await
            .expect("DescribeListeners")
            .listeners()[0]
            .clone()
    }

    async fn describe_rule(&self, arn: &str) -> Rule {
        self.elb
            .describe_rules()
            .rule_arns(arn)
            .send()
            .await
            .expect("DescribeRules")
            .rules()[0]
            .clone()
    }

    async fn set_default_action(&self, action: Action) {
        self.elb
            .modify_listener()
            .listener_arn(&self.listener)
            .default_actions(action)
            .send()
            .await
            .expect("ModifyListener");
    }
}

/// The target groups and weights of an action's forward config.
fn weights_of(action: &Action) -> Vec<(String, i32)> {
    action
        .forward_config()
        .map(|c| {
            c.target_groups()
                .iter()
                .map(|g| {
                    (
                        g.target_group_arn().unwrap().to_string(),
                        g.weight().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn green(percent: u32) -> Weights {
    Weights::split(Slot::Green, Weight::new(percent).unwrap())
}

#[tokio::test]
async fn a_listener_forwarding_to_blue_only_reads_as_all_blue() {
    let alb = Alb::new(|blue, _, _| forward_single(blue)).await;
    let weights = alb
        .router
        .read_weights(&alb.listener_service())
        .await
        .expect("read_weights");
    assert_eq!(weights, Weights::all_on(Slot::Blue));
}

#[tokio::test]
async fn weights_set_on_a_listener_are_read_back() {
    let alb = Alb::new(|blue, _, _| forward_single(blue)).await;
    let service = alb.listener_service();

    alb.router
        .set_weights(&service, green(10))
        .await
        .expect("set 90/10");
    assert_eq!(alb.router.read_weights(&service).await.unwrap(), green(10));
    let listener = alb.describe_listener().await;
    assert_eq!(
        weights_of(&listener.default_actions()[0]),
        vec![(alb.blue.clone(), 90), (alb.green.clone(), 10)],
        "the ALB holds the percentages as relative weights, blue first"
    );

    for percent in [100, 0] {
        alb.router
            .set_weights(&service, green(percent))
            .await
            .expect("set");
        assert_eq!(
            alb.router.read_weights(&service).await.unwrap(),
            green(percent)
        );
    }
}

#[tokio::test]
async fn setting_weights_keeps_stickiness_and_the_listener_settings() {
    let stickiness = TargetGroupStickinessConfig::builder()
        .enabled(true)
        .duration_seconds(600)
        .build();
    let kept = stickiness.clone();
    let alb =
        Alb::new(move |blue, green, _| forward_to(&[(blue, 100), (green, 0)], Some(stickiness)))
            .await;
    let before = alb.describe_listener().await;

    alb.router
        .set_weights(&alb.listener_service(), green(10))
        .await
        .expect("set 90/10");

    let after = alb.describe_listener().await;
    let forward = after.default_actions()[0].forward_config().unwrap();
    assert_eq!(forward.target_group_stickiness_config(), Some(&kept));
    assert_eq!(after.port(), before.port());
    assert_eq!(after.protocol(), before.protocol());
    assert_eq!(after.ssl_policy(), before.ssl_policy());
    assert_eq!(after.certificates(), before.certificates());
    assert_eq!(after.load_balancer_arn(), before.load_balancer_arn());
}

#[tokio::test]
async fn a_rule_is_weighted_without_touching_its_conditions_or_the_default_action() {
    let alb = Alb::new(|_, _, third| forward_single(third)).await;
    let created = alb
        .elb
        .create_rule()
        .listener_arn(&alb.listener)
        .priority(10)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .values("/api/*")
                .build(),
        )
        .actions(forward_single(&alb.blue))
        .send()
        .await
        .expect("CreateRule");
    let rule_arn = created.rules()[0].rule_arn().unwrap().to_string();
    let service = alb.service("rule_arn", &rule_arn);
    let listener_before = alb.describe_listener().await;
    let rule_before = alb.describe_rule(&rule_arn).await;

    assert_eq!(
        alb.router.read_weights(&service).await.unwrap(),
        Weights::all_on(Slot::Blue)
    );
    alb.router
        .set_weights(&service, green(25))
        .await
        .expect("set 75/25 on the rule");
    assert_eq!(alb.router.read_weights(&service).await.unwrap(), green(25));

    let rule_after = alb.describe_rule(&rule_arn).await;
    assert_eq!(
        weights_of(&rule_after.actions()[0]),
        vec![(alb.blue.clone(), 75), (alb.green.clone(), 25)]
    );
    assert_eq!(rule_after.conditions(), rule_before.conditions());
    assert_eq!(rule_after.priority(), rule_before.priority());
    assert_eq!(
        alb.describe_listener().await,
        listener_before,
        "the listener's default action (to the third target group) is not Ripcord's to change"
    );
}

#[tokio::test]
async fn weights_changed_behind_ripcords_back_are_read_as_they_are() {
    let alb = Alb::new(|blue, _, _| forward_single(blue)).await;
    let service = alb.listener_service();
    alb.router.set_weights(&service, green(10)).await.unwrap();

    // Someone edits the listener in the console: 1 to 3 is 25% / 75%.
    alb.set_default_action(forward_to(&[(&alb.blue, 1), (&alb.green, 3)], None))
        .await;
    assert_eq!(alb.router.read_weights(&service).await.unwrap(), green(75));

    // Ripcord puts its own weights back when asked to.
    alb.router.set_weights(&service, green(10)).await.unwrap();
    assert_eq!(alb.router.read_weights(&service).await.unwrap(), green(10));
}

#[tokio::test]
async fn a_third_target_group_is_refused_and_nothing_changes() {
    let alb =
        Alb::new(|blue, green, third| forward_to(&[(blue, 80), (green, 10), (third, 10)], None))
            .await;
    let service = alb.listener_service();
    let before = alb.describe_listener().await;

    let read = alb.router.read_weights(&service).await.unwrap_err();
    assert_eq!(read.kind, ErrorKind::Permanent);
    assert!(read.message.contains(&alb.third), "{}", read.message);

    let refused = alb
        .router
        .set_weights(&service, green(50))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Permanent);
    for expected in [
        alb.third.as_str(),
        alb.blue.as_str(),
        alb.green.as_str(),
        "not a target group of service web",
        "nothing was changed",
    ] {
        assert!(
            refused.message.contains(expected),
            "{expected:?} missing from: {}",
            refused.message
        );
    }
    assert_eq!(alb.describe_listener().await, before);
}

#[tokio::test]
async fn a_redirect_is_refused_and_nothing_changes() {
    let alb = Alb::new(|_, _, _| {
        Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .protocol("HTTPS")
                    .port("443")
                    .status_code(RedirectActionStatusCodeEnum::Http301)
                    .build(),
            )
            .build()
    })
    .await;
    let service = alb.listener_service();
    let before = alb.describe_listener().await;

    let refused = alb
        .router
        .set_weights(&service, green(10))
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Permanent);
    assert!(
        refused
            .message
            .contains("does not forward: its action is a redirect (HTTP_301"),
        "{}",
        refused.message
    );
    assert!(
        alb.router.read_weights(&service).await.is_err(),
        "a redirect has no weights to read"
    );
    assert_eq!(alb.describe_listener().await, before);
}

#[tokio::test]
async fn a_missing_listener_is_a_permanent_error_that_names_it() {
    let alb = Alb::new(|blue, _, _| forward_single(blue)).await;
    let missing = format!("{}0", alb.listener);
    let error = alb
        .router
        .read_weights(&alb.service("listener_arn", &missing))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert!(error.message.contains(&missing), "{}", error.message);
    assert!(
        error.message.contains("ListenerNotFound"),
        "the AWS error code is kept: {}",
        error.message
    );
    assert!(
        error.message.contains("(request id "),
        "the request id is kept: {}",
        error.message
    );
}

#[tokio::test]
async fn a_service_not_behind_an_alb_is_refused() {
    let config = support::config().await;
    let router = AlbRouter::new(Client::new(&config));
    let text = "[services.web]\nstrategy = \"all_at_once\"\n[services.web.local]\nlisten = \"127.0.0.1:8080\"\nupstreams = [\"http://127.0.0.1:9001\", \"http://127.0.0.1:9002\"]\n";
    let service = parse_config("ripcord.toml", text)
        .unwrap()
        .services
        .into_values()
        .next()
        .unwrap();
    let error = router.read_weights(&service).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert!(
        error.message.contains("service web is not behind an ALB"),
        "{}",
        error.message
    );
    assert!(router.health(&service, Slot::Blue).await.is_err());
}

#[tokio::test]
async fn target_health_lists_every_target_that_is_not_healthy() {
    let alb = Alb::new(|blue, _, _| forward_single(blue)).await;
    let instances = ec2::values(
        &ec2::call(
            "RunInstances",
            &[
                ("ImageId", "ami-12c6146b"),
                ("MinCount", "2"),
                ("MaxCount", "2"),
                ("InstanceType", "t3.micro"),
                ("SubnetId", &ec2::network().subnets[0]),
            ],
        ),
        "instanceId",
    );
    assert_eq!(instances.len(), 2, "{instances:?}");
    alb.elb
        .register_targets()
        .target_group_arn(&alb.blue)
        .set_targets(Some(
            instances
                .iter()
                .map(|id| TargetDescription::builder().id(id).port(8080).build())
                .collect(),
        ))
        .send()
        .await
        .expect("RegisterTargets");
    // Stopped after registering: a stopped instance cannot be registered.
    ec2::call("StopInstances", &[("InstanceId.1", &instances[1])]);
    let service = alb.listener_service();

    // The emulator reports a running instance as healthy and a stopped one as unused.
    let blue = alb.router.health(&service, Slot::Blue).await.unwrap();
    assert_eq!(
        blue,
        HealthReport {
            healthy: 1,
            total: 2,
            unhealthy: vec![format!(
                "{}:8080 unused (Target.InvalidState)",
                instances[1]
            )],
        }
    );

    let green = alb.router.health(&service, Slot::Green).await.unwrap();
    assert_eq!(green, HealthReport::default(), "no targets registered");
}
