//! Charts of one or several runs. [`build`] turns results into chart data (pure, tested on
//! exact series); `render` draws them with plotters as SVG text (for the HTML report and
//! files) and PNG files. A chart with no data is left out rather than drawn empty.
//!
//! Environments that cannot be compared (a lab guest under emulation and the host, or
//! two kernels) never share an axis: every chart is drawn per environment, named
//! `<chart>-<environment>` when the report covers several. The one exception is the
//! kernels' side-by-side bars, which compare kernels of the same kind of environment
//! only (lab-kvm with lab-kvm, host with host).

mod breakdown;
mod lookup;
mod overview;
mod render;

pub use render::{render_png, render_svg, ChartError};

use crate::analysis::cases::{self, Row};
use crate::results::Results;

/// A line: points sorted by x.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Each point's 95% interval (lo, hi), drawn as a whisker; empty for none, else as
    /// long as `points`.
    pub whiskers: Vec<(f64, f64)>,
    /// A secondary line (e.g. p99 next to p50): drawn thinner and dashed-looking.
    pub secondary: bool,
    /// Index into the palette, so a p50 line and its p99 twin share a colour.
    pub color: usize,
}

/// Groups of bars: one group per category, one bar per series.
#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub categories: Vec<String>,
    /// (label, value per category; None where not measured).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// One part of every stacked bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub label: String,
    /// Index into the palette, fixed per segment so charts agree.
    pub color: usize,
    /// The segment's length in each bar, in category order.
    pub values: Vec<f64>,
}

/// Horizontal stacked bars: one bar per category (top to bottom), each made of the
/// same segments (left to right); a bar's length is the sum of its segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Stacked {
    pub categories: Vec<String>,
    pub segments: Vec<Segment>,
}

impl Stacked {
    /// Each bar's length.
    pub fn totals(&self) -> Vec<f64> {
        (0..self.categories.len())
            .map(|i| self.segments.iter().filter_map(|s| s.values.get(i)).sum())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Lines {
        series: Vec<Series>,
        log_x: bool,
        log_y: bool,
    },
    Bars(Bars),
    Stacked(Stacked),
}

/// Where the report shows a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The curves and bars of the "Charts" section.
    Overview,
    /// "Lookup cost": the in-kernel transit against service position.
    Lookup,
    /// "Where the time goes": the sync breakdowns.
    Breakdown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// File stem: charts/<name>.svg.
    pub name: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub body: Body,
    pub section: Section,
    /// What the chart shows and how, under it in the report; empty for none.
    pub caption: String,
}

/// Every chart the data supports, in report order: per environment, the overview,
/// then the lookup cost; the kernels side by side; the sync breakdowns.
pub fn build(results: &[Results]) -> Vec<Chart> {
    let rows: Vec<Row<'_>> = cases::rows(results)
        .into_iter()
        .filter(|r| r.ok())
        .collect();
    let envs = cases::envs(&rows);
    let several = envs.len() > 1;
    // One colour per mode in every chart, whatever the environment.
    let mut modes: Vec<String> = rows.iter().map(|r| r.mode()).collect();
    modes.sort();
    modes.dedup();
    let mut charts = Vec::new();
    for env in &envs {
        let own: Vec<Row<'_>> = rows.iter().filter(|r| &r.env() == env).copied().collect();
        let place = Place {
            env,
            several,
            modes: &modes,
        };
        charts.extend(overview::charts(&own, &place));
        charts.extend(lookup::charts(&own, &place));
    }
    charts.extend(overview::kernels(&rows, &envs));
    charts.extend(breakdown::charts(results));
    charts.into_iter().filter(has_data).collect()
}

/// Where a chart of one environment goes: its name, title and colours.
pub(crate) struct Place<'a> {
    pub env: &'a cases::EnvKey,
    /// The report covers several environments: names get the environment's slug.
    pub several: bool,
    /// Every mode of the report, sorted: a mode's index is its colour.
    pub modes: &'a [String],
}

impl Place<'_> {
    pub fn name(&self, base: &str) -> String {
        if self.several {
            format!("{base}-{}", slug(&self.env.label()))
        } else {
            base.to_string()
        }
    }

    pub fn title(&self, what: &str) -> String {
        format!("{what} ({})", self.env.label())
    }

    pub fn color(&self, mode: &str) -> usize {
        self.modes.iter().position(|m| m == mode).unwrap_or(0)
    }
}

/// A file-name-safe form of an environment label: `host-6.18.0`.
pub(crate) fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn has_data(c: &Chart) -> bool {
    match &c.body {
        Body::Lines { series, .. } => series.iter().any(|s| !s.points.is_empty()),
        Body::Bars(b) => b.series.iter().any(|s| s.1.iter().any(Option::is_some)),
        Body::Stacked(s) => s.totals().iter().any(|t| *t > 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, results, skipped, with_transit};

    fn names(c: &[Chart]) -> Vec<&str> {
        c.iter().map(|c| c.name.as_str()).collect()
    }

    fn lines(c: &Chart) -> &[Series] {
        match &c.body {
            Body::Lines { series, .. } => series,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rule_only_runs_skip_the_data_path_charts() {
        let mut a = case("iptables", 100, 50.0, 5.0, 10.0);
        let mut b = case("iptables", 1000, 400.0, 40.0, 30.0);
        a.datapath = None;
        b.datapath = None;
        let r = results("6.18", vec![a, b, skipped("ipvs", 100, "no ip_vs")]);
        let charts = build(&[r]);
        assert_eq!(
            names(&charts),
            [
                "full_sync",
                "incremental_add_service",
                "incremental_remove_service",
                "incremental_update_endpoints"
            ]
        );
        assert_eq!(
            charts[0].title,
            "Full sync: time to program every service (host 6.18)"
        );
        let Body::Lines {
            series,
            log_x,
            log_y,
        } = &charts[0].body
        else {
            panic!()
        };
        assert!(*log_x && *log_y);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].label, "iptables");
        assert_eq!(series[0].points, vec![(100.0, 50.0), (1000.0, 400.0)]);
        assert!(series[0].whiskers.is_empty(), "one full sync: no interval");
        let s = lines(&charts[1]);
        assert_eq!(
            s.iter()
                .map(|s| (s.label.as_str(), s.secondary))
                .collect::<Vec<_>>(),
            [("iptables p50", false), ("iptables p99", true)]
        );
        // 10 samples around 5 and 40 ms: the 2nd and 9th of each.
        assert_eq!(s[0].whiskers.len(), 2);
        assert!((s[0].whiskers[0].0 - 4.97).abs() < 1e-9);
        assert!((s[0].whiskers[1].1 - 40.04).abs() < 1e-9);
        assert!(s[1].whiskers.is_empty());
    }

    #[test]
    fn environments_never_share_an_axis() {
        let transit = |c| with_transit(c, 900.0, 3000.0, 15.0, 30.0, est(15.0, 14.5, 15.5));
        let a = results(
            "6.1.0",
            vec![
                transit(case("iptables", 100, 50.0, 5.0, 10.0)),
                case("iptables", 1000, 400.0, 40.0, 30.0),
                case("nftables", 1000, 100.0, 4.0, 3.0),
            ],
        );
        let b = results("6.12.0", vec![case("iptables", 100, 45.0, 4.0, 9.0)]);
        let mut lab = results("6.12.0", vec![case("ipvs", 100, 900.0, 90.0, 20000.0)]);
        lab.environments[0].kind = "lab-tcg".into();
        let charts = build(&[a, b, lab]);
        let host61: Vec<&str> = names(&charts)
            .into_iter()
            .filter(|n| n.ends_with("-host-6.1.0"))
            .collect();
        assert_eq!(
            host61,
            [
                "full_sync-host-6.1.0",
                "incremental_add_service-host-6.1.0",
                "incremental_remove_service-host-6.1.0",
                "incremental_update_endpoints-host-6.1.0",
                "cpu_per_request-host-6.1.0",
                "latency_percentiles-host-6.1.0",
                "lookup_cost-host-6.1.0",
            ]
        );
        assert!(names(&charts).contains(&"full_sync-lab-tcg-6.12.0"));
        // Every line and percentile chart holds one environment's cases only.
        for c in charts.iter().filter(|c| !c.name.starts_with("kernels_")) {
            let env = ["host 6.1.0", "host 6.12.0", "lab-tcg 6.12.0"]
                .into_iter()
                .filter(|e| c.title.contains(&format!("({e})")))
                .count();
            assert_eq!(env, 1, "{}", c.title);
        }
        let cpu = charts
            .iter()
            .find(|c| c.name == "cpu_per_request-host-6.1.0")
            .unwrap();
        assert!(cpu.title.starts_with("Machine-wide CPU per request"));
        assert!(cpu.caption.contains("the load generator"));
        let lab_full = charts
            .iter()
            .find(|c| c.name == "full_sync-lab-tcg-6.12.0")
            .unwrap();
        assert_eq!(lines(lab_full)[0].points, [(100.0, 900.0)]);
        assert_eq!(lines(lab_full)[0].color, 1, "ipvs/rr's colour everywhere");
        // Kernels side by side: the two hosts only, never the lab.
        let k = charts
            .iter()
            .find(|c| c.name == "kernels_full_sync")
            .unwrap();
        assert_eq!(k.title, "Full sync per kernel, largest common scale (host)");
        let Body::Bars(k) = &k.body else { panic!() };
        assert_eq!(k.categories, ["iptables @ 100"]);
        assert_eq!(k.series[0], ("host 6.1.0".into(), vec![Some(50.0)]));
        assert_eq!(k.series[1], ("host 6.12.0".into(), vec![Some(45.0)]));
        assert_eq!(k.series.len(), 2);
    }

    #[test]
    fn the_dataplane_cpu_is_charted_where_measured() {
        let mut c = case("iptables", 100, 50.0, 5.0, 10.0);
        c.datapath
            .as_mut()
            .unwrap()
            .cpu
            .as_mut()
            .unwrap()
            .dataplane_ns_per_request = Some(4200.0);
        let charts = build(&[results("6.18", vec![c])]);
        let dp = charts
            .iter()
            .find(|c| c.name == "dataplane_cpu_per_request")
            .unwrap();
        assert_eq!(lines(dp)[0].points, [(100.0, 4200.0)]);
        assert!(dp.caption.contains("belongs to the dataplane"));
    }

    #[test]
    fn nothing_to_draw_gives_no_charts() {
        let r = results("6.1", vec![skipped("ipvs", 100, "no ip_vs")]);
        assert!(build(&[r]).is_empty());
        assert!(build(&[]).is_empty());
    }
}
