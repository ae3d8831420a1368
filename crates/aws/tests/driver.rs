//! The driver over the AWS adapters and the DynamoDB store, on the local emulator, as
//! the controller and alarm functions run it: a canary whose listener weights follow
//! the plan pass by pass, weights changed by hand put back and recorded, and rollbacks
//! that meet throttling, 5xx answers and slow answers on their way (through the
//! fault-injecting proxy of `support::faults`) and still end at 100% stable, with the
//! table's history and the listener agreeing.

mod support;

use std::time::Duration;

use aws_sdk_cloudwatch::types::StateValue;
use ripcord_core::deployment::State;
use ripcord_core::domain::{DeploymentId, Slot, Weight, Weights};
use ripcord_core::driver::DriverError;
use ripcord_core::engine::NotificationKind;
use ripcord_core::history::{EventKind, verify_history};
use ripcord_core::ports::{Clock, StoreError};
use support::faults::{Fault, FaultProxy};
use support::world::Installation;

fn green(percent: u32) -> Weights {
    Weights::split(Slot::Green, Weight::new(percent).unwrap())
}

fn all_blue() -> Weights {
    Weights::all_on(Slot::Blue)
}

/// The table and the listener tell the same story: the history verifies, its last
/// weights are the deployment's desired weights, and once the deployment is terminal
/// or verified at its step, the listener serves exactly those.
async fn assert_table_and_listener_agree(inst: &Installation, id: &DeploymentId) {
    let deployment = inst.deployment(id).await;
    let events = inst.events(id).await;
    verify_history(&events, Some(&deployment)).expect("the history verifies");
    let last_weights = events
        .iter()
        .rev()
        .find_map(|e| e.weights_after)
        .expect("an event with weights");
    assert_eq!(last_weights, deployment.desired, "{events:#?}");
    if deployment.state.is_terminal() {
        assert_eq!(inst.listener_weights().await, deployment.desired);
    }
}

/// Puts a deployment at 10% green, with its alarm firing in CloudWatch.
async fn canary_at_ten_with_the_alarm_firing(inst: &Installation, id: &str) -> DeploymentId {
    let d = inst.deploy(id).await;
    let report = inst.driver().reconcile(&d.id).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(inst.listener_weights().await, green(10));
    inst.set_alarm(StateValue::Alarm, "Threshold Crossed: 61.0 > 25.0")
        .await;
    inst.clock.advance(Duration::from_secs(3));
    d.id
}

#[tokio::test]
async fn a_canary_moves_the_listener_step_by_step_to_success() {
    let inst = Installation::new(&support::config().await).await;
    let d = inst.deploy("web-1").await;
    assert_eq!(inst.listener_weights().await, all_blue());
    let mut served = Vec::new();
    for _ in 0..30 {
        let report = inst.driver().reconcile(&d.id).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        // After every pass, the listener serves what the table says was set.
        let stored = inst.deployment(&d.id).await;
        let listener = inst.listener_weights().await;
        assert_eq!(listener, stored.desired, "after a pass in {}", stored.state);
        assert_table_and_listener_agree(&inst, &d.id).await;
        served.push(listener.of(Slot::Green).get());
        if report.state.is_terminal() {
            break;
        }
        inst.clock.advance(Duration::from_secs(10));
    }
    served.dedup();
    assert_eq!(served, vec![10, 50, 100], "one step per pause");

    let done = inst.deployment(&d.id).await;
    assert_eq!(done.state, State::Succeeded);
    let set: Vec<Weights> = inst
        .events(&d.id)
        .await
        .iter()
        .filter(|e| e.kind == EventKind::WeightsSet)
        .filter_map(|e| e.weights_after)
        .collect();
    assert_eq!(set, vec![green(10), green(50), green(100)]);
}

#[tokio::test]
async fn weights_changed_by_hand_are_put_back_and_recorded() {
    let inst = Installation::new(&support::config().await).await;
    let d = inst.deploy("web-1").await;
    inst.driver().reconcile(&d.id).await.unwrap();
    assert_eq!(inst.listener_weights().await, green(10));

    // Someone moves half the traffic in the console.
    inst.set_weights_by_hand(50, 50).await;
    inst.clock.advance(Duration::from_secs(5));
    let report = inst.driver().reconcile(&d.id).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    assert_eq!(inst.listener_weights().await, green(10));
    let events = inst.events(&d.id).await;
    let drift = events
        .iter()
        .find(|e| e.kind == EventKind::Drift)
        .expect("a drift event");
    assert_eq!(drift.weights_before, Some(green(50)));
    assert_eq!(drift.weights_after, Some(green(10)));
    assert!(drift.reason.contains("re-applying"), "{}", drift.reason);
    assert_table_and_listener_agree(&inst, &d.id).await;
    assert!(matches!(
        inst.deployment(&d.id).await.state,
        State::Progressing { .. }
    ));
}

#[tokio::test]
async fn the_sdks_retries_ride_out_throttling_5xx_and_slow_answers_during_a_rollback() {
    let proxy = FaultProxy::start();
    let inst = Installation::new(&proxy.sdk_config().await).await;
    let id = canary_at_ten_with_the_alarm_firing(&inst, "web-1").await;

    // Three failures in a row are within the SDK's four attempts.
    proxy.fail_next("TransactWriteItems", 1, Fault::Throttle);
    proxy.fail_next("TransactWriteItems", 1, Fault::InternalError);
    proxy.fail_next("ModifyListener", 2, Fault::Throttle);
    proxy.fail_next("ModifyListener", 1, Fault::Unavailable);
    proxy.fail_next("DescribeListeners", 1, Fault::InternalError);
    // Slower than one attempt may take: the SDK gives up on it and tries again.
    proxy.fail_next(
        "DescribeListeners",
        1,
        Fault::Delay(ripcord_aws::ATTEMPT_TIMEOUT + Duration::from_millis(500)),
    );
    proxy.fail_next("DescribeAlarms", 1, Fault::Throttle);
    let before = proxy.seen("ModifyListener");

    let reports = inst
        .driver()
        .on_alarm(&inst.alarm, "Threshold Crossed: 61.0 > 25.0")
        .await
        .unwrap();

    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, State::RolledBack);
    assert!(reports[0].errors.is_empty(), "{:?}", reports[0].errors);
    for action in [
        "TransactWriteItems",
        "ModifyListener",
        "DescribeListeners",
        "DescribeAlarms",
    ] {
        assert_eq!(proxy.pending(action), 0, "every {action} fault was served");
    }
    assert_eq!(
        proxy.seen("ModifyListener") - before,
        4,
        "one rollback, set on the fourth attempt"
    );
    assert_eq!(inst.listener_weights().await, all_blue());
    assert_table_and_listener_agree(&inst, &id).await;
    let kinds: Vec<&str> = inst
        .events(&id)
        .await
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert!(
        kinds.ends_with(&["rollback_started", "finished"]),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_rollback_failing_past_the_sdks_retries_is_retried_by_the_next_pass_and_alerted() {
    let proxy = FaultProxy::start();
    let inst = Installation::new(&proxy.sdk_config().await).await;
    let id = canary_at_ten_with_the_alarm_firing(&inst, "web-1").await;

    // Every attempt of the alarm invocation's rollback fails.
    proxy.fail_next(
        "ModifyListener",
        ripcord_aws::MAX_ATTEMPTS as usize,
        Fault::Unavailable,
    );
    let reports = inst
        .driver()
        .on_alarm(&inst.alarm, "Threshold Crossed: 61.0 > 25.0")
        .await
        .unwrap();
    let report = &reports[0];
    assert!(
        matches!(report.state, State::RollingBack { .. }),
        "{report:?}"
    );
    assert!(report.wake_at.is_some(), "a retry is scheduled");
    let last_fault = proxy.injected().last().unwrap().request_id.clone();
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("ServiceUnavailable") && e.contains(&last_fault)),
        "the error keeps the AWS request id {last_fault}: {:?}",
        report.errors
    );

    // The decision is recorded whole; the listener has not moved; the state says the
    // rollback is still to be verified.
    let stored = inst.deployment(&id).await;
    assert!(matches!(stored.state, State::RollingBack { .. }));
    assert_eq!(stored.desired, all_blue());
    assert_eq!(inst.listener_weights().await, green(10));
    assert_table_and_listener_agree(&inst, &id).await;
    let alerts_before = inst
        .notifier
        .sent()
        .iter()
        .filter(|n| n.kind == NotificationKind::Alert)
        .count();
    assert!(alerts_before >= 1, "the rollback was alerted");

    // The controller's next pass re-applies it, says so, and verifies it.
    inst.clock.advance(Duration::from_secs(3));
    let report = inst.driver().reconcile(&id).await.unwrap();
    assert_eq!(report.state, State::RolledBack, "{report:?}");
    assert_eq!(inst.listener_weights().await, all_blue());
    assert_table_and_listener_agree(&inst, &id).await;
    let events = inst.events(&id).await;
    let retry = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::RollbackRetrying { .. }))
        .expect("the retry is in the history");
    assert!(retry.reason.contains("still serves"), "{}", retry.reason);
    let alerts: Vec<String> = inst
        .notifier
        .sent()
        .into_iter()
        .filter(|n| n.kind == NotificationKind::Alert)
        .map(|n| n.text)
        .collect();
    assert!(alerts.len() > alerts_before, "{alerts:?}");
    assert!(
        alerts.iter().any(|text| text.contains("not yet verified")),
        "{alerts:?}"
    );
}

#[tokio::test]
async fn a_rollback_the_table_cannot_record_still_puts_traffic_back_and_is_recorded_later() {
    let proxy = FaultProxy::start();
    let inst = Installation::new(&proxy.sdk_config().await).await;
    let id = canary_at_ten_with_the_alarm_firing(&inst, "web-1").await;
    let before = inst.deployment(&id).await;

    proxy.fail_next(
        "TransactWriteItems",
        ripcord_aws::MAX_ATTEMPTS as usize,
        Fault::Throttle,
    );
    let error = inst
        .driver()
        .on_alarm(&inst.alarm, "Threshold Crossed: 61.0 > 25.0")
        .await
        .expect_err("the invocation fails, so that it is retried");
    let last_fault = proxy.injected().last().unwrap().request_id.clone();
    match &error {
        DriverError::Store(StoreError::Unavailable(e)) => {
            assert!(e.message.contains("ThrottlingException"), "{e}");
            assert!(e.message.contains(&last_fault), "{e}");
        }
        other => panic!("expected the store's error, got {other:?}"),
    }

    // Traffic came first; the table holds nothing of the failed write.
    assert_eq!(inst.listener_weights().await, all_blue());
    let stored = inst.deployment(&id).await;
    assert_eq!(stored.revision, before.revision);
    assert_eq!(inst.events(&id).await.len() as u64, before.event_count);

    // The next pass sees the alarm still firing and records the rollback.
    inst.clock.advance(Duration::from_secs(3));
    let report = inst.driver().reconcile(&id).await.unwrap();
    assert_eq!(report.state, State::RolledBack, "{report:?}");
    assert_eq!(inst.listener_weights().await, all_blue());
    assert_table_and_listener_agree(&inst, &id).await;
    let started = inst
        .events(&id)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::RollbackStarted)
        .expect("the rollback is recorded");
    assert!(started.reason.contains("61.0"), "{}", started.reason);
    assert!(inst.clock.now() > before.created_at);
}

#[tokio::test]
async fn a_commit_whose_answer_timed_out_but_landed_is_not_mistaken_for_a_lost_race() {
    let proxy = FaultProxy::start();
    let inst = Installation::new(&proxy.sdk_config().await).await;
    let id = canary_at_ten_with_the_alarm_firing(&inst, "web-1").await;
    let before = inst.events(&id).await.len();

    // The rollback's commit reaches the table, but its answer comes after the SDK gave
    // up on the attempt; the SDK sends it again, and that retry reaches the table after
    // the first one was stored, so it fails its revision check against its own write.
    proxy.fail_next(
        "TransactWriteItems",
        1,
        Fault::Delay(ripcord_aws::ATTEMPT_TIMEOUT + Duration::from_millis(100)),
    );
    proxy.fail_next(
        "TransactWriteItems",
        1,
        Fault::Delay(Duration::from_millis(400)),
    );
    let sent_before = proxy.seen("TransactWriteItems");

    let reports = inst
        .driver()
        .on_alarm(&inst.alarm, "Threshold Crossed: 61.0 > 25.0")
        .await
        .unwrap();

    assert_eq!(
        proxy.pending("TransactWriteItems"),
        0,
        "both delays were served"
    );
    assert!(
        proxy.seen("TransactWriteItems") - sent_before >= 2,
        "the SDK sent the commit again"
    );
    let report = &reports[0];
    assert_eq!(report.conflicts, 0, "no lost race was seen: {report:?}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.state, State::RolledBack, "{report:?}");
    assert_eq!(inst.listener_weights().await, all_blue());
    assert_table_and_listener_agree(&inst, &id).await;
    let events = inst.events(&id).await;
    let started = events[before..]
        .iter()
        .filter(|e| e.kind == EventKind::RollbackStarted)
        .count();
    assert_eq!(started, 1, "the rollback is recorded once: {events:#?}");
    let alerts = inst
        .notifier
        .sent()
        .iter()
        .filter(|n| n.kind == NotificationKind::Alert)
        .count();
    assert_eq!(alerts, 1, "and alerted once");
}
