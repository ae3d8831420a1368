//! The judge: whether the new slot's metrics are worse than the stable slot's.
//!
//! This module owns two kinds of verdict. [`check_threshold`] compares one aggregate
//! value of the new slot with a fixed limit (`error_rate` at most 1%). [`judge`]
//! compares the new slot with the stable one serving at the same time, the way
//! Kayenta-style canary judges do: rather than a fixed limit, the stable slot's own
//! per-period values are the baseline, so a slow day or a noisy dependency moves both
//! sides alike and does not fail the canary.
//!
//! The comparison is the Mann-Whitney U test (Mann and Whitney, 1947; also called the
//! Wilcoxon rank-sum test). It asks whether a value drawn from the canary tends to be
//! larger than one drawn from the stable slot, using only the ranks of the pooled
//! values. It assumes no distribution, which matters because latency percentiles and
//! error rates are skewed and spiky, and a single outlier moves a rank by one, not a
//! mean by a mile. Ties get the average of the ranks they span, the variance is
//! corrected for them, and the p-value comes from the normal approximation with a
//! continuity correction: the "asymptotic" method of SciPy's `mannwhitneyu`, whose
//! answers the tests reproduce.
//!
//! A significant difference alone does not fail a canary: with enough samples a
//! 1% shift is significant and nobody cares. The judge also requires the difference of
//! medians to exceed the configured tolerance. All Ripcord metrics are "higher is
//! worse", so the test is one-sided: a canary that is better passes.
//!
//! Everything here is pure arithmetic on the values passed in; the normal distribution
//! is computed here too, so the core needs no numerics dependency.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

use serde::{Deserialize, Serialize};

use crate::config::{JudgeSpec, MetricCheck, MetricKind};
use crate::observation::SlotMetrics;
use crate::time::format_duration;

/// The result of a Mann-Whitney U test of the canary's values against the stable ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// The number of (canary, stable) pairs in which the canary value is larger, ties
    /// counting one half. Large when the canary tends to be greater.
    pub u_canary: f64,
    /// The same count the other way round; `u_canary + u_stable` is the number of pairs.
    pub u_stable: f64,
    /// How many standard deviations `u_canary` lies from its mean under the hypothesis
    /// of no difference, moved half a unit towards zero (the continuity correction).
    /// Positive when the canary tends to be greater; zero when every value is tied.
    pub z: f64,
    /// One-sided p-value for "the canary is stochastically greater than the stable slot".
    pub p_greater: f64,
    /// One-sided p-value for "the canary is stochastically less than the stable slot".
    pub p_less: f64,
    /// Two-sided p-value for "the two differ", at most 1.
    pub p_two_sided: f64,
}

/// Runs the Mann-Whitney U test of `canary` against `stable`.
///
/// Ties get average ranks and the variance is tie-corrected; p-values use the normal
/// approximation with a continuity correction of one half, each one-sided p-value
/// correcting towards its own alternative (as SciPy's asymptotic method does). When
/// every value is tied there is no variance and no evidence of any difference, so all
/// p-values are 1.
///
/// Returns `None` when either sample is empty or holds a value that is not finite
/// (NaN or infinite), since neither can be ranked meaningfully.
pub fn mann_whitney(canary: &[f64], stable: &[f64]) -> Option<MannWhitney> {
    if canary.is_empty() || stable.is_empty() {
        return None;
    }
    if canary.iter().chain(stable).any(|v| !v.is_finite()) {
        return None;
    }
    let n1 = canary.len() as f64;
    let n2 = stable.len() as f64;
    let n = n1 + n2;

    // Pool the values, remembering which side each came from, and sort. All values are
    // finite, so `total_cmp` is the ordinary numeric order.
    let mut pooled: Vec<(f64, bool)> = canary
        .iter()
        .map(|&v| (v, true))
        .chain(stable.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Walk runs of equal values: each gets the mean of the ranks it spans. The ranks are
    // whole or half numbers, so both rank sums are exact in f64 for any realistic size.
    let mut rank_sum_canary = 0.0;
    let mut rank_sum_stable = 0.0;
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < pooled.len() {
        let mut end = start + 1;
        while end < pooled.len() && pooled[end].0 == pooled[start].0 {
            end += 1;
        }
        // Ranks are 1-based: this run holds ranks start + 1 ..= end.
        let average_rank = (start + 1 + end) as f64 / 2.0;
        for &(_, is_canary) in &pooled[start..end] {
            if is_canary {
                rank_sum_canary += average_rank;
            } else {
                rank_sum_stable += average_rank;
            }
        }
        let t = (end - start) as f64;
        tie_term += t * t * t - t;
        start = end;
    }
    let all_tied = pooled[0].0 == pooled[pooled.len() - 1].0;

    // Both U statistics come from their own rank sums rather than one from the other, so
    // that `u_canary + u_stable == n1 * n2` is a property of the ranking, not a definition.
    let u_canary = rank_sum_canary - n1 * (n1 + 1.0) / 2.0;
    let u_stable = rank_sum_stable - n2 * (n2 + 1.0) / 2.0;

    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if all_tied || variance <= 0.0 {
        return Some(MannWhitney {
            u_canary,
            u_stable,
            z: 0.0,
            p_greater: 1.0,
            p_less: 1.0,
            p_two_sided: 1.0,
        });
    }
    let sd = variance.sqrt();

    let diff = u_canary - mean;
    let z = diff.signum() * (diff.abs() - 0.5).max(0.0) / sd;
    let p_greater = normal_sf((diff - 0.5) / sd);
    let p_less = normal_sf((-diff - 0.5) / sd);
    let p_two_sided = (2.0 * normal_sf((diff.abs() - 0.5) / sd)).min(1.0);
    Some(MannWhitney {
        u_canary,
        u_stable,
        z,
        p_greater,
        p_less,
        p_two_sided,
    })
}

/// The standard normal cumulative distribution function, Φ(x): the probability that a
/// standard normal variable is at most `x`. Accurate to about 1e-15 relative.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// The standard normal survival function, 1 − Φ(x), computed directly so that small
/// upper-tail p-values keep their relative precision instead of vanishing in `1 - Φ`.
fn normal_sf(x: f64) -> f64 {
    0.5 * erfc(x * FRAC_1_SQRT_2)
}

/// The complementary error function.
///
/// Below 2.5 it is one minus the everywhere-positive series for erf (Abramowitz and
/// Stegun 7.1.6), which has no cancellation; there erfc is at least 4e-4, so the
/// subtraction costs at most three or four digits. From 2.5 up it is the continued
/// fraction of A&S 7.1.14, which converges quickly there and keeps full relative
/// precision in the far tail. Negative arguments use erfc(−x) = 2 − erfc(x).
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.5 {
        1.0 - erf_series(x)
    } else if x.is_infinite() {
        // The continued fraction would compute infinity times zero here.
        0.0
    } else {
        erfc_continued_fraction(x)
    }
}

/// erf(x) = 2/√π · e^(−x²) · Σₙ (2x²)ⁿ · x / (1·3·…·(2n+1)), for 0 ≤ x < 2.5.
fn erf_series(x: f64) -> f64 {
    let two_x2 = 2.0 * x * x;
    let mut term = x;
    let mut sum = x;
    // The terms grow while 2x² > 2n + 3 and then shrink geometrically; at x = 2.5 the
    // series has converged to machine precision well within a hundred terms.
    for n in 1..200 {
        term *= two_x2 / f64::from(2 * n + 1);
        sum += term;
        if term <= sum * f64::EPSILON {
            break;
        }
    }
    FRAC_2_SQRT_PI * (-x * x).exp() * sum
}

/// erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), for x ≥ 2.5,
/// evaluated with the modified Lentz method.
fn erfc_continued_fraction(x: f64) -> f64 {
    // Lentz replaces a zero denominator with this tiny number; with every b equal to
    // x ≥ 2.5 and every a positive none can occur, but the guard costs nothing.
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..500 {
        let a = f64::from(k) / 2.0;
        d = x + a * d;
        if d == 0.0 {
            d = TINY;
        }
        c = x + a / c;
        if c == 0.0 {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() <= f64::EPSILON {
            break;
        }
    }
    FRAC_2_SQRT_PI / 2.0 * (-x * x).exp() / f
}

/// What the judge concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The canary is not worse than the stable slot by more than the tolerance.
    Pass,
    /// The data cannot say yet: too few samples, or a difference beyond the tolerance
    /// that is only nearly significant.
    Marginal,
    /// The canary is significantly worse, by more than the tolerance.
    Fail,
}

/// The judge's verdict on one metric, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Pass, marginal or fail.
    pub outcome: Outcome,
    /// The metric compared.
    pub metric: MetricKind,
    /// How many canary values were compared.
    pub canary_n: usize,
    /// How many stable values were compared.
    pub stable_n: usize,
    /// The median of the canary values; `None` when there were none.
    pub canary_median: Option<f64>,
    /// The median of the stable values; `None` when there were none.
    pub stable_median: Option<f64>,
    /// (canary median − stable median) / |stable median|; `None` when either median is
    /// missing or the stable median is zero (then the difference is judged in absolute
    /// terms, see [`judge`]).
    pub relative_change: Option<f64>,
    /// The one-sided p-value that the canary is greater (worse) than the stable slot;
    /// `None` when the test could not run (an empty sample or a non-finite value).
    pub p_value: Option<f64>,
    /// The confidence level the verdict was reached at, from the judge's settings.
    pub confidence: f64,
    /// One sentence with the numbers, for people.
    pub reason: String,
}

/// Compares the canary's per-period values of one metric with the stable slot's.
///
/// With α = 1 − `spec.confidence` and the one-sided Mann-Whitney p-value that the
/// canary is greater (every Ripcord metric is worse when higher):
///
/// - **Marginal** when either side has fewer than `spec.min_samples` values, or a value
///   that is not finite: there is not enough to judge on.
/// - **Fail** when p < α and the change of medians exceeds `spec.effect_tolerance`.
/// - **Marginal** when α ≤ p < 2α and the change exceeds the tolerance: nearly
///   significant and large enough to matter, so more data should decide.
/// - **Pass** otherwise: no significant increase, a canary that is better, or an
///   increase that is significant but within the tolerance.
///
/// The change is relative, (canary median − stable median) / |stable median|. When the
/// stable median is zero no relative change exists (an error rate that goes from 0% to
/// 0.1% is an infinite relative change), so the plain difference of medians is compared
/// with the tolerance instead, in the metric's own unit: with `error_rate`, a tolerance
/// of 0.1 then allows 0.1 percentage points. This keeps a healthy stable slot with no
/// errors at all from failing a canary on a single stray error, while a canary that
/// really errors still fails.
///
/// `spec` is trusted to hold a confidence strictly between 0 and 1, as configuration
/// parsing ensures.
pub fn judge(spec: &JudgeSpec, canary: &[f64], stable: &[f64]) -> Verdict {
    let metric = spec.metric.as_str();
    let canary_median = median(canary);
    let stable_median = median(stable);
    let change = match (canary_median, stable_median) {
        (Some(c), Some(s)) => Some(Change::between(c, s)),
        _ => None,
    };
    let test = mann_whitney(canary, stable);
    let verdict = |outcome: Outcome, reason: String| Verdict {
        outcome,
        metric: spec.metric,
        canary_n: canary.len(),
        stable_n: stable.len(),
        canary_median,
        stable_median,
        relative_change: change.and_then(|c| c.relative),
        p_value: test.map(|t| t.p_greater),
        confidence: spec.confidence,
        reason,
    };

    let non_finite = canary
        .iter()
        .chain(stable)
        .filter(|v| !v.is_finite())
        .count();
    if non_finite > 0 {
        return verdict(
            Outcome::Marginal,
            format!(
                "{non_finite} of the {} canary and {} stable {metric} values are not finite \
                 numbers, so the judge cannot compare them: check the metric source",
                canary.len(),
                stable.len()
            ),
        );
    }
    let (Some(test), Some(change), Some(c_med), Some(s_med)) =
        (test, change, canary_median, stable_median)
    else {
        return verdict(
            Outcome::Marginal,
            format!(
                "{} canary and {} stable {metric} values: the judge needs values on both \
                 sides (at least {} each)",
                canary.len(),
                stable.len(),
                spec.min_samples.max(1)
            ),
        );
    };
    let summary = format!(
        "canary {metric} median {} vs stable {} ({}, n = {} vs {})",
        format_value(c_med),
        format_value(s_med),
        change.describe(),
        canary.len(),
        stable.len()
    );
    if canary.len() < spec.min_samples || stable.len() < spec.min_samples {
        return verdict(
            Outcome::Marginal,
            format!(
                "{summary}: fewer than the {} samples needed on each side, \
                 so it is too early to judge",
                spec.min_samples
            ),
        );
    }

    let alpha = 1.0 - spec.confidence;
    let p = test.p_greater;
    let exceeds = change.exceeds(spec.effect_tolerance);
    let tolerance = change.describe_tolerance(spec.effect_tolerance);
    let level = format!("at {}% confidence", format_plain(spec.confidence * 100.0));
    let p_text = format_p(p);
    let alpha_text = format_plain(alpha);

    if p < alpha && exceeds {
        verdict(
            Outcome::Fail,
            format!("{summary}, p = {p_text} < {alpha_text} {level}: worse beyond {tolerance}"),
        )
    } else if p < 2.0 * alpha && exceeds {
        verdict(
            Outcome::Marginal,
            format!(
                "{summary}, p = {p_text} is between {alpha_text} and {} {level}: possibly \
                 worse beyond {tolerance}, but not yet significant",
                format_plain(2.0 * alpha)
            ),
        )
    } else if p < alpha {
        verdict(
            Outcome::Pass,
            format!(
                "{summary}, p = {p_text} < {alpha_text} {level}: significantly higher, \
                 but within {tolerance}"
            ),
        )
    } else if test.p_less < alpha {
        verdict(
            Outcome::Pass,
            format!(
                "{summary}, p = {p_text} >= {alpha_text} {level}: the canary is \
                 significantly lower, which is better"
            ),
        )
    } else {
        verdict(
            Outcome::Pass,
            format!("{summary}, p = {p_text} >= {alpha_text} {level}: no significant increase"),
        )
    }
}

/// The change from the stable median to the canary median.
#[derive(Debug, Clone, Copy)]
struct Change {
    /// Canary median minus stable median.
    absolute: f64,
    /// The absolute change over |stable median|; `None` when the stable median is zero.
    relative: Option<f64>,
}

impl Change {
    fn between(canary_median: f64, stable_median: f64) -> Self {
        let absolute = canary_median - stable_median;
        let relative = (stable_median != 0.0).then(|| absolute / stable_median.abs());
        Self { absolute, relative }
    }

    /// Whether the increase is larger than the tolerance, relative when it can be.
    fn exceeds(self, tolerance: f64) -> bool {
        match self.relative {
            Some(relative) => relative > tolerance,
            None => self.absolute > tolerance,
        }
    }

    fn describe(self) -> String {
        match self.relative {
            Some(relative) => format!("{:+.1}%", relative * 100.0),
            None => {
                let sign = if self.absolute >= 0.0 { "+" } else { "" };
                format!("{sign}{} absolute", format_value(self.absolute))
            }
        }
    }

    fn describe_tolerance(self, tolerance: f64) -> String {
        match self.relative {
            Some(_) => format!("the {}% tolerance", format_plain(tolerance * 100.0)),
            None => format!(
                "the tolerance of {} (absolute, as the stable median is 0)",
                format_plain(tolerance)
            ),
        }
    }
}

/// The median of finite values; `None` for an empty slice.
fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// A metric value with as many decimals as its size deserves: `182.0`, `4.20`, `0.042`.
fn format_value(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 || magnitude == 0.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// A p-value readable at a glance: `0.027`, `0.0003`, `2.3e-7`.
fn format_p(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.3}")
    } else if p >= 0.0001 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

/// A configured number without floating-point noise: `0.05`, not `0.050000000000000044`.
fn format_plain(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// The result of checking one metric of the new slot against its fixed limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The value is within the limits.
    Pass {
        /// The value checked.
        value: f64,
    },
    /// The window holds too little to decide on; the engine neither fails nor advances.
    Inconclusive {
        /// Why, with the numbers.
        reason: String,
    },
    /// The value is outside the limits.
    Fail {
        /// The value checked.
        value: f64,
        /// Which limit it crossed, with the numbers.
        reason: String,
    },
}

/// Checks one metric of the new slot over the check's window against its limits.
///
/// Too little traffic is not a failure: below `check.min_requests` requests, or when the
/// value cannot be computed (no latency data, no requests for an error rate), the check
/// is inconclusive. A `min` on `request_count` is a floor in the same spirit: too few
/// requests mean the window cannot show anything yet, not that the new slot is broken,
/// so it too is inconclusive. Otherwise the check fails when the value is above `max`
/// or below `min`.
pub fn check_threshold(check: &MetricCheck, metrics: &SlotMetrics) -> CheckOutcome {
    let name = check.metric.as_str();
    let window = format_duration(check.window);
    if metrics.requests < check.min_requests {
        return CheckOutcome::Inconclusive {
            reason: format!(
                "only {} requests over {window}, {} needed to check {name}",
                metrics.requests, check.min_requests
            ),
        };
    }
    let value = match metrics.value(check.metric) {
        Some(value) if value.is_finite() => value,
        Some(value) => {
            return CheckOutcome::Inconclusive {
                reason: format!("{name} over {window} is {value}, which cannot be checked"),
            };
        }
        None => {
            return CheckOutcome::Inconclusive {
                reason: format!("no {name} data over {window}"),
            };
        }
    };
    let shown = |v: f64| match check.metric {
        MetricKind::RequestCount => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    };
    if let Some(max) = check.max
        && value > max
    {
        return CheckOutcome::Fail {
            value,
            reason: format!(
                "{name} {} is above the maximum {} over {window}",
                shown(value),
                shown(max)
            ),
        };
    }
    if let Some(min) = check.min
        && value < min
    {
        let reason = format!(
            "{name} {} is below the minimum {} over {window}",
            shown(value),
            shown(min)
        );
        return if check.metric == MetricKind::RequestCount {
            CheckOutcome::Inconclusive {
                reason: format!("{reason}: too little traffic to judge yet"),
            }
        } else {
            CheckOutcome::Fail { value, reason }
        };
    }
    CheckOutcome::Pass { value }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    /// Ten stable latency values, 100 to 136 ms in steps of 4, reused across tests.
    const STABLE: [f64; 10] = [
        100.0, 104.0, 108.0, 112.0, 116.0, 120.0, 124.0, 128.0, 132.0, 136.0,
    ];

    fn shifted(values: &[f64], by: f64) -> Vec<f64> {
        values.iter().map(|v| v + by).collect()
    }

    fn spec(confidence: f64, effect_tolerance: f64, min_samples: usize) -> JudgeSpec {
        JudgeSpec {
            metric: MetricKind::LatencyP99,
            confidence,
            effect_tolerance,
            min_samples,
        }
    }

    fn assert_close(actual: f64, expected: f64, what: &str) {
        let tolerance = 1e-6 * expected.abs().max(1e-300);
        assert!(
            (actual - expected).abs() <= tolerance,
            "{what}: got {actual:e}, expected {expected:e}"
        );
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        // Reference values of Φ to full double precision.
        let table = [
            (1.96, 0.9750021048517795),
            (0.0, 0.5),
            (-3.0, 0.0013498980316300933),
            (3.0, 0.9986501019683699),
            (-1.0, 0.15865525393145707),
            (0.3, 0.6179114221889526),
            (-2.5, 0.006209665325776132),
            (2.5, 0.9937903346742238),
            // Either side of x = −2.5·√2, where erfc switches from series to fraction.
            (-3.5355, 0.00020350212259507148),
            (-3.54, 0.0002000635160073201),
            (3.6, 0.9998408914098424),
            (-5.0, 2.866515718791933e-7),
            (-8.5, 9.47953482220325e-18),
            (-10.0, 7.61985302416047e-24),
        ];
        for (x, expected) in table {
            let actual = normal_cdf(x);
            // Relative precision, so the far tail is checked as strictly as the middle.
            assert!(
                ((actual - expected) / expected).abs() < 1e-12,
                "Φ({x}) = {actual:e}, expected {expected:e}"
            );
        }
        assert_eq!(normal_cdf(f64::INFINITY), 1.0);
        assert_eq!(normal_cdf(f64::NEG_INFINITY), 0.0);
        assert!(normal_cdf(f64::NAN).is_nan());
    }

    /// One reference result of SciPy's `mannwhitneyu(canary, stable, method="asymptotic",
    /// use_continuity=True)`, run with each `alternative`.
    struct Reference {
        canary: &'static [f64],
        stable: &'static [f64],
        /// The statistic SciPy reports for `alternative="greater"`: U of the canary.
        u: f64,
        p_greater: f64,
        p_less: f64,
        p_two_sided: f64,
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        // The expected values are SciPy 1.17's asymptotic results for these samples.
        let table = [
            Reference {
                // No ties.
                canary: &[12.1, 15.3, 14.2, 18.9, 16.4, 13.7, 17.2],
                stable: &[11.0, 12.5, 10.8, 13.1, 14.9, 9.7],
                u: 37.0,
                p_greater: 0.013404565357797922,
                p_less: 0.990791919711848,
                p_two_sided: 0.026809130715595843,
            },
            Reference {
                // Ties within and across the samples.
                canary: &[1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0],
                stable: &[1.0, 1.0, 2.0, 2.0, 3.0, 4.0],
                u: 32.0,
                p_greater: 0.15962631485751094,
                p_less: 0.8705076710238127,
                p_two_sided: 0.3192526297150219,
            },
            Reference {
                // Latencies rounded to 5 ms, as they often are, so ties are many.
                canary: &[
                    120.0, 125.0, 125.0, 130.0, 140.0, 140.0, 140.0, 150.0, 155.0, 160.0, 180.0,
                    200.0,
                ],
                stable: &[
                    110.0, 115.0, 120.0, 120.0, 125.0, 125.0, 130.0, 130.0, 135.0, 140.0, 145.0,
                    150.0,
                ],
                u: 108.0,
                p_greater: 0.019573503254842563,
                p_less: 0.9830281887321253,
                p_two_sided: 0.039147006509685126,
            },
            Reference {
                // The canary is lower: small error rates.
                canary: &[0.2, 0.4, 0.1, 0.3, 0.5, 0.2],
                stable: &[0.6, 0.9, 0.4, 1.2, 0.8, 0.7, 0.5],
                u: 2.0,
                p_greater: 0.9974231404434654,
                p_less: 0.003979362679599815,
                p_two_sided: 0.00795872535919963,
            },
            Reference {
                // Identical samples: U sits at its mean, and the two-sided p-value is 1.
                canary: &STABLE,
                stable: &STABLE,
                u: 50.0,
                p_greater: 0.5151319787899796,
                p_less: 0.5151319787899796,
                p_two_sided: 1.0,
            },
        ];
        for reference in table {
            let (canary, stable) = (reference.canary, reference.stable);
            let test = mann_whitney(canary, stable).unwrap();
            let pairs = (canary.len() * stable.len()) as f64;
            assert_eq!(test.u_canary, reference.u, "U of {canary:?}");
            assert_eq!(test.u_stable, pairs - reference.u, "U of {stable:?}");
            assert_close(test.p_greater, reference.p_greater, "p greater");
            assert_close(test.p_less, reference.p_less, "p less");
            assert_close(test.p_two_sided, reference.p_two_sided, "p two-sided");
        }
    }

    #[test]
    fn z_has_the_sign_of_the_shift() {
        let up = mann_whitney(&shifted(&STABLE, 40.0), &STABLE).unwrap();
        let down = mann_whitney(&shifted(&STABLE, -40.0), &STABLE).unwrap();
        assert!(up.z > 3.0, "{up:?}");
        assert_eq!(down.z, -up.z);
        assert_eq!(mann_whitney(&STABLE, &STABLE).unwrap().z, 0.0);
    }

    #[test]
    fn all_tied_values_give_no_evidence() {
        let test = mann_whitney(&[5.0; 8], &[5.0; 12]).unwrap();
        assert_eq!(test.u_canary, 48.0);
        assert_eq!(test.u_stable, 48.0);
        assert_eq!(test.z, 0.0);
        assert_eq!(
            (test.p_greater, test.p_less, test.p_two_sided),
            (1.0, 1.0, 1.0)
        );

        let verdict = judge(&spec(0.95, 0.1, 5), &[5.0; 8], &[5.0; 12]);
        assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.reason);
        assert_eq!(verdict.relative_change, Some(0.0));
        assert_eq!(verdict.p_value, Some(1.0));
    }

    #[test]
    fn empty_or_non_finite_samples_cannot_be_tested() {
        assert_eq!(mann_whitney(&[], &[1.0]), None);
        assert_eq!(mann_whitney(&[1.0], &[]), None);
        assert_eq!(mann_whitney(&[1.0, f64::NAN], &[1.0, 2.0]), None);
        assert_eq!(mann_whitney(&[1.0, 2.0], &[f64::INFINITY]), None);

        let verdict = judge(&spec(0.95, 0.1, 1), &[1.0, f64::NAN], &[1.0, 2.0]);
        assert_eq!(verdict.outcome, Outcome::Marginal);
        assert_eq!(verdict.p_value, None);
        assert!(verdict.reason.contains("not finite"), "{}", verdict.reason);

        let verdict = judge(&spec(0.95, 0.1, 0), &[], &STABLE);
        assert_eq!(verdict.outcome, Outcome::Marginal);
        assert_eq!(verdict.canary_median, None);
        assert_eq!(verdict.relative_change, None);
    }

    #[test]
    fn identical_samples_pass() {
        let verdict = judge(&spec(0.95, 0.1, 5), &STABLE, &STABLE);
        assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.reason);
        assert_eq!(verdict.canary_median, Some(118.0));
        assert_eq!(verdict.stable_median, Some(118.0));
        assert_eq!(verdict.relative_change, Some(0.0));
        assert!(
            verdict.reason.contains("no significant increase"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn a_clear_increase_fails() {
        let canary = shifted(&STABLE, 40.0);
        let verdict = judge(&spec(0.95, 0.1, 5), &canary, &STABLE);
        assert_eq!(verdict.outcome, Outcome::Fail, "{}", verdict.reason);
        // SciPy's asymptotic one-sided p-value for this shift.
        assert_close(verdict.p_value.unwrap(), 9.133589555477501e-05, "p");
        assert_close(verdict.relative_change.unwrap(), 40.0 / 118.0, "change");
        assert_eq!(
            verdict.reason,
            "canary latency_p99 median 158.0 vs stable 118.0 (+33.9%, n = 10 vs 10), \
             p = 9.1e-5 < 0.05 at 95% confidence: worse beyond the 10% tolerance"
        );
    }

    #[test]
    fn a_clear_decrease_passes() {
        let canary = shifted(&STABLE, -30.0);
        let verdict = judge(&spec(0.95, 0.1, 5), &canary, &STABLE);
        assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.reason);
        assert_close(verdict.p_value.unwrap(), 0.999835080739611, "p");
        assert!(verdict.relative_change.unwrap() < 0.0);
        assert!(
            verdict.reason.contains("significantly lower"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn too_few_samples_are_marginal() {
        // Even a large, clear increase is not judged on four values a side.
        let canary = [300.0, 310.0, 320.0, 330.0];
        let stable = [100.0, 110.0, 120.0, 130.0];
        let verdict = judge(&spec(0.95, 0.1, 5), &canary, &stable);
        assert_eq!(verdict.outcome, Outcome::Marginal, "{}", verdict.reason);
        assert_eq!((verdict.canary_n, verdict.stable_n), (4, 4));
        assert!(
            verdict.reason.contains("fewer than the 5 samples"),
            "{}",
            verdict.reason
        );
        // One side short is enough.
        let verdict = judge(&spec(0.95, 0.1, 5), &shifted(&STABLE, 100.0), &stable);
        assert_eq!(verdict.outcome, Outcome::Marginal, "{}", verdict.reason);
        // With the minimum met, the same kind of increase fails.
        let verdict = judge(&spec(0.95, 0.1, 4), &canary, &stable);
        assert_eq!(verdict.outcome, Outcome::Fail, "{}", verdict.reason);
    }

    #[test]
    fn the_confidence_level_moves_the_line() {
        // SciPy's asymptotic one-sided p-value for these samples is 0.02695, and the
        // medians differ by +11.9%: significant at 95% but not even nearly so at 99%,
        // where the marginal band is [0.01, 0.02).
        let canary = [
            106.0, 114.0, 122.0, 126.0, 130.0, 134.0, 138.0, 142.0, 146.0, 150.0,
        ];
        let at_95 = judge(&spec(0.95, 0.1, 5), &canary, &STABLE);
        let at_99 = judge(&spec(0.99, 0.1, 5), &canary, &STABLE);
        assert_close(at_95.p_value.unwrap(), 0.026951278584693587, "p");
        assert_eq!(at_95.outcome, Outcome::Fail, "{}", at_95.reason);
        assert_eq!(at_99.outcome, Outcome::Pass, "{}", at_99.reason);
        assert_eq!(at_99.confidence, 0.99);
        assert!(
            at_99.reason.contains("p = 0.027 >= 0.01 at 99% confidence"),
            "{}",
            at_99.reason
        );
    }

    #[test]
    fn a_nearly_significant_large_change_is_marginal() {
        // A +10 ms shift: SciPy's asymptotic p-value is 0.0521, just above α = 0.05 and
        // below 2α, and the medians differ by +8.5%.
        let canary = shifted(&STABLE, 10.0);
        let verdict = judge(&spec(0.95, 0.05, 5), &canary, &STABLE);
        assert_close(verdict.p_value.unwrap(), 0.05205494483011341, "p");
        assert_eq!(verdict.outcome, Outcome::Marginal, "{}", verdict.reason);
        assert!(
            verdict.reason.contains("between 0.05 and 0.1"),
            "{}",
            verdict.reason
        );
        // Within a 10% tolerance the same data passes: nearly significant, but too small.
        let verdict = judge(&spec(0.95, 0.1, 5), &canary, &STABLE);
        assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.reason);
    }

    #[test]
    fn a_significant_but_tolerated_increase_passes() {
        // Thirty values a side with the canary exactly 3% higher and no overlap at all:
        // hugely significant (SciPy: p = 1.51e-11), but within a 10% tolerance.
        let stable: Vec<f64> = (0..30).map(|i| 100.0 + 0.1 * f64::from(i)).collect();
        let canary: Vec<f64> = stable.iter().map(|v| v * 1.03).collect();
        let verdict = judge(&spec(0.95, 0.1, 5), &canary, &stable);
        assert_close(verdict.p_value.unwrap(), 1.5099296795810785e-11, "p");
        assert_close(verdict.relative_change.unwrap(), 0.03, "change");
        assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.reason);
        assert!(
            verdict.reason.contains("within the 10% tolerance"),
            "{}",
            verdict.reason
        );
        // With a 1% tolerance the same increase fails.
        let verdict = judge(&spec(0.95, 0.01, 5), &canary, &stable);
        assert_eq!(verdict.outcome, Outcome::Fail, "{}", verdict.reason);
    }

    #[test]
    fn a_zero_stable_median_is_compared_in_absolute_terms() {
        let stable = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 0.2];
        let spec = JudgeSpec {
            metric: MetricKind::ErrorRate,
            ..spec(0.95, 0.1, 5)
        };
        // Error rates around 0.6%: 0.6 points above a stable median of 0, beyond 0.1.
        let erroring = [0.5, 0.8, 0.4, 0.9, 0.6, 0.7, 0.5, 0.3, 0.8, 0.6];
        let verdict = judge(&spec, &erroring, &stable);
        assert_eq!(verdict.outcome, Outcome::Fail, "{}", verdict.reason);
        assert_eq!(verdict.relative_change, None);
        assert_close(verdict.p_value.unwrap(), 5.428759955446237e-05, "p");
        assert!(
            verdict.reason.contains("+0.600 absolute"),
            "{}",
            verdict.reason
        );
        // A couple of stray errors leave the canary median at 0 too.
        let stray = [0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0];
        let verdict = judge(&spec, &stray, &stable);
        assert_eq!(verdict.outcome, Outcome::Pass, "{}", verdict.reason);
    }

    #[test]
    fn verdicts_serialize_with_snake_case_outcomes() {
        let verdict = judge(&spec(0.95, 0.1, 5), &shifted(&STABLE, 40.0), &STABLE);
        let json = serde_json::to_value(&verdict).unwrap();
        assert_eq!(json["outcome"], "fail");
        assert_eq!(json["metric"], "latency_p99");
        let back: Verdict = serde_json::from_value(json).unwrap();
        assert_eq!(back, verdict);
    }

    fn check(metric: MetricKind, max: Option<f64>, min: Option<f64>) -> MetricCheck {
        MetricCheck {
            metric,
            max,
            min,
            window: Duration::from_secs(60),
            min_requests: 100,
        }
    }

    fn metrics(requests: u64, errors_5xx: u64, latency_p99_ms: Option<f64>) -> SlotMetrics {
        SlotMetrics {
            requests,
            errors_5xx,
            latency_p99_ms,
            ..SlotMetrics::default()
        }
    }

    #[test]
    fn thresholds_pass_fail_or_stay_inconclusive() {
        use CheckOutcome::{Fail, Inconclusive, Pass};
        let error_rate = check(MetricKind::ErrorRate, Some(1.0), None);
        let latency = check(MetricKind::LatencyP99, Some(250.0), Some(1.0));
        let floor = check(MetricKind::RequestCount, None, Some(500.0));
        let ceiling = check(MetricKind::RequestCount, Some(1000.0), None);
        let inconclusive = |reason: &str| Inconclusive {
            reason: reason.to_string(),
        };
        let fail = |value: f64, reason: &str| Fail {
            value,
            reason: reason.to_string(),
        };
        let table = [
            (&error_rate, metrics(1000, 5, None), Pass { value: 0.5 }),
            (
                &error_rate,
                metrics(1000, 42, None),
                fail(4.2, "error_rate 4.20 is above the maximum 1.00 over 1m"),
            ),
            (&error_rate, metrics(1000, 10, None), Pass { value: 1.0 }),
            (
                &error_rate,
                metrics(40, 40, None),
                inconclusive("only 40 requests over 1m, 100 needed to check error_rate"),
            ),
            (
                &latency,
                metrics(500, 0, Some(180.0)),
                Pass { value: 180.0 },
            ),
            (
                &latency,
                metrics(500, 0, Some(312.5)),
                fail(
                    312.5,
                    "latency_p99 312.50 is above the maximum 250.00 over 1m",
                ),
            ),
            (
                &latency,
                metrics(500, 0, Some(0.5)),
                fail(0.5, "latency_p99 0.50 is below the minimum 1.00 over 1m"),
            ),
            (
                &latency,
                metrics(500, 0, None),
                inconclusive("no latency_p99 data over 1m"),
            ),
            (
                &latency,
                metrics(500, 0, Some(f64::NAN)),
                inconclusive("latency_p99 over 1m is NaN, which cannot be checked"),
            ),
            (
                &floor,
                metrics(120, 0, None),
                inconclusive(
                    "request_count 120 is below the minimum 500 over 1m: \
                     too little traffic to judge yet",
                ),
            ),
            (&floor, metrics(800, 0, None), Pass { value: 800.0 }),
            (
                &ceiling,
                metrics(1500, 0, None),
                fail(
                    1500.0,
                    "request_count 1500 is above the maximum 1000 over 1m",
                ),
            ),
        ];
        for (check, metrics, expected) in table {
            assert_eq!(check_threshold(check, &metrics), expected, "{metrics:?}");
        }
    }

    #[test]
    fn an_error_rate_without_requests_is_inconclusive() {
        // With no minimum, zero requests pass the traffic check but leave no rate.
        let check = MetricCheck {
            min_requests: 0,
            ..check(MetricKind::ErrorRate, Some(1.0), None)
        };
        assert_eq!(
            check_threshold(&check, &metrics(0, 0, None)),
            CheckOutcome::Inconclusive {
                reason: "no error_rate data over 1m".to_string()
            }
        );
    }

    #[test]
    fn a_shift_that_ties_every_value_leaves_no_evidence_either_way() {
        let apart = mann_whitney(&[0.0], &[1.0]).unwrap();
        let tied = mann_whitney(&[1.0], &[1.0]).unwrap();
        assert!(
            apart.p_greater > 0.97 && apart.p_greater < 0.98,
            "{apart:?}"
        );
        assert_eq!(
            (tied.p_greater, tied.p_less, tied.p_two_sided),
            (1.0, 1.0, 1.0)
        );
    }

    /// Samples of small whole numbers, so that ties within and across samples are common.
    fn sample() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec((0u8..20).prop_map(f64::from), 1..40)
    }

    proptest! {
        #[test]
        fn mann_whitney_invariants(canary in sample(), stable in sample()) {
            let test = mann_whitney(&canary, &stable).unwrap();
            let swapped = mann_whitney(&stable, &canary).unwrap();
            let pairs = (canary.len() * stable.len()) as f64;

            // Every pair is counted once, ties as half to each side.
            prop_assert_eq!(test.u_canary + test.u_stable, pairs);
            prop_assert!(test.u_canary >= 0.0 && test.u_stable >= 0.0);

            for p in [test.p_greater, test.p_less, test.p_two_sided] {
                prop_assert!((0.0..=1.0).contains(&p), "p = {} out of range", p);
            }
            // Each one-sided p-value corrects towards its own alternative, so together
            // they cover at least everything.
            prop_assert!(test.p_greater + test.p_less >= 1.0 - 1e-12);
            let expected_two_sided = (2.0 * test.p_greater.min(test.p_less)).min(1.0);
            prop_assert!((test.p_two_sided - expected_two_sided).abs() < 1e-12);

            // Swapping the samples swaps the sides.
            prop_assert_eq!(swapped.u_canary, test.u_stable);
            prop_assert_eq!(swapped.u_stable, test.u_canary);
            prop_assert_eq!(swapped.p_greater, test.p_less);
            prop_assert_eq!(swapped.p_less, test.p_greater);
            prop_assert_eq!(swapped.p_two_sided, test.p_two_sided);
            prop_assert_eq!(swapped.z, -test.z);
        }

        #[test]
        fn shifting_the_canary_up_never_lowers_u(
            canary in sample(),
            stable in sample(),
            shift in 0u8..10,
        ) {
            let base = mann_whitney(&canary, &stable).unwrap();
            let raised = mann_whitney(&shifted(&canary, f64::from(shift)), &stable).unwrap();
            prop_assert!(raised.u_canary >= base.u_canary);
        }

        /// With the ties unchanged the variance is too, so a larger U can only mean a
        /// smaller p_greater. (A shift that creates or breaks ties changes the variance,
        /// and then p_greater may rise: canary [0] against stable [1] gives 0.977, and
        /// shifted by one, all tied, 1.0.) Canary values are odd and stable ones even,
        /// and the shift is even, so no value is ever shared across the samples.
        #[test]
        fn shifting_the_canary_up_never_lowers_p_greater_when_ties_stay_the_same(
            canary in sample(),
            stable in sample(),
            shift in 0u8..10,
        ) {
            let canary: Vec<f64> = canary.iter().map(|v| 2.0 * v + 1.0).collect();
            let stable: Vec<f64> = stable.iter().map(|v| 2.0 * v).collect();
            let base = mann_whitney(&canary, &stable).unwrap();
            let raised = mann_whitney(&shifted(&canary, 2.0 * f64::from(shift)), &stable).unwrap();
            prop_assert!(raised.u_canary >= base.u_canary);
            prop_assert!(raised.p_greater <= base.p_greater + 1e-12);
        }
    }
}
