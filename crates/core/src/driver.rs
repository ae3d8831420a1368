//! The driver: one reconcile pass over the ports (observe, decide, commit, act, notify).
//!
//! A pass commits a decision before acting on it, with a conditional write on the
//! deployment's revision. Two passes racing on one deployment therefore produce one
//! transition: the loser's commit fails, it re-reads, and finds nothing left to do.
//! After acting, the pass reads the deployment again and decides again, so a newer
//! decision stored by someone else while this pass acted is carried out too, and a
//! plan with no waits runs through in one pass.

use serde::Serialize;

use crate::config::{Config, ServiceSpec};
use crate::deployment::{Deployment, Release, State};
use crate::domain::{DeploymentId, ServiceName, Slot};
use crate::engine::{self, Action, Decision};
use crate::history::{Actor, EventDraft, EventKind, seal};
use crate::observation::{MetricReading, Observation};
use crate::ports::{
    AlarmSource, Clock, Commit, MetricSource, NewDeployment, Notifier, SmokeRunner, Store,
    StoreError, TargetHealth, TrafficRouter,
};
use crate::time::Timestamp;

/// At most this many decisions in one pass, so a pass always ends.
const MAX_DECISIONS: usize = 64;

/// How soon to try again after an action failed.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// Picks the adapter of each concern for a service: the one place where providers are
/// assembled from configuration.
pub trait Providers: Send + Sync {
    /// The service's traffic router (ALB, local proxy, or flag store).
    fn router(&self, service: &ServiceSpec) -> &dyn TrafficRouter;
    /// The service's target health source.
    fn health(&self, service: &ServiceSpec) -> &dyn TargetHealth;
    /// The service's alarm source.
    fn alarms(&self, service: &ServiceSpec) -> &dyn AlarmSource;
    /// The service's metric source.
    fn metrics(&self, service: &ServiceSpec) -> &dyn MetricSource;
    /// The service's smoke runner.
    fn smoke(&self, service: &ServiceSpec) -> &dyn SmokeRunner;
}

/// A request to deploy a release, as the webhook delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRequest {
    /// The service.
    pub service: ServiceName,
    /// The version label.
    pub version: String,
    /// The commit.
    pub commit: String,
    /// When the commit was made.
    pub committed_at: Option<Timestamp>,
    /// The CI author.
    pub author: String,
    /// The slot CI put the release on, if it says; it must be the idle one.
    pub slot: Option<Slot>,
}

/// Why a deployment could not start. Nothing is written in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The service is not in the configuration.
    #[error("unknown service {0}: add it to ripcord.toml and run `ripcord apply`")]
    UnknownService(ServiceName),
    /// The release was put on the live slot.
    #[error("slot {0} is live; put the new version on the idle slot {idle} and deploy again", idle = .0.other())]
    SlotIsLive(Slot),
    /// The store refused or failed: already active, duplicate delivery, unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a pass could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// No such deployment.
    #[error("no deployment {0}")]
    NotFound(DeploymentId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassReport {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Decisions committed by this pass.
    pub transitions: u32,
    /// Commits lost to another writer (each followed by a re-read).
    pub conflicts: u32,
    /// The deployment's state when the pass ended.
    pub state: State,
    /// When the deployment next needs a pass, if it waits on time.
    pub wake_at: Option<Timestamp>,
    /// What went wrong on the way (unreadable sources, failed actions), for the logs.
    pub errors: Vec<String>,
}

/// One reconcile pass's collaborators.
#[derive(Clone, Copy)]
pub struct Driver<'a> {
    /// The adapters per service.
    pub providers: &'a dyn Providers,
    /// Durable state.
    pub store: &'a dyn Store,
    /// Where notifications go.
    pub notifier: &'a dyn Notifier,
    /// The time.
    pub clock: &'a dyn Clock,
}

enum Applied {
    /// Another writer got there first; re-read and decide again.
    Conflict,
    /// Committed (or nothing to commit) and acted.
    Done { state_changed: bool, acted_ok: bool },
}

impl<'a> Driver<'a> {
    /// Creates a deployment of `request` under `config` (version `config_version`),
    /// claiming the idempotency key in the same write.
    pub async fn start(
        &self,
        config: &Config,
        config_version: u64,
        request: DeployRequest,
        id: DeploymentId,
        idempotency: Option<(String, Timestamp)>,
    ) -> Result<Deployment, StartError> {
        let spec = config
            .service(&request.service)
            .ok_or_else(|| StartError::UnknownService(request.service.clone()))?;
        let live = self
            .store
            .service_status(&request.service)
            .await?
            .map_or(spec.initial_live, |s| s.live);
        if request.slot == Some(live) {
            return Err(StartError::SlotIsLive(live));
        }
        let now = self.clock.now();
        let release = Release {
            version: request.version.clone(),
            commit: request.commit.clone(),
            committed_at: request.committed_at,
            author: request.author.clone(),
            author_chat_id: config.authors.get(&request.author).cloned(),
        };
        let mut deployment = Deployment::new(id, spec.clone(), config_version, release, live, now);
        let draft = EventDraft {
            at: now,
            actor: Actor::Ci {
                author: request.author.clone(),
            },
            kind: EventKind::Created {
                version: request.version.clone(),
                commit: request.commit.clone(),
                committed_at: request.committed_at,
            },
            reason: format!(
                "{} ({}) by {} onto {}; {} stays live until it is verified",
                request.version,
                request.commit,
                request.author,
                live.other(),
                live
            ),
            weights_before: None,
            weights_after: Some(deployment.desired),
            state: deployment.state,
        };
        let (events, count, head) = seal(
            &deployment.id,
            &deployment.service,
            0,
            &deployment.last_hash,
            &[draft],
        );
        deployment.event_count = count;
        deployment.last_hash = head;
        self.store
            .create_deployment(NewDeployment {
                deployment: deployment.clone(),
                events,
                idempotency,
            })
            .await?;
        Ok(deployment)
    }

    /// Runs passes over every active deployment, one after another.
    pub async fn reconcile_all(&self) -> Result<Vec<Result<PassReport, DriverError>>, DriverError> {
        let active = self.store.active_deployments().await?;
        let mut reports = Vec::with_capacity(active.len());
        for deployment in active {
            reports.push(self.reconcile(&deployment.id).await);
        }
        Ok(reports)
    }

    /// One reconcile pass over one deployment.
    pub async fn reconcile(&self, id: &DeploymentId) -> Result<PassReport, DriverError> {
        self.run(id, None).await
    }

    /// The alarm fast path: every active deployment watching `alarm` (and not holding it
    /// in its baseline) rolls back at once; each then gets a normal pass to verify it.
    pub async fn on_alarm(
        &self,
        alarm: &str,
        reason: &str,
    ) -> Result<Vec<PassReport>, DriverError> {
        let active = self.store.active_deployments().await?;
        let mut reports = Vec::new();
        for deployment in active {
            if !deployment.spec.alarms.names.iter().any(|n| n == alarm) {
                continue;
            }
            reports.push(self.run(&deployment.id, Some((alarm, reason))).await?);
        }
        Ok(reports)
    }

    async fn run(
        &self,
        id: &DeploymentId,
        alarm: Option<(&str, &str)>,
    ) -> Result<PassReport, DriverError> {
        let mut report = PassReport {
            deployment_id: id.clone(),
            transitions: 0,
            conflicts: 0,
            state: State::Pending,
            wake_at: None,
            errors: Vec::new(),
        };
        let mut alarm = alarm;
        let mut quiet = 0;
        for _ in 0..MAX_DECISIONS {
            let deployment = self
                .store
                .deployment(id)
                .await?
                .ok_or_else(|| DriverError::NotFound(id.clone()))?;
            report.state = deployment.state;
            if deployment.state.is_terminal() {
                report.wake_at = None;
                break;
            }
            let now = self.clock.now();
            let decision = match alarm {
                Some((name, why)) => engine::alarm_fired(&deployment, name, why, now),
                None => {
                    let observation = self.observe(&deployment, now, &mut report).await?;
                    engine::decide(&deployment, &observation, now)
                }
            };
            report.wake_at = decision.wake_at;
            if decision.is_noop() {
                if alarm.take().is_some() {
                    // The alarm changed nothing (baseline, not watched): a normal pass
                    // still looks at everything else.
                    continue;
                }
                break;
            }
            match self.apply(&deployment, decision, &mut report).await? {
                Applied::Conflict => {
                    report.conflicts += 1;
                    continue;
                }
                Applied::Done {
                    state_changed,
                    acted_ok,
                } => {
                    alarm = None;
                    if !acted_ok {
                        report.wake_at = Some(self.clock.now().plus(RETRY_AFTER));
                        break;
                    }
                    quiet = if state_changed { 0 } else { quiet + 1 };
                    if quiet >= 2 {
                        break;
                    }
                }
            }
        }
        if let Some(d) = self.store.deployment(id).await? {
            report.state = d.state;
        }
        Ok(report)
    }

    async fn observe(
        &self,
        deployment: &Deployment,
        now: Timestamp,
        report: &mut PassReport,
    ) -> Result<Observation, DriverError> {
        let needs = engine::needs(deployment, now);
        let spec = &deployment.spec;
        let mut observation = Observation::default();
        if needs.weights {
            match self.providers.router(spec).read_weights(spec).await {
                Ok(weights) => observation.weights = Some(weights),
                Err(e) => report.errors.push(format!("reading weights: {e}")),
            }
        }
        if let Some(slot) = needs.health {
            match self.providers.health(spec).health(spec, slot).await {
                Ok(health) => observation.health = Some(health),
                Err(e) => report
                    .errors
                    .push(format!("reading target health of {slot}: {e}")),
            }
        }
        if needs.alarms {
            match self.providers.alarms(spec).firing(&spec.alarms.names).await {
                Ok(alarms) => observation.alarms = Some(alarms),
                Err(e) => report.errors.push(format!("reading alarms: {e}")),
            }
        }
        for (slot, window) in needs.metrics {
            let start = now.minus(window);
            match self
                .providers
                .metrics(spec)
                .slot_metrics(spec, slot, start, now)
                .await
            {
                Ok(metrics) => observation.metrics.push(MetricReading {
                    slot,
                    window,
                    metrics,
                }),
                Err(e) => report
                    .errors
                    .push(format!("reading metrics of {slot}: {e}")),
            }
        }
        if let Some(slot) = needs.smoke {
            match self.providers.smoke(spec).run(spec, slot).await {
                Ok(smoke) => observation.smoke = Some(smoke),
                Err(e) => report
                    .errors
                    .push(format!("running smoke checks on {slot}: {e}")),
            }
        }
        if needs.commands {
            observation.commands = self
                .store
                .commands_after(&deployment.id, deployment.commands_applied)
                .await?;
        }
        Ok(observation)
    }

    async fn apply(
        &self,
        deployment: &Deployment,
        decision: Decision,
        report: &mut PassReport,
    ) -> Result<Applied, DriverError> {
        let mut state_changed = false;
        let mut spec = &deployment.spec;
        let next_holder;
        if let Some(mut next) = decision.next {
            let (events, count, head) = seal(
                &next.id,
                &next.service,
                deployment.event_count,
                &deployment.last_hash,
                &decision.events,
            );
            next.revision = deployment.revision + 1;
            next.event_count = count;
            next.last_hash = head;
            state_changed = next.state != deployment.state;
            let rolling_back = matches!(next.state, State::RollingBack { .. });
            let commit = Commit {
                deployment: next.clone(),
                expected_revision: deployment.revision,
                events,
                service: decision.service.clone(),
            };
            match self.store.commit(commit).await {
                Ok(()) => report.transitions += 1,
                Err(StoreError::Conflict { .. }) => return Ok(Applied::Conflict),
                Err(e) if rolling_back => {
                    // Traffic comes first: put it back even though the decision could
                    // not be recorded; the next pass records it.
                    report.errors.push(format!(
                        "recording the rollback failed ({e}); rolling back anyway"
                    ));
                    let acted_ok = self.act(&next.spec, &decision.actions, report).await;
                    report.wake_at = Some(self.clock.now().plus(RETRY_AFTER));
                    if !acted_ok {
                        report
                            .errors
                            .push("the rollback could not be applied either".into());
                    }
                    return Err(DriverError::Store(e));
                }
                Err(e) => return Err(DriverError::Store(e)),
            }
            next_holder = next;
            spec = &next_holder.spec;
        }
        let acted_ok = self.act(spec, &decision.actions, report).await;
        for notification in &decision.notifications {
            if let Err(e) = self.notifier.notify(notification).await {
                report.errors.push(format!("sending a notification: {e}"));
            }
        }
        Ok(Applied::Done {
            state_changed,
            acted_ok,
        })
    }

    async fn act(&self, spec: &ServiceSpec, actions: &[Action], report: &mut PassReport) -> bool {
        let mut ok = true;
        for action in actions {
            match action {
                Action::SetWeights { weights } => {
                    if let Err(e) = self
                        .providers
                        .router(spec)
                        .set_weights(spec, *weights)
                        .await
                    {
                        report
                            .errors
                            .push(format!("setting weights {weights}: {e}"));
                        ok = false;
                    }
                }
            }
        }
        ok
    }
}
