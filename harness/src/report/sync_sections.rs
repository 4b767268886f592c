//! The report's sections on sync cost: "Where the time goes" (the stacked breakdowns and
//! their numbers) and "Controller overhead" (kube-proxy minus floor, within the noise
//! rule of [`crate::analysis::overhead`]).

use std::fmt::Write;

use crate::analysis::breakdown::{self, EnvBars, Segment};
use crate::analysis::capacity;
use crate::analysis::cases::SyncKind;
use crate::analysis::overhead::{self, Overhead};
use crate::analysis::stats;
use crate::analysis::stats::Trend;
use crate::report::charts::{Chart, Section};
use crate::results::Results;

use super::markup::{escape, figure};

/// The kinds of sync broken down, as in the charts.
const KINDS: [SyncKind; 2] = [SyncKind::Full, SyncKind::AddService];

/// "Where the time goes": the breakdown charts, then their numbers per environment.
pub(super) fn breakdown(h: &mut String, results: &[Results], charts: &[(&Chart, String)]) {
    h.push_str("<h2 id=\"breakdown\">Where the time goes</h2>\n");
    let per_kind: Vec<(SyncKind, Vec<EnvBars>)> = KINDS
        .iter()
        .map(|k| (*k, breakdown::at_largest(results, *k)))
        .collect();
    if per_kind.iter().all(|(_, e)| e.is_empty()) {
        h.push_str(
            "<p>No sync recorded its steps (results written before kpbench recorded them).</p>\n",
        );
        return;
    }
    let _ = writeln!(
        h,
        "<p>Every sync records its steps: each tool run and netlink batch with its wall, \
         user and sys time, averaged per sync. Per environment, each mode and profile is \
         shown at the largest scale it measured (its profiles at the largest they all \
         measured). <em>kube-proxy</em> replays kube-proxy's sync loop; <em>floor</em> \
         reaches the identical kernel objects the fastest way kpbench knows. Each chart's \
         caption says how steps become segments; the tables give the numbers.</p>"
    );
    for (c, svg) in charts
        .iter()
        .filter(|(c, _)| c.section == Section::Breakdown)
    {
        figure(h, c, svg);
    }
    let mut envs: Vec<_> = per_kind
        .iter()
        .flat_map(|(_, e)| e.iter().map(|e| &e.env))
        .collect();
    envs.sort();
    envs.dedup();
    for env in envs {
        let _ = write!(
            h,
            "<h3>{}: ms per sync (mean)</h3>\n<div class=\"scroll\"><table>\n<tr><th class=\"l\">sync</th><th class=\"l\">mode (profile)</th><th>services</th>",
            escape(&env.label())
        );
        for s in Segment::ALL {
            let _ = write!(h, "<th>{}</th>", escape(s.label()));
        }
        h.push_str("<th>mean wall</th></tr>\n");
        for (kind, envs) in &per_kind {
            let Some(e) = envs.iter().find(|e| &e.env == env) else {
                continue;
            };
            for b in &e.bars {
                let _ = write!(
                    h,
                    "<tr><td class=\"l\">{}</td><td class=\"l nw\">{}</td><td>{}</td>",
                    kind.label(),
                    escape(&b.label),
                    b.services
                );
                for s in Segment::ALL {
                    let _ = write!(h, "<td>{}</td>", capacity::num(b.split.get(s)));
                }
                let _ = writeln!(h, "<td>{}</td></tr>", capacity::num(b.split.wall_ms));
            }
        }
        h.push_str("</table></div>\n");
    }
}

/// "Controller overhead": kube-proxy minus floor where both ran.
pub(super) fn overhead(h: &mut String, results: &[Results]) {
    h.push_str("<h2 id=\"overhead\">Controller overhead: kube-proxy minus floor</h2>\n");
    let pairs = overhead::pairs(results);
    if pairs.is_empty() {
        h.push_str(
            "<p>No mode ran both profiles at one scale in one environment: run with \
             <code>--profiles kube-proxy,floor</code> to see what kube-proxy's sync loop adds \
             to the kernel's work.</p>\n",
        );
        return;
    }
    let _ = writeln!(
        h,
        "<p>What kube-proxy's sync loop adds to the fastest way to the identical kernel \
         objects: its p50 minus the floor's, with the 95% bootstrap interval of that \
         difference of medians (each side's samples redrawn {} times, a fixed seed; it spans \
         the samples within one run), and their ratio. The difference is judged by the one \
         rule with a margin of a tenth of the floor's p50: <em>grows</em>, <em>flat</em> \
         within the margin, <em>inconclusive</em>, or <em>unexpected</em> when kube-proxy \
         is significantly faster than the floor, which it cannot be; a side timed fewer \
         than {} times has no interval, and its number is marked so.</p>",
        stats::RESAMPLES,
        stats::MIN_SAMPLES
    );
    let mut env = None;
    for p in &pairs {
        if env != Some(&p.env) {
            if env.is_some() {
                h.push_str("</table></div>\n");
            }
            env = Some(&p.env);
            let _ = writeln!(
                h,
                "<h3>{}</h3>\n<div class=\"scroll\"><table>\n<tr><th class=\"l\">mode</th><th>services</th><th>endpoints</th><th class=\"l\">kube-proxy</th><th class=\"l\">sync</th><th>kube-proxy p50 ms</th><th>floor p50 ms</th><th>kube-proxy &minus; floor ms</th><th>ratio</th><th class=\"l\">95% CI of the difference, ms, within one run</th></tr>",
                escape(&p.env.label())
            );
        }
        for o in &p.lines {
            let _ = writeln!(
                h,
                "<tr><td class=\"l nw\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l nw\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
                escape(&p.mode),
                p.services,
                p.endpoints_per_service,
                escape(p.kube_proxy_version.as_deref().unwrap_or("-")),
                o.kind.label(),
                capacity::num(o.kube_proxy_ms),
                capacity::num(o.floor_ms),
                difference(o),
                ratio(o),
                interval(o),
            );
        }
    }
    h.push_str("</table></div>\n");
}

fn signed(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", capacity::num(v))
    } else {
        capacity::num(v)
    }
}

/// The difference with the one rule's verdict (margin: a tenth of the floor), or why
/// there is none.
pub(super) fn difference(o: &Overhead) -> String {
    let margin = format!("margin ±{} ms", capacity::num(o.margin()));
    match o.verdict() {
        Some(Trend::Grows) => format!("{} ({margin})", signed(o.difference_ms)),
        Some(Trend::Unexpected) => format!(
            "{}: unexpected, faster than the floor; likely an artefact ({margin})",
            signed(o.difference_ms)
        ),
        Some(t) => format!("{} ({margin})", t.label()),
        None => format!("{} (noise unknown)", signed(o.difference_ms)),
    }
}

fn ratio(o: &Overhead) -> String {
    match (o.verdict(), o.ratio) {
        (Some(Trend::Grows) | None, Some(r)) => format!("{}x", capacity::num(r)),
        _ => "&ndash;".into(),
    }
}

fn interval(o: &Overhead) -> String {
    match &o.interval {
        Some(e) => format!("{}..{}", stats::signed(e.ci95[0]), stats::signed(e.ci95[1])),
        None => format!("none: fewer than {} samples", stats::MIN_SAMPLES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{profiled, results, summary};

    fn ten(from: f64) -> Vec<f64> {
        (0..10).map(|i| from + 2.0 * i as f64).collect()
    }

    #[test]
    fn the_overhead_table_says_so_when_noise_hides_the_difference() {
        let kp = profiled(
            "iptables",
            1000,
            "kube-proxy",
            &[700.0, 700.0, 700.0],
            &ten(50.0),
        );
        let mut floor = profiled("iptables", 1000, "floor", &[300.0], &ten(20.0));
        floor.sync.as_mut().unwrap().update_endpoints = Some(summary(&ten(49.0)));
        let mut h = String::new();
        overhead(&mut h, &[results("6.18.0", vec![kp, floor])]);
        assert!(h.contains("<h3>host 6.18.0</h3>"), "{h}");
        let row = |sync: &str| {
            h.lines()
                .find(|l| l.contains(&format!(">{sync}</td>")))
                .unwrap()
                .to_string()
        };
        // Full: the floor ran once, so no interval.
        assert!(
            row("full sync").contains(
                "<td>+400 (noise unknown)</td><td>2.33x</td><td class=\"l\">none: fewer than 3 samples</td>"
            ),
            "{}",
            row("full sync")
        );
        assert!(
            row("add service")
                .contains("<td>+30.0 (margin ±2.80 ms)</td><td>2.07x</td><td class=\"l\">+"),
            "{}",
            row("add service")
        );
        // update: 58 against 57, spreads of 18.
        assert!(
            row("update endpoints").contains(
                "<td>inconclusive (margin ±5.70 ms)</td><td>&ndash;</td><td class=\"l\">-"
            ),
            "{}",
            row("update endpoints")
        );
    }

    #[test]
    fn without_both_profiles_the_sections_say_what_to_run() {
        let kp = profiled("iptables", 1000, "kube-proxy", &[700.0], &ten(50.0));
        let mut h = String::new();
        let r = [results("6.18.0", vec![kp])];
        overhead(&mut h, &r);
        assert!(h.contains("--profiles kube-proxy,floor"));
        breakdown(&mut h, &r, &[]);
        assert!(h.contains("No sync recorded its steps"));
    }
}
