//! Ripcord's flag file: a TOML format for the flag model, checked strictly, with every
//! problem reported at its line and column as in `ripcord.toml`.
//!
//! Where an Unleash state tolerates what Unleash tolerates, this file is written by
//! hand and refuses anything that could not mean what its author intended: an
//! unknown strategy or operator, an operand that does not read, weights that do not
//! add up, a reference to a segment or flag that does not exist. The format itself is
//! documented on [`parse_flag_file`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::constraint::{OPERATORS, read_condition, takes_list};
use super::model::{
    AddressEntry, Condition, Constraint, Dependency, Flag, Override, Payload, Segment, Stickiness,
    Strategy, StrategyKind, Variant, WeightType,
};
use super::network::AddressRange;
use super::{DuplicateName, FlagSet};
use crate::config::file::{line_and_column, readable_toml_message};
use crate::config::{ConfigError, ConfigProblem};
use crate::domain::Percent;

/// Parses and checks a Ripcord flag file. `path` is only used in error messages.
///
/// # Format
///
/// ```toml
/// [flags.new-checkout]            # one table per flag; any name without spaces
/// enabled = true                  # required: the on/off switch for everyone
/// description = "One-page checkout"   # optional
/// variant_stickiness = "userId"   # optional, default "default"; see stickiness below
/// depends_on = [                  # optional: other flags that must be on (or off)
///   { flag = "payments-v2" },                      # must be on
///   { flag = "old-cart", enabled = false },        # must be off
///   { flag = "theme", variants = ["dark"] },       # must be on with one of these variants
/// ]
///
/// [[flags.new-checkout.strategies]]   # optional, repeated: the flag is on when any holds;
/// name = "flexibleRollout"            # with none, it is on for everyone
/// rollout = 25                    # percent, 0 to 100 (decimals allowed)
/// stickiness = "userId"           # default | random | userId | sessionId | any context field
/// group_id = "new-checkout"       # default: the flag's name
/// constraints = [                 # optional: all must hold
///   { field = "environment", operator = "IN", values = ["production"] },
///   { field = "appVersion", operator = "SEMVER_GTE", value = "2.1.0" },
///   { field = "email", operator = "STR_ENDS_WITH", values = ["@example.com"], case_insensitive = true },
///   { field = "country", operator = "IN", values = ["NO", "SE"], inverted = true },
/// ]
/// segments = ["beta-testers"]     # optional: their constraints must hold too
///
/// [[flags.new-checkout.strategies.variants]]  # optional: replace the flag's variants
/// name = "wide"                               # when this strategy is the one that held
///
/// [[flags.new-checkout.strategies]]
/// name = "userWithId"
/// user_ids = ["alice", "bob"]
///
/// [[flags.new-checkout.variants]] # optional, repeated
/// name = "blue"                   # required, unique within the list
/// weight = 50                     # percent with at most one decimal; without it the
///                                 # variant shares what the others leave, equally
/// payload = { type = "string", value = "blue" }   # string | json | csv | number
/// overrides = [{ field = "userId", values = ["carol"] }]  # always this variant
///
/// [[flags.new-checkout.variants]]
/// name = "green"
///
/// [segments.beta-testers]         # optional: constraints that strategies share by name
/// constraints = [
///   { field = "plan", operator = "IN", values = ["beta"] },
/// ]
/// ```
///
/// Strategies take Unleash's names and parameters (in snake case):
///
/// | `name` | parameters |
/// |---|---|
/// | `default` | none: on for everyone |
/// | `userWithId` | `user_ids` (required) |
/// | `flexibleRollout` | `rollout` (required), `stickiness`, `group_id` |
/// | `gradualRolloutUserId`, `gradualRolloutSessionId` | `percentage` (required), `group_id` |
/// | `gradualRolloutRandom` | `percentage` (required) |
/// | `remoteAddress` | `ips` (required): addresses or CIDR networks |
///
/// Operators are Unleash's: `IN`, `NOT_IN`, `STR_CONTAINS`, `STR_STARTS_WITH`,
/// `STR_ENDS_WITH` and `IN_CIDR` take `values`; `NUM_EQ`, `NUM_GT`, `NUM_GTE`,
/// `NUM_LT`, `NUM_LTE`, `DATE_AFTER`, `DATE_BEFORE` (RFC 3339, quoted), `SEMVER_EQ`,
/// `SEMVER_GT`, `SEMVER_GTE`, `SEMVER_LT`, `SEMVER_LTE` and `REGEX` take `value`.
/// `case_insensitive` applies to the `STR_` operators and `REGEX`. Context fields are
/// `userId`, `sessionId`, `remoteAddress`, `environment`, `appName`, `currentTime`, or
/// the name of any property.
///
/// Variant weights are read as Unleash's (percent × 10, out of 1000): the fixed ones
/// as written, and what remains split equally between the others, the first ones
/// taking one more when it does not divide evenly. With no variant left without a
/// weight, the weights must add up to 100. Strategy variants are bucketed by their
/// strategy's stickiness and group; the flag's own by `variant_stickiness` and the
/// flag's name.
///
/// # Errors
///
/// A [`ConfigError`] listing every problem found, each with its line and column.
pub fn parse_flag_file(path: &str, text: &str) -> Result<FlagSet, ConfigError> {
    let mut checker = Checker {
        path,
        text,
        problems: Vec::new(),
    };
    let flags = match toml::from_str::<FileWire>(text) {
        Ok(wire) => checker.file(wire),
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            checker.report(span, readable_toml_message(error.message()));
            None
        }
    };
    if flags.is_none() && checker.problems.is_empty() {
        // Every `None` comes with a reported problem; this only guards the invariant
        // that an error is never empty.
        checker.report(0..0, "the flag file could not be read");
    }
    match ConfigError::from_problems(checker.problems) {
        Some(error) => Err(error),
        None => Ok(flags.unwrap_or_default()),
    }
}

// ---------------------------------------------------------------------------------
// The wire format.
// ---------------------------------------------------------------------------------

type Text = Spanned<String>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct FileWire {
    flags: Option<Spanned<BTreeMap<Text, Spanned<FlagWire>>>>,
    #[serde(default)]
    segments: BTreeMap<Text, Spanned<SegmentWire>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct FlagWire {
    enabled: Option<Spanned<bool>>,
    description: Option<String>,
    #[serde(default)]
    strategies: Vec<Spanned<StrategyWire>>,
    #[serde(default)]
    variants: Vec<Spanned<VariantWire>>,
    variant_stickiness: Option<Text>,
    #[serde(default)]
    depends_on: Vec<Spanned<DependencyWire>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a strategy table")]
struct StrategyWire {
    name: Text,
    rollout: Option<Spanned<f64>>,
    percentage: Option<Spanned<f64>>,
    stickiness: Option<Text>,
    group_id: Option<Text>,
    user_ids: Option<Spanned<Vec<Spanned<Scalar>>>>,
    ips: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    constraints: Vec<Spanned<ConstraintWire>>,
    #[serde(default)]
    segments: Vec<Text>,
    #[serde(default)]
    variants: Vec<Spanned<VariantWire>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a constraint such as { field = \"environment\", operator = \"IN\", values = [\"production\"] }"
)]
struct ConstraintWire {
    field: Text,
    operator: Text,
    values: Option<Spanned<Vec<Spanned<Scalar>>>>,
    value: Option<Spanned<Scalar>>,
    #[serde(default)]
    case_insensitive: Option<Spanned<bool>>,
    #[serde(default)]
    inverted: bool,
}

/// A value written as a string or a number; numbers stand for their text, since
/// context values are text.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a string or a number (quote dates and versions, as in \"2026-01-01T00:00:00Z\")"
)]
enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Text(text) => text.clone(),
            Scalar::Integer(number) => number.to_string(),
            Scalar::Float(number) => number.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a variant table")]
struct VariantWire {
    name: Text,
    weight: Option<Spanned<f64>>,
    payload: Option<Spanned<PayloadWire>>,
    #[serde(default)]
    overrides: Vec<Spanned<OverrideWire>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a payload such as { type = \"string\", value = \"blue\" }"
)]
struct PayloadWire {
    #[serde(rename = "type")]
    kind: Text,
    value: Text,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an override such as { field = \"userId\", values = [\"carol\"] }"
)]
struct OverrideWire {
    field: Text,
    values: Spanned<Vec<Spanned<Scalar>>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a dependency such as { flag = \"payments-v2\" }"
)]
struct DependencyWire {
    flag: Text,
    enabled: Option<Spanned<bool>>,
    #[serde(default)]
    variants: Vec<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct SegmentWire {
    #[serde(default)]
    constraints: Vec<Spanned<ConstraintWire>>,
}

// ---------------------------------------------------------------------------------
// The checker: converts the wire structs and collects every problem on the way.
// Converters return `None` when their part is unusable; the problem has then been
// reported already.
// ---------------------------------------------------------------------------------

const STRATEGIES: [&str; 7] = [
    "default",
    "userWithId",
    "flexibleRollout",
    "gradualRolloutUserId",
    "gradualRolloutSessionId",
    "gradualRolloutRandom",
    "remoteAddress",
];

const PAYLOAD_TYPES: [&str; 4] = ["string", "json", "csv", "number"];

/// Unleash's variant weights total this much.
const TOTAL_WEIGHT: u32 = 1000;

struct Checker<'a> {
    path: &'a str,
    text: &'a str,
    problems: Vec<ConfigProblem>,
}

/// What the checks of one flag need to know about the others.
struct Names<'a> {
    segments: &'a BTreeSet<String>,
    /// Each flag's name, and whether it has dependencies itself.
    flags: &'a BTreeMap<String, bool>,
}

impl Checker<'_> {
    fn report(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_and_column(self.text, span.start);
        self.problems.push(ConfigProblem {
            path: self.path.to_string(),
            line,
            column,
            message: message.into(),
        });
    }

    fn file(&mut self, wire: FileWire) -> Option<FlagSet> {
        let segments: Vec<Option<Segment>> = wire
            .segments
            .iter()
            .map(|(name, segment)| self.segment(name, segment))
            .collect();
        let segment_names: BTreeSet<String> = wire
            .segments
            .keys()
            .map(|name| name.get_ref().clone())
            .collect();

        let Some(flags_wire) = wire.flags else {
            self.report(
                0..0,
                "no flags are defined: add a [flags.<name>] table with `enabled = true` or `enabled = false`",
            );
            return None;
        };
        let flag_names: BTreeMap<String, bool> = flags_wire
            .get_ref()
            .iter()
            .map(|(name, flag)| {
                (
                    name.get_ref().clone(),
                    !flag.get_ref().depends_on.is_empty(),
                )
            })
            .collect();
        let names = Names {
            segments: &segment_names,
            flags: &flag_names,
        };
        let flags: Vec<Option<Flag>> = flags_wire
            .get_ref()
            .iter()
            .map(|(name, flag)| self.flag(name, flag, &names))
            .collect();

        let flags: Option<Vec<Flag>> = flags.into_iter().collect();
        let segments: Option<Vec<Segment>> = segments.into_iter().collect();
        match FlagSet::new(flags?, segments?) {
            Ok(set) => Some(set),
            Err(DuplicateName::Flag(name) | DuplicateName::Segment(name)) => {
                // TOML keys are unique within a table, so this cannot happen; it is
                // still reported rather than trusted.
                self.report(0..0, format!("{name:?} is defined twice"));
                None
            }
        }
    }

    fn segment(&mut self, name: &Text, wire: &Spanned<SegmentWire>) -> Option<Segment> {
        let named = self.name(name, "segment");
        let constraints = self.constraints(&wire.get_ref().constraints);
        Some(Segment {
            id: named?,
            constraints: constraints?,
        })
    }

    /// A flag or segment name: not empty, without spaces or control characters.
    fn name(&mut self, name: &Text, what: &str) -> Option<String> {
        let text = name.get_ref();
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.report(
                name.span(),
                format!("{what} name {text:?} is not valid: use a name without spaces, e.g. new-checkout"),
            );
            return None;
        }
        Some(text.clone())
    }

    fn flag(&mut self, name: &Text, wire: &Spanned<FlagWire>, names: &Names<'_>) -> Option<Flag> {
        let flag_name = self.name(name, "flag");
        let flag = wire.get_ref();
        let enabled = match &flag.enabled {
            Some(enabled) => Some(*enabled.get_ref()),
            None => {
                self.report(
                    name.span(),
                    format!(
                        "flag {:?} needs `enabled = true` or `enabled = false`: it is the switch that turns the flag off for everyone",
                        name.get_ref()
                    ),
                );
                None
            }
        };
        let strategies: Vec<Option<Strategy>> = flag
            .strategies
            .iter()
            .map(|strategy| self.strategy(name.get_ref(), strategy, names.segments))
            .collect();
        let variants = self.variants(&flag.variants, "the flag");
        let stickiness = match &flag.variant_stickiness {
            Some(stickiness) if flag.variants.is_empty() => {
                self.report(
                    stickiness.span(),
                    "`variant_stickiness` has no variants to apply to: add [[flags.<name>.variants]] or remove it",
                );
                None
            }
            Some(stickiness) => Some(Some(self.stickiness(stickiness)?)),
            None => Some(None),
        };
        let dependencies: Vec<Option<Dependency>> = flag
            .depends_on
            .iter()
            .map(|dependency| self.dependency(name.get_ref(), dependency, names.flags))
            .collect();

        let stickiness = stickiness?;
        let variants = variants?
            .into_iter()
            .map(|variant| Variant {
                stickiness: stickiness.clone(),
                ..variant
            })
            .collect();
        Some(Flag {
            name: flag_name?,
            enabled: enabled?,
            description: flag.description.clone().filter(|text| !text.is_empty()),
            strategies: strategies.into_iter().collect::<Option<_>>()?,
            variants,
            dependencies: dependencies.into_iter().collect::<Option<_>>()?,
        })
    }

    fn stickiness(&mut self, text: &Text) -> Option<Stickiness> {
        if text.get_ref().trim().is_empty() {
            self.report(
                text.span(),
                "stickiness is empty: use default, random, userId, sessionId or a context field",
            );
            return None;
        }
        Some(Stickiness::parse(text.get_ref()))
    }

    fn dependency(
        &mut self,
        own_name: &str,
        wire: &Spanned<DependencyWire>,
        flags: &BTreeMap<String, bool>,
    ) -> Option<Dependency> {
        let dependency = wire.get_ref();
        let parent = dependency.flag.get_ref();
        let enabled = dependency.enabled.as_ref().is_none_or(|e| *e.get_ref());
        let mut ok = true;
        if parent == own_name {
            self.report(
                dependency.flag.span(),
                format!("flag {own_name:?} cannot depend on itself"),
            );
            ok = false;
        } else {
            match flags.get(parent) {
                None => {
                    self.report(
                        dependency.flag.span(),
                        format!("flag {own_name:?} depends on {parent:?}, which is not defined in this file"),
                    );
                    ok = false;
                }
                Some(true) => {
                    self.report(
                        dependency.flag.span(),
                        format!(
                            "flag {own_name:?} depends on {parent:?}, which depends on another flag itself: like Unleash, Ripcord allows one level of dependency"
                        ),
                    );
                    ok = false;
                }
                Some(false) => {}
            }
        }
        if !enabled && let Some(first) = dependency.variants.first() {
            self.report(
                first.span(),
                "`variants` only applies when the parent must be on: remove them or `enabled = false`",
            );
            ok = false;
        }
        ok.then(|| Dependency {
            flag: parent.clone(),
            enabled,
            variants: dependency
                .variants
                .iter()
                .map(|v| v.get_ref().clone())
                .collect(),
        })
    }

    fn strategy(
        &mut self,
        flag_name: &str,
        wire: &Spanned<StrategyWire>,
        segments: &BTreeSet<String>,
    ) -> Option<Strategy> {
        let strategy = wire.get_ref();
        let name = strategy.name.get_ref().as_str();
        let constraints = self.constraints(&strategy.constraints);
        let mut segment_ids = Some(Vec::new());
        for reference in &strategy.segments {
            if segments.contains(reference.get_ref()) {
                if let Some(ids) = &mut segment_ids {
                    ids.push(reference.get_ref().clone());
                }
            } else {
                self.report(
                    reference.span(),
                    format!(
                        "segment {:?} is not defined: add a [segments.{}] table or fix the name",
                        reference.get_ref(),
                        reference.get_ref()
                    ),
                );
                segment_ids = None;
            }
        }
        let variants = self.variants(&strategy.variants, "the strategy");

        // Which keys each strategy takes; any other parameter is a mistake.
        let allowed: &[&str] = match name {
            "default" => &[],
            "userWithId" => &["user_ids"],
            "flexibleRollout" => &["rollout", "stickiness", "group_id"],
            "gradualRolloutUserId" | "gradualRolloutSessionId" => &["percentage", "group_id"],
            "gradualRolloutRandom" => &["percentage"],
            "remoteAddress" => &["ips"],
            other => {
                self.report(
                    strategy.name.span(),
                    format!(
                        "unknown strategy {other:?}: use one of {}",
                        STRATEGIES.join(", ")
                    ),
                );
                return None;
            }
        };
        let present = [
            ("rollout", strategy.rollout.as_ref().map(Spanned::span)),
            (
                "percentage",
                strategy.percentage.as_ref().map(Spanned::span),
            ),
            (
                "stickiness",
                strategy.stickiness.as_ref().map(Spanned::span),
            ),
            ("group_id", strategy.group_id.as_ref().map(Spanned::span)),
            ("user_ids", strategy.user_ids.as_ref().map(Spanned::span)),
            ("ips", strategy.ips.as_ref().map(Spanned::span)),
        ];
        let mut ok = true;
        for (key, span) in present {
            if let Some(span) = span
                && !allowed.contains(&key)
            {
                let takes = if allowed.is_empty() {
                    "it takes no parameters".to_string()
                } else {
                    format!("it takes {}", allowed.join(", "))
                };
                self.report(
                    span,
                    format!("`{key}` does not apply to strategy {name:?}: remove it ({takes})"),
                );
                ok = false;
            }
        }
        let group_id = strategy.group_id.as_ref().map(|g| g.get_ref().clone());
        let kind = match name {
            "default" => Some(StrategyKind::Default),
            "userWithId" => self
                .required(
                    &strategy.user_ids,
                    &strategy.name,
                    "user_ids",
                    "user_ids = [\"alice\"]",
                )
                .and_then(|ids| self.list(ids, "user_ids"))
                .map(|user_ids| StrategyKind::UserWithId { user_ids }),
            "flexibleRollout" => {
                let rollout = self
                    .required(&strategy.rollout, &strategy.name, "rollout", "rollout = 25")
                    .and_then(|rollout| self.percent(rollout));
                let stickiness = match &strategy.stickiness {
                    Some(text) => self.stickiness(text),
                    None => Some(Stickiness::Default),
                };
                Some(StrategyKind::FlexibleRollout {
                    rollout: rollout?,
                    stickiness: stickiness?,
                    group_id,
                })
            }
            "gradualRolloutUserId" | "gradualRolloutSessionId" => {
                let percentage = self
                    .required(
                        &strategy.percentage,
                        &strategy.name,
                        "percentage",
                        "percentage = 25",
                    )
                    .and_then(|percentage| self.percent(percentage))?;
                // Unleash hashes these with an empty group when none is given; a flag
                // file groups by the flag's name instead, as flexibleRollout does, so
                // that two flags at 10% do not turn on for the same users.
                let group_id = group_id.or_else(|| Some(flag_name.to_string()));
                Some(if name == "gradualRolloutUserId" {
                    StrategyKind::GradualRolloutUserId {
                        percentage,
                        group_id,
                    }
                } else {
                    StrategyKind::GradualRolloutSessionId {
                        percentage,
                        group_id,
                    }
                })
            }
            "gradualRolloutRandom" => self
                .required(
                    &strategy.percentage,
                    &strategy.name,
                    "percentage",
                    "percentage = 25",
                )
                .and_then(|percentage| self.percent(percentage))
                .map(|percentage| StrategyKind::GradualRolloutRandom { percentage }),
            _ => self
                .required(
                    &strategy.ips,
                    &strategy.name,
                    "ips",
                    "ips = [\"10.0.0.0/8\"]",
                )
                .and_then(|ips| self.addresses(ips))
                .map(|addresses| StrategyKind::RemoteAddress { addresses }),
        };
        if !ok {
            return None;
        }
        Some(Strategy {
            kind: kind?,
            constraints: constraints?,
            segments: segment_ids?,
            variants: variants?,
        })
    }

    fn required<'w, T>(
        &mut self,
        value: &'w Option<T>,
        name: &Text,
        key: &str,
        example: &str,
    ) -> Option<&'w T> {
        if value.is_none() {
            self.report(
                name.span(),
                format!(
                    "strategy {:?} needs `{key}`: add e.g. {example}",
                    name.get_ref()
                ),
            );
        }
        value.as_ref()
    }

    fn percent(&mut self, value: &Spanned<f64>) -> Option<Percent> {
        Percent::new(*value.get_ref())
            .map_err(|error| self.report(value.span(), error.0))
            .ok()
    }

    fn list(&mut self, values: &Spanned<Vec<Spanned<Scalar>>>, key: &str) -> Option<Vec<String>> {
        let list: Vec<String> = values
            .get_ref()
            .iter()
            .map(|v| v.get_ref().text())
            .collect();
        if list.is_empty() {
            self.report(
                values.span(),
                format!("`{key}` is empty: list at least one value"),
            );
            return None;
        }
        Some(list)
    }

    fn addresses(&mut self, ips: &Spanned<Vec<Text>>) -> Option<Vec<AddressEntry>> {
        if ips.get_ref().is_empty() {
            self.report(
                ips.span(),
                "`ips` is empty: list at least one address or network",
            );
            return None;
        }
        let mut addresses = Some(Vec::new());
        for ip in ips.get_ref() {
            match ip.get_ref().parse::<AddressRange>() {
                Ok(range) => {
                    if let Some(list) = &mut addresses {
                        list.push(AddressEntry::Range(range));
                    }
                }
                Err(error) => {
                    self.report(ip.span(), error.to_string());
                    addresses = None;
                }
            }
        }
        addresses
    }

    fn constraints(&mut self, wires: &[Spanned<ConstraintWire>]) -> Option<Vec<Constraint>> {
        let constraints: Vec<Option<Constraint>> =
            wires.iter().map(|wire| self.constraint(wire)).collect();
        constraints.into_iter().collect()
    }

    fn constraint(&mut self, wire: &Spanned<ConstraintWire>) -> Option<Constraint> {
        let constraint = wire.get_ref();
        let operator = constraint.operator.get_ref().as_str();
        let field = constraint.field.get_ref();
        if field.trim().is_empty() {
            self.report(
                constraint.field.span(),
                "`field` is empty: name a context field, e.g. environment",
            );
            return None;
        }
        if !OPERATORS.contains(&operator) {
            self.report(
                constraint.operator.span(),
                format!(
                    "unknown operator {operator:?}: use one of {}",
                    OPERATORS.join(", ")
                ),
            );
            return None;
        }
        let case_insensitive = match &constraint.case_insensitive {
            Some(flag)
                if *flag.get_ref() && !(operator.starts_with("STR_") || operator == "REGEX") =>
            {
                self.report(
                    flag.span(),
                    format!("`case_insensitive` does not apply to {operator}: only the STR_ operators and REGEX can ignore case"),
                );
                return None;
            }
            Some(flag) => *flag.get_ref(),
            None => false,
        };
        let (values, value) = if takes_list(operator) {
            if let Some(value) = &constraint.value {
                self.report(
                    value.span(),
                    format!(
                        "{operator} compares with a list: write `values = [...]` instead of `value`"
                    ),
                );
                return None;
            }
            let Some(values) = &constraint.values else {
                self.report(
                    constraint.operator.span(),
                    format!("{operator} needs `values`, e.g. values = [\"production\"]"),
                );
                return None;
            };
            let list = self.list(values, "values")?;
            if operator == "IN_CIDR" {
                let mut ok = true;
                for entry in values.get_ref() {
                    if let Err(error) = entry.get_ref().text().parse::<AddressRange>() {
                        self.report(entry.span(), error.to_string());
                        ok = false;
                    }
                }
                if !ok {
                    return None;
                }
            }
            (list, None)
        } else {
            if let Some(values) = &constraint.values {
                self.report(
                    values.span(),
                    format!("{operator} compares with one value: write `value = ...` instead of `values`"),
                );
                return None;
            }
            let Some(value) = &constraint.value else {
                self.report(
                    constraint.operator.span(),
                    format!("{operator} needs `value`, e.g. {}", example_value(operator)),
                );
                return None;
            };
            (Vec::new(), Some(value))
        };
        let condition = read_condition(
            operator,
            &values,
            value.map(|v| v.get_ref().text()).as_deref(),
            case_insensitive,
        );
        if let Condition::Unreadable { reason, .. } = &condition {
            let span = value.map_or(constraint.operator.span(), Spanned::span);
            self.report(span, format!("{operator}: {reason}"));
            return None;
        }
        Some(Constraint {
            context_name: field.as_str().into(),
            condition,
            inverted: constraint.inverted,
            case_insensitive,
        })
    }

    /// Checks a list of variants and gives each its share of Unleash's 1000.
    fn variants(&mut self, wires: &[Spanned<VariantWire>], owner: &str) -> Option<Vec<Variant>> {
        let mut ok = true;
        let mut seen = BTreeSet::new();
        let mut fixed_total = 0u32;
        let mut variable = 0u32;
        // Weights in tenths of a percent, `None` for a variable one.
        let mut tenths = Vec::new();
        for wire in wires {
            let variant = wire.get_ref();
            let name = variant.name.get_ref();
            if name.trim().is_empty() {
                self.report(variant.name.span(), "a variant needs a name");
                ok = false;
            } else if !seen.insert(name.clone()) {
                self.report(
                    variant.name.span(),
                    format!(
                        "variant {name:?} appears twice in {owner}: variant names must be unique"
                    ),
                );
                ok = false;
            }
            match &variant.weight {
                Some(weight) => {
                    let scaled = weight.get_ref() * 10.0;
                    let whole = scaled.round();
                    if !(0.0..=1000.0).contains(&scaled) || (scaled - whole).abs() > 1e-6 {
                        self.report(
                            weight.span(),
                            format!(
                                "weight {} is not valid: use a percentage from 0 to 100 with at most one decimal",
                                weight.get_ref()
                            ),
                        );
                        ok = false;
                        tenths.push(Some(0));
                    } else {
                        fixed_total += whole as u32;
                        tenths.push(Some(whole as u32));
                    }
                }
                None => {
                    variable += 1;
                    tenths.push(None);
                }
            }
        }
        if ok && !wires.is_empty() {
            let first = wires[0].span();
            if fixed_total > TOTAL_WEIGHT {
                self.report(
                    first,
                    format!(
                        "the weights in {owner} add up to {}%: they may add up to 100% at most",
                        f64::from(fixed_total) / 10.0
                    ),
                );
                ok = false;
            } else if variable == 0 && fixed_total != TOTAL_WEIGHT {
                self.report(
                    first,
                    format!(
                        "the weights in {owner} add up to {}%: make them add up to 100%, or leave a variant without a weight to take the rest",
                        f64::from(fixed_total) / 10.0
                    ),
                );
                ok = false;
            } else if variable > 0 && fixed_total == TOTAL_WEIGHT {
                self.report(
                    first,
                    format!(
                        "the weights in {owner} already add up to 100%: the variants without a weight would never be given"
                    ),
                );
                ok = false;
            }
        }
        let remaining = TOTAL_WEIGHT.saturating_sub(fixed_total);
        let (share, extra) = remaining
            .checked_div(variable)
            .zip(remaining.checked_rem(variable))
            .unwrap_or((0, 0));
        let mut variable_seen = 0;
        let mut variants = Vec::new();
        for (wire, weight) in wires.iter().zip(tenths) {
            let variant = wire.get_ref();
            let (weight, weight_type) = match weight {
                Some(weight) => (weight, WeightType::Fix),
                None => {
                    variable_seen += 1;
                    let bonus = u32::from(variable_seen <= extra);
                    (share + bonus, WeightType::Variable)
                }
            };
            let payload = variant
                .payload
                .as_ref()
                .and_then(|payload| self.payload(payload));
            if variant.payload.is_some() && payload.is_none() {
                ok = false;
            }
            let overrides: Option<Vec<Override>> = variant
                .overrides
                .iter()
                .map(|rule| {
                    let rule = rule.get_ref();
                    let values = self.list(&rule.values, "values")?;
                    if rule.field.get_ref().trim().is_empty() {
                        self.report(
                            rule.field.span(),
                            "`field` is empty: name a context field, e.g. userId",
                        );
                        return None;
                    }
                    Some(Override {
                        context_name: rule.field.get_ref().as_str().into(),
                        values,
                    })
                })
                .collect();
            let Some(overrides) = overrides else {
                ok = false;
                continue;
            };
            variants.push(Variant {
                name: variant.name.get_ref().clone(),
                weight,
                weight_type,
                stickiness: None,
                payload,
                overrides,
            });
        }
        ok.then_some(variants)
    }

    fn payload(&mut self, wire: &Spanned<PayloadWire>) -> Option<Payload> {
        let payload = wire.get_ref();
        let kind = payload.kind.get_ref().as_str();
        let value = payload.value.get_ref();
        if !PAYLOAD_TYPES.contains(&kind) {
            self.report(
                payload.kind.span(),
                format!(
                    "unknown payload type {kind:?}: use one of {}",
                    PAYLOAD_TYPES.join(", ")
                ),
            );
            return None;
        }
        let problem = match kind {
            "json" => serde_json::from_str::<serde_json::Value>(value)
                .err()
                .map(|error| format!("the payload is not valid JSON ({error})")),
            "number" => value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|number| number.is_finite())
                .is_none()
                .then(|| format!("the payload {value:?} is not a number")),
            _ => None,
        };
        if let Some(problem) = problem {
            self.report(payload.value.span(), problem);
            return None;
        }
        Some(Payload {
            kind: kind.to_string(),
            value: value.clone(),
        })
    }
}

/// An example `value` for an operator, for messages.
fn example_value(operator: &str) -> &'static str {
    if operator.starts_with("NUM_") {
        "value = 10"
    } else if operator.starts_with("DATE_") {
        "value = \"2026-01-01T00:00:00Z\""
    } else if operator.starts_with("SEMVER_") {
        "value = \"2.1.0\""
    } else {
        "value = \"^[a-z]+$\""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{Context, SeededRandom};

    fn parse(text: &str) -> FlagSet {
        parse_flag_file("flags.toml", text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn problems(text: &str) -> Vec<String> {
        match parse_flag_file("flags.toml", text) {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(error) => error.problems().iter().map(ToString::to_string).collect(),
        }
    }

    const FULL: &str = r#"
[flags.new-checkout]
enabled = true
description = "One-page checkout"
variant_stickiness = "userId"
depends_on = [{ flag = "payments-v2" }, { flag = "old-cart", enabled = false }]

[[flags.new-checkout.strategies]]
name = "flexibleRollout"
rollout = 25
stickiness = "tenant"
constraints = [
  { field = "environment", operator = "IN", values = ["production"] },
  { field = "appVersion", operator = "SEMVER_GTE", value = "2.1.0" },
  { field = "email", operator = "STR_ENDS_WITH", values = ["@Example.com"], case_insensitive = true },
  { field = "seats", operator = "NUM_GT", value = 10 },
  { field = "country", operator = "IN", values = ["NO"], inverted = true },
]
segments = ["beta"]

[[flags.new-checkout.strategies.variants]]
name = "wide"

[[flags.new-checkout.strategies]]
name = "userWithId"
user_ids = ["alice", 42]

[[flags.new-checkout.variants]]
name = "blue"
weight = 33.3
payload = { type = "json", value = '{"color": "blue"}' }
overrides = [{ field = "userId", values = ["carol"] }]

[[flags.new-checkout.variants]]
name = "green"

[[flags.new-checkout.variants]]
name = "red"

[flags.payments-v2]
enabled = true

[flags.old-cart]
enabled = false

[segments.beta]
constraints = [{ field = "plan", operator = "IN", values = ["beta"] }]
"#;

    #[test]
    fn the_documented_format_reads_into_the_model() {
        let flags = parse(FULL);
        assert_eq!(flags.len(), 3);
        let flag = flags.flag("new-checkout").unwrap();
        assert!(flag.enabled);
        assert_eq!(flag.description.as_deref(), Some("One-page checkout"));
        assert_eq!(
            flag.strategies[0].kind,
            StrategyKind::FlexibleRollout {
                rollout: Percent::new(25.0).unwrap(),
                stickiness: Stickiness::Field("tenant".to_string()),
                group_id: None,
            }
        );
        assert_eq!(flag.strategies[0].constraints.len(), 5);
        assert_eq!(flag.strategies[0].segments, vec!["beta".to_string()]);
        assert_eq!(flag.strategies[0].variants[0].weight, 1000);
        assert_eq!(
            flag.strategies[1].kind,
            StrategyKind::UserWithId {
                user_ids: vec!["alice".to_string(), "42".to_string()]
            }
        );
        // 33.3% fixed leaves 667 for two variable variants: 334 and 333.
        let weights: Vec<(u32, WeightType)> = flag
            .variants
            .iter()
            .map(|v| (v.weight, v.weight_type))
            .collect();
        assert_eq!(
            weights,
            vec![
                (333, WeightType::Fix),
                (334, WeightType::Variable),
                (333, WeightType::Variable)
            ]
        );
        assert!(
            flag.variants
                .iter()
                .all(|v| v.stickiness == Some(Stickiness::Field("userId".to_string())))
        );
        assert_eq!(flag.dependencies.len(), 2);
        assert!(!flag.dependencies[1].enabled);
        assert!(flags.segment("beta").is_some());
    }

    #[test]
    fn the_documented_format_evaluates_as_written() {
        let flags = parse(FULL);
        let mut random = SeededRandom::new(5);
        let alice = Context::parse_json(r#"{"userId": "alice"}"#).unwrap();
        let evaluation = flags.evaluate("new-checkout", &alice, &mut random).unwrap();
        assert!(evaluation.enabled, "alice is listed by userWithId");
        let carol =
            Context::parse_json(r#"{"userId": "carol", "environment": "production"}"#).unwrap();
        assert!(
            !flags.is_enabled("new-checkout", &carol, &mut random),
            "carol is in no strategy"
        );
        assert!(!flags.is_enabled("old-cart", &alice, &mut random));
    }

    #[test]
    fn doc_example_in_parse_flag_file_is_valid() {
        let doc = include_str!("file.rs");
        let start = doc.find("/// ```toml\n").unwrap() + "/// ```toml\n".len();
        let end = start + doc[start..].find("/// ```\n").unwrap();
        let example: String = doc[start..end]
            .lines()
            .map(|line| {
                line.strip_prefix("/// ")
                    .unwrap_or(line.trim_start_matches("///"))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let example = example.replace(
            "[flags.new-checkout]",
            "[flags.payments-v2]\nenabled = true\n[flags.old-cart]\nenabled = false\n[flags.theme]\nenabled = true\n[[flags.theme.variants]]\nname = \"dark\"\n\n[flags.new-checkout]",
        );
        let flags = parse(&example);
        assert!(flags.flag("new-checkout").is_some());
    }

    #[test]
    fn each_rule_is_reported_where_it_is_broken() {
        let cases: &[(&str, &str)] = &[
            ("", "1:1: no flags are defined"),
            ("[flags.a]\n", "1:8: flag \"a\" needs `enabled = true`"),
            (
                "[flags.\"a b\"]\nenabled = true\n",
                "1:8: flag name \"a b\" is not valid",
            ),
            (
                "[flags.a]\nenabled = true\ncolour = 1\n",
                "3:1: unknown key `colour`",
            ),
            (
                "[flags.a]\nenabled = \"yes\"\n",
                "2:11: invalid type: string \"yes\", expected true or false",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"magic\"\n",
                "4:8: unknown strategy \"magic\": use one of default, userWithId",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"flexibleRollout\"\n",
                "4:8: strategy \"flexibleRollout\" needs `rollout`: add e.g. rollout = 25",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"flexibleRollout\"\nrollout = 120\n",
                "5:11: percentage 120 is out of range",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nrollout = 10\n",
                "5:11: `rollout` does not apply to strategy \"default\": remove it (it takes no parameters)",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"userWithId\"\nuser_ids = []\n",
                "5:12: `user_ids` is empty",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"remoteAddress\"\nips = [\"10.0.0.0/8\", \"nope\"]\n",
                "5:22: \"nope\" is not an IP address",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nsegments = [\"beta\"]\n",
                "5:13: segment \"beta\" is not defined",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"LIKE\", values = [\"y\"] }]\n",
                "5:42: unknown operator \"LIKE\"",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"NUM_GT\", value = \"ten\" }]\n",
                "5:60: NUM_GT: \"ten\" is not a number",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"NUM_GT\", values = [1] }]\n",
                "5:61: NUM_GT compares with one value",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"IN\", value = \"y\" }]\n",
                "5:56: IN compares with a list",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"IN\" }]\n",
                "5:42: IN needs `values`",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"SEMVER_GT\" }]\n",
                "5:42: SEMVER_GT needs `value`, e.g. value = \"2.1.0\"",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"IN\", values = [\"y\"], case_insensitive = true }]\n",
                "5:83: `case_insensitive` does not apply to IN",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"REGEX\", value = \"(?=a)\" }]\n",
                "5:59: REGEX: pattern \"(?=a)\" is not supported at character 3: look-ahead",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"default\"\nconstraints = [{ field = \"x\", operator = \"IN_CIDR\", values = [\"10.0.0.0/8\", \"10.0.0.0/99\"] }]\n",
                "5:77: \"10.0.0.0/99\" is not an IP address",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.variants]]\nname = \"x\"\nweight = 60\n[[flags.a.variants]]\nname = \"y\"\nweight = 30\n",
                "3:1: the weights in the flag add up to 90%: make them add up to 100%",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.variants]]\nname = \"x\"\nweight = 100\n[[flags.a.variants]]\nname = \"y\"\n",
                "already add up to 100%",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.variants]]\nname = \"x\"\nweight = 12.25\n",
                "5:10: weight 12.25 is not valid",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.variants]]\nname = \"x\"\n[[flags.a.variants]]\nname = \"x\"\n",
                "6:8: variant \"x\" appears twice in the flag",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.variants]]\nname = \"x\"\npayload = { type = \"yaml\", value = \"a: 1\" }\n",
                "5:20: unknown payload type \"yaml\"",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.variants]]\nname = \"x\"\npayload = { type = \"json\", value = \"{\" }\n",
                "5:36: the payload is not valid JSON",
            ),
            (
                "[flags.a]\nenabled = true\n[[flags.a.variants]]\nname = \"x\"\npayload = { type = \"number\", value = \"many\" }\n",
                "5:38: the payload \"many\" is not a number",
            ),
            (
                "[flags.a]\nenabled = true\nvariant_stickiness = \"userId\"\n",
                "3:22: `variant_stickiness` has no variants",
            ),
            (
                "[flags.a]\nenabled = true\ndepends_on = [{ flag = \"b\" }]\n",
                "3:24: flag \"a\" depends on \"b\", which is not defined",
            ),
            (
                "[flags.a]\nenabled = true\ndepends_on = [{ flag = \"a\" }]\n",
                "3:24: flag \"a\" cannot depend on itself",
            ),
            (
                "[flags.a]\nenabled = true\ndepends_on = [{ flag = \"b\" }]\n[flags.b]\nenabled = true\ndepends_on = [{ flag = \"c\" }]\n[flags.c]\nenabled = true\n",
                "3:24: flag \"a\" depends on \"b\", which depends on another flag itself",
            ),
            (
                "[flags.a]\nenabled = true\ndepends_on = [{ flag = \"b\", enabled = false, variants = [\"v\"] }]\n[flags.b]\nenabled = true\n",
                "3:58: `variants` only applies when the parent must be on",
            ),
            (
                "[flags.a]\nenabled = true\n[segments.\"\"]\nconstraints = []\n",
                "3:11: segment name \"\" is not valid",
            ),
        ];
        let mut failures = Vec::new();
        for (text, expected) in cases {
            let found = problems(text);
            if !found.iter().any(|problem| problem.contains(expected)) {
                failures.push(format!("expected {expected:?} in {found:#?}\nfor:\n{text}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let found = problems(
            "[flags.a]\n[flags.b]\nenabled = true\n[[flags.b.strategies]]\nname = \"flexibleRollout\"\nrollout = 101\n",
        );
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].starts_with("flags.toml:1:8:"), "{found:#?}");
        assert!(found[1].starts_with("flags.toml:6:11:"), "{found:#?}");
    }

    #[test]
    fn rollout_groups_default_to_the_flag_in_every_format() {
        // A Ripcord file leaves the group unset; evaluation then hashes by the flag's
        // name for flexibleRollout, as Unleash does.
        let flags = parse(
            "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"flexibleRollout\"\nrollout = 50\n",
        );
        let explicit = parse(
            "[flags.a]\nenabled = true\n[[flags.a.strategies]]\nname = \"flexibleRollout\"\nrollout = 50\ngroup_id = \"a\"\n",
        );
        let mut random = SeededRandom::new(1);
        for id in 0..200 {
            let context = Context::parse_json(&format!("{{\"userId\": \"{id}\"}}")).unwrap();
            assert_eq!(
                flags.is_enabled("a", &context, &mut random),
                explicit.is_enabled("a", &context, &mut random)
            );
        }
    }
}
