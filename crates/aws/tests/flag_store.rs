//! `DynamoFlagStore` against the local DynamoDB emulator: the shared flag store
//! contract, the items it writes (documented in ARCHITECTURE.md's key design), a
//! flag ramp rolled back by an alarm on the table, and racing writers of one flag.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use ripcord_aws::dynamo::create_table;
use ripcord_aws::{DynamoFlagStore, DynamoStore};
use ripcord_core::domain::Weight;
use ripcord_core::flag_store_contract::check_all;
use ripcord_core::flags::stored::new_rollout_flag;
use ripcord_core::history::Actor;
use ripcord_core::ports::{FlagRecordKind, FlagStore, FlagStoreError, FlagWrite};
use ripcord_core::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);

async fn table(client: &Client) -> String {
    let table = support::unique("ripcord-flags");
    create_table(client, &table).await.expect("create table");
    table
}

#[tokio::test]
async fn the_table_keeps_the_flag_store_contract() {
    let client = Client::new(&support::config().await);
    let store = DynamoFlagStore::new(client.clone(), table(&client).await);
    check_all(&store, "dynamo").await;
}

#[tokio::test]
async fn flags_are_items_under_their_documented_keys() {
    let client = Client::new(&support::config().await);
    let table = table(&client).await;
    let store = DynamoFlagStore::new(client.clone(), table.clone());
    store
        .put_flag_record(FlagWrite {
            kind: FlagRecordKind::Flag,
            name: "checkout".into(),
            expected_version: 0,
            definition: new_rollout_flag("checkout", Weight::new(5).unwrap()),
            at: T0,
            actor: Actor::Cli { user: "ops".into() },
            summary: "created".into(),
        })
        .await
        .unwrap();
    let get = |pk: &str, sk: &str| {
        client
            .get_item()
            .table_name(&table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
    };
    let head = get("FLAGS", "FLAG#checkout")
        .await
        .unwrap()
        .item
        .expect("the flag");
    assert_eq!(head["version"], AttributeValue::N("1".into()));
    assert!(head["doc"].as_s().unwrap().contains("\"rollout\":\"5\""));
    let change = get("FLAGLOG#flag#checkout", "V#0000000001")
        .await
        .unwrap()
        .item
        .expect("the change");
    assert!(change["doc"].as_s().unwrap().contains("created"));
}

#[tokio::test]
async fn racing_writers_of_one_version_make_one_change() {
    let client = support::dynamodb_one_request_at_a_time().await;
    let store = Arc::new(DynamoFlagStore::new(client.clone(), table(&client).await));
    let writers = (0..4).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .put_flag_record(FlagWrite {
                    kind: FlagRecordKind::Flag,
                    name: "raced".into(),
                    expected_version: 0,
                    definition: new_rollout_flag("raced", Weight::new(n * 10).unwrap()),
                    at: T0.plus(Duration::from_secs(u64::from(n))),
                    actor: Actor::Cli {
                        user: format!("writer-{n}"),
                    },
                    summary: format!("writer {n}"),
                })
                .await
        })
    });
    let mut won = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Ok(record) => {
                won += 1;
                assert_eq!(record.version, 1);
            }
            Err(FlagStoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        won, 1,
        "one writer creates the flag, the others are refused"
    );
    let changes = store
        .flag_changes(FlagRecordKind::Flag, "raced")
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    let stored = store
        .flag_record(FlagRecordKind::Flag, "raced")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored, changes[0].record,
        "the winner's change is the one kept"
    );
}

/// The flag ramp's router over the table: the store's live slot and the flag store
/// are both DynamoDB; an alarm sets the rollout back to 0%.
#[tokio::test]
async fn an_alarm_rolls_a_flag_ramp_back_on_the_table() {
    use ripcord_core::config::{Config, Ramp, ServiceSpec, Step, Strategy};
    use ripcord_core::deployment::State;
    use ripcord_core::domain::{DeploymentId, ServiceName};
    use ripcord_core::driver::{DeployRequest, Driver, Providers};
    use ripcord_core::flag_ramp::FlagRouter;
    use ripcord_core::flags::stored::rollout;
    use ripcord_core::memory::{ManualClock, MemoryNotifier, MemoryWorld, test_service};
    use ripcord_core::ports::{
        AlarmSource, MetricSource, SmokeRunner, TargetHealth, TrafficRouter,
    };

    struct World {
        memory: MemoryWorld,
        flags: FlagRouter,
    }
    impl Providers for World {
        fn router(&self, _service: &ServiceSpec) -> &dyn TrafficRouter {
            &self.flags
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

    let client = Client::new(&support::config().await);
    let table = table(&client).await;
    let store = Arc::new(DynamoStore::new(client.clone(), table.clone()));
    let flags = Arc::new(DynamoFlagStore::new(client.clone(), table));
    let clock = Arc::new(ManualClock::new(T0));
    let w = |p| Step::SetWeight(Weight::new(p).unwrap());
    let mut spec = test_service(
        "pay",
        vec![w(20), Step::Pause(Duration::from_secs(60)), w(100)],
    );
    spec.strategy = Strategy::Flag {
        flag: "pay-v2".into(),
    };
    spec.plan.ramp = Ramp::Flag("pay-v2".into());
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
    let notifier = MemoryNotifier::default();
    let driver = Driver {
        providers: &world,
        store: store.as_ref(),
        notifier: &notifier,
        clock: clock.as_ref(),
    };
    let id = DeploymentId::new("pay-1").unwrap();
    let request = DeployRequest {
        service: ServiceName::new("pay").unwrap(),
        version: "v2".into(),
        commit: "abc1234".into(),
        committed_at: Some(T0),
        author: "octocat".into(),
        slot: None,
    };
    driver
        .start(&config, 1, request, id.clone(), None)
        .await
        .unwrap();
    let rollout_now = || async {
        flags
            .flag_record(FlagRecordKind::Flag, "pay-v2")
            .await
            .unwrap()
            .and_then(|r| rollout(&r.definition))
            .map(|p| p.get())
    };
    for _ in 0..20 {
        driver.reconcile(&id).await.unwrap();
        if rollout_now().await == Some(20.0) {
            break;
        }
        clock.advance(Duration::from_secs(10));
    }
    assert_eq!(rollout_now().await, Some(20.0));
    world.memory.alarms.fire("pay-5xx", "value 9.0");
    let report = driver.reconcile(&id).await.unwrap();
    assert_eq!(report.state, State::RolledBack);
    assert_eq!(rollout_now().await, Some(0.0));
    let summaries: Vec<String> = flags
        .flag_changes(FlagRecordKind::Flag, "pay-v2")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.summary)
        .collect();
    assert_eq!(
        summaries,
        [
            "rollout none → 20% by the ramp of service pay",
            "rollout 20% → 0% by the ramp of service pay"
        ]
    );
}
