//! "Under churn": per environment, each mode's churn phases against N at each rate
//! (network programming latency beside Kubernetes' 30 s SLO, the controller's CPU with
//! the kube-proxy-minus-floor split, failed connections, request p99 against quiet),
//! then the planner's line per mode and rate. Omitted when no case had a churn phase.

use std::fmt::Write;

use crate::analysis::churn::{plan, rows, ChurnRow, SLO_P99_MS};
use crate::analysis::stats::{self, with_margin, Trend};
use crate::results::{LatencySummaryMs, Results};

use super::markup::escape;

/// The controller CPU budget of the planner's line, percent of one core.
pub const CPU_BUDGET_PCT: f64 = 50.0;

fn latency(l: Option<&LatencySummaryMs>) -> String {
    match l {
        None => "not measured".into(),
        Some(l) => format!(
            "{} / {} [{}, {}] / {} (n={}{})",
            stats::num(l.p50),
            stats::num(l.p99),
            stats::num(l.ci95_p99[0]),
            stats::num(l.ci95_p99[1]),
            stats::num(l.max),
            l.samples,
            if l.unobserved > 0 {
                format!(", {} never reached", l.unobserved)
            } else {
                String::new()
            }
        ),
    }
}

fn slo_words(r: &ChurnRow) -> &'static str {
    match r.slo() {
        Some(Trend::Shrinks) => "meets (p99's interval below 30 s)",
        Some(Trend::Grows) => "misses (p99's interval above 30 s)",
        Some(_) => "undecided (interval spans 30 s)",
        None => "-",
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn row(h: &mut String, r: &ChurnRow) {
    let c = &r.churn;
    let split = match r.cpu_split() {
        Some((e, t, margin)) => format!(
            "{}, {}",
            stats::difference(&e, "points"),
            with_margin(t, margin, "points")
        ),
        None => "-".into(),
    };
    let failed = match (&c.failed_connections, &c.failed_connections_quiet) {
        (Some(f), q) => format!(
            "{} refused, {} reset, {} timed out of {}{}",
            f.refused,
            f.reset,
            f.timeout,
            f.attempted,
            q.as_ref().map_or(String::new(), |q| format!(
                " (quiet: {} of {})",
                q.refused + q.reset + q.timeout,
                q.attempted
            ))
        ),
        (None, _) => c.datapath_error.clone().unwrap_or_else(|| "-".into()),
    };
    let p99 = match &c.request_p99_us {
        None => "-".into(),
        Some(p) => format!(
            "{} vs {}: {}, {}",
            stats::num(p.churn),
            stats::num(p.quiet),
            stats::difference(&p.difference.estimate(), "us"),
            with_margin(p.difference.verdict, p.difference.margin, "us")
        ),
    };
    let _ = writeln!(
        h,
        "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{} ({})</td><td>{} / {}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
        escape(&r.mode),
        r.services,
        stats::num(c.rate_per_s),
        escape(&c.kind),
        escape(&c.batching),
        c.changes,
        c.syncs,
        latency(c.programming_latency_ms.as_ref()),
        slo_words(r),
        latency(c.removal_latency_ms.as_ref()),
        pct(r.kube_proxy_cpu_pct()),
        pct(r.floor_cpu_pct),
        split,
        escape(&failed),
        escape(&p99)
    );
}

/// The section, when a case had a churn phase.
pub(super) fn churn(h: &mut String, results: &[Results]) {
    let all = rows(results);
    if all.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<h2 id=\"churn\">Under churn</h2>\n<p>Endpoint changes at a steady rate while the \
         controller syncs as its agent does (kube-proxy: at most one sync per minSyncPeriod, \
         pending changes batched; the floor the same; the eBPF modes per change). \
         Programming latency: from an endpoint's change to the first new connection \
         through its VIP that reached it (removal: to the last that still did), ms, \
         p50 / p99 [95% interval] / max, beside Kubernetes' SLO of p99 within {} s. \
         Controller CPU: user plus sys of kpbench's controller thread and every tool it \
         ran, percent of one core over the phase, its interval from the phase's syncs redrawn; \
         kube-proxy minus floor is the controller's share, judged by the one rule \
         (margin a tenth of the floor's figure).</p>",
        SLO_P99_MS / 1000.0
    );
    let mut envs: Vec<_> = all.iter().map(|r| r.env.clone()).collect();
    envs.dedup();
    for env in envs {
        let _ = writeln!(
            h,
            "<h3>{}</h3>\n<div class=\"scroll\"><table>\n<tr><th class=\"l\">mode</th><th>services</th><th>changes/s</th><th class=\"l\">kind</th><th>changes / syncs</th><th class=\"l\">programming latency ms</th><th class=\"l\">SLO</th><th class=\"l\">removal latency ms</th><th>CPU % kube-proxy</th><th>CPU % floor</th><th class=\"l\">kube-proxy minus floor (points)</th><th class=\"l\">failed connections</th><th class=\"l\">request p99 us, churn vs quiet</th></tr>",
            escape(&env.label())
        );
        for r in all.iter().filter(|r| r.env == env) {
            row(h, r);
        }
        h.push_str("</table></div>\n");
    }
    timeline(h, &all);
    planner(h, &all);
}

/// Plot size of the time-series chart, pixels.
const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

/// What a sync's write `name` was, as the events name it: an iptables-legacy
/// restore swaps whole tables, iptables-nft's restore and `nft -f` are transactions.
fn write_kind(mode: &str, name: &str) -> &'static str {
    match (mode, name) {
        ("iptables-legacy", n) if n.contains("restore") => "whole-table swap",
        (_, n) if n.contains("restore") || n.starts_with("nft") => "transaction",
        _ => "",
    }
}

/// Each sync's kernel writes as a tick on top of its bar, at its end (when what it
/// wrote had landed), titled with what they were.
fn write_events(h: &mut String, r: &ChurnRow, x: &dyn Fn(f64) -> f64) {
    for e in r.churn.sync_events.iter().filter(|e| !e.writes.is_empty()) {
        let what: Vec<String> = (e.writes.iter())
            .map(|w| {
                let kind = write_kind(&r.mode, &w.name);
                let kind = if kind.is_empty() {
                    String::new()
                } else {
                    format!(": {kind}")
                };
                format!("{} x{}{kind}", w.name, w.calls)
            })
            .collect();
        let cx = x(e.end_ms);
        let _ = write!(
            h,
            "<path d=\"M{:.1} {:.1} l-4 -7 h8 z\" fill=\"#2ca02c\"><title>{} at {:.0} ms</title></path>",
            cx,
            PAD,
            escape(&what.join(", ")),
            e.end_ms
        );
    }
}

/// The failed connections as red ticks just above the time axis, one per pixel
/// column and kind, titled with how many failed there.
fn failure_ticks(h: &mut String, r: &ChurnRow, x: &dyn Fn(f64) -> f64) {
    let mut columns: std::collections::BTreeMap<(i64, &str), (u64, f64)> = Default::default();
    for m in &r.churn.failure_marks {
        let c = columns
            .entry((x(m.at_ms).round() as i64, m.kind.as_str()))
            .or_insert((0, m.at_ms));
        c.0 += 1;
    }
    for ((cx, kind), (n, at)) in columns {
        let _ = write!(
            h,
            "<line x1=\"{cx}\" y1=\"{:.1}\" x2=\"{cx}\" y2=\"{:.1}\" stroke=\"#d62728\" stroke-width=\"1.5\"><title>{n} {} from {:.0} ms</title></line>",
            H - PAD - 10.0,
            H - PAD,
            escape(kind),
            at
        );
    }
}

/// One churn phase on its time axis: the phase with the highest programming latency
/// p99 among those with points; syncs as bars with their kernel writes (whole-table
/// swaps, transactions) as ticks on top, each endpoint's latency as a point at its
/// change's arrival (filled: added, programming; hollow: removed), failed connections
/// as red ticks on the axis at the time they were sent.
fn timeline(h: &mut String, all: &[ChurnRow]) {
    let p99 = |r: &ChurnRow| {
        r.churn
            .programming_latency_ms
            .as_ref()
            .map_or(0.0, |l| l.p99)
    };
    let Some(r) = all
        .iter()
        .filter(|r| !r.churn.latency_points.is_empty())
        .max_by(|a, b| p99(a).total_cmp(&p99(b)))
    else {
        return;
    };
    let c = &r.churn;
    let t_end = c
        .sync_events
        .iter()
        .map(|e| e.end_ms)
        .chain(c.latency_points.iter().map(|p| p.arrival_ms + p.latency_ms))
        .chain(c.failure_marks.iter().map(|m| m.at_ms))
        .fold(1.0, f64::max);
    let y_max = c
        .latency_points
        .iter()
        .map(|p| p.latency_ms)
        .fold(1.0, f64::max);
    let x = |ms: f64| PAD + ms / t_end * (W - 2.0 * PAD);
    let y = |ms: f64| H - PAD + -(ms / y_max) * (H - 2.0 * PAD);
    let _ = write!(
        h,
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"churn time series\">"
    );
    for e in &c.sync_events {
        let _ = write!(
            h,
            "<rect x=\"{:.1}\" y=\"{PAD}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#bbb\" fill-opacity=\"0.5\"><title>sync of {} changes, {:.0}-{:.0} ms</title></rect>",
            x(e.start_ms),
            (x(e.end_ms) - x(e.start_ms)).max(1.0),
            H - 2.0 * PAD,
            e.changes,
            e.start_ms,
            e.end_ms
        );
    }
    write_events(h, r, &x);
    for p in &c.latency_points {
        let (fill, stroke) = match p.added {
            true => ("#1f77b4", "#1f77b4"),
            false => ("none", "#ff7f0e"),
        };
        let _ = write!(
            h,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{fill}\" stroke=\"{stroke}\"/>",
            x(p.arrival_ms),
            y(p.latency_ms)
        );
    }
    failure_ticks(h, r, &x);
    let _ = write!(
        h,
        "<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#333\"/>\
         <text x=\"{PAD}\" y=\"{t}\" font-size=\"11\">{} ms</text><text x=\"{r}\" y=\"{l}\" font-size=\"11\" text-anchor=\"end\">{:.1} s</text>\
         <text x=\"{PAD}\" y=\"{l}\" font-size=\"11\">0</text></svg>",
        stats::num(y_max),
        t_end / 1000.0,
        b = H - PAD,
        r = W - PAD,
        t = PAD - 6.0,
        l = H - PAD + 14.0,
    );
    caption(h, r);
}

fn caption(h: &mut String, r: &ChurnRow) {
    let c = &r.churn;
    let failed = c
        .failed_connections
        .as_ref()
        .map_or("not measured".into(), |f| {
            (f.refused + f.reset + f.timeout).to_string()
        });
    let _ = writeln!(
        h,
        "<figcaption>One churn phase: {} at {} services, {} {} changes/s. Grey bars: \
         syncs, each with a green tick at its end for what it wrote to the kernel (hover: \
         iptables-legacy's whole-table swaps, iptables-nft's and nftables' transactions, \
         IPVS requests, BPF map updates); filled points: each added endpoint's \
         programming latency at its change's arrival; hollow: each removed endpoint's \
         removal latency; red ticks on the axis: failed connections at the time they \
         were sent ({} in the phase).</figcaption></figure>",
        escape(&r.mode),
        r.services,
        stats::num(c.rate_per_s),
        escape(&c.kind),
        failed
    );
}

fn planner(h: &mut String, all: &[ChurnRow]) {
    let _ = writeln!(
        h,
        "<h3>Services each mode carries under churn</h3>\n<p>Up to the largest measured \
         service count at which every measured count met the SLO (the one rule on p99 \
         minus 30 s: its whole interval below) and a controller CPU budget of {CPU_BUDGET_PCT:.0}% \
         of one core, at each rate; nothing is extrapolated past the measured scales.</p>\n<ul>"
    );
    for l in plan(all, CPU_BUDGET_PCT) {
        let upto = match l.up_to {
            Some(n) => format!("up to {n} services"),
            None => "not at the smallest measured count".into(),
        };
        let why = match &l.stopped_by {
            Some((n, w)) => format!("; at {n}: {w}"),
            None => format!("; the largest measured is {}", l.largest_measured),
        };
        let _ = writeln!(
            h,
            "<li>{} at {} changes/s ({}): {}{}</li>",
            escape(&l.mode),
            stats::num(l.rate_per_s),
            escape(&l.env),
            upto,
            escape(&why)
        );
    }
    h.push_str("</ul>\n");
}

#[cfg(test)]
mod tests {
    use crate::analysis::cases::fixtures::{profiled, results};
    use crate::analysis::churn::sample;

    #[test]
    fn the_section_pairs_the_floor_cpu_and_plans_from_measured_scales_only() {
        let mut kp = profiled("nftables", 1000, "kube-proxy", &[1.0], &[1.0]);
        let mut churned = sample(3_000.0, 80.0, "kube-proxy");
        churned.sync_events = vec![crate::results::SyncEvent {
            start_ms: 0.0,
            end_ms: 500.0,
            changes: 1,
            writes: vec![crate::results::SyncWrite {
                name: "nft -f".into(),
                calls: 1,
            }],
        }];
        churned.failure_marks = vec![
            crate::results::FailureMark {
                at_ms: 300.0,
                kind: "reset".into(),
            },
            crate::results::FailureMark {
                at_ms: 300.2,
                kind: "reset".into(),
            },
        ];
        churned.latency_points = vec![crate::results::LatencyPoint {
            arrival_ms: 0.0,
            latency_ms: 600.0,
            added: true,
        }];
        kp.churn = Some(churned);
        let mut fl = profiled("nftables", 1000, "floor", &[1.0], &[1.0]);
        fl.churn = Some(sample(0.0, 9.0, "floor"));
        let mut h = String::new();
        super::churn(&mut h, &[results("6.1.0", vec![kp, fl])]);
        assert!(h.contains("<h2 id=\"churn\">Under churn</h2>"), "{h}");
        // kube-proxy 80.0, floor 9.0, the controller's share 71.0.
        assert!(
            h.contains("<td>80.0</td><td>9.0</td><td class=\"l\">+71.0 points"),
            "{h}"
        );
        assert!(h.contains("grows (margin ±0.900 points)"), "{h}");
        assert!(h.contains("meets (p99's interval below 30 s)"), "{h}");
        // The time series: the sync's bar over the first 500 of 600 ms, the point.
        assert!(
            h.contains("<title>sync of 1 changes, 0-500 ms</title>"),
            "{h}"
        );
        assert!(h.contains("<circle cx=\"40.0\" cy=\"40.0\""), "{h}");
        // The transaction at the sync's end; both resets in the pixel column at 300 ms.
        assert!(
            h.contains("<title>nft -f x1: transaction at 500 ms</title>"),
            "{h}"
        );
        assert!(h.contains("<title>2 reset from 300 ms</title>"), "{h}");
        assert!(
            h.contains("not at the smallest measured count; at 1000: controller CPU 80% of a core over the 50% budget"),
            "{h}"
        );
        // A sweep: every rate of the case its own row and its own planner line.
        let mut swept = profiled("iptables", 1000, "kube-proxy", &[1.0], &[1.0]);
        swept.churn = Some(sample(1_000.0, 10.0, "kube-proxy"));
        swept.churn_sweep = vec![crate::results::Churn {
            rate_per_s: 50.0,
            ..sample(2_000.0, 30.0, "kube-proxy")
        }];
        let mut h = String::new();
        super::churn(&mut h, &[results("6.1.0", vec![swept])]);
        for rate in ["10.0", "50.0"] {
            assert!(
                h.contains(&format!("<li>iptables at {rate} changes/s (")),
                "{h}"
            );
            assert!(
                h.contains(&format!(
                    "<td class=\"l\">iptables</td><td>1000</td><td>{rate}</td>"
                )),
                "{h}"
            );
        }
        assert!(h.contains("up to 1000 services"), "{h}");
        let mut quiet = String::new();
        super::churn(
            &mut quiet,
            &[results(
                "6.1.0",
                vec![profiled("nftables", 1000, "kube-proxy", &[1.0], &[1.0])],
            )],
        );
        assert!(quiet.is_empty());
    }
}
