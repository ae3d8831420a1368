//! `/flag name on|off|PERCENT` over real HTTP with real Ed25519 signatures, against the
//! in-memory flag store and the stored configuration: who may change which flag, each
//! change in the flag's history with the chat user, a flag under an active flag ramp
//! left to the ramp, and bad input answered ephemerally with nothing written.

mod common;

use std::time::Duration;

use common::*;
use ripcord_bot::commands::definitions;
use ripcord_bot::{DiscordRest, Interactions, RequestVerifier};
use ripcord_core::config::parse_config;
use ripcord_core::domain::Weight;
use ripcord_core::flags::stored::{is_enabled, new_rollout_flag, rollout};
use ripcord_core::history::Actor;
use ripcord_core::memory::{MemoryFlagStore, Sandbox};
use ripcord_core::ports::{FlagChange, FlagRecordKind, FlagStore, FlagWrite, Store};
use serde_json::{Value, json};
use serenity::model::id::ApplicationId;

/// Flag approvers for flags no service ramps (through the environment).
const FLAG_APPROVER: &str = "1100000000000000111";
/// Approvers of the service that ramps `new-checkout`.
const RAMP_APPROVER: &str = "1100000000000000222";

const CONFIG: &str = r#"
[environments.production]
approvers = ["1100000000000000111"]

[flags]
environment = "production"

[services.checkout-ramp]
strategy = "flag"
flag = "new-checkout"
steps = [{ set_weight = 10 }, { pause = "until_resumed" }, { set_weight = 100 }]

[services.checkout-ramp.approval]
roles = ["1100000000000000222"]
"#;

fn flo() -> Person {
    person("1200000000000000601", "Flo", &[FLAG_APPROVER])
}
fn rae() -> Person {
    person("1200000000000000602", "Rae", &[RAMP_APPROVER])
}
fn carol() -> Person {
    person("1200000000000000503", "Carol", &["1100000000000000444"])
}

struct FlagBot {
    sb: &'static Sandbox,
    flags: &'static MemoryFlagStore,
    address: std::net::SocketAddr,
}

impl FlagBot {
    async fn start() -> FlagBot {
        let config = parse_config("flags.toml", CONFIG).unwrap();
        let sb = leak(Sandbox::new(config, T0));
        sb.store.put_config(CONFIG, 0, T0).await.unwrap();
        let flags = leak(MemoryFlagStore::new());
        for name in ["dark-mode", "new-checkout"] {
            flags
                .put_flag_record(FlagWrite {
                    kind: FlagRecordKind::Flag,
                    name: name.into(),
                    expected_version: 0,
                    definition: new_rollout_flag(name, Weight::new(5).unwrap()),
                    at: T0,
                    actor: Actor::Cli { user: "ops".into() },
                    summary: "created".into(),
                })
                .await
                .unwrap();
        }
        let (_fake, base) = FakeDiscord::start().await;
        let bot = leak(Interactions {
            driver: sb.driver(),
            verifier: leak(RequestVerifier::from_hex(&public_hex(&discord_key())).unwrap()),
            rest: leak(
                DiscordRest::new(
                    "test-bot-token",
                    ApplicationId::new(1_300_000_000_000_000_002),
                )
                .with_base(base),
            ),
            flags: Some(flags),
            budget: Duration::from_secs(2),
        });
        let address = serve(bot).await;
        FlagBot { sb, flags, address }
    }

    async fn flag(&self, who: &Person, name: &str, value: &str) -> Answer {
        let payload = command(
            who,
            "flag",
            &[("name", json!(name)), ("value", json!(value))],
        );
        let answer = post_signed(
            self.address,
            &discord_key(),
            T0.as_millis() / 1000,
            &payload,
        )
        .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert!(answer.took < Duration::from_secs(3));
        answer
    }

    async fn changes(&self, name: &str) -> Vec<FlagChange> {
        self.flags
            .flag_changes(FlagRecordKind::Flag, name)
            .await
            .unwrap()
    }

    async fn definition(&self, name: &str) -> Value {
        self.flags
            .flag_record(FlagRecordKind::Flag, name)
            .await
            .unwrap()
            .unwrap()
            .definition
    }
}

fn percent(answer: &Value) -> Option<f64> {
    rollout(answer).map(|p| p.get())
}

#[tokio::test]
async fn a_flag_approver_sets_the_rollout_and_the_switch_and_the_history_names_them() {
    let bot = FlagBot::start().await;
    let answer = bot.flag(&flo(), "dark-mode", "25%").await;
    assert!(!answer.ephemeral(), "{:?}", answer.body);
    assert!(
        answer.content().contains("rollout 5% → 25%"),
        "{}",
        answer.content()
    );
    assert_eq!(percent(&bot.definition("dark-mode").await), Some(25.0));

    let answer = bot.flag(&flo(), "dark-mode", "off").await;
    assert!(
        answer.content().contains("disabled"),
        "{}",
        answer.content()
    );
    assert!(!is_enabled(&bot.definition("dark-mode").await));

    let changes = bot.changes("dark-mode").await;
    assert_eq!(changes.len(), 3, "{changes:#?}");
    for change in &changes[1..] {
        assert_eq!(
            change.record.updated_by,
            Actor::Chat {
                user_id: flo().id.into(),
                name: "Flo".into(),
                roles: vec![FLAG_APPROVER.into()],
            }
        );
        assert!(
            change.summary.contains("[flags]"),
            "the rule that allowed it: {}",
            change.summary
        );
    }
    assert!(changes[1].summary.starts_with("rollout 5% → 25%"));
    assert!(changes[2].summary.starts_with("disabled"));

    // The same again changes nothing.
    let again = bot.flag(&flo(), "dark-mode", "off").await;
    assert!(again.ephemeral());
    assert!(
        again.content().contains("already off"),
        "{}",
        again.content()
    );
    assert_eq!(bot.changes("dark-mode").await.len(), 3);
}

#[tokio::test]
async fn only_the_roles_that_may_approve_may_change_a_flag() {
    let bot = FlagBot::start().await;
    // No approver role at all.
    let refused = bot.flag(&carol(), "dark-mode", "on").await;
    assert!(refused.ephemeral());
    assert!(
        refused.content().starts_with("Refused:") && refused.content().contains("[flags]"),
        "{}",
        refused.content()
    );
    // A flag that a flag service ramps follows that service's approvers, not [flags].
    let refused = bot.flag(&flo(), "new-checkout", "50").await;
    assert!(refused.ephemeral());
    assert!(
        refused.content().contains("checkout-ramp"),
        "{}",
        refused.content()
    );
    assert_eq!(bot.changes("new-checkout").await.len(), 1);
    assert_eq!(bot.changes("dark-mode").await.len(), 1);

    let allowed = bot.flag(&rae(), "new-checkout", "50").await;
    assert!(!allowed.ephemeral(), "{}", allowed.content());
    assert_eq!(percent(&bot.definition("new-checkout").await), Some(50.0));
    let changes = bot.changes("new-checkout").await;
    assert!(
        changes[1]
            .summary
            .contains("the approvers of checkout-ramp"),
        "{}",
        changes[1].summary
    );
}

#[tokio::test]
async fn a_flag_under_an_active_ramp_is_left_to_the_ramp() {
    let bot = FlagBot::start().await;
    let d = bot.sb.deploy("checkout-ramp", "v1", "octocat").unwrap();
    assert!(
        bot.sb
            .store
            .active_deployments()
            .await
            .unwrap()
            .iter()
            .any(|a| a.id == d.id)
    );
    let refused = bot.flag(&rae(), "new-checkout", "off").await;
    assert!(refused.ephemeral());
    let text = refused.content();
    assert!(
        text.contains("being ramped by checkout-ramp v1")
            && text.contains("/pause, /rollback or /promote"),
        "{text}"
    );
    assert!(is_enabled(&bot.definition("new-checkout").await));
    assert_eq!(bot.changes("new-checkout").await.len(), 1);
}

#[tokio::test]
async fn bad_input_is_an_ephemeral_error_and_writes_nothing() {
    let bot = FlagBot::start().await;
    let cases = [
        ("dark-mode", "101", "over 100%"),
        ("dark-mode", "lots", "not on, off or a whole percentage"),
        ("dark-mode", "12.5", "not on, off or a whole percentage"),
        ("no-such-flag", "on", "no flag \"no-such-flag\""),
    ];
    for (name, value, expected) in cases {
        let answer = bot.flag(&flo(), name, value).await;
        assert!(answer.ephemeral(), "{value}: {:?}", answer.body);
        assert!(
            answer.content().contains(expected),
            "{value}: {}",
            answer.content()
        );
    }
    assert_eq!(bot.changes("dark-mode").await.len(), 1);
    assert!(
        bot.flags
            .flag_record(FlagRecordKind::Flag, "no-such-flag")
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn flag_is_registered_with_the_other_commands() {
    let flag = definitions()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .find(|c| c["name"] == "flag")
        .expect("/flag is registered");
    let options: Vec<&str> = flag["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(options, ["name", "value"]);
    assert_eq!(flag["default_member_permissions"], "32");
}
