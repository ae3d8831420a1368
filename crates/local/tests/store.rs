//! `SqliteStore` on real files: the shared store contract, whole deployments through
//! the driver, a restart in the middle of one, drivers on four threads racing over one
//! file, and the edges of the file itself (schema version, a held lock, a broken file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ripcord_core::config::{Config, ServiceSpec, Step};
use ripcord_core::deployment::{CommandKind, Deployment, State};
use ripcord_core::domain::{DeploymentId, ServiceName, Slot, Weight, Weights};
use ripcord_core::driver::{DeployRequest, Driver, DriverError, PassReport, StartError};
use ripcord_core::history::{Actor, Event, verify_history};
use ripcord_core::memory::{
    ManualClock, MemoryNotifier, MemoryStore, MemoryWorld, block_on, test_service,
};
use ripcord_core::ports::{Clock, ErrorKind, Store, StoreError};
use ripcord_core::replay::replay;
use ripcord_core::store_contract::check_all;
use ripcord_core::time::Timestamp;
use ripcord_local::store::{SCHEMA_VERSION, SqliteStore};

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);
const TICK: Duration = Duration::from_secs(10);

/// A store file in the system's temporary directory, removed with its WAL and
/// shared-memory files when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos();
        Self(std::env::temp_dir().join(format!(
            "ripcord-store-{name}-{}-{}-{nanos}.sqlite",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn open(&self) -> SqliteStore {
        SqliteStore::open(self.path()).expect("the store file opens")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            // A file that was never created is already clean.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Everything a driver needs besides the store; it outlives a store's restart, as the
/// proxy and the clock outlive the process in real life.
#[derive(Default)]
struct Rig {
    world: MemoryWorld,
    notifier: MemoryNotifier,
    clock: ManualClock,
}

impl Rig {
    fn new() -> Self {
        Self {
            clock: ManualClock::new(T0),
            ..Self::default()
        }
    }

    fn driver<'a>(&'a self, store: &'a dyn Store) -> Driver<'a> {
        Driver {
            providers: &self.world,
            store,
            notifier: &self.notifier,
            clock: &self.clock,
        }
    }
}

fn web() -> ServiceName {
    ServiceName::new("web").expect("valid name")
}

fn id(n: u32) -> DeploymentId {
    DeploymentId::new(format!("d-{n}")).expect("valid id")
}

fn one_service(spec: ServiceSpec) -> Config {
    let mut services = BTreeMap::new();
    services.insert(spec.name.clone(), spec);
    Config {
        services,
        authors: BTreeMap::new(),
        flags: Default::default(),
    }
}

fn canary_steps() -> Vec<Step> {
    let w = |p| Step::SetWeight(Weight::new(p).expect("valid weight"));
    vec![
        w(10),
        Step::Pause(Duration::from_secs(60)),
        w(50),
        Step::Pause(Duration::from_secs(60)),
        w(100),
    ]
}

/// Starts deployment `d-n` of `web` at the rig's time, claiming `delivery` for a week.
fn start(
    rig: &Rig,
    store: &dyn Store,
    config: &Config,
    n: u32,
    delivery: Option<&str>,
) -> Result<Deployment, StartError> {
    let now = rig.clock.now();
    let request = DeployRequest {
        service: web(),
        version: format!("v{n}"),
        commit: format!("{n:07x}"),
        committed_at: Some(now.minus(Duration::from_secs(3600))),
        author: "octocat".into(),
        slot: None,
    };
    let idempotency =
        delivery.map(|key| (key.to_string(), now.plus(Duration::from_secs(7 * 86_400))));
    block_on(
        rig.driver(store)
            .start(config, 1, request, id(n), idempotency),
    )
}

/// One pass, then the clock moves a tick; returns the canary weight after the pass
/// and whether the deployment is finished.
fn pass(rig: &Rig, store: &dyn Store, id: &DeploymentId) -> (u8, bool) {
    let report = block_on(rig.driver(store).reconcile(id)).expect("a pass runs");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let green = rig
        .world
        .router
        .current(&web())
        .unwrap_or(Weights::all_on(Slot::Blue))
        .of(Slot::Green)
        .get();
    rig.clock.advance(TICK);
    (green, report.state.is_terminal())
}

/// Runs passes until the deployment is finished; returns the canary weights seen.
fn run_to_end(rig: &Rig, store: &dyn Store, id: &DeploymentId) -> Vec<u8> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let (green, done) = pass(rig, store, id);
        seen.push(green);
        if done {
            seen.dedup();
            return seen;
        }
    }
    panic!("the deployment did not finish in 100 passes: {seen:?}");
}

fn read(store: &dyn Store, id: &DeploymentId) -> (Deployment, Vec<Event>) {
    let d = block_on(store.deployment(id))
        .expect("readable")
        .expect("the deployment exists");
    let events = block_on(store.events(id)).expect("readable");
    (d, events)
}

/// The history verifies against the deployment's head and replays to its state.
fn assert_history_holds(d: &Deployment, events: &[Event]) {
    verify_history(events, Some(d)).expect("the hash chain verifies");
    let replayed = replay(events).expect("a deployment has events");
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

/// The canary of `canary_steps` from start to success over `store`.
fn whole_canary(store: &dyn Store) -> (Deployment, Vec<Event>, Vec<u8>) {
    let rig = Rig::new();
    let config = one_service(test_service("web", canary_steps()));
    let d = start(&rig, store, &config, 1, Some("delivery-1")).expect("started");
    let seen = run_to_end(&rig, store, &d.id);
    let (done, events) = read(store, &d.id);
    (done, events, seen)
}

#[test]
fn a_store_file_keeps_the_store_contract() {
    let file = TempFile::new("contract");
    block_on(check_all(&file.open(), "sqlite"));
}

#[test]
fn an_in_memory_store_keeps_the_store_contract() {
    let store = SqliteStore::in_memory().expect("opens");
    block_on(check_all(&store, "sqlite-mem"));
}

#[test]
fn a_canary_runs_to_success_and_its_history_replays() {
    let file = TempFile::new("canary");
    let store = file.open();
    let (done, events, seen) = whole_canary(&store);
    assert_eq!(seen, vec![10, 50, 100]);
    assert_eq!(done.state, State::Succeeded);
    assert_history_holds(&done, &events);
    let status = block_on(store.service_status(&web()))
        .expect("readable")
        .expect("a success records the live slot");
    assert_eq!(
        (status.live, status.version.as_deref()),
        (Slot::Green, Some("v1"))
    );
    assert!(
        block_on(store.active_deployments())
            .expect("readable")
            .is_empty(),
        "a finished deployment is not active"
    );

    // The same deployment over the in-memory store writes the very same records,
    // hashes included: the two stores keep the same rules.
    let memory = MemoryStore::new();
    let (reference, reference_events, _) = whole_canary(&memory);
    assert_eq!(done, reference);
    assert_eq!(events, reference_events);
}

#[test]
fn a_restarted_store_resumes_the_deployment_in_flight() {
    let file = TempFile::new("restart");
    let rig = Rig::new();
    let config = one_service(test_service("web", canary_steps()));
    let before = {
        let store = file.open();
        let d = start(&rig, &store, &config, 1, Some("delivery-1")).expect("started");
        // Run until the first pause holds 10% on the new slot, then stop the process.
        let (green, _) = pass(&rig, &store, &d.id);
        assert_eq!(green, 10);
        let (stored, _) = read(&store, &d.id);
        assert!(
            matches!(stored.state, State::Progressing { step: 1 }),
            "{:?}",
            stored.state
        );
        read(&store, &d.id)
    };

    let store = file.open();
    assert_eq!(
        read(&store, &before.0.id),
        before,
        "the reopened file holds it"
    );
    let active = block_on(store.active_deployments()).expect("readable");
    assert_eq!(active, vec![before.0.clone()]);
    // After a restart the controller finds its work through the active deployments.
    let mut passes = 0;
    loop {
        let reports = block_on(rig.driver(&store).reconcile_all()).expect("readable");
        let reports: Vec<PassReport> = reports
            .into_iter()
            .collect::<Result<_, DriverError>>()
            .expect("every pass runs");
        for report in &reports {
            assert!(report.errors.is_empty(), "{:?}", report.errors);
        }
        rig.clock.advance(TICK);
        passes += 1;
        if reports.is_empty() || passes > 100 {
            break;
        }
    }
    let (done, events) = read(&store, &before.0.id);
    assert_eq!(done.state, State::Succeeded);
    assert_history_holds(&done, &events);
    assert_eq!(
        &events[..before.1.len()],
        &before.1[..],
        "history only grows"
    );

    // The interruption left no trace: the history is the one an uninterrupted run
    // writes.
    let (_, uninterrupted, _) = whole_canary(&MemoryStore::new());
    assert_eq!(events, uninterrupted);
}

#[test]
fn every_record_survives_a_reopen() {
    let file = TempFile::new("reopen");
    let rig = Rig::new();
    let mut spec = test_service(
        "web",
        vec![Step::SetWeight(Weight::new(100).expect("valid"))],
    );
    spec.plan.bake = Duration::ZERO;
    let config = one_service(spec);
    let ops = Actor::Cli { user: "ops".into() };
    let written = {
        let store = file.open();
        let stored = block_on(store.put_config("# the configuration", 0, T0)).expect("stored");
        let d = start(&rig, &store, &config, 1, Some("delivery-1")).expect("started");
        let (_, done) = pass(&rig, &store, &d.id);
        assert!(done, "a plan without waits finishes in one pass");
        let command = block_on(store.enqueue_command(
            &d.id,
            ops.clone(),
            CommandKind::Pause,
            Some("late".into()),
            T0,
        ))
        .expect("queued");
        assert_eq!(
            block_on(store.claim_idempotency("delivery-2", "nothing", T0)).expect("claimed"),
            None
        );
        (
            stored,
            read(&store, &d.id),
            command,
            block_on(store.service_status(&web())).expect("readable"),
        )
    };
    let (stored, (d, events), command, status) = written;
    assert!(status.is_some(), "the success recorded the live slot");

    let store = file.open();
    assert_eq!(
        block_on(store.latest_config()).expect("readable"),
        Some(stored)
    );
    assert_eq!(read(&store, &d.id), (d.clone(), events));
    assert_eq!(
        block_on(store.commands_after(&d.id, 0)).expect("readable"),
        vec![command]
    );
    assert_eq!(
        block_on(store.service_status(&web())).expect("readable"),
        status
    );
    assert_eq!(
        block_on(store.deployments_since(Some(&web()), T0)).expect("readable"),
        vec![d]
    );
    for (key, value) in [("delivery-1", "d-1"), ("delivery-2", "nothing")] {
        assert_eq!(
            block_on(store.claim_idempotency(key, "again", T0)).expect("readable"),
            Some(value.to_string()),
            "{key} is still claimed"
        );
    }
    // The next command continues the sequence rather than restarting it.
    let next = block_on(store.enqueue_command(&id(1), ops, CommandKind::Resume, None, T0))
        .expect("queued");
    assert_eq!(next.seq, 2);
}

#[test]
fn a_delivery_id_is_forgotten_once_its_claim_runs_out() {
    let file = TempFile::new("expiry");
    let store = file.open();
    let rig = Rig::new();
    let config = one_service(test_service("web", canary_steps()));
    let first = start(&rig, &store, &config, 1, Some("delivery-1")).expect("started");
    block_on(store.enqueue_command(
        &first.id,
        Actor::Cli { user: "ops".into() },
        CommandKind::Abort,
        None,
        T0,
    ))
    .expect("queued");
    run_to_end(&rig, &store, &first.id);

    // Within the week the delivery finds its deployment; after it, it starts anew.
    rig.clock.set(T0.plus(Duration::from_secs(6 * 86_400)));
    match start(&rig, &store, &config, 2, Some("delivery-1")) {
        Err(StartError::Store(StoreError::Duplicate { existing })) => assert_eq!(existing, "d-1"),
        other => panic!("a redelivery within the week is a duplicate, got {other:?}"),
    }
    rig.clock.set(T0.plus(Duration::from_secs(8 * 86_400)));
    let third = start(&rig, &store, &config, 3, Some("delivery-1")).expect("started anew");
    assert_eq!(
        block_on(store.claim_idempotency("delivery-1", "probe", T0)).expect("readable"),
        Some(third.id.to_string())
    );
}

#[test]
fn numbers_in_a_deployment_read_back_bit_for_bit() {
    let store = SqliteStore::in_memory().expect("opens");
    let rig = Rig::new();
    let mut spec = test_service("web", canary_steps());
    // A threshold that serde_json's default, faster parser reads back one unit in the
    // last place off.
    spec.metrics[0].max = Some(92.421_325_128_135_95);
    let created = start(&rig, &store, &one_service(spec), 1, None).expect("started");
    let stored = block_on(store.deployment(&created.id))
        .expect("readable")
        .expect("present");
    assert_eq!(
        stored.spec.metrics[0].max.map(f64::to_bits),
        created.spec.metrics[0].max.map(f64::to_bits)
    );
    assert_eq!(stored, created);
}

/// What a history says, without hashes and times: kind, state and weights per event.
fn story(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {} {:?}", e.kind.name(), e.state, e.weights_after))
        .collect()
}

struct RaceOutcome {
    story: Vec<String>,
    deployment: Deployment,
    events: Vec<Event>,
    transitions: u32,
    weights: Option<Weights>,
}

/// Runs one canary over a fresh file: each round, `threads` threads (each with its own
/// connection) run `passes` passes at once, then the clock moves on. A rollback
/// command arrives before round `rollback_at`, if given.
fn race(name: &str, threads: usize, passes: usize, rollback_at: Option<usize>) -> RaceOutcome {
    let file = TempFile::new(name);
    let w = |p| Step::SetWeight(Weight::new(p).expect("valid weight"));
    let mut spec = test_service(
        "web",
        vec![w(10), Step::Pause(TICK), w(50), Step::Pause(TICK), w(100)],
    );
    spec.plan.bake = TICK;
    let config = one_service(spec);
    let rig = Rig::new();
    let main = file.open();
    let d = start(&rig, &main, &config, 1, None).expect("started");
    let stores: Vec<SqliteStore> = (0..threads).map(|_| file.open()).collect();
    let mut reports: Vec<Result<PassReport, DriverError>> = Vec::new();
    for round in 0..30 {
        if rollback_at == Some(round) {
            block_on(main.enqueue_command(
                &d.id,
                Actor::Cli { user: "ops".into() },
                CommandKind::Rollback,
                None,
                rig.clock.now(),
            ))
            .expect("queued");
        }
        let start_together = Barrier::new(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = stores
                .iter()
                .map(|store| {
                    let (rig, id, start_together) = (&rig, &d.id, &start_together);
                    scope.spawn(move || {
                        start_together.wait();
                        (0..passes)
                            .map(|_| block_on(rig.driver(store).reconcile(id)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for handle in handles {
                reports.extend(handle.join().expect("a driver thread panicked"));
            }
        });
        if read(&main, &d.id).0.state.is_terminal() {
            break;
        }
        rig.clock.advance(TICK);
    }
    let reports: Vec<PassReport> = reports
        .into_iter()
        .collect::<Result<_, DriverError>>()
        .expect("no store error leaks out of a pass");
    for report in &reports {
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    let (deployment, events) = read(&main, &d.id);
    RaceOutcome {
        story: story(&events),
        transitions: reports.iter().map(|r| r.transitions).sum(),
        weights: rig.world.router.current(&web()),
        deployment,
        events,
    }
}

#[test]
fn drivers_on_four_threads_write_exactly_the_history_one_driver_writes() {
    for (variant, rollback_at) in [("success", None), ("rollback", Some(3))] {
        let single = race(&format!("race-{variant}-single"), 1, 1, rollback_at);
        let raced = race(&format!("race-{variant}-raced"), 4, 3, rollback_at);
        let (end_state, end_slot) = match rollback_at {
            None => (State::Succeeded, Slot::Green),
            Some(_) => (State::RolledBack, Slot::Blue),
        };
        assert_eq!(single.deployment.state, end_state, "{variant}");
        assert_eq!(raced.story, single.story, "{variant}");
        assert_eq!(
            raced.transitions, single.transitions,
            "{variant}: one commit per transition, however many drivers raced"
        );
        assert_eq!(raced.deployment.state, end_state, "{variant}");
        assert_history_holds(&raced.deployment, &raced.events);
        assert_eq!(raced.weights, Some(Weights::all_on(end_slot)), "{variant}");
    }
}

#[test]
fn a_file_from_a_newer_ripcord_is_refused() {
    let file = TempFile::new("schema");
    drop(file.open());
    let raw = rusqlite::Connection::open(file.path()).expect("opens");
    let (version, mode): (u32, String) = (
        raw.pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("readable"),
        raw.pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("readable"),
    );
    assert_eq!((version, mode.as_str()), (SCHEMA_VERSION, "wal"));
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("writable");
    drop(raw);
    let error = SqliteStore::open(file.path()).expect_err("a newer schema is refused");
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert!(
        error.message.contains("newer")
            && error.message.contains(&file.path().display().to_string()),
        "{}",
        error.message
    );
}

#[test]
fn a_file_that_is_not_a_store_is_a_permanent_error_in_sqlites_words() {
    let file = TempFile::new("garbage");
    std::fs::write(file.path(), vec![0x5a; 4096]).expect("written");
    let error = SqliteStore::open(file.path()).expect_err("not a database");
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert!(
        error.message.contains("file is not a database"),
        "{}",
        error.message
    );
}

#[test]
fn a_write_lock_held_elsewhere_is_a_transient_error_and_writes_nothing() {
    let file = TempFile::new("busy");
    let store = file.open();
    let mut other = rusqlite::Connection::open(file.path()).expect("opens");
    let held = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("the other connection takes the write lock");
    let started = std::time::Instant::now();
    let refused = block_on(store.put_config("# blocked", 0, T0));
    match refused {
        Err(StoreError::Unavailable(e)) => {
            assert_eq!(e.kind, ErrorKind::Transient, "{}", e.message);
            assert!(e.message.contains("locked"), "{}", e.message);
        }
        other => panic!("a held lock must fail as transient, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "the store waited for the lock first"
    );
    // Readers are not blocked by the writer.
    assert_eq!(block_on(store.latest_config()).expect("readable"), None);
    drop(held);
    let stored = block_on(store.put_config("# free", 0, T0)).expect("the lock is free");
    assert_eq!(stored.version, 1, "the refused write left nothing behind");
}

#[test]
fn a_store_file_keeps_the_flag_store_contract() {
    let file = TempFile::new("flag-contract");
    block_on(ripcord_core::flag_store_contract::check_all(
        &file.open(),
        "sqlite",
    ));
    // What was written is there after the file is opened again.
    let reopened = file.open();
    let records = block_on(ripcord_core::ports::FlagStore::flag_records(&reopened)).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.name == "sqlite-versioned" && r.version == 2)
    );
}
