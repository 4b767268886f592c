//! Pure statistics of the transit pass: percentiles from an HDR histogram, the
//! median's 95% interval from order statistics, the fitted cost per service position
//! with a bootstrap interval, and the paired probe-overhead estimate.
//!
//! Everything here is deterministic (the bootstrap draws from a seeded generator), so
//! the tests check exact numbers.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Two-sided level of every interval here.
const ALPHA: f64 = 0.05;

/// An estimate with its 95% confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub estimate: f64,
    pub ci95: [f64; 2],
}

impl Estimate {
    /// Whether the interval excludes zero: only then is the estimate a measurable
    /// difference; otherwise it is "no measurable difference".
    pub fn excludes_zero(&self) -> bool {
        self.ci95[0] > 0.0 || self.ci95[1] < 0.0
    }
}

/// Percentiles of one target's transit samples, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    /// The median's 95% interval, from the exact samples' order statistics.
    pub ci95_p50: [u64; 2],
}

/// A histogram of `samples` (ns), 3 significant digits, growing as needed.
pub fn histogram(samples: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    h.auto(true);
    for &s in samples {
        // Auto-resizing makes every u64 recordable.
        let _ = h.record(s);
    }
    h
}

/// p10/p50/p90/p99 from the HDR histogram of `samples` and the median's 95% interval
/// from the exact samples; `None` without samples.
pub fn quantiles(samples: &[u64]) -> Option<Quantiles> {
    if samples.is_empty() {
        return None;
    }
    let h = histogram(samples);
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let (lo, hi) = median_ci_ranks(sorted.len());
    Some(Quantiles {
        p10: h.value_at_quantile(0.10),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        ci95_p50: [sorted[lo], sorted[hi]],
    })
}

/// 0-based ranks `(lo, hi)` into `n` sorted samples bounding the median with at least
/// 95% coverage: the number of samples below the true median is Binomial(n, 1/2), so
/// `[x_(j), x_(n+1-j)]` (1-based) covers it with probability `1 - 2 F(j-1)`; `j` is
/// the largest with `F(j-1) <= 2.5%`. Below 6 samples no pair reaches 95% and the
/// whole range is returned. `n` must be positive.
pub fn median_ci_ranks(n: usize) -> (usize, usize) {
    assert!(n > 0, "median interval of no samples");
    // F(k) summed in log space: 2^-n underflows past n = 1074.
    let nf = n as f64;
    let mut log_pmf = -nf * std::f64::consts::LN_2;
    let mut cdf = 0.0;
    let mut j = 0; // number of ranks k = 0..j-1 whose cumulative stays <= alpha/2
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
        return (0, n - 1);
    }
    // 1-based j -> 0-based j - 1; upper 1-based n + 1 - j -> 0-based n - j.
    (j - 1, n - j)
}

/// The median of `v` (mean of the middle two when even); `v` is reordered.
pub fn median_in_place(v: &mut [u64]) -> f64 {
    assert!(!v.is_empty(), "median of no samples");
    let n = v.len();
    let mid = n / 2;
    let (_, &mut upper, _) = v.select_nth_unstable(mid);
    if n % 2 == 1 {
        return upper as f64;
    }
    // The largest of the lower half is the other middle value.
    let lower = *v[..mid].iter().max().expect("n >= 2");
    (lower as f64 + upper as f64) / 2.0
}

/// Ordinary least-squares slope of `y` on `x`; `None` with fewer than two distinct x.
pub fn ols_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

/// One target of the fit: its service position and its exact samples.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub x: f64,
    pub samples: &'a [u64],
}

/// The slope of the groups' medians against their positions, with a 95% percentile
/// bootstrap interval: each of `resamples` rounds redraws every group's samples with
/// replacement (within the group, so each target keeps its own count), refits the
/// medians, and takes the slope. `None` with fewer than two non-empty groups at
/// distinct positions.
pub fn bootstrap_slope(groups: &[Group<'_>], resamples: usize, seed: u64) -> Option<Estimate> {
    let groups: Vec<&Group<'_>> = groups.iter().filter(|g| !g.samples.is_empty()).collect();
    let medians: Vec<(f64, f64)> = groups
        .iter()
        .map(|g| (g.x, median_in_place(&mut g.samples.to_vec())))
        .collect();
    let estimate = ols_slope(&medians)?;
    let mut rng = SplitMix64::new(seed);
    let mut buf = Vec::new();
    let mut points = vec![(0.0, 0.0); groups.len()];
    let mut slopes = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for (p, g) in points.iter_mut().zip(&groups) {
            buf.clear();
            let n = g.samples.len();
            buf.extend((0..n).map(|_| g.samples[rng.below(n)]));
            *p = (g.x, median_in_place(&mut buf));
        }
        slopes.push(ols_slope(&points).expect("same positions as the estimate"));
    }
    let ci95 = percentile_interval(&mut slopes).unwrap_or([estimate, estimate]);
    Some(Estimate { estimate, ci95 })
}

/// The 2.5th and 97.5th percentiles of `v` (nearest rank); `None` when empty.
fn percentile_interval(v: &mut [f64]) -> Option<[f64; 2]> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some([at(ALPHA / 2.0), at(1.0 - ALPHA / 2.0)])
}

/// The median of `v` with its order-statistic 95% interval; `None` when empty.
pub fn median_estimate(v: &[f64]) -> Option<Estimate> {
    if v.is_empty() {
        return None;
    }
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let estimate = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    let (lo, hi) = median_ci_ranks(n);
    Some(Estimate {
        estimate,
        ci95: [sorted[lo], sorted[hi]],
    })
}

/// The probes' cost in percent of the connection rate, from paired rounds `(on, off)`
/// (connections per second with the probes attached and detached): the median of
/// `(off - on) / off * 100` over pairs, with its order-statistic interval.
pub fn paired_overhead_pct(pairs: &[(f64, f64)]) -> Option<Estimate> {
    let pct: Vec<f64> = pairs
        .iter()
        .filter(|(_, off)| *off > 0.0)
        .map(|(on, off)| (off - on) / off * 100.0)
        .collect();
    median_estimate(&pct)
}

/// The bootstrap's deterministic generator, shared with the report's statistics: a
/// fixed seed gives the same interval on every machine.
pub use crate::analysis::stats::SplitMix64;

#[cfg(test)]
mod tests;
