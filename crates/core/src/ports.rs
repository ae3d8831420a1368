//! The ports: one narrow trait per concern that the engine needs from the world.
//! Adapters (AWS, local mode, in-memory) implement them in other modules and crates.
//!
//! Methods return boxed futures so that the traits can be used as trait objects (the
//! providers of a service are picked at run time from its configuration) without
//! tying the core to any async runtime.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::config::ServiceSpec;
use crate::deployment::{Command, CommandKind, Deployment};
use crate::domain::{DeploymentId, ServiceName, Slot, Weights};
use crate::engine::Notification;
use crate::history::{Actor, Event};
use crate::observation::{AlarmReport, HealthReport, SlotMetrics, SmokeReport};
use crate::time::Timestamp;

/// A boxed, sendable future, as every port method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether retrying an operation can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Throttling, a timeout, a 5xx: a later try may succeed.
    Transient,
    /// Bad configuration or a refused request: retrying will not help.
    Permanent,
}

/// An adapter's failure, with the whole cause in `message` (and, for AWS, the request id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    /// Whether retrying can help.
    pub kind: ErrorKind,
    /// What went wrong and, where possible, what to do.
    pub message: String,
}

impl PortError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            message: message.into(),
        }
    }

    /// A failure retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            message: message.into(),
        }
    }
}

/// Sets and reads the traffic split of a service (ALB weights, the local proxy's
/// weights, or a flag's rollout percentage).
pub trait TrafficRouter: Send + Sync {
    /// Applies the weights.
    fn set_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
        weights: Weights,
    ) -> BoxFuture<'a, Result<(), PortError>>;

    /// Reads back the weights actually served.
    fn read_weights<'a>(
        &'a self,
        service: &'a ServiceSpec,
    ) -> BoxFuture<'a, Result<Weights, PortError>>;
}

/// Reports the health of the targets in a slot.
pub trait TargetHealth: Send + Sync {
    /// The slot's target health.
    fn health<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
    ) -> BoxFuture<'a, Result<HealthReport, PortError>>;
}

/// Reports which of the named alarms are firing.
pub trait AlarmSource: Send + Sync {
    /// The firing alarms among `names`.
    fn firing<'a>(&'a self, names: &'a [String]) -> BoxFuture<'a, Result<AlarmReport, PortError>>;
}

/// Reads a slot's request metrics over a window.
pub trait MetricSource: Send + Sync {
    /// The slot's metrics from `start` to `end`.
    fn slot_metrics<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
        start: Timestamp,
        end: Timestamp,
    ) -> BoxFuture<'a, Result<SlotMetrics, PortError>>;
}

/// Runs a service's smoke checks against one slot.
///
/// The results must come from that slot and no other: for an ALB service with a
/// preview listener, the adapter points the listener at the slot's target group before
/// it sends a request, and fails (rather than reports) if it cannot. The engine then
/// never mistakes the stable slot's answers for the new one's.
pub trait SmokeRunner: Send + Sync {
    /// The results of every configured check.
    fn run<'a>(
        &'a self,
        service: &'a ServiceSpec,
        slot: Slot,
    ) -> BoxFuture<'a, Result<SmokeReport, PortError>>;
}

/// Sends progress messages and alerts.
pub trait Notifier: Send + Sync {
    /// Sends one notification.
    fn notify<'a>(&'a self, notification: &'a Notification)
    -> BoxFuture<'a, Result<(), PortError>>;
}

/// Books the next pass of a deployment at the time it is due (the end of a pause, the
/// next health check, the end of the bake), so that nothing waits for a periodic tick.
/// A deployment has at most one booking: booking again moves it.
pub trait WakeUps: Send + Sync {
    /// Books the deployment's pass at `at`, replacing any earlier booking.
    fn book<'a>(
        &'a self,
        id: &'a DeploymentId,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), PortError>>;

    /// Removes the deployment's booking; removing none is not an error.
    fn cancel<'a>(&'a self, id: &'a DeploymentId) -> BoxFuture<'a, Result<(), PortError>>;
}

/// Tells the time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// Which slot of a service is live, as recorded after its last successful deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The service.
    pub service: ServiceName,
    /// The live slot.
    pub live: Slot,
    /// The version on the live slot, when known.
    pub version: Option<String>,
    /// The deployment that made it live.
    pub deployment_id: Option<DeploymentId>,
}

/// A configuration stored by `ripcord apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfig {
    /// Version number, from 1, raised by one on every apply.
    pub version: u64,
    /// The TOML text as applied.
    pub text: String,
    /// When it was applied.
    pub applied_at: Timestamp,
}

/// A new deployment with its first events, written together.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    /// The deployment, at revision 0.
    pub deployment: Deployment,
    /// Its first events, sealed.
    pub events: Vec<Event>,
    /// An idempotency key (a webhook delivery id) claimed in the same write, and when
    /// the claim may expire.
    pub idempotency: Option<(String, Timestamp)>,
}

/// A state change and its events, written together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The deployment as it is after the change; its `revision` is one more than
    /// `expected_revision`.
    pub deployment: Deployment,
    /// The revision the change was decided from.
    pub expected_revision: u64,
    /// The events of the change, sealed onto the chain.
    pub events: Vec<Event>,
    /// The service's new live slot, when the deployment succeeded.
    pub service: Option<ServiceStatus>,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The deployment changed since it was read: re-read and decide again.
    #[error("deployment {id} changed since it was read (revision {expected} is stale)")]
    Conflict {
        /// The deployment.
        id: DeploymentId,
        /// The stale revision.
        expected: u64,
    },
    /// The service already has an active deployment.
    #[error("service {service} already has an active deployment ({active})")]
    AlreadyActive {
        /// The service.
        service: ServiceName,
        /// The active deployment.
        active: DeploymentId,
    },
    /// The idempotency key was already claimed; `existing` is what it recorded.
    #[error("idempotency key already used")]
    Duplicate {
        /// The value recorded with the key (the deployment id).
        existing: String,
    },
    /// A configuration was applied since the one this change was based on.
    #[error("configuration version {expected} is stale; re-read it and apply again")]
    ConfigConflict {
        /// The stale version.
        expected: u64,
    },
    /// The store could not be reached or refused the request.
    #[error(transparent)]
    Unavailable(#[from] PortError),
}

/// Durable state: configuration versions, deployments, their events, queued commands,
/// service status and idempotency keys.
pub trait Store: Send + Sync {
    /// The newest stored configuration.
    fn latest_config(&self) -> BoxFuture<'_, Result<Option<StoredConfig>, StoreError>>;

    /// Stores `text` as version `previous + 1`; fails with `ConfigConflict` if the
    /// newest version is not `previous`.
    fn put_config<'a>(
        &'a self,
        text: &'a str,
        previous: u64,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<StoredConfig, StoreError>>;

    /// One deployment.
    fn deployment<'a>(
        &'a self,
        id: &'a DeploymentId,
    ) -> BoxFuture<'a, Result<Option<Deployment>, StoreError>>;

    /// Every deployment that is not in a terminal state.
    fn active_deployments(&self) -> BoxFuture<'_, Result<Vec<Deployment>, StoreError>>;

    /// Deployments created at or after `since`, oldest first, of one service or all.
    fn deployments_since<'a>(
        &'a self,
        service: Option<&'a ServiceName>,
        since: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<Deployment>, StoreError>>;

    /// Writes a new deployment, its first events and its idempotency key at once.
    /// Fails with `AlreadyActive` or `Duplicate`, writing nothing.
    fn create_deployment(&self, new: NewDeployment) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Writes a state change and its events at once, if the stored revision is still
    /// `expected_revision`; otherwise fails with `Conflict`, writing nothing.
    fn commit(&self, commit: Commit) -> BoxFuture<'_, Result<(), StoreError>>;

    /// A deployment's events, in order.
    fn events<'a>(&'a self, id: &'a DeploymentId) -> BoxFuture<'a, Result<Vec<Event>, StoreError>>;

    /// Queues a command for a deployment and returns it with its sequence number.
    fn enqueue_command<'a>(
        &'a self,
        id: &'a DeploymentId,
        actor: Actor,
        kind: CommandKind,
        reason: Option<String>,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<Command, StoreError>>;

    /// Commands queued after `after_seq`, in order.
    fn commands_after<'a>(
        &'a self,
        id: &'a DeploymentId,
        after_seq: u64,
    ) -> BoxFuture<'a, Result<Vec<Command>, StoreError>>;

    /// The service's recorded live slot, if any deployment has succeeded.
    fn service_status<'a>(
        &'a self,
        service: &'a ServiceName,
    ) -> BoxFuture<'a, Result<Option<ServiceStatus>, StoreError>>;

    /// Claims an idempotency key on its own (for deliveries that create nothing).
    /// Returns `None` when newly claimed, or the recorded value when already claimed.
    fn claim_idempotency<'a>(
        &'a self,
        key: &'a str,
        value: &'a str,
        expires_at: Timestamp,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;
}

/// What a flag record holds: a flag, or a segment that flags' strategies share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagRecordKind {
    /// A feature flag, named by its flag name.
    Flag,
    /// A segment, named by its id.
    Segment,
}

impl FlagRecordKind {
    /// The kind as it is written in stores and messages: `flag` or `segment`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagRecordKind::Flag => "flag",
            FlagRecordKind::Segment => "segment",
        }
    }
}

/// A flag or a segment as stored: its definition in Unleash's JSON form (one element
/// of the `features` or `segments` array of `GET /api/client/features`), and the
/// version that conditional writes check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagRecord {
    /// Flag or segment.
    pub kind: FlagRecordKind,
    /// The flag's name, or the segment's id.
    pub name: String,
    /// From 1, raised by one on every change.
    pub version: u64,
    /// The definition, in Unleash's JSON form.
    pub definition: serde_json::Value,
    /// When the version was written.
    pub updated_at: Timestamp,
    /// Who wrote it.
    pub updated_by: Actor,
}

/// One change to a flag or a segment, kept in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagChange {
    /// The record as it was after the change.
    pub record: FlagRecord,
    /// What changed, for a person: `rollout 10% → 50%`, `disabled`, ...
    pub summary: String,
}

/// A write of the next version of a flag or a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagWrite {
    /// Flag or segment.
    pub kind: FlagRecordKind,
    /// The flag's name, or the segment's id.
    pub name: String,
    /// The version the change was based on; 0 when the record must not exist yet.
    pub expected_version: u64,
    /// The new definition, in Unleash's JSON form.
    pub definition: serde_json::Value,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What changed, for a person.
    pub summary: String,
}

/// An API key for flag evaluation, as stored: never the key, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The key's name, unique, chosen by whoever created it.
    pub name: String,
    /// The SHA-256 of the key, in lower-case hex.
    pub sha256: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: Actor,
}

/// Why a flag store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagStoreError {
    /// The record changed since it was read (or exists when it should not): re-read it
    /// and apply the change again.
    #[error(
        "{} {name} changed since it was read (version {expected} is stale); read it again and retry",
        kind.as_str()
    )]
    Conflict {
        /// Flag or segment.
        kind: FlagRecordKind,
        /// Its name.
        name: String,
        /// The stale version.
        expected: u64,
    },
    /// An API key of that name exists already.
    #[error("an API key named {0} exists already; choose another name")]
    KeyExists(String),
    /// No API key has that name (it never existed, or was revoked already).
    #[error("no API key named {0}; `ripcord flags keys list` shows the keys")]
    UnknownKey(String),
    /// The store could not be reached or refused the request.
    #[error(transparent)]
    Unavailable(#[from] PortError),
}

/// Durable feature flags: flags and segments, each versioned with conditional writes
/// and every change kept with who made it and when; and the hashed API keys that
/// flag evaluation accepts.
pub trait FlagStore: Send + Sync {
    /// Every flag and segment, segments first, then by name.
    fn flag_records(&self) -> BoxFuture<'_, Result<Vec<FlagRecord>, FlagStoreError>>;

    /// One flag or segment.
    fn flag_record<'a>(
        &'a self,
        kind: FlagRecordKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<FlagRecord>, FlagStoreError>>;

    /// Writes the next version, and its change, at once if the stored version is still
    /// `expected_version` (0: absent); otherwise fails with `Conflict`, writing nothing.
    fn put_flag_record(
        &self,
        write: FlagWrite,
    ) -> BoxFuture<'_, Result<FlagRecord, FlagStoreError>>;

    /// Every change of a flag or segment, oldest first.
    fn flag_changes<'a>(
        &'a self,
        kind: FlagRecordKind,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FlagChange>, FlagStoreError>>;

    /// Stores a new API key; fails with `KeyExists` if the name is taken.
    fn create_api_key(&self, key: ApiKeyRecord) -> BoxFuture<'_, Result<(), FlagStoreError>>;

    /// Every API key, by name.
    fn api_keys(&self) -> BoxFuture<'_, Result<Vec<ApiKeyRecord>, FlagStoreError>>;

    /// Revokes the key named `name` by deleting its record, and returns the record as
    /// it was; fails with `UnknownKey`, writing nothing, if no key has that name.
    ///
    /// A revoked key is gone: it is no longer listed by `api_keys`, so whatever
    /// evaluates flags stops accepting it when it next reads the keys, and its name
    /// is free again. A new key created under that name is a fresh random key with
    /// another hash, so reusing the name never brings the revoked key back.
    fn revoke_api_key<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<ApiKeyRecord, FlagStoreError>>;
}
