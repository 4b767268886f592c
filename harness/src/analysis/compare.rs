//! `kpbench compare BASE NEW`: case by case, did NEW get slower than BASE?
//!
//! Cases match on mode (with IPVS scheduler and profile), services and endpoints, and,
//! by [`MatchBy::Environment`], also on environment kind and kernel. Comparing two
//! kernels (nightly A against B) matches [`MatchBy::Case`] instead: the environments
//! differ on purpose. [`MatchBy::auto`] picks `Case` when each run has one environment.
//! Per metric the rule is:
//!
//! * **Repeated timings** (full sync and incremental updates, when both sides have at least
//!   [`MIN_SAMPLES`] `samples_ms`): a regression when NEW's median is worse than BASE's by
//!   more than the threshold **and** a one-sided Mann-Whitney U test says NEW's samples
//!   are larger than BASE's at p < [`ALPHA`] (normal approximation, tie-corrected). The
//!   threshold alone would flag noise; the test alone would flag tiny, real but
//!   irrelevant shifts.
//! * **Single values** (a full sync measured once, lookup overhead p50, max rate): one
//!   number cannot show its own noise, so it borrows the case's: the change must exceed
//!   **twice** the threshold **and** the case's noise: the median, over the case's
//!   repeated timings in both runs, of their interquartile range relative to their
//!   median. On a quiet
//!   machine that is the 2x threshold; on a noisy one a single value has to move further.
//!   Lookup overhead is a small difference of two latencies, so its change is measured
//!   relative to BASE's p50 latency to the last service, not to the overhead itself.
//! * A case that was ok in BASE and failed in NEW is a regression.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::analysis::cases::{self, Row};
use crate::results::{Case, DurationSummary, Results, Status};

/// Fewer samples than this on a side and the rank test has too little to go on.
pub const MIN_SAMPLES: usize = 3;
/// One-sided significance level of the rank test.
pub const ALPHA: f64 = 0.05;

/// What must agree for a case of BASE to be compared with one of NEW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchBy {
    /// Environment kind and kernel too: the same machine over time.
    Environment,
    /// Mode, profile, services and endpoints only: e.g. one kernel against another.
    Case,
}

impl MatchBy {
    /// `Case` when each run's cases ran in one environment (one kernel against
    /// another, the nightly-kernel CI), else `Environment`.
    pub fn auto(base: &Results, new: &Results) -> MatchBy {
        let one_env = |r: &Results| {
            let rows = cases::rows(std::slice::from_ref(r));
            cases::envs(&rows).len() == 1
        };
        if one_env(base) && one_env(new) {
            MatchBy::Case
        } else {
            MatchBy::Environment
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Regression,
    Improvement,
    /// Changed less than the threshold, or not beyond the noise.
    Same,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub case: String,
    pub metric: String,
    pub base: f64,
    pub new: f64,
    /// Relative change, positive = worse.
    pub worse_by: f64,
    pub verdict: Verdict,
    pub note: String,
    /// Set when the line is about the case's status (BASE's, NEW's) rather than a
    /// number; `base` and `new` are then 0.
    pub status: Option<(Status, Status)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparison {
    pub lines: Vec<Line>,
    /// Cases present on one side only, or that failed in NEW.
    pub notes: Vec<String>,
    pub threshold: f64,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.verdict == Verdict::Regression)
            .count()
    }
}

/// One-sided Mann-Whitney U: the p-value that `new` is not stochastically larger than
/// `base`. Normal approximation with continuity and tie corrections.
pub fn mann_whitney_greater(base: &[f64], new: &[f64]) -> f64 {
    let (n1, n2) = (new.len() as f64, base.len() as f64);
    let mut all: Vec<(f64, bool)> = new
        .iter()
        .map(|&v| (v, true))
        .chain(base.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let (mut rank_sum_new, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        rank_sum_new += all[i..=j].iter().filter(|x| x.1).count() as f64 * avg_rank;
        i = j + 1;
    }
    let u = rank_sum_new - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let nn = n1 + n2;
    let var = n1 * n2 / 12.0 * ((nn + 1.0) - ties / (nn * (nn - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = (u - mean - 0.5) / var.sqrt();
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' erfcc, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    crate::analysis::stats::percentile(&s, 50.0)
}

fn key(r: &Row<'_>, by: MatchBy) -> String {
    let case = format!(
        "{} {} svc x {} ep",
        r.mode(),
        r.case.services,
        r.case.endpoints_per_service
    );
    match by {
        MatchBy::Environment => {
            let e = r.env();
            format!("{} {} {case}", e.kind, e.kernel)
        }
        MatchBy::Case => case,
    }
}

fn index(r: &Results, by: MatchBy) -> BTreeMap<String, &Case> {
    cases::rows(std::slice::from_ref(r))
        .iter()
        .map(|row| (key(row, by), row.case))
        .collect()
}

/// The environments of a run's cases, as one label ("lab-tcg 6.1.0-56-cloud-amd64").
fn env_labels(r: &Results) -> String {
    let rows = cases::rows(std::slice::from_ref(r));
    cases::envs(&rows)
        .iter()
        .map(|e| e.label())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares every case both runs have, matched as `by` says.
pub fn compare(base: &Results, new: &Results, threshold: f64, by: MatchBy) -> Comparison {
    let (b, n) = (index(base, by), index(new, by));
    let mut out = Comparison {
        threshold,
        ..Default::default()
    };
    if by == MatchBy::Case {
        let (be, ne) = (env_labels(base), env_labels(new));
        out.notes.push(format!(
            "matched case by case across environments: BASE ran on {be}, NEW on {ne}"
        ));
        let kind = |l: &str| l.split(' ').next().unwrap_or("").to_string();
        if kind(&be) != kind(&ne) {
            out.notes.push(format!(
                "warning: {} and {} numbers are not comparable (emulated against native); compare lab runs with lab runs",
                kind(&be),
                kind(&ne)
            ));
        }
    }
    for (k, bc) in &b {
        let Some(nc) = n.get(k) else {
            out.notes.push(format!("{k}: only in BASE"));
            continue;
        };
        match (bc.status, nc.status) {
            (Status::Ok, Status::Ok) => {}
            (Status::Ok, Status::Failed) => {
                out.lines.push(Line {
                    case: k.clone(),
                    metric: "status".into(),
                    base: 0.0,
                    new: 0.0,
                    worse_by: f64::INFINITY,
                    verdict: Verdict::Regression,
                    note: format!(
                        "ok in BASE, failed in NEW: {}",
                        nc.reason.as_deref().unwrap_or("no reason recorded")
                    ),
                    status: Some((Status::Ok, Status::Failed)),
                });
                continue;
            }
            (s1, s2) => {
                if s1 != Status::Ok || s2 != Status::Ok {
                    out.notes
                        .push(format!("{k}: {s1:?} in BASE, {s2:?} in NEW; not compared"));
                }
                continue;
            }
        }
        compare_case(k, bc, nc, threshold, &mut out.lines);
    }
    for k in n.keys().filter(|k| !b.contains_key(*k)) {
        out.notes.push(format!("{k}: only in NEW"));
    }
    out
}

type Pick = fn(&Case) -> Option<&DurationSummary>;

const TIMINGS: [(&str, Pick); 4] = [
    ("full sync ms", |c| c.sync.as_ref().map(|s| &s.full)),
    ("add p50 ms", |c| c.sync.as_ref()?.add_service.as_ref()),
    ("remove p50 ms", |c| {
        c.sync.as_ref()?.remove_service.as_ref()
    }),
    ("update p50 ms", |c| {
        c.sync.as_ref()?.update_endpoints.as_ref()
    }),
];

/// Interquartile range over median of samples; None with too few.
fn relative_iqr(samples: &[f64]) -> Option<f64> {
    if samples.len() < MIN_SAMPLES {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let p = |q| crate::analysis::stats::percentile(&s, q);
    let m = p(50.0);
    (m > 0.0).then(|| (p(75.0) - p(25.0)) / m)
}

/// The case's noise: the median relative IQR of its repeated timings in both runs.
pub fn case_noise(b: &Case, n: &Case) -> f64 {
    let mut iqrs: Vec<f64> = TIMINGS
        .iter()
        .flat_map(|(_, pick)| [pick(b), pick(n)])
        .flatten()
        .filter_map(|d| relative_iqr(&d.samples_ms))
        .collect();
    iqrs.sort_by(f64::total_cmp);
    crate::analysis::stats::percentile(&iqrs, 50.0)
}

fn compare_case(k: &str, b: &Case, n: &Case, threshold: f64, lines: &mut Vec<Line>) {
    let single = Single {
        threshold,
        noise: case_noise(b, n),
    };
    for (metric, pick) in TIMINGS {
        if let (Some(bs), Some(ns)) = (pick(b), pick(n)) {
            lines.push(timing(k, metric, bs, ns, single));
        }
    }
    if let (Some(bo), Some(no)) = (
        cases::lookup_overhead(b, "last"),
        cases::lookup_overhead(n, "last"),
    ) {
        let scale = cases::target_latency(b, "last")
            .map(|l| l.p50)
            .filter(|v| *v > 0.0)
            .unwrap_or(bo.abs().max(1.0));
        lines.push(single.line(
            k,
            "lookup last +us",
            (bo, no),
            (no - bo) / scale,
            "relative to BASE's last-service p50",
        ));
    }
    let rate = |c: &Case| Some(c.datapath.as_ref()?.max_rate.as_ref()?.requests_per_s);
    if let (Some(br), Some(nr)) = (rate(b), rate(n)) {
        if br > 0.0 {
            lines.push(single.line(k, "max rate /s", (br, nr), (br - nr) / br, ""));
        }
    }
}

fn timing(k: &str, metric: &str, b: &DurationSummary, n: &DurationSummary, single: Single) -> Line {
    let t = single.threshold;
    let enough = b.samples_ms.len() >= MIN_SAMPLES && n.samples_ms.len() >= MIN_SAMPLES;
    if !enough {
        return single.line(
            k,
            metric,
            (b.p50_ms, n.p50_ms),
            (n.p50_ms - b.p50_ms) / b.p50_ms.max(f64::MIN_POSITIVE),
            "",
        );
    }
    let (bm, nm) = (median(&b.samples_ms), median(&n.samples_ms));
    let worse_by = (nm - bm) / bm.max(f64::MIN_POSITIVE);
    let p_worse = mann_whitney_greater(&b.samples_ms, &n.samples_ms);
    let p_better = mann_whitney_greater(&n.samples_ms, &b.samples_ms);
    let (verdict, note) = if worse_by > t && p_worse < ALPHA {
        (Verdict::Regression, format!("p={p_worse:.3}"))
    } else if -worse_by > t && p_better < ALPHA {
        (Verdict::Improvement, format!("p={p_better:.3}"))
    } else if worse_by.abs() > t {
        (
            Verdict::Same,
            format!("within noise (p={:.2})", p_worse.min(p_better)),
        )
    } else {
        (Verdict::Same, String::new())
    };
    Line {
        case: k.into(),
        metric: metric.into(),
        base: bm,
        new: nm,
        worse_by,
        verdict,
        note: format!(
            "{note}{}n={}/{}",
            if note.is_empty() { "" } else { ", " },
            b.samples_ms.len(),
            n.samples_ms.len()
        ),
        status: None,
    }
}

/// How single values are judged: past twice the threshold and the case's noise.
#[derive(Debug, Clone, Copy)]
struct Single {
    threshold: f64,
    noise: f64,
}

impl Single {
    fn line(&self, k: &str, metric: &str, (b, n): (f64, f64), worse_by: f64, why: &str) -> Line {
        let bar = (2.0 * self.threshold).max(self.noise);
        let verdict = if worse_by > bar {
            Verdict::Regression
        } else if -worse_by > bar {
            Verdict::Improvement
        } else {
            Verdict::Same
        };
        let mut note = format!("one value: needs > {:.0}%", bar * 100.0);
        if self.noise > 2.0 * self.threshold {
            note.push_str(" (case noise)");
        }
        if !why.is_empty() {
            note = format!("{why}; {note}");
        }
        Line {
            case: k.into(),
            metric: metric.into(),
            base: b,
            new: n,
            worse_by,
            verdict,
            note,
            status: None,
        }
    }
}

/// "12.3% worse", "5.0% better" or "0.0%".
fn change(worse_by: f64) -> String {
    let pct = worse_by * 100.0;
    if !pct.is_finite() {
        "-".into()
    } else if pct >= 0.05 {
        format!("{pct:.1}% worse")
    } else if pct <= -0.05 {
        format!("{:.1}% better", -pct)
    } else {
        "0.0%".into()
    }
}

/// A status as results.json spells it.
fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Skipped => "skipped",
        Status::Failed => "failed",
    }
}

/// The comparison as a fixed-width table plus notes.
pub fn table(c: &Comparison) -> String {
    let header = ["case", "metric", "base", "new", "change", "verdict", "note"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for l in &c.lines {
        rows.push(vec![
            l.case.clone(),
            l.metric.clone(),
            match l.status {
                Some((base, _)) => status_word(base).into(),
                None => format!("{:.2}", l.base),
            },
            match l.status {
                Some((_, new)) => status_word(new).into(),
                None => format!("{:.2}", l.new),
            },
            change(l.worse_by),
            match l.verdict {
                Verdict::Regression => "REGRESSION",
                Verdict::Improvement => "improved",
                Verdict::Same => "same",
            }
            .into(),
            l.note.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, v)| match i {
                2..=4 => format!("{v:>w$}", w = widths[i]),
                _ => format!("{v:<w$}", w = widths[i]),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 12));
        }
    }
    for note in &c.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(
        out,
        "{} regression(s) beyond {:.1}% and the noise; {} metric(s) compared",
        c.regressions(),
        c.threshold * 100.0,
        c.lines.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, results, summary};

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
    fn mann_whitney_on_known_samples() {
        // Complete separation, 5 vs 5: U = 25, z = (25 - 12.5 - 0.5) / sqrt(22.9167) = 2.5067.
        let p = mann_whitney_greater(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p - 0.00609).abs() < 1e-4, "{p}");
        // Identical samples: no evidence either way.
        let p = mann_whitney_greater(&NOISY, &NOISY);
        assert!(p > 0.5, "{p}");
        assert_eq!(mann_whitney_greater(&[1.0, 1.0], &[1.0, 1.0]), 1.0);
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
        assert!(t.contains("1 regression(s) beyond 10.0%"), "{t}");
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
        assert!(l.note.contains("within noise"), "{l:?}");
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
        let cases: std::collections::BTreeSet<&str> =
            c.lines.iter().map(|l| l.case.as_str()).collect();
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
}
