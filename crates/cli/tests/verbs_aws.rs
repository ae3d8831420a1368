//! `deploy`, `approve`, `reject` and `watch` against AWS, run as a user runs them: a
//! service behind an ALB on the local AWS emulator that `scripts/test` starts, its
//! configuration applied to a DynamoDB table there, and the listener's weights read
//! straight from the emulator after each command. The test plays the controller for
//! the one wait that needs time to pass (the bake).

#[path = "../../aws/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ripcord_aws::DynamoStore;
use ripcord_aws::dynamo::create_table;
use ripcord_core::domain::{DeploymentId, Slot, Weight, Weights};
use ripcord_core::driver::Driver;
use ripcord_core::memory::{ManualClock, MemoryNotifier};
use ripcord_core::ports::Store;
use ripcord_core::time::Timestamp;

fn ripcord(table: &str, user: &str, args: &[&str]) -> Output {
    command(table, user, args)
        .output()
        .expect("the binary runs")
}

fn command(table: &str, user: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ripcord"));
    command
        .args(args)
        .env("RIPCORD_TABLE", table)
        .env_remove("RIPCORD_LOCAL_TOKEN")
        .env("USER", user);
    command
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(i64::try_from(millis).unwrap())
}

fn deploy(table: &str, version: &str) -> Output {
    ripcord(
        table,
        "alice",
        &[
            "deploy",
            "web",
            "--version",
            version,
            "--commit",
            "0a1b2c3",
            "--committed-at",
            "2026-11-26T05:00:00Z",
            "--author",
            "octocat",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_approve_reject_and_watch_a_service_behind_an_alb() {
    let sdk = support::config().await;
    let world = support::world::Installation::new(&sdk).await;
    let table = support::unique("ripcord-verbs");
    create_table(&world.dynamodb, &table).await.unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), table.clone());

    let dir = std::env::temp_dir().join(support::unique("ripcord-verbs"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ripcord.toml");
    std::fs::write(
        &file,
        format!(
            "[services.web]\nstrategy = \"canary\"\n\
             steps = [{{ set_weight = 10 }}, {{ approval = true }}, {{ set_weight = 100 }}]\nbake = \"1h\"\n\
             [services.web.aws]\nlistener_arn = \"{}\"\ntarget_groups = [\"{}\", \"{}\"]\n\
             [services.web.alarms]\nnames = [\"{}\"]\n",
            world.listener, world.blue, world.green, world.alarm
        ),
    )
    .unwrap();
    let applied = ripcord(&table, "alice", &["apply", file.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", stderr(&applied));

    // deploy starts it as the webhook does and runs the first pass: 10% on green,
    // then the approval step.
    let started = deploy(&table, "v2");
    assert!(started.status.success(), "{}", stderr(&started));
    let id = stdout(&started).trim().to_string();
    assert!(id.starts_with("d-"), "{id}");
    let ten = Weights::split(Slot::Green, Weight::new(10).unwrap());
    assert_eq!(world.listener_weights().await, ten);
    let d = store
        .deployment(&DeploymentId::new(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.state.name(), "paused", "{:?}", d.state);
    assert_eq!(
        d.release.committed_at,
        Some(Timestamp::parse_rfc3339("2026-11-26T05:00:00Z").unwrap())
    );

    let refused = deploy(&table, "v2b");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains(&format!("already has an active deployment ({id})")),
        "{}",
        stderr(&refused)
    );

    let watcher = command(&table, "alice", &["watch", &id, "--interval", "200ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // The author's own approval is refused by the engine and recorded; traffic stays.
    let own = ripcord(&table, "octocat", &["approve", &id]);
    assert!(own.status.success(), "{}", stderr(&own));
    assert!(
        stdout(&own).contains("approve at step 2 queued for web v2"),
        "{}",
        stdout(&own)
    );
    assert!(
        stdout(&own).contains("paused at step 2"),
        "{}",
        stdout(&own)
    );
    assert_eq!(world.listener_weights().await, ten);

    let approved = ripcord(&table, "alice", &["approve", &id, "--reason", "looks fine"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    assert!(
        stdout(&approved).contains("baking"),
        "{}",
        stdout(&approved)
    );
    assert_eq!(world.listener_weights().await, Weights::all_on(Slot::Green));

    // Nothing waits for an approval now: refused, nothing queued.
    let events_before = store
        .events(&DeploymentId::new(&id).unwrap())
        .await
        .unwrap()
        .len();
    let late = ripcord(&table, "bob", &["approve", &id]);
    assert_eq!(late.status.code(), Some(1));
    assert!(
        stderr(&late).contains("not waiting for an approval; nothing to approve"),
        "{}",
        stderr(&late)
    );
    let d_id = DeploymentId::new(&id).unwrap();
    assert!(store.commands_after(&d_id, 0).await.unwrap().len() == 2);
    assert_eq!(store.events(&d_id).await.unwrap().len(), events_before);

    // The controller's pass after the bake window.
    let clock = ManualClock::new(now().plus(Duration::from_secs(2 * 3600)));
    let driver = Driver {
        providers: &world.providers,
        store: &store,
        notifier: &MemoryNotifier::default(),
        clock: &clock,
    };
    driver.reconcile(&d_id).await.unwrap();

    let watched = watcher.wait_with_output().unwrap();
    let out = stdout(&watched);
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{out}\n{}",
        stderr(&watched)
    );
    assert!(out.contains("octocat is the author of v2"), "{out}");
    assert!(out.contains("approved by cli alice (1 of 1)"), "{out}");
    assert!(out.contains("web v2 succeeded after 2h"), "{out}");

    // The next release goes to blue; a rejection puts green back at 100%.
    let started = deploy(&table, "v3");
    assert!(started.status.success(), "{}", stderr(&started));
    let id = stdout(&started).trim().to_string();
    assert_eq!(
        world.listener_weights().await,
        Weights::split(Slot::Blue, Weight::new(10).unwrap())
    );
    let rejected = ripcord(&table, "bob", &["reject", &id, "--reason", "wrong colour"]);
    assert!(rejected.status.success(), "{}", stderr(&rejected));
    assert!(
        stdout(&rejected).contains("web v3: aborted"),
        "{}",
        stdout(&rejected)
    );
    assert_eq!(world.listener_weights().await, Weights::all_on(Slot::Green));

    let watched = ripcord(&table, "bob", &["watch", &id, "--json"]);
    assert_eq!(watched.status.code(), Some(3), "{}", stderr(&watched));
    let last: serde_json::Value =
        serde_json::from_str(stdout(&watched).lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "aborted");
    assert!(
        stdout(&watched).contains("rejected by cli bob: wrong colour"),
        "{}",
        stdout(&watched)
    );

    std::fs::remove_dir_all(&dir).unwrap();
}
