//! The controller and alarm handlers, called directly with real EventBridge event JSON,
//! over the in-memory ports.

use std::time::Duration;

use ripcord_core::config::Step;
use ripcord_core::deployment::State;
use ripcord_core::domain::{ServiceName, Slot, Weight, Weights};
use ripcord_core::history::{Actor, EventKind};
use ripcord_core::memory::{MemoryWakeUps, Sandbox, block_on, test_service};
use ripcord_core::ports::{BoxFuture, Clock};
use ripcord_core::time::Timestamp;
use ripcord_functions::alarm;
use ripcord_functions::controller::{self, Controller};
use serde_json::Value;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

/// An invocation with all the time in the world.
const FAR: Timestamp = Timestamp::from_millis(1_795_675_415_000 + 3_600_000);

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

/// Runs the controller over the sandbox: its waits move the sandbox's clock, and
/// each wait is recorded.
fn invoke(
    sb: &Sandbox,
    wake_ups: &MemoryWakeUps,
    event: &Value,
    deadline: Timestamp,
) -> (
    Result<controller::ControllerOutput, controller::ControllerError>,
    Vec<Duration>,
) {
    let waits = std::sync::Mutex::new(Vec::new());
    let pause = |wait: Duration| -> BoxFuture<'static, ()> {
        sb.clock.advance(wait);
        waits.lock().unwrap().push(wait);
        Box::pin(async {})
    };
    let controller = Controller {
        driver: sb.driver(),
        wake_ups,
        pause: &pause,
        concurrency: 4,
    };
    let out = block_on(controller::handle(&controller, event, deadline));
    (out, waits.into_inner().unwrap())
}

#[test]
fn a_scheduled_event_passes_over_every_active_deployment_and_books_its_wake_up() {
    let sb = sandbox();
    let wake_ups = MemoryWakeUps::default();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let (out, waits) = invoke(
        &sb,
        &wake_ups,
        &event(include_bytes!("events/scheduled.json")),
        FAR,
    );
    let out = out.unwrap();
    assert_eq!(out.passes.len(), 1);
    assert_eq!(out.passes[0].deployment_id, d.id);
    assert!(matches!(
        out.passes[0].state,
        State::Progressing { step: 1 }
    ));
    let pause_end = T0.plus(Duration::from_secs(300));
    assert_eq!(
        out.passes[0].wake_at,
        Some(pause_end),
        "the pause's end is the next wake-up"
    );
    assert_eq!(wake_ups.booked(&d.id), Some(pause_end));
    assert!(
        waits.is_empty(),
        "a five-minute pause is booked, not waited for"
    );
    assert!(out.failed.is_empty());
}

#[test]
fn a_direct_invocation_passes_over_one_deployment() {
    let sb = sandbox();
    let wake_ups = MemoryWakeUps::default();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let direct = serde_json::json!({"deployment_id": d.id.as_str()});
    let (out, _) = invoke(&sb, &wake_ups, &direct, FAR);
    let out = out.unwrap();
    assert_eq!(out.passes.len(), 1);
    assert!(out.passes[0].transitions > 0);

    let unknown = event(include_bytes!("events/one-deployment.json"));
    let (err, _) = invoke(&sb, &wake_ups, &unknown, FAR);
    let err = err.unwrap_err();
    assert!(err.to_string().contains("no deployment wake-me"), "{err}");
}

#[test]
fn a_plan_with_short_pauses_runs_through_in_one_invocation() {
    let steps = vec![
        Step::SetWeight(Weight::new(10).unwrap()),
        Step::Pause(Duration::from_secs(1)),
        Step::SetWeight(Weight::new(50).unwrap()),
        Step::Pause(Duration::from_secs(2)),
        Step::SetWeight(Weight::new(100).unwrap()),
    ];
    let sb = Sandbox::single(test_service("web", steps), T0);
    let wake_ups = MemoryWakeUps::default();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let direct = serde_json::json!({"deployment_id": d.id.as_str()});
    let (out, waits) = invoke(&sb, &wake_ups, &direct, FAR);
    let report = &out.unwrap().passes[0];
    assert_eq!(
        waits,
        vec![Duration::from_secs(1), Duration::from_secs(2)],
        "each short pause is waited for in place"
    );
    let web = ServiceName::new("web").unwrap();
    assert_eq!(
        sb.world.router.current(&web).unwrap().of(Slot::Green),
        Weight::new(100).unwrap()
    );
    assert!(report.transitions >= 5, "{report:?}");
    // The one-minute bake is the first wait worth booking.
    let wake = report.wake_at.expect("the bake ends later");
    assert!(
        wake.since(sb.clock.now()) > controller::SHORT_WAIT,
        "{report:?}"
    );
    assert_eq!(wake_ups.booked(&d.id), Some(wake));
}

#[test]
fn a_short_wait_past_the_deadline_is_booked_instead() {
    let steps = vec![
        Step::SetWeight(Weight::new(10).unwrap()),
        Step::Pause(Duration::from_secs(2)),
        Step::SetWeight(Weight::new(100).unwrap()),
    ];
    let sb = Sandbox::single(test_service("web", steps), T0);
    let wake_ups = MemoryWakeUps::default();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let direct = serde_json::json!({"deployment_id": d.id.as_str()});
    let deadline = T0.plus(Duration::from_secs(4));
    let (out, waits) = invoke(&sb, &wake_ups, &direct, deadline);
    out.unwrap();
    assert!(waits.is_empty(), "waiting would overrun the invocation");
    assert_eq!(
        wake_ups.booked(&d.id),
        Some(T0.plus(Duration::from_secs(2)))
    );
}

#[test]
fn a_finished_deployment_loses_its_wake_up() {
    let sb = sandbox();
    let wake_ups = MemoryWakeUps::default();
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let direct = serde_json::json!({"deployment_id": d.id.as_str()});
    let mut state = State::Pending;
    for _ in 0..10 {
        let (out, _) = invoke(
            &sb,
            &wake_ups,
            &direct,
            sb.clock.now().plus(Duration::from_secs(60)),
        );
        let report = out.unwrap().passes.remove(0);
        state = report.state;
        if state.is_terminal() {
            break;
        }
        let booked = wake_ups
            .booked(&d.id)
            .expect("a waiting deployment has a wake-up");
        assert_eq!(Some(booked), report.wake_at);
        sb.clock.set(booked);
    }
    assert_eq!(state, State::Succeeded);
    assert_eq!(wake_ups.booked(&d.id), None);
    assert_eq!(wake_ups.count(), 0);
}

#[test]
fn a_wake_up_that_cannot_be_booked_is_reported_and_the_pass_stands() {
    let sb = sandbox();
    let wake_ups = MemoryWakeUps::default();
    wake_ups.fail_next(1);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let direct = serde_json::json!({"deployment_id": d.id.as_str()});
    let (out, _) = invoke(&sb, &wake_ups, &direct, FAR);
    let report = out.unwrap().passes.remove(0);
    assert!(matches!(report.state, State::Progressing { step: 1 }));
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("booking the next wake-up") && e.contains("per-minute")),
        "{:?}",
        report.errors
    );
    assert_eq!(wake_ups.booked(&d.id), None);
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
