//! The interactions endpoint over real HTTP on loopback, with real Ed25519 signatures,
//! the engine on in-memory ports, and a fake Discord REST API for deferred answers.

mod common;

use std::time::Duration;

use common::*;
use ripcord_bot::{DiscordRest, Interactions, RequestVerifier};
use ripcord_core::config::Step;
use ripcord_core::deployment::{CommandKind, PauseReason, State};
use ripcord_core::domain::{DeploymentId, Slot, Weight, Weights};
use ripcord_core::history::{Actor, Event, EventKind};
use ripcord_core::memory::{Sandbox, test_service};
use serde_json::{Value, json};
use serenity::model::id::ApplicationId;

const APP: u64 = 1_300_000_000_000_000_002;
const APPROVER: &str = "1100000000000000111";
const DEPLOYER: &str = "1100000000000000333";

fn alice() -> Person {
    person("1200000000000000501", "Alice", &[APPROVER, DEPLOYER])
}
fn bob() -> Person {
    person("1200000000000000502", "Bob", &[APPROVER])
}
fn carol() -> Person {
    person("1200000000000000503", "Carol", &["1100000000000000444"])
}
/// The author of the release (`octocat` in CI), mapped to this chat user.
fn octo() -> Person {
    person("1200000000000000900", "Octo", &[APPROVER, DEPLOYER])
}

struct Bot {
    sb: &'static Sandbox,
    address: std::net::SocketAddr,
    fake: FakeDiscord,
    id: DeploymentId,
}

impl Bot {
    /// A bot over a sandbox whose `web` deployment waits at its first approval (step 2
    /// of 5), with approvers holding role APPROVER and deployers role DEPLOYER.
    async fn start(quorum: u32, budget: Duration) -> Bot {
        Self::start_with(quorum, budget, Duration::ZERO).await
    }

    /// As `start`, with a router that takes `router_delay` for every call.
    async fn start_with(quorum: u32, budget: Duration, router_delay: Duration) -> Bot {
        let mut spec = test_service(
            "web",
            vec![
                Step::SetWeight(Weight::new(10).unwrap()),
                Step::Approval,
                Step::SetWeight(Weight::new(50).unwrap()),
                Step::Approval,
                Step::SetWeight(Weight::FULL),
            ],
        );
        spec.approval.roles = vec![APPROVER.into()];
        spec.approval.quorum = quorum;
        spec.chat.deployers = vec![DEPLOYER.into()];
        let mut sb = Sandbox::single(spec, T0);
        sb.config
            .authors
            .insert("octocat".into(), octo().id.to_string());
        let sb = leak(sb);
        let d = sb.deploy("web", "v43", "octocat").unwrap();
        sb.pass(&d.id);
        assert!(matches!(
            sb.deployment(&d.id).state,
            State::Paused {
                step: 1,
                reason: PauseReason::AwaitingApproval,
                ..
            }
        ));
        let (fake, base) = FakeDiscord::start().await;
        let mut driver = sb.driver();
        driver.providers = leak(SlowWorld {
            world: &sb.world,
            router: SlowRouter {
                router: &sb.world.router,
                delay: router_delay,
            },
        });
        let bot = leak(Interactions {
            driver,
            verifier: leak(RequestVerifier::from_hex(&public_hex(&discord_key())).unwrap()),
            rest: leak(DiscordRest::new("test-bot-token", ApplicationId::new(APP)).with_base(base)),
            flags: None,
            budget,
        });
        let address = serve(bot).await;
        Bot {
            sb,
            address,
            fake,
            id: d.id,
        }
    }

    async fn post(&self, payload: &Value) -> Answer {
        let answer =
            post_signed(self.address, &discord_key(), T0.as_millis() / 1000, payload).await;
        // Every interaction is answered well inside Discord's three seconds.
        assert!(
            answer.took < Duration::from_secs(3),
            "took {:?}",
            answer.took
        );
        answer
    }

    fn events(&self) -> Vec<Event> {
        self.sb.store.events_of(&self.id)
    }

    fn button(&self, action: &str, stage: &str) -> String {
        format!("rc1:{action}:{}:{stage}", self.id)
    }
}

fn chat_actor(p: &Person) -> Actor {
    Actor::Chat {
        user_id: p.id.into(),
        name: p.name.into(),
        roles: p.roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn refusals_of(events: &[Event], p: &Person) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.actor == chat_actor(p) && matches!(e.kind, EventKind::CommandRefused { .. }))
        .map(|e| e.reason.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_and_unverified_requests_get_401() {
    let bot = Bot::start(1, Duration::from_secs(2)).await;
    let now = T0.as_millis() / 1000;

    let pong = bot.post(&ping()).await;
    assert_eq!((pong.status, pong.kind()), (200, 1), "{:?}", pong.body);

    let refused = [
        (
            "another key",
            post_signed(bot.address, &impostor_key(), now, &ping()).await,
        ),
        (
            "301 s old",
            post_signed(bot.address, &discord_key(), now - 301, &ping()).await,
        ),
        (
            "301 s ahead",
            post_signed(bot.address, &discord_key(), now + 301, &ping()).await,
        ),
    ];
    for (what, answer) in refused {
        assert_eq!(answer.status, 401, "{what}: {:?}", answer.body);
        assert_eq!(answer.body["error"], "unauthorized", "{what}");
        assert!(
            answer.body["message"].as_str().unwrap().len() > 10,
            "{what}"
        );
    }
    let stale = post_signed(bot.address, &discord_key(), now - 301, &ping()).await;
    assert!(
        stale.body["message"]
            .as_str()
            .unwrap()
            .contains("5 minutes")
    );
    // 299 seconds off is still inside the window.
    assert_eq!(
        post_signed(bot.address, &discord_key(), now - 299, &ping())
            .await
            .status,
        200
    );

    // A body changed after signing, and a request without the headers.
    let body = serde_json::to_vec(&ping()).unwrap();
    let headers = signed_headers(&discord_key(), now, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let (status, _, _) = send(bot.address, "POST", "/", &headers, tampered).await;
    assert_eq!(status, 401);
    let (status, _, bytes) = send(bot.address, "POST", "/", &[], body).await;
    assert_eq!(status, 401);
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("x-signature-ed25519")
    );

    // A signed click that is refused at the door writes nothing.
    let before = bot.events().len();
    let forged = click(&alice(), &bot.button("approve", "s2"), "");
    let answer = post_signed(bot.address, &impostor_key(), now, &forged).await;
    assert_eq!(answer.status, 401);
    assert_eq!(bot.events().len(), before);
    assert_eq!(bot.sb.deployment(&bot.id).approvals.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_commands_and_buttons_get_an_ephemeral_explanation() {
    let bot = Bot::start(1, Duration::from_secs(2)).await;
    let cases = [
        (
            command(&alice(), "deploy", &[]),
            "/deploy is not one of Ripcord's commands",
        ),
        (
            click(&alice(), "someone-elses:button", ""),
            "not one of Ripcord's",
        ),
        (
            click(&alice(), "rc1:launch:d-1:s2", ""),
            "unknown button action",
        ),
        (
            click(&alice(), "rc0:approve:d-1:s2", ""),
            "another version of Ripcord",
        ),
        (
            click(&alice(), "rc1:approve:d-999:s2", ""),
            "deployment d-999 is not known",
        ),
        (
            command(&alice(), "rollback", &[("service", json!("api"))]),
            "api has no active deployment",
        ),
        (
            command(&alice(), "pause", &[("service", json!("Not A Name"))]),
            "not valid",
        ),
    ];
    for (payload, expected) in cases {
        let answer = bot.post(&payload).await;
        assert_eq!(answer.status, 200, "{expected}");
        assert_eq!(answer.kind(), 4, "{expected}: {:?}", answer.body);
        assert!(answer.ephemeral(), "{expected}");
        assert!(
            answer.content().contains(expected),
            "{expected}: {}",
            answer.content()
        );
    }
    // Autocomplete is not used by Ripcord's commands, and is answered, not failed.
    let mut autocomplete = command(&alice(), "status", &[]);
    autocomplete["type"] = json!(4);
    assert_eq!(bot.post(&autocomplete).await.status, 200);
    assert_eq!(bot.sb.deployment(&bot.id).state.step(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_follow_roles_the_author_rule_and_a_quorum_of_two() {
    let bot = Bot::start(2, Duration::from_secs(2)).await;
    let approve = bot.button("approve", "s2");

    // Carol holds no approver role.
    let answer = bot.post(&click(&carol(), &approve, "")).await;
    assert_eq!((answer.kind(), answer.ephemeral()), (4, true));
    assert!(
        answer
            .content()
            .contains("Carol does not hold a role allowed to approve web"),
        "{}",
        answer.content()
    );

    // Octo wrote the release (octocat in CI, mapped to Octo's chat id).
    let answer = bot.post(&click(&octo(), &approve, "")).await;
    assert!(answer.ephemeral());
    assert!(
        answer
            .content()
            .contains("is the author of v43 and may not approve it"),
        "{}",
        answer.content()
    );
    assert!(bot.sb.deployment(&bot.id).approvals.is_empty());

    // Alice approves: 1 of 2, and the message is updated in place (type 7).
    let answer = bot.post(&click(&alice(), &approve, "")).await;
    assert_eq!(answer.kind(), 7, "{:?}", answer.body);
    let embed = &answer.body["data"]["embeds"][0];
    let approved_by = embed["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Approved by")
        .unwrap();
    assert_eq!(approved_by["value"], "Alice (1 of 2)");
    assert!(
        answer.custom_ids().contains(&approve),
        "{:?}",
        answer.custom_ids()
    );

    // Alice clicks again: counted once.
    let again = bot.post(&click(&alice(), &approve, "")).await;
    assert_eq!((again.kind(), again.ephemeral()), (4, true));
    assert!(
        again
            .content()
            .contains("Alice has already approved this step"),
        "{}",
        again.content()
    );
    assert_eq!(bot.sb.deployment(&bot.id).approvals.len(), 1);

    // Bob makes two: the deployment moves on to 50%.
    let answer = bot.post(&click(&bob(), &approve, "")).await;
    assert_eq!(answer.kind(), 7);
    let d = bot.sb.deployment(&bot.id);
    assert_eq!(
        d.state,
        State::Paused {
            step: 3,
            reason: PauseReason::AwaitingApproval,
            elapsed_ms: 0
        }
    );
    assert_eq!(
        bot.sb.world.router.current(&d.service),
        Some(Weights::split(Slot::Green, Weight::new(50).unwrap()))
    );
    assert!(answer.custom_ids().contains(&bot.button("approve", "s4")));

    // Every click is in the history with the user's id, name and roles.
    let events = bot.events();
    assert_eq!(refusals_of(&events, &carol()).len(), 1);
    assert_eq!(refusals_of(&events, &octo()).len(), 1);
    assert_eq!(refusals_of(&events, &alice()).len(), 1);
    let approvals: Vec<&Actor> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Approved { .. }))
        .map(|e| &e.actor)
        .collect();
    assert_eq!(approvals, vec![&chat_actor(&alice()), &chat_actor(&bob())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_from_an_earlier_step_changes_nothing() {
    let bot = Bot::start(1, Duration::from_secs(2)).await;
    let first = bot.button("approve", "s2");
    assert_eq!(bot.post(&click(&alice(), &first, "")).await.kind(), 7);
    let at_step_four = bot.sb.deployment(&bot.id);
    assert_eq!(at_step_four.state.step(), Some(3));

    // The step-2 message is still in the channel; Bob clicks Approve, then Promote now.
    for action in ["approve", "promote", "reject"] {
        let answer = bot
            .post(&click(&bob(), &bot.button(action, "s2"), ""))
            .await;
        assert_eq!((answer.kind(), answer.ephemeral()), (4, true), "{action}");
        assert!(
            answer
                .content()
                .contains("this button is from step 2, but web v43 is now at step 4"),
            "{action}: {}",
            answer.content()
        );
    }
    let after = bot.sb.deployment(&bot.id);
    assert_eq!(after.state, at_step_four.state);
    assert_eq!(after.desired, at_step_four.desired);
    assert!(after.approvals.is_empty());
    // Refused, and recorded as refused, with who tried what.
    let refused: Vec<(String, String)> = bot
        .events()
        .iter()
        .filter(|e| e.actor == chat_actor(&bob()))
        .filter_map(|e| match &e.kind {
            EventKind::CommandRefused {
                command: CommandKind::Refused { asked, .. },
            } => Some((asked.clone(), e.reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["approve", "promote", "reject"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_asks_with_the_exact_change_then_takes_the_fast_path() {
    let bot = Bot::start(1, Duration::from_secs(2)).await;

    // Bob is an approver but not a deployer: refused, and recorded.
    let answer = bot
        .post(&command(&bob(), "rollback", &[("service", json!("web"))]))
        .await;
    assert!(answer.ephemeral());
    assert!(
        answer
            .content()
            .contains("Bob does not hold a deployer role of web, so may not roll back it"),
        "{}",
        answer.content()
    );
    assert_eq!(refusals_of(&bot.events(), &bob()).len(), 1);
    assert!(bot.sb.deployment(&bot.id).is_active());

    let answer = bot
        .post(&command(
            &alice(),
            "rollback",
            &[
                ("service", json!("web")),
                ("reason", json!("checkout errors")),
            ],
        ))
        .await;
    assert_eq!((answer.kind(), answer.ephemeral()), (4, true));
    let question = answer.content();
    assert!(
        question.contains("`blue 90% → 100%, green 10% → 0%`"),
        "{question}"
    );
    assert!(question.contains("Reason: checkout errors"));
    let confirm = bot.button("rollback-confirm", "s2");
    assert_eq!(
        answer.custom_ids(),
        vec![confirm.clone(), bot.button("rollback-cancel", "s2")]
    );
    // Nothing moves until it is confirmed.
    assert_eq!(
        bot.sb.world.router.current(&"web".parse_service()),
        Some(Weights::split(Slot::Green, Weight::new(10).unwrap()))
    );

    let cancel = bot
        .post(&click(
            &alice(),
            &bot.button("rollback-cancel", "s2"),
            &question,
        ))
        .await;
    assert_eq!(cancel.kind(), 7);
    assert!(bot.sb.deployment(&bot.id).is_active());

    let done = bot.post(&click(&alice(), &confirm, &question)).await;
    assert_eq!(done.kind(), 7, "{:?}", done.body);
    assert!(
        done.content()
            .contains("Rolled back web v43: traffic is back on blue"),
        "{}",
        done.content()
    );
    assert_eq!(
        bot.sb.world.router.current(&"web".parse_service()),
        Some(Weights::all_on(Slot::Blue))
    );
    let d = bot.sb.deployment(&bot.id);
    assert_eq!(d.state, State::RolledBack);
    let rollback = d.rollback.unwrap();
    assert_eq!(rollback.trigger, chat_actor(&alice()));
    assert_eq!(
        rollback.reason,
        "rollback requested by chat Alice: checkout errors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_and_reading_commands() {
    let bot = Bot::start(1, Duration::from_secs(2)).await;
    let web = [("service", json!("web"))];

    let status = bot.post(&command(&carol(), "status", &[])).await;
    assert!(status.ephemeral());
    assert!(
        status
            .content()
            .contains("web v43: paused at step 2 of 5 (awaiting approval)"),
        "{}",
        status.content()
    );
    assert!(status.content().contains("green ██░░░░░░░░░░░░░░░░░░  10%"));

    // Waiting for approval, resume is refused with the engine's reason.
    let resume = bot.post(&command(&alice(), "resume", &web)).await;
    assert!(resume.ephemeral());
    assert!(
        resume
            .content()
            .contains("the deployment waits for approval: approve or reject it"),
        "{}",
        resume.content()
    );

    // Carol is no deployer.
    let promote = bot.post(&command(&carol(), "promote", &web)).await;
    assert!(
        promote
            .content()
            .contains("Carol does not hold a deployer role of web, so may not promote it"),
        "{}",
        promote.content()
    );

    // Alice promotes (she is an approver too, so skipping approvals is allowed).
    let promote = bot.post(&command(&alice(), "promote", &web)).await;
    assert_eq!(
        (promote.kind(), promote.ephemeral()),
        (4, false),
        "{:?}",
        promote.body
    );
    assert!(
        promote.content().contains("promoted by chat Alice"),
        "{}",
        promote.content()
    );
    assert!(matches!(
        bot.sb.deployment(&bot.id).state,
        State::Baking { .. }
    ));

    let abort = bot.post(&command(&alice(), "abort", &web)).await;
    assert!(
        abort.content().contains("aborted by chat Alice"),
        "{}",
        abort.content()
    );
    assert_eq!(bot.sb.deployment(&bot.id).state, State::Aborted);

    let history = bot
        .post(&command(
            &carol(),
            "history",
            &[("service", json!("web")), ("n", json!(3))],
        ))
        .await;
    assert!(
        history
            .content()
            .contains(&format!("`{}` v43 aborted", bot.id)),
        "{}",
        history.content()
    );

    let dora = bot
        .post(&command(&carol(), "dora", &[("days", json!(7))]))
        .await;
    assert!(dora.content().starts_with("```"), "{}", dora.content());
    assert!(
        dora.content()
            .to_lowercase()
            .contains("deployment frequency"),
        "{}",
        dora.content()
    );

    let none = bot
        .post(&command(&carol(), "status", &[("service", json!("web"))]))
        .await;
    assert_eq!(none.content(), "web has no active deployment.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_work_is_deferred_and_finished_through_the_follow_up_webhook() {
    let logs = captured_logs();
    // Every router call takes 300 ms; the handler answers within 100 ms or defers.
    let bot = Bot::start_with(1, Duration::from_millis(100), Duration::from_millis(300)).await;

    // A click whose work is slow: type 6 at once, then the message is edited through
    // the interaction's follow-up webhook.
    let question = "Roll back **web v43** now?\nReason: slow path";
    let answer = bot
        .post(&click(
            &alice(),
            &bot.button("rollback-confirm", "s2"),
            question,
        ))
        .await;
    assert_eq!(answer.kind(), 6, "{:?}", answer.body);
    assert!(
        answer.took < Duration::from_millis(300),
        "took {:?}",
        answer.took
    );
    let edit = wait_for(&bot.fake, |r| r.method == "PATCH").await;
    assert_eq!(
        edit.path,
        format!("/api/v10/webhooks/{APP}/click-token/messages/@original")
    );
    assert!(
        edit.body["content"]
            .as_str()
            .unwrap()
            .contains("Rolled back web v43"),
        "{:?}",
        edit.body
    );
    assert_eq!(bot.sb.deployment(&bot.id).state, State::RolledBack);

    // A slow command: type 5 (ephemeral), finished the same way.
    let answer = bot
        .post(&command(&alice(), "rollback", &[("service", json!("web"))]))
        .await;
    assert_eq!(answer.kind(), 4, "no active deployment is a quick answer");
    let bot = Bot::start_with(1, Duration::from_millis(100), Duration::from_millis(300)).await;
    // Discord refuses the follow-up this time: the failure is logged, without the
    // interaction's token.
    bot.fake.then(Scripted::Status(404));
    let answer = bot
        .post(&command(&alice(), "rollback", &[("service", json!("web"))]))
        .await;
    assert_eq!(
        (answer.kind(), answer.ephemeral()),
        (5, true),
        "{:?}",
        answer.body
    );
    let edit = wait_for(&bot.fake, |r| r.method == "PATCH").await;
    assert!(
        edit.body["content"]
            .as_str()
            .unwrap()
            .contains("blue 90% → 100%"),
        "{:?}",
        edit.body
    );
    assert_eq!(
        edit.body["components"][0]["components"][0]["custom_id"],
        bot.button("rollback-confirm", "s2")
    );

    // A PING never waits for anything.
    assert_eq!(bot.post(&ping()).await.kind(), 1);

    let logged = |needle: &str| logs.lock().unwrap().iter().any(|l| l.contains(needle));
    for _ in 0..100 {
        if logged("could not be sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        logged("webhooks/1300000000000000002/<token>/messages/@original answered 404"),
        "{:#?}",
        (
            logs.lock()
                .unwrap()
                .iter()
                .filter(|l| !l.starts_with("span"))
                .collect::<Vec<_>>(),
            bot.fake.recorded()
        )
    );
    for line in logs.lock().unwrap().iter() {
        for secret in ["command-token", "click-token", "test-bot-token"] {
            assert!(!line.contains(secret), "a log line holds a secret: {line}");
        }
    }
}

/// The in-memory world with a router that takes its time.
struct SlowWorld {
    world: &'static ripcord_core::memory::MemoryWorld,
    router: SlowRouter,
}

struct SlowRouter {
    router: &'static ripcord_core::memory::MemoryRouter,
    delay: Duration,
}

impl ripcord_core::ports::TrafficRouter for SlowRouter {
    fn set_weights<'a>(
        &'a self,
        service: &'a ripcord_core::config::ServiceSpec,
        weights: Weights,
    ) -> ripcord_core::ports::BoxFuture<'a, Result<(), ripcord_core::ports::PortError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.router.set_weights(service, weights).await
        })
    }
    fn read_weights<'a>(
        &'a self,
        service: &'a ripcord_core::config::ServiceSpec,
    ) -> ripcord_core::ports::BoxFuture<'a, Result<Weights, ripcord_core::ports::PortError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.router.read_weights(service).await
        })
    }
}

impl ripcord_core::driver::Providers for SlowWorld {
    fn router(
        &self,
        _: &ripcord_core::config::ServiceSpec,
    ) -> &dyn ripcord_core::ports::TrafficRouter {
        &self.router
    }
    fn health(
        &self,
        s: &ripcord_core::config::ServiceSpec,
    ) -> &dyn ripcord_core::ports::TargetHealth {
        self.world.health(s)
    }
    fn alarms(
        &self,
        s: &ripcord_core::config::ServiceSpec,
    ) -> &dyn ripcord_core::ports::AlarmSource {
        self.world.alarms(s)
    }
    fn metrics(
        &self,
        s: &ripcord_core::config::ServiceSpec,
    ) -> &dyn ripcord_core::ports::MetricSource {
        self.world.metrics(s)
    }
    fn smoke(
        &self,
        s: &ripcord_core::config::ServiceSpec,
    ) -> &dyn ripcord_core::ports::SmokeRunner {
        self.world.smoke(s)
    }
}

async fn wait_for(fake: &FakeDiscord, matches: impl Fn(&Recorded) -> bool) -> Recorded {
    for _ in 0..200 {
        if let Some(found) = fake.recorded().into_iter().find(|r| matches(r)) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the fake Discord API never received the request; got {:?}",
        fake.recorded()
    );
}

trait ParseService {
    fn parse_service(&self) -> ripcord_core::domain::ServiceName;
}

impl ParseService for &str {
    fn parse_service(&self) -> ripcord_core::domain::ServiceName {
        ripcord_core::domain::ServiceName::new(*self).unwrap()
    }
}
