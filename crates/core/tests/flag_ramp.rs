//! Flag ramps through the driver: the `FlagRouter` turns the engine's weights into a
//! flag's rollout, so a flag ramp walks its steps as a canary does, and an alarm rolls
//! it back to 0% in one write, with every change in the flag's history and the
//! deployment's.

use std::sync::Arc;
use std::time::Duration;

use ripcord_core::config::{Config, Ramp, ServiceSpec, Step, Strategy};
use ripcord_core::deployment::State;
use ripcord_core::domain::{DeploymentId, ServiceName, Slot, Weight};
use ripcord_core::driver::{DeployRequest, Driver, Providers};
use ripcord_core::flag_ramp::FlagRouter;
use ripcord_core::flags::stored::{new_rollout_flag, rollout};
use ripcord_core::flags::{Context, SeededRandom};
use ripcord_core::history::{Actor, EventKind, verify_history};
use ripcord_core::memory::{
    ManualClock, MemoryFlagStore, MemoryNotifier, MemoryStore, MemoryWorld, block_on, test_service,
};
use ripcord_core::ports::{
    AlarmSource, Clock, FlagRecordKind, FlagStore, FlagWrite, MetricSource, SmokeRunner, Store,
    TargetHealth, TrafficRouter,
};
use ripcord_core::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);
const FLAG: &str = "new-checkout";

fn w(p: u32) -> Weight {
    Weight::new(p).unwrap()
}

/// The in-memory world, with the flag router for flag services.
struct World {
    memory: MemoryWorld,
    flags: FlagRouter,
}

impl Providers for World {
    fn router(&self, service: &ServiceSpec) -> &dyn TrafficRouter {
        match service.plan.ramp {
            Ramp::Flag(_) => &self.flags,
            Ramp::Traffic => &self.memory.router,
        }
    }
    fn health(&self, service: &ServiceSpec) -> &dyn TargetHealth {
        self.memory.health(service)
    }
    fn alarms(&self, service: &ServiceSpec) -> &dyn AlarmSource {
        self.memory.alarms(service)
    }
    fn metrics(&self, service: &ServiceSpec) -> &dyn MetricSource {
        self.memory.metrics(service)
    }
    fn smoke(&self, service: &ServiceSpec) -> &dyn SmokeRunner {
        self.memory.smoke(service)
    }
}

struct Rig {
    world: World,
    store: Arc<MemoryStore>,
    flags: Arc<MemoryFlagStore>,
    clock: Arc<ManualClock>,
    notifier: MemoryNotifier,
    config: Config,
}

impl Rig {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let flags = Arc::new(MemoryFlagStore::new());
        let clock = Arc::new(ManualClock::new(T0));
        let mut spec = test_service(
            "checkout",
            vec![
                Step::SetWeight(w(10)),
                Step::Pause(Duration::from_secs(60)),
                Step::SetWeight(w(50)),
                Step::Pause(Duration::from_secs(60)),
                Step::SetWeight(w(100)),
            ],
        );
        spec.strategy = Strategy::Flag { flag: FLAG.into() };
        spec.plan.ramp = Ramp::Flag(FLAG.into());
        let mut config = Config {
            services: Default::default(),
            authors: Default::default(),
            flags: Default::default(),
        };
        config.services.insert(spec.name.clone(), spec);
        let world = World {
            memory: MemoryWorld::default(),
            flags: FlagRouter::new(flags.clone(), store.clone(), clock.clone()),
        };
        Rig {
            world,
            store,
            flags,
            clock,
            notifier: MemoryNotifier::default(),
            config,
        }
    }

    fn driver(&self) -> Driver<'_> {
        Driver {
            providers: &self.world,
            store: self.store.as_ref(),
            notifier: &self.notifier,
            clock: self.clock.as_ref(),
        }
    }

    fn deploy(&self, n: u32) -> DeploymentId {
        let request = DeployRequest {
            service: ServiceName::new("checkout").unwrap(),
            version: format!("ramp-{n}"),
            commit: format!("{n:07x}"),
            committed_at: Some(T0),
            author: "octocat".into(),
            slot: None,
        };
        let id = DeploymentId::new(format!("checkout-{n}")).unwrap();
        block_on(
            self.driver()
                .start(&self.config, 1, request, id.clone(), None),
        )
        .unwrap();
        id
    }

    fn pass(&self, id: &DeploymentId) -> State {
        block_on(self.driver().reconcile(id)).unwrap().state
    }

    fn rollout(&self) -> Option<f64> {
        block_on(self.flags.flag_record(FlagRecordKind::Flag, FLAG))
            .unwrap()
            .and_then(|r| rollout(&r.definition))
            .map(|p| p.get())
    }

    fn summaries(&self) -> Vec<String> {
        block_on(self.flags.flag_changes(FlagRecordKind::Flag, FLAG))
            .unwrap()
            .into_iter()
            .map(|c| c.summary)
            .collect()
    }

    /// Passes every ten seconds until the deployment ends; the rollouts seen.
    fn run(&self, id: &DeploymentId) -> (State, Vec<f64>) {
        let mut seen = Vec::new();
        for _ in 0..100 {
            let state = self.pass(id);
            if let Some(r) = self.rollout()
                && seen.last() != Some(&r)
            {
                seen.push(r);
            }
            if state.is_terminal() {
                return (state, seen);
            }
            self.clock.advance(Duration::from_secs(10));
        }
        panic!("the ramp did not end in 100 passes");
    }
}

fn create_flag(flags: &dyn FlagStore, rollout: u32) {
    block_on(flags.put_flag_record(FlagWrite {
        kind: FlagRecordKind::Flag,
        name: FLAG.into(),
        expected_version: 0,
        definition: new_rollout_flag(FLAG, w(rollout)),
        at: T0,
        actor: Actor::Cli { user: "ops".into() },
        summary: "created".into(),
    }))
    .unwrap();
}

#[test]
fn a_flag_ramp_walks_its_steps_and_succeeds() {
    let rig = Rig::new();
    create_flag(rig.flags.as_ref(), 0);
    let id = rig.deploy(1);
    let (state, seen) = rig.run(&id);
    assert_eq!(state, State::Succeeded);
    assert_eq!(seen, vec![10.0, 50.0, 100.0]);
    assert_eq!(
        rig.summaries(),
        vec![
            "created",
            "rollout 0% → 10% by the ramp of service checkout",
            "rollout 10% → 50% by the ramp of service checkout",
            "rollout 50% → 100% by the ramp of service checkout",
        ]
    );
    let status = block_on(
        rig.store
            .service_status(&ServiceName::new("checkout").unwrap()),
    )
    .unwrap()
    .unwrap();
    assert_eq!(status.live, Slot::Green, "the flag's side is live now");
    // At 100% the flag reads as all traffic on the live slot, so the next ramp of
    // the same flag finds nothing to move and its flag stays on.
    let flags = ripcord_core::flags::stored::flag_set(&block_on(rig.flags.flag_records()).unwrap())
        .unwrap();
    let context = Context {
        user_id: Some("someone".into()),
        ..Context::default()
    };
    assert!(flags.is_enabled(FLAG, &context, &mut SeededRandom::new(1)));
}

#[test]
fn an_alarm_rolls_a_flag_ramp_back_to_zero_in_one_write() {
    let rig = Rig::new();
    create_flag(rig.flags.as_ref(), 0);
    let id = rig.deploy(1);
    // Up to 50%.
    for _ in 0..40 {
        rig.pass(&id);
        if rig.rollout() == Some(50.0) {
            break;
        }
        rig.clock.advance(Duration::from_secs(10));
    }
    assert_eq!(rig.rollout(), Some(50.0));
    let before = rig.summaries().len();
    rig.world
        .memory
        .alarms
        .fire("checkout-5xx", "Threshold Crossed: 1 datapoint [9.0] > 5.0");
    let state = rig.pass(&id);
    assert_eq!(state, State::RolledBack);
    assert_eq!(rig.rollout(), Some(0.0), "the kill switch: rollout 0%");
    let summaries = rig.summaries();
    assert_eq!(
        &summaries[before..],
        ["rollout 50% → 0% by the ramp of service checkout"],
        "one write turned it off"
    );
    // The deployment's history shows each step and the alarm's rollback.
    let done = rig.store.deployment_now(&id).unwrap();
    let events = rig.store.events_of(&id);
    verify_history(&events, Some(&done)).unwrap();
    let set: Vec<u8> = events
        .iter()
        .filter(|e| e.kind == EventKind::WeightsSet)
        .filter_map(|e| e.weights_after.map(|w| w.of(Slot::Green).get()))
        .collect();
    assert_eq!(set, vec![10, 50]);
    let rollback = events
        .iter()
        .find(|e| e.kind == EventKind::RollbackStarted)
        .expect("the rollback is recorded");
    assert_eq!(
        rollback.actor,
        Actor::Alarm {
            name: "checkout-5xx".into()
        }
    );
    assert_eq!(
        rollback.weights_after.map(|w| w.of(Slot::Green).get()),
        Some(0)
    );
    // Nobody gets the flag any more.
    let flags = ripcord_core::flags::stored::flag_set(&block_on(rig.flags.flag_records()).unwrap())
        .unwrap();
    let mut random = SeededRandom::new(7);
    let on = (0..1000)
        .filter(|n| {
            let context = Context {
                user_id: Some(format!("user-{n}")),
                ..Context::default()
            };
            flags.is_enabled(FLAG, &context, &mut random)
        })
        .count();
    assert_eq!(on, 0);
}

#[test]
fn a_flag_changed_by_hand_during_a_ramp_is_put_back_and_recorded() {
    let rig = Rig::new();
    let id = rig.deploy(1);
    rig.pass(&id);
    assert_eq!(rig.rollout(), Some(10.0), "the first step creates the flag");
    let record = block_on(rig.flags.flag_record(FlagRecordKind::Flag, FLAG))
        .unwrap()
        .unwrap();
    let edited =
        ripcord_core::flags::stored::with_rollout(FLAG, &record.definition, w(80)).unwrap();
    block_on(rig.flags.put_flag_record(FlagWrite {
        kind: FlagRecordKind::Flag,
        name: FLAG.into(),
        expected_version: record.version,
        definition: edited,
        at: rig.clock.now(),
        actor: Actor::Cli {
            user: "mallory".into(),
        },
        summary: "rollout 10% → 80%".into(),
    }))
    .unwrap();
    rig.clock.advance(Duration::from_secs(10));
    rig.pass(&id);
    assert_eq!(
        rig.rollout(),
        Some(10.0),
        "the ramp's own rollout is re-applied"
    );
    let events = rig.store.events_of(&id);
    assert!(events.iter().any(|e| e.kind == EventKind::Drift));
}
