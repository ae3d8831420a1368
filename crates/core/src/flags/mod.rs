//! Feature flags: the model, evaluation compatible bit for bit with Unleash's client
//! specification, and the two file formats flags are read from.
//!
//! - `model`: flags, strategies, constraints, segments, variants, dependencies, and the
//!   result of an evaluation in the shape Unleash's SDKs return.
//! - `context`: the context a flag is evaluated for, and its JSON form.
//! - `eval`: the evaluation rules, with randomness passed in ([`RandomSource`]).
//! - `constraint`, `semver`, `network`, `regex`: the operators and what they read.
//! - `murmur`: MurmurHash3 and Unleash's bucketing.
//! - `unleash`: Unleash's feature state JSON (`GET /api/client/features`).
//! - `file`: Ripcord's own flag file (TOML).
//! - `stored`: flags as a flag store keeps them (Unleash JSON), their edits, and the
//!   flag set read back from them.
//!
//! [`parse_flags`] reads either format, telling them apart by their first character.
//! Like the rest of the core, nothing here reads a clock, a file or the network.

mod constraint;
mod context;
mod eval;
mod file;
mod model;
pub mod murmur;
mod network;
mod regex;
mod semver;
pub mod stored;
pub mod to_unleash;
pub mod unleash;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

pub use constraint::{OPERATORS, read_condition};
pub use context::{Context, ContextError, FieldName};
pub use eval::{RandomSource, SeededRandom};
pub use file::parse_flag_file;
pub use model::{
    AddressEntry, Comparison, Condition, Constraint, DateComparison, Dependency, Evaluation, Flag,
    Outcome, Override, Payload, Segment, Stickiness, Strategy, StrategyKind, Variant,
    VariantResult, WeightType,
};
pub use network::{AddressRange, InvalidRange};
pub use regex::{Regex, RegexError};
pub use semver::{InvalidVersion, Version};
pub use unleash::UnleashStateError;

use crate::config::ConfigError;

/// A set of flags and the segments their strategies refer to: everything needed to
/// evaluate any of them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlagSet {
    /// The flags, sorted by name so that they are listed in order.
    flags: Vec<Flag>,
    /// Each flag's place in `flags`. Evaluation finds a flag by name on every call:
    /// one hash and one comparison, where a sorted tree compares names (which often
    /// share a long prefix) at every level.
    by_name: HashMap<String, usize, BuildNameHasher>,
    segments: BTreeMap<String, Segment>,
}

/// Hashes flag names for [`FlagSet`]'s index, eight bytes at a step.
///
/// The standard library's keyed SipHash guards a map against keys chosen to collide;
/// here the keys are the flags' names, written by whoever manages the flags, and a
/// caller only looks names up, so no one who asks can fill the map with collisions.
/// What matters is the cost of hashing on every evaluation, which SipHash triples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BuildNameHasher;

impl std::hash::BuildHasher for BuildNameHasher {
    type Hasher = NameHasher;

    fn build_hasher(&self) -> NameHasher {
        NameHasher(0)
    }
}

/// A multiply-and-rotate hash over 64-bit words (the scheme of Firefox's hash).
struct NameHasher(u64);

impl NameHasher {
    const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::MULTIPLIER);
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in words.by_ref() {
            self.add(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            // Shifted in byte by byte: copying them into a zeroed word through memory
            // stalls the load that reads the word back.
            self.add(
                rest.iter()
                    .rev()
                    .fold(0, |word, &byte| (word << 8) | u64::from(byte)),
            );
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The table picks buckets by the low bits: fold the well-mixed high bits in.
        self.0 ^ (self.0 >> 32)
    }
}

/// Two flags, or two segments, with one name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuplicateName {
    /// Two flags share a name.
    #[error("flag {0:?} is defined twice: flag names must be unique")]
    Flag(String),
    /// Two segments share an id.
    #[error("segment {0:?} is defined twice: segment ids must be unique")]
    Segment(String),
}

impl FlagSet {
    /// Gathers flags and segments.
    ///
    /// # Errors
    ///
    /// [`DuplicateName`] when two flags share a name or two segments an id, since
    /// evaluation could then not say which one it used.
    pub fn new(mut flags: Vec<Flag>, segments: Vec<Segment>) -> Result<Self, DuplicateName> {
        let mut names = HashSet::with_capacity(flags.len());
        if let Some(twice) = flags.iter().find(|flag| !names.insert(flag.name.as_str())) {
            return Err(DuplicateName::Flag(twice.name.clone()));
        }
        flags.sort_by(|a, b| a.name.cmp(&b.name));
        let mut by_name = HashMap::with_capacity_and_hasher(flags.len(), BuildNameHasher);
        for (index, flag) in flags.iter().enumerate() {
            by_name.insert(flag.name.clone(), index);
        }
        let mut set = FlagSet {
            flags,
            by_name,
            segments: BTreeMap::new(),
        };
        for segment in segments {
            if set.segments.contains_key(&segment.id) {
                return Err(DuplicateName::Segment(segment.id));
            }
            set.segments.insert(segment.id.clone(), segment);
        }
        Ok(set)
    }

    /// The flag of that name.
    pub fn flag(&self, name: &str) -> Option<&Flag> {
        self.by_name.get(name).map(|&index| &self.flags[index])
    }

    /// Every flag, in the order of their names.
    pub fn flags(&self) -> impl Iterator<Item = &Flag> {
        self.flags.iter()
    }

    /// The flags' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|flag| flag.name.as_str())
    }

    /// The segment with that id.
    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.get(id)
    }

    /// How many flags there are.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether there are no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// Evaluates a flag for a context: whether it is on and which variant it gives.
    /// `None` when there is no flag of that name.
    ///
    /// `random` is drawn from only by random rollouts and by stickiness that falls
    /// back to a random value; everything else depends on the context alone.
    pub fn evaluate(
        &self,
        name: &str,
        context: &Context,
        random: &mut dyn RandomSource,
    ) -> Option<Evaluation> {
        let flag = self.flag(name)?;
        Some(self.outcome(flag, context, random).evaluation())
    }

    /// What a flag of this set gives a context, borrowed from the flag: `evaluate`
    /// without a name lookup or an allocation.
    pub fn outcome<'a>(
        &'a self,
        flag: &'a Flag,
        context: &'a Context,
        random: &'a mut dyn RandomSource,
    ) -> Outcome<'a> {
        let mut evaluator = eval::Evaluator {
            flags: self,
            context,
            random,
        };
        evaluator.flag(flag)
    }

    /// Whether a flag is on for a context; an unknown flag is off, as in Unleash.
    pub fn is_enabled(&self, name: &str, context: &Context, random: &mut dyn RandomSource) -> bool {
        let Some(flag) = self.flag(name) else {
            return false;
        };
        let mut evaluator = eval::Evaluator {
            flags: self,
            context,
            random,
        };
        evaluator.is_on(flag)
    }

    /// The variant a context gets; an unknown flag gives the disabled variant, as in
    /// Unleash.
    pub fn variant(
        &self,
        name: &str,
        context: &Context,
        random: &mut dyn RandomSource,
    ) -> VariantResult {
        self.evaluate(name, context, random).map_or_else(
            || VariantResult::disabled(false),
            |evaluation| evaluation.variant,
        )
    }
}

/// Which format a flag file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagFormat {
    /// Ripcord's TOML flag file.
    Ripcord,
    /// An Unleash feature state (JSON).
    Unleash,
}

impl FlagFormat {
    /// Tells the formats apart: a JSON document starts with `{`, which no TOML file
    /// can (leading whitespace and a byte-order mark aside).
    pub fn detect(text: &str) -> FlagFormat {
        let start = text.trim_start_matches('\u{feff}').trim_start();
        if start.starts_with('{') {
            FlagFormat::Unleash
        } else {
            FlagFormat::Ripcord
        }
    }
}

impl fmt::Display for FlagFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlagFormat::Ripcord => "a Ripcord flag file",
            FlagFormat::Unleash => "an Unleash feature state",
        })
    }
}

/// Why a flag file could not be read, in the terms of its format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    /// A Ripcord flag file with problems, each at its line and column.
    #[error("{0}")]
    Ripcord(ConfigError),
    /// An Unleash feature state that is malformed.
    #[error("{0}")]
    Unleash(UnleashStateError),
}

/// Reads flags from either format, detected by [`FlagFormat::detect`]. `path` only
/// appears in error messages.
///
/// # Errors
///
/// A [`FlagsError`] with the problems found, in the terms of the detected format.
pub fn parse_flags(path: &str, text: &str) -> Result<(FlagFormat, FlagSet), FlagsError> {
    let format = FlagFormat::detect(text);
    let flags = match format {
        FlagFormat::Ripcord => parse_flag_file(path, text).map_err(FlagsError::Ripcord)?,
        FlagFormat::Unleash => {
            let text = text.trim_start_matches('\u{feff}');
            unleash::parse_state(text).map_err(FlagsError::Unleash)?
        }
    };
    Ok((format, flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_apart_by_their_first_character() {
        assert_eq!(
            FlagFormat::detect("{\"features\": []}"),
            FlagFormat::Unleash
        );
        assert_eq!(FlagFormat::detect("\u{feff}\n  {}"), FlagFormat::Unleash);
        assert_eq!(
            FlagFormat::detect("[flags.a]\nenabled = true"),
            FlagFormat::Ripcord
        );
        assert_eq!(FlagFormat::detect("# {comment}\n"), FlagFormat::Ripcord);
        assert_eq!(FlagFormat::detect(""), FlagFormat::Ripcord);
    }

    #[test]
    fn both_formats_read_to_the_same_flags() {
        let toml = "[flags.checkout]\nenabled = true\n\n[[flags.checkout.strategies]]\nname = \"userWithId\"\nuser_ids = [\"42\"]\n";
        let json = r#"{"version": 1, "features": [{"name": "checkout", "enabled": true,
            "strategies": [{"name": "userWithId", "parameters": {"userIds": "42"}}]}]}"#;
        let (toml_format, from_toml) = parse_flags("flags.toml", toml).unwrap();
        let (json_format, from_json) = parse_flags("state.json", json).unwrap();
        assert_eq!(toml_format, FlagFormat::Ripcord);
        assert_eq!(json_format, FlagFormat::Unleash);
        assert_eq!(from_toml, from_json);
    }

    #[test]
    fn names_must_be_unique() {
        let flag = |name: &str| Flag {
            name: name.to_string(),
            enabled: true,
            description: None,
            strategies: Vec::new(),
            variants: Vec::new(),
            dependencies: Vec::new(),
        };
        let error = FlagSet::new(vec![flag("a"), flag("a")], Vec::new()).unwrap_err();
        assert_eq!(error, DuplicateName::Flag("a".to_string()));
        let segment = || Segment {
            id: "1".to_string(),
            constraints: Vec::new(),
        };
        let error = FlagSet::new(Vec::new(), vec![segment(), segment()]).unwrap_err();
        assert!(error.to_string().contains("segment \"1\""));
    }

    #[test]
    fn flags_are_listed_in_name_order_and_found_by_name() {
        let names: Vec<String> = (0..200).rev().map(|n| format!("team.flag-{n}")).collect();
        let flags = names
            .iter()
            .map(|name| Flag {
                name: name.clone(),
                enabled: true,
                description: None,
                strategies: Vec::new(),
                variants: Vec::new(),
                dependencies: Vec::new(),
            })
            .collect();
        let set = FlagSet::new(flags, Vec::new()).unwrap();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(set.names().collect::<Vec<_>>(), sorted);
        for name in &names {
            assert_eq!(set.flag(name).map(|flag| &flag.name), Some(name));
        }
        assert!(set.flag("team.flag-").is_none());
        assert!(set.flag("team.flag-200").is_none());
    }

    #[test]
    fn unknown_flags_are_off() {
        let flags = FlagSet::default();
        let mut random = SeededRandom::new(1);
        let context = Context::default();
        assert!(flags.evaluate("nope", &context, &mut random).is_none());
        assert!(!flags.is_enabled("nope", &context, &mut random));
        assert_eq!(
            flags.variant("nope", &context, &mut random),
            VariantResult::disabled(false)
        );
    }
}
