//! The append-only history: one event per transition or action, hash-chained per
//! deployment so that an edited, reordered or deleted event is detected.
//!
//! Each event's hash is SHA-256 over the previous event's hash and the event's own
//! canonical JSON (every field but `hash`). The deployment record keeps the head of the
//! chain (`event_count`, `last_hash`), so that dropping the newest events is detected too.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::deployment::{CommandKind, Deployment, State};
use crate::domain::{DeploymentId, ServiceName, Weights};
use crate::time::Timestamp;

/// The hash the first event of every chain links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who or what caused an event.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Actor {
    /// The CI system, on behalf of a commit author.
    Ci {
        /// The author's login.
        author: String,
    },
    /// A person in chat.
    Chat {
        /// Chat user id.
        user_id: String,
        /// Display name.
        name: String,
        /// The user's role ids at the time.
        roles: Vec<String>,
    },
    /// A CloudWatch (or local) alarm.
    Alarm {
        /// The alarm's name.
        name: String,
    },
    /// The controller's own pass (timers, gates, metric checks).
    Schedule,
    /// Someone at the command line.
    Cli {
        /// The local user name, when known.
        user: String,
    },
}

impl Actor {
    /// A short description for output, e.g. `alarm web-5xx` or `chat alice`.
    pub fn describe(&self) -> String {
        match self {
            Actor::Ci { author } => format!("ci ({author})"),
            Actor::Chat { name, .. } => format!("chat {name}"),
            Actor::Alarm { name } => format!("alarm {name}"),
            Actor::Schedule => "schedule".to_string(),
            Actor::Cli { user } => format!("cli {user}"),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    /// The deployment was created.
    Created {
        /// The release version.
        version: String,
        /// The commit.
        commit: String,
        /// When the commit was made, for lead time.
        committed_at: Option<Timestamp>,
    },
    /// Alarms firing at the start were recorded as the baseline.
    BaselineTaken {
        /// The alarms firing then.
        firing: BTreeSet<String>,
    },
    /// A baseline alarm cleared; from now on it rolls the deployment back if it fires.
    BaselineCleared {
        /// The alarm.
        alarm: String,
    },
    /// A gate passed (health, smoke, analysis, metric checks).
    GatePassed {
        /// The gate's name.
        gate: String,
    },
    /// A gate is not yet satisfied and is being waited for.
    GateWaiting {
        /// The gate's name.
        gate: String,
    },
    /// A gate failed.
    GateFailed {
        /// The gate's name.
        gate: String,
    },
    /// An analysis could not decide.
    GateInconclusive {
        /// The gate's name.
        gate: String,
    },
    /// A step began.
    StepStarted {
        /// Index of the step.
        step: usize,
    },
    /// Weights were set.
    WeightsSet,
    /// The router serves the weights that were set.
    WeightsVerified,
    /// The router served other weights than those set; they are being re-applied.
    Drift,
    /// An approval was counted.
    Approved {
        /// How many distinct approvals the step has now.
        count: u32,
        /// How many it needs.
        quorum: u32,
    },
    /// A command was refused; nothing changed.
    CommandRefused {
        /// The command.
        command: CommandKind,
    },
    /// A command was applied.
    CommandApplied {
        /// The command.
        command: CommandKind,
    },
    /// An approval step timed out.
    ApprovalTimedOut,
    /// A rollback started.
    RollbackStarted,
    /// Putting traffic back failed this time; it is retried on every pass.
    RollbackRetrying {
        /// How many attempts have been made.
        attempts: u32,
    },
    /// Baking at 100% began.
    BakeStarted,
    /// The deployment reached a terminal state.
    Finished,
    /// Carrying out an action failed.
    ActionFailed {
        /// What the action was.
        action: String,
    },
}

impl EventKind {
    /// The kind's name in output.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "created",
            EventKind::BaselineTaken { .. } => "baseline_taken",
            EventKind::BaselineCleared { .. } => "baseline_cleared",
            EventKind::GatePassed { .. } => "gate_passed",
            EventKind::GateWaiting { .. } => "gate_waiting",
            EventKind::GateFailed { .. } => "gate_failed",
            EventKind::GateInconclusive { .. } => "gate_inconclusive",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::WeightsSet => "weights_set",
            EventKind::WeightsVerified => "weights_verified",
            EventKind::Drift => "drift",
            EventKind::Approved { .. } => "approved",
            EventKind::CommandRefused { .. } => "command_refused",
            EventKind::CommandApplied { .. } => "command_applied",
            EventKind::ApprovalTimedOut => "approval_timed_out",
            EventKind::RollbackStarted => "rollback_started",
            EventKind::RollbackRetrying { .. } => "rollback_retrying",
            EventKind::BakeStarted => "bake_started",
            EventKind::Finished => "finished",
            EventKind::ActionFailed { .. } => "action_failed",
        }
    }
}

/// An event before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDraft {
    /// When.
    pub at: Timestamp,
    /// Who or what.
    pub actor: Actor,
    /// What.
    pub kind: EventKind,
    /// Why, for a person.
    pub reason: String,
    /// The weights the router served before (as observed), if known.
    pub weights_before: Option<Weights>,
    /// The weights after the event (as desired), if it changed them or they are known.
    pub weights_after: Option<Weights>,
    /// The deployment's state after the event.
    pub state: State,
}

/// One sealed event in a deployment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The deployment.
    pub deployment_id: DeploymentId,
    /// Its service.
    pub service: ServiceName,
    /// Position in the deployment's chain, from 0.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who or what.
    pub actor: Actor,
    /// What.
    pub kind: EventKind,
    /// Why, for a person.
    pub reason: String,
    /// The weights served before, if known.
    pub weights_before: Option<Weights>,
    /// The weights after.
    pub weights_after: Option<Weights>,
    /// The deployment's state after the event.
    pub state: State,
    /// The previous event's hash (`GENESIS_HASH` for the first).
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this event's other fields, hex.
    pub hash: String,
}

/// The fields an event's hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    deployment_id: &'a DeploymentId,
    service: &'a ServiceName,
    seq: u64,
    at: Timestamp,
    actor: &'a Actor,
    kind: &'a EventKind,
    reason: &'a str,
    weights_before: Option<Weights>,
    weights_after: Option<Weights>,
    state: State,
    prev_hash: &'a str,
}

impl Event {
    /// Computes the hash this event should carry.
    pub fn compute_hash(&self) -> String {
        let hashed = Hashed {
            deployment_id: &self.deployment_id,
            service: &self.service,
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            kind: &self.kind,
            reason: &self.reason,
            weights_before: self.weights_before,
            weights_after: self.weights_after,
            state: self.state,
            prev_hash: &self.prev_hash,
        };
        // Serializing plain structs and enums to JSON cannot fail.
        let body = serde_json::to_vec(&hashed).expect("event serializes");
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(b"\n");
        hasher.update(&body);
        hex::encode(hasher.finalize())
    }
}

/// Seals drafts onto the end of a deployment's chain, whose head is
/// (`event_count`, `last_hash`). Returns the events and the new head.
pub fn seal(
    deployment_id: &DeploymentId,
    service: &ServiceName,
    event_count: u64,
    last_hash: &str,
    drafts: &[EventDraft],
) -> (Vec<Event>, u64, String) {
    let mut prev = last_hash.to_string();
    let mut events = Vec::with_capacity(drafts.len());
    for (i, draft) in drafts.iter().enumerate() {
        let mut event = Event {
            deployment_id: deployment_id.clone(),
            service: service.clone(),
            seq: event_count + i as u64,
            at: draft.at,
            actor: draft.actor.clone(),
            kind: draft.kind.clone(),
            reason: draft.reason.clone(),
            weights_before: draft.weights_before,
            weights_after: draft.weights_after,
            state: draft.state,
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        prev = event.hash.clone();
        events.push(event);
    }
    (events, event_count + drafts.len() as u64, prev)
}

/// A break in a history's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An event's content does not match its hash: it was edited.
    #[error("event {seq} was altered: its content no longer matches its hash")]
    Altered {
        /// The event's position.
        seq: u64,
    },
    /// An event does not link to the one before it: one was removed or reordered.
    #[error(
        "event {seq} does not follow event {expected_prev}: an event was removed, inserted or reordered"
    )]
    Broken {
        /// The event's position.
        seq: u64,
        /// The position it should have followed.
        expected_prev: u64,
    },
    /// The chain ends before the head the deployment records: its newest events are gone.
    #[error(
        "the history ends at {found} events but the deployment records {expected}: its newest events were removed"
    )]
    Truncated {
        /// How many events were found.
        found: u64,
        /// How many the deployment records.
        expected: u64,
    },
    /// The chain's last hash is not the head the deployment records.
    #[error("the history's last hash does not match the deployment's record")]
    HeadMismatch,
}

/// Checks a deployment's events, in stored order, against their hashes, their links
/// and, when given, the head recorded on the deployment.
pub fn verify_history(events: &[Event], head: Option<&Deployment>) -> Result<(), ChainError> {
    let mut prev_hash = GENESIS_HASH.to_string();
    for (i, event) in events.iter().enumerate() {
        let position = i as u64;
        if event.compute_hash() != event.hash {
            return Err(ChainError::Altered { seq: event.seq });
        }
        if event.seq != position || event.prev_hash != prev_hash {
            return Err(ChainError::Broken {
                seq: event.seq,
                expected_prev: position.saturating_sub(1),
            });
        }
        prev_hash = event.hash.clone();
    }
    if let Some(deployment) = head {
        let found = events.len() as u64;
        if found < deployment.event_count {
            return Err(ChainError::Truncated {
                found,
                expected: deployment.event_count,
            });
        }
        if found != deployment.event_count || prev_hash != deployment.last_hash {
            return Err(ChainError::HeadMismatch);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;
    use crate::config::{
        AlarmGate, ApprovalPolicy, ChatAccess, HealthGate, Notifications, Plan, Ramp, ServiceSpec,
        Step,
    };
    use crate::deployment::{Release, RollbackEnd};
    use crate::domain::{Slot, Weight};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(1_795_675_415_000 + secs * 1000)
    }

    fn deployment_id() -> DeploymentId {
        DeploymentId::new("web-v43").unwrap()
    }

    fn web() -> ServiceName {
        ServiceName::new("web").unwrap()
    }

    fn canary(percent: u32) -> Option<Weights> {
        Some(Weights::split(Slot::Green, Weight::new(percent).unwrap()))
    }

    /// A realistic history: a canary at 10% rolled back by an alarm.
    fn story() -> Vec<EventDraft> {
        let draft = |secs, actor: Actor, kind, reason: &str, before, after, state| EventDraft {
            at: at(secs),
            actor,
            kind,
            reason: reason.to_string(),
            weights_before: before,
            weights_after: after,
            state,
        };
        let ci = Actor::Ci {
            author: "alice".to_string(),
        };
        let alarm = Actor::Alarm {
            name: "web-5xx".to_string(),
        };
        let rolling_back = State::RollingBack {
            end: RollbackEnd::RolledBack,
        };
        vec![
            draft(
                0,
                ci,
                EventKind::Created {
                    version: "v43".to_string(),
                    commit: "0a1b2c3".to_string(),
                    committed_at: Some(at(-3600)),
                },
                "webhook",
                None,
                canary(0),
                State::Pending,
            ),
            draft(
                5,
                Actor::Schedule,
                EventKind::BaselineTaken {
                    firing: BTreeSet::new(),
                },
                "no alarm firing",
                canary(0),
                canary(0),
                State::Progressing { step: 0 },
            ),
            draft(
                10,
                Actor::Schedule,
                EventKind::GatePassed {
                    gate: "health".to_string(),
                },
                "2 of 2 targets healthy",
                canary(0),
                canary(0),
                State::Progressing { step: 0 },
            ),
            draft(
                15,
                Actor::Schedule,
                EventKind::WeightsSet,
                "canary step 1",
                canary(0),
                canary(10),
                State::Progressing { step: 0 },
            ),
            draft(
                20,
                Actor::Chat {
                    user_id: "42".to_string(),
                    name: "bob".to_string(),
                    roles: vec!["sre".to_string()],
                },
                EventKind::Approved {
                    count: 1,
                    quorum: 1,
                },
                "looks good",
                canary(10),
                canary(10),
                State::Progressing { step: 1 },
            ),
            draft(
                80,
                alarm,
                EventKind::RollbackStarted,
                "web-5xx in ALARM: 7.2% > 5%",
                canary(10),
                canary(0),
                rolling_back,
            ),
            draft(
                81,
                Actor::Schedule,
                EventKind::Finished,
                "traffic verified on blue",
                canary(0),
                canary(0),
                State::RolledBack,
            ),
        ]
    }

    /// A service with the fewest settings a deployment needs.
    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: web(),
            traffic: None,
            initial_live: Slot::Blue,
            strategy: crate::config::Strategy::AllAtOnce,
            plan: Plan {
                ramp: Ramp::Traffic,
                steps: vec![Step::SetWeight(Weight::FULL)],
                bake: Duration::ZERO,
            },
            health: HealthGate::default(),
            smoke: Vec::new(),
            alarms: AlarmGate::default(),
            metrics: Vec::new(),
            judge: None,
            approval: ApprovalPolicy::default(),
            notifications: Notifications::default(),
            chat: ChatAccess::default(),
        }
    }

    /// Seals `drafts` as the whole history of one deployment, and that deployment
    /// with the chain's head recorded on it.
    fn chain(drafts: &[EventDraft]) -> (Vec<Event>, Deployment) {
        let (events, count, last_hash) = seal(&deployment_id(), &web(), 0, GENESIS_HASH, drafts);
        let release = Release {
            version: "v43".to_string(),
            commit: "0a1b2c3".to_string(),
            committed_at: None,
            author: "alice".to_string(),
            author_chat_id: None,
        };
        let mut deployment =
            Deployment::new(deployment_id(), spec(), 1, release, Slot::Blue, at(0));
        deployment.event_count = count;
        deployment.last_hash = last_hash;
        (events, deployment)
    }

    /// Changes one field of an event in place.
    type Edit = fn(&mut Event);

    /// One edit per field of an event, each guaranteed to change the field's value.
    const FIELD_EDITS: &[(&str, Edit)] = &[
        ("deployment_id", |e| {
            e.deployment_id = DeploymentId::new("web-v44").unwrap()
        }),
        ("service", |e| e.service = ServiceName::new("api").unwrap()),
        ("seq", |e| e.seq += 1),
        ("at", |e| e.at = e.at.plus(Duration::from_millis(1))),
        ("actor", |e| {
            e.actor = match e.actor {
                Actor::Cli { .. } => Actor::Schedule,
                _ => Actor::Cli {
                    user: "mallory".to_string(),
                },
            }
        }),
        ("kind", |e| {
            e.kind = match e.kind {
                EventKind::WeightsVerified => EventKind::Drift,
                _ => EventKind::WeightsVerified,
            }
        }),
        ("reason", |e| e.reason.push_str(" (edited)")),
        ("weights_before", |e| {
            e.weights_before = if e.weights_before == canary(100) {
                canary(0)
            } else {
                canary(100)
            }
        }),
        ("weights_after", |e| {
            e.weights_after = if e.weights_after == canary(100) {
                canary(0)
            } else {
                canary(100)
            }
        }),
        ("state", |e| {
            e.state = if e.state == State::Succeeded {
                State::RolledBack
            } else {
                State::Succeeded
            }
        }),
        ("prev_hash", |e| {
            e.prev_hash = if e.prev_hash == GENESIS_HASH {
                "f".repeat(64)
            } else {
                GENESIS_HASH.to_string()
            }
        }),
        ("hash", |e| e.hash = "f".repeat(64)),
    ];

    /// A forged event for position `seq`, linked to the event before it and carrying
    /// a correctly recomputed hash, as someone who knows the scheme would write it.
    fn forged(events: &[Event], seq: usize) -> Event {
        let mut forged = events[seq.min(events.len() - 1)].clone();
        forged.seq = seq as u64;
        forged.prev_hash = match seq {
            0 => GENESIS_HASH.to_string(),
            _ => events[seq - 1].hash.clone(),
        };
        forged.kind = EventKind::Approved {
            count: 1,
            quorum: 1,
        };
        forged.reason = "approved by nobody".to_string();
        forged.hash = forged.compute_hash();
        forged
    }

    #[test]
    fn a_sealed_chain_verifies() {
        let (events, deployment) = chain(&story());
        assert_eq!(events.len(), 7);
        assert_eq!(events[0].prev_hash, GENESIS_HASH);
        assert_eq!(verify_history(&events, None), Ok(()));
        assert_eq!(verify_history(&events, Some(&deployment)), Ok(()));
        assert_eq!(verify_history(&[], None), Ok(()));
    }

    #[test]
    fn sealing_in_batches_gives_the_same_chain() {
        let drafts = story();
        let (whole, _, whole_head) = seal(&deployment_id(), &web(), 0, GENESIS_HASH, &drafts);
        let (mut first, count, head) =
            seal(&deployment_id(), &web(), 0, GENESIS_HASH, &drafts[..3]);
        let (rest, count, head) = seal(&deployment_id(), &web(), count, &head, &drafts[3..]);
        first.extend(rest);
        assert_eq!(first, whole);
        assert_eq!(count, 7);
        assert_eq!(head, whole_head);
    }

    #[test]
    fn a_chain_survives_a_trip_through_json() {
        let (events, deployment) = chain(&story());
        let json = serde_json::to_string(&events).unwrap();
        let read: Vec<Event> = serde_json::from_str(&json).unwrap();
        assert_eq!(read, events);
        assert_eq!(verify_history(&read, Some(&deployment)), Ok(()));
    }

    #[test]
    fn editing_any_field_of_any_event_is_detected_as_altered() {
        let (events, deployment) = chain(&story());
        for (field, edit) in FIELD_EDITS {
            for index in 0..events.len() {
                let mut edited = events.clone();
                edit(&mut edited[index]);
                assert_ne!(
                    edited[index], events[index],
                    "the {field} edit changed nothing"
                );
                let seq = edited[index].seq;
                for head in [None, Some(&deployment)] {
                    assert_eq!(
                        verify_history(&edited, head),
                        Err(ChainError::Altered { seq }),
                        "{field} of event {index}"
                    );
                }
            }
        }
    }

    #[test]
    fn removing_an_event_before_the_newest_breaks_the_chain() {
        let (events, _) = chain(&story());
        for index in 0..events.len() - 1 {
            let mut removed = events.clone();
            removed.remove(index);
            assert_eq!(
                verify_history(&removed, None),
                Err(ChainError::Broken {
                    seq: index as u64 + 1,
                    expected_prev: (index as u64).saturating_sub(1),
                }),
                "removed event {index}"
            );
        }
    }

    #[test]
    fn swapping_two_events_breaks_the_chain() {
        let (events, _) = chain(&story());
        for i in 0..events.len() {
            for j in i + 1..events.len() {
                let mut swapped = events.clone();
                swapped.swap(i, j);
                assert_eq!(
                    verify_history(&swapped, None),
                    Err(ChainError::Broken {
                        seq: j as u64,
                        expected_prev: (i as u64).saturating_sub(1),
                    }),
                    "swapped events {i} and {j}"
                );
            }
        }
    }

    #[test]
    fn inserting_a_forged_event_with_a_valid_hash_breaks_the_chain() {
        let (events, deployment) = chain(&story());
        for index in 0..events.len() {
            let fake = forged(&events, index);
            // The forgery is internally consistent: only the link after it gives it away.
            assert_eq!(fake.compute_hash(), fake.hash);
            let mut tampered = events.clone();
            tampered.insert(index, fake);
            for head in [None, Some(&deployment)] {
                assert_eq!(
                    verify_history(&tampered, head),
                    Err(ChainError::Broken {
                        seq: index as u64,
                        expected_prev: index as u64,
                    }),
                    "forged event at {index}"
                );
            }
        }
    }

    #[test]
    fn removing_the_newest_events_is_caught_by_the_head() {
        let (events, deployment) = chain(&story());
        for kept in 0..events.len() {
            let truncated = &events[..kept];
            // The chain alone cannot tell: every remaining link is intact.
            assert_eq!(verify_history(truncated, None), Ok(()));
            assert_eq!(
                verify_history(truncated, Some(&deployment)),
                Err(ChainError::Truncated {
                    found: kept as u64,
                    expected: events.len() as u64,
                }),
                "kept {kept} events"
            );
        }
    }

    #[test]
    fn a_rewritten_chain_is_caught_by_the_head() {
        let (events, deployment) = chain(&story());

        // Edit an event and recompute every hash after it: a consistent, different chain.
        let mut drafts = story();
        drafts[5].reason = "rolled back by hand".to_string();
        let (rewritten, _) = chain(&drafts);
        assert_eq!(verify_history(&rewritten, None), Ok(()));
        assert_eq!(
            verify_history(&rewritten, Some(&deployment)),
            Err(ChainError::HeadMismatch)
        );

        // A forged event appended after the newest one.
        let mut appended = events.clone();
        appended.push(forged(&events, events.len()));
        assert_eq!(verify_history(&appended, None), Ok(()));
        assert_eq!(
            verify_history(&appended, Some(&deployment)),
            Err(ChainError::HeadMismatch)
        );

        // Another deployment's valid history passed off as this one's.
        let (other, _, _) = seal(
            &DeploymentId::new("web-v42").unwrap(),
            &web(),
            0,
            GENESIS_HASH,
            &story(),
        );
        assert_eq!(verify_history(&other, None), Ok(()));
        assert_eq!(
            verify_history(&other, Some(&deployment)),
            Err(ChainError::HeadMismatch)
        );
    }

    fn any_actor() -> impl Strategy<Value = Actor> {
        prop_oneof![
            Just(Actor::Schedule),
            "[a-z]{1,8}".prop_map(|author| Actor::Ci { author }),
            (
                "[0-9]{1,6}",
                "[a-z]{1,8}",
                prop::collection::vec("[a-z]{1,4}", 0..3)
            )
                .prop_map(|(user_id, name, roles)| Actor::Chat {
                    user_id,
                    name,
                    roles,
                }),
            "[a-z0-9-]{1,12}".prop_map(|name| Actor::Alarm { name }),
            "[a-z]{1,8}".prop_map(|user| Actor::Cli { user }),
        ]
    }

    fn any_timestamp() -> impl Strategy<Value = Timestamp> {
        // Up to the year 2096, well inside what RFC 3339 formatting handles.
        (0i64..4_000_000_000_000).prop_map(Timestamp::from_millis)
    }

    fn any_kind() -> impl Strategy<Value = EventKind> {
        prop_oneof![
            (
                "v[0-9]{1,3}",
                "[0-9a-f]{7}",
                prop::option::of(any_timestamp())
            )
                .prop_map(|(version, commit, committed_at)| EventKind::Created {
                    version,
                    commit,
                    committed_at,
                }),
            "[a-z]{1,8}".prop_map(|gate| EventKind::GatePassed { gate }),
            (0usize..10).prop_map(|step| EventKind::StepStarted { step }),
            Just(EventKind::WeightsSet),
            Just(EventKind::WeightsVerified),
            Just(EventKind::Drift),
            Just(EventKind::RollbackStarted),
            (1u32..5).prop_map(|attempts| EventKind::RollbackRetrying { attempts }),
            Just(EventKind::Finished),
        ]
    }

    fn any_state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Pending),
            (0usize..5).prop_map(|step| State::Progressing { step }),
            any_timestamp().prop_map(|until| State::Baking { until }),
            Just(State::RollingBack {
                end: RollbackEnd::RolledBack
            }),
            Just(State::Succeeded),
            Just(State::RolledBack),
            Just(State::Aborted),
            Just(State::Failed),
        ]
    }

    fn any_draft() -> impl Strategy<Value = EventDraft> {
        let weights = || prop::option::of((0u32..=100).prop_map(|w| canary(w).unwrap()));
        (
            any_timestamp(),
            any_actor(),
            any_kind(),
            ".{0,24}",
            weights(),
            weights(),
            any_state(),
        )
            .prop_map(
                |(at, actor, kind, reason, weights_before, weights_after, state)| EventDraft {
                    at,
                    actor,
                    kind,
                    reason,
                    weights_before,
                    weights_after,
                    state,
                },
            )
    }

    /// One way of tampering with a stored history.
    #[derive(Debug, Clone)]
    enum Mutation {
        /// Edit one field of one event.
        Edit { event: Index, field: Index },
        /// Delete one event.
        Remove(Index),
        /// Exchange two events.
        Swap(Index, Index),
        /// Insert a forged event with a recomputed hash before the chosen position.
        InsertForged(Index),
        /// Edit one draft and seal the whole chain again.
        Reseal(Index),
    }

    fn any_mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<Index>(), any::<Index>())
                .prop_map(|(event, field)| Mutation::Edit { event, field }),
            any::<Index>().prop_map(Mutation::Remove),
            (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
            any::<Index>().prop_map(Mutation::InsertForged),
            any::<Index>().prop_map(Mutation::Reseal),
        ]
    }

    proptest! {
        #[test]
        fn any_sealed_chain_verifies_after_a_trip_through_json(
            drafts in prop::collection::vec(any_draft(), 0..12),
        ) {
            // Stores keep events as JSON; reading them back must give the same hashes.
            let (events, deployment) = chain(&drafts);
            let json = serde_json::to_string(&events).unwrap();
            let read: Vec<Event> = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&read, &events);
            prop_assert_eq!(verify_history(&read, Some(&deployment)), Ok(()));
        }

        #[test]
        fn any_single_tampering_is_detected(
            drafts in prop::collection::vec(any_draft(), 2..12),
            mutation in any_mutation(),
        ) {
            let (events, deployment) = chain(&drafts);
            prop_assert_eq!(verify_history(&events, Some(&deployment)), Ok(()));
            let n = events.len();
            let mut tampered = events.clone();
            let result = match &mutation {
                Mutation::Edit { event, field } => {
                    let (_, edit) = FIELD_EDITS[field.index(FIELD_EDITS.len())];
                    let index = event.index(n);
                    edit(&mut tampered[index]);
                    let result = verify_history(&tampered, Some(&deployment));
                    prop_assert!(matches!(result, Err(ChainError::Altered { .. })), "{:?}", result);
                    result
                }
                Mutation::Remove(index) => {
                    let index = index.index(n);
                    tampered.remove(index);
                    let result = verify_history(&tampered, Some(&deployment));
                    if index == n - 1 {
                        prop_assert!(matches!(result, Err(ChainError::Truncated { .. })), "{:?}", result);
                    } else {
                        prop_assert!(matches!(result, Err(ChainError::Broken { .. })), "{:?}", result);
                    }
                    result
                }
                Mutation::Swap(i, j) => {
                    let i = i.index(n);
                    let mut j = j.index(n);
                    if i == j {
                        j = (i + 1) % n;
                    }
                    tampered.swap(i, j);
                    let result = verify_history(&tampered, Some(&deployment));
                    prop_assert!(matches!(result, Err(ChainError::Broken { .. })), "{:?}", result);
                    result
                }
                Mutation::InsertForged(index) => {
                    let index = index.index(n + 1);
                    tampered.insert(index, forged(&events, index));
                    let result = verify_history(&tampered, Some(&deployment));
                    if index == n {
                        prop_assert_eq!(&result, &Err(ChainError::HeadMismatch));
                    } else {
                        prop_assert!(matches!(result, Err(ChainError::Broken { .. })), "{:?}", result);
                    }
                    result
                }
                Mutation::Reseal(index) => {
                    let mut drafts = drafts.clone();
                    drafts[index.index(n)].reason.push('!');
                    let (resealed, _) = chain(&drafts);
                    let result = verify_history(&resealed, Some(&deployment));
                    prop_assert_eq!(&result, &Err(ChainError::HeadMismatch));
                    result
                }
            };
            prop_assert!(result.is_err(), "{:?} went unnoticed", mutation);
        }
    }
}
