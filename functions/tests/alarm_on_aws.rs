//! The alarm function over the AWS adapters and the DynamoDB store on the local AWS
//! emulator (moto, which `scripts/test` starts): a real "CloudWatch Alarm State
//! Change" event puts the listener back at 100% stable in one invocation, and an
//! alarm that was already firing when the deployment started does not.
//!
//! The emulator installation (ALB, alarm, table) is the one the AWS adapter tests use.

#[path = "../../crates/aws/tests/support/mod.rs"]
mod support;

use aws_sdk_cloudwatch::types::StateValue;
use ripcord_core::deployment::State;
use ripcord_core::domain::{Slot, Weight, Weights};
use ripcord_core::history::{Actor, EventKind, verify_history};
use ripcord_functions::alarm;
use serde_json::Value;
use support::world::Installation;

/// The recorded alarm event, renamed to the installation's alarm.
fn alarm_event(alarm: &str) -> Value {
    let mut event: Value = serde_json::from_slice(include_bytes!("events/alarm-state-change.json"))
        .expect("the fixture is JSON");
    event["detail"]["alarmName"] = Value::String(alarm.to_string());
    event["resources"] = serde_json::json!([format!(
        "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{alarm}"
    )]);
    event
}

fn ten_percent_green() -> Weights {
    Weights::split(Slot::Green, Weight::new(10).unwrap())
}

#[tokio::test]
async fn one_alarm_event_puts_the_listener_back_on_stable() {
    let inst = Installation::new(&support::config().await).await;
    let d = inst.deploy("web-1").await;
    inst.driver().reconcile(&d.id).await.unwrap();
    assert_eq!(inst.listener_weights().await, ten_percent_green());

    // CloudWatch holds the alarm in ALARM when it sends the event.
    inst.set_alarm(StateValue::Alarm, "Threshold Crossed: 61.0 > 25.0")
        .await;
    let out = alarm::handle(&inst.driver(), &alarm_event(&inst.alarm))
        .await
        .unwrap();

    assert_eq!(out.alarm, inst.alarm);
    assert_eq!(out.passes.len(), 1);
    assert_eq!(
        out.passes[0].state,
        State::RolledBack,
        "{:?}",
        out.passes[0]
    );
    assert_eq!(inst.listener_weights().await, Weights::all_on(Slot::Blue));
    let stored = inst.deployment(&d.id).await;
    let events = inst.events(&d.id).await;
    verify_history(&events, Some(&stored)).unwrap();
    let started = events
        .iter()
        .find(|e| e.kind == EventKind::RollbackStarted)
        .expect("the rollback is recorded");
    assert_eq!(
        started.actor,
        Actor::Alarm {
            name: inst.alarm.clone()
        }
    );
    assert!(started.reason.contains("[61.0"), "{}", started.reason);
    assert_eq!(events.last().unwrap().state, State::RolledBack);
}

#[tokio::test]
async fn an_alarm_already_firing_at_the_start_does_not_roll_back() {
    let inst = Installation::new(&support::config().await).await;
    inst.set_alarm(StateValue::Alarm, "firing before the deployment")
        .await;
    let d = inst.deploy("web-1").await;
    let report = inst.driver().reconcile(&d.id).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(inst.listener_weights().await, ten_percent_green());

    let out = alarm::handle(&inst.driver(), &alarm_event(&inst.alarm))
        .await
        .unwrap();

    assert_eq!(out.passes.len(), 1);
    assert!(
        matches!(out.passes[0].state, State::Progressing { .. }),
        "{:?}",
        out.passes[0]
    );
    assert_eq!(inst.listener_weights().await, ten_percent_green());
    let events = inst.events(&d.id).await;
    assert!(
        events.iter().all(|e| e.kind != EventKind::RollbackStarted),
        "{events:#?}"
    );
    let baseline = events
        .iter()
        .find(|e| e.kind.name() == "baseline_taken")
        .expect("the baseline is recorded");
    assert!(baseline.reason.contains(&inst.alarm), "{}", baseline.reason);
}
