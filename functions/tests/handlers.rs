//! The controller and alarm handlers, called directly with real EventBridge event JSON,
//! over the in-memory ports.

use std::time::Duration;

use ripcord_core::config::Step;
use ripcord_core::deployment::State;
use ripcord_core::domain::{ServiceName, Slot, Weight, Weights};
use ripcord_core::history::{Actor, EventKind};
use ripcord_core::memory::{Sandbox, block_on, test_service};
use ripcord_core::time::Timestamp;
use ripcord_functions::{alarm, controller};
use serde_json::Value;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

fn event(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("fixtures are JSON")
}

fn sandbox() -> Sandbox {
    let steps = vec![
        Step::SetWeight(Weight::new(10).unwrap()),
        Step::Pause(Duration::from_secs(300)),
        Step::SetWeight(Weight::new(100).unwrap()),
    ];
    Sandbox::single(test_service("web", steps), T0)
}

#[test]
fn a_scheduled_event_passes_over_every_active_deployment() {
    let sb = sandbox();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let out = block_on(controller::handle(
        &sb.driver(),
        &event(include_bytes!("events/scheduled.json")),
    ))
    .unwrap();
    assert_eq!(out.passes.len(), 1);
    assert_eq!(out.passes[0].deployment_id, d.id);
    assert!(matches!(
        out.passes[0].state,
        State::Progressing { step: 1 }
    ));
    assert_eq!(
        out.passes[0].wake_at,
        Some(T0.plus(Duration::from_secs(300))),
        "the pause's end is the next wake-up"
    );
    assert!(out.failed.is_empty());
}

#[test]
fn a_direct_invocation_passes_over_one_deployment() {
    let sb = sandbox();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let direct = serde_json::json!({"deployment_id": d.id.as_str()});
    let out = block_on(controller::handle(&sb.driver(), &direct)).unwrap();
    assert_eq!(out.passes.len(), 1);
    assert!(out.passes[0].transitions > 0);

    let unknown = event(include_bytes!("events/one-deployment.json"));
    let err = block_on(controller::handle(&sb.driver(), &unknown)).unwrap_err();
    assert!(err.to_string().contains("no deployment wake-me"), "{err}");
}

#[test]
fn unrecognised_controller_events_are_refused() {
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"deployment_id": 7}),
        serde_json::json!({"deployment_id": "has space"}),
    ] {
        assert!(
            matches!(
                controller::parse_event(&bad),
                Err(controller::ControllerError::BadEvent(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn an_alarm_event_rolls_back_at_once_and_records_the_value() {
    let sb = sandbox();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    let web = ServiceName::new("web").unwrap();
    assert_eq!(
        sb.world.router.current(&web).unwrap().of(Slot::Green),
        Weight::new(10).unwrap()
    );
    let out = block_on(alarm::handle(
        &sb.driver(),
        &event(include_bytes!("events/alarm-state-change.json")),
    ))
    .unwrap();
    assert_eq!(out.alarm, "web-5xx");
    assert_eq!(out.passes.len(), 1);
    assert_eq!(out.passes[0].state, State::RolledBack);
    assert_eq!(
        sb.world.router.current(&web),
        Some(Weights::all_on(Slot::Blue))
    );
    let started = sb
        .store
        .events_of(&d.id)
        .into_iter()
        .find(|e| e.kind == EventKind::RollbackStarted)
        .unwrap();
    assert_eq!(
        started.actor,
        Actor::Alarm {
            name: "web-5xx".into()
        }
    );
    assert!(started.reason.contains("[61.0"), "{}", started.reason);
}

#[test]
fn an_alarm_going_back_to_ok_changes_nothing() {
    let sb = sandbox();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    let before = sb.store.commit_count();
    let out = block_on(alarm::handle(
        &sb.driver(),
        &event(include_bytes!("events/alarm-back-to-ok.json")),
    ))
    .unwrap();
    assert_eq!(out.state, "OK");
    assert!(out.passes.is_empty());
    assert_eq!(sb.store.commit_count(), before);
}

#[test]
fn an_alarm_in_the_baseline_does_not_roll_back() {
    let sb = sandbox();
    sb.world.alarms.fire("web-5xx", "already firing");
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    let out = block_on(alarm::handle(
        &sb.driver(),
        &event(include_bytes!("events/alarm-state-change.json")),
    ))
    .unwrap();
    assert_eq!(out.passes.len(), 1);
    assert!(
        matches!(out.passes[0].state, State::Progressing { .. }),
        "{:?}",
        out.passes[0].state
    );
}

#[test]
fn other_events_are_refused_by_the_alarm_function() {
    let sb = sandbox();
    let err = block_on(alarm::handle(
        &sb.driver(),
        &event(include_bytes!("events/scheduled.json")),
    ))
    .unwrap_err();
    assert!(matches!(err, alarm::AlarmError::BadEvent(_)), "{err}");
}
