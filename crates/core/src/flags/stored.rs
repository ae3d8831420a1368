//! Flags as a flag store keeps them: each flag and segment a JSON document in
//! Unleash's form, changed by small edits (on/off, rollout) and read back together
//! into a [`FlagSet`].
//!
//! A flag's *rollout* is the `rollout` parameter of its `flexibleRollout` strategies:
//! `ripcord flags rollout` and flag ramps set every one of them to the same value in
//! one write, and read back the highest, which is the most anyone may be exposed to.

use serde_json::{Map, Value, json};

use super::FlagSet;
use super::unleash::{UnleashStateError, state_from_json};
use crate::domain::{Percent, Weight};
use crate::ports::{FlagRecord, FlagRecordKind};

/// The strategy whose `rollout` parameter is a flag's rollout.
pub const ROLLOUT_STRATEGY: &str = "flexibleRollout";

/// Why a stored definition cannot be edited as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The flag has no `flexibleRollout` strategy to set.
    #[error(
        "flag {0} has no flexibleRollout strategy, so it has no rollout to set; add one with `ripcord flags set {0} --from FILE`"
    )]
    NoRollout(String),
    /// The stored document is not a JSON object.
    #[error(
        "the stored definition of {0} is not a JSON object; replace it with `ripcord flags set`"
    )]
    NotAnObject(String),
}

/// Builds the flag set of every stored flag and segment, as an Unleash SDK would
/// from the same state.
///
/// # Errors
///
/// An [`UnleashStateError`] naming the record that cannot be read.
pub fn flag_set(records: &[FlagRecord]) -> Result<FlagSet, UnleashStateError> {
    let (segments, features): (Vec<&FlagRecord>, Vec<&FlagRecord>) = records
        .iter()
        .partition(|r| r.kind == FlagRecordKind::Segment);
    let state = json!({
        "version": 1,
        "features": features.iter().map(|r| &r.definition).collect::<Vec<_>>(),
        "segments": segments.iter().map(|r| &r.definition).collect::<Vec<_>>(),
    });
    state_from_json(&state)
}

/// Checks that `definition` reads as a flag (or segment) named `name`.
///
/// # Errors
///
/// An [`UnleashStateError`] saying what is wrong.
pub fn check_definition(
    kind: FlagRecordKind,
    name: &str,
    definition: &Value,
) -> Result<(), UnleashStateError> {
    let (field, found) = match kind {
        FlagRecordKind::Flag => (
            "name",
            definition
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        FlagRecordKind::Segment => (
            "id",
            definition.get("id").map(|id| match id {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }),
        ),
    };
    if found.as_deref() != Some(name) {
        return Err(UnleashStateError {
            place: String::new(),
            message: format!(
                "the {} is stored as {name:?}, so its \"{field}\" must be {name:?}, not {}",
                kind.as_str(),
                found.map_or("missing".to_string(), |f| format!("{f:?}"))
            ),
        });
    }
    let state = match kind {
        FlagRecordKind::Flag => json!({"features": [definition]}),
        FlagRecordKind::Segment => json!({"features": [], "segments": [definition]}),
    };
    state_from_json(&state).map(|_| ())
}

/// A new flag, on, with one `flexibleRollout` strategy at `rollout` percent, bucketed
/// by the default stickiness and the flag's name, as Unleash creates one.
pub fn new_rollout_flag(name: &str, rollout: Weight) -> Value {
    json!({
        "name": name,
        "enabled": true,
        "strategies": [{
            "name": ROLLOUT_STRATEGY,
            "parameters": {
                "rollout": rollout.get().to_string(),
                "stickiness": "default",
                "groupId": name,
            },
        }],
    })
}

/// Whether the flag's switch is on.
pub fn is_enabled(definition: &Value) -> bool {
    definition.get("enabled").and_then(Value::as_bool) == Some(true)
}

/// The definition with its switch turned on or off.
///
/// # Errors
///
/// [`EditError::NotAnObject`] when the definition is not an object.
pub fn with_enabled(name: &str, definition: &Value, enabled: bool) -> Result<Value, EditError> {
    let mut object = object(name, definition)?;
    object.insert("enabled".into(), Value::Bool(enabled));
    Ok(Value::Object(object))
}

/// The flag's rollout: the highest `rollout` of its `flexibleRollout` strategies
/// (an unreadable one counts as 0, as Unleash reads it), or `None` without any.
pub fn rollout(definition: &Value) -> Option<Percent> {
    rollout_strategies(definition)
        .map(|strategy| {
            let value = strategy.get("parameters").and_then(|p| p.get("rollout"));
            let number = match value {
                Some(Value::String(text)) => text.trim().parse().ok(),
                Some(Value::Number(number)) => number.as_f64(),
                _ => None,
            };
            number
                .and_then(|n| Percent::new(n).ok())
                .unwrap_or(Percent::ZERO)
        })
        .reduce(|a, b| if b.get() > a.get() { b } else { a })
}

fn rollout_strategies(definition: &Value) -> impl Iterator<Item = &Value> {
    definition
        .get("strategies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| s.get("name").and_then(Value::as_str) == Some(ROLLOUT_STRATEGY))
}

/// The definition with every `flexibleRollout` strategy at `rollout` percent.
///
/// # Errors
///
/// [`EditError::NoRollout`] when the flag has no such strategy, and
/// [`EditError::NotAnObject`] when the definition is not an object.
pub fn with_rollout(name: &str, definition: &Value, rollout: Weight) -> Result<Value, EditError> {
    let mut object = object(name, definition)?;
    let mut found = false;
    if let Some(Value::Array(strategies)) = object.get_mut("strategies") {
        for strategy in strategies.iter_mut() {
            if strategy.get("name").and_then(Value::as_str) != Some(ROLLOUT_STRATEGY) {
                continue;
            }
            let Value::Object(strategy) = strategy else {
                continue;
            };
            let parameters = strategy
                .entry("parameters")
                .or_insert_with(|| Value::Object(Map::new()));
            if !parameters.is_object() {
                *parameters = Value::Object(Map::new());
            }
            if let Value::Object(parameters) = parameters {
                parameters.insert("rollout".into(), Value::String(rollout.get().to_string()));
                found = true;
            }
        }
    }
    if !found {
        return Err(EditError::NoRollout(name.to_string()));
    }
    Ok(Value::Object(object))
}

fn object(name: &str, definition: &Value) -> Result<Map<String, Value>, EditError> {
    match definition {
        Value::Object(object) => Ok(object.clone()),
        _ => Err(EditError::NotAnObject(name.to_string())),
    }
}

/// The SHA-256 of an API key in lower-case hex: what a flag store keeps instead of
/// the key.
pub fn api_key_sha256(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// How a rollout is written in summaries: `25%`, `12.5%`.
pub fn format_percent(percent: Percent) -> String {
    format!("{}%", percent.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Actor;
    use crate::time::Timestamp;

    fn weight(p: u32) -> Weight {
        Weight::new(p).unwrap()
    }

    fn record(kind: FlagRecordKind, name: &str, definition: Value) -> FlagRecord {
        FlagRecord {
            kind,
            name: name.into(),
            version: 1,
            definition,
            updated_at: Timestamp::from_millis(0),
            updated_by: Actor::Schedule,
        }
    }

    #[test]
    fn api_keys_hash_as_sha256() {
        assert_eq!(
            api_key_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_new_rollout_flag_reads_back_its_rollout() {
        let flag = new_rollout_flag("checkout", weight(25));
        assert_eq!(rollout(&flag), Some(Percent::new(25.0).unwrap()));
        assert!(is_enabled(&flag));
        check_definition(FlagRecordKind::Flag, "checkout", &flag).unwrap();
    }

    #[test]
    fn setting_the_rollout_sets_every_flexible_rollout_and_nothing_else() {
        let flag = json!({"name": "f", "enabled": true, "strategies": [
            {"name": "flexibleRollout", "parameters": {"rollout": "10", "stickiness": "userId"}},
            {"name": "userWithId", "parameters": {"userIds": "a"}},
            {"name": "flexibleRollout", "parameters": {"rollout": 30}},
        ]});
        assert_eq!(rollout(&flag), Some(Percent::new(30.0).unwrap()));
        let set = with_rollout("f", &flag, weight(60)).unwrap();
        assert_eq!(set["strategies"][0]["parameters"]["rollout"], "60");
        assert_eq!(set["strategies"][0]["parameters"]["stickiness"], "userId");
        assert_eq!(set["strategies"][1]["parameters"]["userIds"], "a");
        assert_eq!(set["strategies"][2]["parameters"]["rollout"], "60");
        assert_eq!(rollout(&set), Some(Percent::new(60.0).unwrap()));
    }

    #[test]
    fn a_flag_without_a_flexible_rollout_has_no_rollout() {
        let flag = json!({"name": "f", "enabled": true, "strategies": [{"name": "default"}]});
        assert_eq!(rollout(&flag), None);
        assert_eq!(
            with_rollout("f", &flag, weight(5)).unwrap_err(),
            EditError::NoRollout("f".into())
        );
    }

    #[test]
    fn the_switch_turns_off_without_touching_the_rest() {
        let flag = new_rollout_flag("f", weight(100));
        let off = with_enabled("f", &flag, false).unwrap();
        assert!(!is_enabled(&off));
        assert_eq!(off["strategies"], flag["strategies"]);
    }

    #[test]
    fn stored_records_read_as_one_flag_set() {
        let records = [
            record(
                FlagRecordKind::Segment,
                "7",
                json!({"id": 7, "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}),
            ),
            record(
                FlagRecordKind::Flag,
                "pro-only",
                json!({"name": "pro-only", "enabled": true, "strategies": [{"name": "default", "segments": [7]}]}),
            ),
        ];
        let set = flag_set(&records).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.segment("7").is_some());
    }

    #[test]
    fn definitions_must_carry_their_stored_name() {
        let flag = new_rollout_flag("a", weight(0));
        let error = check_definition(FlagRecordKind::Flag, "b", &flag).unwrap_err();
        assert!(error.message.contains("\"name\" must be \"b\""), "{error}");
        let segment = json!({"id": 3, "constraints": []});
        check_definition(FlagRecordKind::Segment, "3", &segment).unwrap();
        let bad = json!({"name": "a", "enabled": "yes"});
        assert!(check_definition(FlagRecordKind::Flag, "a", &bad).is_err());
    }
}
