//! The flag file's flags written in Unleash's JSON form (`flags::to_unleash`) and read
//! back with the Unleash state parser: for every flag of a sample file, the same flag
//! and segments come back, field for field, and they evaluate the same on a table of
//! contexts (several strategies, constraints of every operator family, segments,
//! dependencies, variants with stickiness and overrides), each under several seeds.

use std::path::Path;

use ripcord_core::flags::to_unleash::{feature_json, segment_json, state_of_flag};
use ripcord_core::flags::unleash::state_from_json;
use ripcord_core::flags::{Context, FlagSet, SeededRandom, parse_flag_file};
use serde_json::{Value, json};

const SEEDS: [u64; 3] = [1, 0x5eed, u64::MAX];

fn sample() -> FlagSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flags-round-trip.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    parse_flag_file("flags-round-trip.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

/// The whole sample in Unleash's form, as a flag store would hold it.
fn as_unleash(flags: &FlagSet) -> FlagSet {
    let features: Vec<Value> = flags
        .flags()
        .map(|flag| feature_json(flag).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut ids: Vec<&str> = flags
        .flags()
        .flat_map(|f| f.strategies.iter().flat_map(|s| s.segments.iter()))
        .map(String::as_str)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let segments: Vec<Value> = ids
        .iter()
        .map(|id| segment_json(flags.segment(id).unwrap(), "test").unwrap())
        .collect();
    // Through text, as the store keeps it.
    let text = json!({"version": 1, "features": features, "segments": segments}).to_string();
    state_from_json(&serde_json::from_str(&text).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

fn contexts() -> Vec<Context> {
    let cases = [
        json!({}),
        json!({"userId": "qa-alice"}),
        json!({"userId": "qa-bob", "sessionId": "s-1"}),
        json!({"userId": "42", "environment": "production", "properties": {"appVersion": "2.3.0"}}),
        json!({"userId": "u-7", "environment": "staging", "properties": {"appVersion": "2.1.0-beta.1"}}),
        json!({"userId": "u-8", "environment": "staging", "properties": {"appVersion": "2.1.0-beta.10", "plan": "gold"}}),
        json!({"sessionId": "s-99", "remoteAddress": "10.1.2.3"}),
        json!({"remoteAddress": "192.168.1.7", "properties": {"tenant": "acme-north"}}),
        json!({"remoteAddress": "2001:db8::42", "userId": "vip-12", "properties": {"appVersion": "2.9.9"}}),
        json!({"remoteAddress": "172.20.0.1", "currentTime": "2026-06-01T00:00:00Z"}),
        json!({"remoteAddress": "::1", "currentTime": "2026-03-20T09:30:00.250Z"}),
        json!({"properties": {"email": "Ops@Example.COM", "plan": "beta"}}),
        json!({"properties": {"email": "test@example.com", "score": "7.5", "country": "DK"}}),
        json!({"properties": {"email": "a@EXAMPLE.com", "score": "7.25"}}),
        json!({"properties": {"score": "100", "country": "NO", "level": "-0.5"}}),
        json!({"userId": "VIP-3", "properties": {"appVersion": "1.0.0", "level": "2"}}),
        json!({"userId": "u-1000", "sessionId": "s-1000", "properties": {"tenant": "ACME"}}),
    ];
    let mut contexts: Vec<Context> = cases
        .iter()
        .map(|case| Context::from_json(case).unwrap())
        .collect();
    // Many users, so that rollouts and variant weights cut between them.
    contexts.extend((0..200).map(|n| {
        Context::from_json(&json!({
            "userId": format!("user-{n}"),
            "sessionId": format!("session-{}", n * 7),
            "environment": if n % 2 == 0 { "production" } else { "staging" },
            "properties": {"appVersion": "2.2.0", "tenant": format!("acme-{}", n % 13)}
        }))
        .unwrap()
    }));
    contexts
}

#[test]
fn every_flag_reads_back_from_unleash_json_as_the_same_flag() {
    let file = sample();
    let stored = as_unleash(&file);
    assert_eq!(stored.len(), file.len());
    for flag in file.flags() {
        assert_eq!(
            stored.flag(&flag.name),
            Some(flag),
            "flag {} reads back as itself",
            flag.name
        );
        for id in flag.strategies.iter().flat_map(|s| s.segments.iter()) {
            assert_eq!(stored.segment(id), file.segment(id), "segment {id}");
        }
    }
}

#[test]
fn every_flag_evaluates_the_same_from_the_file_and_from_unleash_json() {
    let file = sample();
    let stored = as_unleash(&file);
    let contexts = contexts();
    let mut on = 0;
    let mut variants = std::collections::BTreeSet::new();
    for flag in file.names() {
        for (index, context) in contexts.iter().enumerate() {
            for seed in SEEDS {
                let expected = file.evaluate(flag, context, &mut SeededRandom::new(seed));
                let actual = stored.evaluate(flag, context, &mut SeededRandom::new(seed));
                assert_eq!(
                    actual, expected,
                    "flag {flag}, context {index}, seed {seed}"
                );
                let expected = expected.unwrap();
                on += usize::from(expected.enabled);
                variants.insert(expected.variant.name);
            }
        }
    }
    // The table is only worth something if it sees flags both on and off, and
    // several variants handed out.
    let total = file.len() * contexts.len() * SEEDS.len();
    assert!(on > total / 10 && on < total * 9 / 10, "{on} of {total} on");
    for name in [
        "blue",
        "green",
        "red",
        "tenant-wide",
        "any",
        "a",
        "b",
        "disabled",
    ] {
        assert!(
            variants.contains(name),
            "variant {name} never given: {variants:?}"
        );
    }
}

#[test]
fn one_flags_state_holds_it_and_the_segments_it_uses() {
    let file = sample();
    let state = state_of_flag(&file, "dark-mode").unwrap();
    let ids: Vec<&str> = state["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["beta", "staff"]);
    assert_eq!(state["features"].as_array().unwrap().len(), 1);
    let read = state_from_json(&state).unwrap();
    assert_eq!(read.flag("dark-mode"), file.flag("dark-mode"));
    let without = state_of_flag(&file, "coin-flip").unwrap();
    assert_eq!(without["segments"], json!([]));

    let unknown = state_of_flag(&file, "nope").unwrap_err().to_string();
    assert!(
        unknown.contains("nope") && unknown.contains("by-session, coin-flip, dark-mode"),
        "{unknown}"
    );
}

#[test]
fn what_unleash_json_cannot_hold_is_refused() {
    let refused = |toml: &str| {
        let flags = parse_flag_file("t.toml", toml).unwrap_or_else(|e| panic!("{e}"));
        state_of_flag(&flags, "f").unwrap_err().to_string()
    };
    let comma = refused(
        "[flags.f]\nenabled = true\n[[flags.f.strategies]]\nname = \"userWithId\"\nuser_ids = [\"a,b\"]\n",
    );
    assert!(
        comma.contains("\"a,b\"") && comma.contains("comma"),
        "{comma}"
    );
    let spaces = refused(
        "[flags.f]\nenabled = true\n[[flags.f.strategies]]\nname = \"userWithId\"\nuser_ids = [\" a\"]\n",
    );
    assert!(spaces.contains("spaces"), "{spaces}");
    let group = refused(
        "[flags.f]\nenabled = true\n[[flags.f.strategies]]\nname = \"flexibleRollout\"\nrollout = 5\ngroup_id = \"\"\n",
    );
    assert!(group.contains("empty group id"), "{group}");
}
