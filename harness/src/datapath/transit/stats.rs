//! Pure statistics of the transit pass: percentiles from an HDR histogram, the
//! median's 95% interval from order statistics, and the paired probe-overhead
//! estimate. The cost per service position is fitted by `analysis::stats` (the one
//! slope and the one bootstrap in kpbench).
//!
//! Everything here is deterministic, so the tests check exact numbers.

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
    /// Whether the interval excludes zero (one condition of the one rule,
    /// `analysis::stats::trend`, which also asks for an effect beyond the margin).
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

#[cfg(test)]
mod tests;
