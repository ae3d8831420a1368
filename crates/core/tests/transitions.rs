//! One row per transition of the state machine: a deployment in some state, what was
//! observed, and the state, actions and event the engine must decide.

use std::collections::BTreeMap;
use std::time::Duration;

use ripcord_core::config::{Step, TimeoutAction};
use ripcord_core::deployment::{
    Approval, Command, CommandKind, Deployment, PauseReason, Release, RollbackEnd, State,
    VerifyGate,
};
use ripcord_core::domain::{DeploymentId, Slot, Weight, Weights};
use ripcord_core::engine::{Action, decide};
use ripcord_core::history::{Actor, EventKind};
use ripcord_core::memory::test_service;
use ripcord_core::observation::{
    AlarmReport, HealthReport, MetricReading, Observation, SlotMetrics, SmokeReport, SmokeResult,
};
use ripcord_core::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

fn pct(p: u32) -> Weights {
    Weights::split(Slot::Green, Weight::new(p).unwrap())
}

fn deployment(state: State, desired: u32) -> Deployment {
    let steps = vec![
        Step::SetWeight(Weight::new(10).unwrap()),
        Step::Pause(Duration::from_secs(60)),
        Step::Approval,
        Step::PauseUntilResumed,
        Step::Analysis(Duration::from_secs(60)),
        Step::Smoke,
        Step::SetWeight(Weight::new(100).unwrap()),
    ];
    let mut spec = test_service("web", steps);
    spec.approval.timeout = Some(Duration::from_secs(600));
    spec.approval.on_timeout = TimeoutAction::Rollback;
    let release = Release {
        version: "v43".into(),
        commit: "abc1234".into(),
        committed_at: None,
        author: "octocat".into(),
        author_chat_id: None,
    };
    let mut d = Deployment::new(
        DeploymentId::new("d-1").unwrap(),
        spec,
        1,
        release,
        Slot::Blue,
        T0,
    );
    d.state = state;
    d.desired = pct(desired);
    d.baseline = match state {
        State::Pending => None,
        _ => Some(BTreeMap::new()),
    };
    d
}

fn seen(weights: u32) -> Observation {
    Observation {
        weights: Some(pct(weights)),
        alarms: Some(AlarmReport::default()),
        ..Observation::default()
    }
}

fn healthy() -> HealthReport {
    HealthReport {
        healthy: 2,
        total: 2,
        unhealthy: vec![],
    }
}

fn smoke(passed: bool) -> SmokeReport {
    SmokeReport {
        results: vec![SmokeResult {
            name: "home".into(),
            passed,
            detail: "GET /".into(),
        }],
    }
}

fn command(kind: CommandKind) -> Command {
    Command {
        seq: 1,
        at: T0,
        actor: Actor::Chat {
            user_id: "u-1".into(),
            name: "alice".into(),
            roles: vec!["deployers".into()],
        },
        kind,
        reason: None,
    }
}

fn firing(name: &str) -> AlarmReport {
    AlarmReport {
        firing: [(name.to_string(), "value 12.0".to_string())]
            .into_iter()
            .collect(),
    }
}

fn metrics(requests: u64, errors: u64) -> Vec<MetricReading> {
    let m = SlotMetrics {
        requests,
        errors_5xx: errors,
        ..SlotMetrics::default()
    };
    vec![MetricReading {
        slot: Slot::Green,
        window: Duration::from_secs(60),
        metrics: m,
    }]
}

fn progressing(step: usize) -> State {
    State::Progressing { step }
}

fn paused(step: usize, reason: PauseReason) -> State {
    State::Paused {
        step,
        reason,
        elapsed_ms: 0,
    }
}

struct Row {
    name: &'static str,
    from: State,
    desired: u32,
    observation: Observation,
    /// Seconds since the step started.
    after: u64,
    expect: State,
    /// The weights action expected, if any (as green percent).
    action: Option<u32>,
    /// An event kind the decision must record, if it changes anything.
    event: Option<&'static str>,
}

fn rows() -> Vec<Row> {
    let mut approvals_one_short = seen(10);
    approvals_one_short.commands = vec![command(CommandKind::Approve { step: 2 })];
    vec![
        Row {
            name: "pending -> verifying health",
            from: State::Pending,
            desired: 0,
            observation: seen(0),
            after: 0,
            expect: State::Verifying {
                gate: VerifyGate::Health,
            },
            action: None,
            event: Some("baseline_taken"),
        },
        Row {
            name: "pending waits for unreadable weights",
            from: State::Pending,
            desired: 0,
            observation: Observation {
                weights: None,
                ..seen(0)
            },
            after: 0,
            expect: State::Pending,
            action: None,
            event: None,
        },
        Row {
            name: "pending with traffic on the idle slot fails untouched",
            from: State::Pending,
            desired: 0,
            observation: seen(20),
            after: 0,
            expect: State::Failed,
            action: None,
            event: Some("finished"),
        },
        Row {
            name: "health passes -> smoke",
            from: State::Verifying {
                gate: VerifyGate::Health,
            },
            desired: 0,
            observation: Observation {
                health: Some(healthy()),
                ..seen(0)
            },
            after: 5,
            expect: State::Verifying {
                gate: VerifyGate::Smoke,
            },
            action: None,
            event: Some("gate_passed"),
        },
        Row {
            name: "health waits before its timeout",
            from: State::Verifying {
                gate: VerifyGate::Health,
            },
            desired: 0,
            observation: Observation {
                health: Some(HealthReport {
                    healthy: 0,
                    total: 2,
                    unhealthy: vec!["i-1".into(), "i-2".into()],
                }),
                ..seen(0)
            },
            after: 60,
            expect: State::Verifying {
                gate: VerifyGate::Health,
            },
            action: None,
            event: None,
        },
        Row {
            name: "health fails at its timeout",
            from: State::Verifying {
                gate: VerifyGate::Health,
            },
            desired: 0,
            observation: Observation {
                health: Some(HealthReport {
                    healthy: 1,
                    total: 2,
                    unhealthy: vec!["i-2".into()],
                }),
                ..seen(0)
            },
            after: 300,
            expect: State::RollingBack {
                end: RollbackEnd::Failed,
            },
            action: Some(0),
            event: Some("rollback_started"),
        },
        Row {
            name: "smoke passes -> first step",
            from: State::Verifying {
                gate: VerifyGate::Smoke,
            },
            desired: 0,
            observation: Observation {
                smoke: Some(smoke(true)),
                ..seen(0)
            },
            after: 1,
            expect: progressing(0),
            action: None,
            event: Some("step_started"),
        },
        Row {
            name: "smoke fails -> fail",
            from: State::Verifying {
                gate: VerifyGate::Smoke,
            },
            desired: 0,
            observation: Observation {
                smoke: Some(smoke(false)),
                ..seen(0)
            },
            after: 1,
            expect: State::RollingBack {
                end: RollbackEnd::Failed,
            },
            action: Some(0),
            event: Some("gate_failed"),
        },
        Row {
            name: "set_weight sets",
            from: progressing(0),
            desired: 0,
            observation: seen(0),
            after: 0,
            expect: progressing(0),
            action: Some(10),
            event: Some("weights_set"),
        },
        Row {
            name: "set_weight verified -> next step",
            from: progressing(0),
            desired: 10,
            observation: seen(10),
            after: 3,
            expect: progressing(1),
            action: None,
            event: Some("weights_verified"),
        },
        Row {
            name: "pause holds",
            from: progressing(1),
            desired: 10,
            observation: seen(10),
            after: 59,
            expect: progressing(1),
            action: None,
            event: None,
        },
        Row {
            name: "pause ends",
            from: progressing(1),
            desired: 10,
            observation: seen(10),
            after: 60,
            expect: progressing(2),
            action: None,
            event: Some("step_started"),
        },
        Row {
            name: "approval step waits",
            from: progressing(2),
            desired: 10,
            observation: seen(10),
            after: 0,
            expect: paused(2, PauseReason::AwaitingApproval),
            action: None,
            event: Some("gate_waiting"),
        },
        Row {
            name: "approval reaches quorum",
            from: paused(2, PauseReason::AwaitingApproval),
            desired: 10,
            observation: approvals_one_short,
            after: 10,
            expect: progressing(3),
            action: None,
            event: Some("approved"),
        },
        Row {
            name: "approval times out -> rollback",
            from: paused(2, PauseReason::AwaitingApproval),
            desired: 10,
            observation: seen(10),
            after: 600,
            expect: State::RollingBack {
                end: RollbackEnd::Aborted,
            },
            action: Some(0),
            event: Some("approval_timed_out"),
        },
        Row {
            name: "pause until resumed",
            from: progressing(3),
            desired: 10,
            observation: seen(10),
            after: 0,
            expect: paused(3, PauseReason::AwaitingResume),
            action: None,
            event: Some("gate_waiting"),
        },
        Row {
            name: "resume continues",
            from: paused(3, PauseReason::AwaitingResume),
            desired: 10,
            observation: Observation {
                commands: vec![command(CommandKind::Resume)],
                ..seen(10)
            },
            after: 10,
            expect: progressing(4),
            action: None,
            event: Some("command_applied"),
        },
        Row {
            name: "analysis passes",
            from: progressing(4),
            desired: 10,
            observation: Observation {
                metrics: metrics(500, 1),
                ..seen(10)
            },
            after: 60,
            expect: progressing(5),
            action: None,
            event: Some("gate_passed"),
        },
        Row {
            name: "analysis with too few requests is inconclusive",
            from: progressing(4),
            desired: 10,
            observation: Observation {
                metrics: metrics(3, 0),
                ..seen(10)
            },
            after: 60,
            expect: paused(4, PauseReason::Inconclusive),
            action: None,
            event: Some("gate_inconclusive"),
        },
        Row {
            name: "analysis fails",
            from: progressing(4),
            desired: 10,
            observation: Observation {
                metrics: metrics(500, 100),
                ..seen(10)
            },
            after: 60,
            expect: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            action: Some(0),
            event: Some("gate_failed"),
        },
        Row {
            name: "smoke step passes",
            from: progressing(5),
            desired: 10,
            observation: Observation {
                smoke: Some(smoke(true)),
                ..seen(10)
            },
            after: 0,
            expect: progressing(6),
            action: None,
            event: Some("gate_passed"),
        },
        Row {
            name: "smoke step fails",
            from: progressing(5),
            desired: 10,
            observation: Observation {
                smoke: Some(smoke(false)),
                ..seen(10)
            },
            after: 0,
            expect: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            action: Some(0),
            event: Some("gate_failed"),
        },
        Row {
            name: "plan done -> bake",
            from: progressing(7),
            desired: 100,
            observation: seen(100),
            after: 0,
            expect: State::Baking {
                until: T0.plus(Duration::from_secs(60)),
            },
            action: None,
            event: Some("bake_started"),
        },
        Row {
            name: "bake holds",
            from: State::Baking {
                until: T0.plus(Duration::from_secs(60)),
            },
            desired: 100,
            observation: seen(100),
            after: 30,
            expect: State::Baking {
                until: T0.plus(Duration::from_secs(60)),
            },
            action: None,
            event: None,
        },
        Row {
            name: "bake ends -> succeeded",
            from: State::Baking {
                until: T0.plus(Duration::from_secs(60)),
            },
            desired: 100,
            observation: seen(100),
            after: 60,
            expect: State::Succeeded,
            action: None,
            event: Some("finished"),
        },
        Row {
            name: "promote during bake ends the bake now",
            from: State::Baking {
                until: T0.plus(Duration::from_secs(60)),
            },
            desired: 100,
            observation: Observation {
                commands: vec![command(CommandKind::Promote)],
                ..seen(100)
            },
            after: 1,
            expect: State::Baking {
                until: T0.plus(Duration::from_secs(1)),
            },
            action: None,
            event: Some("command_applied"),
        },
        Row {
            name: "bake over but weights not read back holds",
            from: State::Baking {
                until: T0.plus(Duration::from_secs(60)),
            },
            desired: 100,
            observation: Observation {
                weights: None,
                ..seen(100)
            },
            after: 61,
            expect: State::Baking {
                until: T0.plus(Duration::from_secs(60)),
            },
            action: None,
            event: None,
        },
        Row {
            name: "promote skips the remaining steps",
            from: progressing(1),
            desired: 10,
            observation: Observation {
                commands: vec![command(CommandKind::Promote)],
                ..seen(10)
            },
            after: 1,
            expect: progressing(7),
            action: None,
            event: Some("command_applied"),
        },
        Row {
            name: "manual pause",
            from: progressing(1),
            desired: 10,
            observation: Observation {
                commands: vec![command(CommandKind::Pause)],
                ..seen(10)
            },
            after: 20,
            expect: State::Paused {
                step: 1,
                reason: PauseReason::Manual,
                elapsed_ms: 20_000,
            },
            action: None,
            event: Some("command_applied"),
        },
        Row {
            name: "alarm -> fast rollback",
            from: progressing(1),
            desired: 10,
            observation: Observation {
                alarms: Some(firing("web-5xx")),
                ..seen(10)
            },
            after: 5,
            expect: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            action: Some(0),
            event: Some("rollback_started"),
        },
        Row {
            name: "alarm while paused -> fast rollback",
            from: paused(2, PauseReason::AwaitingApproval),
            desired: 10,
            observation: Observation {
                alarms: Some(firing("web-5xx")),
                ..seen(10)
            },
            after: 5,
            expect: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            action: Some(0),
            event: Some("rollback_started"),
        },
        Row {
            name: "alarm while baking -> fast rollback",
            from: State::Baking {
                until: T0.plus(Duration::from_secs(60)),
            },
            desired: 100,
            observation: Observation {
                alarms: Some(firing("web-5xx")),
                ..seen(100)
            },
            after: 5,
            expect: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            action: Some(0),
            event: Some("rollback_started"),
        },
        Row {
            name: "metric breach -> rollback",
            from: progressing(1),
            desired: 10,
            observation: Observation {
                metrics: metrics(500, 100),
                ..seen(10)
            },
            after: 5,
            expect: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            action: Some(0),
            event: Some("gate_failed"),
        },
        Row {
            name: "drift is re-applied",
            from: progressing(1),
            desired: 10,
            observation: seen(40),
            after: 5,
            expect: progressing(1),
            action: Some(10),
            event: Some("drift"),
        },
        Row {
            name: "rollback verified -> rolled back",
            from: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            desired: 0,
            observation: seen(0),
            after: 1,
            expect: State::RolledBack,
            action: None,
            event: Some("finished"),
        },
        Row {
            name: "abort verified -> aborted",
            from: State::RollingBack {
                end: RollbackEnd::Aborted,
            },
            desired: 0,
            observation: seen(0),
            after: 1,
            expect: State::Aborted,
            action: None,
            event: Some("finished"),
        },
        Row {
            name: "rollback not yet verified -> retried",
            from: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            desired: 0,
            observation: seen(10),
            after: 5,
            expect: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            action: Some(0),
            event: Some("rollback_retrying"),
        },
        Row {
            name: "rollback command",
            from: progressing(1),
            desired: 10,
            observation: Observation {
                commands: vec![command(CommandKind::Rollback)],
                ..seen(10)
            },
            after: 5,
            expect: State::RollingBack {
                end: RollbackEnd::RolledBack,
            },
            action: Some(0),
            event: Some("rollback_started"),
        },
        Row {
            name: "abort command",
            from: progressing(1),
            desired: 10,
            observation: Observation {
                commands: vec![command(CommandKind::Abort)],
                ..seen(10)
            },
            after: 5,
            expect: State::RollingBack {
                end: RollbackEnd::Aborted,
            },
            action: Some(0),
            event: Some("rollback_started"),
        },
        Row {
            name: "terminal states do nothing",
            from: State::RolledBack,
            desired: 0,
            observation: Observation {
                alarms: Some(firing("web-5xx")),
                ..seen(0)
            },
            after: 5,
            expect: State::RolledBack,
            action: None,
            event: None,
        },
    ]
}

#[test]
fn every_transition_decides_as_specified() {
    for row in rows() {
        let mut d = deployment(row.from, row.desired);
        // Weights were set long enough ago to count as settled.
        d.desired_at = T0.minus(Duration::from_secs(60));
        if row.name == "approval reaches quorum" {
            d.approvals = vec![];
        }
        let now = T0.plus(Duration::from_secs(row.after));
        let decision = decide(&d, &row.observation, now);
        let next_state = decision.next.as_ref().map_or(d.state, |n| n.state);
        assert_eq!(next_state, row.expect, "{}", row.name);
        let expected_actions: Vec<Action> = row
            .action
            .map(|p| Action::SetWeights { weights: pct(p) })
            .into_iter()
            .collect();
        assert_eq!(decision.actions, expected_actions, "{}", row.name);
        match row.event {
            Some(kind) => assert!(
                decision.events.iter().any(|e| e.kind.name() == kind),
                "{}: expected a {kind} event in {:?}",
                row.name,
                decision
                    .events
                    .iter()
                    .map(|e| e.kind.name())
                    .collect::<Vec<_>>()
            ),
            None => assert!(
                decision.events.is_empty(),
                "{}: unexpected events {:?}",
                row.name,
                decision.events
            ),
        }
        if decision.next.is_some() {
            assert!(
                !decision.events.is_empty(),
                "{}: a change without an event",
                row.name
            );
        }
        if let Some(next) = &decision.next {
            let last = decision.events.last().unwrap();
            assert_eq!(
                last.state, next.state,
                "{}: the last event carries the new state",
                row.name
            );
        }
    }
}

#[test]
fn quorum_of_two_counts_distinct_approvers() {
    let mut d = deployment(paused(2, PauseReason::AwaitingApproval), 10);
    d.spec.approval.quorum = 2;
    d.approvals = vec![Approval {
        user_id: "u-1".into(),
        name: "alice".into(),
        at: T0,
    }];
    let mut obs = seen(10);
    obs.commands = vec![command(CommandKind::Approve { step: 2 })];
    let decision = decide(&d, &obs, T0);
    let next = decision.next.unwrap();
    assert_eq!(next.approvals.len(), 1, "the same approver counts once");
    assert!(matches!(
        decision.events[0].kind,
        EventKind::CommandRefused { .. }
    ));
    assert_eq!(next.commands_applied, 1);
}
