//! Randomized races: 2 to 8 drivers reconcile one deployment at once over one store.
//!
//! The store yields at every call, and a seeded scheduler picks which driver runs next,
//! so each seed is one interleaving of the drivers' store calls. Whatever the
//! interleaving, the history must be exactly the one a single driver writes: no
//! transition lost, none duplicated.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ripcord_core::config::Step;
use ripcord_core::deployment::{CommandKind, State};
use ripcord_core::domain::{DeploymentId, Slot, Weight, Weights};
use ripcord_core::driver::PassReport;
use ripcord_core::history::{Actor, verify_history};
use ripcord_core::memory::{MemoryStore, Sandbox, test_service};
use ripcord_core::time::Timestamp;

const T0: Timestamp = Timestamp::from_millis(1_795_675_415_000);
const INTERLEAVINGS: u64 = 10_000;

/// SplitMix64: small, seedable and good enough to pick schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Pass<'a> = Pin<Box<dyn Future<Output = PassReport> + 'a>>;

/// Polls the passes in a random order, one step (up to the next store call) at a time.
fn interleave(mut passes: Vec<Option<Pass<'_>>>, rng: &mut Rng) -> Vec<PassReport> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut reports = Vec::new();
    loop {
        let live: Vec<usize> = (0..passes.len()).filter(|&i| passes[i].is_some()).collect();
        if live.is_empty() {
            return reports;
        }
        let pick = live[rng.below(live.len() as u64) as usize];
        let pass = passes[pick].as_mut().expect("picked a live pass");
        if let Poll::Ready(report) = pass.as_mut().poll(&mut cx) {
            reports.push(report);
            passes[pick] = None;
        }
    }
}

fn steps() -> Vec<Step> {
    vec![
        Step::SetWeight(Weight::new(10).unwrap()),
        Step::Pause(Duration::from_secs(10)),
        Step::SetWeight(Weight::new(50).unwrap()),
        Step::Pause(Duration::from_secs(10)),
        Step::SetWeight(Weight::new(100).unwrap()),
    ]
}

/// What a history says, without hashes and times: kind, state and weights per event.
fn story(sb: &Sandbox, id: &DeploymentId) -> Vec<String> {
    sb.store
        .events_of(id)
        .iter()
        .map(|e| format!("{} {} {:?}", e.kind.name(), e.state, e.weights_after))
        .collect()
}

/// Runs one deployment with `drivers` concurrent passes per round; a rollback command
/// arrives before round `rollback_at`, if given.
fn scenario(
    drivers: usize,
    rollback_at: Option<usize>,
    rng: Option<&mut Rng>,
) -> (Sandbox, DeploymentId, u32) {
    let mut conflicts = 0;
    let store = if rng.is_some() {
        MemoryStore::with_yield_points()
    } else {
        MemoryStore::new()
    };
    let mut spec = test_service("web", steps());
    spec.plan.bake = Duration::from_secs(10);
    let mut services = std::collections::BTreeMap::new();
    services.insert(spec.name.clone(), spec);
    let config = ripcord_core::config::Config {
        services,
        authors: Default::default(),
        flags: Default::default(),
    };
    let sb = Sandbox::with_store(config, T0, store);
    let id = sb.deploy("web", "v2", "octocat").unwrap().id;
    let mut rng = rng;
    for round in 0..20 {
        if rollback_at == Some(round) {
            sb.command(
                &id,
                Actor::Cli { user: "ops".into() },
                CommandKind::Rollback,
            );
        }
        match rng.as_deref_mut() {
            Some(rng) => {
                let passes: Vec<Option<Pass<'_>>> = (0..drivers)
                    .map(|_| {
                        let driver = sb.driver();
                        let id = id.clone();
                        Some(
                            Box::pin(async move { driver.reconcile(&id).await.unwrap() })
                                as Pass<'_>,
                        )
                    })
                    .collect();
                conflicts += interleave(passes, rng)
                    .iter()
                    .map(|r| r.conflicts)
                    .sum::<u32>();
            }
            None => {
                sb.pass(&id);
            }
        }
        if sb.deployment(&id).state.is_terminal() {
            break;
        }
        sb.clock.advance(Duration::from_secs(10));
    }
    (sb, id, conflicts)
}

#[test]
fn racing_drivers_write_exactly_the_history_one_driver_writes() {
    let references: Vec<(Vec<String>, u64)> = (0..8)
        .map(|round| {
            let rollback_at = (round > 0).then(|| round - 1);
            let (sb, id, _) = scenario(1, rollback_at, None);
            (story(&sb, &id), sb.store.commit_count())
        })
        .collect();
    assert_eq!(
        references[0]
            .0
            .last()
            .map(|s| s.starts_with("finished succeeded")),
        Some(true)
    );
    assert!(
        references[3]
            .0
            .iter()
            .any(|s| s.starts_with("rollback_started"))
    );

    let mut rng = Rng(0x5EED);
    let mut conflicts = 0u64;
    for _ in 0..INTERLEAVINGS {
        let drivers = 2 + rng.below(7) as usize;
        let variant = rng.below(references.len() as u64) as usize;
        let rollback_at = (variant > 0).then(|| variant - 1);
        let (sb, id, lost) = scenario(drivers, rollback_at, Some(&mut rng));
        conflicts += u64::from(lost);
        let d = sb.deployment(&id);
        let events = sb.store.events_of(&id);
        verify_history(&events, Some(&d)).unwrap();
        let (expected, expected_commits) = &references[variant];
        assert_eq!(
            &story(&sb, &id),
            expected,
            "{drivers} drivers, variant {variant}"
        );
        assert_eq!(
            sb.store.commit_count(),
            *expected_commits,
            "one commit per transition"
        );
        let end = if d.state == State::Succeeded {
            Weights::all_on(Slot::Green)
        } else {
            Weights::all_on(Slot::Blue)
        };
        assert_eq!(sb.world.router.current(&d.service), Some(end));
    }
    // The drivers really raced: many commits were lost and re-decided.
    assert!(conflicts > INTERLEAVINGS, "only {conflicts} conflicts");
}
