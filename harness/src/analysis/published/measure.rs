//! kpbench's figures for a published quantity, one kpbench mode in one environment,
//! and the one rule's verdict on its shape.

use crate::analysis::cases::{self, Row, SyncKind};
use crate::analysis::{figures, lookup, stats};
use crate::results::{Case, Estimate, Status, Trend};

use super::{Agreement, Quantity, Shape};

/// One scale's kpbench figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub services: u64,
    /// The figure with its interval; `None` when not measured (`note` says why).
    pub figure: Option<Estimate>,
    pub unit: &'static str,
    /// What else the reader needs: the first and last positions, who programmed the
    /// rules, why nothing was measured.
    pub note: String,
    /// The verdict at this scale, where the quantity has one per case (the cost per
    /// position), with its margin.
    pub verdict: Option<(Trend, f64)>,
}

/// A kpbench mode's figures for one published shape, and how they compare.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The kpbench mode (and profile) as the report names it.
    pub mode: String,
    pub points: Vec<Point>,
    /// The verdict on the shape with its margin and unit; `None` when it could not be
    /// judged (`evidence` says why).
    pub verdict: Option<(Trend, f64, &'static str)>,
    pub agreement: Option<Agreement>,
    /// The figure the verdict is on, in words.
    pub evidence: String,
}

/// The case standing for `mode` at `services`: `ipvs` is kube-proxy's profile (or a
/// run without profiles), `ipvs (floor)` the floor's.
fn case_of<'r>(rows: &[Row<'r>], mode: &str, services: u64) -> Option<&'r Case> {
    let (base, floor) = match mode.strip_suffix(" (floor)") {
        Some(b) => (b, true),
        None => (mode, false),
    };
    rows.iter()
        .map(|r| r.case)
        .find(|c| c.mode == base && c.services == services && cases::is_floor(c) == floor)
}

fn not_measured(c: Option<&Case>) -> String {
    match c {
        None => "not run at this scale".into(),
        Some(c) => {
            let status = match c.status {
                Status::Ok => "ok",
                Status::Skipped => "skipped",
                Status::Failed => "failed",
            };
            match &c.reason {
                Some(r) => format!("{status}: {r}"),
                None => status.into(),
            }
        }
    }
}

/// A scale without a figure, and why.
fn missing(services: u64, unit: &'static str, note: String) -> Point {
    Point {
        services,
        figure: None,
        unit,
        note,
        verdict: None,
    }
}

fn programmed(c: &Case) -> String {
    match c.sync_over_limit_s {
        Some(s) => format!(
            "kube-proxy's full sync ran past {s:.0} s; rules programmed by the floor profile"
        ),
        None => String::new(),
    }
}

/// kpbench's figures for `mode` standing for the published `shape`, at the scales of
/// `rows` (one environment, the entry's scales); `None` when no case of the mode ran.
pub fn measure(q: Quantity, shape: &Shape, mode: &str, rows: &[Row<'_>]) -> Option<Measured> {
    let mut scales: Vec<u64> = rows
        .iter()
        .map(|r| r.case.services)
        .filter(|&n| shape.from_services.is_none_or(|f| n >= f))
        .collect();
    scales.sort_unstable();
    scales.dedup();
    // Only the scales this mode ran at: another mode's scales are not its gaps.
    scales.retain(|&n| case_of(rows, mode, n).is_some());
    if scales.is_empty() {
        return None;
    }
    let m = match (q, &shape.versus) {
        (Quantity::FirstPacketLatency, _) => lookup_shape(mode, &scales, rows, shape),
        (q, None) => growth(q, mode, &scales, rows, shape),
        (Quantity::DataplaneCpu, Some(other)) | (Quantity::AddServiceSync, Some(other)) => {
            versus(q, mode, other, &scales, rows, shape)
        }
    };
    Some(m)
}

/// The worst of the per-scale agreements: any disagreement disagrees; else an artefact
/// or an inconclusive scale leaves it untold; agreement only when every scale agrees.
fn combined(points: &[Point], shape: &Shape) -> Option<Agreement> {
    let all: Vec<Agreement> = points
        .iter()
        .filter_map(|p| p.verdict.map(|(t, _)| Agreement::of(shape.expect, t)))
        .collect();
    if all.is_empty() {
        return None;
    }
    for a in [
        Agreement::Disagrees,
        Agreement::Artefact,
        Agreement::Inconclusive,
    ] {
        if all.contains(&a) {
            return Some(a);
        }
    }
    Some(Agreement::Agrees)
}

/// First-packet latency: the cost per service position at each scale, judged by the
/// lookup rule (its margin that of the environment).
fn lookup_shape(mode: &str, scales: &[u64], rows: &[Row<'_>], shape: &Shape) -> Measured {
    let ok: Vec<Row<'_>> = rows.iter().copied().filter(Row::ok).collect();
    let ipt = lookup::iptables_slopes(&ok);
    let points: Vec<Point> = scales
        .iter()
        .map(|&n| {
            let c = case_of(rows, mode, n);
            let t = c.and_then(lookup::transit);
            match (c, t) {
                (Some(c), Some(t)) => {
                    // `rows` are of one environment.
                    let margin = lookup::margin(&ipt, &rows[0].env());
                    let (first, last) = (t.first().map(|p| p.syn_ns), t.last().map(|p| p.syn_ns));
                    let ends = match (first, last) {
                        (Some(f), Some(l)) => format!(
                            "SYN p50 {} ns at the first position, {} ns at the last",
                            stats::num(f.estimate),
                            stats::num(l.estimate)
                        ),
                        _ => String::new(),
                    };
                    let note = [ends, programmed(c)]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ");
                    Point {
                        services: n,
                        figure: Some(t.ns_per_service),
                        unit: "ns per position",
                        note,
                        verdict: Some(lookup::verdict(&t, margin)),
                    }
                }
                (c, _) => Point {
                    services: n,
                    figure: None,
                    unit: "ns per position",
                    note: match c {
                        Some(c) if c.status == Status::Ok => lookup::transit_missing(c),
                        c => not_measured(c),
                    },
                    verdict: None,
                },
            }
        })
        .collect();
    let last = points.iter().rev().find_map(|p| p.verdict.map(|v| (p, v)));
    let (verdict, evidence) = match last {
        Some((p, (t, m))) => (
            Some((t, m, "ns")),
            format!(
                "cost per service position at {} services: {}",
                stats::count(p.services as f64),
                stats::with_margin(t, m, "ns")
            ),
        ),
        None => (None, "no scale had the in-kernel timing".into()),
    };
    Measured {
        mode: mode.to_string(),
        agreement: combined(&points, shape),
        points,
        verdict,
        evidence,
    }
}

fn add_point(c: Option<&Case>, n: u64) -> Point {
    let u = c.and_then(|c| figures::update_of(c, SyncKind::AddService));
    match (c, u) {
        (Some(_), Some(u)) => Point {
            services: n,
            figure: Some(u.median.unwrap_or(Estimate {
                estimate: u.p50_ms,
                ci95: [u.p50_ms, u.p50_ms],
            })),
            unit: "ms",
            note: if u.median.is_none() {
                format!("fewer than {} samples: no interval", stats::MIN_SAMPLES)
            } else {
                format!("{} samples", u.samples_ms.len())
            },
            verdict: None,
        },
        (Some(c), None) if c.sync_over_limit_s.is_some() => Point {
            services: n,
            figure: None,
            unit: "ms",
            note: format!(
                "not timed: {} (incremental syncs are not run on floor-programmed rules)",
                programmed(c)
            ),
            verdict: None,
        },
        (c, _) => missing(n, "ms", not_measured(c)),
    }
}

/// The node's in-kernel time for a new connection's first two packets (the SYN, where
/// the rules are walked, and the SYN-ACK), p50 at each service position of the transit
/// pass, us: the dataplane's CPU per new connection.
fn cpu_samples(c: &Case) -> Vec<f64> {
    c.datapath
        .iter()
        .filter_map(|d| d.transit.as_ref())
        .flat_map(|t| t.positions())
        .map(|t| (t.syn_ns.p50 + t.synack_ns.p50) / 1000.0)
        .collect()
}

fn cpu_point(c: Option<&Case>, n: u64) -> Point {
    let s = c.map(cpu_samples).unwrap_or_default();
    let unit = "us per connection";
    match (c, stats::median_estimate(&s)) {
        (Some(c), Some(e)) => Point {
            services: n,
            figure: Some(e),
            unit,
            note: [
                format!(
                    "median of {} service positions (interval: order statistics over them); \
                     {}% of a core at 1,000 new connections per second",
                    s.len(),
                    stats::num(e.estimate * 1000.0 / 1e4)
                ),
                programmed(c),
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
            verdict: None,
        },
        (Some(c), None) if c.status == Status::Ok => Point {
            services: n,
            figure: None,
            unit,
            note: lookup::transit_missing(c),
            verdict: None,
        },
        (c, _) => missing(n, unit, not_measured(c)),
    }
}

/// The add sync's samples of a case, ms.
fn add_samples(c: &Case) -> Vec<f64> {
    figures::update_of(c, SyncKind::AddService)
        .map(|u| u.samples_ms.to_vec())
        .unwrap_or_default()
}

/// How a quantity's figure is drawn from a case: its samples, its point, its words
/// and unit.
struct Kind {
    samples: fn(&Case) -> Vec<f64>,
    point: fn(Option<&Case>, u64) -> Point,
    what: &'static str,
    unit: &'static str,
}

fn kind(q: Quantity) -> Kind {
    match q {
        Quantity::DataplaneCpu => Kind {
            samples: cpu_samples,
            point: cpu_point,
            what: "node time per connection",
            unit: "us",
        },
        _ => Kind {
            samples: add_samples,
            point: add_point,
            what: "add sync",
            unit: "ms",
        },
    }
}

/// The difference `d` judged by `t` with `margin`, or why there is none: the mode's
/// figures with the verdict and its agreement with `shape`.
fn judged(
    mode: &str,
    shape: &Shape,
    points: Vec<Point>,
    unit: &'static str,
    done: Result<(Estimate, Trend, f64, String), String>,
) -> Measured {
    let (verdict, evidence) = match done {
        Ok((d, t, margin, what)) => (
            Some((t, margin, unit)),
            format!(
                "{what}: {}, {}",
                stats::difference(&d, unit),
                stats::with_margin(t, margin, unit)
            ),
        ),
        Err(why) => (None, why),
    };
    Measured {
        mode: mode.to_string(),
        agreement: verdict.map(|(t, _, _)| Agreement::of(shape.expect, t)),
        points,
        verdict,
        evidence,
    }
}

/// A figure's growth from the smallest scale with samples to the largest, by the
/// growth rule with a margin of a tenth of the smallest scale's median: the add sync
/// (`AddServiceSync`) or the node time per connection (`DataplaneCpu`).
fn growth(q: Quantity, mode: &str, scales: &[u64], rows: &[Row<'_>], shape: &Shape) -> Measured {
    let k = kind(q);
    let points: Vec<Point> = scales
        .iter()
        .map(|&n| (k.point)(case_of(rows, mode, n), n))
        .collect();
    let with: Vec<(u64, Vec<f64>)> = scales
        .iter()
        .filter_map(|&n| Some((n, (k.samples)(case_of(rows, mode, n)?))))
        .filter(|(_, s)| s.len() >= stats::MIN_SAMPLES)
        .collect();
    let done = match (with.first(), with.last()) {
        (Some((n0, s0)), Some((n1, s1))) if n0 != n1 => {
            let d = stats::median_difference(s1, s0).expect("both have samples");
            let margin = stats::relative_margin(stats::median(s0).unwrap_or(0.0));
            Ok((
                d,
                stats::growth_trend(&d, margin),
                margin,
                format!(
                    "{} at {} minus at {} services",
                    k.what,
                    stats::count(*n1 as f64),
                    stats::count(*n0 as f64)
                ),
            ))
        }
        _ => Err(format!(
            "growth needs the {} measured (at least {} samples) at two scales",
            k.what,
            stats::MIN_SAMPLES
        )),
    };
    judged(mode, shape, points, k.unit, done)
}

/// A mode against another at the same scale (the largest both measured): the
/// difference of their medians with its bootstrap interval, by the one rule with a
/// margin of a tenth of the other's figure (`grows`: `mode` is higher).
fn versus(
    q: Quantity,
    mode: &str,
    other: &str,
    scales: &[u64],
    rows: &[Row<'_>],
    shape: &Shape,
) -> Measured {
    let k = kind(q);
    let points: Vec<Point> = scales
        .iter()
        .map(|&n| (k.point)(case_of(rows, mode, n), n))
        .collect();
    let both = scales.iter().rev().find_map(|&n| {
        let a = (k.samples)(case_of(rows, mode, n)?);
        let b = (k.samples)(case_of(rows, other, n)?);
        (a.len() >= stats::MIN_SAMPLES && b.len() >= stats::MIN_SAMPLES).then_some((n, a, b))
    });
    let unit = points.first().map_or(k.unit, |p| p.unit);
    let done = match both {
        Some((n, a, b)) => {
            let d = stats::median_difference(&a, &b).expect("both have samples");
            let margin = stats::relative_margin(stats::median(&b).unwrap_or(0.0));
            Ok((
                d,
                stats::trend(&d, margin, stats::Forbidden::Neither),
                margin,
                format!(
                    "{mode} minus {other} at {} services",
                    stats::count(n as f64)
                ),
            ))
        }
        None => Err(format!(
            "{mode} and {other} were not both measured (at least {} samples each) at one \
             scale in this environment",
            stats::MIN_SAMPLES
        )),
    };
    judged(mode, shape, points, unit, done)
}
