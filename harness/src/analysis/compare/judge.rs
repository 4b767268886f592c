//! How each figure of a matched case gets the interval of its change (BASE to NEW,
//! positive = worse), and its verdict by the one rule: [`stats::trend`] with either
//! direction allowed and the threshold as the margin.
//!
//! * **Repeated timings** (full sync and incremental updates, both sides with at least
//!   [`MIN_SAMPLES`] `samples_ms`): the change of the medians relative to BASE's
//!   median, its interval the percentile bootstrap of [`stats::median_difference`],
//!   which redraws both runs' samples, so both runs' noise is in it.
//! * **Single values** (a full sync measured once, lookup overhead p50, max rate): one
//!   number cannot show its own noise, so it borrows the case's: its interval is the
//!   change ± the larger of **twice** the threshold and the case's noise (the median,
//!   over the case's repeated timings in both runs, of their interquartile range
//!   relative to their median). On a quiet machine a single value is a regression past
//!   twice the threshold; on a noisy one it has to move further. It is never "flat":
//!   one value cannot show that. Lookup overhead is a small difference of two
//!   latencies, so its change is measured relative to BASE's p50 latency to the last
//!   service, not to the overhead itself.
//! * **The cost per service position** (`datapath.transit.ns_per_service`, ns): NEW's
//!   estimate minus BASE's, its interval from both runs' intervals
//!   ([`stats::difference_of_estimates`]); the margin is the threshold's share of
//!   BASE's cost, at least [`stats::LOOKUP_MARGIN_FLOOR_NS`].

use crate::analysis::cases;
use crate::analysis::stats::{self, Forbidden, MIN_SAMPLES};
use crate::results::{Case, DurationSummary, Estimate, Status};

use super::{Line, Unit, Verdict};

type Pick = fn(&Case) -> Option<&DurationSummary>;

const TIMINGS: [(&str, Pick); 4] = [
    ("full sync ms", crate::analysis::cases::full_sync),
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

/// A line whose change and interval are known: the rule decides it.
struct Judged<'a> {
    case: &'a str,
    metric: &'a str,
    values: (f64, f64),
    worse_by: f64,
    change: Estimate,
    unit: Unit,
    margin: f64,
}

impl Judged<'_> {
    fn line(self, note: String) -> Line {
        let t = stats::trend(&self.change, self.margin, Forbidden::Neither);
        Line {
            case: self.case.into(),
            metric: self.metric.into(),
            base: self.values.0,
            new: self.values.1,
            worse_by: self.worse_by,
            change: Some(self.change),
            unit: self.unit,
            margin: self.margin,
            trend: Some(t),
            verdict: Verdict::of(t),
            note,
            status: None,
        }
    }
}

/// The line of a case that was ok in BASE and failed in NEW: a regression.
pub(super) fn failed(k: &str, nc: &Case) -> Line {
    Line {
        case: k.into(),
        metric: "status".into(),
        base: 0.0,
        new: 0.0,
        worse_by: f64::INFINITY,
        change: None,
        unit: Unit::Relative,
        margin: 0.0,
        trend: None,
        verdict: Verdict::Regression,
        note: format!(
            "ok in BASE, failed in NEW: {}",
            nc.reason.as_deref().unwrap_or("no reason recorded")
        ),
        status: Some((Status::Ok, Status::Failed)),
    }
}

/// Every figure both cases have, one line each.
pub(super) fn case(k: &str, b: &Case, n: &Case, threshold: f64, lines: &mut Vec<Line>) {
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
    if let (Some(bt), Some(nt)) = (per_position(b), per_position(n)) {
        lines.push(transit(k, bt, nt, threshold));
    }
    let rate = |c: &Case| Some(c.datapath.as_ref()?.max_rate.as_ref()?.requests_per_s);
    if let (Some(br), Some(nr)) = (rate(b), rate(n)) {
        if br > 0.0 {
            lines.push(single.line(k, "max rate /s", (br, nr), (br - nr) / br, ""));
        }
    }
}

fn per_position(c: &Case) -> Option<Estimate> {
    let t = c.datapath.as_ref()?.transit.as_ref()?;
    Some(Estimate {
        estimate: t.ns_per_service.estimate,
        ci95: t.ns_per_service.ci95,
    })
}

/// The cost per service position: both runs' intervals make the difference's.
fn transit(k: &str, b: Estimate, n: Estimate, threshold: f64) -> Line {
    let change = stats::difference_of_estimates(n, b);
    let margin = (threshold * b.estimate.abs()).max(stats::LOOKUP_MARGIN_FLOOR_NS);
    Judged {
        case: k,
        metric: "transit ns/position",
        values: (b.estimate, n.estimate),
        worse_by: change.estimate / b.estimate.abs().max(f64::MIN_POSITIVE),
        change,
        unit: Unit::Absolute("ns"),
        margin,
    }
    .line(format!(
        "intervals of both runs; margin {}",
        if margin > threshold * b.estimate.abs() {
            "the lookup floor"
        } else {
            "the threshold of BASE's"
        }
    ))
}

fn timing(k: &str, metric: &str, b: &DurationSummary, n: &DurationSummary, single: Single) -> Line {
    let (Some(diff), Some(bm), Some(nm)) = (
        stats::median_difference(&n.samples_ms, &b.samples_ms),
        stats::median(&b.samples_ms),
        stats::median(&n.samples_ms),
    ) else {
        return single.line(
            k,
            metric,
            (b.p50_ms, n.p50_ms),
            (n.p50_ms - b.p50_ms) / b.p50_ms.max(f64::MIN_POSITIVE),
            "",
        );
    };
    let change = stats::scale(diff, 1.0 / bm.max(f64::MIN_POSITIVE));
    Judged {
        case: k,
        metric,
        values: (bm, nm),
        worse_by: change.estimate,
        change,
        unit: Unit::Relative,
        margin: single.threshold,
    }
    .line(format!(
        "bootstrap of both runs, n={}/{}",
        b.samples_ms.len(),
        n.samples_ms.len()
    ))
}

/// How single values are judged: an interval borrowed from twice the threshold or the
/// case's noise, whichever is larger.
#[derive(Debug, Clone, Copy)]
struct Single {
    threshold: f64,
    noise: f64,
}

impl Single {
    fn line(&self, k: &str, metric: &str, values: (f64, f64), worse_by: f64, why: &str) -> Line {
        let bar = (2.0 * self.threshold).max(self.noise);
        let mut note = format!("one value: needs > {:.0}%", bar * 100.0);
        if self.noise > 2.0 * self.threshold {
            note.push_str(" (case noise)");
        }
        if !why.is_empty() {
            note = format!("{why}; {note}");
        }
        Judged {
            case: k,
            metric,
            values,
            worse_by,
            change: Estimate {
                estimate: worse_by,
                ci95: [worse_by - bar, worse_by + bar],
            },
            unit: Unit::Relative,
            margin: self.threshold,
        }
        .line(note)
    }
}
