//! The SDK clients Ripcord uses all talk to the local emulator.

mod support;

#[tokio::test]
async fn every_client_reaches_the_emulator() {
    let config = support::config().await;
    aws_sdk_dynamodb::Client::new(&config)
        .list_tables()
        .send()
        .await
        .expect("DynamoDB");
    aws_sdk_elasticloadbalancingv2::Client::new(&config)
        .describe_load_balancers()
        .send()
        .await
        .expect("ELBv2");
    let alarms = aws_sdk_cloudwatch::Client::new(&config)
        .describe_alarms()
        .send()
        .await
        .expect("CloudWatch (pinned to a version whose protocol the emulator reads)");
    assert!(
        alarms
            .metric_alarms()
            .iter()
            .all(|a| a.alarm_name().is_some())
    );
    aws_sdk_ssm::Client::new(&config)
        .describe_parameters()
        .send()
        .await
        .expect("SSM");
}
