//! Time as the engine sees it: instants passed in by the caller, and durations
//! written the way people write them in configuration (`30s`, `5m`, `1h30m`).
//!
//! The engine never reads a clock: every function that needs "now" takes it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::InvalidValue;

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp such as `2026-11-26T06:43:35Z`.
    pub fn parse_rfc3339(text: &str) -> Result<Self, InvalidValue> {
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|e| {
                    InvalidValue(format!(
                        "{text:?} is not an RFC 3339 timestamp ({e}): use e.g. 2026-11-26T06:43:35Z"
                    ))
                })?;
        Ok(Self((parsed.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// Formats as RFC 3339 in UTC, with milliseconds when they are not zero.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => {
                let (y, mo, d) = (t.year(), t.month() as u8, t.day());
                let (h, mi, s, ms) = (t.hour(), t.minute(), t.second(), t.millisecond());
                if ms == 0 {
                    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
                } else {
                    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
                }
            }
            Err(_) => format!("@{}ms", self.0),
        }
    }

    /// This instant plus a duration (saturating).
    pub fn plus(self, duration: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(duration.as_millis().min(i64::MAX as u128) as i64),
        )
    }

    /// This instant minus a duration (saturating).
    pub fn minus(self, duration: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(duration.as_millis().min(i64::MAX as u128) as i64),
        )
    }

    /// The time from `earlier` to this instant; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl TryFrom<String> for Timestamp {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_rfc3339(&value)
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> Self {
        value.to_rfc3339()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Parses a duration written as one or more `<number><unit>` parts, with units
/// `ms`, `s`, `m`, `h` and `d`: `500ms`, `30s`, `5m`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidValue> {
    let bad = || {
        InvalidValue(format!(
            "{text:?} is not a duration: write a number and a unit, e.g. 30s, 5m, 1h30m (units: ms, s, m, h, d)"
        ))
    };
    let text_trimmed = text.trim();
    if text_trimmed.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = text_trimmed;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(bad)?),
            "d" => Duration::from_secs(number.checked_mul(86_400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Formats a duration the way `parse_duration` reads it, largest units first.
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    out
}

/// A duration that reads and writes as text (`"5m"`), for configuration and wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TextDuration(pub Duration);

impl TryFrom<String> for TextDuration {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        parse_duration(&value).map(TextDuration)
    }
}

impl From<TextDuration> for String {
    fn from(value: TextDuration) -> Self {
        format_duration(value.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        let table = [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("1m30s250ms", 90_250),
        ];
        for (text, millis) in table {
            let d = parse_duration(text).unwrap();
            assert_eq!(d.as_millis(), millis, "{text}");
            assert_eq!(format_duration(d), text);
        }
        for bad in ["", "5", "m", "5 minutes", "-5s", "5x", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn timestamps_round_trip_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-11-26T06:43:35Z").unwrap();
        assert_eq!(t.as_millis(), 1_795_675_415_000);
        assert_eq!(t.to_rfc3339(), "2026-11-26T06:43:35Z");
        let offset = Timestamp::parse_rfc3339("2026-11-26T07:43:35.5+01:00").unwrap();
        assert_eq!(offset.to_rfc3339(), "2026-11-26T06:43:35.500Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert_eq!(
            t.plus(Duration::from_secs(60)).since(t),
            Duration::from_secs(60)
        );
        assert_eq!(t.since(t.plus(Duration::from_secs(1))), Duration::ZERO);
    }
}
