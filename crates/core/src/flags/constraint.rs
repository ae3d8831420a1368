//! Constraints: reading an operator and its operand once, and checking a context
//! against them.
//!
//! Both file formats read constraints through [`read_condition`], so `NUM_GT` means
//! the same in a Ripcord flag file as in an Unleash state; the Ripcord file refuses an
//! operand that cannot be read, where an Unleash state (like Unleash itself) keeps the
//! constraint and lets it fail.

use std::net::IpAddr;

use super::context::{Context, FieldName};
use super::model::{Comparison, Condition, Constraint, DateComparison};
use super::network::AddressRange;
use super::regex::Regex;
use super::semver::Version;
use crate::time::Timestamp;

/// The operators Ripcord knows, as Unleash writes them.
pub const OPERATORS: [&str; 19] = [
    "IN",
    "NOT_IN",
    "STR_CONTAINS",
    "STR_STARTS_WITH",
    "STR_ENDS_WITH",
    "NUM_EQ",
    "NUM_GT",
    "NUM_GTE",
    "NUM_LT",
    "NUM_LTE",
    "DATE_AFTER",
    "DATE_BEFORE",
    "SEMVER_EQ",
    "SEMVER_GT",
    "SEMVER_GTE",
    "SEMVER_LT",
    "SEMVER_LTE",
    "IN_CIDR",
    "REGEX",
];

/// Whether an operator compares against a list (`values`) rather than one `value`.
pub fn takes_list(operator: &str) -> bool {
    matches!(
        operator,
        "IN" | "NOT_IN" | "STR_CONTAINS" | "STR_STARTS_WITH" | "STR_ENDS_WITH" | "IN_CIDR"
    )
}

/// Reads an operator and its operand as Unleash writes them: list operators take
/// `values` (or `value` alone when `values` is empty), the others take `value` (or
/// the first of `values` when `value` is absent).
///
/// An operand that cannot be read gives [`Condition::Unreadable`] and an unknown
/// operator gives [`Condition::UnknownOperator`]; both never hold.
pub fn read_condition(
    operator: &str,
    values: &[String],
    value: Option<&str>,
    case_insensitive: bool,
) -> Condition {
    let list = || -> Vec<String> {
        match (values.is_empty(), value) {
            (true, Some(value)) => vec![value.to_string()],
            _ => values.to_vec(),
        }
    };
    let single = value.or(values.first().map(String::as_str));
    let unreadable = |reason: String| Condition::Unreadable {
        operator: operator.to_string(),
        reason,
    };
    let needs_value = || unreadable(format!("{operator} needs a value to compare with"));

    let comparison = |suffix: &str| match suffix {
        "EQ" => Some(Comparison::Eq),
        "GT" => Some(Comparison::Gt),
        "GTE" => Some(Comparison::Gte),
        "LT" => Some(Comparison::Lt),
        "LTE" => Some(Comparison::Lte),
        _ => None,
    };

    match operator {
        "IN" => Condition::In(list()),
        "NOT_IN" => Condition::NotIn(list()),
        "STR_CONTAINS" => Condition::StrContains(list()),
        "STR_STARTS_WITH" => Condition::StrStartsWith(list()),
        "STR_ENDS_WITH" => Condition::StrEndsWith(list()),
        "IN_CIDR" => {
            // Like the remoteAddress strategy, unreadable entries are skipped and the
            // others still apply.
            let ranges: Vec<AddressRange> = list()
                .iter()
                .filter_map(|entry| entry.parse().ok())
                .collect();
            if ranges.is_empty() && !list().is_empty() {
                unreadable(format!(
                    "none of {:?} is an IP address or a CIDR network",
                    list()
                ))
            } else {
                Condition::InCidr(ranges)
            }
        }
        "DATE_AFTER" | "DATE_BEFORE" => {
            let Some(text) = single else {
                return needs_value();
            };
            match Timestamp::parse_rfc3339(text.trim()) {
                Ok(at) => Condition::Date(
                    if operator == "DATE_AFTER" {
                        DateComparison::After
                    } else {
                        DateComparison::Before
                    },
                    at,
                ),
                Err(error) => unreadable(error.to_string()),
            }
        }
        "REGEX" => {
            let Some(pattern) = single else {
                return needs_value();
            };
            match Regex::new(pattern, case_insensitive) {
                Ok(regex) => Condition::Regex(regex),
                Err(error) => unreadable(error.to_string()),
            }
        }
        _ => {
            if let Some(comparison) = operator.strip_prefix("NUM_").and_then(comparison) {
                let Some(text) = single else {
                    return needs_value();
                };
                return match read_number(text) {
                    Some(number) => Condition::Number(comparison, number),
                    None => unreadable(format!("{text:?} is not a number")),
                };
            }
            if let Some(comparison) = operator.strip_prefix("SEMVER_").and_then(comparison) {
                let Some(text) = single else {
                    return needs_value();
                };
                return match text.parse::<Version>() {
                    Ok(version) => Condition::Semver(comparison, version),
                    Err(error) => unreadable(error.to_string()),
                };
            }
            Condition::UnknownOperator(operator.to_string())
        }
    }
}

/// The context's `currentTime` when a date constraint on `field` reads it, taken as
/// it is rather than written out as RFC 3339 and read back.
///
/// Only instants in years 0000 to 9999 are taken: they read back as themselves,
/// while RFC 3339 cannot write the others, so for those the constraint goes the way
/// of any other text and fails to read.
fn current_time(context: &Context, field: &FieldName) -> Option<Timestamp> {
    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
    const WRITABLE: std::ops::RangeInclusive<i64> = -62_167_219_200_000..=253_402_300_799_999;
    context
        .current_time
        .filter(|at| field.is_current_time() && WRITABLE.contains(&at.as_millis()))
}

/// A finite number written in decimal, with surrounding spaces allowed.
fn read_number(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
}

impl Constraint {
    /// Whether the context satisfies this constraint.
    ///
    /// A context without the field satisfies only `NOT_IN` (and any inverted
    /// operator); a value the operator cannot read (a version that is not semver,
    /// say) counts as not satisfying it, before `inverted` applies.
    pub fn holds(&self, context: &Context) -> bool {
        if let Condition::UnknownOperator(_) = self.condition {
            return false;
        }
        if let Condition::Date(comparison, operand) = &self.condition
            && let Some(at) = current_time(context, &self.context_name)
        {
            return comparison.holds(at, *operand) != self.inverted;
        }
        let value = context.value(&self.context_name);
        self.operator_holds(value.as_deref()) != self.inverted
    }

    fn operator_holds(&self, value: Option<&str>) -> bool {
        match &self.condition {
            Condition::In(values) => value.is_some_and(|value| values.iter().any(|v| v == value)),
            Condition::NotIn(values) => {
                !value.is_some_and(|value| values.iter().any(|v| v == value))
            }
            Condition::StrContains(values) => self.any_text(value, values, TextTest::Contains),
            Condition::StrStartsWith(values) => self.any_text(value, values, TextTest::StartsWith),
            Condition::StrEndsWith(values) => self.any_text(value, values, TextTest::EndsWith),
            Condition::Number(comparison, operand) => value
                .and_then(read_number)
                .and_then(|number| number.partial_cmp(operand))
                .is_some_and(|ordering| comparison.holds(ordering)),
            Condition::Date(comparison, operand) => value
                .and_then(|text| Timestamp::parse_rfc3339(text.trim()).ok())
                .is_some_and(|at| comparison.holds(at, *operand)),
            Condition::Semver(comparison, operand) => value
                .and_then(|text| text.parse::<Version>().ok())
                .is_some_and(|version| comparison.holds(version.cmp(operand))),
            Condition::InCidr(ranges) => value
                .and_then(|text| text.trim().parse::<IpAddr>().ok())
                .is_some_and(|address| ranges.iter().any(|range| range.contains(address))),
            Condition::Regex(regex) => value.is_some_and(|text| regex.is_match(text)),
            Condition::Unreadable { .. } | Condition::UnknownOperator(_) => false,
        }
    }

    /// Whether `test` holds between the value and any operand, ignoring case if asked.
    fn any_text(&self, value: Option<&str>, operands: &[String], test: TextTest) -> bool {
        let Some(value) = value else {
            return false;
        };
        if self.case_insensitive {
            operands
                .iter()
                .any(|operand| test.holds_ignoring_case(value, operand))
        } else {
            operands.iter().any(|operand| test.holds(value, operand))
        }
    }
}

/// The tests of the `STR_` operators.
#[derive(Debug, Clone, Copy)]
enum TextTest {
    Contains,
    StartsWith,
    EndsWith,
}

impl TextTest {
    fn holds(self, value: &str, operand: &str) -> bool {
        match self {
            TextTest::Contains => value.contains(operand),
            TextTest::StartsWith => value.starts_with(operand),
            TextTest::EndsWith => value.ends_with(operand),
        }
    }

    /// The test on both texts lowercased, as Unleash does it. ASCII text is compared
    /// in place, byte for byte; other text is lowercased into new strings, since
    /// lowercasing it can change its length.
    fn holds_ignoring_case(self, value: &str, operand: &str) -> bool {
        if !(value.is_ascii() && operand.is_ascii()) {
            return self.holds(&value.to_lowercase(), &operand.to_lowercase());
        }
        let (value, operand) = (value.as_bytes(), operand.as_bytes());
        let same = |part: &[u8]| part.eq_ignore_ascii_case(operand);
        match self {
            TextTest::StartsWith => value.get(..operand.len()).is_some_and(same),
            TextTest::EndsWith => value
                .len()
                .checked_sub(operand.len())
                .is_some_and(|start| same(&value[start..])),
            TextTest::Contains => operand.is_empty() || value.windows(operand.len()).any(same),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn context(field: &str, value: &str) -> Context {
        let mut context = Context::default();
        match field {
            "userId" => context.user_id = Some(value.to_string()),
            "currentTime" => context.current_time = Some(Timestamp::parse_rfc3339(value).unwrap()),
            _ => {
                context.properties = BTreeMap::from([(field.to_string(), value.to_string())]);
            }
        }
        context
    }

    fn constraint(operator: &str, operand: &[&str], flags: &str) -> Constraint {
        let values: Vec<String> = operand.iter().map(|s| s.to_string()).collect();
        let case_insensitive = flags.contains('i');
        let condition = if takes_list(operator) {
            read_condition(operator, &values, None, case_insensitive)
        } else {
            read_condition(operator, &[], operand.first().copied(), case_insensitive)
        };
        Constraint {
            context_name: "field".into(),
            condition,
            inverted: flags.contains('!'),
            case_insensitive,
        }
    }

    /// One row of the operator table: operator, operand(s), flags (`i` for
    /// case-insensitive, `!` for inverted), the context value (`None` for absent), and
    /// whether the constraint holds.
    type Row = (
        &'static str,
        &'static [&'static str],
        &'static str,
        Option<&'static str>,
        bool,
    );

    #[test]
    fn every_operator() {
        let rows: &[Row] = &[
            ("IN", &["a", "b"], "", Some("b"), true),
            ("IN", &["a", "b"], "", Some("B"), false),
            ("IN", &["a", "b"], "i", Some("B"), false),
            ("IN", &["a"], "", None, false),
            ("IN", &[], "", Some("a"), false),
            ("IN", &["a"], "!", Some("a"), false),
            ("IN", &["a"], "!", None, true),
            ("NOT_IN", &["a", "b"], "", Some("c"), true),
            ("NOT_IN", &["a", "b"], "", Some("a"), false),
            ("NOT_IN", &["a"], "", None, true),
            ("NOT_IN", &[], "", Some("a"), true),
            ("NOT_IN", &["a"], "!", Some("a"), true),
            (
                "STR_CONTAINS",
                &["email"],
                "",
                Some("test@some-email.com"),
                true,
            ),
            (
                "STR_CONTAINS",
                &["email"],
                "",
                Some("test@another.com"),
                false,
            ),
            ("STR_CONTAINS", &["EMAIL"], "i", Some("an-email"), true),
            (
                "STR_CONTAINS",
                &["email"],
                "!",
                Some("test@another.com"),
                true,
            ),
            ("STR_CONTAINS", &["email"], "", None, false),
            ("STR_STARTS_WITH", &["e1", "e2"], "", Some("e2 cool"), true),
            ("STR_STARTS_WITH", &["e1", "e2"], "", Some("cool e1"), false),
            (
                "STR_STARTS_WITH",
                &["TEST"],
                "i",
                Some("TEsT@example.com"),
                true,
            ),
            (
                "STR_ENDS_WITH",
                &["some-email.com"],
                "",
                Some("a@some-EMAIL.com"),
                false,
            ),
            (
                "STR_ENDS_WITH",
                &["some-email.com"],
                "i",
                Some("a@SOME-email.com"),
                true,
            ),
            ("NUM_EQ", &["12"], "", Some("12.0"), true),
            ("NUM_EQ", &["12.0"], "", Some("12"), true),
            ("NUM_EQ", &["12"], "", Some(" 12 "), true),
            ("NUM_EQ", &["12"], "!", Some("13"), true),
            ("NUM_EQ", &["12"], "", Some("twelve"), false),
            ("NUM_EQ", &["12"], "", Some("NaN"), false),
            ("NUM_GT", &["12"], "", Some("13"), true),
            ("NUM_GT", &["12"], "", Some("12"), false),
            ("NUM_GTE", &["12"], "", Some("12"), true),
            ("NUM_GTE", &["12"], "", Some("11.99"), false),
            ("NUM_LT", &["12"], "", Some("-3"), true),
            ("NUM_LT", &["12"], "", Some("12"), false),
            ("NUM_LTE", &["12"], "", Some("12"), true),
            ("NUM_LTE", &["12"], "", Some("13"), false),
            ("NUM_LT", &["12"], "", None, false),
            (
                "DATE_AFTER",
                &["2022-01-29T13:00:00.000Z"],
                "",
                Some("2022-01-30T13:00:00.000Z"),
                true,
            ),
            (
                "DATE_AFTER",
                &["2022-01-29T13:00:00.000Z"],
                "",
                Some("2022-01-29T13:00:00.000Z"),
                false,
            ),
            (
                "DATE_AFTER",
                &["2022-01-29T13:00:00.000Z"],
                "",
                Some("2022-01-29T14:00:00+02:00"),
                false,
            ),
            (
                "DATE_BEFORE",
                &["2022-01-29T13:00:00.000Z"],
                "",
                Some("2022-01-28T13:00:00Z"),
                true,
            ),
            (
                "DATE_BEFORE",
                &["2022-01-29T13:00:00.000Z"],
                "",
                Some("2022-01-29T13:00:00Z"),
                false,
            ),
            (
                "DATE_BEFORE",
                &["2022-01-22T14:00:00.000+02:00"],
                "",
                Some("2022-01-22T11:30:00Z"),
                true,
            ),
            (
                "DATE_BEFORE",
                &["2022-01-29T13:00:00Z"],
                "",
                Some("last tuesday"),
                false,
            ),
            ("SEMVER_EQ", &["1.2.2"], "", Some("1.2.2"), true),
            ("SEMVER_EQ", &["1.2.2"], "", Some("1.2.2+build.7"), true),
            ("SEMVER_EQ", &["1.2.2"], "", Some("1.2.0"), false),
            (
                "SEMVER_GT",
                &["2.0.0-alpha.1"],
                "",
                Some("2.0.0-beta.1"),
                true,
            ),
            ("SEMVER_GT", &["2.0.0-rc"], "", Some("2.0.0-beta.1"), false),
            ("SEMVER_GT", &["2.0.0-rc"], "", Some("2.0.0"), true),
            ("SEMVER_GTE", &["1.2.2"], "", Some("1.2.2"), true),
            ("SEMVER_GTE", &["1.2.2"], "", Some("1.2.1"), false),
            (
                "SEMVER_LT",
                &["2.0.0-alpha.3"],
                "",
                Some("2.0.0-alpha.1"),
                true,
            ),
            (
                "SEMVER_LT",
                &["2.0.0-alpha.3"],
                "",
                Some("2.0.0-alpha.4"),
                false,
            ),
            ("SEMVER_LTE", &["1.2.2"], "", Some("1.2.2"), true),
            ("SEMVER_LTE", &["1.2.2"], "", Some("1.2.3"), false),
            ("SEMVER_EQ", &["v2.0.0"], "", Some("v2.0.0"), false),
            ("SEMVER_EQ", &["2.0.0"], "", Some("not a semver"), false),
            ("SEMVER_EQ", &["2.0.0"], "!", Some("not a semver"), true),
            ("IN_CIDR", &["10.0.0.0/8"], "", Some("10.20.30.40"), true),
            ("IN_CIDR", &["10.0.0.0/8"], "", Some("11.0.0.1"), false),
            (
                "IN_CIDR",
                &["127.invalid", "192.168.1.0/24"],
                "",
                Some("192.168.1.42"),
                true,
            ),
            ("IN_CIDR", &["127.invalid"], "", Some("127.0.0.1"), false),
            (
                "IN_CIDR",
                &["2001:db8::/32"],
                "",
                Some("2001:db8:0:1::42"),
                true,
            ),
            ("IN_CIDR", &["10.0.0.0/8"], "", Some("not an ip"), false),
            ("REGEX", &["^cat$"], "", Some("cat"), true),
            ("REGEX", &["^cat$"], "", Some("Cat"), false),
            ("REGEX", &["^cat$"], "i", Some("Cat"), true),
            ("REGEX", &["^abc$"], "!", Some("xyz"), true),
            ("REGEX", &["(regex"], "", Some("(regex"), false),
            ("REGEX", &["^cat$"], "", None, false),
            ("NOT_A_VALID_OPERATOR", &["x"], "", Some("x"), false),
            ("NOT_A_VALID_OPERATOR", &["x"], "!", Some("x"), false),
        ];
        let mut failures = Vec::new();
        for &(operator, operand, flags, value, expected) in rows {
            let constraint = constraint(operator, operand, flags);
            let context = match value {
                Some(value) => context("field", value),
                None => Context::default(),
            };
            if constraint.holds(&context) != expected {
                failures.push(format!(
                    "{operator} {operand:?} [{flags}] on {value:?}: expected {expected}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn standard_fields_are_read_from_the_context() {
        let mut constraint = constraint("IN", &["42"], "");
        constraint.context_name = "userId".into();
        assert!(constraint.holds(&context("userId", "42")));
        constraint.context_name = "currentTime".into();
        let mut date = self::constraint("DATE_AFTER", &["2022-01-01T00:00:00Z"], "");
        date.context_name = "currentTime".into();
        assert!(date.holds(&context("currentTime", "2022-06-01T00:00:00Z")));
        assert!(!date.holds(&Context::default()));
    }

    proptest::proptest! {
        /// Ignoring case compares as lowercasing both texts would, ASCII or not.
        #[test]
        fn ignoring_case_is_comparing_lowercased_text(
            value in "[a-cA-Cİß ]{0,8}",
            operand in "[a-cA-Cİß ]{0,3}",
        ) {
            for test in [TextTest::Contains, TextTest::StartsWith, TextTest::EndsWith] {
                proptest::prop_assert_eq!(
                    test.holds_ignoring_case(&value, &operand),
                    test.holds(&value.to_lowercase(), &operand.to_lowercase()),
                    "{:?}", test
                );
            }
        }
    }

    #[test]
    fn current_time_is_compared_as_if_written_out_and_read_back() {
        let instants = [
            i64::MIN,
            -62_167_219_200_001,
            -62_167_219_200_000,
            -1,
            0,
            1_643_461_200_000,
            1_643_461_200_123,
            253_402_300_799_999,
            253_402_300_800_000,
            i64::MAX,
        ];
        for millis in instants {
            let at = Timestamp::from_millis(millis);
            let read_back = Timestamp::parse_rfc3339(&at.to_rfc3339()).ok();
            let context = Context {
                current_time: Some(at),
                ..Context::default()
            };
            assert_eq!(
                current_time(&context, &"currentTime".into()),
                read_back,
                "{millis}"
            );
            for operand in [at, Timestamp::from_millis(0)] {
                for comparison in [DateComparison::After, DateComparison::Before] {
                    let constraint = Constraint {
                        context_name: "currentTime".into(),
                        condition: Condition::Date(comparison, operand),
                        inverted: false,
                        case_insensitive: false,
                    };
                    let expected = read_back.is_some_and(|read| comparison.holds(read, operand));
                    assert_eq!(constraint.holds(&context), expected, "{millis}");
                }
            }
        }
        let context = Context {
            current_time: Some(Timestamp::from_millis(0)),
            ..Context::default()
        };
        assert_eq!(current_time(&context, &"createdAt".into()), None);
    }

    #[test]
    fn operands_are_read_once_and_unreadable_ones_say_why() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("NUM_GT", Some("abc"), "not a number"),
            ("NUM_GT", None, "needs a value"),
            ("DATE_AFTER", Some("2022-13-01"), "RFC 3339"),
            ("SEMVER_GT", Some("v1"), "semantic version"),
            ("REGEX", Some("(?=x)"), "look-ahead"),
        ];
        for &(operator, value, expected) in cases {
            match read_condition(operator, &[], value, false) {
                Condition::Unreadable {
                    reason,
                    operator: name,
                } => {
                    assert_eq!(name, operator);
                    assert!(reason.contains(expected), "{operator}: {reason}");
                }
                other => panic!("{operator} {value:?} read as {other:?}"),
            }
        }
        assert!(matches!(
            read_condition("IN_CIDR", &["nope".to_string()], None, false),
            Condition::Unreadable { .. }
        ));
    }

    #[test]
    fn the_operand_may_be_written_either_way() {
        assert_eq!(
            read_condition("IN", &[], Some("a"), false),
            Condition::In(vec!["a".to_string()])
        );
        assert_eq!(
            read_condition("NUM_EQ", &["3".to_string()], None, false),
            Condition::Number(Comparison::Eq, 3.0)
        );
        for operator in OPERATORS {
            let condition = read_condition(operator, &["1.0.0".to_string()], Some("1.0.0"), false);
            assert!(
                !matches!(condition, Condition::UnknownOperator(_)),
                "{operator} should be known"
            );
            if !matches!(condition, Condition::Unreadable { .. }) {
                assert_eq!(condition.operator(), operator);
            }
        }
    }
}
