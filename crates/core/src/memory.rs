//! In-memory implementations of every port, for tests and `ripcord simulate`.
//!
//! They keep the same contracts as the real adapters (conditional commits, one active
//! deployment per service, idempotency keys) and add knobs to inject what tests need:
//! failing router calls, drift, alarms, unhealthy targets, failing smoke checks and
//! recorded metrics. `MemoryStore::with_yield_points` makes every store call yield
//! once, so that a test executor can interleave concurrent passes at each call.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};

use crate::config::{MetricKind, ServiceSpec};
use crate::deployment::{Command, CommandKind, Deployment};
use crate::domain::{DeploymentId, ServiceName, Slot, Weights};
use crate::driver::Providers;
use crate::engine::Notification;
use crate::history::{Actor, Event};
use crate::observation::{AlarmReport, HealthReport, SlotMetrics, SmokeReport, SmokeResult};
use crate::ports::{
    AlarmSource, BoxFuture, Clock, Commit, MetricSource, NewDeployment, Notifier, PortError,
    ServiceStatus, SmokeRunner, Store, StoreError, StoredConfig, TargetHealth, TrafficRouter,
    WakeUps,
};
use crate::time::Timestamp;

mod flag_store;

pub use flag_store::MemoryFlagStore;

/// Runs a future to completion on the current thread. The in-memory ports never wait
/// on anything outside the process, so polling in a loop is enough.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A future that is pending once, then ready: a point where an executor may switch.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic in another test thread must not hide this test's own result.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self(AtomicI64::new(now.as_millis()))
    }

    /// Sets the time.
    pub fn set(&self, now: Timestamp) {
        self.0.store(now.as_millis(), Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

#[derive(Debug, Default)]
struct StoreInner {
    configs: Vec<StoredConfig>,
    deployments: BTreeMap<DeploymentId, Deployment>,
    events: BTreeMap<DeploymentId, Vec<Event>>,
    commands: BTreeMap<DeploymentId, Vec<Command>>,
    services: BTreeMap<ServiceName, ServiceStatus>,
    idempotency: BTreeMap<String, String>,
    commits: u64,
}

/// The store, in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<StoreInner>,
    yield_points: bool,
    fail_next_commits: AtomicU32,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose every call yields once before it runs.
    pub fn with_yield_points() -> Self {
        Self {
            inner: Mutex::default(),
            yield_points: true,
            fail_next_commits: AtomicU32::new(0),
        }
    }

    /// Makes the next `n` commits fail as if the store could not be reached.
    pub fn fail_next_commits(&self, n: u32) {
        self.fail_next_commits.store(n, Ordering::SeqCst);
    }

    async fn pause_point(&self) {
        if self.yield_points {
            YieldOnce(false).await;
        }
    }

    /// How many commits have succeeded.
    pub fn commit_count(&self) -> u64 {
        locked(&self.inner).commits
    }

    /// Every event of a deployment, for inspection.
    pub fn events_of(&self, id: &DeploymentId) -> Vec<Event> {
        locked(&self.inner)
            .events
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// A deployment, for inspection.
    pub fn deployment_now(&self, id: &DeploymentId) -> Option<Deployment> {
        locked(&self.inner).deployments.get(id).cloned()
    }
}

impl Store for MemoryStore {
    fn latest_config(&self) -> BoxFuture<'_, Result<Option<StoredConfig>, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            Ok(locked(&self.inner).configs.last().cloned())
        })
    }

    fn put_config<'a>(
        &'a self,
        text: &'a str,
        previous: u64,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<StoredConfig, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            let mut inner = locked(&self.inner);
            let latest = inner.configs.last().map_or(0, |c| c.version);
            if latest != previous {
                return Err(StoreError::ConfigConflict { expected: previous });
            }
            let stored = StoredConfig {
                version: previous + 1,
                text: text.to_string(),
                applied_at: at,
            };
            inner.configs.push(stored.clone());
            Ok(stored)
        })
    }

    fn deployment<'a>(
        &'a self,
        id: &'a DeploymentId,
    ) -> BoxFuture<'a, Result<Option<Deployment>, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            Ok(locked(&self.inner).deployments.get(id).cloned())
        })
    }

    fn active_deployments(&self) -> BoxFuture<'_, Result<Vec<Deployment>, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            Ok(locked(&self.inner)
                .deployments
                .values()
                .filter(|d| d.is_active())
                .cloned()
                .collect())
        })
    }

    fn deployments_since<'a>(
        &'a self,
        service: Option<&'a ServiceName>,
        since: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<Deployment>, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            let mut list: Vec<Deployment> = locked(&self.inner)
                .deployments
                .values()
                .filter(|d| d.created_at >= since && service.is_none_or(|s| &d.service == s))
                .cloned()
                .collect();
            list.sort_by_key(|d| (d.created_at, d.id.clone()));
            Ok(list)
        })
    }

    fn create_deployment(&self, new: NewDeployment) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            let mut inner = locked(&self.inner);
            if let Some((key, _)) = &new.idempotency
                && let Some(existing) = inner.idempotency.get(key)
            {
                return Err(StoreError::Duplicate {
                    existing: existing.clone(),
                });
            }
            if let Some(active) = inner
                .deployments
                .values()
                .find(|d| d.service == new.deployment.service && d.is_active())
            {
                return Err(StoreError::AlreadyActive {
                    service: new.deployment.service.clone(),
                    active: active.id.clone(),
                });
            }
            let id = new.deployment.id.clone();
            if inner.deployments.contains_key(&id) {
                return Err(StoreError::Conflict { id, expected: 0 });
            }
            if let Some((key, _)) = new.idempotency {
                inner.idempotency.insert(key, id.to_string());
            }
            inner.events.insert(id.clone(), new.events);
            inner.deployments.insert(id, new.deployment);
            inner.commits += 1;
            Ok(())
        })
    }

    fn commit(&self, commit: Commit) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            if take_failure(&self.fail_next_commits) {
                return Err(StoreError::Unavailable(PortError::transient(
                    "injected failure: the store is unreachable",
                )));
            }
            let mut inner = locked(&self.inner);
            let id = commit.deployment.id.clone();
            let current = inner.deployments.get(&id).map(|d| d.revision);
            if current != Some(commit.expected_revision)
                || commit.deployment.revision != commit.expected_revision + 1
            {
                return Err(StoreError::Conflict {
                    id,
                    expected: commit.expected_revision,
                });
            }
            inner
                .events
                .entry(id.clone())
                .or_default()
                .extend(commit.events);
            if let Some(status) = commit.service {
                inner.services.insert(status.service.clone(), status);
            }
            inner.deployments.insert(id, commit.deployment);
            inner.commits += 1;
            Ok(())
        })
    }

    fn events<'a>(&'a self, id: &'a DeploymentId) -> BoxFuture<'a, Result<Vec<Event>, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            Ok(self.events_of(id))
        })
    }

    fn enqueue_command<'a>(
        &'a self,
        id: &'a DeploymentId,
        actor: Actor,
        kind: CommandKind,
        reason: Option<String>,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<Command, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            let mut inner = locked(&self.inner);
            if !inner.deployments.contains_key(id) {
                return Err(StoreError::Unavailable(PortError::permanent(format!(
                    "no deployment {id}"
                ))));
            }
            let queue = inner.commands.entry(id.clone()).or_default();
            let command = Command {
                seq: queue.len() as u64 + 1,
                at,
                actor,
                kind,
                reason,
            };
            queue.push(command.clone());
            Ok(command)
        })
    }

    fn commands_after<'a>(
        &'a self,
        id: &'a DeploymentId,
        after_seq: u64,
    ) -> BoxFuture<'a, Result<Vec<Command>, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            Ok(locked(&self.inner)
                .commands
                .get(id)
                .map(|q| q.iter().filter(|c| c.seq > after_seq).cloned().collect())
                .unwrap_or_default())
        })
    }

    fn service_status<'a>(
        &'a self,
        service: &'a ServiceName,
    ) -> BoxFuture<'a, Result<Option<ServiceStatus>, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            Ok(locked(&self.inner).services.get(service).cloned())
        })
    }

    fn claim_idempotency<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        _expires_at: Timestamp,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            self.pause_point().await;
            let mut inner = locked(&self.inner);
            if let Some(existing) = inner.idempotency.get(key) {
                return Ok(Some(existing.clone()));
            }
            inner.idempotency.insert(key.to_string(), value.to_string());
            Ok(None)
        })
    }
}

/// A traffic router holding each service's weights, with knobs for failures and drift.
#[derive(Debug, Default)]
pub struct MemoryRouter {
    weights: Mutex<BTreeMap<ServiceName, Weights>>,
    fail_next_sets: AtomicU32,
    fail_next_reads: AtomicU32,
    set_calls: AtomicU32,
}

impl MemoryRouter {
    /// Changes a service's weights behind Ripcord's back (drift, or a person's change).
    pub fn force(&self, service: &ServiceName, weights: Weights) {
        locked(&self.weights).insert(service.clone(), weights);
    }

    /// The weights currently served, if any were set.
    pub fn current(&self, service: &ServiceName) -> Option<Weights> {
        locked(&self.weights).get(service).copied()
    }

    /// Makes the next `n` calls to `set_weights` fail with a transient error.
    pub fn fail_next_sets(&self, n: u32) {
        self.fail_next_sets.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` calls to `read_weights` fail with a transient error.
    pub fn fail_next_reads(&self, n: u32) {
        self.fail_next_reads.store(n, Ordering::SeqCst);
    }

    /// How many times `set_weights` was called (failed calls included).
    pub fn set_calls(&self) -> u32 {
        self.set_calls.load(Ordering::SeqCst)
    }
}

fn take_failure(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl TrafficRouter for MemoryRouter {
    fn set_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
        weights: Weights,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            self.set_calls.fetch_add(1, Ordering::SeqCst);
            if take_failure(&self.fail_next_sets) {
                return Err(PortError::transient("injected failure: throttled"));
            }
            self.force(&service.name, weights);
            Ok(())
        })
    }

    fn read_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
    ) -> BoxFuture<'a, Result<Weights, PortError>> {
        Box::pin(async move {
            if take_failure(&self.fail_next_reads) {
                return Err(PortError::transient("injected failure: read timed out"));
            }
            Ok(self
                .current(&service.name)
                .unwrap_or_else(|| Weights::all_on(service.initial_live)))
        })
    }
}

/// Target health per service and slot; every slot has two healthy targets unless set.
#[derive(Debug, Default)]
pub struct MemoryHealth {
    reports: Mutex<BTreeMap<(ServiceName, Slot), HealthReport>>,
}

impl MemoryHealth {
    /// Sets the report for a slot.
    pub fn set(&self, service: &ServiceName, slot: Slot, report: HealthReport) {
        locked(&self.reports).insert((service.clone(), slot), report);
    }
}

impl TargetHealth for MemoryHealth {
    fn health<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
    ) -> BoxFuture<'a, Result<HealthReport, PortError>> {
        Box::pin(async move {
            Ok(locked(&self.reports)
                .get(&(service.name.clone(), slot))
                .cloned()
                .unwrap_or(HealthReport {
                    healthy: 2,
                    total: 2,
                    unhealthy: Vec::new(),
                }))
        })
    }
}

/// Alarm states, set by the test.
#[derive(Debug, Default)]
pub struct MemoryAlarms {
    firing: Mutex<BTreeMap<String, String>>,
}

impl MemoryAlarms {
    /// Puts an alarm in ALARM with a reason.
    pub fn fire(&self, name: &str, reason: &str) {
        locked(&self.firing).insert(name.to_string(), reason.to_string());
    }

    /// Puts an alarm back to OK.
    pub fn clear(&self, name: &str) {
        locked(&self.firing).remove(name);
    }
}

impl AlarmSource for MemoryAlarms {
    fn firing<'a>(&'a self, names: &'a [String]) -> BoxFuture<'a, Result<AlarmReport, PortError>> {
        Box::pin(async move {
            let firing = locked(&self.firing);
            Ok(AlarmReport {
                firing: names
                    .iter()
                    .filter_map(|n| firing.get(n).map(|r| (n.clone(), r.clone())))
                    .collect(),
            })
        })
    }
}

/// One recorded metric sample of one slot over one period.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// The start of the period.
    pub at: Timestamp,
    /// The slot.
    pub slot: Slot,
    /// Requests in the period.
    pub requests: u64,
    /// 5xx answers in the period.
    pub errors_5xx: u64,
    /// 95th percentile latency in the period, milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// 99th percentile latency in the period, milliseconds.
    pub latency_p99_ms: Option<f64>,
}

/// Recorded metric samples, aggregated over whatever window is asked for.
#[derive(Debug, Default)]
pub struct MemoryMetrics {
    samples: Mutex<Vec<MetricSample>>,
}

impl MemoryMetrics {
    /// Adds samples.
    pub fn record(&self, samples: impl IntoIterator<Item = MetricSample>) {
        locked(&self.samples).extend(samples);
    }

    /// Aggregates a slot's samples with `start <= at < end`: counts are summed and
    /// percentiles averaged weighted by requests (an approximation, as CloudWatch's
    /// own per-period percentiles are).
    pub fn aggregate(&self, slot: Slot, start: Timestamp, end: Timestamp) -> SlotMetrics {
        let samples = locked(&self.samples);
        let chosen: Vec<&MetricSample> = samples
            .iter()
            .filter(|s| s.slot == slot && s.at >= start && s.at < end)
            .collect();
        let mut out = SlotMetrics::default();
        let weighted = |pick: fn(&MetricSample) -> Option<f64>| {
            let (mut sum, mut weight) = (0.0, 0.0);
            for s in &chosen {
                if let Some(v) = pick(s) {
                    let w = s.requests.max(1) as f64;
                    sum += v * w;
                    weight += w;
                }
            }
            (weight > 0.0).then(|| sum / weight)
        };
        out.latency_p95_ms = weighted(|s| s.latency_p95_ms);
        out.latency_p99_ms = weighted(|s| s.latency_p99_ms);
        for s in &chosen {
            out.requests += s.requests;
            out.errors_5xx += s.errors_5xx;
            out.series
                .entry(MetricKind::RequestCount)
                .or_default()
                .push(s.requests as f64);
            if s.requests > 0 {
                out.series
                    .entry(MetricKind::ErrorRate)
                    .or_default()
                    .push(s.errors_5xx as f64 * 100.0 / s.requests as f64);
            }
            if let Some(v) = s.latency_p95_ms {
                out.series
                    .entry(MetricKind::LatencyP95)
                    .or_default()
                    .push(v);
            }
            if let Some(v) = s.latency_p99_ms {
                out.series
                    .entry(MetricKind::LatencyP99)
                    .or_default()
                    .push(v);
            }
        }
        out
    }
}

impl MetricSource for MemoryMetrics {
    fn slot_metrics<'a>(
        &'a self,
        _service: &'a ServiceSpec,
        slot: Slot,
        start: Timestamp,
        end: Timestamp,
    ) -> BoxFuture<'a, Result<SlotMetrics, PortError>> {
        Box::pin(async move { Ok(self.aggregate(slot, start, end)) })
    }
}

/// Smoke checks that pass unless named to fail.
#[derive(Debug, Default)]
pub struct MemorySmoke {
    failing: Mutex<BTreeMap<String, String>>,
}

impl MemorySmoke {
    /// Makes the named check fail with `detail`.
    pub fn fail(&self, check: &str, detail: &str) {
        locked(&self.failing).insert(check.to_string(), detail.to_string());
    }
}

impl SmokeRunner for MemorySmoke {
    fn run<'a>(
        &'a self,
        service: &'a ServiceSpec,
        _slot: Slot,
    ) -> BoxFuture<'a, Result<SmokeReport, PortError>> {
        Box::pin(async move {
            let failing = locked(&self.failing);
            Ok(SmokeReport {
                results: service
                    .smoke
                    .iter()
                    .map(|check| match failing.get(&check.name) {
                        Some(detail) => SmokeResult {
                            name: check.name.clone(),
                            passed: false,
                            detail: detail.clone(),
                        },
                        None => SmokeResult {
                            name: check.name.clone(),
                            passed: true,
                            detail: format!(
                                "{} {} -> {}",
                                check.method, check.path, check.expect_status
                            ),
                        },
                    })
                    .collect(),
            })
        })
    }
}

/// Records every notification sent.
#[derive(Debug, Default)]
pub struct MemoryNotifier {
    sent: Mutex<Vec<Notification>>,
}

impl MemoryNotifier {
    /// Everything sent so far.
    pub fn sent(&self) -> Vec<Notification> {
        locked(&self.sent).clone()
    }
}

impl Notifier for MemoryNotifier {
    fn notify<'a>(
        &'a self,
        notification: &'a Notification,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            locked(&self.sent).push(notification.clone());
            Ok(())
        })
    }
}

/// The booked wake-ups, one per deployment, as EventBridge Scheduler keeps them.
#[derive(Debug, Default)]
pub struct MemoryWakeUps {
    booked: Mutex<BTreeMap<DeploymentId, Timestamp>>,
    fail_next: AtomicU32,
}

impl MemoryWakeUps {
    /// The deployment's booked wake-up, if any.
    pub fn booked(&self, id: &DeploymentId) -> Option<Timestamp> {
        locked(&self.booked).get(id).copied()
    }

    /// How many deployments have a wake-up booked.
    pub fn count(&self) -> usize {
        locked(&self.booked).len()
    }

    /// Makes the next `n` calls fail with a transient error.
    pub fn fail_next(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    fn failing(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl WakeUps for MemoryWakeUps {
    fn book<'a>(
        &'a self,
        id: &'a DeploymentId,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            if self.failing() {
                return Err(PortError::transient("the scheduler is unavailable"));
            }
            locked(&self.booked).insert(id.clone(), at);
            Ok(())
        })
    }

    fn cancel<'a>(&'a self, id: &'a DeploymentId) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            if self.failing() {
                return Err(PortError::transient("the scheduler is unavailable"));
            }
            locked(&self.booked).remove(id);
            Ok(())
        })
    }
}

/// Every in-memory provider together, as one `Providers`.
#[derive(Debug, Default)]
pub struct MemoryWorld {
    /// Weights.
    pub router: MemoryRouter,
    /// Target health.
    pub health: MemoryHealth,
    /// Alarms.
    pub alarms: MemoryAlarms,
    /// Metrics.
    pub metrics: MemoryMetrics,
    /// Smoke checks.
    pub smoke: MemorySmoke,
}

impl Providers for MemoryWorld {
    fn router(&self, _service: &ServiceSpec) -> &dyn TrafficRouter {
        &self.router
    }
    fn health(&self, _service: &ServiceSpec) -> &dyn TargetHealth {
        &self.health
    }
    fn alarms(&self, _service: &ServiceSpec) -> &dyn AlarmSource {
        &self.alarms
    }
    fn metrics(&self, _service: &ServiceSpec) -> &dyn MetricSource {
        &self.metrics
    }
    fn smoke(&self, _service: &ServiceSpec) -> &dyn SmokeRunner {
        &self.smoke
    }
}

/// A service for tests: local target, the given steps, a one-minute bake, two smoke
/// checks, alarm `<name>-5xx`, an error-rate check and an approval policy for role
/// `deployers` with quorum 1.
pub fn test_service(name: &str, steps: Vec<crate::config::Step>) -> ServiceSpec {
    use crate::config::*;
    use std::time::Duration;
    let name = ServiceName::new(name).expect("test service name is valid");
    ServiceSpec {
        traffic: Some(TrafficTarget::Local(LocalTarget {
            listen: "127.0.0.1:8080".into(),
            blue: "http://127.0.0.1:9001".into(),
            green: "http://127.0.0.1:9002".into(),
            health_check: LocalHealthCheck::default(),
            alarms: Vec::new(),
        })),
        initial_live: Slot::Blue,
        strategy: Strategy::Canary,
        plan: Plan {
            ramp: Ramp::Traffic,
            steps,
            bake: Duration::from_secs(60),
        },
        health: HealthGate::default(),
        smoke: vec![SmokeCheck {
            name: "home".into(),
            method: "GET".into(),
            path: "/".into(),
            expect_status: 200,
            body_contains: None,
            header: None,
            timeout: Duration::from_secs(5),
        }],
        alarms: AlarmGate {
            names: vec![format!("{name}-5xx")],
            block_on_baseline: false,
        },
        metrics: vec![MetricCheck {
            metric: MetricKind::ErrorRate,
            max: Some(5.0),
            min: None,
            window: Duration::from_secs(60),
            min_requests: 10,
        }],
        judge: None,
        approval: ApprovalPolicy {
            roles: vec!["deployers".into()],
            ..ApprovalPolicy::default()
        },
        notifications: Notifications::default(),
        chat: ChatAccess::default(),
        name,
    }
}

/// A whole in-memory installation: providers, store, notifier and a manual clock, with
/// one configuration. Tests and `ripcord simulate` drive deployments through it.
pub struct Sandbox {
    /// The providers.
    pub world: MemoryWorld,
    /// The store.
    pub store: MemoryStore,
    /// The notifier.
    pub notifier: MemoryNotifier,
    /// The clock.
    pub clock: ManualClock,
    /// The configuration deployments start under.
    pub config: crate::config::Config,
    next_id: AtomicU32,
}

impl Sandbox {
    /// A sandbox at time `start` with `config`.
    pub fn new(config: crate::config::Config, start: Timestamp) -> Self {
        Self::with_store(config, start, MemoryStore::new())
    }

    /// A sandbox over a given store (e.g. one with yield points).
    pub fn with_store(config: crate::config::Config, start: Timestamp, store: MemoryStore) -> Self {
        Self {
            world: MemoryWorld::default(),
            store,
            notifier: MemoryNotifier::default(),
            clock: ManualClock::new(start),
            config,
            next_id: AtomicU32::new(1),
        }
    }

    /// A sandbox with one service.
    pub fn single(spec: ServiceSpec, start: Timestamp) -> Self {
        let mut services = BTreeMap::new();
        services.insert(spec.name.clone(), spec);
        Self::new(
            crate::config::Config {
                services,
                authors: BTreeMap::new(),
                flags: Default::default(),
            },
            start,
        )
    }

    /// A driver over the sandbox's ports.
    pub fn driver(&self) -> crate::driver::Driver<'_> {
        crate::driver::Driver {
            providers: &self.world,
            store: &self.store,
            notifier: &self.notifier,
            clock: &self.clock,
        }
    }

    /// Starts a deployment of `version` of `service`, by `author`.
    pub fn deploy(
        &self,
        service: &str,
        version: &str,
        author: &str,
    ) -> Result<Deployment, crate::driver::StartError> {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let request = crate::driver::DeployRequest {
            service: ServiceName::new(service).map_err(|_| {
                crate::driver::StartError::UnknownService(
                    ServiceName::new("invalid").expect("valid name"),
                )
            })?,
            version: version.to_string(),
            commit: format!("{n:07x}"),
            committed_at: Some(self.clock.now().minus(std::time::Duration::from_secs(3600))),
            author: author.to_string(),
            slot: None,
        };
        let id = DeploymentId::new(format!("d-{n}")).expect("valid id");
        block_on(self.driver().start(&self.config, 1, request, id, None))
    }

    /// One reconcile pass.
    pub fn pass(&self, id: &DeploymentId) -> crate::driver::PassReport {
        block_on(self.driver().reconcile(id)).expect("the in-memory store does not fail")
    }

    /// Queues a command.
    pub fn command(&self, id: &DeploymentId, actor: Actor, kind: CommandKind) -> Command {
        let now = self.clock.now();
        block_on(self.store.enqueue_command(id, actor, kind, None, now))
            .expect("the deployment exists")
    }

    /// The deployment as stored.
    pub fn deployment(&self, id: &DeploymentId) -> Deployment {
        self.store
            .deployment_now(id)
            .expect("the deployment exists")
    }
}
