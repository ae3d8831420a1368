//! The flag model written back in Unleash's JSON form: what a flag store keeps
//! (`stored`), so that a flag read from Ripcord's flag file can be stored and then
//! evaluated from the store exactly as it was from the file.
//!
//! Reading the JSON written here with [`super::unleash::state_from_json`] gives back
//! the same flag and segments, field for field; the tests hold every flag of a sample
//! file to that, and to the same evaluations. What Unleash's form cannot hold is
//! refused with a [`ToUnleashError`] rather than written differently: a user id with
//! a comma or spaces at its ends (Unleash's `userIds` is one comma-separated text),
//! an empty group id (Unleash reads it as none), and the parts of an Unleash state
//! that Ripcord keeps but cannot evaluate (unknown strategies and operators,
//! operands that do not read), whose original text is gone.

use serde_json::{Map, Value, json};

use super::FlagSet;
use super::model::{
    AddressEntry, Condition, Constraint, Dependency, Flag, Override, Segment, Strategy,
    StrategyKind, Variant, WeightType,
};

/// Why a flag cannot be written in Unleash's form without changing its meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("flag {flag:?}: {message}")]
pub struct ToUnleashError {
    /// The flag.
    pub flag: String,
    /// What cannot be written, and what to do.
    pub message: String,
}

/// The Unleash feature (one element of a state's `features` array) for `flag`.
///
/// # Errors
///
/// A [`ToUnleashError`] when part of the flag has no faithful Unleash form.
pub fn feature_json(flag: &Flag) -> Result<Value, ToUnleashError> {
    let fail = |message: String| ToUnleashError {
        flag: flag.name.clone(),
        message,
    };
    let mut feature = Map::new();
    feature.insert("name".into(), json!(flag.name));
    feature.insert("enabled".into(), json!(flag.enabled));
    if let Some(description) = &flag.description {
        feature.insert("description".into(), json!(description));
    }
    let strategies = flag
        .strategies
        .iter()
        .enumerate()
        .map(|(index, strategy)| {
            strategy_json(strategy).map_err(|message| fail(format!("strategy {index}: {message}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    feature.insert("strategies".into(), Value::Array(strategies));
    if !flag.variants.is_empty() {
        feature.insert("variants".into(), variants_json(&flag.variants));
    }
    if !flag.dependencies.is_empty() {
        let dependencies = flag.dependencies.iter().map(dependency_json).collect();
        feature.insert("dependencies".into(), Value::Array(dependencies));
    }
    Ok(Value::Object(feature))
}

/// The Unleash segment (one element of a state's `segments` array) for `segment`; its
/// id is written as text, which is how Ripcord's flag file names segments.
///
/// # Errors
///
/// A [`ToUnleashError`] about `flag`, the flag that uses the segment, when one of its
/// constraints has no faithful Unleash form.
pub fn segment_json(segment: &Segment, flag: &str) -> Result<Value, ToUnleashError> {
    let constraints = constraints_json(&segment.constraints).map_err(|message| ToUnleashError {
        flag: flag.to_string(),
        message: format!("segment {:?}: {message}", segment.id),
    })?;
    Ok(json!({"id": segment.id, "constraints": constraints}))
}

/// An Unleash feature state holding the flag `name` of `flags` and the segments its
/// strategies use (the flags it depends on are not included: they are flags of their
/// own).
///
/// # Errors
///
/// A [`ToUnleashError`] when the set has no such flag (the message lists the flags
/// it has) or the flag has no faithful Unleash form.
pub fn state_of_flag(flags: &FlagSet, name: &str) -> Result<Value, ToUnleashError> {
    let Some(flag) = flags.flag(name) else {
        let known: Vec<&str> = flags.names().collect();
        return Err(ToUnleashError {
            flag: name.to_string(),
            message: if known.is_empty() {
                "not defined: the file defines no flags".to_string()
            } else {
                format!("not defined: the file defines {}", known.join(", "))
            },
        });
    };
    let feature = feature_json(flag)?;
    let mut used: Vec<&str> = flag
        .strategies
        .iter()
        .flat_map(|strategy| strategy.segments.iter().map(String::as_str))
        .collect();
    used.sort_unstable();
    used.dedup();
    let segments = used
        .into_iter()
        .map(|id| match flags.segment(id) {
            Some(segment) => segment_json(segment, name),
            None => Err(ToUnleashError {
                flag: name.to_string(),
                message: format!("uses segment {id:?}, which is not defined"),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({"version": 1, "features": [feature], "segments": segments}))
}

fn strategy_json(strategy: &Strategy) -> Result<Value, String> {
    let mut parameters = Map::new();
    let mut text = |name: &str, value: String| {
        parameters.insert(name.to_string(), Value::String(value));
    };
    match &strategy.kind {
        StrategyKind::Default => {}
        StrategyKind::UserWithId { user_ids } => text("userIds", list_text(user_ids, "user id")?),
        StrategyKind::GradualRolloutUserId {
            percentage,
            group_id,
        }
        | StrategyKind::GradualRolloutSessionId {
            percentage,
            group_id,
        } => {
            text("percentage", percentage.get().to_string());
            if let Some(group_id) = group_id {
                text("groupId", group_text(group_id)?);
            }
        }
        StrategyKind::GradualRolloutRandom { percentage } => {
            text("percentage", percentage.get().to_string());
        }
        StrategyKind::FlexibleRollout {
            rollout,
            stickiness,
            group_id,
        } => {
            text("rollout", rollout.get().to_string());
            text("stickiness", stickiness.to_string());
            if let Some(group_id) = group_id {
                text("groupId", group_text(group_id)?);
            }
        }
        StrategyKind::RemoteAddress { addresses } => {
            let entries: Vec<String> = addresses
                .iter()
                .map(|entry| match entry {
                    AddressEntry::Range(range) => range.to_string(),
                    AddressEntry::Other(other) => other.clone(),
                })
                .collect();
            text("IPs", list_text(&entries, "address")?);
        }
        StrategyKind::Unknown { name } => {
            return Err(format!(
                "strategy {name:?} is not one Ripcord knows, and its parameters were not kept"
            ));
        }
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(strategy.kind.name()));
    out.insert("parameters".into(), Value::Object(parameters));
    out.insert(
        "constraints".into(),
        constraints_json(&strategy.constraints)?,
    );
    if !strategy.segments.is_empty() {
        out.insert("segments".into(), json!(strategy.segments));
    }
    if !strategy.variants.is_empty() {
        out.insert("variants".into(), variants_json(&strategy.variants));
    }
    Ok(Value::Object(out))
}

/// Unleash's comma-separated list, refusing entries that would not read back alone.
fn list_text(entries: &[String], what: &str) -> Result<String, String> {
    if let Some(bad) = entries
        .iter()
        .find(|e| e.is_empty() || e.contains(',') || e.trim() != e.as_str())
    {
        return Err(format!(
            "{what} {bad:?} cannot be written in Unleash's comma-separated list: remove the comma or the spaces at its ends"
        ));
    }
    Ok(entries.join(","))
}

fn group_text(group_id: &str) -> Result<String, String> {
    if group_id.is_empty() {
        return Err(
            "an empty group id reads as none in Unleash's form: remove `group_id` or name a group"
                .into(),
        );
    }
    Ok(group_id.to_string())
}

fn constraints_json(constraints: &[Constraint]) -> Result<Value, String> {
    constraints
        .iter()
        .map(constraint_json)
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn constraint_json(constraint: &Constraint) -> Result<Value, String> {
    let (values, value): (Option<Vec<String>>, Option<String>) = match &constraint.condition {
        Condition::In(list)
        | Condition::NotIn(list)
        | Condition::StrContains(list)
        | Condition::StrStartsWith(list)
        | Condition::StrEndsWith(list) => (Some(list.clone()), None),
        Condition::InCidr(ranges) => (Some(ranges.iter().map(ToString::to_string).collect()), None),
        Condition::Number(_, number) => (None, Some(number.to_string())),
        Condition::Date(_, at) => (None, Some(at.to_rfc3339())),
        Condition::Semver(_, version) => (None, Some(version.to_string())),
        Condition::Regex(regex) => (None, Some(regex.as_str().to_string())),
        Condition::Unreadable { operator, .. } | Condition::UnknownOperator(operator) => {
            return Err(format!(
                "the {operator} constraint on {} cannot be evaluated, and its operand was not kept",
                constraint.context_name
            ));
        }
    };
    let mut out = Map::new();
    out.insert(
        "contextName".into(),
        json!(constraint.context_name.as_str()),
    );
    out.insert("operator".into(), json!(constraint.condition.operator()));
    if let Some(values) = values {
        out.insert("values".into(), json!(values));
    }
    if let Some(value) = value {
        out.insert("value".into(), json!(value));
    }
    out.insert("inverted".into(), json!(constraint.inverted));
    out.insert("caseInsensitive".into(), json!(constraint.case_insensitive));
    Ok(Value::Object(out))
}

fn variants_json(variants: &[Variant]) -> Value {
    variants
        .iter()
        .map(|variant| {
            let mut out = Map::new();
            out.insert("name".into(), json!(variant.name));
            out.insert("weight".into(), json!(variant.weight));
            out.insert(
                "weightType".into(),
                json!(match variant.weight_type {
                    WeightType::Fix => "fix",
                    WeightType::Variable => "variable",
                }),
            );
            if let Some(stickiness) = &variant.stickiness {
                out.insert("stickiness".into(), json!(stickiness.to_string()));
            }
            if let Some(payload) = &variant.payload {
                out.insert(
                    "payload".into(),
                    json!({"type": payload.kind, "value": payload.value}),
                );
            }
            if !variant.overrides.is_empty() {
                let overrides: Vec<Value> = variant.overrides.iter().map(override_json).collect();
                out.insert("overrides".into(), Value::Array(overrides));
            }
            Value::Object(out)
        })
        .collect()
}

fn override_json(rule: &Override) -> Value {
    json!({"contextName": rule.context_name.as_str(), "values": rule.values})
}

fn dependency_json(dependency: &Dependency) -> Value {
    let mut out = json!({"feature": dependency.flag, "enabled": dependency.enabled});
    if !dependency.variants.is_empty() {
        out["variants"] = json!(dependency.variants);
    }
    out
}
