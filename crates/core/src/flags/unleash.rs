//! Unleash's feature state: the JSON an Unleash server hands its SDKs
//! (`GET /api/client/features`, `{"version", "features", "segments"}`), or the event
//! list of its delta API (`{"events": [...]}`), read into the flag model.
//!
//! The wire structs below mirror Unleash's JSON and ignore keys Ripcord has no use for
//! (`project`, `stale`, `impressionData`, ...), since Unleash adds keys over time.
//! Each level is read on its own so that an error names the flag and the field it is
//! about. What Unleash itself tolerates, Ripcord tolerates too: an unknown strategy or
//! operator, or an operand that cannot be read, is kept and evaluates to false, so a
//! state that works in Unleash loads here.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::constraint::read_condition;
use super::context::describe;
use super::model::{
    AddressEntry, Constraint, Dependency, Flag, Override, Payload, Segment, Stickiness, Strategy,
    StrategyKind, Variant, WeightType,
};
use super::{DuplicateName, FlagSet};
use crate::domain::Percent;

/// Why an Unleash feature state could not be read: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if place.is_empty() { String::new() } else { format!("{place}: ") })]
pub struct UnleashStateError {
    /// The flag (or segment, or event) and the field, e.g.
    /// `flag "new-checkout", strategies[0].parameters.rollout`; empty for the document.
    pub place: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

/// Parses the JSON text of an Unleash feature state (or of its delta API's events).
///
/// # Errors
///
/// An [`UnleashStateError`] naming the flag and field at fault.
pub fn parse_state(text: &str) -> Result<FlagSet, UnleashStateError> {
    let value: Value = serde_json::from_str(text).map_err(|error| UnleashStateError {
        place: String::new(),
        message: format!("not valid JSON ({error})"),
    })?;
    state_from_json(&value)
}

/// Reads a parsed Unleash feature state: `{"features": [...], "segments": [...]}`, or
/// `{"events": [...]}` as the delta API sends them (a `hydration` event, then
/// `feature-updated`, `feature-removed`, `segment-updated` and `segment-removed`
/// events, applied in order).
///
/// # Errors
///
/// An [`UnleashStateError`] naming the flag and field at fault.
pub fn state_from_json(value: &Value) -> Result<FlagSet, UnleashStateError> {
    let document = Place::document();
    let Value::Object(object) = value else {
        return Err(document.error(
            "",
            format!(
                "an Unleash feature state is a JSON object with a \"features\" array, not {}",
                describe(value)
            ),
        ));
    };
    if let Some(events) = object.get("events") {
        return from_events(events);
    }
    let features = match object.get("features") {
        Some(features) => array(features, &document, "features")?,
        None => {
            return Err(document.error(
                "",
                "there is no \"features\" array: is this an Unleash feature state (GET /api/client/features)?",
            ));
        }
    };
    let segments = match object.get("segments") {
        Some(segments) => array(segments, &document, "segments")?,
        None => &[],
    };
    let mut flags = BTreeMap::new();
    for (index, feature) in features.iter().enumerate() {
        let flag = read_feature(feature, &format!("features[{index}]"))?;
        if flags.contains_key(&flag.name) {
            return Err(duplicate(DuplicateName::Flag(flag.name)));
        }
        flags.insert(flag.name.clone(), flag);
    }
    let mut by_id = BTreeMap::new();
    for (index, segment) in segments.iter().enumerate() {
        let segment = read_segment(segment, &format!("segments[{index}]"))?;
        if by_id.contains_key(&segment.id) {
            return Err(duplicate(DuplicateName::Segment(segment.id)));
        }
        by_id.insert(segment.id.clone(), segment);
    }
    FlagSet::new(flags.into_values().collect(), by_id.into_values().collect()).map_err(duplicate)
}

fn duplicate(error: DuplicateName) -> UnleashStateError {
    UnleashStateError {
        place: String::new(),
        message: error.to_string(),
    }
}

// ---------------------------------------------------------------------------------
// The wire format.
// ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeatureWire {
    name: String,
    enabled: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    strategies: Option<Vec<Value>>,
    #[serde(default)]
    variants: Option<Vec<Value>>,
    #[serde(default)]
    dependencies: Option<Vec<DependencyWire>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StrategyWire {
    name: String,
    #[serde(default)]
    parameters: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    constraints: Option<Vec<Value>>,
    #[serde(default)]
    segments: Option<Vec<Value>>,
    #[serde(default)]
    variants: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConstraintWire {
    context_name: String,
    operator: String,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    case_insensitive: Option<bool>,
    #[serde(default)]
    inverted: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VariantWire {
    name: String,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    weight_type: Option<String>,
    #[serde(default)]
    stickiness: Option<String>,
    #[serde(default)]
    payload: Option<PayloadWire>,
    #[serde(default)]
    overrides: Option<Vec<OverrideWire>>,
}

#[derive(Deserialize)]
struct PayloadWire {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OverrideWire {
    context_name: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
struct DependencyWire {
    feature: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    variants: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SegmentWire {
    id: Value,
    #[serde(default)]
    constraints: Option<Vec<Value>>,
}

// ---------------------------------------------------------------------------------
// Conversion into the model.
// ---------------------------------------------------------------------------------

/// Who an error is about: a flag by name, or a position when there is no name.
struct Place {
    owner: String,
}

impl Place {
    fn document() -> Self {
        Self {
            owner: String::new(),
        }
    }

    fn error(&self, field: &str, message: impl Into<String>) -> UnleashStateError {
        let place = match (self.owner.is_empty(), field.is_empty()) {
            (true, _) => field.to_string(),
            (false, true) => self.owner.clone(),
            (false, false) => format!("{}, {field}", self.owner),
        };
        UnleashStateError {
            place,
            message: message.into(),
        }
    }

    /// Reads `value` as `T`, reporting serde's complaint at `field`.
    fn decode<T: DeserializeOwned>(
        &self,
        value: &Value,
        field: &str,
    ) -> Result<T, UnleashStateError> {
        T::deserialize(value).map_err(|error| self.error(field, error.to_string()))
    }
}

fn array<'v>(
    value: &'v Value,
    place: &Place,
    field: &str,
) -> Result<&'v [Value], UnleashStateError> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(&[]),
        other => Err(place.error(
            field,
            format!("expected an array, found {}", describe(other)),
        )),
    }
}

fn read_feature(value: &Value, position: &str) -> Result<Flag, UnleashStateError> {
    // Name the flag in every later error, if it has a name at all.
    let place = match value.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => Place {
            owner: format!("flag {name:?}"),
        },
        _ => Place {
            owner: position.to_string(),
        },
    };
    let wire: FeatureWire = place.decode(value, "")?;
    if wire.name.is_empty() {
        return Err(place.error("name", "a flag needs a name"));
    }
    let strategies = wire
        .strategies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, strategy)| read_strategy(strategy, &place, &format!("strategies[{index}]")))
        .collect::<Result<_, _>>()?;
    let variants = read_variants(wire.variants.unwrap_or_default(), &place, "variants")?;
    let dependencies = wire
        .dependencies
        .unwrap_or_default()
        .into_iter()
        .map(|dependency| Dependency {
            flag: dependency.feature,
            enabled: dependency.enabled.unwrap_or(true),
            variants: dependency.variants.unwrap_or_default(),
        })
        .collect();
    Ok(Flag {
        name: wire.name,
        enabled: wire.enabled,
        description: wire.description.filter(|text| !text.is_empty()),
        strategies,
        variants,
        dependencies,
    })
}

fn read_strategy(value: &Value, place: &Place, field: &str) -> Result<Strategy, UnleashStateError> {
    let wire: StrategyWire = place.decode(value, field)?;
    let parameters = Parameters {
        values: wire.parameters.unwrap_or_default(),
        place,
        field: format!("{field}.parameters"),
    };
    let kind = match wire.name.as_str() {
        "default" => StrategyKind::Default,
        "userWithId" => StrategyKind::UserWithId {
            user_ids: split_list(parameters.text("userIds")?.as_deref()),
        },
        "gradualRolloutUserId" => StrategyKind::GradualRolloutUserId {
            percentage: parameters.percent("percentage")?,
            group_id: parameters.text("groupId")?,
        },
        "gradualRolloutSessionId" => StrategyKind::GradualRolloutSessionId {
            percentage: parameters.percent("percentage")?,
            group_id: parameters.text("groupId")?,
        },
        "gradualRolloutRandom" => StrategyKind::GradualRolloutRandom {
            percentage: parameters.percent("percentage")?,
        },
        "flexibleRollout" => StrategyKind::FlexibleRollout {
            rollout: parameters.percent("rollout")?,
            stickiness: Stickiness::parse(parameters.text("stickiness")?.as_deref().unwrap_or("")),
            group_id: parameters.text("groupId")?,
        },
        "remoteAddress" => StrategyKind::RemoteAddress {
            addresses: split_list(parameters.text("IPs")?.as_deref())
                .into_iter()
                .map(|entry| match entry.parse() {
                    Ok(range) => AddressEntry::Range(range),
                    Err(_) => AddressEntry::Other(entry),
                })
                .collect(),
        },
        other => StrategyKind::Unknown {
            name: other.to_string(),
        },
    };
    let constraints = read_constraints(
        wire.constraints.as_deref().unwrap_or_default(),
        place,
        &format!("{field}.constraints"),
    )?;
    let segments = wire
        .segments
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, id)| segment_id(id, place, &format!("{field}.segments[{index}]")))
        .collect::<Result<_, _>>()?;
    let variants = read_variants(
        wire.variants.unwrap_or_default(),
        place,
        &format!("{field}.variants"),
    )?;
    Ok(Strategy {
        kind,
        constraints,
        segments,
        variants,
    })
}

/// A strategy's parameters, which Unleash sends as strings (and some tools as numbers).
struct Parameters<'a> {
    values: BTreeMap<String, Value>,
    place: &'a Place,
    field: String,
}

impl Parameters<'_> {
    /// The parameter as text; absent, `null` and empty all count as absent, as they do
    /// in Unleash's SDKs.
    fn text(&self, name: &str) -> Result<Option<String>, UnleashStateError> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone()).filter(|text| !text.is_empty())),
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            Some(other) => Err(self.place.error(
                &format!("{}.{name}", self.field),
                format!("expected text, found {}", describe(other)),
            )),
        }
    }

    /// A percentage from 0 to 100. An absent one reads as 0, which is how Unleash's
    /// SDKs treat it: the strategy then holds for nobody.
    fn percent(&self, name: &str) -> Result<Percent, UnleashStateError> {
        let Some(text) = self.text(name)? else {
            return Ok(Percent::ZERO);
        };
        let error = |detail: String| self.place.error(&format!("{}.{name}", self.field), detail);
        let number: f64 = text.trim().parse().map_err(|_| {
            error(format!(
                "expected a percentage from 0 to 100, found {text:?}"
            ))
        })?;
        Percent::new(number).map_err(|invalid| error(invalid.to_string()))
    }
}

/// Unleash's comma-separated lists (`userIds`, `IPs`), with spaces around entries and
/// empty entries dropped.
fn split_list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}

fn segment_id(value: &Value, place: &Place, field: &str) -> Result<String, UnleashStateError> {
    match value {
        Value::Number(number) => Ok(number.to_string()),
        Value::String(text) if !text.is_empty() => Ok(text.clone()),
        other => Err(place.error(
            field,
            format!("expected a segment id, found {}", describe(other)),
        )),
    }
}

fn read_constraints(
    values: &[Value],
    place: &Place,
    field: &str,
) -> Result<Vec<Constraint>, UnleashStateError> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let wire: ConstraintWire = place.decode(value, &format!("{field}[{index}]"))?;
            let case_insensitive = wire.case_insensitive.unwrap_or(false);
            Ok(Constraint {
                condition: read_condition(
                    &wire.operator,
                    wire.values.as_deref().unwrap_or_default(),
                    wire.value.as_deref(),
                    case_insensitive,
                ),
                context_name: wire.context_name.into(),
                inverted: wire.inverted.unwrap_or(false),
                case_insensitive,
            })
        })
        .collect()
}

fn read_variants(
    values: Vec<Value>,
    place: &Place,
    field: &str,
) -> Result<Vec<Variant>, UnleashStateError> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let wire: VariantWire = place.decode(value, &format!("{field}[{index}]"))?;
            Ok(Variant {
                name: wire.name,
                weight: wire.weight.unwrap_or(0),
                weight_type: match wire.weight_type.as_deref() {
                    Some("fix") => WeightType::Fix,
                    _ => WeightType::Variable,
                },
                stickiness: wire.stickiness.as_deref().map(Stickiness::parse),
                payload: wire.payload.map(|payload| Payload {
                    kind: payload.kind,
                    value: payload.value,
                }),
                overrides: wire
                    .overrides
                    .unwrap_or_default()
                    .into_iter()
                    .map(|rule| Override {
                        context_name: rule.context_name.into(),
                        values: rule.values,
                    })
                    .collect(),
            })
        })
        .collect()
}

fn read_segment(value: &Value, position: &str) -> Result<Segment, UnleashStateError> {
    let place = match value.get("id") {
        Some(Value::Number(id)) => Place {
            owner: format!("segment {id}"),
        },
        _ => Place {
            owner: position.to_string(),
        },
    };
    let wire: SegmentWire = place.decode(value, "")?;
    let id = segment_id(&wire.id, &place, "id")?;
    let constraints = read_constraints(
        wire.constraints.as_deref().unwrap_or_default(),
        &place,
        "constraints",
    )?;
    Ok(Segment { id, constraints })
}

// ---------------------------------------------------------------------------------
// The delta API's events.
// ---------------------------------------------------------------------------------

fn from_events(events: &Value) -> Result<FlagSet, UnleashStateError> {
    let document = Place::document();
    let mut flags: BTreeMap<String, Flag> = BTreeMap::new();
    let mut segments: BTreeMap<String, Segment> = BTreeMap::new();
    for (index, event) in array(events, &document, "events")?.iter().enumerate() {
        let position = format!("events[{index}]");
        let place = Place {
            owner: position.clone(),
        };
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| place.error("type", "an event needs a \"type\""))?;
        let field = |name: &str| {
            event
                .get(name)
                .ok_or_else(|| place.error(name, format!("a {kind} event needs {name:?}")))
        };
        match kind {
            "hydration" => {
                flags.clear();
                segments.clear();
                for (at, feature) in array(field("features")?, &place, "features")?
                    .iter()
                    .enumerate()
                {
                    let flag = read_feature(feature, &format!("{position}.features[{at}]"))?;
                    flags.insert(flag.name.clone(), flag);
                }
                if let Some(list) = event.get("segments") {
                    for (at, segment) in array(list, &place, "segments")?.iter().enumerate() {
                        let segment = read_segment(segment, &format!("{position}.segments[{at}]"))?;
                        segments.insert(segment.id.clone(), segment);
                    }
                }
            }
            "feature-updated" => {
                let flag = read_feature(field("feature")?, &format!("{position}.feature"))?;
                flags.insert(flag.name.clone(), flag);
            }
            "feature-removed" => {
                let name = field("featureName")?
                    .as_str()
                    .ok_or_else(|| place.error("featureName", "expected a flag name"))?;
                flags.remove(name);
            }
            "segment-updated" => {
                let segment = read_segment(field("segment")?, &format!("{position}.segment"))?;
                segments.insert(segment.id.clone(), segment);
            }
            "segment-removed" => {
                let id = segment_id(field("segmentId")?, &place, "segmentId")?;
                segments.remove(&id);
            }
            other => {
                return Err(place.error(
                    "type",
                    format!(
                        "unknown event type {other:?}: expected hydration, feature-updated, feature-removed, segment-updated or segment-removed"
                    ),
                ));
            }
        }
    }
    FlagSet::new(
        flags.into_values().collect(),
        segments.into_values().collect(),
    )
    .map_err(duplicate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::model::Condition;
    use crate::flags::{Context, SeededRandom};

    fn error(text: &str) -> String {
        parse_state(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_state_reads_into_the_model() {
        let flags = parse_state(
            r#"{
              "version": 2,
              "features": [{
                "name": "checkout", "enabled": true, "description": "New checkout",
                "project": "default", "stale": false, "impressionData": true,
                "strategies": [{
                  "name": "flexibleRollout",
                  "parameters": {"rollout": 25, "stickiness": "tenant", "groupId": "g"},
                  "constraints": [{"contextName": "environment", "operator": "IN", "values": ["prod"]}],
                  "segments": [7],
                  "variants": [{"name": "s", "weight": 1000, "weightType": "fix"}]
                }, {
                  "name": "remoteAddress", "parameters": {"IPs": "10.0.0.0/8, office"}
                }, {
                  "name": "applicationHostname", "parameters": {"hostNames": "a"}
                }],
                "variants": [{
                  "name": "blue", "weight": 500, "stickiness": "userId",
                  "payload": {"type": "json", "value": "{\"a\":1}"},
                  "overrides": [{"contextName": "userId", "values": ["1"]}]
                }],
                "dependencies": [{"feature": "parent", "enabled": false}]
              }],
              "segments": [{"id": 7, "name": "beta", "constraints": [
                {"contextName": "plan", "operator": "NUM_GT", "value": "2", "inverted": true}
              ]}]
            }"#,
        )
        .unwrap();
        let flag = flags.flag("checkout").unwrap();
        assert_eq!(flag.description.as_deref(), Some("New checkout"));
        let rollout = &flag.strategies[0];
        assert_eq!(
            rollout.kind,
            StrategyKind::FlexibleRollout {
                rollout: Percent::new(25.0).unwrap(),
                stickiness: Stickiness::Field("tenant".to_string()),
                group_id: Some("g".to_string()),
            }
        );
        assert_eq!(rollout.segments, vec!["7".to_string()]);
        assert_eq!(
            rollout.constraints[0].condition,
            Condition::In(vec!["prod".to_string()])
        );
        assert_eq!(rollout.variants[0].weight_type, WeightType::Fix);
        assert!(matches!(
            &flag.strategies[1].kind,
            StrategyKind::RemoteAddress { addresses }
                if matches!(addresses[..], [AddressEntry::Range(_), AddressEntry::Other(ref other)] if other == "office")
        ));
        assert_eq!(flag.strategies[2].kind.name(), "applicationHostname");
        let blue = &flag.variants[0];
        assert_eq!(
            blue.stickiness,
            Some(Stickiness::Field("userId".to_string()))
        );
        assert_eq!(blue.payload.as_ref().unwrap().kind, "json");
        assert_eq!(blue.overrides[0].values, vec!["1".to_string()]);
        assert_eq!(
            flag.dependencies,
            vec![Dependency {
                flag: "parent".to_string(),
                enabled: false,
                variants: Vec::new()
            }]
        );
        let segment = flags.segment("7").unwrap();
        assert!(segment.constraints[0].inverted);
    }

    #[test]
    fn errors_name_the_flag_and_the_field() {
        let cases = [
            ("[]", "a JSON object with a \"features\" array"),
            ("{}", "no \"features\" array"),
            ("{\"features\": 3}", "features: expected an array"),
            (
                "{\"features\": [{\"name\": \"a\"}]}",
                "flag \"a\": missing field `enabled`",
            ),
            (
                "{\"features\": [{\"enabled\": true}]}",
                "features[0]: missing field `name`",
            ),
            (
                "{\"features\": [{\"name\": \"\", \"enabled\": true}]}",
                "features[0], name: a flag needs a name",
            ),
            (
                r#"{"features": [{"name": "a", "enabled": "yes"}]}"#,
                "flag \"a\": invalid type: string \"yes\", expected a boolean",
            ),
            (
                r#"{"features": [{"name": "a", "enabled": true, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "lots"}}]}]}"#,
                "flag \"a\", strategies[0].parameters.rollout: expected a percentage from 0 to 100, found \"lots\"",
            ),
            (
                r#"{"features": [{"name": "a", "enabled": true, "strategies": [{"name": "gradualRolloutRandom", "parameters": {"percentage": "150"}}]}]}"#,
                "flag \"a\", strategies[0].parameters.percentage: percentage 150 is out of range",
            ),
            (
                r#"{"features": [{"name": "a", "enabled": true, "strategies": [{"name": "default", "constraints": [{"operator": "IN"}]}]}]}"#,
                "flag \"a\", strategies[0].constraints[0]: missing field `contextName`",
            ),
            (
                r#"{"features": [{"name": "a", "enabled": true, "variants": [{"name": "v", "weight": -1}]}]}"#,
                "flag \"a\", variants[0]: invalid value: integer `-1`",
            ),
            (
                r#"{"features": [{"name": "a", "enabled": true, "strategies": [{"name": "default", "segments": [true]}]}]}"#,
                "flag \"a\", strategies[0].segments[0]: expected a segment id",
            ),
            (
                r#"{"features": [], "segments": [{"id": 3, "constraints": [{"contextName": "x"}]}]}"#,
                "segment 3, constraints[0]: missing field `operator`",
            ),
            (
                r#"{"features": [{"name": "a", "enabled": true}, {"name": "a", "enabled": false}]}"#,
                "flag \"a\" is defined twice",
            ),
            ("{\"features\": [", "not valid JSON"),
        ];
        for (text, expected) in cases {
            let message = error(text);
            assert!(
                message.contains(expected),
                "{text}\n  gave: {message}\n  expected: {expected}"
            );
        }
    }

    #[test]
    fn what_unleash_tolerates_loads() {
        let flags = parse_state(
            r#"{"features": [
              {"name": "a", "enabled": true, "strategies": null, "variants": null, "description": null},
              {"name": "b", "enabled": true, "strategies": [{"name": "gradualRolloutUserId", "parameters": {"percentage": "", "groupId": ""}}]},
              {"name": "c", "enabled": true, "strategies": [{"name": "default", "constraints": [
                {"contextName": "v", "operator": "SEMVER_GT", "value": "v1"},
                {"contextName": "v", "operator": "LIKE", "values": ["x"]}
              ]}]}
            ]}"#,
        )
        .unwrap();
        let context = Context::default();
        let mut random = SeededRandom::new(1);
        assert!(flags.is_enabled("a", &context, &mut random));
        assert!(!flags.is_enabled("b", &context, &mut random));
        assert!(!flags.is_enabled("c", &context, &mut random));
        let conditions = &flags.flag("c").unwrap().strategies[0].constraints;
        assert!(matches!(
            conditions[0].condition,
            Condition::Unreadable { .. }
        ));
        assert_eq!(
            conditions[1].condition,
            Condition::UnknownOperator("LIKE".to_string())
        );
    }

    #[test]
    fn delta_events_apply_in_order() {
        let flags = parse_state(
            r#"{"events": [
              {"eventId": 1, "type": "hydration",
               "features": [{"name": "kept", "enabled": true}, {"name": "dropped", "enabled": true}],
               "segments": [{"id": 1, "constraints": []}]},
              {"eventId": 2, "type": "feature-removed", "featureName": "dropped", "project": "default"},
              {"eventId": 3, "type": "feature-updated", "feature": {"name": "added", "enabled": false}},
              {"eventId": 4, "type": "segment-updated", "segment": {"id": 2, "constraints": []}},
              {"eventId": 5, "type": "segment-removed", "segmentId": 1}
            ]}"#,
        )
        .unwrap();
        assert_eq!(flags.names().collect::<Vec<_>>(), ["added", "kept"]);
        assert!(flags.segment("1").is_none());
        assert!(flags.segment("2").is_some());
        let message = error(r#"{"events": [{"eventId": 1, "type": "feature-renamed"}]}"#);
        assert!(
            message.contains("events[0], type: unknown event type"),
            "{message}"
        );
    }
}
