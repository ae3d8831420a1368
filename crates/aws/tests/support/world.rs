//! A whole installation on the local emulator: a service `web` behind an ALB whose
//! listener forwards to a blue and a green target group (one healthy instance in
//! each), a CloudWatch alarm it watches, and Ripcord's DynamoDB table, with the
//! driver's collaborators built on the AWS adapters, as the Lambda functions build them.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, ProtocolEnum, TargetDescription, TargetGroupTuple,
};
use ripcord_aws::dynamo::create_table;
use ripcord_aws::{AwsProviders, DynamoStore, SmokeChecksElsewhere};
use ripcord_core::config::{Config, parse_config};
use ripcord_core::deployment::Deployment;
use ripcord_core::domain::{DeploymentId, ServiceName, Slot, Weight, Weights};
use ripcord_core::driver::{DeployRequest, Driver};
use ripcord_core::history::Event;
use ripcord_core::memory::{ManualClock, MemoryNotifier};
use ripcord_core::ports::{Clock, Store};
use ripcord_core::time::Timestamp;

use super::ec2;

/// When every test installation's clock starts.
pub const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

/// The service every installation deploys.
pub const SERVICE: &str = "web";

/// The canary every installation runs: 10%, 50%, 100%, ten seconds apart, and a
/// ten-second bake.
pub const STEPS: &str = r#"[{ set_weight = 10 }, { pause = "10s" }, { set_weight = 50 }, { pause = "10s" }, { set_weight = 100 }]"#;

/// The service's ALB, alarm and table in the emulator, and a driver's collaborators.
pub struct Installation {
    /// ELBv2 straight to the emulator, for looking and changing things by hand.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// CloudWatch straight to the emulator.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// DynamoDB straight to the emulator.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The blue target group's ARN.
    pub blue: String,
    /// The green target group's ARN.
    pub green: String,
    /// The listener whose default action holds the weights.
    pub listener: String,
    /// The alarm the service watches.
    pub alarm: String,
    /// The configuration deployments start under.
    pub config: Config,
    /// The store, through the SDK configuration the installation was made with.
    pub store: DynamoStore,
    /// The same table, straight to the emulator, for checks.
    pub table: DynamoStore,
    /// The AWS adapters, through the same SDK configuration.
    pub providers: AwsProviders,
    /// Where notifications go.
    pub notifier: MemoryNotifier,
    /// The driver's clock.
    pub clock: ManualClock,
}

/// One instance, running, registered in every target group: the emulator reports it
/// healthy, which lets deployments through the health gate.
fn instance() -> &'static str {
    static INSTANCE: OnceLock<String> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        ec2::values(
            &ec2::call(
                "RunInstances",
                &[
                    ("ImageId", "ami-12c6146b"),
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("InstanceType", "t3.micro"),
                    ("SubnetId", &ec2::network().subnets[0]),
                ],
            ),
            "instanceId",
        )
        .remove(0)
    })
}

/// A forward action to blue and green with these weights.
pub fn forward(blue: &str, blue_weight: i32, green: &str, green_weight: i32) -> Action {
    let group = |arn: &str, weight| {
        TargetGroupTuple::builder()
            .target_group_arn(arn)
            .weight(weight)
            .build()
    };
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .target_groups(group(blue, blue_weight))
                .target_groups(group(green, green_weight))
                .build(),
        )
        .build()
}

impl Installation {
    /// Makes the service's resources in the emulator. Ripcord's own clients (the store
    /// and the adapters) are built from `sdk`, which may lead through a proxy; the
    /// set-up and the checks go straight to the emulator.
    pub async fn new(sdk: &aws_config::SdkConfig) -> Installation {
        let direct = super::config().await;
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&direct);
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&direct);
        let dynamodb = aws_sdk_dynamodb::Client::new(&direct);
        let network = ec2::network();
        let instance = instance();

        let lb = elb
            .create_load_balancer()
            .name(super::unique("rc"))
            .set_subnets(Some(network.subnets.to_vec()))
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
                .name(super::unique(&format!("rc-{slot}")))
                .protocol(ProtocolEnum::Http)
                .port(8080)
                .vpc_id(&network.vpc)
                .send()
                .await
                .expect("CreateTargetGroup");
            let arn = out.target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_string();
            elb.register_targets()
                .target_group_arn(&arn)
                .targets(TargetDescription::builder().id(instance).port(8080).build())
                .send()
                .await
                .expect("RegisterTargets");
            groups.push(arn);
        }
        let [blue, green] = <[String; 2]>::try_from(groups).unwrap();
        let listener = elb
            .create_listener()
            .load_balancer_arn(&lb_arn)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(forward(&blue, 100, &green, 0))
            .send()
            .await
            .expect("CreateListener")
            .listeners()[0]
            .listener_arn()
            .unwrap()
            .to_string();

        let alarm = super::unique("web-5xx");
        cloudwatch
            .put_metric_alarm()
            .alarm_name(&alarm)
            .namespace("AWS/ApplicationELB")
            .metric_name("HTTPCode_Target_5XX_Count")
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(25.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .expect("PutMetricAlarm");

        let text = format!(
            "[services.{SERVICE}]\nstrategy = \"canary\"\nsteps = {STEPS}\nbake = \"10s\"\n\
             [services.{SERVICE}.aws]\nlistener_arn = \"{listener}\"\ntarget_groups = [\"{blue}\", \"{green}\"]\n\
             [services.{SERVICE}.alarms]\nnames = [\"{alarm}\"]\n"
        );
        let config = parse_config("ripcord.toml", &text).expect("a valid configuration");

        let table = super::unique("ripcord");
        create_table(&dynamodb, &table).await.expect("create table");
        Installation {
            elb,
            cloudwatch,
            dynamodb: dynamodb.clone(),
            blue,
            green,
            listener,
            alarm,
            config,
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table.clone()),
            table: DynamoStore::new(dynamodb.clone(), table),
            providers: AwsProviders::new(sdk, Box::new(SmokeChecksElsewhere)),
            notifier: MemoryNotifier::default(),
            clock: ManualClock::new(T0),
        }
    }

    /// A driver over the installation.
    pub fn driver(&self) -> Driver<'_> {
        Driver {
            providers: &self.providers,
            store: &self.store,
            notifier: &self.notifier,
            clock: &self.clock,
        }
    }

    /// Starts a deployment of `web` with id `id`, as the webhook does.
    pub async fn deploy(&self, id: &str) -> Deployment {
        let request = DeployRequest {
            service: ServiceName::new(SERVICE).unwrap(),
            version: format!("{id}-version"),
            commit: "0a1b2c3".into(),
            committed_at: Some(self.clock.now().minus(Duration::from_secs(3600))),
            author: "octocat".into(),
            slot: None,
        };
        self.driver()
            .start(
                &self.config,
                1,
                request,
                DeploymentId::new(id).unwrap(),
                None,
            )
            .await
            .expect("the deployment starts")
    }

    /// The weights the listener serves, read straight from the emulator.
    pub async fn listener_weights(&self) -> Weights {
        let listener = self
            .elb
            .describe_listeners()
            .listener_arns(&self.listener)
            .send()
            .await
            .expect("DescribeListeners")
            .listeners()[0]
            .clone();
        let action = &listener.default_actions()[0];
        if let Some(single) = action.target_group_arn()
            && action.forward_config().is_none()
        {
            let slot = if single == self.blue {
                Slot::Blue
            } else {
                Slot::Green
            };
            return Weights::all_on(slot);
        }
        let (mut blue, mut green) = (0, 0);
        for group in action
            .forward_config()
            .expect("a forward action")
            .target_groups()
        {
            let weight = group.weight().unwrap_or(1);
            match group.target_group_arn() {
                Some(arn) if arn == self.blue => blue += weight,
                Some(arn) if arn == self.green => green += weight,
                other => panic!("the listener forwards to {other:?}"),
            }
        }
        let percent = u32::try_from(green * 100 / (blue + green)).expect("a percentage");
        Weights::split(Slot::Green, Weight::new(percent).unwrap())
    }

    /// Changes the listener's weights by hand, behind Ripcord's back.
    pub async fn set_weights_by_hand(&self, blue: i32, green: i32) {
        self.elb
            .modify_listener()
            .listener_arn(&self.listener)
            .default_actions(forward(&self.blue, blue, &self.green, green))
            .send()
            .await
            .expect("ModifyListener");
    }

    /// Sets the alarm's state, as CloudWatch does when it evaluates it.
    pub async fn set_alarm(&self, state: StateValue, reason: &str) {
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(&self.alarm)
            .state_value(state)
            .state_reason(reason)
            .send()
            .await
            .expect("SetAlarmState");
    }

    /// The deployment as stored, read straight from the table.
    pub async fn deployment(&self, id: &DeploymentId) -> Deployment {
        self.table
            .deployment(id)
            .await
            .expect("the store answers")
            .expect("the deployment exists")
    }

    /// The deployment's events as stored, read straight from the table.
    pub async fn events(&self, id: &DeploymentId) -> Vec<Event> {
        self.table.events(id).await.expect("the store answers")
    }
}
