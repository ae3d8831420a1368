//! The flag model: what a flag means once it has been read, whichever file it came
//! from (Ripcord's TOML or an Unleash feature state).
//!
//! The names follow Unleash's (strategies, constraints, segments, variants) so that a
//! flag carried over from Unleash means the same thing here. Values that need reading
//! (numbers, dates, versions, address ranges, patterns) are read once, when the flag
//! is built, so evaluating a flag never parses anything.

use std::fmt;

use serde::Serialize;

use super::context::FieldName;
use super::network::AddressRange;
use super::regex::Regex;
use super::semver::Version;
use crate::domain::Percent;
use crate::time::Timestamp;

/// A feature flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// The flag's name, unique within its [`super::FlagSet`].
    pub name: String,
    /// The on/off switch. A flag that is off is off for everyone, whatever its
    /// strategies say.
    pub enabled: bool,
    /// What the flag is for, when its file says.
    pub description: Option<String>,
    /// The flag is on for a context when any strategy holds for it. A flag with no
    /// strategies is on for everyone (while `enabled`).
    pub strategies: Vec<Strategy>,
    /// The variants handed out to those for whom the flag is on, unless the strategy
    /// that turned it on has variants of its own.
    pub variants: Vec<Variant>,
    /// Other flags that must be in a given state for this one to be on.
    pub dependencies: Vec<Dependency>,
}

/// One way a flag can be on: an activation rule, narrowed by constraints and segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    /// The activation rule and its parameters.
    pub kind: StrategyKind,
    /// Constraints that must all hold, together with those of every segment.
    pub constraints: Vec<Constraint>,
    /// The segments (by id) whose constraints also apply. A segment that does not
    /// exist makes the strategy fail, so that a dangling reference never widens it.
    pub segments: Vec<String>,
    /// Variants that replace the flag's own when this strategy is the one that held.
    pub variants: Vec<Variant>,
}

/// The activation rules Unleash defines, with their parameters read.
#[derive(Debug, Clone, PartialEq)]
pub enum StrategyKind {
    /// `default`: on for everyone.
    Default,
    /// `userWithId`: on for the listed user ids.
    UserWithId {
        /// The user ids, as written (compared exactly).
        user_ids: Vec<String>,
    },
    /// `gradualRolloutUserId`: on for a percentage of users, by user id.
    GradualRolloutUserId {
        /// The share of users for whom the flag is on.
        percentage: Percent,
        /// The hash group; without one Unleash hashes with an empty group.
        group_id: Option<String>,
    },
    /// `gradualRolloutSessionId`: on for a percentage of sessions, by session id.
    GradualRolloutSessionId {
        /// The share of sessions for whom the flag is on.
        percentage: Percent,
        /// The hash group; without one Unleash hashes with an empty group.
        group_id: Option<String>,
    },
    /// `gradualRolloutRandom`: on for a random percentage of evaluations.
    GradualRolloutRandom {
        /// The chance, in percent, that an evaluation is on.
        percentage: Percent,
    },
    /// `flexibleRollout`: on for a percentage of contexts, bucketed by a chosen field.
    FlexibleRollout {
        /// The share of contexts for whom the flag is on.
        rollout: Percent,
        /// Which context value decides the bucket.
        stickiness: Stickiness,
        /// The hash group; the flag's name when absent.
        group_id: Option<String>,
    },
    /// `remoteAddress`: on for the listed client addresses and networks.
    RemoteAddress {
        /// The entries of the `IPs` list.
        addresses: Vec<AddressEntry>,
    },
    /// A strategy Ripcord does not implement (a custom strategy, or one that needs
    /// facts the context does not carry, such as `applicationHostname`). It never
    /// holds, as in every Unleash SDK that does not know a strategy.
    Unknown {
        /// The strategy's name as written.
        name: String,
    },
}

impl StrategyKind {
    /// The strategy's name as Unleash writes it, e.g. `flexibleRollout`.
    pub fn name(&self) -> &str {
        match self {
            StrategyKind::Default => "default",
            StrategyKind::UserWithId { .. } => "userWithId",
            StrategyKind::GradualRolloutUserId { .. } => "gradualRolloutUserId",
            StrategyKind::GradualRolloutSessionId { .. } => "gradualRolloutSessionId",
            StrategyKind::GradualRolloutRandom { .. } => "gradualRolloutRandom",
            StrategyKind::FlexibleRollout { .. } => "flexibleRollout",
            StrategyKind::RemoteAddress { .. } => "remoteAddress",
            StrategyKind::Unknown { name } => name,
        }
    }
}

/// One entry of a `remoteAddress` strategy's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressEntry {
    /// An address or a network in CIDR notation.
    Range(AddressRange),
    /// Text that is neither. Unleash ignores such entries except for an exact match
    /// with the context's address, and so does Ripcord.
    Other(String),
}

/// Which context value a rollout or a variant is bucketed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    /// The user id, else the session id, else a random value (for variants, the
    /// remote address comes before the random value).
    Default,
    /// A random value on every evaluation: no stickiness at all.
    Random,
    /// A context field by name (`userId`, `sessionId` or any other field). A rollout
    /// is off for a context without it; a variant is then picked at random.
    Field(String),
}

impl Stickiness {
    /// Reads Unleash's spelling: `default`, `random`, or a context field's name.
    pub fn parse(text: &str) -> Self {
        match text {
            "" | "default" => Stickiness::Default,
            "random" => Stickiness::Random,
            field => Stickiness::Field(field.to_string()),
        }
    }
}

impl fmt::Display for Stickiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stickiness::Default => f.write_str("default"),
            Stickiness::Random => f.write_str("random"),
            Stickiness::Field(field) => f.write_str(field),
        }
    }
}

/// A condition on one context field.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The context field, e.g. `environment`, `userId` or a custom property.
    pub context_name: FieldName,
    /// The operator and its operand, read.
    pub condition: Condition,
    /// Whether the result is negated. It does not apply to an unknown operator, which
    /// never holds.
    pub inverted: bool,
    /// Whether the `STR_*` operators and `REGEX` ignore case. `IN` and `NOT_IN`
    /// always compare exactly, as in Unleash.
    pub case_insensitive: bool,
}

/// An operator with its operand, read once.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `IN`: the value is one of these.
    In(Vec<String>),
    /// `NOT_IN`: the value is absent or none of these.
    NotIn(Vec<String>),
    /// `STR_CONTAINS`: the value contains one of these.
    StrContains(Vec<String>),
    /// `STR_STARTS_WITH`: the value starts with one of these.
    StrStartsWith(Vec<String>),
    /// `STR_ENDS_WITH`: the value ends with one of these.
    StrEndsWith(Vec<String>),
    /// `NUM_EQ`, `NUM_GT`, ...: the value, read as a number, compared with this one.
    Number(Comparison, f64),
    /// `DATE_AFTER` and `DATE_BEFORE`: the value, read as an RFC 3339 instant,
    /// strictly after or before this one.
    Date(DateComparison, Timestamp),
    /// `SEMVER_EQ`, `SEMVER_GT`, ...: the value, read as a semantic version,
    /// compared with this one by semver precedence.
    Semver(Comparison, Version),
    /// `IN_CIDR`: the value is an IP address inside one of these networks.
    InCidr(Vec<AddressRange>),
    /// `REGEX`: the pattern matches somewhere in the value.
    Regex(Regex),
    /// A known operator whose operand could not be read (say `NUM_GT` with "abc").
    /// Like Unleash, Ripcord reads the operator as false, then applies `inverted`.
    Unreadable {
        /// The operator's name, e.g. `NUM_GT`.
        operator: String,
        /// Why the operand could not be read.
        reason: String,
    },
    /// An operator Ripcord does not know. It never holds, inverted or not, because
    /// nothing is known about what it would have meant.
    UnknownOperator(String),
}

impl Condition {
    /// The operator's name as Unleash writes it, e.g. `STR_STARTS_WITH`.
    pub fn operator(&self) -> &str {
        match self {
            Condition::In(_) => "IN",
            Condition::NotIn(_) => "NOT_IN",
            Condition::StrContains(_) => "STR_CONTAINS",
            Condition::StrStartsWith(_) => "STR_STARTS_WITH",
            Condition::StrEndsWith(_) => "STR_ENDS_WITH",
            Condition::Number(comparison, _) => match comparison {
                Comparison::Eq => "NUM_EQ",
                Comparison::Gt => "NUM_GT",
                Comparison::Gte => "NUM_GTE",
                Comparison::Lt => "NUM_LT",
                Comparison::Lte => "NUM_LTE",
            },
            Condition::Date(DateComparison::After, _) => "DATE_AFTER",
            Condition::Date(DateComparison::Before, _) => "DATE_BEFORE",
            Condition::Semver(comparison, _) => match comparison {
                Comparison::Eq => "SEMVER_EQ",
                Comparison::Gt => "SEMVER_GT",
                Comparison::Gte => "SEMVER_GTE",
                Comparison::Lt => "SEMVER_LT",
                Comparison::Lte => "SEMVER_LTE",
            },
            Condition::InCidr(_) => "IN_CIDR",
            Condition::Regex(_) => "REGEX",
            Condition::Unreadable { operator, .. } => operator,
            Condition::UnknownOperator(operator) => operator,
        }
    }
}

/// How a context value compares with a constraint's operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Equal.
    Eq,
    /// Strictly greater.
    Gt,
    /// Greater or equal.
    Gte,
    /// Strictly less.
    Lt,
    /// Less or equal.
    Lte,
}

impl Comparison {
    /// Whether `ordering` (of the context value against the operand) satisfies this.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            Comparison::Eq => ordering == Equal,
            Comparison::Gt => ordering == Greater,
            Comparison::Gte => ordering != Less,
            Comparison::Lt => ordering == Less,
            Comparison::Lte => ordering != Greater,
        }
    }
}

/// How a date constraint compares; both are strict, as in Unleash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateComparison {
    /// The context's instant is strictly after the operand.
    After,
    /// The context's instant is strictly before the operand.
    Before,
}

impl DateComparison {
    /// Whether the instant `at` (the context's) compares so with `operand`.
    pub fn holds(self, at: Timestamp, operand: Timestamp) -> bool {
        match self {
            DateComparison::After => at > operand,
            DateComparison::Before => at < operand,
        }
    }
}

/// A named set of constraints that strategies share.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The id strategies refer to it by (Unleash's numeric id, written in decimal, or
    /// the segment's name in a Ripcord flag file).
    pub id: String,
    /// Constraints that must all hold.
    pub constraints: Vec<Constraint>,
}

/// One variant of a flag or of a strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The variant's name, reported to the caller.
    pub name: String,
    /// Its share of the total weight of its list (Unleash's lists total 1000).
    pub weight: u32,
    /// How the weight was set; only informative once weights are computed.
    pub weight_type: WeightType,
    /// The stickiness of the list. Unleash reads it from the first variant only.
    pub stickiness: Option<Stickiness>,
    /// Data handed out with the variant.
    pub payload: Option<Payload>,
    /// Contexts that get this variant whatever their bucket.
    pub overrides: Vec<Override>,
}

/// How a variant's weight was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// A weight set by hand.
    Fix,
    /// A share of what the fixed weights leave.
    Variable,
}

/// Data attached to a variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// The payload's type: `string`, `json`, `csv` or `number` in Unleash.
    #[serde(rename = "type")]
    pub kind: String,
    /// The payload itself, as text (a `json` payload is JSON text).
    pub value: String,
}

/// Contexts that always get a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The context field to look at.
    pub context_name: FieldName,
    /// The values of that field that get the variant.
    pub values: Vec<String>,
}

/// A condition on another flag (its parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The parent flag's name.
    pub flag: String,
    /// Whether the parent must be on (`true`) or off (`false`).
    pub enabled: bool,
    /// When the parent must be on: the variants it must have given, any if empty.
    pub variants: Vec<String>,
}

/// The variant an evaluation hands out, in the shape Unleash's SDKs return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantResult {
    /// The variant's name, or `disabled` when there is none.
    pub name: String,
    /// Whether a variant was given (false for `disabled`).
    pub enabled: bool,
    /// Whether the flag itself is on.
    pub feature_enabled: bool,
    /// The variant's payload, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
}

impl VariantResult {
    /// The name Unleash gives to "no variant".
    pub const DISABLED: &'static str = "disabled";

    /// No variant: the flag is off, or it is on but has no variant to give.
    pub fn disabled(feature_enabled: bool) -> Self {
        Self {
            name: Self::DISABLED.to_string(),
            enabled: false,
            feature_enabled,
            payload: None,
        }
    }

    /// The given variant, of a flag that is on.
    pub fn of(variant: &Variant) -> Self {
        Self {
            name: variant.name.clone(),
            enabled: true,
            feature_enabled: true,
            payload: variant.payload.clone(),
        }
    }
}

/// What one flag gives one context, borrowed from the flag: no allocation, for callers
/// that write the answer out themselves (OFREP).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome<'a> {
    /// The flag is off for this context.
    Off,
    /// The flag is on and has no variant to give (Unleash's `disabled` variant).
    On,
    /// The flag is on and gives this variant.
    Variant(&'a Variant),
}

impl Outcome<'_> {
    /// The same outcome in the shape Unleash's SDKs return.
    pub fn evaluation(self) -> Evaluation {
        match self {
            Outcome::Off => Evaluation::off(),
            Outcome::On => Evaluation {
                enabled: true,
                variant: VariantResult::disabled(true),
            },
            Outcome::Variant(variant) => Evaluation {
                enabled: true,
                variant: VariantResult::of(variant),
            },
        }
    }
}

/// The outcome of evaluating one flag for one context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// Whether the flag is on.
    pub enabled: bool,
    /// The variant handed out.
    pub variant: VariantResult,
}

impl Evaluation {
    /// A flag that is off.
    pub fn off() -> Self {
        Self {
            enabled: false,
            variant: VariantResult::disabled(false),
        }
    }
}
