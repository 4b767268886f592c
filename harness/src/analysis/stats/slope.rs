//! Slopes: a line through groups of samples (scales of a sync, service positions of the
//! transit pass), with the group's block (a replicate) given its own intercept.
//!
//! Two intervals, for two questions:
//! - [`target_slope`]: the regression on the groups' medians, its interval from the
//!   residual error between them (Student's t). Whatever is fixed per group (a VIP's
//!   hash bucket, its place in the round) is in the residual, so it is in the
//!   interval. This is the interval a verdict uses.
//! - [`bootstrap_slope`]: the packets (or timings) inside each group redrawn, the
//!   medians refitted. It says how precisely the samples pin each median down, and
//!   nothing about effects fixed per group: the per-packet precision.

use std::collections::BTreeMap;

use super::{
    median, percentile_interval, resampled_median, SplitMix64, MIN_SAMPLES, RESAMPLES, SEED,
};
use crate::results::Estimate;

/// One group of a fit: its block (replicate), its x, and its samples.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub block: usize,
    pub x: f64,
    pub samples: &'a [f64],
}

/// A line with its slope's interval.
#[derive(Debug, Clone, PartialEq)]
pub struct SlopeFit {
    /// The mean of the blocks' intercepts.
    pub intercept: f64,
    /// Per unit of x.
    pub slope: Estimate,
}

/// Least squares `(intercept, slope)`; `None` with fewer than two distinct x.
pub fn least_squares(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let blocked: Vec<(usize, f64, f64)> = points.iter().map(|&(x, y)| (0, x, y)).collect();
    within(&blocked).map(|w| (w.intercept, w.slope))
}

/// A fit with one intercept per block and one common slope.
struct Within {
    intercept: f64,
    slope: f64,
    sxx: f64,
    /// Residual sum of squares.
    rss: f64,
    blocks: usize,
}

/// Least squares of `(block, x, y)` with an intercept per block (x and y centred in
/// their block); `None` when no block has two distinct x.
fn within(points: &[(usize, f64, f64)]) -> Option<Within> {
    let mut sums: BTreeMap<usize, (f64, f64, f64)> = BTreeMap::new();
    for &(b, x, y) in points {
        let s = sums.entry(b).or_insert((0.0, 0.0, 0.0));
        *s = (s.0 + x, s.1 + y, s.2 + 1.0);
    }
    let mean = |b: usize| {
        let s = sums[&b];
        (s.0 / s.2, s.1 / s.2)
    };
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for &(b, x, y) in points {
        let (mx, my) = mean(b);
        sxx += (x - mx).powi(2);
        sxy += (x - mx) * (y - my);
    }
    if sxx <= 0.0 || points.len() < 2 {
        return None;
    }
    let slope = sxy / sxx;
    let rss = points
        .iter()
        .map(|&(b, x, y)| {
            let (mx, my) = mean(b);
            (y - my - slope * (x - mx)).powi(2)
        })
        .sum();
    let k = sums.len() as f64;
    let intercept = sums
        .keys()
        .map(|&b| mean(b).1 - slope * mean(b).0)
        .sum::<f64>()
        / k;
    Some(Within {
        intercept,
        slope,
        sxx,
        rss,
        blocks: sums.len(),
    })
}

/// The line through the medians of `groups` with a 95% percentile-bootstrap interval
/// of its slope ([`RESAMPLES`], [`SEED`]): each resample redraws every group's samples
/// within itself. Groups with fewer than [`MIN_SAMPLES`] samples are left out; `None`
/// when no block keeps two distinct x.
pub fn bootstrap_slope(groups: &[Group<'_>]) -> Option<SlopeFit> {
    let groups: Vec<&Group<'_>> = groups
        .iter()
        .filter(|g| g.samples.len() >= MIN_SAMPLES)
        .collect();
    let mut points: Vec<(usize, f64, f64)> = groups
        .iter()
        .map(|g| Some((g.block, g.x, median(g.samples)?)))
        .collect::<Option<_>>()?;
    let fit = within(&points)?;
    let mut rng = SplitMix64::new(SEED);
    let mut buf = Vec::new();
    let mut slopes: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for (p, g) in points.iter_mut().zip(&groups) {
                p.2 = resampled_median(g.samples, &mut rng, &mut buf);
            }
            within(&points).map_or(fit.slope, |f| f.slope)
        })
        .collect();
    Some(SlopeFit {
        intercept: fit.intercept,
        slope: Estimate {
            estimate: fit.slope,
            ci95: percentile_interval(&mut slopes),
        },
    })
}

/// The regression on group-level points `(block, x, median)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSlope {
    /// The common slope with its 95% t interval from the residual error.
    pub slope: Estimate,
    pub intercept: f64,
    /// Points and blocks behind it.
    pub points: usize,
    pub blocks: usize,
    /// The residual standard deviation between points, in y's unit.
    pub residual_sd: f64,
}

/// The slope of `(block, x, y)` points (one per target and replicate), an intercept per
/// block, with the 95% interval `slope ± t(df) · s / sqrt(Sxx)`, df = points - blocks
/// - 1. `None` without a residual degree of freedom (then there is no interval).
pub fn target_slope(points: &[(usize, f64, f64)]) -> Option<TargetSlope> {
    let w = within(points)?;
    let df = points.len().checked_sub(w.blocks + 1)?;
    if df == 0 {
        return None;
    }
    let s = (w.rss / df as f64).sqrt();
    let half = t_975(df as f64) * s / w.sxx.sqrt();
    Some(TargetSlope {
        slope: Estimate {
            estimate: w.slope,
            ci95: [w.slope - half, w.slope + half],
        },
        intercept: w.intercept,
        points: points.len(),
        blocks: w.blocks,
        residual_sd: s,
    })
}

/// Student's t 97.5th percentile with `df` degrees of freedom: the table up to 5, the
/// Cornish-Fisher expansion around the normal beyond (error below 0.3% from df = 6).
pub fn t_975(df: f64) -> f64 {
    const TABLE: [f64; 5] = [12.706, 4.303, 3.182, 2.776, 2.571];
    if df < 5.5 {
        return TABLE[(df.round().max(1.0) as usize) - 1];
    }
    let z: f64 = 1.959_964;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_table() {
        for (df, t) in [
            (3.0, 3.182),
            (6.0, 2.447),
            (7.0, 2.365),
            (23.0, 2.069),
            (1000.0, 1.962),
        ] {
            assert!((t_975(df) - t).abs() / t < 0.003, "df {df}: {}", t_975(df));
        }
    }

    #[test]
    fn blocks_get_their_own_intercept() {
        // Two replicates, the second 100 higher, both of slope 2.
        let pts: Vec<(usize, f64, f64)> = (0..5)
            .flat_map(|x| {
                let x = x as f64;
                [(0, x, 2.0 * x), (1, x, 100.0 + 2.0 * x)]
            })
            .collect();
        let w = within(&pts).unwrap();
        assert!((w.slope - 2.0).abs() < 1e-12);
        assert!(w.rss < 1e-9);
        assert!((w.intercept - 50.0).abs() < 1e-9);
        let t = target_slope(&pts).unwrap();
        assert_eq!(t.blocks, 2);
        assert!((t.slope.ci95[1] - 2.0).abs() < 1e-9);
    }
}

/// Synthetic passes with a known answer (issue 18, item 8).
#[cfg(test)]
mod known_answers {
    use super::super::{lookup_margin, lookup_trend, Trend};
    use super::*;

    /// 9 positions over 1,000 services; each target `base + slope * x + offset`, with
    /// 500 packets of noise around it (a deterministic spread of ±300 ns).
    fn pass(slope: f64, offsets: &[f64; 9]) -> Vec<(f64, Vec<f64>)> {
        let mut rng = SplitMix64::new(42);
        (0..9)
            .map(|k| {
                let x = (k * 999 / 8) as f64;
                let centre = 4_000.0 + slope * x + offsets[k];
                let samples = (0..500)
                    .map(|_| centre + (rng.below(601) as f64 - 300.0))
                    .collect();
                (x, samples)
            })
            .collect()
    }

    fn fits(p: &[(f64, Vec<f64>)]) -> (TargetSlope, SlopeFit) {
        let points: Vec<(usize, f64, f64)> =
            p.iter().map(|(x, s)| (0, *x, median(s).unwrap())).collect();
        let groups: Vec<Group<'_>> = p
            .iter()
            .map(|(x, s)| Group {
                block: 0,
                x: *x,
                samples: s,
            })
            .collect();
        (
            target_slope(&points).unwrap(),
            bootstrap_slope(&groups).unwrap(),
        )
    }

    #[test]
    fn fixed_per_target_offsets_are_never_a_slope() {
        let offsets = [
            200.0, -200.0, -200.0, 200.0, 200.0, -200.0, 200.0, -200.0, 200.0,
        ];
        let (t, packets) = fits(&pass(0.0, &offsets));
        let v = lookup_trend(&t.slope, lookup_margin(None));
        assert!(
            matches!(v, Trend::Flat | Trend::Inconclusive),
            "{v:?} {t:?}"
        );
        // The per-packet bootstrap calls the same pass significant: the old bug.
        assert!(!packets.slope.includes_zero(), "{:?}", packets.slope);
    }

    #[test]
    fn a_true_slope_of_5_grows_and_is_covered() {
        let offsets = [30.0, -40.0, 10.0, 0.0, -20.0, 40.0, -10.0, 20.0, -30.0];
        let (t, _) = fits(&pass(5.0, &offsets));
        assert_eq!(lookup_trend(&t.slope, lookup_margin(None)), Trend::Grows);
        assert!(t.slope.ci95[0] <= 5.0 && 5.0 <= t.slope.ci95[1], "{t:?}");
    }

    #[test]
    fn a_significant_fall_of_a_flat_mode_is_unexpected() {
        let offsets = [0.0; 9];
        let (t, _) = fits(&pass(-3.0, &offsets));
        assert_eq!(
            lookup_trend(&t.slope, lookup_margin(None)),
            Trend::Unexpected
        );
    }
}
