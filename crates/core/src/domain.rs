//! Domain newtypes: names, weights, slots, ARNs and identifiers.
//!
//! Each constructor checks its input and returns a `Result`, so a value of one of
//! these types is valid by construction and the rest of the engine never re-checks it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a domain value was refused. The message says what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(message: impl Into<String>) -> InvalidValue {
    InvalidValue(message.into())
}

/// A service's name: 1 to 63 characters of lowercase letters, digits, `-` and `_`,
/// starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    /// Checks and wraps a service name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidValue> {
        let name = name.into();
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        let valid_start = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if name.is_empty() || name.len() > 63 || !valid_chars || !valid_start {
            return Err(invalid(format!(
                "service name {name:?} is not valid: use 1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
            )));
        }
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ServiceName> for String {
    fn from(value: ServiceName) -> Self {
        value.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A traffic weight in percent, 0 to 100 inclusive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u32", into = "u8")]
pub struct Weight(u8);

impl Weight {
    /// No traffic.
    pub const ZERO: Weight = Weight(0);
    /// All traffic.
    pub const FULL: Weight = Weight(100);

    /// Checks and wraps a weight.
    pub fn new(percent: u32) -> Result<Self, InvalidValue> {
        if percent > 100 {
            return Err(invalid(format!(
                "weight {percent} is out of range: use a whole percentage from 0 to 100"
            )));
        }
        Ok(Self(percent as u8))
    }

    /// The weight as a percentage.
    pub fn get(self) -> u8 {
        self.0
    }

    /// What is left of 100% after this weight.
    pub fn complement(self) -> Weight {
        Weight(100 - self.0)
    }
}

impl TryFrom<u32> for Weight {
    type Error = InvalidValue;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Weight> for u8 {
    fn from(value: Weight) -> Self {
        value.0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// One of a service's two target groups (or upstreams, in local mode).
///
/// Which slot is live changes with every successful deployment, as in CodeDeploy's
/// blue/green model: the names only tell the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// The first target group in the configuration.
    Blue,
    /// The second target group in the configuration.
    Green,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    /// The slot's name as used in configuration and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The traffic split between a service's two slots. The two weights always sum to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "WeightsWire", into = "WeightsWire")]
pub struct Weights {
    blue: Weight,
}

#[derive(Serialize, Deserialize)]
struct WeightsWire {
    blue: u32,
    green: u32,
}

impl TryFrom<WeightsWire> for Weights {
    type Error = InvalidValue;
    fn try_from(value: WeightsWire) -> Result<Self, Self::Error> {
        if value.blue + value.green != 100 {
            return Err(invalid(format!(
                "weights blue {} and green {} do not sum to 100",
                value.blue, value.green
            )));
        }
        Ok(Weights {
            blue: Weight::new(value.blue)?,
        })
    }
}

impl From<Weights> for WeightsWire {
    fn from(value: Weights) -> Self {
        WeightsWire {
            blue: value.blue.get().into(),
            green: value.blue.complement().get().into(),
        }
    }
}

impl Weights {
    /// All traffic on one slot.
    pub fn all_on(slot: Slot) -> Weights {
        Weights::split(slot, Weight::FULL)
    }

    /// `to_weight` on `to`, the rest on the other slot.
    pub fn split(to: Slot, to_weight: Weight) -> Weights {
        match to {
            Slot::Blue => Weights { blue: to_weight },
            Slot::Green => Weights {
                blue: to_weight.complement(),
            },
        }
    }

    /// Builds weights from two relative weights, as an ALB stores them (each 0 to 999).
    /// Percentages are rounded so that the two still sum to 100.
    pub fn from_relative(blue: u32, green: u32) -> Result<Weights, InvalidValue> {
        let total = u64::from(blue) + u64::from(green);
        if total == 0 {
            return Err(invalid(
                "both target groups have weight 0: no traffic is served",
            ));
        }
        let blue_percent = (u64::from(blue) * 100 + total / 2) / total;
        Ok(Weights {
            blue: Weight::new(blue_percent as u32)?,
        })
    }

    /// The weight on one slot.
    pub fn of(self, slot: Slot) -> Weight {
        match slot {
            Slot::Blue => self.blue,
            Slot::Green => self.blue.complement(),
        }
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "blue {} / green {}",
            self.of(Slot::Blue),
            self.of(Slot::Green)
        )
    }
}

/// A percentage with a fraction, 0 to 100 inclusive, for thresholds such as a 5xx rate.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Percent(f64);

impl Percent {
    /// Nothing: 0%.
    pub const ZERO: Percent = Percent(0.0);

    /// Checks and wraps a percentage.
    pub fn new(value: f64) -> Result<Self, InvalidValue> {
        if !value.is_finite() || !(0.0..=100.0).contains(&value) {
            return Err(invalid(format!(
                "percentage {value} is out of range: use a number from 0 to 100"
            )));
        }
        Ok(Self(value))
    }

    /// The percentage as a number from 0 to 100.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Percent {
    type Error = InvalidValue;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Percent> for f64 {
    fn from(value: Percent) -> Self {
        value.0
    }
}

/// Checks the shape `arn:<partition>:elasticloadbalancing:<region>:<account>:<resource>`
/// and that the resource starts with `prefix`.
fn check_elb_arn(arn: &str, what: &str, prefix: &str, example: &str) -> Result<(), InvalidValue> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "elasticloadbalancing"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].starts_with(prefix)
        && parts[5].len() > prefix.len();
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{arn:?} is not a {what} ARN: expected something like {example}"
        )))
    }
}

macro_rules! elb_arn {
    ($(#[$doc:meta])* $name:ident, $what:literal, $prefix:literal, $example:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps the ARN.
            pub fn new(arn: impl Into<String>) -> Result<Self, InvalidValue> {
                let arn = arn.into();
                check_elb_arn(&arn, $what, $prefix, $example)?;
                Ok(Self(arn))
            }

            /// The ARN as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

elb_arn!(
    /// The ARN of an ELBv2 target group.
    TargetGroupArn,
    "target group",
    "targetgroup/",
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-blue/0123456789abcdef"
);
elb_arn!(
    /// The ARN of an ALB listener.
    ListenerArn,
    "listener",
    "listener/app/",
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/web/0123456789abcdef/fedcba9876543210"
);
elb_arn!(
    /// The ARN of an ALB listener rule.
    ListenerRuleArn,
    "listener rule",
    "listener-rule/app/",
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/web/0123456789abcdef/fedcba9876543210/0011223344556677"
);

/// A deployment's identifier: printable ASCII without spaces, 1 to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeploymentId(String);

impl DeploymentId {
    /// Checks and wraps an identifier.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidValue> {
        let id = id.into();
        if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(invalid(format!(
                "deployment id {id:?} is not valid: use 1 to 128 printable characters without spaces"
            )));
        }
        Ok(Self(id))
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeploymentId {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<DeploymentId> for String {
    fn from(value: DeploymentId) -> Self {
        value.0
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_always_sum_to_100() {
        for w in 0..=100 {
            let weights = Weights::split(Slot::Green, Weight::new(w).unwrap());
            assert_eq!(
                weights.of(Slot::Blue).get() + weights.of(Slot::Green).get(),
                100
            );
            assert_eq!(weights.of(Slot::Green).get() as u32, w);
        }
        assert_eq!(Weights::all_on(Slot::Blue).of(Slot::Blue), Weight::FULL);
    }

    #[test]
    fn relative_weights_round_to_percentages() {
        let w = Weights::from_relative(1, 2).unwrap();
        assert_eq!(w.of(Slot::Blue).get(), 33);
        assert_eq!(w.of(Slot::Green).get(), 67);
        assert!(Weights::from_relative(0, 0).is_err());
        assert_eq!(
            Weights::from_relative(0, 999).unwrap(),
            Weights::all_on(Slot::Green)
        );
    }

    #[test]
    fn newtypes_refuse_bad_values() {
        assert!(Weight::new(101).is_err());
        assert!(ServiceName::new("Web").is_err());
        assert!(ServiceName::new("-web").is_err());
        assert!(ServiceName::new("").is_err());
        assert!(ServiceName::new("web-api_2").is_ok());
        assert!(Percent::new(f64::NAN).is_err());
        assert!(Percent::new(-0.1).is_err());
        assert!(
            TargetGroupArn::new(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/abc"
            )
            .is_ok()
        );
        assert!(
            TargetGroupArn::new(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/web/abc"
            )
            .is_err()
        );
        assert!(
            ListenerArn::new("arn:aws:elasticloadbalancing:eu-west-1:12345:listener/app/web/a/b")
                .is_err()
        );
        assert!(DeploymentId::new("has space").is_err());
    }

    #[test]
    fn weights_round_trip_through_json() {
        let w = Weights::split(Slot::Green, Weight::new(30).unwrap());
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(json, r#"{"blue":70,"green":30}"#);
        assert_eq!(serde_json::from_str::<Weights>(&json).unwrap(), w);
        assert!(serde_json::from_str::<Weights>(r#"{"blue":70,"green":20}"#).is_err());
    }
}
