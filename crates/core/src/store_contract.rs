//! The `Store` contract as a test suite that every store adapter runs against itself:
//! the in-memory store here, DynamoDB against the local emulator, SQLite in local mode.
//!
//! Each check takes a store and a prefix that makes its service and deployment names
//! unique, so that checks can share one store (one table, one file). A check panics
//! with a message naming the broken rule.

use std::time::Duration;

use crate::deployment::{CommandKind, Deployment, Release, State};
use crate::domain::{DeploymentId, ServiceName, Slot, Weights};
use crate::history::{Actor, EventDraft, EventKind, seal, verify_history};
use crate::memory::test_service;
use crate::ports::{Commit, NewDeployment, ServiceStatus, Store, StoreError};
use crate::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

fn deployment(prefix: &str, service: &str, n: u32, at: Timestamp) -> Deployment {
    let spec = test_service(&format!("{prefix}-{service}"), Vec::new());
    let release = Release {
        version: format!("v{n}"),
        commit: format!("{n:07x}"),
        committed_at: Some(at.minus(Duration::from_secs(600))),
        author: "octocat".into(),
        author_chat_id: None,
    };
    let id = DeploymentId::new(format!("{prefix}-{service}-{n}")).expect("valid id");
    Deployment::new(id, spec, 1, release, Slot::Blue, at)
}

fn draft(d: &Deployment, kind: EventKind, at: Timestamp) -> EventDraft {
    EventDraft {
        at,
        actor: Actor::Schedule,
        kind,
        reason: "contract".into(),
        weights_before: None,
        weights_after: Some(d.desired),
        state: d.state,
    }
}

fn new_deployment(d: &Deployment, key: Option<&str>) -> NewDeployment {
    let created = draft(
        d,
        EventKind::Created {
            version: d.release.version.clone(),
            commit: d.release.commit.clone(),
            committed_at: d.release.committed_at,
        },
        d.created_at,
    );
    let mut fresh = d.clone();
    let (events, count, head) = seal(&fresh.id, &fresh.service, 0, &fresh.last_hash, &[created]);
    fresh.event_count = count;
    fresh.last_hash = head;
    NewDeployment {
        deployment: fresh,
        events,
        idempotency: key.map(|k| {
            (
                k.to_string(),
                d.created_at.plus(Duration::from_secs(86_400)),
            )
        }),
    }
}

/// The next revision of `d`, moved to `state`, with one event.
fn step(d: &Deployment, state: State, at: Timestamp) -> Commit {
    let mut next = d.clone();
    next.state = state;
    if state.is_terminal() {
        next.finished_at = Some(at);
    }
    let drafts = [draft(&next, EventKind::StepStarted { step: 0 }, at)];
    let (events, count, head) = seal(
        &next.id,
        &next.service,
        d.event_count,
        &d.last_hash,
        &drafts,
    );
    next.revision = d.revision + 1;
    next.event_count = count;
    next.last_hash = head;
    Commit {
        deployment: next,
        expected_revision: d.revision,
        events,
        service: None,
    }
}

async fn create(
    store: &dyn Store,
    d: &Deployment,
    key: Option<&str>,
) -> Result<Deployment, StoreError> {
    let new = new_deployment(d, key);
    let created = new.deployment.clone();
    store.create_deployment(new).await?;
    Ok(created)
}

/// Configurations get versions 1, 2, ...; applying on a stale version fails. Needs a
/// store that holds no configuration yet.
pub async fn configs_are_versioned(store: &dyn Store) {
    let first = store
        .put_config("# one", 0, T0)
        .await
        .expect("the first configuration is stored");
    assert_eq!(first.version, 1);
    let second = store
        .put_config("# two", 1, T0.plus(Duration::from_secs(1)))
        .await
        .expect("the second too");
    assert_eq!(second.version, 2);
    assert!(
        matches!(
            store.put_config("# stale", 1, T0).await,
            Err(StoreError::ConfigConflict { .. })
        ),
        "a configuration based on a stale version is refused"
    );
    let latest = store
        .latest_config()
        .await
        .expect("readable")
        .expect("present");
    assert_eq!((latest.version, latest.text.as_str()), (2, "# two"));
}

/// A state change lands with its events if the revision is current, and not at all
/// if it is stale.
pub async fn commits_are_conditional(store: &dyn Store, prefix: &str) {
    let d = create(store, &deployment(prefix, "cond", 1, T0), None)
        .await
        .expect("created");
    let stored = store
        .deployment(&d.id)
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(stored, d, "a created deployment reads back as written");
    let commit = step(
        &d,
        State::Verifying {
            gate: crate::deployment::VerifyGate::Health,
        },
        T0.plus(Duration::from_secs(1)),
    );
    let next = commit.deployment.clone();
    store
        .commit(commit.clone())
        .await
        .expect("a commit on the current revision lands");
    let again = store.commit(commit).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "a commit on a stale revision is refused: {again:?}"
    );
    let stored = store
        .deployment(&d.id)
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(stored, next);
    let events = store.events(&d.id).await.expect("readable");
    assert_eq!(events.len(), 2, "the refused commit wrote no event");
    verify_history(&events, Some(&stored)).expect("the chain verifies");
}

/// A service has at most one active deployment; a terminal one frees it.
pub async fn one_active_deployment_per_service(store: &dyn Store, prefix: &str) {
    let first = create(store, &deployment(prefix, "lock", 1, T0), None)
        .await
        .expect("created");
    let second = deployment(prefix, "lock", 2, T0.plus(Duration::from_secs(1)));
    match create(store, &second, Some(&format!("{prefix}-lock-key"))).await {
        Err(StoreError::AlreadyActive { active, .. }) => assert_eq!(active, first.id),
        other => panic!("a second active deployment must be refused, got {other:?}"),
    }
    assert!(
        store
            .deployment(&second.id)
            .await
            .expect("readable")
            .is_none(),
        "nothing of the refused deployment was written"
    );
    assert!(
        store.events(&second.id).await.expect("readable").is_empty(),
        "no event of the refused deployment was written"
    );
    assert_eq!(
        store
            .claim_idempotency(&format!("{prefix}-lock-key"), "probe", T0)
            .await
            .expect("claimable"),
        None,
        "the refused deployment's idempotency key was not claimed"
    );
    let active: Vec<DeploymentId> = store
        .active_deployments()
        .await
        .expect("readable")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(active.contains(&first.id));
    store
        .commit(step(
            &first,
            State::Aborted,
            T0.plus(Duration::from_secs(2)),
        ))
        .await
        .expect("finished");
    let active: Vec<DeploymentId> = store
        .active_deployments()
        .await
        .expect("readable")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert!(
        !active.contains(&first.id),
        "a terminal deployment is not active"
    );
    create(store, &second, None)
        .await
        .expect("once the first is terminal, the next one starts");
}

/// A delivery seen before finds the first deployment; nothing else is written.
pub async fn idempotency_keys_find_the_first_deployment(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}-delivery");
    let first = create(store, &deployment(prefix, "idem", 1, T0), Some(&key))
        .await
        .expect("created");
    store
        .commit(step(
            &first,
            State::Aborted,
            T0.plus(Duration::from_secs(1)),
        ))
        .await
        .expect("finished");
    let again = deployment(prefix, "idem", 2, T0.plus(Duration::from_secs(2)));
    match create(store, &again, Some(&key)).await {
        Err(StoreError::Duplicate { existing }) => assert_eq!(existing, first.id.as_str()),
        other => panic!("a redelivery must find the first deployment, got {other:?}"),
    }
    assert!(
        store
            .deployment(&again.id)
            .await
            .expect("readable")
            .is_none()
    );
    let other = format!("{prefix}-other");
    assert_eq!(
        store
            .claim_idempotency(&other, "a", T0)
            .await
            .expect("claimable"),
        None
    );
    assert_eq!(
        store
            .claim_idempotency(&other, "b", T0)
            .await
            .expect("claimable"),
        Some("a".to_string())
    );
}

/// Commands get sequence numbers 1, 2, ... and are read back after a given one.
pub async fn commands_are_queued_in_order(store: &dyn Store, prefix: &str) {
    let d = create(store, &deployment(prefix, "cmd", 1, T0), None)
        .await
        .expect("created");
    let actor = Actor::Cli { user: "ops".into() };
    let one = store
        .enqueue_command(&d.id, actor.clone(), CommandKind::Pause, None, T0)
        .await
        .expect("queued");
    let two = store
        .enqueue_command(
            &d.id,
            actor.clone(),
            CommandKind::Resume,
            Some("go on".into()),
            T0,
        )
        .await
        .expect("queued");
    assert_eq!((one.seq, two.seq), (1, 2));
    let after = store.commands_after(&d.id, 1).await.expect("readable");
    assert_eq!(after, vec![two]);
    let missing = DeploymentId::new(format!("{prefix}-missing")).expect("valid");
    assert!(
        store
            .enqueue_command(&missing, actor, CommandKind::Abort, None, T0)
            .await
            .is_err(),
        "commands need a deployment"
    );
}

/// A successful deployment's commit records the service's new live slot.
pub async fn service_status_follows_success(store: &dyn Store, prefix: &str) {
    let d = create(store, &deployment(prefix, "live", 1, T0), None)
        .await
        .expect("created");
    assert_eq!(
        store.service_status(&d.service).await.expect("readable"),
        None
    );
    let mut commit = step(&d, State::Succeeded, T0.plus(Duration::from_secs(60)));
    commit.deployment.desired = Weights::all_on(Slot::Green);
    let status = ServiceStatus {
        service: d.service.clone(),
        live: Slot::Green,
        version: Some("v1".into()),
        deployment_id: Some(d.id.clone()),
    };
    commit.service = Some(status.clone());
    store.commit(commit).await.expect("landed");
    assert_eq!(
        store.service_status(&d.service).await.expect("readable"),
        Some(status)
    );
}

/// Deployments are listed by creation time, of one service or all.
pub async fn deployments_are_listed_since_a_time(store: &dyn Store, prefix: &str) {
    let later = T0.plus(Duration::from_secs(86_400 * 400));
    let a = create(store, &deployment(prefix, "list-a", 1, later), None)
        .await
        .expect("created");
    let b = create(
        store,
        &deployment(prefix, "list-b", 1, later.plus(Duration::from_secs(5))),
        None,
    )
    .await
    .expect("created");
    let all: Vec<DeploymentId> = store
        .deployments_since(None, later)
        .await
        .expect("readable")
        .into_iter()
        .map(|d| d.id)
        .collect();
    let a_at = all.iter().position(|id| *id == a.id).expect("a is listed");
    let b_at = all.iter().position(|id| *id == b.id).expect("b is listed");
    assert!(a_at < b_at, "oldest first");
    let service = ServiceName::new(format!("{prefix}-list-b")).expect("valid");
    let only_b: Vec<DeploymentId> = store
        .deployments_since(Some(&service), later)
        .await
        .expect("readable")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(only_b, vec![b.id.clone()]);
    let none = store
        .deployments_since(None, later.plus(Duration::from_secs(60)))
        .await
        .expect("readable");
    assert!(
        none.iter().all(|d| d.id != a.id && d.id != b.id),
        "later than both: neither is listed"
    );
}

/// Runs every check against one store.
pub async fn check_all(store: &dyn Store, prefix: &str) {
    configs_are_versioned(store).await;
    commits_are_conditional(store, prefix).await;
    one_active_deployment_per_service(store, prefix).await;
    idempotency_keys_find_the_first_deployment(store, prefix).await;
    commands_are_queued_in_order(store, prefix).await;
    service_status_follows_success(store, prefix).await;
    deployments_are_listed_since_a_time(store, prefix).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_memory_store_keeps_the_contract() {
        let store = crate::memory::MemoryStore::new();
        crate::memory::block_on(super::check_all(&store, "mem"));
    }
}
