//! Semantic versions (semver.org 2.0.0) for the `SEMVER_*` operators: strict reading
//! and precedence.
//!
//! Reading is strict on purpose: Unleash's specification expects `v2.0.0` and other
//! near-misses to match nothing, rather than to be guessed at.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A semantic version: `MAJOR.MINOR.PATCH`, an optional pre-release after `-` and
/// optional build metadata after `+`, which precedence ignores.
#[derive(Debug, Clone)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre_release: Vec<Identifier>,
    build: String,
}

/// One dot-separated part of a pre-release.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identifier {
    Numeric(u64),
    Text(String),
}

impl Ord for Identifier {
    /// Numeric identifiers compare as numbers and come before text ones, which compare
    /// in ASCII order (semver.org, rule 11.4).
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Identifier::Numeric(a), Identifier::Numeric(b)) => a.cmp(b),
            (Identifier::Numeric(_), Identifier::Text(_)) => Ordering::Less,
            (Identifier::Text(_), Identifier::Numeric(_)) => Ordering::Greater,
            (Identifier::Text(a), Identifier::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    /// Semver precedence: numbers first; then a pre-release comes before the release;
    /// then pre-releases compare identifier by identifier, a shorter list first when
    /// one is a prefix of the other. Build metadata is ignored.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(
                || match (self.pre_release.is_empty(), other.pre_release.is_empty()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => self.pre_release.cmp(&other.pre_release),
                },
            )
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    /// Equal in precedence: build metadata does not count.
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// Why text is not a semantic version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a semantic version ({reason}): write e.g. 1.4.2 or 2.0.0-beta.1")]
pub struct InvalidVersion {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for Version {
    type Err = InvalidVersion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidVersion {
            text: text.to_string(),
            reason,
        };
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => {
                if !build.split('.').all(is_identifier) {
                    return Err(invalid(
                        "build metadata must be dot-separated [0-9A-Za-z-] identifiers",
                    ));
                }
                (rest, build)
            }
            None => (text, ""),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = numbers[..] else {
            return Err(invalid("it needs exactly three numbers, MAJOR.MINOR.PATCH"));
        };
        let number = |part: &str| {
            numeric(part).ok_or_else(|| {
                invalid("each of MAJOR, MINOR and PATCH must be a number without leading zeros")
            })
        };
        let pre_release = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|part| {
                    if !is_identifier(part) {
                        Err(invalid(
                            "the pre-release must be dot-separated [0-9A-Za-z-] identifiers",
                        ))
                    } else if part.chars().all(|c| c.is_ascii_digit()) {
                        numeric(part).map(Identifier::Numeric).ok_or_else(|| {
                            invalid("a numeric pre-release identifier must not have leading zeros")
                        })
                    } else {
                        Ok(Identifier::Text(part.to_string()))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Version {
            major: number(major)?,
            minor: number(minor)?,
            patch: number(patch)?,
            pre_release,
            build: build.to_string(),
        })
    }
}

/// A non-empty run of `[0-9A-Za-z-]`.
fn is_identifier(part: &str) -> bool {
    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Digits without a leading zero (except `0` itself), as a number.
fn numeric(part: &str) -> Option<u64> {
    let digits = !part.is_empty() && part.chars().all(|c| c.is_ascii_digit());
    let leading_zero = part.len() > 1 && part.starts_with('0');
    if digits && !leading_zero {
        part.parse().ok()
    } else {
        None
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (index, identifier) in self.pre_release.iter().enumerate() {
            f.write_str(if index == 0 { "-" } else { "." })?;
            match identifier {
                Identifier::Numeric(number) => write!(f, "{number}")?,
                Identifier::Text(text) => f.write_str(text)?,
            }
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse()
            .unwrap_or_else(|e| panic!("{text} should parse: {e}"))
    }

    #[test]
    fn precedence_follows_semver_org() {
        // The chain from semver.org, rule 11, each strictly below the next.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "1.10.0",
            "2.0.0-alpha.1",
            "2.0.0",
        ];
        for pair in chain.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
            assert!(v(pair[1]) > v(pair[0]), "{} > {}", pair[1], pair[0]);
        }
    }

    #[test]
    fn build_metadata_does_not_count() {
        assert_eq!(v("1.2.3+build.5"), v("1.2.3"));
        assert_eq!(v("1.2.3-rc.1+x"), v("1.2.3-rc.1+y"));
        assert_eq!(v("1.2.3+build.5").to_string(), "1.2.3+build.5");
    }

    #[test]
    fn near_misses_are_refused() {
        for text in [
            "v2.0.0",
            "2.0",
            "2",
            "2.0.0.0",
            "02.0.0",
            "2.01.0",
            "2.0.0-",
            "2.0.0-alpha..1",
            "2.0.0-01",
            "2.0.0+",
            "2.0.0-al_pha",
            "not a semver",
            " 2.0.0",
            "",
        ] {
            assert!(
                text.parse::<Version>().is_err(),
                "{text:?} should be refused"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "0.0.0",
            "1.2.3",
            "2.0.0-alpha.1",
            "2.0.0-rc-1.x.7+sha.5114f85",
        ] {
            assert_eq!(v(text).to_string(), text);
        }
    }
}
