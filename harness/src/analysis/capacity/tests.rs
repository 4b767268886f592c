use super::*;
use crate::analysis::cases::fixtures::{case, est, results, summary, with_transit};

/// iptables: add 2 + 0.5 ms per service, lookup 15 ns per position over a 2.1 us base.
/// nftables: add 20 + 0.05 ms per service, lookup flat at 3.1 us. Both at 100 and 300.
fn two_modes() -> Results {
    let ipt = |n, incr| {
        with_transit(
            case("iptables", n, 50.0, incr, 1.0),
            900.0,
            3000.0,
            15.0,
            30.0,
            est(15.0, 14.5, 15.5),
        )
    };
    let nft = |n, incr| {
        with_transit(
            case("nftables", n, 40.0, incr, 1.0),
            900.0,
            3100.0,
            0.0,
            30.0,
            est(0.0, -0.1, 0.1),
        )
    };
    results(
        "6.18.0",
        vec![
            ipt(100, 52.0),
            ipt(300, 152.0),
            nft(100, 25.0),
            nft(300, 35.0),
        ],
    )
}

/// Every incremental sync of the case takes `samples`.
fn noisy(mut c: Case, samples: &[f64]) -> Case {
    let s = c.sync.as_mut().unwrap();
    s.add_service = Some(summary(samples));
    s.remove_service = Some(summary(samples));
    s.update_endpoints = Some(summary(samples));
    c
}

fn spread(median: f64) -> Vec<f64> {
    // 10 samples, 40 ms apart on either side: the nearest-rank median is `median`.
    (0..10).map(|i| median + 10.0 * (i as f64 - 4.0)).collect()
}

fn at(b: &Bound) -> (f64, [f64; 2], Reach) {
    match b {
        Bound::At {
            services,
            ci95,
            reach,
        } => (*services, *ci95, *reach),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reach_marks_past_twice_the_largest_scale_as_extrapolated() {
    assert_eq!(Reach::of(300.0, 300), Reach::Measured);
    assert_eq!(Reach::of(600.0, 300), Reach::Beyond);
    assert_eq!(Reach::of(601.0, 300), Reach::Extrapolated);
}

#[test]
fn limits_come_from_measurable_slopes_with_their_intervals() {
    let p = plan(&[two_modes()], Budgets::default());
    let e = &p.envs[0];
    assert_eq!(e.env.label(), "host 6.18.0");
    let ipt = &e.modes[0];
    assert_eq!(ipt.mode, "iptables");
    let u = ipt.update.as_ref().unwrap();
    assert_eq!(u.op, "add service");
    assert_eq!((u.fit.slope.estimate, u.fit.intercept), (0.5, 2.0));
    assert_eq!(u.call.0, stats::Trend::Grows);
    assert_eq!(u.points[0], (100, est(52.0, 51.97, 52.04)));
    // (1000 - 2) / 0.5 = 1996, past 2 x 300.
    let (n, ci, reach) = at(&ipt.update_bound);
    assert_eq!(n, 1996.0);
    assert!(
        ci[0] < 1996.0 && ci[1] > 1996.0 && ci[1] - ci[0] < 20.0,
        "{ci:?}"
    );
    assert_eq!(reach, Reach::Extrapolated);
    // Lookup: 2.1 us at the first service + 0.015 us per position.
    let l = ipt.latency.as_ref().unwrap();
    assert!((l.base_us.estimate - 2.1).abs() < 1e-12);
    assert_eq!(l.per_service_us, est(0.015, 0.0145, 0.0155));
    assert_eq!(l.measured.len(), 2);
    // (100 - 2.1) / 0.015 + 1 = 6,527.7; the slope's interval gives 6,317..6,751.
    let (n, ci, _) = at(&ipt.latency_bound);
    assert!((n - (97.9 / 0.015 + 1.0)).abs() < 1e-6, "{n}");
    assert!((ci[0] - (97.9 / 0.0155 + 1.0)).abs() < 1e-6, "{ci:?}");
    assert!((ci[1] - (97.9 / 0.0145 + 1.0)).abs() < 1e-6, "{ci:?}");
    assert_eq!(ipt.binding().unwrap().0, Metric::Update);
    assert_eq!(ipt.largest_measured_ok, Some(300));
    assert!(
        u.describe().starts_with("add service: 2.00 ms + 500.0"),
        "{}",
        u.describe()
    );
    assert_eq!(
        l.describe(),
        "2.10 us (95% CI 2.06..2.14) at the first service, + 15.0 us (95% CI 14.5..15.5) \
         per 1,000 services (transit at 300 services)"
    );

    let nft = &e.modes[1];
    // The flat lookup draws no limit: noise dominates its growth.
    assert_eq!(
        nft.latency_bound,
        Bound::NoiseDominates(est(0.0, -0.0001, 0.0001))
    );
    let (n, _, _) = at(&nft.update_bound);
    assert!((n - 19_600.0).abs() < 1e-6, "{n}");

    let c = &e.comparisons[0];
    assert_eq!((c.a.as_str(), c.b.as_str()), ("iptables", "nftables"));
    assert_eq!(c.update.unwrap().0, 300);
    assert_eq!(c.update.unwrap().1.estimate, 35.0 - 152.0);
    // iptables' last position: 3,000 + 15 x 299 = 7,485 ns.
    assert_eq!(c.lookup.unwrap().1.estimate, 3100.0 - 7485.0);

    let r = &e.recommendation;
    assert_eq!(r.choice.as_deref(), Some("nftables"));
    assert!(
        r.text.starts_with(
            "Budgets: incremental update p50 <= 1000 ms, added first-packet latency <= 100 us. \
             Choose nftables: at 300 services it updates faster than iptables by 117.00 ms (95% CI "
        ),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("at 300 services it looks up cheaper than iptables by 4385 ns"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("It stays within the budgets up to about 19,600 services (95% CI "),
        "{}",
        r.text
    );
    assert!(r.text.contains("extrapolated: past 2x the largest measured scale), bound by the incremental update p50; noise dominates the growth of the added first-packet latency (95% CI -0.1..+0.1 us per 1,000 services), so no limit is drawn from it."), "{}", r.text);
}

#[test]
fn the_planner_refuses_to_recommend_from_noise() {
    // The medians move (50 -> 55 and 52 -> 50) but every scale spreads over 90 ms, and
    // no lookup was timed in the kernel: nothing here is measurable.
    let r = results(
        "6.18.0",
        vec![
            noisy(case("iptables", 100, 1.0, 1.0, -6000.0), &spread(50.0)),
            noisy(case("iptables", 1000, 1.0, 1.0, 50_000.0), &spread(55.0)),
            noisy(case("nftables", 100, 1.0, 1.0, 20_000.0), &spread(52.0)),
            noisy(case("nftables", 1000, 1.0, 1.0, 3.0), &spread(50.0)),
        ],
    );
    let p = plan(&[r], Budgets::default());
    let e = &p.envs[0];
    for m in &e.modes {
        let u = m.update.as_ref().unwrap();
        assert!(u.fit.slope.includes_zero(), "{:?}", u.fit.slope);
        assert!(matches!(m.update_bound, Bound::NoiseDominates(_)), "{m:?}");
        assert!(
            u.describe()
                .starts_with("add service: noise dominates: 95% CI -"),
            "{}",
            u.describe()
        );
        // The end-to-end latencies (-6,000 .. +50,000 us added) are never fitted.
        assert_eq!(
            m.latency_bound,
            Bound::Unfitted(
                "lookup not timed in the kernel: no in-kernel timing in these results".into()
            )
        );
        assert!(m.binding().is_none());
    }
    let r = &e.recommendation;
    assert_eq!(r.choice, None);
    assert!(
        r.text
            .contains("Noise dominates: no mode is measurably better"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("Choose"), "{}", r.text);
    assert!(!r.text.contains("within the budgets up to"), "{}", r.text);
    assert!(
        r.text.contains(
            "nftables minus iptables: update at 1,000 services -5.00 ms (95% CI -45.00..+35.00), inconclusive (margin ±"
        ),
        "{}",
        r.text
    );
}

#[test]
fn a_measurable_difference_with_a_noisy_slope_chooses_but_draws_no_limit() {
    // nftables: 10 ms at both scales (flat); iptables: 500 ms at both. The difference is
    // measurable, neither slope is.
    let r = results(
        "6.18.0",
        vec![
            noisy(case("iptables", 100, 1.0, 1.0, 1.0), &spread(500.0)),
            noisy(case("iptables", 1000, 1.0, 1.0, 1.0), &spread(500.0)),
            noisy(case("nftables", 100, 1.0, 10.0, 1.0), &[10.0; 5]),
            noisy(case("nftables", 1000, 1.0, 10.0, 1.0), &[10.0; 5]),
        ],
    );
    let e = &plan(&[r], Budgets::default()).envs[0];
    let r = &e.recommendation;
    assert_eq!(r.choice.as_deref(), Some("nftables"));
    assert!(
        r.text.contains("How far it scales is not known from this run; noise dominates the growth of the incremental update p50 (95% CI 0..0 ms per 1,000 services)"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("up to about"), "{}", r.text);
}

#[test]
fn trade_offs_and_budgets_broken_at_the_first_scale() {
    // iptables updates faster, nftables looks up cheaper: no single choice.
    let mut runs = two_modes();
    for c in runs.cases.iter_mut().filter(|c| c.mode == "iptables") {
        let n = c.services;
        *c = with_transit(
            noisy(c.clone(), &[1.0; 5]),
            900.0,
            3000.0,
            15.0,
            30.0,
            est(15.0, 14.5, 15.5),
        );
        assert_eq!(c.services, n);
    }
    let e = &plan(&[runs], Budgets::default()).envs[0];
    assert_eq!(e.recommendation.choice, None);
    assert!(
        e.recommendation.text.contains("No single choice"),
        "{}",
        e.recommendation.text
    );

    // Budgets no mode meets at the smallest scale: the best is named, not chosen as fit.
    let b = Budgets {
        max_update_ms: 1.0,
        max_added_latency_us: 1.0,
    };
    let e = &plan(&[two_modes()], b).envs[0];
    assert_eq!(e.modes[0].update_bound, Bound::OverBudget(100));
    assert_eq!(e.modes[0].largest_measured_ok, None);
    let r = &e.recommendation.text;
    assert!(
        r.contains("No mode stays within the budgets at the measured scales; the best is nftables"),
        "{r}"
    );
    assert!(
        r.contains("It is over the incremental update p50 budget already at 100 services"),
        "{r}"
    );
}

#[test]
fn one_mode_or_one_scale_plans_without_choosing() {
    let mut c = case("iptables", 100, 50.0, 52.0, 15.0);
    c.datapath = None;
    let p = plan(&[results("6.1", vec![c])], Budgets::default());
    let m = &p.envs[0].modes[0];
    assert_eq!(
        m.update_bound,
        Bound::Unfitted("no line: needs two scales each timed at least 3 times".into())
    );
    assert_eq!(m.largest_measured_ok, Some(100));
    let r = &p.envs[0].recommendation;
    assert_eq!(r.choice, None);
    assert!(
        r.text.ends_with(
            "Only iptables ran here: nothing to choose between; the incremental update p50 \
             budget is unchecked (no line: needs two scales each timed at least 3 times); \
             the added first-packet latency budget is unchecked (lookup not timed in the \
             kernel: data path not measured)."
        ),
        "{}",
        r.text
    );
    assert!(plan(&[], Budgets::default()).envs.is_empty());
}
