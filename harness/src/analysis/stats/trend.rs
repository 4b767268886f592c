//! The one rule every conclusion in kpbench draws from a figure with an interval: a
//! three-way verdict with a practical margin declared per figure.
//!
//! - **grows / shrinks**: the interval excludes zero **and** the estimate is larger
//!   than the margin;
//! - **flat**: the whole interval lies within ±margin (an equivalence test);
//! - **inconclusive**: anything else;
//! - **unexpected**: a significant move in the direction the physics forbids (a lookup
//!   that gets cheaper as rules are added, a negative probe overhead). It is reported
//!   as likely an artefact, never as a confirmation.
//!
//! The claims, the capacity planner, the short answer, the summary table, `compare` and
//! the report all call [`trend`]; none keeps a rule of its own.

use crate::results::Estimate;
pub use crate::results::Trend;

/// The direction a figure cannot honestly move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// Either direction is plausible (a difference between two runs).
    Neither,
    /// The figure cannot fall below zero (a lookup cost per rule, an overhead).
    Down,
}

/// The verdict on `e` with the practical margin `margin` (same unit, >= 0).
pub fn trend(e: &Estimate, margin: f64, forbidden: Forbidden) -> Trend {
    let m = margin.abs();
    let [lo, hi] = e.ci95;
    if lo >= -m && hi <= m {
        return Trend::Flat;
    }
    let below = hi < 0.0;
    if below && forbidden == Forbidden::Down {
        return Trend::Unexpected;
    }
    if lo > 0.0 && e.estimate > m {
        Trend::Grows
    } else if below && e.estimate < -m {
        Trend::Shrinks
    } else {
        Trend::Inconclusive
    }
}

/// The floor of the lookup margin: 0.5 ns per service position.
pub const LOOKUP_MARGIN_FLOOR_NS: f64 = 0.5;
/// The lookup margin's share of iptables-legacy's slope in the same environment.
pub const LOOKUP_MARGIN_SHARE: f64 = 0.10;

/// The practical margin of a cost per service position (ns): 0.5 ns, or a tenth of
/// iptables-legacy's slope in the same environment, whichever is larger.
pub fn lookup_margin(iptables_legacy_slope: Option<f64>) -> f64 {
    iptables_legacy_slope
        .map(|s| s.abs() * LOOKUP_MARGIN_SHARE)
        .unwrap_or(0.0)
        .max(LOOKUP_MARGIN_FLOOR_NS)
}

/// The verdict on a cost per service position: a lookup cannot get cheaper with more
/// rules ahead of it.
pub fn lookup_trend(e: &Estimate, margin: f64) -> Trend {
    trend(e, margin, Forbidden::Down)
}

/// The practical margin of the probe overhead, percentage points; an overhead whose
/// interval is wider than ±this is not resolved.
pub const OVERHEAD_MARGIN_PCT: f64 = 5.0;

/// The verdict on the probes' overhead (percent): it cannot be negative.
pub fn overhead_trend(e: &Estimate) -> Trend {
    trend(e, OVERHEAD_MARGIN_PCT, Forbidden::Down)
}

/// Whether the overhead's interval is narrow enough to state it: no wider than
/// ±[`OVERHEAD_MARGIN_PCT`] points.
pub fn overhead_resolved(e: &Estimate) -> bool {
    (e.ci95[1] - e.ci95[0]) / 2.0 <= OVERHEAD_MARGIN_PCT
}

/// The probe overhead in words: "not resolved (interval [-9.1, 14.2]%)" when its
/// interval is wider than ±5 points; "no measurable overhead" when the interval
/// includes zero; otherwise the figure with its interval and verdict.
pub fn overhead_words(e: &Estimate) -> String {
    let ci = format!("[{}, {}]%", super::num(e.ci95[0]), super::num(e.ci95[1]));
    if !overhead_resolved(e) {
        return format!("not resolved (interval {ci})");
    }
    if e.includes_zero() {
        return format!("no measurable overhead (interval {ci})");
    }
    format!(
        "{}% {ci}, {}",
        super::num(e.estimate),
        with_margin(overhead_trend(e), OVERHEAD_MARGIN_PCT, "points")
    )
}

/// The share of a baseline that a change between two timings (a sync at two scales,
/// two modes' figures) must exceed to count: 10%.
pub const RELATIVE_MARGIN_SHARE: f64 = 0.10;

/// The practical margin of a change from `base` (same unit): a tenth of it.
pub fn relative_margin(base: f64) -> f64 {
    base.abs() * RELATIVE_MARGIN_SHARE
}

/// The verdict on a sync's growth with the service count (last scale minus first, or
/// a slope scaled to the measured range): more services cannot make a sync cheaper.
pub fn growth_trend(e: &Estimate, margin: f64) -> Trend {
    trend(e, margin, Forbidden::Down)
}

/// The verdict and its wording beside the margin: "flat (margin ±0.50 ns)".
pub fn with_margin(t: Trend, margin: f64, unit: &str) -> String {
    let u = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    format!("{} (margin ±{}{u})", t.label(), super::num(margin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(e: f64, lo: f64, hi: f64) -> Estimate {
        Estimate {
            estimate: e,
            ci95: [lo, hi],
        }
    }

    #[test]
    fn the_three_ways_and_the_artefact() {
        let d = Forbidden::Down;
        assert_eq!(trend(&est(5.0, 4.0, 6.0), 0.5, d), Trend::Grows);
        assert_eq!(trend(&est(0.1, -0.2, 0.4), 0.5, d), Trend::Flat);
        // ebpf-tc at 5,000 in the old quick run: significant, but inside the margin.
        assert_eq!(trend(&est(-0.023, -0.035, -0.009), 0.5, d), Trend::Flat);
        // IPVS in the lab at 100: significantly cheaper per rule, against physics.
        assert_eq!(trend(&est(-75.7, -109.1, -42.8), 0.5, d), Trend::Unexpected);
        assert_eq!(
            trend(&est(-75.7, -109.1, -42.8), 0.5, Forbidden::Neither),
            Trend::Shrinks
        );
        // Excludes zero, but the effect is below the margin and the interval is not.
        assert_eq!(trend(&est(0.4, 0.1, 0.9), 0.5, d), Trend::Inconclusive);
        assert_eq!(trend(&est(0.3, -0.9, 1.5), 0.5, d), Trend::Inconclusive);
    }

    #[test]
    fn the_overhead_is_stated_only_when_resolved() {
        assert_eq!(
            overhead_words(&est(-59.2, -80.0, 10.0)),
            "not resolved (interval [-80.0, 10.0]%)"
        );
        assert_eq!(
            overhead_words(&est(-1.0, -4.0, 2.0)),
            "no measurable overhead (interval [-4.00, 2.00]%)"
        );
        assert_eq!(
            overhead_words(&est(3.0, 1.0, 4.0)),
            "3.00% [1.00, 4.00]%, flat (margin ±5.00 points)"
        );
        assert_eq!(overhead_trend(&est(-3.0, -4.0, -1.0)), Trend::Flat);
        assert_eq!(overhead_trend(&est(-8.0, -12.0, -6.0)), Trend::Unexpected);
    }

    #[test]
    fn the_lookup_margin_is_the_larger_of_its_floor_and_a_tenth_of_iptables() {
        assert_eq!(lookup_margin(None), 0.5);
        assert_eq!(lookup_margin(Some(2.0)), 0.5);
        assert!((lookup_margin(Some(15.0)) - 1.5).abs() < 1e-12);
        assert_eq!(
            with_margin(Trend::Flat, 0.5, "ns"),
            "flat (margin ±0.500 ns)"
        );
    }
}
