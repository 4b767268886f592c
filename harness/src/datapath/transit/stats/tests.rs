use super::*;

#[test]
fn the_median_interval_matches_the_binomial_tables() {
    // Published ranks (1-based): n = 10 -> (2, 9), n = 100 -> (40, 61).
    assert_eq!(median_ci_ranks(10), (1, 8));
    assert_eq!(median_ci_ranks(100), (39, 60));
    // n = 6: F(0) = 1/64 <= 2.5% < F(1) = 7/64, so (1, 6).
    assert_eq!(median_ci_ranks(6), (0, 5));
    // Below 6 samples no pair reaches 95%: the whole range.
    assert_eq!(median_ci_ranks(5), (0, 4));
    assert_eq!(median_ci_ranks(1), (0, 0));
}

#[test]
fn the_median_interval_of_many_samples_is_about_two_standard_errors_wide() {
    // Normal approximation: n/2 -+ 1.96 sqrt(n)/2 = 5000 -+ 98.
    let (lo, hi) = median_ci_ranks(10_000);
    assert!((4898..=4904).contains(&lo), "{lo}");
    assert_eq!(hi, 10_000 - 1 - lo);
}

#[test]
fn quantiles_come_from_the_histogram_and_the_interval_from_the_exact_samples() {
    let samples: Vec<u64> = (1..=100).rev().map(|i| i * 10).collect();
    let q = quantiles(&samples).unwrap();
    assert_eq!(
        q,
        Quantiles {
            p10: 100,
            p50: 500,
            p90: 900,
            p99: 990,
            ci95_p50: [400, 610],
        }
    );
    assert_eq!(quantiles(&[]), None);
}

#[test]
fn the_interval_rule_says_when_a_difference_is_measurable() {
    let e = |lo, hi| Estimate {
        estimate: (lo + hi) / 2.0,
        ci95: [lo, hi],
    };
    assert!(e(0.5, 2.0).excludes_zero());
    assert!(e(-2.0, -0.5).excludes_zero());
    assert!(!e(-0.5, 2.0).excludes_zero());
    assert!(!e(0.0, 2.0).excludes_zero());
}

#[test]
fn the_probe_overhead_is_the_median_paired_difference() {
    let pairs = [(96.0, 100.0), (190.0, 200.0), (99.0, 100.0)];
    let e = paired_overhead_pct(&pairs).unwrap();
    assert_eq!(e.estimate, 4.0);
    assert_eq!(e.ci95, [1.0, 5.0]);
    assert_eq!(paired_overhead_pct(&[]), None);
}
