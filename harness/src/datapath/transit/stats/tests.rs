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
fn medians_and_slopes_are_exact() {
    assert_eq!(median_in_place(&mut [3, 1, 2]), 2.0);
    assert_eq!(median_in_place(&mut [4, 1, 3, 2]), 2.5);
    assert_eq!(ols_slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
    assert_eq!(ols_slope(&[(1.0, 1.0), (1.0, 3.0)]), None);
    assert_eq!(ols_slope(&[(1.0, 1.0)]), None);
}

/// Targets at 9 positions from 0 to 1,000 with `n` samples each:
/// `base + slope * x + noise`, noise uniform in `0..spread`.
fn synthetic(slope: f64, spread: u64, n: usize, seed: u64) -> Vec<(f64, Vec<u64>)> {
    let mut rng = SplitMix64::new(seed);
    (0..9)
        .map(|k| {
            let x = k as f64 * 125.0;
            let v = (0..n)
                .map(|_| {
                    let noise = if spread == 0 {
                        0
                    } else {
                        rng.next_u64() % spread
                    };
                    (3_000.0 + slope * x) as u64 + noise
                })
                .collect();
            (x, v)
        })
        .collect()
}

fn groups(data: &[(f64, Vec<u64>)]) -> Vec<Group<'_>> {
    data.iter()
        .map(|(x, v)| Group { x: *x, samples: v })
        .collect()
}

#[test]
fn a_noise_free_slope_is_recovered_exactly() {
    let data = synthetic(20.0, 0, 50, 1);
    let e = bootstrap_slope(&groups(&data), 200, 7).unwrap();
    assert_eq!(
        e,
        Estimate {
            estimate: 20.0,
            ci95: [20.0, 20.0]
        }
    );
}

#[test]
fn a_known_slope_lies_in_its_interval_and_the_interval_excludes_zero() {
    // 5 ns per position under noise 400 times larger than one position's cost.
    let data = synthetic(5.0, 2_000, 200, 42);
    let e = bootstrap_slope(&groups(&data), 1_000, 12).unwrap();
    assert!(e.ci95[0] <= 5.0 && 5.0 <= e.ci95[1], "{e:?}");
    assert!(e.excludes_zero(), "{e:?}");
    assert!(e.ci95[1] - e.ci95[0] < 1.0, "{e:?}");
    // Fixed seed, fixed answer.
    assert_eq!(e, bootstrap_slope(&groups(&data), 1_000, 12).unwrap());
}

#[test]
fn a_flat_line_gives_an_interval_that_includes_zero() {
    let data = synthetic(0.0, 2_000, 200, 43);
    let e = bootstrap_slope(&groups(&data), 1_000, 12).unwrap();
    assert!(!e.excludes_zero(), "no measurable difference: {e:?}");
    assert!(e.estimate.abs() < 0.5, "{e:?}");
}

#[test]
fn a_slope_needs_two_positions_with_samples() {
    let one = [Group {
        x: 0.0,
        samples: &[1, 2, 3],
    }];
    assert_eq!(bootstrap_slope(&one, 10, 1), None);
    let empty_second = [
        Group {
            x: 0.0,
            samples: &[1, 2, 3],
        },
        Group {
            x: 1.0,
            samples: &[],
        },
    ];
    assert_eq!(bootstrap_slope(&empty_second, 10, 1), None);
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

#[test]
fn the_generator_is_splitmix64() {
    // The reference implementation's first outputs for seed 0.
    let mut r = SplitMix64::new(0);
    assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    let mut r = SplitMix64::new(9);
    assert!((0..1000).all(|_| r.below(7) < 7));
}
