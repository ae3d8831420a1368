//! Evaluation: is a flag on for a context, and which variant does the context get.
//!
//! The rules are Unleash's, so that a flag carried over from Unleash turns on for the
//! same users and hands them the same variants:
//!
//! - a flag is on when its switch is on, its dependencies hold, and it has no
//!   strategies or one of them holds (constraints and segments first, then the
//!   strategy's own rule);
//! - rollouts bucket `"{groupId}:{value}"` with MurmurHash3 (seed 0) into 1..=100 and
//!   let a context in when its bucket is at most the percentage;
//! - variants come from the first strategy that held when it has some, from the flag
//!   otherwise: an override wins, else the bucket of `"{groupId}:{value}"` (seed
//!   86028157) over the total weight picks one, walking the list in order.
//!
//! Evaluation reads no clock and draws randomness only from the [`RandomSource`] it is
//! given, so it is a pure function of the flags, the context and that source.

use std::borrow::Cow;

use super::FlagSet;
use super::context::Context;
use super::model::{
    AddressEntry, Flag, Outcome, Stickiness, Strategy, StrategyKind, Variant, VariantResult,
};
use super::murmur::{VARIANT_SEED, normalized_hash, rollout_bucket};
use crate::domain::Percent;

/// Where the randomness of `random` stickiness and `gradualRolloutRandom` comes from.
///
/// Passing it in keeps evaluation a function of its inputs: tests and replays pass a
/// seeded source, services pass one seeded from the operating system.
pub trait RandomSource {
    /// The next random number, uniform over all `u32` values.
    fn next_u32(&mut self) -> u32;
}

/// A small, fast, seeded generator (SplitMix64). Not for secrets: it only decides who
/// falls into a random rollout.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    state: u64,
}

impl SeededRandom {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl RandomSource for SeededRandom {
    fn next_u32(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}

/// One evaluation's inputs.
pub(super) struct Evaluator<'a> {
    pub(super) flags: &'a FlagSet,
    pub(super) context: &'a Context,
    pub(super) random: &'a mut dyn RandomSource,
}

/// Why a flag is on: the strategy that held, or none when the flag has no strategies.
type Held<'a> = Option<&'a Strategy>;

impl<'a> Evaluator<'a> {
    /// Evaluates a flag: whether it is on, and the variant handed out.
    pub(super) fn flag(&mut self, flag: &'a Flag) -> Outcome<'a> {
        match self.held(flag) {
            None => Outcome::Off,
            Some(held) => self
                .variant(flag, held)
                .map_or(Outcome::On, Outcome::Variant),
        }
    }

    /// Whether a flag is on, without picking its variant: what `is_enabled` asks,
    /// answered without building a result.
    pub(super) fn is_on(&mut self, flag: &'a Flag) -> bool {
        self.held(flag).is_some()
    }

    /// `None` when the flag is off; otherwise why it is on.
    fn held(&mut self, flag: &'a Flag) -> Option<Held<'a>> {
        if !flag.enabled || !self.dependencies_hold(flag) {
            return None;
        }
        if flag.strategies.is_empty() {
            return Some(None);
        }
        flag.strategies
            .iter()
            .find(|strategy| self.strategy_holds(flag, strategy))
            .map(Some)
    }

    /// The variant a flag that is on hands out: the held strategy's variants when it
    /// has some, the flag's own otherwise; `None` when the list has no weight.
    fn variant(&mut self, flag: &'a Flag, held: Held<'a>) -> Option<&'a Variant> {
        match held {
            Some(strategy) if !strategy.variants.is_empty() => {
                let group_id = strategy_group_id(strategy).unwrap_or(&flag.name);
                let stickiness = strategy.variants[0]
                    .stickiness
                    .as_ref()
                    .or_else(|| strategy_stickiness(strategy))
                    .unwrap_or(&Stickiness::Default);
                self.pick_variant(&strategy.variants, group_id, stickiness)
            }
            _ => {
                let stickiness = flag
                    .variants
                    .first()
                    .and_then(|variant| variant.stickiness.as_ref())
                    .unwrap_or(&Stickiness::Default);
                self.pick_variant(&flag.variants, &flag.name, stickiness)
            }
        }
    }

    /// Unleash allows one level of dependency: a parent that itself depends on another
    /// flag (which includes any cycle) leaves the dependency unmet, as does a parent
    /// that does not exist.
    fn dependencies_hold(&mut self, flag: &Flag) -> bool {
        let flags = self.flags;
        flag.dependencies.iter().all(|dependency| {
            let Some(parent) = flags.flag(&dependency.flag) else {
                return false;
            };
            if !parent.dependencies.is_empty() {
                return false;
            }
            let Some(held) = self.held(parent) else {
                return !dependency.enabled;
            };
            if !dependency.enabled {
                return false;
            }
            dependency.variants.is_empty() || {
                let variant = self.variant(parent, held);
                let name = variant.map_or(VariantResult::DISABLED, |variant| &variant.name);
                dependency.variants.iter().any(|wanted| wanted == name)
            }
        })
    }

    fn strategy_holds(&mut self, flag: &Flag, strategy: &Strategy) -> bool {
        let context = self.context;
        let segments_hold = strategy.segments.iter().all(|id| {
            self.flags.segment(id).is_some_and(|segment| {
                segment
                    .constraints
                    .iter()
                    .all(|constraint| constraint.holds(context))
            })
        });
        segments_hold
            && strategy
                .constraints
                .iter()
                .all(|constraint| constraint.holds(context))
            && self.rule_holds(flag, &strategy.kind)
    }

    fn rule_holds(&mut self, flag: &Flag, kind: &StrategyKind) -> bool {
        let context = self.context;
        match kind {
            StrategyKind::Default => true,
            StrategyKind::UserWithId { user_ids } => context
                .field("userId")
                .is_some_and(|user| user_ids.iter().any(|id| *id == user)),
            StrategyKind::GradualRolloutUserId {
                percentage,
                group_id,
            } => context.field("userId").is_some_and(|user| {
                in_rollout(*percentage, group_id.as_deref().unwrap_or(""), &user)
            }),
            StrategyKind::GradualRolloutSessionId {
                percentage,
                group_id,
            } => context.field("sessionId").is_some_and(|session| {
                in_rollout(*percentage, group_id.as_deref().unwrap_or(""), &session)
            }),
            StrategyKind::GradualRolloutRandom { percentage } => {
                let draw = self.random.next_u32() % 100 + 1;
                percentage.get() >= f64::from(draw)
            }
            StrategyKind::FlexibleRollout {
                rollout,
                stickiness,
                group_id,
            } => {
                let value = match stickiness {
                    Stickiness::Default => context
                        .field("userId")
                        .or_else(|| context.field("sessionId"))
                        .unwrap_or_else(|| Cow::Owned(self.random_value())),
                    Stickiness::Random => Cow::Owned(self.random_value()),
                    Stickiness::Field(name) => match context.field(name) {
                        Some(value) => value,
                        None => return false,
                    },
                };
                in_rollout(*rollout, group_id.as_deref().unwrap_or(&flag.name), &value)
            }
            StrategyKind::RemoteAddress { addresses } => {
                context.field("remoteAddress").is_some_and(|address| {
                    addresses.iter().any(|entry| match entry {
                        AddressEntry::Range(range) => range.contains_text(&address),
                        AddressEntry::Other(text) => *text == address,
                    })
                })
            }
            StrategyKind::Unknown { .. } => false,
        }
    }

    /// Unleash's variant pick: no variant when the weights total 0; otherwise the
    /// first variant with a matching override, else the one whose share of the
    /// weight holds the context's bucket.
    fn pick_variant<'v>(
        &mut self,
        variants: &'v [Variant],
        group_id: &str,
        stickiness: &Stickiness,
    ) -> Option<&'v Variant> {
        let total: u64 = variants
            .iter()
            .map(|variant| u64::from(variant.weight))
            .sum();
        let total = u32::try_from(total).ok().filter(|total| *total > 0)?;
        let context = self.context;
        let overridden = variants.iter().find(|variant| {
            variant.overrides.iter().any(|rule| {
                context
                    .value(&rule.context_name)
                    .is_some_and(|value| rule.values.iter().any(|v| *v == value))
            })
        });
        if overridden.is_some() {
            return overridden;
        }
        let value = match stickiness {
            Stickiness::Default => ["userId", "sessionId", "remoteAddress"]
                .into_iter()
                .find_map(|field| context.field(field))
                .unwrap_or_else(|| Cow::Owned(self.random_value())),
            Stickiness::Random => Cow::Owned(self.random_value()),
            Stickiness::Field(name) => context
                .field(name)
                .unwrap_or_else(|| Cow::Owned(self.random_value())),
        };
        let target = normalized_hash(group_id, &value, total, VARIANT_SEED);
        let mut reached = 0u32;
        variants.iter().find(|variant| {
            if variant.weight == 0 {
                return false;
            }
            reached += variant.weight;
            reached >= target
        })
    }

    /// A random stand-in for a missing stickiness value, hashed like any other.
    fn random_value(&mut self) -> String {
        (self.random.next_u32() % 10_000 + 1).to_string()
    }
}

/// Whether `id` is within the first `percentage` of `group_id`'s buckets.
fn in_rollout(percentage: Percent, group_id: &str, id: &str) -> bool {
    percentage.get() > 0.0 && f64::from(rollout_bucket(group_id, id)) <= percentage.get()
}

/// The hash group a strategy's variants use: its `groupId`, if it has one.
fn strategy_group_id(strategy: &Strategy) -> Option<&str> {
    match &strategy.kind {
        StrategyKind::FlexibleRollout { group_id, .. }
        | StrategyKind::GradualRolloutUserId { group_id, .. }
        | StrategyKind::GradualRolloutSessionId { group_id, .. } => group_id.as_deref(),
        _ => None,
    }
}

/// The stickiness a strategy's variants inherit: the strategy's own, if it has one.
fn strategy_stickiness(strategy: &Strategy) -> Option<&Stickiness> {
    match &strategy.kind {
        StrategyKind::FlexibleRollout { stickiness, .. } => Some(stickiness),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::model::{Dependency, Evaluation, Override, Payload, WeightType};
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    fn percent(value: f64) -> Percent {
        Percent::new(value).unwrap()
    }

    fn flag(name: &str, strategies: Vec<Strategy>, variants: Vec<Variant>) -> Flag {
        Flag {
            name: name.to_string(),
            enabled: true,
            description: None,
            strategies,
            variants,
            dependencies: Vec::new(),
        }
    }

    fn strategy(kind: StrategyKind) -> Strategy {
        Strategy {
            kind,
            constraints: Vec::new(),
            segments: Vec::new(),
            variants: Vec::new(),
        }
    }

    fn rollout(value: f64, group_id: &str) -> Strategy {
        strategy(StrategyKind::FlexibleRollout {
            rollout: percent(value),
            stickiness: Stickiness::Default,
            group_id: Some(group_id.to_string()),
        })
    }

    fn variant(name: &str, weight: u32) -> Variant {
        Variant {
            name: name.to_string(),
            weight,
            weight_type: WeightType::Variable,
            stickiness: None,
            payload: Some(Payload {
                kind: "string".to_string(),
                value: format!("{name}-payload"),
            }),
            overrides: Vec::new(),
        }
    }

    fn set(flags: Vec<Flag>) -> FlagSet {
        FlagSet::new(flags, Vec::new()).unwrap()
    }

    fn user(id: &str) -> Context {
        Context {
            user_id: Some(id.to_string()),
            ..Context::default()
        }
    }

    fn evaluate(flags: &FlagSet, name: &str, context: &Context) -> Evaluation {
        flags
            .evaluate(name, context, &mut SeededRandom::new(7))
            .expect("the flag exists")
    }

    proptest! {
        /// Raising a rollout never turns anyone off: whoever is in at p% is in at any
        /// q >= p for the same group, which is what lets a ramp only ever add users.
        #[test]
        fn rollouts_are_monotonic(
            group in "[a-zA-Z0-9._-]{0,24}",
            id in "\\PC{1,24}",
            p in 0u32..=100,
            q in 0u32..=100,
        ) {
            let (low, high) = (p.min(q), p.max(q));
            let flags = set(vec![
                flag("low", vec![rollout(f64::from(low), &group)], Vec::new()),
                flag("high", vec![rollout(f64::from(high), &group)], Vec::new()),
            ]);
            let context = user(&id);
            if evaluate(&flags, "low", &context).enabled {
                prop_assert!(evaluate(&flags, "high", &context).enabled);
            }
            prop_assert_eq!(
                evaluate(&flags, "high", &context).enabled,
                high > 0 && rollout_bucket(&group, &id) <= high
            );
        }

        /// A list of variants with some weight always hands one out, and the same
        /// context always gets the same one.
        #[test]
        fn variants_are_sticky(
            weights in proptest::collection::vec(0u32..50, 1..6),
            id in "[0-9a-z]{1,12}",
        ) {
            let variants: Vec<Variant> = weights
                .iter()
                .enumerate()
                .map(|(index, weight)| variant(&format!("v{index}"), *weight))
                .collect();
            let total: u32 = weights.iter().sum();
            let flags = set(vec![flag("f", Vec::new(), variants)]);
            let first = evaluate(&flags, "f", &user(&id)).variant;
            let second = flags.variant("f", &user(&id), &mut SeededRandom::new(99));
            prop_assert_eq!(&first, &second);
            prop_assert_eq!(first.enabled, total > 0);
            if first.enabled {
                let index: usize = first.name[1..].parse().unwrap();
                prop_assert!(weights[index] > 0, "a variant of weight 0 was picked");
            }
        }
    }

    #[test]
    fn rollout_shares_are_close_to_their_percentage() {
        let flags = set(vec![flag("f", vec![rollout(30.0, "share")], Vec::new())]);
        let on = (0..10_000)
            .filter(|id| evaluate(&flags, "f", &user(&id.to_string())).enabled)
            .count();
        assert!(
            (2_800..=3_200).contains(&on),
            "{on} of 10,000 users are in at 30%"
        );
    }

    #[test]
    fn variant_shares_follow_their_weights() {
        let flags = set(vec![flag(
            "f",
            Vec::new(),
            vec![variant("a", 200), variant("b", 300), variant("c", 500)],
        )]);
        let mut counts = [0usize; 3];
        for id in 0..10_000 {
            let name = evaluate(&flags, "f", &user(&id.to_string())).variant.name;
            counts[usize::from(name.as_bytes()[0] - b'a')] += 1;
        }
        for (count, expected) in counts.iter().zip([2_000, 3_000, 5_000]) {
            assert!(count.abs_diff(expected) < 250, "{counts:?}");
        }
    }

    #[test]
    fn random_rollouts_use_the_given_source() {
        // With a source that always draws the same number the outcome is fixed, which
        // is what keeps evaluation a function of its inputs.
        struct Always(u32);
        impl RandomSource for Always {
            fn next_u32(&mut self) -> u32 {
                self.0
            }
        }
        let flags = set(vec![flag(
            "f",
            vec![strategy(StrategyKind::GradualRolloutRandom {
                percentage: percent(50.0),
            })],
            Vec::new(),
        )]);
        let context = Context::default();
        // Draw 49 is the 50th bucket (in); draw 50 is the 51st (out).
        assert!(flags.is_enabled("f", &context, &mut Always(49)));
        assert!(!flags.is_enabled("f", &context, &mut Always(50)));
        let mut seeded = SeededRandom::new(1);
        let on = (0..10_000)
            .filter(|_| flags.is_enabled("f", &context, &mut seeded))
            .count();
        assert!((4_700..=5_300).contains(&on), "{on}");
    }

    #[test]
    fn overrides_win_over_buckets() {
        let mut favoured = variant("favoured", 1);
        favoured.overrides.push(Override {
            context_name: "plan".into(),
            values: vec!["gold".to_string()],
        });
        let flags = set(vec![flag(
            "f",
            Vec::new(),
            vec![variant("common", 999), favoured],
        )]);
        let mut context = user("1");
        context
            .properties
            .insert("plan".to_string(), "gold".to_string());
        for id in 0..50 {
            context.user_id = Some(id.to_string());
            assert_eq!(evaluate(&flags, "f", &context).variant.name, "favoured");
        }
    }

    #[test]
    fn dependencies_need_their_parent_in_the_right_state() {
        let parent = flag("parent", Vec::new(), vec![variant("blue", 1)]);
        let mut off_parent = flag("off", Vec::new(), Vec::new());
        off_parent.enabled = false;
        let child = |name: &str, on: &str, enabled: bool, variants: &[&str]| {
            let mut child = flag(name, Vec::new(), Vec::new());
            child.dependencies.push(Dependency {
                flag: on.to_string(),
                enabled,
                variants: variants.iter().map(|v| v.to_string()).collect(),
            });
            child
        };
        let flags = set(vec![
            parent,
            off_parent,
            child("needs-parent", "parent", true, &[]),
            child("needs-blue", "parent", true, &["blue"]),
            child("needs-red", "parent", true, &["red"]),
            child("needs-off", "off", false, &[]),
            child("needs-missing", "missing", true, &[]),
            child("needs-child", "needs-parent", true, &[]),
        ]);
        let context = user("1");
        let expected = [
            ("needs-parent", true),
            ("needs-blue", true),
            ("needs-red", false),
            ("needs-off", true),
            ("needs-missing", false),
            ("needs-child", false),
        ];
        for (name, on) in expected {
            let evaluation = evaluate(&flags, name, &context);
            assert_eq!(evaluation.enabled, on, "{name}");
            assert_eq!(evaluation.variant.feature_enabled, on, "{name}");
            let mut random = SeededRandom::new(7);
            assert_eq!(flags.is_enabled(name, &context, &mut random), on, "{name}");
        }
    }

    #[test]
    fn strategy_variants_replace_the_flags_own() {
        let mut held = rollout(100.0, "g");
        held.variants.push(variant("from-strategy", 1));
        let flags = set(vec![flag("f", vec![held], vec![variant("from-flag", 1)])]);
        assert_eq!(
            evaluate(&flags, "f", &user("1")).variant.name,
            "from-strategy"
        );
    }

    #[test]
    fn an_unknown_strategy_never_holds() {
        let flags = set(vec![flag(
            "f",
            vec![strategy(StrategyKind::Unknown {
                name: "applicationHostname".to_string(),
            })],
            Vec::new(),
        )]);
        assert!(!evaluate(&flags, "f", &user("1")).enabled);
    }

    #[test]
    fn seeded_sources_repeat() {
        let draws = |seed| {
            let mut random = SeededRandom::new(seed);
            (0..5).map(|_| random.next_u32()).collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
    }
}
