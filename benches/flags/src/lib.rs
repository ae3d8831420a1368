//! The benchmark's inputs: the deterministic cases of the Unleash client-spec files
//! (every test with an `expectedResult`, except random rollouts), loaded into both
//! engines.

use ripcord_core::flags::{Context, FlagSet, SeededRandom};
use serde_json::Value;
use unleash_yggdrasil::EngineState;

/// The spec files, from Ripcord's copy of Unleash's client specification.
pub const SPEC_FILES: &[&str] = &[
    include_str!("../../../crates/core/tests/data/unleash-client-spec/01-simple-examples.json"),
    include_str!(
        "../../../crates/core/tests/data/unleash-client-spec/02-user-with-id-strategy.json"
    ),
    include_str!(
        "../../../crates/core/tests/data/unleash-client-spec/03-gradual-rollout-user-id-strategy.json"
    ),
    include_str!(
        "../../../crates/core/tests/data/unleash-client-spec/04-gradual-rollout-session-id-strategy.json"
    ),
    include_str!("../../../crates/core/tests/data/unleash-client-spec/07-multiple-strategies.json"),
    include_str!(
        "../../../crates/core/tests/data/unleash-client-spec/09-strategy-constraints.json"
    ),
    include_str!(
        "../../../crates/core/tests/data/unleash-client-spec/13-constraint-operators.json"
    ),
];

/// One flag state in both engines, and its cases.
pub struct Suite {
    /// Ripcord's flag set.
    pub ripcord: FlagSet,
    /// Yggdrasil's engine.
    pub yggdrasil: EngineState,
    /// (flag, Ripcord's context, Yggdrasil's context, the spec's expected result).
    pub cases: Vec<(String, Context, unleash_yggdrasil::Context, bool)>,
}

/// Every spec file as a suite.
pub fn suites() -> Vec<Suite> {
    SPEC_FILES
        .iter()
        .map(|text| {
            let spec: Value = serde_json::from_str(text).expect("a spec file");
            let state = spec["state"].to_string();
            let ripcord =
                ripcord_core::flags::unleash::parse_state(&state).expect("Ripcord reads the state");
            let yggdrasil = EngineState::default();
            let features: unleash_yggdrasil::ClientFeatures =
                serde_json::from_str(&state).expect("Yggdrasil reads the state");
            yggdrasil.take_state(unleash_yggdrasil::UpdateMessage::FullResponse(features));
            let cases = spec["tests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|case| {
                    let expected = case["expectedResult"].as_bool()?;
                    let context = case["context"].to_string();
                    Some((
                        case["toggleName"].as_str()?.to_string(),
                        Context::parse_json(&context).expect("Ripcord reads the context"),
                        serde_json::from_str(&context).expect("Yggdrasil reads the context"),
                        expected,
                    ))
                })
                .collect();
            Suite {
                ripcord,
                yggdrasil,
                cases,
            }
        })
        .collect()
}

/// Checks that both engines give every case the spec's answer; panics naming the
/// first case where they do not.
pub fn assert_agreement(suites: &[Suite]) -> usize {
    let mut random = SeededRandom::new(1);
    let mut checked = 0;
    for suite in suites {
        for (flag, ours, theirs, expected) in &suite.cases {
            let ripcord = suite.ripcord.is_enabled(flag, ours, &mut random);
            let yggdrasil = suite.yggdrasil.is_enabled(flag, theirs, &None);
            assert_eq!(
                (ripcord, yggdrasil),
                (*expected, *expected),
                "{flag} for {ours:?}: (Ripcord, Yggdrasil) against the spec's {expected}"
            );
            checked += 1;
        }
    }
    checked
}
