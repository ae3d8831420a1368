//! `DynamoStore` against the local DynamoDB emulator: every `Store` method, the
//! conditions that keep writes consistent (stale revisions, one active deployment per
//! service, idempotency keys, configuration versions), and whole deployments driven
//! through the core's driver, alone and with two drivers racing.
//!
//! Each test creates its own table, so tests run in parallel without seeing each
//! other's items.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, ProjectionType, TimeToLiveStatus,
};
use ripcord_aws::DynamoStore;
use ripcord_aws::dynamo::{ACTIVE_INDEX, CREATED_INDEX, TTL_ATTRIBUTE, create_table};
use ripcord_core::config::{Config, Step};
use ripcord_core::deployment::{CommandKind, Deployment, State};
use ripcord_core::domain::{DeploymentId, ServiceName, Slot, Weight, Weights};
use ripcord_core::driver::{DeployRequest, Driver, PassReport, StartError};
use ripcord_core::history::{Actor, EventDraft, EventKind, seal, verify_history};
use ripcord_core::memory::{ManualClock, MemoryNotifier, MemoryWorld, Sandbox, test_service};
use ripcord_core::ports::{
    Clock, Commit, ErrorKind, ServiceStatus, Store, StoreError, StoredConfig,
};
use ripcord_core::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

type Item = HashMap<String, AttributeValue>;

fn service(name: &str) -> ServiceName {
    ServiceName::new(name).unwrap()
}

fn id(text: &str) -> DeploymentId {
    DeploymentId::new(text).unwrap()
}

fn canary_steps() -> Vec<Step> {
    let w = |p| Step::SetWeight(Weight::new(p).unwrap());
    vec![
        w(10),
        Step::Pause(Duration::from_secs(10)),
        w(50),
        Step::Pause(Duration::from_secs(10)),
        w(100),
    ]
}

fn config(services: &[&str]) -> Config {
    let mut map = BTreeMap::new();
    for name in services {
        let mut spec = test_service(name, canary_steps());
        spec.plan.bake = Duration::from_secs(10);
        map.insert(spec.name.clone(), spec);
    }
    Config {
        services: map,
        authors: BTreeMap::new(),
        flags: Default::default(),
    }
}

/// A fresh table and a store on it, with the in-memory world, notifier and clock the
/// driver needs.
struct Fixture {
    store: DynamoStore,
    client: Client,
    world: MemoryWorld,
    notifier: MemoryNotifier,
    clock: ManualClock,
    config: Config,
}

impl Fixture {
    async fn new(services: &[&str]) -> Self {
        Self::with_client(services, Client::new(&support::config().await)).await
    }

    /// A fixture whose requests reach the emulator one at a time, for tests where
    /// writers race (see `support::dynamodb_one_request_at_a_time`).
    async fn racing(services: &[&str]) -> Self {
        Self::with_client(services, support::dynamodb_one_request_at_a_time().await).await
    }

    async fn with_client(services: &[&str], client: Client) -> Self {
        let table = support::unique("ripcord-store");
        create_table(&client, &table).await.expect("create table");
        Self {
            store: DynamoStore::new(client.clone(), table),
            client,
            world: MemoryWorld::default(),
            notifier: MemoryNotifier::default(),
            clock: ManualClock::new(T0),
            config: config(services),
        }
    }

    fn driver(&self) -> Driver<'_> {
        Driver {
            providers: &self.world,
            store: &self.store,
            notifier: &self.notifier,
            clock: &self.clock,
        }
    }

    /// Starts a deployment of `service` through the driver, as the webhook does.
    async fn deploy(
        &self,
        service_name: &str,
        deployment_id: &str,
        key: Option<&str>,
    ) -> Result<Deployment, StartError> {
        let request = DeployRequest {
            service: service(service_name),
            version: format!("{deployment_id}-version"),
            commit: "0a1b2c3".into(),
            committed_at: Some(self.clock.now().minus(Duration::from_secs(3600))),
            author: "octocat".into(),
            slot: None,
        };
        let idempotency = key.map(|k| {
            (
                k.to_string(),
                self.clock.now().plus(Duration::from_secs(86_400)),
            )
        });
        self.driver()
            .start(&self.config, 1, request, id(deployment_id), idempotency)
            .await
    }

    /// Every item in one partition, read straight from the table.
    async fn partition(&self, pk: &str) -> Vec<Item> {
        self.client
            .query()
            .table_name(self.store.table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("query")
            .items
            .unwrap_or_default()
    }

    /// One item, read straight from the table.
    async fn item(&self, pk: &str, sk: &str) -> Option<Item> {
        self.client
            .get_item()
            .table_name(self.store.table())
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn sort_keys(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| text(i, "sk").unwrap_or_default().to_string())
        .collect()
}

/// The next revision of `d` in `state`, with one event per kind, sealed onto its chain.
fn change(d: &Deployment, state: State, kinds: Vec<EventKind>) -> Commit {
    let at = d.created_at.plus(Duration::from_secs(d.revision + 1));
    let drafts: Vec<EventDraft> = kinds
        .into_iter()
        .map(|kind| EventDraft {
            at,
            actor: Actor::Schedule,
            kind,
            reason: "a test moved it".into(),
            weights_before: Some(d.desired),
            weights_after: Some(d.desired),
            state,
        })
        .collect();
    let (events, count, head) = seal(&d.id, &d.service, d.event_count, &d.last_hash, &drafts);
    let mut next = d.clone();
    next.state = state;
    next.revision = d.revision + 1;
    next.event_count = count;
    next.last_hash = head;
    if state.is_terminal() {
        next.finished_at = Some(at);
    }
    Commit {
        deployment: next,
        expected_revision: d.revision,
        events,
        service: None,
    }
}

fn succeeded(d: &Deployment) -> Commit {
    let mut commit = change(d, State::Succeeded, vec![EventKind::Finished]);
    commit.service = Some(ServiceStatus {
        service: d.service.clone(),
        live: d.canary(),
        version: Some(d.release.version.clone()),
        deployment_id: Some(d.id.clone()),
    });
    commit
}

#[tokio::test]
async fn create_table_makes_the_documented_layout() {
    let fx = Fixture::new(&[]).await;
    let table = fx
        .client
        .describe_table()
        .table_name(fx.store.table())
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        schema
            .iter()
            .map(|k| (k.attribute_name().to_string(), k.key_type().clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(table.key_schema()),
        vec![("pk".into(), KeyType::Hash), ("sk".into(), KeyType::Range)]
    );
    assert_eq!(
        table.billing_mode_summary().and_then(|b| b.billing_mode()),
        Some(&BillingMode::PayPerRequest)
    );
    let mut indexes: Vec<_> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            (
                i.index_name().unwrap().to_string(),
                keys(i.key_schema()),
                i.projection().and_then(|p| p.projection_type()).cloned(),
            )
        })
        .collect();
    indexes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        indexes,
        vec![
            (
                ACTIVE_INDEX.to_string(),
                vec![
                    ("gsi1pk".into(), KeyType::Hash),
                    ("gsi1sk".into(), KeyType::Range)
                ],
                Some(ProjectionType::All)
            ),
            (
                CREATED_INDEX.to_string(),
                vec![
                    ("gsi2pk".into(), KeyType::Hash),
                    ("gsi2sk".into(), KeyType::Range)
                ],
                Some(ProjectionType::All)
            ),
        ]
    );
    let ttl = fx
        .client
        .describe_time_to_live()
        .table_name(fx.store.table())
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .unwrap();
    assert_eq!(ttl.attribute_name(), Some(TTL_ATTRIBUTE));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
}

#[tokio::test]
async fn configuration_versions_count_up_and_a_stale_apply_conflicts() {
    let fx = Fixture::new(&[]).await;
    assert_eq!(fx.store.latest_config().await.unwrap(), None);

    let first = fx.store.put_config("one", 0, T0).await.unwrap();
    let at = T0.plus(Duration::from_secs(60));
    let second = fx.store.put_config("two", 1, at).await.unwrap();
    assert_eq!(
        (first.version, second.version, second.applied_at),
        (1, 2, at)
    );

    // Both were based on a version that is no longer the newest.
    assert_eq!(
        fx.store.put_config("stale", 1, at).await,
        Err(StoreError::ConfigConflict { expected: 1 })
    );
    assert_eq!(
        fx.store.put_config("stale", 0, at).await,
        Err(StoreError::ConfigConflict { expected: 0 })
    );
    assert_eq!(
        fx.store.latest_config().await.unwrap(),
        Some(StoredConfig {
            version: 2,
            text: "two".into(),
            applied_at: at,
        })
    );

    // Nothing of the refused applies was written, and HEAD names the newest version.
    let items = fx.partition("CONFIG").await;
    assert_eq!(
        sort_keys(&items),
        vec!["HEAD", "V#0000000001", "V#0000000002"]
    );
    assert_eq!(number(&items[0], "version"), Some(2));
    assert_eq!(text(&items[1], "text"), Some("one"));

    // Ten and more versions still come back newest first.
    for previous in 2..11 {
        fx.store.put_config("later", previous, at).await.unwrap();
    }
    assert_eq!(fx.store.latest_config().await.unwrap().unwrap().version, 11);
}

#[tokio::test]
async fn a_new_deployment_is_stored_with_its_events_lock_and_key() {
    let fx = Fixture::new(&["web"]).await;
    assert_eq!(fx.store.deployment(&id("web-1")).await.unwrap(), None);

    let d = fx.deploy("web", "web-1", Some("delivery-1")).await.unwrap();
    assert_eq!(fx.store.deployment(&d.id).await.unwrap(), Some(d.clone()));
    let events = fx.store.events(&d.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind.name(), "created");
    verify_history(&events, Some(&d)).unwrap();

    let meta = fx.item("DEP#web-1", "META").await.unwrap();
    assert_eq!(number(&meta, "revision"), Some(0));
    assert_eq!(text(&meta, "service"), Some("web"));
    assert_eq!(number(&meta, "created_at"), Some(T0.as_millis()));
    assert_eq!(text(&meta, "gsi1pk"), Some("ACTIVE"));
    assert_eq!(text(&meta, "gsi1sk"), Some("web#web-1"));
    assert_eq!(text(&meta, "gsi2pk"), Some("DEPLOYMENTS"));
    assert_eq!(
        text(&meta, "gsi2sk"),
        Some(format!("{:015}#web-1", T0.as_millis()).as_str())
    );
    assert_eq!(
        sort_keys(&fx.partition("DEP#web-1").await),
        vec!["EV#0000000000", "META"]
    );

    let lock = fx.item("SVC#web", "ACTIVE").await.unwrap();
    assert_eq!(text(&lock, "deployment_id"), Some("web-1"));

    // The idempotency key carries the table's time-to-live attribute in epoch seconds.
    let key = fx.item("IDEM#delivery-1", "IDEM").await.unwrap();
    assert_eq!(text(&key, "value"), Some("web-1"));
    assert_eq!(
        number(&key, TTL_ATTRIBUTE),
        Some(T0.plus(Duration::from_secs(86_400)).as_millis() / 1000)
    );
}

#[tokio::test]
async fn a_deployment_of_an_active_service_is_refused_and_writes_nothing() {
    let fx = Fixture::new(&["web", "api"]).await;
    fx.deploy("web", "web-1", Some("delivery-1")).await.unwrap();

    let refused = fx.deploy("web", "web-2", Some("delivery-2")).await;
    assert_eq!(
        refused,
        Err(StartError::Store(StoreError::AlreadyActive {
            service: service("web"),
            active: id("web-1"),
        }))
    );
    assert!(fx.partition("DEP#web-2").await.is_empty());
    assert_eq!(fx.item("IDEM#delivery-2", "IDEM").await, None);
    assert_eq!(
        text(
            &fx.item("SVC#web", "ACTIVE").await.unwrap(),
            "deployment_id"
        ),
        Some("web-1")
    );

    // Another service is not held back.
    fx.deploy("api", "api-1", None).await.unwrap();
}

#[tokio::test]
async fn a_redelivered_key_gets_the_first_id_and_writes_nothing() {
    let fx = Fixture::new(&["web", "api"]).await;
    fx.deploy("web", "web-1", Some("delivery-1")).await.unwrap();

    // A redelivery for another service: only the key stands in the way.
    let again = fx.deploy("api", "api-1", Some("delivery-1")).await;
    assert_eq!(
        again,
        Err(StartError::Store(StoreError::Duplicate {
            existing: "web-1".into()
        }))
    );
    assert!(fx.partition("DEP#api-1").await.is_empty());
    assert_eq!(fx.item("SVC#api", "ACTIVE").await, None);

    // The same delivery for the same service: the key wins over the active deployment,
    // so the webhook answers with the first id.
    let again = fx.deploy("web", "web-2", Some("delivery-1")).await;
    assert_eq!(
        again,
        Err(StartError::Store(StoreError::Duplicate {
            existing: "web-1".into()
        }))
    );
    assert!(fx.partition("DEP#web-2").await.is_empty());
    assert_eq!(
        text(&fx.item("IDEM#delivery-1", "IDEM").await.unwrap(), "value"),
        Some("web-1")
    );
}

#[tokio::test]
async fn a_stale_revision_conflicts_and_writes_nothing() {
    let fx = Fixture::new(&["web"]).await;
    let d = fx.deploy("web", "web-1", None).await.unwrap();
    let first = change(
        &d,
        State::Progressing { step: 0 },
        vec![EventKind::BaselineTaken {
            firing: Default::default(),
        }],
    );
    fx.store.commit(first.clone()).await.unwrap();

    // Another pass decided from revision 0 too, and comes second.
    let stale = change(
        &d,
        State::RollingBack {
            end: ripcord_core::deployment::RollbackEnd::RolledBack,
        },
        vec![EventKind::RollbackStarted, EventKind::WeightsSet],
    );
    let conflict = Err(StoreError::Conflict {
        id: d.id.clone(),
        expected: 0,
    });
    assert_eq!(fx.store.commit(stale).await, conflict);
    assert_eq!(
        fx.store.deployment(&d.id).await.unwrap().as_ref(),
        Some(&first.deployment)
    );
    let events = fx.store.events(&d.id).await.unwrap();
    assert_eq!(events.len(), 2);
    verify_history(&events, Some(&first.deployment)).unwrap();

    // A commit that does not raise the revision by exactly one is refused the same way.
    let mut skipping = change(&first.deployment, State::Progressing { step: 1 }, vec![]);
    skipping.deployment.revision += 1;
    assert_eq!(
        fx.store.commit(skipping).await,
        Err(StoreError::Conflict {
            id: d.id.clone(),
            expected: 1
        })
    );

    // So is a commit to a deployment that was never created, which writes nothing.
    let mut ghost = d.clone();
    ghost.id = id("ghost");
    assert!(matches!(
        fx.store
            .commit(change(&ghost, State::Failed, vec![EventKind::Finished]))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(fx.partition("DEP#ghost").await.is_empty());
}

#[tokio::test]
async fn a_terminal_commit_releases_the_lock_and_records_the_live_slot() {
    let fx = Fixture::new(&["web"]).await;
    let d = fx.deploy("web", "web-1", None).await.unwrap();
    assert_eq!(
        fx.store.service_status(&service("web")).await.unwrap(),
        None
    );

    let done = succeeded(&d);
    fx.store.commit(done.clone()).await.unwrap();
    assert_eq!(
        fx.store.service_status(&service("web")).await.unwrap(),
        done.service
    );
    assert_eq!(fx.item("SVC#web", "ACTIVE").await, None);
    let meta = fx.item("DEP#web-1", "META").await.unwrap();
    assert_eq!(text(&meta, "gsi1pk"), None, "left the active index");
    assert_eq!(number(&meta, "revision"), Some(1));
    assert!(fx.store.active_deployments().await.unwrap().is_empty());

    // The next deployment can start, and starts from the slot that is now live.
    let next = fx.deploy("web", "web-2", None).await.unwrap();
    assert_eq!(next.stable, Slot::Green);
    assert_eq!(
        text(
            &fx.item("SVC#web", "ACTIVE").await.unwrap(),
            "deployment_id"
        ),
        Some("web-2")
    );

    // A late commit to the finished deployment leaves the new deployment's lock alone.
    let late = change(&done.deployment, State::Succeeded, vec![]);
    fx.store.commit(late).await.unwrap();
    assert_eq!(
        text(
            &fx.item("SVC#web", "ACTIVE").await.unwrap(),
            "deployment_id"
        ),
        Some("web-2")
    );
}

#[tokio::test]
async fn active_deployments_lists_only_the_active_ones() {
    let fx = Fixture::new(&["web", "api", "db"]).await;
    let web = fx.deploy("web", "web-1", None).await.unwrap();
    let api = fx.deploy("api", "api-1", None).await.unwrap();
    let db = fx.deploy("db", "db-1", None).await.unwrap();
    fx.store
        .commit(change(
            &api,
            State::Aborted,
            vec![EventKind::CommandApplied {
                command: CommandKind::Abort,
            }],
        ))
        .await
        .unwrap();
    let moved = change(
        &db,
        State::Progressing { step: 0 },
        vec![EventKind::WeightsSet],
    );
    fx.store.commit(moved.clone()).await.unwrap();

    let active = fx.store.active_deployments().await.unwrap();
    // Sorted by id, each as it is now (db at its new revision).
    assert_eq!(active, vec![moved.deployment, web]);
}

#[tokio::test]
async fn deployments_since_filters_by_creation_time_and_service() {
    let fx = Fixture::new(&["web", "api"]).await;
    let web1 = fx.deploy("web", "web-1", None).await.unwrap();
    fx.store.commit(succeeded(&web1)).await.unwrap();
    fx.clock.advance(Duration::from_secs(60));
    let api1 = fx.deploy("api", "api-1", None).await.unwrap();
    fx.clock.advance(Duration::from_secs(60));
    let web2 = fx.deploy("web", "web-2", None).await.unwrap();

    let ids = |list: Vec<Deployment>| list.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let all = fx.store.deployments_since(None, T0).await.unwrap();
    assert_eq!(all[0].revision, 1, "the finished deployment as it is now");
    assert_eq!(
        ids(all),
        vec![web1.id.clone(), api1.id.clone(), web2.id.clone()]
    );
    assert_eq!(
        ids(fx
            .store
            .deployments_since(None, api1.created_at)
            .await
            .unwrap()),
        vec![api1.id.clone(), web2.id.clone()]
    );
    assert_eq!(
        ids(fx
            .store
            .deployments_since(Some(&service("web")), T0)
            .await
            .unwrap()),
        vec![web1.id.clone(), web2.id.clone()]
    );
    assert_eq!(
        ids(fx
            .store
            .deployments_since(Some(&service("web")), T0.plus(Duration::from_secs(1)))
            .await
            .unwrap()),
        vec![web2.id.clone()]
    );
    assert!(
        fx.store
            .deployments_since(Some(&service("api")), web2.created_at)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn events_come_back_in_order_and_verify() {
    let fx = Fixture::new(&["web"]).await;
    let mut d = fx.deploy("web", "web-1", None).await.unwrap();
    // Past ten events, so that ordering by the padded sequence number matters.
    for step in 0..6 {
        let commit = change(
            &d,
            State::Progressing { step },
            vec![EventKind::StepStarted { step }, EventKind::WeightsSet],
        );
        fx.store.commit(commit.clone()).await.unwrap();
        d = commit.deployment;
    }
    let events = fx.store.events(&d.id).await.unwrap();
    assert_eq!(events.len(), 13);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..13).collect::<Vec<_>>()
    );
    verify_history(&events, Some(&d)).unwrap();
    assert!(fx.store.events(&id("nobody")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_write_with_too_many_events_is_refused_whole() {
    let fx = Fixture::new(&["web"]).await;
    let d = fx.deploy("web", "web-1", None).await.unwrap();
    let commit = change(
        &d,
        State::Progressing { step: 0 },
        vec![EventKind::WeightsVerified; 91],
    );
    match fx.store.commit(commit).await {
        Err(StoreError::Unavailable(e)) => {
            assert_eq!(e.kind, ErrorKind::Permanent);
            assert!(e.message.contains("91 events"), "{}", e.message);
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert_eq!(fx.store.events(&d.id).await.unwrap().len(), 1);
    assert_eq!(fx.store.deployment(&d.id).await.unwrap(), Some(d));
}

#[tokio::test]
async fn commands_are_queued_in_order() {
    let fx = Arc::new(Fixture::racing(&["web"]).await);
    let d = fx.deploy("web", "web-1", None).await.unwrap();
    let cli = Actor::Cli { user: "ops".into() };
    let at = T0.plus(Duration::from_secs(5));
    let first = fx
        .store
        .enqueue_command(
            &d.id,
            cli.clone(),
            CommandKind::Pause,
            Some("lunch".into()),
            at,
        )
        .await
        .unwrap();
    assert_eq!((first.seq, first.reason.as_deref()), (1, Some("lunch")));
    fx.store
        .enqueue_command(&d.id, cli.clone(), CommandKind::Resume, None, at)
        .await
        .unwrap();

    // Commands sent at the same moment each get their own number.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let fx = Arc::clone(&fx);
            let (id, cli) = (d.id.clone(), cli.clone());
            tokio::spawn(async move {
                fx.store
                    .enqueue_command(&id, cli, CommandKind::Promote, None, at)
                    .await
                    .unwrap()
                    .seq
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (3..=10).collect::<Vec<_>>());

    let all = fx.store.commands_after(&d.id, 0).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(all[0], first);
    assert_eq!(all[1].kind, CommandKind::Resume);
    let after = fx.store.commands_after(&d.id, 9).await.unwrap();
    assert_eq!(after.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![10]);
    assert!(fx.store.commands_after(&d.id, 10).await.unwrap().is_empty());
    // Commands do not show up among the events.
    assert_eq!(fx.store.events(&d.id).await.unwrap().len(), 1);

    match fx
        .store
        .enqueue_command(&id("nobody"), cli, CommandKind::Abort, None, at)
        .await
    {
        Err(StoreError::Unavailable(e)) => {
            assert_eq!(e.kind, ErrorKind::Permanent);
            assert!(e.message.contains("no deployment nobody"), "{}", e.message);
        }
        other => panic!("expected a missing deployment, got {other:?}"),
    }
    assert!(fx.partition("DEP#nobody").await.is_empty());
}

#[tokio::test]
async fn claiming_a_key_twice_returns_the_first_value() {
    let fx = Fixture::new(&[]).await;
    let expires = T0.plus(Duration::from_secs(3600));
    assert_eq!(
        fx.store
            .claim_idempotency("interaction-1", "first", expires)
            .await,
        Ok(None)
    );
    assert_eq!(
        fx.store
            .claim_idempotency("interaction-1", "second", expires)
            .await,
        Ok(Some("first".into()))
    );
    let item = fx.item("IDEM#interaction-1", "IDEM").await.unwrap();
    assert_eq!(text(&item, "value"), Some("first"));
    assert_eq!(
        number(&item, TTL_ATTRIBUTE),
        Some(expires.as_millis() / 1000)
    );
}

#[tokio::test]
async fn a_failure_names_the_error_code_and_the_request_id() {
    let client = Client::new(&support::config().await);
    let store = DynamoStore::new(client, support::unique("no-such-table"));
    match store.deployment(&id("web-1")).await {
        Err(StoreError::Unavailable(e)) => {
            assert_eq!(e.kind, ErrorKind::Permanent);
            assert!(
                e.message.contains("ResourceNotFoundException"),
                "{}",
                e.message
            );
            assert!(e.message.contains("request id "), "{}", e.message);
            assert!(!e.message.contains("no request id"), "{}", e.message);
            assert!(
                !e.message.contains("testing"),
                "no credentials: {}",
                e.message
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

/// What a history says, without hashes and times: kind, state and weights per event.
fn story(events: &[ripcord_core::history::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {} {:?}", e.kind.name(), e.state, e.weights_after))
        .collect()
}

/// The history one driver writes for the same plan over the in-memory store, with a
/// rollback command before round `rollback_at` if given.
fn reference_story(rollback_at: Option<usize>) -> (Vec<String>, u64) {
    let sb = Sandbox::new(config(&["web"]), T0);
    let id = sb.deploy("web", "v2", "octocat").unwrap().id;
    for round in 0..30 {
        if rollback_at == Some(round) {
            sb.command(
                &id,
                Actor::Cli { user: "ops".into() },
                CommandKind::Rollback,
            );
        }
        sb.pass(&id);
        if sb.deployment(&id).state.is_terminal() {
            break;
        }
        sb.clock.advance(Duration::from_secs(10));
    }
    (story(&sb.store.events_of(&id)), sb.deployment(&id).revision)
}

fn canary_weight(fx: &Fixture, name: &str) -> u8 {
    fx.world
        .router
        .current(&service(name))
        .unwrap_or(Weights::all_on(Slot::Blue))
        .of(Slot::Green)
        .get()
}

#[tokio::test]
async fn a_canary_runs_to_success_with_its_history_in_the_table() {
    let fx = Fixture::new(&["web"]).await;
    let d = fx.deploy("web", "web-1", Some("delivery-1")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..30 {
        let report = fx.driver().reconcile(&d.id).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        seen.push(canary_weight(&fx, "web"));
        if report.state.is_terminal() {
            break;
        }
        fx.clock.advance(Duration::from_secs(10));
    }
    seen.dedup();
    assert_eq!(seen, vec![10, 50, 100]);

    let done = fx.store.deployment(&d.id).await.unwrap().unwrap();
    assert_eq!(done.state, State::Succeeded);
    let events = fx.store.events(&d.id).await.unwrap();
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
    assert_eq!(events.last().unwrap().state, State::Succeeded);
    // The table tells the same story, event for event and commit for commit, as the
    // in-memory store does for the same plan.
    assert_eq!((story(&events), done.revision), reference_story(None));

    let status = fx
        .store
        .service_status(&service("web"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.live, Slot::Green);
    assert_eq!(status.deployment_id.as_ref(), Some(&d.id));
    assert!(fx.store.active_deployments().await.unwrap().is_empty());
    assert_eq!(fx.item("SVC#web", "ACTIVE").await, None);
    let stored_events = fx
        .partition("DEP#web-1")
        .await
        .iter()
        .filter(|i| text(i, "sk").is_some_and(|sk| sk.starts_with("EV#")))
        .count();
    assert_eq!(stored_events as u64, done.event_count);
}

/// Runs one deployment with two drivers reconciling it at once in every round; a
/// rollback command arrives before round `rollback_at`, if given. Returns the story,
/// the final revision and how many commits the drivers lost to each other.
async fn race(
    fx: Arc<Fixture>,
    service_name: &str,
    rollback_at: Option<usize>,
) -> (Vec<String>, u64, u32) {
    // The story holds times (a bake's end), so every run starts when the reference does.
    fx.clock.set(T0);
    let deployment_id = format!("{service_name}-1");
    let d = fx.deploy(service_name, &deployment_id, None).await.unwrap();
    let mut conflicts = 0;
    for round in 0..30 {
        if rollback_at == Some(round) {
            let now = fx.clock.now();
            fx.store
                .enqueue_command(
                    &d.id,
                    Actor::Cli { user: "ops".into() },
                    CommandKind::Rollback,
                    None,
                    now,
                )
                .await
                .unwrap();
        }
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let passes: Vec<_> = (0..2)
            .map(|_| {
                let (fx, start, id) = (Arc::clone(&fx), Arc::clone(&start), d.id.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    fx.driver().reconcile(&id).await
                })
            })
            .collect();
        for pass in passes {
            let report: PassReport = pass.await.unwrap().expect("a lost race is never an error");
            assert!(report.errors.is_empty(), "{:?}", report.errors);
            conflicts += report.conflicts;
        }
        let now = fx.store.deployment(&d.id).await.unwrap().unwrap();
        if now.state.is_terminal() {
            let events = fx.store.events(&d.id).await.unwrap();
            verify_history(&events, Some(&now)).unwrap();
            return (story(&events), now.revision, conflicts);
        }
        fx.clock.advance(Duration::from_secs(10));
    }
    panic!("deployment {deployment_id} did not finish in 30 rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_drivers_write_the_history_one_driver_writes() {
    // One service per deployment, so that each starts from blue as the reference does.
    let runs = [
        ("web", None),
        ("api", Some(3)),
        ("db", None),
        ("cache", Some(1)),
    ];
    let fx = Arc::new(Fixture::racing(&runs.map(|(name, _)| name)).await);
    let mut conflicts = 0;
    for (name, rollback_at) in runs {
        let (story, revision, lost) = race(Arc::clone(&fx), name, rollback_at).await;
        conflicts += lost;
        assert_eq!((story, revision), reference_story(rollback_at), "{name}");
        // A success leaves all traffic on the new slot; a rollback, on the stable one.
        let live = if rollback_at.is_some() {
            Slot::Blue
        } else {
            Slot::Green
        };
        assert_eq!(
            fx.world.router.current(&service(name)),
            Some(Weights::all_on(live))
        );
    }
    // The drivers really raced: commits were lost to the other driver and re-decided.
    assert!(conflicts > 0, "the two drivers never collided");
}
