//! The statistics behind every difference the report draws, and how it words them.
//!
//! - A **median** is the nearest-rank 50th percentile, as every percentile in kpbench,
//!   so a difference of medians equals the difference of the `p50_ms` the results show.
//! - A **median's 95% interval** comes from order statistics: the number of samples
//!   below the true median is Binomial(n, 1/2). Below 6 samples no pair of order
//!   statistics reaches 95% and the samples' range is used ([`median_interval_is_95`]
//!   says which).
//! - A **difference of two sample sets** is the difference of their medians with a 95%
//!   percentile-bootstrap interval: [`RESAMPLES`] times, each set is redrawn with
//!   replacement and the difference of the redrawn medians taken; the interval is the
//!   2.5th to 97.5th percentile of those. The generator is seeded ([`SEED`]), so a
//!   report is the same on every machine and tests check exact numbers.
//! - A **difference of two estimates** that only carry intervals (a transit target's
//!   p50 and its order-statistic interval) is a normal approximation for independent
//!   estimates: each side of the interval combines the matching half-widths in
//!   quadrature ([`difference_of_estimates`]).
//! - A **slope** across scales is the least-squares line through each scale's median,
//!   with a bootstrap interval that redraws every scale's samples ([`bootstrap_slope`]).
//!
//! The rule every conclusion draws from these figures is the one three-way rule in
//! [`trend`] (grows/shrinks, flat within a stated margin, inconclusive, or unexpected);
//! the formatters here only write a figure with its interval and decide nothing.

use crate::results::Estimate;

/// Fewer samples than this on a side and there is no interval to speak of.
pub const MIN_SAMPLES: usize = 3;
/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2_000;
/// The bootstrap generator's seed ("kpbench2").
pub const SEED: u64 = 0x6b70_6265_6e63_6832;
/// Two-sided level of every interval.
const ALPHA: f64 = 0.05;

/// SplitMix64, the one small deterministic generator kpbench uses (shapes too), so a
/// fixed seed gives the same interval everywhere without a dependency.
pub use dataplane::floor::shape::SplitMix as SplitMix64;

/// Nearest-rank percentile `p` (0..=100) of sorted values; 0 without values. Every
/// percentile in kpbench is this one: the runner's summaries (`run::metrics`) and the
/// analysis alike.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The nearest-rank median; `None` without samples.
pub fn median(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| percentile(&sorted(v), 50.0))
}

/// 0-based ranks `(lo, hi)` into `n` sorted samples whose values bound the median with
/// at least 95% coverage: `[x_(j), x_(n+1-j)]` (1-based) covers it with probability
/// `1 - 2 F(j-1)` for Binomial(n, 1/2), `j` the largest with `F(j-1) <= 2.5%`. Below 6
/// samples no `j` qualifies and the whole range is returned. `n` must be positive.
pub fn median_ci_ranks(n: usize) -> (usize, usize) {
    assert!(n > 0, "median interval of no samples");
    let nf = n as f64;
    // In log space: 2^-n underflows past n = 1074.
    let mut log_pmf = -nf * std::f64::consts::LN_2;
    let mut cdf = 0.0;
    let mut j = 0;
    for k in 0..n {
        if k > 0 {
            log_pmf += ((nf - k as f64 + 1.0) / k as f64).ln();
        }
        cdf += log_pmf.exp();
        if cdf > ALPHA / 2.0 {
            break;
        }
        j = k + 1;
    }
    if j == 0 {
        (0, n - 1)
    } else {
        (j - 1, n - j)
    }
}

/// Whether `n` samples give the median a true 95% interval (else it is their range).
pub fn median_interval_is_95(n: usize) -> bool {
    n >= 6
}

/// The median with its order-statistic interval; `None` without samples.
pub fn median_estimate(v: &[f64]) -> Option<Estimate> {
    if v.is_empty() {
        return None;
    }
    let s = sorted(v);
    let (lo, hi) = median_ci_ranks(s.len());
    Some(Estimate {
        estimate: percentile(&s, 50.0),
        ci95: [s[lo], s[hi]],
    })
}

/// The 2.5th and 97.5th nearest-rank percentiles of `v` (not empty).
pub(crate) fn percentile_interval(v: &mut [f64]) -> [f64; 2] {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    [at(ALPHA / 2.0), at(1.0 - ALPHA / 2.0)]
}

/// The median of `samples` redrawn with replacement, using `buf` as scratch.
pub(crate) fn resampled_median(samples: &[f64], rng: &mut SplitMix64, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..samples.len()).map(|_| samples[rng.below(samples.len())]));
    buf.sort_by(f64::total_cmp);
    percentile(buf, 50.0)
}

/// median(a) - median(b) with its 95% bootstrap interval ([`RESAMPLES`], [`SEED`]);
/// `None` when either side has fewer than [`MIN_SAMPLES`] samples.
pub fn median_difference(a: &[f64], b: &[f64]) -> Option<Estimate> {
    median_difference_with(a, b, RESAMPLES, SEED)
}

/// [`median_difference`] with the resamples and seed given.
pub fn median_difference_with(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<Estimate> {
    if a.len() < MIN_SAMPLES || b.len() < MIN_SAMPLES || resamples == 0 {
        return None;
    }
    let estimate = median(a)? - median(b)?;
    let mut rng = SplitMix64::new(seed);
    let mut buf = Vec::with_capacity(a.len().max(b.len()));
    let mut diffs: Vec<f64> = (0..resamples)
        .map(|_| {
            let ma = resampled_median(a, &mut rng, &mut buf);
            ma - resampled_median(b, &mut rng, &mut buf)
        })
        .collect();
    Some(Estimate {
        estimate,
        ci95: percentile_interval(&mut diffs),
    })
}

/// `a - b` for independent estimates known only by their intervals: the lower side
/// combines a's lower half-width with b's upper one in quadrature, and the upper side
/// the other two (a normal approximation; exact for symmetric normal intervals).
pub fn difference_of_estimates(a: Estimate, b: Estimate) -> Estimate {
    let estimate = a.estimate - b.estimate;
    let below = (a.estimate - a.ci95[0]).hypot(b.ci95[1] - b.estimate);
    let above = (a.ci95[1] - a.estimate).hypot(b.estimate - b.ci95[0]);
    Estimate {
        estimate,
        ci95: [estimate - below, estimate + above],
    }
}

/// The estimate and its interval times `k` (an interval stays ordered for a negative k).
pub fn scale(e: Estimate, k: f64) -> Estimate {
    let (lo, hi) = (e.ci95[0] * k, e.ci95[1] * k);
    Estimate {
        estimate: e.estimate * k,
        ci95: [lo.min(hi), lo.max(hi)],
    }
}

/// A service count for prose: whole numbers with thousands separators.
pub fn count(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Decimals that give `v` three significant digits (none from 100 up).
fn decimals(v: f64) -> usize {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    }
}

/// A number with three significant digits, for prose.
pub fn num(v: f64) -> String {
    format!("{v:.*}", decimals(v))
}

/// Decimals for an estimate and its interval: three significant digits of the
/// estimate, or more when the interval is narrower, so its two ends never read alike
/// (one significant digit of its width, at most four decimals).
fn decimals_for(e: &Estimate) -> usize {
    let width = e.ci95[1] - e.ci95[0];
    let by_width = if width > 0.0 {
        (-width.log10().floor()).clamp(0.0, 4.0) as usize
    } else {
        0
    };
    decimals(e.estimate).max(by_width)
}

fn at(v: f64, d: usize) -> String {
    format!("{v:.d$}")
}

fn signed_at(v: f64, d: usize) -> String {
    if v > 0.0 {
        format!("+{}", at(v, d))
    } else {
        at(v, d)
    }
}

/// [`num`] with a sign: "+12.0", "-3.10", "0".
pub fn signed(v: f64) -> String {
    signed_at(v, decimals(v))
}

fn unit_suffix(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

/// "5.10 ns (95% CI 4.80..5.40)".
pub fn with_ci(e: &Estimate, unit: &str) -> String {
    written(e, unit, at)
}

/// The estimate and its interval, each number written by `write` at the estimate's
/// decimals.
fn written(e: &Estimate, unit: &str, write: fn(f64, usize) -> String) -> String {
    let d = decimals_for(e);
    format!(
        "{}{} (95% CI {}..{})",
        write(e.estimate, d),
        unit_suffix(unit),
        write(e.ci95[0], d),
        write(e.ci95[1], d)
    )
}

/// The interval alone, signed: "95% CI -1.00..+3.00 ms".
pub fn interval(e: &Estimate, unit: &str) -> String {
    let d = decimals_for(e);
    format!(
        "95% CI {}..{}{}",
        signed_at(e.ci95[0], d),
        signed_at(e.ci95[1], d),
        unit_suffix(unit)
    )
}

/// A difference with its interval, signed: "+12.0 ms (95% CI +10.0..+14.0)". It
/// decides nothing: the verdict beside it comes from [`trend`] with the figure's margin.
pub fn difference(e: &Estimate, unit: &str) -> String {
    written(e, unit, signed_at)
}

mod slope;
mod trend;

pub use slope::{
    bootstrap_slope, least_squares, t_975, target_slope, Group, SlopeFit, TargetSlope,
};
pub use trend::{
    growth_trend, lookup_margin, lookup_trend, overhead_resolved, overhead_trend, overhead_words,
    relative_margin, trend, with_margin, Forbidden, Trend, LOOKUP_MARGIN_FLOOR_NS,
    OVERHEAD_MARGIN_PCT, RELATIVE_MARGIN_SHARE,
};

#[cfg(test)]
mod tests;
