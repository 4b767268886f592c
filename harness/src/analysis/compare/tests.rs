//! compare on hand-made results with known answers.

use super::*;
use crate::analysis::cases::fixtures::{case, est, results, summary, with_transit};
use crate::analysis::fingerprint::tests::on_machine;
use crate::analysis::stats::{self, Forbidden};

const NOISY: [f64; 10] = [
    100.0, 130.0, 90.0, 120.0, 85.0, 140.0, 95.0, 110.0, 125.0, 105.0,
];

fn with_update(samples: &[f64]) -> Results {
    let mut c = case("iptables", 1000, 400.0, 40.0, 20.0);
    c.sync.as_mut().unwrap().update_endpoints = Some(summary(samples));
    results("6.18.0", vec![c])
}

fn line<'a>(c: &'a Comparison, metric: &str) -> &'a Line {
    c.lines.iter().find(|l| l.metric == metric).unwrap()
}

#[test]
fn a_clear_regression_is_flagged() {
    let slow: Vec<f64> = NOISY.iter().map(|v| v * 2.0).collect();
    let c = compare(
        &with_update(&NOISY),
        &with_update(&slow),
        0.10,
        MatchBy::Environment,
    );
    let l = line(&c, "update p50 ms");
    assert_eq!(l.verdict, Verdict::Regression, "{l:?}");
    assert_eq!((l.base, l.new), (105.0, 210.0));
    assert_eq!(c.regressions(), 1);
    assert_eq!(line(&c, "add p50 ms").verdict, Verdict::Same);
    let t = table(&c);
    assert!(t.contains("REGRESSION"), "{t}");
    assert!(t.contains("100.0% worse"), "{t}");
    assert!(t.contains("REGRESSION (grows)"), "{t}");
    assert!(t.contains("1 regression(s) by the three-way rule"), "{t}");
    // Both runs' samples are in the interval: it lies above zero, beyond the margin.
    let e = l.change.unwrap();
    assert!(
        e.ci95[0] > 0.10 && e.ci95[0] < 1.0 && e.ci95[1] >= 1.0,
        "{e:?}"
    );
    assert_eq!(l.margin, 0.10);
}

#[test]
fn a_shift_within_the_noise_is_not_flagged() {
    // Median 105 -> 117 (+11%, over the threshold) but the samples overlap heavily:
    // only the two middle samples moved (one-sided p = 0.38).
    let shifted = [
        117.0, 100.0, 135.0, 90.0, 140.0, 85.0, 125.0, 118.0, 130.0, 95.0,
    ];
    let c = compare(
        &with_update(&NOISY),
        &with_update(&shifted),
        0.10,
        MatchBy::Environment,
    );
    let l = line(&c, "update p50 ms");
    assert_eq!((l.base, l.new), (105.0, 117.0));
    assert_eq!(l.verdict, Verdict::Same, "{l:?}");
    assert_eq!(l.trend, Some(Trend::Inconclusive), "{l:?}");
    assert!(l.change.unwrap().includes_zero(), "{l:?}");
    assert_eq!(c.regressions(), 0);
}

#[test]
fn single_values_need_twice_the_threshold_and_failures_count() {
    let base = results("6.18.0", vec![case("iptables", 1000, 400.0, 40.0, 20.0)]);
    // Full sync +15% on one sample: not flagged at 10%; +25%: flagged.
    let c = compare(
        &base,
        &results("6.18.0", vec![case("iptables", 1000, 460.0, 40.0, 20.0)]),
        0.10,
        MatchBy::Environment,
    );
    assert_eq!(line(&c, "full sync ms").verdict, Verdict::Same);
    let c = compare(
        &base,
        &results("6.18.0", vec![case("iptables", 1000, 500.0, 40.0, 20.0)]),
        0.10,
        MatchBy::Environment,
    );
    assert_eq!(line(&c, "full sync ms").verdict, Verdict::Regression);
    // Lookup overhead 20 -> 40 us over a 70 us p50: +28.6% of the latency.
    let c = compare(
        &base,
        &results("6.18.0", vec![case("iptables", 1000, 400.0, 40.0, 40.0)]),
        0.10,
        MatchBy::Environment,
    );
    let l = line(&c, "lookup last +us");
    assert!((l.worse_by - 20.0 / 70.0).abs() < 1e-12);
    assert_eq!(l.verdict, Verdict::Regression);
    let mut failed = case("iptables", 1000, 400.0, 40.0, 20.0);
    failed.status = Status::Failed;
    failed.reason = Some("iptables-restore: exit 1".into());
    let c = compare(
        &base,
        &results("6.18.0", vec![failed]),
        0.10,
        MatchBy::Environment,
    );
    assert_eq!(c.regressions(), 1);
    assert!(c.lines[0].note.contains("iptables-restore: exit 1"));
    let row = table(&c).lines().nth(2).unwrap().to_string();
    let after_metric: Vec<&str> = row
        .split(" status ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(after_metric[..2], ["ok", "failed"], "{row}");
}

#[test]
fn a_single_value_must_also_beat_the_case_noise() {
    // NOISY has a relative IQR of (125 - 95) / 105 = 28.6%: a one-sample full sync
    // 25% slower is past 2x10% but not past the noise.
    let noisy = || {
        let mut r = with_update(&NOISY);
        let s = r.cases[0].sync.as_mut().unwrap();
        s.add_service = Some(summary(&NOISY));
        s.remove_service = Some(summary(&NOISY));
        r
    };
    let base = noisy();
    let mut new = noisy();
    new.cases[0].sync.as_mut().unwrap().full = summary(&[500.0]);
    let c = compare(&base, &new, 0.10, MatchBy::Environment);
    assert!((case_noise(&base.cases[0], &new.cases[0]) - 30.0 / 105.0).abs() < 1e-12);
    let l = line(&c, "full sync ms");
    assert_eq!(l.verdict, Verdict::Same, "{l:?}");
    assert_eq!(l.note, "one value: needs > 29% (case noise)");
    new.cases[0].sync.as_mut().unwrap().full = summary(&[600.0]);
    assert_eq!(
        line(
            &compare(&base, &new, 0.10, MatchBy::Environment),
            "full sync ms"
        )
        .verdict,
        Verdict::Regression
    );
}

#[test]
fn cases_match_on_kernel_and_unmatched_ones_are_noted() {
    let base = results("6.1.0", vec![case("iptables", 1000, 400.0, 40.0, 20.0)]);
    let new = results("6.12.0", vec![case("iptables", 1000, 900.0, 90.0, 20.0)]);
    let c = compare(&base, &new, 0.10, MatchBy::Environment);
    assert!(c.lines.is_empty());
    assert_eq!(c.notes.len(), 2);
    assert!(c.notes[0].contains("6.1.0") && c.notes[0].contains("only in BASE"));
}

#[test]
fn two_kernels_runs_match_case_by_case() {
    // The nightly-kernel CI: one run per kernel, the same cases.
    let base = results(
        "6.1.0",
        vec![
            case("iptables", 1000, 400.0, 40.0, 20.0),
            case("nftables", 1000, 300.0, 30.0, 5.0),
        ],
    );
    let new = results(
        "6.12.0",
        vec![
            case("iptables", 1000, 900.0, 90.0, 20.0),
            case("nftables", 1000, 300.0, 30.0, 5.0),
        ],
    );
    assert_eq!(MatchBy::auto(&base, &new), MatchBy::Case);
    let c = compare(&base, &new, 0.10, MatchBy::auto(&base, &new));
    let cases: std::collections::BTreeSet<&str> = c.lines.iter().map(|l| l.case.as_str()).collect();
    assert_eq!(
        cases.into_iter().collect::<Vec<_>>(),
        ["iptables 1000 svc x 10 ep", "nftables 1000 svc x 10 ep"]
    );
    // iptables got slower in the full sync and all three updates; nftables did not.
    assert_eq!(c.regressions(), 4, "{:#?}", c.lines);
    assert!(c
        .lines
        .iter()
        .filter(|l| l.case.starts_with("nftables"))
        .all(|l| l.verdict == Verdict::Same));
    assert!(c.notes[0].contains("host 6.1.0") && c.notes[0].contains("host 6.12.0"));
    // Floor and kube-proxy profiles never match each other.
    let mut floor = new.clone();
    for case in &mut floor.cases {
        case.profile = Some("floor".into());
    }
    assert!(compare(&base, &floor, 0.10, MatchBy::Case).lines.is_empty());
}

#[test]
fn a_run_with_several_environments_matches_on_them() {
    let mut two = results("6.1.0", vec![case("iptables", 1000, 400.0, 40.0, 20.0)]);
    let mut lab = two.environments[0].clone();
    lab.id = "lab".into();
    lab.kind = "lab-tcg".into();
    two.environments.push(lab);
    let mut ipvs = case("ipvs", 100, 10.0, 1.0, 1.0);
    ipvs.environment = "lab".into();
    two.cases.push(ipvs);
    assert_eq!(MatchBy::auto(&two, &two), MatchBy::Environment);
}

#[test]
fn every_verdict_is_the_one_rule_on_the_change_and_its_interval() {
    // Identical runs: quiet timings' interval lies within ±10%: flat; NOISY's (IQR 29%)
    // reaches past it: inconclusive, not flat.
    let c = compare(
        &with_update(&NOISY),
        &with_update(&NOISY),
        0.10,
        MatchBy::Environment,
    );
    assert_eq!(line(&c, "add p50 ms").trend, Some(Trend::Flat));
    let l = line(&c, "update p50 ms");
    assert_eq!(l.trend, Some(Trend::Inconclusive), "{l:?}");
    let [lo, hi] = l.change.unwrap().ci95;
    assert!((lo + 25.0 / 105.0).abs() < 1e-12 && (hi - 25.0 / 105.0).abs() < 1e-12);
    let slow: Vec<f64> = NOISY.iter().map(|v| v * 1.3).collect();
    let c = compare(
        &with_update(&NOISY),
        &with_update(&slow),
        0.10,
        MatchBy::Environment,
    );
    for l in &c.lines {
        let want = stats::trend(&l.change.unwrap(), l.margin, Forbidden::Neither);
        assert_eq!(l.trend, Some(want), "{l:?}");
        assert_eq!(l.verdict, Verdict::of(want), "{l:?}");
    }
    let t = table(&c);
    assert!(t.contains("same (flat)") && t.contains("±10.0%"), "{t}");
}

#[test]
fn the_cost_per_position_is_judged_from_both_runs_intervals() {
    let run = |e: Estimate| {
        let c = with_transit(
            case("iptables", 1000, 400.0, 40.0, 20.0),
            900.0,
            3000.0,
            e.estimate,
            30.0,
            e,
        );
        results("6.18.0", vec![c])
    };
    let base = run(est(2.4, 2.26, 2.57));
    // Another machine's iptables-legacy: 3.75-5.22 ns.
    let c = compare(
        &base,
        &run(est(4.5, 3.75, 5.22)),
        0.10,
        MatchBy::Environment,
    );
    let l = line(&c, "transit ns/position");
    assert_eq!(l.trend, Some(Trend::Grows), "{l:?}");
    assert_eq!(l.unit, Unit::Absolute("ns"));
    // The lookup floor, 0.5 ns, is larger than 10% of 2.4 ns.
    assert_eq!(l.margin, stats::LOOKUP_MARGIN_FLOOR_NS);
    let e = l.change.unwrap();
    assert!((e.estimate - 2.1).abs() < 1e-9, "{e:?}");
    assert!(e.ci95[0] > 0.0 && e.ci95[0] < 2.1, "{e:?}");
    // A change inside both runs' intervals: not a regression.
    let c = compare(&base, &run(est(2.6, 2.3, 2.9)), 0.10, MatchBy::Environment);
    let l = line(&c, "transit ns/position");
    assert_eq!(l.verdict, Verdict::Same, "{l:?}");
    assert!(table(&c).contains("±0.500 ns"), "{}", table(&c));
}

#[test]
fn runs_of_two_machines_are_listed_with_what_differs() {
    let on = |m: &str| {
        let mut r = results("6.18.0", vec![case("iptables", 1000, 400.0, 40.0, 20.0)]);
        r.environments[0] = on_machine(m);
        r
    };
    let same = compare(&on("aaaa"), &on("aaaa"), 0.10, MatchBy::Environment);
    assert!(same.machines.differ.is_empty() && same.machines.unknown.is_empty());
    assert!(
        same.machines.shown[0].contains("no fingerprint field differs"),
        "{:?}",
        same.machines
    );
    let two = compare(&on("aaaa"), &on("bbbb"), 0.10, MatchBy::Environment);
    assert_eq!(
        two.machines.differ,
        ["BASE host / NEW host: machine aaaa / bbbb"]
    );
    let t = table(&two);
    assert!(t.contains("machine differences are included"), "{t}");
    assert!(t.contains("differs: machine: aaaa / bbbb"), "{t}");
    // The fixtures' runs recorded no machine: unknown, said so, not refused.
    let mut old = on("aaaa");
    old.environments[0].machine = None;
    let c = compare(&old, &on("aaaa"), 0.10, MatchBy::Environment);
    assert_eq!(c.machines.unknown.len(), 1);
    assert!(table(&c).contains("unknown"));
}
