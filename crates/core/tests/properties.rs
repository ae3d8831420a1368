//! Property tests over random plans and random sequences of what the world does:
//! alarms, unhealthy targets, failing smoke checks, drift, failing router calls, bad
//! metrics and commands from people, with the clock moving in between.

use std::time::Duration;

use proptest::prelude::*;
use ripcord_core::config::{Step, TimeoutAction};
use ripcord_core::deployment::{Command, CommandKind, Deployment, State};
use ripcord_core::domain::{Slot, Weight, Weights};
use ripcord_core::engine::{SETTLE, decide};
use ripcord_core::history::{Actor, verify_history};
use ripcord_core::memory::{MetricSample, Sandbox, test_service};
use ripcord_core::observation::{AlarmReport, HealthReport, Observation};
use ripcord_core::ports::Clock;
use ripcord_core::replay::replay;
use ripcord_core::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

#[derive(Debug, Clone)]
enum Op {
    Tick(u16),
    FireAlarm,
    ClearAlarm,
    Unhealthy,
    Healthy,
    SmokeFails,
    Drift(u8),
    FailSets(u8),
    FailReads(u8),
    BadMetrics,
    GoodMetrics,
    Command(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u16..120).prop_map(Op::Tick),
        1 => Just(Op::FireAlarm),
        1 => Just(Op::ClearAlarm),
        1 => Just(Op::Unhealthy),
        2 => Just(Op::Healthy),
        1 => Just(Op::SmokeFails),
        1 => (0u8..=100).prop_map(Op::Drift),
        1 => (1u8..4).prop_map(Op::FailSets),
        1 => (1u8..4).prop_map(Op::FailReads),
        1 => Just(Op::BadMetrics),
        1 => Just(Op::GoodMetrics),
        3 => (0u8..8, 0u8..4).prop_map(|(c, u)| Op::Command(c, u)),
    ]
}

/// A random plan: rising weights ending at 100, with pauses, approvals, analyses and
/// smoke steps between them.
fn plan() -> impl Strategy<Value = Vec<Step>> {
    (
        proptest::collection::btree_set(1u32..100, 0..4),
        proptest::collection::vec((0u8..6, 0u64..90), 0..6),
    )
        .prop_map(|(weights, extras)| {
            let mut steps = Vec::new();
            let mut extras = extras.into_iter();
            for weight in weights.into_iter().chain([100]) {
                steps.push(Step::SetWeight(Weight::new(weight).unwrap()));
                if let Some((kind, secs)) = extras.next() {
                    steps.push(match kind {
                        0 => Step::Pause(Duration::from_secs(secs + 1)),
                        1 => Step::Approval,
                        2 => Step::PauseUntilResumed,
                        3 => Step::Analysis(Duration::from_secs(secs + 1)),
                        4 => Step::Smoke,
                        _ => Step::Pause(Duration::from_secs(1)),
                    });
                }
            }
            steps
        })
}

fn person(n: u8) -> Actor {
    match n {
        0 => Actor::Cli { user: "ops".into() },
        // The author of every deployment in these tests.
        1 => Actor::Chat {
            user_id: "u-octo".into(),
            name: "octocat".into(),
            roles: vec!["deployers".into()],
        },
        2 => Actor::Chat {
            user_id: "u-eve".into(),
            name: "eve".into(),
            roles: vec!["viewers".into()],
        },
        _ => Actor::Chat {
            user_id: format!("u-{n}"),
            name: format!("user{n}"),
            roles: vec!["deployers".into()],
        },
    }
}

fn command_kind(n: u8, d: &Deployment) -> CommandKind {
    let step = d.state.step().unwrap_or(0);
    match n {
        0 | 1 => CommandKind::Approve { step },
        2 => CommandKind::Approve {
            step: step.saturating_sub(1),
        },
        3 => CommandKind::Reject { step },
        4 => CommandKind::Pause,
        5 => CommandKind::Resume,
        6 => CommandKind::Promote,
        _ => CommandKind::Abort,
    }
}

fn canary_weight(sb: &Sandbox, d: &Deployment) -> u8 {
    sb.world
        .router
        .current(&d.service)
        .unwrap_or(Weights::all_on(d.stable))
        .of(d.canary())
        .get()
}

/// From any non-terminal state, a rollback command leads to a terminal state with all
/// traffic on the stable slot within two decisions.
fn check_rollback_reachable(d: &Deployment, now: Timestamp) {
    if d.state.is_terminal() {
        return;
    }
    let stable = Weights::all_on(d.stable);
    let command = Command {
        seq: d.commands_applied + 1,
        at: now,
        actor: Actor::Cli { user: "ops".into() },
        kind: CommandKind::Rollback,
        reason: None,
    };
    let observation = Observation {
        weights: Some(d.desired),
        alarms: Some(AlarmReport::default()),
        commands: vec![command],
        ..Observation::default()
    };
    let first = decide(d, &observation, now);
    let rolling = first
        .next
        .expect("a rollback command always changes something");
    assert_eq!(rolling.desired, stable);
    if matches!(
        rolling.state,
        State::RolledBack | State::Aborted | State::Failed
    ) {
        // The router already served 100% stable, so the rollback was done at once.
        assert_eq!(d.desired, stable, "{:?} -> {:?}", d.state, rolling.state);
        return;
    }
    assert!(
        matches!(rolling.state, State::RollingBack { .. }),
        "{:?} -> {:?}",
        d.state,
        rolling.state
    );
    let verified = Observation {
        weights: Some(stable),
        alarms: Some(AlarmReport::default()),
        ..Observation::default()
    };
    let second = decide(&rolling, &verified, now.plus(SETTLE));
    let done = second.next.expect("verified weights end the rollback");
    assert!(
        matches!(
            done.state,
            State::RolledBack | State::Aborted | State::Failed
        ),
        "{:?}",
        done.state
    );
    assert_eq!(done.desired, stable);
}

fn check_history(sb: &Sandbox, d: &Deployment) {
    let events = sb.store.events_of(&d.id);
    verify_history(&events, Some(d)).expect("the chain verifies");
    let replayed = replay(&events).expect("a deployment has events");
    assert_eq!(replayed.state, d.state, "replayed state");
    assert_eq!(replayed.desired, Some(d.desired), "replayed weights");
    let approvers: Vec<String> = d.approvals.iter().map(|a| a.user_id.clone()).collect();
    assert_eq!(replayed.approvals, approvers, "replayed approvals");
    assert_eq!(
        replayed.baseline,
        d.baseline.as_ref().map(|b| b.keys().cloned().collect()),
        "replayed baseline"
    );
    assert_eq!(replayed.finished_at, d.finished_at, "replayed finish");
}

fn run_case(steps: Vec<Step>, ops: Vec<Op>, on_timeout_promote: bool, quorum: u32) {
    let mut spec = test_service("web", steps);
    spec.approval.quorum = quorum;
    spec.approval.timeout = Some(Duration::from_secs(300));
    spec.approval.on_timeout = if on_timeout_promote {
        TimeoutAction::Promote
    } else {
        TimeoutAction::Rollback
    };
    spec.health.timeout = Duration::from_secs(120);
    let mut sb = Sandbox::single(spec, T0);
    sb.config.authors.insert("octocat".into(), "u-octo".into());
    let d = sb.deploy("web", "v2", "octocat").unwrap();
    let id = d.id.clone();
    let service = d.service.clone();

    let mut touched_after_end = false;
    for op in ops {
        let before = sb.deployment(&id);
        if before.state.is_terminal() && matches!(op, Op::Drift(_)) {
            // Once a deployment has ended, the router is no longer Ripcord's to guard.
            touched_after_end = true;
        }
        match op {
            Op::Tick(secs) => sb.clock.advance(Duration::from_secs(secs.into())),
            Op::FireAlarm => sb.world.alarms.fire("web-5xx", "value 12.0"),
            Op::ClearAlarm => sb.world.alarms.clear("web-5xx"),
            Op::Unhealthy => sb.world.health.set(
                &service,
                d.canary(),
                HealthReport {
                    healthy: 0,
                    total: 1,
                    unhealthy: vec!["i-1".into()],
                },
            ),
            Op::Healthy => sb.world.health.set(
                &service,
                d.canary(),
                HealthReport {
                    healthy: 1,
                    total: 1,
                    unhealthy: vec![],
                },
            ),
            Op::SmokeFails => sb.world.smoke.fail("home", "503"),
            Op::Drift(p) => sb.world.router.force(
                &service,
                Weights::split(Slot::Green, Weight::new(p.into()).unwrap()),
            ),
            Op::FailSets(n) => sb.world.router.fail_next_sets(n.into()),
            Op::FailReads(n) => sb.world.router.fail_next_reads(n.into()),
            Op::BadMetrics | Op::GoodMetrics => {
                let errors = if matches!(op, Op::BadMetrics) { 50 } else { 0 };
                sb.world.metrics.record([MetricSample {
                    at: sb.clock.now().minus(Duration::from_secs(1)),
                    slot: d.canary(),
                    requests: 100,
                    errors_5xx: errors,
                    latency_p95_ms: Some(50.0),
                    latency_p99_ms: Some(80.0),
                }]);
            }
            Op::Command(kind, who) => {
                let kind = command_kind(kind, &before);
                sb.command(&id, person(who), kind);
            }
        }
        let before = sb.deployment(&id);
        let weight_before = canary_weight(&sb, &before);
        let alarm_outside_baseline = sb.world_alarm_firing()
            && before.is_active()
            && before
                .baseline
                .as_ref()
                .is_some_and(|b| !b.contains_key("web-5xx"));
        let events_before = sb.store.events_of(&id).len();
        let commits_before = sb.store.commit_count();

        let report = sb.pass(&id);

        let after = sb.deployment(&id);
        let commits = sb.store.commit_count() - commits_before;
        let events = sb.store.events_of(&id).len() - events_before;
        assert!(
            events as u64 >= commits,
            "{commits} commits wrote only {events} events"
        );
        assert_eq!(commits, u64::from(report.transitions));
        check_history(&sb, &after);
        let weights = sb
            .world
            .router
            .current(&service)
            .unwrap_or(Weights::all_on(Slot::Blue));
        assert_eq!(
            u32::from(weights.of(Slot::Blue).get()) + u32::from(weights.of(Slot::Green).get()),
            100
        );
        if alarm_outside_baseline {
            assert!(
                matches!(
                    after.state,
                    State::RollingBack { .. } | State::RolledBack | State::Aborted | State::Failed
                ),
                "an alarm outside the baseline fired but the deployment is {:?}",
                after.state
            );
            assert!(
                canary_weight(&sb, &after) <= weight_before,
                "traffic moved toward the canary during an alarm"
            );
        }
        check_rollback_reachable(&after, sb.clock.now());
    }

    // Whatever happened, a rollback ends at 100% stable (or the deployment had already
    // finished and the router shows its outcome).
    sb.world.router.fail_next_sets(0);
    sb.world.router.fail_next_reads(0);
    sb.command(
        &id,
        Actor::Cli { user: "ops".into() },
        CommandKind::Rollback,
    );
    for _ in 0..10 {
        sb.clock.advance(Duration::from_secs(3));
        if sb.pass(&id).state.is_terminal() {
            break;
        }
    }
    let end = sb.deployment(&id);
    assert!(end.state.is_terminal(), "still {:?}", end.state);
    let expected = if end.state == State::Succeeded {
        Weights::all_on(end.canary())
    } else {
        Weights::all_on(end.stable)
    };
    if touched_after_end {
        return check_history(&sb, &end);
    }
    if end.state != State::Failed
        || sb
            .store
            .events_of(&id)
            .iter()
            .any(|e| e.kind == ripcord_core::history::EventKind::RollbackStarted)
    {
        assert_eq!(
            sb.world
                .router
                .current(&service)
                .unwrap_or(Weights::all_on(Slot::Blue)),
            expected,
            "{:?}",
            end.state
        );
    }
    check_history(&sb, &end);
}

trait AlarmPeek {
    fn world_alarm_firing(&self) -> bool;
}

impl AlarmPeek for Sandbox {
    fn world_alarm_firing(&self) -> bool {
        use ripcord_core::ports::AlarmSource;
        let names = vec!["web-5xx".to_string()];
        !ripcord_core::memory::block_on(self.world.alarms.firing(&names))
            .unwrap()
            .firing
            .is_empty()
    }
}

proptest! {
    // Sized for CI on two cores; set PROPTEST_CASES to search harder.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_plans_and_worlds_keep_the_invariants(
        steps in plan(),
        ops in proptest::collection::vec(op(), 1..40),
        promote in any::<bool>(),
        quorum in 1u32..3,
    ) {
        run_case(steps, ops, promote, quorum);
    }
}
