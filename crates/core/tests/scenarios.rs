//! Whole deployments driven pass by pass through the driver and the in-memory ports.

use std::time::Duration;

use ripcord_core::config::{Step, TimeoutAction};
use ripcord_core::deployment::{CommandKind, PauseReason, State};
use ripcord_core::domain::{ServiceName, Slot, Weight, Weights};
use ripcord_core::driver::StartError;
use ripcord_core::engine::NotificationKind;
use ripcord_core::history::{Actor, EventKind, verify_history};
use ripcord_core::memory::{MetricSample, Sandbox, block_on, test_service};
use ripcord_core::observation::HealthReport;
use ripcord_core::ports::{Clock, Store, StoreError};
use ripcord_core::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

fn w(p: u32) -> Weight {
    Weight::new(p).unwrap()
}

fn canary_steps() -> Vec<Step> {
    vec![
        Step::SetWeight(w(10)),
        Step::Pause(Duration::from_secs(60)),
        Step::SetWeight(w(50)),
        Step::Pause(Duration::from_secs(60)),
        Step::SetWeight(w(100)),
    ]
}

fn web() -> ServiceName {
    ServiceName::new("web").unwrap()
}

fn chat(user: &str, roles: &[&str]) -> Actor {
    Actor::Chat {
        user_id: format!("id-{user}"),
        name: user.to_string(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

/// Runs passes every `tick` until the deployment is terminal or `limit` passes ran;
/// returns the canary weights seen after each pass.
fn run(
    sb: &Sandbox,
    id: &ripcord_core::domain::DeploymentId,
    tick: Duration,
    limit: usize,
) -> Vec<u8> {
    let mut seen = Vec::new();
    for _ in 0..limit {
        let report = sb.pass(id);
        let weights = sb
            .world
            .router
            .current(&web())
            .unwrap_or(Weights::all_on(Slot::Blue));
        seen.push(weights.of(Slot::Green).get());
        if report.state.is_terminal() {
            break;
        }
        sb.clock.advance(tick);
    }
    seen.dedup();
    seen
}

#[test]
fn a_canary_walks_its_plan_and_succeeds() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let seen = run(&sb, &d.id, Duration::from_secs(10), 100);
    assert_eq!(seen, vec![10, 50, 100]);
    let done = sb.deployment(&d.id);
    assert_eq!(done.state, State::Succeeded);
    let events = sb.store.events_of(&d.id);
    verify_history(&events, Some(&done)).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    for expected in [
        "created",
        "baseline_taken",
        "gate_passed",
        "step_started",
        "weights_set",
        "weights_verified",
        "bake_started",
        "finished",
    ] {
        assert!(kinds.contains(&expected), "missing {expected} in {kinds:?}");
    }
    let status = block_on(sb.store.service_status(&web())).unwrap().unwrap();
    assert_eq!(status.live, Slot::Green);
    assert_eq!(status.version.as_deref(), Some("v43"));
    // Pauses of a minute and a one-minute bake: done within about three minutes.
    let took = done.finished_at.unwrap().since(done.created_at);
    assert!(
        took >= Duration::from_secs(180) && took < Duration::from_secs(200),
        "{took:?}"
    );
    assert!(
        sb.notifier
            .sent()
            .iter()
            .any(|n| n.kind == NotificationKind::Summary)
    );

    // The next deployment goes the other way: green is now stable.
    let next = sb.deploy("web", "v44", "octocat").unwrap();
    assert_eq!(next.stable, Slot::Green);
    assert_eq!(next.canary(), Slot::Blue);
}

#[test]
fn a_plan_without_waits_runs_through_in_one_pass() {
    let mut spec = test_service("web", vec![Step::SetWeight(w(25)), Step::SetWeight(w(100))]);
    spec.plan.bake = Duration::ZERO;
    let sb = Sandbox::single(spec, T0);
    let d = sb.deploy("web", "v2", "ci").unwrap();
    let report = sb.pass(&d.id);
    assert_eq!(report.state, State::Succeeded, "{report:?}");
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Green))
    );
}

#[test]
fn an_alarm_rolls_back_in_one_pass_and_says_why() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    assert_eq!(
        sb.world.router.current(&web()).unwrap().of(Slot::Green),
        w(10)
    );
    sb.world.alarms.fire(
        "web-5xx",
        "Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0)",
    );
    let report = sb.pass(&d.id);
    assert_eq!(report.state, State::RolledBack);
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Blue))
    );
    let events = sb.store.events_of(&d.id);
    let started = events
        .iter()
        .find(|e| e.kind == EventKind::RollbackStarted)
        .unwrap();
    assert_eq!(
        started.actor,
        Actor::Alarm {
            name: "web-5xx".into()
        }
    );
    assert!(started.reason.contains("[12.0]"), "{}", started.reason);
    assert_eq!(started.weights_after, Some(Weights::all_on(Slot::Blue)));
    assert!(
        sb.notifier
            .sent()
            .iter()
            .any(|n| n.kind == NotificationKind::Alert && n.text.contains("web-5xx"))
    );
}

#[test]
fn the_alarm_fast_path_is_one_action_and_needs_no_observation() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    let current = sb.deployment(&d.id);
    let decision =
        ripcord_core::engine::alarm_fired(&current, "web-5xx", "value 9.0", sb.clock.now());
    assert_eq!(
        decision.actions,
        vec![ripcord_core::engine::Action::SetWeights {
            weights: Weights::all_on(Slot::Blue)
        }]
    );
    let unrelated = ripcord_core::engine::alarm_fired(&current, "other-alarm", "x", sb.clock.now());
    assert!(unrelated.is_noop());

    let reads_before = sb.world.router.set_calls();
    let reports = block_on(sb.driver().on_alarm("web-5xx", "value 9.0")).unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, State::RolledBack);
    assert_eq!(
        sb.world.router.set_calls(),
        reads_before + 1,
        "exactly one weight change"
    );
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Blue))
    );
}

#[test]
fn an_alarm_already_firing_at_the_start_is_baseline_until_it_clears() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    sb.world.alarms.fire("web-5xx", "already bad");
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    let now = sb.deployment(&d.id);
    assert!(now.baseline.as_ref().unwrap().contains_key("web-5xx"));
    assert!(
        matches!(now.state, State::Progressing { .. }),
        "{:?}",
        now.state
    );
    assert_eq!(
        sb.world.router.current(&web()).unwrap().of(Slot::Green),
        w(10)
    );
    // The fast path ignores a baseline alarm too.
    assert!(
        block_on(sb.driver().on_alarm("web-5xx", "still bad")).unwrap()[0].state
            != State::RolledBack
    );
    // It clears, then fires again: now it counts.
    sb.world.alarms.clear("web-5xx");
    sb.clock.advance(Duration::from_secs(10));
    sb.pass(&d.id);
    assert!(
        sb.store
            .events_of(&d.id)
            .iter()
            .any(|e| matches!(e.kind, EventKind::BaselineCleared { .. }))
    );
    sb.world.alarms.fire("web-5xx", "bad again");
    let report = sb.pass(&d.id);
    assert_eq!(report.state, State::RolledBack);
}

#[test]
fn block_on_baseline_fails_before_any_traffic_moves() {
    let mut spec = test_service("web", canary_steps());
    spec.alarms.block_on_baseline = true;
    let sb = Sandbox::single(spec, T0);
    sb.world.alarms.fire("web-5xx", "bad");
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let report = sb.pass(&d.id);
    assert_eq!(report.state, State::Failed);
    let events = sb.store.events_of(&d.id);
    assert!(events.iter().all(|e| {
        e.weights_after
            .is_none_or(|w| w.of(Slot::Green) == Weight::ZERO)
    }));
}

#[test]
fn drift_is_recorded_and_re_applied() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    let half = Weights::split(Slot::Green, w(50));
    sb.world.router.force(&web(), half);
    sb.clock.advance(Duration::from_secs(5));
    sb.pass(&d.id);
    assert_eq!(
        sb.world.router.current(&web()).unwrap().of(Slot::Green),
        w(10)
    );
    let drift = sb
        .store
        .events_of(&d.id)
        .into_iter()
        .find(|e| e.kind == EventKind::Drift)
        .unwrap();
    assert_eq!(drift.weights_before, Some(half));
    assert!(drift.reason.contains("re-applying"));
}

#[test]
fn a_failing_rollback_is_retried_loudly_until_traffic_is_back() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    sb.world.router.fail_next_sets(3);
    sb.world.alarms.fire("web-5xx", "bad");
    let first = sb.pass(&d.id);
    assert!(matches!(first.state, State::RollingBack { .. }));
    assert!(!first.errors.is_empty());
    assert!(
        first.wake_at.is_some(),
        "a failed rollback asks to be retried soon"
    );
    let mut passes = 1;
    while !sb.deployment(&d.id).state.is_terminal() {
        sb.clock.advance(Duration::from_secs(2));
        sb.pass(&d.id);
        passes += 1;
        assert!(passes < 10, "the rollback never completed");
    }
    assert_eq!(sb.deployment(&d.id).state, State::RolledBack);
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Blue))
    );
    let retries = sb
        .store
        .events_of(&d.id)
        .iter()
        .filter(|e| matches!(e.kind, EventKind::RollbackRetrying { .. }))
        .count();
    assert!(retries >= 2, "retries recorded: {retries}");
    let alerts = sb
        .notifier
        .sent()
        .iter()
        .filter(|n| n.kind == NotificationKind::Alert)
        .count();
    assert!(alerts >= 3, "every retry alerts: {alerts}");
}

#[test]
fn unhealthy_targets_hold_traffic_then_fail_at_the_timeout() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    sb.world.health.set(
        &web(),
        Slot::Green,
        HealthReport {
            healthy: 1,
            total: 2,
            unhealthy: vec!["i-0abc (unhealthy)".into()],
        },
    );
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    assert!(matches!(
        sb.deployment(&d.id).state,
        State::Verifying { .. }
    ));
    sb.clock.advance(Duration::from_secs(301));
    let report = sb.pass(&d.id);
    assert_eq!(report.state, State::Failed);
    let failed = sb
        .store
        .events_of(&d.id)
        .into_iter()
        .find(|e| matches!(e.kind, EventKind::GateFailed { .. }))
        .unwrap();
    assert!(failed.reason.contains("i-0abc"), "{}", failed.reason);
    assert_eq!(
        sb.world.router.current(&web()).map(|w| w.of(Slot::Green)),
        Some(Weight::ZERO)
    );
}

#[test]
fn a_failing_smoke_check_fails_the_deployment_before_traffic() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    sb.world.smoke.fail("home", "GET / -> 503");
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let report = sb.pass(&d.id);
    assert_eq!(report.state, State::Failed);
    assert!(
        sb.store
            .events_of(&d.id)
            .iter()
            .any(|e| e.reason.contains("GET / -> 503"))
    );
}

#[test]
fn the_idle_slot_already_taking_traffic_stops_the_deployment_untouched() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let odd = Weights::split(Slot::Green, w(30));
    sb.world.router.force(&web(), odd);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let report = sb.pass(&d.id);
    assert_eq!(report.state, State::Failed);
    assert_eq!(
        sb.world.router.current(&web()),
        Some(odd),
        "traffic was not touched"
    );
    assert_eq!(sb.world.router.set_calls(), 0);
}

fn approval_sandbox(quorum: u32) -> (Sandbox, ripcord_core::domain::DeploymentId) {
    let mut spec = test_service(
        "web",
        vec![
            Step::SetWeight(w(10)),
            Step::Approval,
            Step::SetWeight(w(100)),
        ],
    );
    spec.approval.quorum = quorum;
    let mut sb = Sandbox::single(spec, T0);
    sb.config.authors.insert("octocat".into(), "id-octo".into());
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    assert!(matches!(
        sb.deployment(&d.id).state,
        State::Paused {
            step: 1,
            reason: PauseReason::AwaitingApproval,
            ..
        }
    ));
    (sb, d.id)
}

fn last_reason(sb: &Sandbox, id: &ripcord_core::domain::DeploymentId) -> String {
    sb.store.events_of(id).last().unwrap().reason.clone()
}

#[test]
fn approvals_follow_the_policy() {
    let (sb, id) = approval_sandbox(2);
    // A role that may not approve.
    sb.command(
        &id,
        chat("mallory", &["viewers"]),
        CommandKind::Approve { step: 1 },
    );
    sb.pass(&id);
    assert!(last_reason(&sb, &id).contains("does not hold a role"));
    // The author, recognised by the [authors] map.
    sb.command(
        &id,
        Actor::Chat {
            user_id: "id-octo".into(),
            name: "Octo Cat".into(),
            roles: vec!["deployers".into()],
        },
        CommandKind::Approve { step: 1 },
    );
    sb.pass(&id);
    assert!(last_reason(&sb, &id).contains("author"));
    // A stale button from another step.
    sb.command(
        &id,
        chat("alice", &["deployers"]),
        CommandKind::Approve { step: 0 },
    );
    sb.pass(&id);
    assert!(last_reason(&sb, &id).contains("step 1"));
    // One approval, then a double click: still one of two.
    sb.command(
        &id,
        chat("alice", &["deployers"]),
        CommandKind::Approve { step: 1 },
    );
    sb.command(
        &id,
        chat("alice", &["deployers"]),
        CommandKind::Approve { step: 1 },
    );
    sb.pass(&id);
    let d = sb.deployment(&id);
    assert_eq!(d.approvals.len(), 1);
    assert!(matches!(d.state, State::Paused { .. }));
    assert!(last_reason(&sb, &id).contains("counts once"));
    // A second distinct approver reaches the quorum and the plan goes on.
    sb.command(
        &id,
        chat("bob", &["deployers"]),
        CommandKind::Approve { step: 1 },
    );
    sb.pass(&id);
    let d = sb.deployment(&id);
    assert!(!matches!(d.state, State::Paused { .. }), "{:?}", d.state);
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Green))
    );
    // Every click is in the history, refused or not.
    let clicks = sb
        .store
        .events_of(&id)
        .iter()
        .filter(|e| matches!(e.actor, Actor::Chat { .. }))
        .count();
    assert_eq!(clicks, 6);
}

#[test]
fn a_rejection_aborts_and_restores_traffic() {
    let (sb, id) = approval_sandbox(1);
    sb.command(
        &id,
        chat("bob", &["deployers"]),
        CommandKind::Reject { step: 1 },
    );
    let report = sb.pass(&id);
    assert_eq!(report.state, State::Aborted);
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Blue))
    );
}

#[test]
fn an_approval_timeout_takes_its_configured_action() {
    for (action, expected_green) in [
        (TimeoutAction::Rollback, 0u8),
        (TimeoutAction::Promote, 100),
    ] {
        let mut spec = test_service(
            "web",
            vec![
                Step::SetWeight(w(10)),
                Step::Approval,
                Step::SetWeight(w(100)),
            ],
        );
        spec.approval.timeout = Some(Duration::from_secs(600));
        spec.approval.on_timeout = action;
        let sb = Sandbox::single(spec, T0);
        let d = sb.deploy("web", "v43", "octocat").unwrap();
        let report = sb.pass(&d.id);
        assert_eq!(
            report.wake_at,
            Some(sb.clock.now().plus(Duration::from_secs(600)))
        );
        sb.clock.advance(Duration::from_secs(599));
        sb.pass(&d.id);
        assert!(matches!(sb.deployment(&d.id).state, State::Paused { .. }));
        sb.clock.advance(Duration::from_secs(1));
        sb.pass(&d.id);
        assert!(
            sb.store
                .events_of(&d.id)
                .iter()
                .any(|e| e.kind == EventKind::ApprovalTimedOut)
        );
        assert_eq!(
            sb.world
                .router
                .current(&web())
                .unwrap()
                .of(Slot::Green)
                .get(),
            expected_green,
            "{action:?}"
        );
    }
}

#[test]
fn pause_resume_and_promote() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    let ops = Actor::Cli { user: "ops".into() };
    sb.pass(&d.id);
    sb.clock.advance(Duration::from_secs(40));
    sb.command(&d.id, ops.clone(), CommandKind::Pause);
    sb.pass(&d.id);
    assert!(matches!(
        sb.deployment(&d.id).state,
        State::Paused {
            reason: PauseReason::Manual,
            elapsed_ms: 40_000,
            ..
        }
    ));
    // Paused for an hour: the step does not move on.
    sb.clock.advance(Duration::from_secs(3600));
    sb.pass(&d.id);
    assert_eq!(
        sb.world.router.current(&web()).unwrap().of(Slot::Green),
        w(10)
    );
    sb.command(&d.id, ops.clone(), CommandKind::Resume);
    let report = sb.pass(&d.id);
    // Twenty seconds of the one-minute pause are left.
    assert_eq!(
        report.wake_at,
        Some(sb.clock.now().plus(Duration::from_secs(20)))
    );
    sb.command(&d.id, ops.clone(), CommandKind::Promote);
    sb.pass(&d.id);
    let now = sb.deployment(&d.id);
    assert!(matches!(now.state, State::Baking { .. }), "{:?}", now.state);
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Green))
    );
    sb.command(&d.id, ops, CommandKind::Promote);
    assert_eq!(sb.pass(&d.id).state, State::Succeeded);
}

#[test]
fn a_manual_rollback_and_an_abort_end_differently() {
    for (kind, end) in [
        (CommandKind::Rollback, State::RolledBack),
        (CommandKind::Abort, State::Aborted),
    ] {
        let sb = Sandbox::single(test_service("web", canary_steps()), T0);
        let d = sb.deploy("web", "v43", "octocat").unwrap();
        sb.pass(&d.id);
        sb.command(&d.id, chat("alice", &[]), kind.clone());
        assert_eq!(sb.pass(&d.id).state, end);
        assert_eq!(
            sb.world.router.current(&web()),
            Some(Weights::all_on(Slot::Blue))
        );
        // Later commands are refused and recorded; nothing changes.
        sb.command(&d.id, chat("alice", &[]), CommandKind::Promote);
        assert_eq!(sb.pass(&d.id).state, end);
    }
}

#[test]
fn a_metric_breach_rolls_back() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    sb.clock.advance(Duration::from_secs(30));
    sb.world.metrics.record([MetricSample {
        at: sb.clock.now().minus(Duration::from_secs(10)),
        slot: Slot::Green,
        requests: 200,
        errors_5xx: 30,
        latency_p95_ms: Some(80.0),
        latency_p99_ms: Some(120.0),
    }]);
    let report = sb.pass(&d.id);
    assert_eq!(report.state, State::RolledBack);
    assert!(
        sb.store
            .events_of(&d.id)
            .iter()
            .any(|e| e.reason.contains("error_rate"))
    );
}

#[test]
fn an_inconclusive_analysis_waits_for_a_person() {
    let steps = vec![
        Step::SetWeight(w(10)),
        Step::Analysis(Duration::from_secs(60)),
        Step::SetWeight(w(100)),
    ];
    let sb = Sandbox::single(test_service("web", steps), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    sb.clock.advance(Duration::from_secs(61));
    // Only three requests reached the canary: too few to judge.
    sb.world.metrics.record([MetricSample {
        at: sb.clock.now().minus(Duration::from_secs(5)),
        slot: Slot::Green,
        requests: 3,
        errors_5xx: 0,
        latency_p95_ms: None,
        latency_p99_ms: None,
    }]);
    sb.pass(&d.id);
    assert!(matches!(
        sb.deployment(&d.id).state,
        State::Paused {
            reason: PauseReason::Inconclusive,
            ..
        }
    ));
    sb.command(&d.id, chat("alice", &[]), CommandKind::Resume);
    sb.pass(&d.id);
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Green))
    );
}

#[test]
fn starting_refuses_what_it_cannot_do_and_writes_nothing() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    assert!(matches!(
        sb.deploy("api", "v1", "x"),
        Err(StartError::UnknownService(_))
    ));
    let first = sb.deploy("web", "v1", "x").unwrap();
    let commits = sb.store.commit_count();
    match sb.deploy("web", "v2", "x") {
        Err(StartError::Store(StoreError::AlreadyActive { active, .. })) => {
            assert_eq!(active, first.id)
        }
        other => panic!("expected AlreadyActive, got {other:?}"),
    }
    assert_eq!(sb.store.commit_count(), commits);

    let request = ripcord_core::driver::DeployRequest {
        service: web(),
        version: "v2".into(),
        commit: "abc".into(),
        committed_at: None,
        author: "x".into(),
        slot: Some(Slot::Blue),
    };
    let id = ripcord_core::domain::DeploymentId::new("d-live").unwrap();
    let live = block_on(sb.driver().start(&sb.config, 1, request, id, None));
    assert_eq!(live.unwrap_err(), StartError::SlotIsLive(Slot::Blue));
}

#[test]
fn a_redelivered_webhook_finds_the_first_deployment() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let request = ripcord_core::driver::DeployRequest {
        service: web(),
        version: "v2".into(),
        commit: "abc".into(),
        committed_at: None,
        author: "x".into(),
        slot: Some(Slot::Green),
    };
    let key = Some((
        "delivery-1".to_string(),
        T0.plus(Duration::from_secs(86_400)),
    ));
    let first_id = ripcord_core::domain::DeploymentId::new("d-a").unwrap();
    block_on(sb.driver().start(
        &sb.config,
        1,
        request.clone(),
        first_id.clone(),
        key.clone(),
    ))
    .unwrap();
    let again = block_on(sb.driver().start(
        &sb.config,
        1,
        request,
        ripcord_core::domain::DeploymentId::new("d-b").unwrap(),
        key,
    ));
    assert_eq!(
        again.unwrap_err(),
        StartError::Store(StoreError::Duplicate {
            existing: first_id.to_string()
        })
    );
}

#[test]
fn traffic_goes_back_even_when_the_rollback_cannot_be_recorded() {
    let sb = Sandbox::single(test_service("web", canary_steps()), T0);
    let d = sb.deploy("web", "v43", "octocat").unwrap();
    sb.pass(&d.id);
    assert_eq!(
        sb.world.router.current(&web()).unwrap().of(Slot::Green),
        w(10)
    );
    sb.store.fail_next_commits(1);
    sb.world.alarms.fire("web-5xx", "value 12.0");
    let failed = block_on(sb.driver().reconcile(&d.id));
    assert!(failed.is_err(), "the pass reports the store failure");
    assert_eq!(
        sb.world.router.current(&web()),
        Some(Weights::all_on(Slot::Blue)),
        "traffic went back anyway"
    );
    assert!(
        matches!(sb.deployment(&d.id).state, State::Progressing { .. }),
        "nothing was recorded yet"
    );
    // The next pass records what happened and finishes the rollback.
    sb.clock.advance(Duration::from_secs(2));
    assert_eq!(sb.pass(&d.id).state, State::RolledBack);
    let events = sb.store.events_of(&d.id);
    assert!(events.iter().any(|e| e.kind == EventKind::RollbackStarted));
    verify_history(&events, Some(&sb.deployment(&d.id))).unwrap();
}

#[test]
fn promoting_past_an_approval_needs_an_approver() {
    let (sb, id) = approval_sandbox(1);
    sb.command(&id, chat("mallory", &["viewers"]), CommandKind::Promote);
    sb.pass(&id);
    assert!(
        last_reason(&sb, &id).contains("would skip an approval step"),
        "{}",
        last_reason(&sb, &id)
    );
    assert!(matches!(sb.deployment(&id).state, State::Paused { .. }));
    sb.command(&id, chat("alice", &["deployers"]), CommandKind::Promote);
    sb.pass(&id);
    assert!(
        matches!(sb.deployment(&id).state, State::Baking { .. }),
        "{:?}",
        sb.deployment(&id).state
    );
}
