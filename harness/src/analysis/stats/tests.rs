use super::*;

fn est(estimate: f64, lo: f64, hi: f64) -> Estimate {
    Estimate {
        estimate,
        ci95: [lo, hi],
    }
}

#[test]
fn nearest_rank_percentiles() {
    let v: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(percentile(&v, 50.0), 5.0);
    assert_eq!(percentile(&v, 90.0), 9.0);
    assert_eq!(percentile(&v, 99.0), 10.0);
    assert_eq!(percentile(&v, 0.0), 1.0);
    assert_eq!(percentile(&[], 50.0), 0.0);
}

#[test]
fn splitmix64_matches_its_reference_sequence() {
    // The reference implementation's first outputs for seed 0.
    let mut r = SplitMix64::new(0);
    assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    let mut r = SplitMix64::new(7);
    assert!((0..10_000).map(|_| r.below(3)).all(|i| i < 3));
}

#[test]
fn medians_are_nearest_rank_with_order_statistic_intervals() {
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
    assert_eq!(median(&[]), None);
    // n = 10: P(Bin <= 1) = 11/1024 <= 2.5% < P(Bin <= 2) = 56/1024, so the 2nd
    // and 9th values (0-based 1 and 8).
    assert_eq!(median_ci_ranks(10), (1, 8));
    assert_eq!(median_ci_ranks(5), (0, 4), "too few: the range");
    assert_eq!(median_ci_ranks(6), (0, 5), "1/64 per tail covers 96.9%");
    assert_eq!(median_ci_ranks(1), (0, 0));
    assert!(!median_interval_is_95(5) && median_interval_is_95(6));
    let v: Vec<f64> = (1..=10).rev().map(f64::from).collect();
    assert_eq!(median_estimate(&v), Some(est(5.0, 2.0, 9.0)));
    // Large n stays finite and symmetric around the middle.
    let (lo, hi) = median_ci_ranks(10_000);
    assert_eq!(lo + hi, 9_999);
    assert!((4_890..4_910).contains(&lo), "{lo}");
}

#[test]
fn the_bootstrap_difference_of_medians_is_exact_on_known_samples() {
    // b's redrawn median is 1, 2 or 3, each often (7/27, 13/27, 7/27), a's always 10.
    let d = median_difference(&[10.0, 10.0, 10.0], &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(d, est(8.0, 7.0, 9.0));
    assert_eq!(trend(&d, 0.8, Forbidden::Neither), Trend::Grows);
    // Equal constant sets: exactly zero, an interval of [0, 0]: no difference.
    let z = median_difference(&[5.0; 4], &[5.0; 4]).unwrap();
    assert_eq!(z, est(0.0, 0.0, 0.0));
    assert_eq!(trend(&z, 0.5, Forbidden::Neither), Trend::Flat);
    // Too few samples: no interval, so no difference to speak of.
    assert_eq!(median_difference(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
    // The same seed gives the same interval.
    let a: Vec<f64> = (0..20).map(|i| 50.0 + (i * 7 % 11) as f64).collect();
    let b: Vec<f64> = (0..20).map(|i| 48.0 + (i * 5 % 13) as f64).collect();
    assert_eq!(median_difference(&a, &b), median_difference(&a, &b));
}

#[test]
fn overlapping_noise_is_inconclusive_and_a_clear_shift_grows_or_shrinks() {
    // 10 samples 0..9 against the same shifted by 1: the medians differ by 1, but
    // the spread is 9 wide.
    let a: Vec<f64> = (0..10).map(|i| i as f64 + 1.0).collect();
    let b: Vec<f64> = (0..10).map(f64::from).collect();
    let d = median_difference(&a, &b).unwrap();
    assert_eq!(d.estimate, 1.0);
    assert!(d.includes_zero(), "{d:?}");
    // Neither a change nor flat within a margin of 0.5: the noise is wider.
    assert_eq!(trend(&d, 0.5, Forbidden::Neither), Trend::Inconclusive);
    // Shifted by 100: every redrawn difference lies in 91..=109.
    let far: Vec<f64> = b.iter().map(|v| v + 100.0).collect();
    let d = median_difference(&far, &b).unwrap();
    assert_eq!(d.estimate, 100.0);
    assert!(d.ci95[0] >= 91.0 && d.ci95[1] <= 109.0, "{d:?}");
    assert_eq!(trend(&d, 10.0, Forbidden::Neither), Trend::Grows);
    let d = median_difference(&b, &far).unwrap();
    assert_eq!(trend(&d, 10.0, Forbidden::Neither), Trend::Shrinks);
}

#[test]
fn estimates_subtract_with_quadrature_halves() {
    // a = 10 [8, 13], b = 4 [1, 5]: below sqrt(2^2 + 1^2), above sqrt(3^2 + 3^2).
    let d = difference_of_estimates(est(10.0, 8.0, 13.0), est(4.0, 1.0, 5.0));
    assert_eq!(d.estimate, 6.0);
    assert_eq!(d.ci95, [6.0 - 5f64.sqrt(), 6.0 + 18f64.sqrt()]);
    // 3-4-5: two halves of 3 and 4 make 5.
    let d = difference_of_estimates(est(10.0, 7.0, 13.0), est(9.0, 5.0, 13.0));
    assert_eq!(d, est(1.0, -4.0, 6.0));
    assert_eq!(trend(&d, 1.0, Forbidden::Neither), Trend::Inconclusive);
    assert_eq!(scale(est(2.0, 1.0, 3.0), -2.0), est(-4.0, -6.0, -2.0));
}

#[test]
fn slopes_carry_the_scales_noise() {
    // Constant samples: the line is exact and so is its interval.
    static SMALL: [f64; 3] = [5.0, 5.0, 5.0];
    static LARGE: [f64; 3] = [15.0, 15.0, 15.0];
    static A: [f64; 5] = [1.0, 50.0, 100.0, 2.0, 99.0];
    static B: [f64; 5] = [3.0, 52.0, 98.0, 1.0, 97.0];

    let g = |x: f64, samples: &'static [f64]| Group {
        block: 0,
        x,
        samples,
    };
    let f = bootstrap_slope(&[g(100.0, &SMALL), g(300.0, &LARGE)]).unwrap();
    assert_eq!(f.intercept, 0.0);
    assert_eq!(f.slope, est(0.05, 0.05, 0.05));
    // Wide samples whose medians barely move: the slope could be either sign.
    let f = bootstrap_slope(&[g(100.0, &A), g(300.0, &B)]).unwrap();
    assert_eq!(f.slope.estimate, 0.01);
    assert!(f.slope.includes_zero(), "{:?}", f.slope);
    // A scale without an interval is left out: one scale is no line.
    assert!(bootstrap_slope(&[g(100.0, &A), g(300.0, &[1.0])]).is_none());
    assert_eq!(least_squares(&[(1.0, 1.0), (1.0, 2.0)]), None);
    assert_eq!(least_squares(&[(1.0, 3.0), (3.0, 7.0)]), Some((1.0, 2.0)));
}

#[test]
fn differences_are_written_with_their_interval_and_decide_nothing() {
    assert_eq!(
        difference(&est(12.0, 10.0, 14.0), "ms"),
        "+12.0 ms (95% CI +10.0..+14.0)"
    );
    assert_eq!(
        difference(&est(-3.0, -4.5, -1.5), "us"),
        "-3.00 us (95% CI -4.50..-1.50)"
    );
    assert_eq!(
        difference(&est(1.0, -1.0, 3.0), "ms"),
        "+1.00 ms (95% CI -1.00..+3.00)"
    );
    assert_eq!(
        with_ci(&est(5.1, 4.8, 5.4), "ns"),
        "5.10 ns (95% CI 4.80..5.40)"
    );
    assert_eq!(with_ci(&est(5.1, 4.8, 5.4), ""), "5.10 (95% CI 4.80..5.40)");
    assert_eq!(
        interval(&est(1.0, -1.0, 3.0), "ms"),
        "95% CI -1.00..+3.00 ms"
    );
    assert_eq!(count(1234567.4), "1,234,567");
    assert_eq!(num(0.01234), "0.012");
    assert_eq!(signed(0.0), "0");
    // A narrow interval gets the decimals that keep its ends apart.
    assert_eq!(
        with_ci(&est(18.0, 17.97, 18.04), "ms"),
        "18.00 ms (95% CI 17.97..18.04)"
    );
    assert_eq!(
        with_ci(&est(3100.0, 3060.0, 3140.0), "ns"),
        "3100 ns (95% CI 3060..3140)"
    );
    assert_eq!(
        with_ci(&est(2.0, 2.0, 2.0), "ms"),
        "2.00 ms (95% CI 2.00..2.00)"
    );
}
