//! Charts of one or several runs. [`build`] turns results into chart data (pure, tested on
//! exact series); `render` draws them with plotters as SVG text (for the HTML report and
//! files) and PNG files. A chart with no data is left out rather than drawn empty.

mod breakdown;
mod render;

use std::collections::BTreeMap;

pub use render::{render_png, render_svg, ChartError};

use crate::analysis::cases::{self, EnvKey, Row};
use crate::results::{Case, Results};

/// A line: points sorted by x.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
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

/// Every chart the data supports, in report order.
pub fn build(results: &[Results]) -> Vec<Chart> {
    let rows: Vec<Row<'_>> = cases::rows(results)
        .into_iter()
        .filter(|r| r.ok())
        .collect();
    let envs = cases::envs(&rows);
    let several = envs.len() > 1;
    let mut keys: Vec<(EnvKey, String)> = rows.iter().map(|r| (r.env(), r.mode())).collect();
    keys.sort();
    keys.dedup();
    let mut modes: Vec<String> = keys.iter().map(|k| k.1.clone()).collect();
    modes.sort();
    modes.dedup();
    let ctx = Ctx {
        rows: &rows,
        keys: &keys,
        several,
    };
    let mut charts = vec![ctx.lines(
        "full_sync",
        "Full sync: time to program every service",
        "full sync, ms",
        true,
        &[("", &|c: &Case| c.sync.as_ref().map(|s| s.full.p50_ms))],
    )];
    type Pick = fn(&Case) -> Option<&crate::results::DurationSummary>;
    let ops: [(&str, &str, Pick); 3] = [
        ("add_service", "add one service", |c| {
            c.sync.as_ref()?.add_service.as_ref()
        }),
        ("remove_service", "remove one service", |c| {
            c.sync.as_ref()?.remove_service.as_ref()
        }),
        ("update_endpoints", "change one service's endpoints", |c| {
            c.sync.as_ref()?.update_endpoints.as_ref()
        }),
    ];
    for (name, what, pick) in ops {
        let p50 = move |c: &Case| pick(c).map(|d| d.p50_ms);
        let p99 = move |c: &Case| pick(c).map(|d| d.p99_ms);
        charts.push(ctx.lines(
            &format!("incremental_{name}"),
            &format!("Incremental update: {what} (p50 solid, p99 thin)"),
            "ms",
            true,
            &[(" p50", &p50), (" p99", &p99)],
        ));
    }
    charts.push(ctx.lines_linear_y(
        "lookup_overhead",
        "Lookup overhead: p50 latency added over a direct connection",
        "us",
        &[
            (" first", &|c: &Case| cases::lookup_overhead(c, "first")),
            (" last", &|c: &Case| cases::lookup_overhead(c, "last")),
        ],
    ));
    charts.push(ctx.lines_linear_y(
        "cpu_per_request",
        "Whole-kernel CPU per request under load",
        "CPU us per request",
        &[("", &|c: &Case| {
            c.datapath.as_ref()?.cpu.as_ref().map(|c| c.per_request_us)
        })],
    ));
    charts.push(latency_at_largest(&ctx));
    if several {
        charts.extend(per_kernel(&rows, &envs, &modes));
    }
    charts.extend(breakdown::charts(results));
    charts.into_iter().filter(has_data).collect()
}

fn has_data(c: &Chart) -> bool {
    match &c.body {
        Body::Lines { series, .. } => series.iter().any(|s| !s.points.is_empty()),
        Body::Bars(b) => b.series.iter().any(|s| s.1.iter().any(Option::is_some)),
        Body::Stacked(s) => s.totals().iter().any(|t| *t > 0.0),
    }
}

struct Ctx<'a, 'r> {
    rows: &'a [Row<'r>],
    keys: &'a [(EnvKey, String)],
    several: bool,
}

type Value<'f> = &'f dyn Fn(&Case) -> Option<f64>;

impl Ctx<'_, '_> {
    fn label(&self, env: &EnvKey, mode: &str) -> String {
        if self.several {
            format!("{mode} @ {}", env.kernel)
        } else {
            mode.to_string()
        }
    }

    fn series(&self, values: &[(&str, Value<'_>)]) -> Vec<Series> {
        let mut out = Vec::new();
        // One colour per (kernel, mode) line; its p99 twin shares it.
        for (color, (env, mode)) in self.keys.iter().enumerate() {
            for (i, (suffix, value)) in values.iter().enumerate() {
                let mut points: Vec<(f64, f64)> = self
                    .rows
                    .iter()
                    .filter(|r| &r.env() == env && &r.mode() == mode)
                    .filter_map(|r| Some((r.case.services as f64, value(r.case)?)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                if !points.is_empty() {
                    out.push(Series {
                        label: format!("{}{suffix}", self.label(env, mode)),
                        points,
                        secondary: i > 0,
                        color,
                    });
                }
            }
        }
        out
    }

    fn lines(
        &self,
        name: &str,
        title: &str,
        y: &str,
        log_y: bool,
        values: &[(&str, Value<'_>)],
    ) -> Chart {
        let series = self.series(values);
        // A log axis cannot show zero or less.
        let log_y = log_y && series.iter().flat_map(|s| &s.points).all(|p| p.1 > 0.0);
        Chart {
            name: name.into(),
            title: title.into(),
            x_label: "services".into(),
            y_label: y.into(),
            body: Body::Lines {
                series,
                log_x: true,
                log_y,
            },
            section: Section::Overview,
            caption: String::new(),
        }
    }

    fn lines_linear_y(
        &self,
        name: &str,
        title: &str,
        y: &str,
        values: &[(&str, Value<'_>)],
    ) -> Chart {
        self.lines(name, title, y, false, values)
    }
}

/// Latency percentiles to the last service at each mode's largest scale.
fn latency_at_largest(ctx: &Ctx<'_, '_>) -> Chart {
    let categories: Vec<String> = ["p50", "p90", "p99", "p99.9"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut series = Vec::new();
    for (env, mode) in ctx.keys {
        let largest = ctx
            .rows
            .iter()
            .filter(|r| &r.env() == env && &r.mode() == mode)
            .filter_map(|r| Some((r.case.services, cases::target_latency(r.case, "last")?)))
            .max_by_key(|(n, _)| *n);
        if let Some((n, l)) = largest {
            series.push((
                format!("{} ({} svc)", ctx.label(env, mode), n),
                vec![Some(l.p50), Some(l.p90), Some(l.p99), Some(l.p999)],
            ));
        }
    }
    Chart {
        name: "latency_percentiles".into(),
        title: "Latency to the last service at each mode's largest scale".into(),
        x_label: "percentile".into(),
        y_label: "us".into(),
        body: Body::Bars(Bars { categories, series }),
        section: Section::Overview,
        caption: String::new(),
    }
}

/// One metric per kernel side by side: per mode, at the largest scale every kernel measured.
fn per_kernel(rows: &[Row<'_>], envs: &[EnvKey], modes: &[String]) -> Vec<Chart> {
    type Metric = fn(&Case) -> Option<f64>;
    let metrics: [(&str, &str, &str, Metric); 3] = [
        ("kernels_full_sync", "Full sync per kernel", "ms", |c| {
            c.sync.as_ref().map(|s| s.full.p50_ms)
        }),
        (
            "kernels_incremental",
            "Slowest incremental update p50 per kernel",
            "ms",
            |c| cases::slowest_incremental(c).map(|d| d.1.p50_ms),
        ),
        (
            "kernels_lookup_last",
            "Lookup overhead to the last service per kernel",
            "us",
            |c| cases::lookup_overhead(c, "last"),
        ),
    ];
    let mut charts = Vec::new();
    for (name, title, unit, value) in metrics {
        let mut categories = Vec::new();
        let mut per_env: BTreeMap<&EnvKey, Vec<Option<f64>>> = BTreeMap::new();
        for mode in modes {
            // The largest scale measured on every kernel that ran this mode.
            let mut common: Option<Vec<u64>> = None;
            for env in envs {
                let mut n: Vec<u64> = rows
                    .iter()
                    .filter(|r| &r.env() == env && &r.mode() == mode && value(r.case).is_some())
                    .map(|r| r.case.services)
                    .collect();
                if n.is_empty() {
                    continue;
                }
                n.sort();
                common = Some(match common {
                    None => n,
                    Some(c) => c.into_iter().filter(|x| n.contains(x)).collect(),
                });
            }
            let Some(&scale) = common.as_ref().and_then(|c| c.iter().max()) else {
                continue;
            };
            let values: Vec<Option<f64>> = envs
                .iter()
                .map(|env| {
                    rows.iter()
                        .find(|r| &r.env() == env && &r.mode() == mode && r.case.services == scale)
                        .and_then(|r| value(r.case))
                })
                .collect();
            // Side by side needs two kernels at least.
            if values.iter().flatten().count() < 2 {
                continue;
            }
            categories.push(format!("{mode} @ {scale}"));
            for (env, v) in envs.iter().zip(values) {
                per_env.entry(env).or_default().push(v);
            }
        }
        charts.push(Chart {
            name: name.into(),
            title: format!("{title} (largest common scale)"),
            x_label: "mode @ services".into(),
            y_label: unit.into(),
            body: Body::Bars(Bars {
                categories,
                series: per_env.into_iter().map(|(e, v)| (e.label(), v)).collect(),
            }),
            section: Section::Overview,
            caption: String::new(),
        });
    }
    charts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, results, skipped};

    fn names(c: &[Chart]) -> Vec<&str> {
        c.iter().map(|c| c.name.as_str()).collect()
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
        let Body::Lines { series, .. } = &charts[1].body else {
            panic!()
        };
        assert_eq!(
            series
                .iter()
                .map(|s| (s.label.as_str(), s.secondary))
                .collect::<Vec<_>>(),
            [("iptables p50", false), ("iptables p99", true)]
        );
    }

    #[test]
    fn data_path_and_kernels() {
        let a = results(
            "6.1.0",
            vec![
                case("iptables", 100, 50.0, 5.0, 10.0),
                case("iptables", 1000, 400.0, 40.0, 30.0),
                case("nftables", 1000, 100.0, 4.0, 3.0),
            ],
        );
        let b = results("6.12.0", vec![case("iptables", 100, 45.0, 4.0, 9.0)]);
        let charts = build(&[a, b]);
        assert_eq!(
            names(&charts),
            [
                "full_sync",
                "incremental_add_service",
                "incremental_remove_service",
                "incremental_update_endpoints",
                "lookup_overhead",
                "cpu_per_request",
                "latency_percentiles",
                "kernels_full_sync",
                "kernels_incremental",
                "kernels_lookup_last"
            ]
        );
        let Body::Lines { series, log_y, .. } = &charts[4].body else {
            panic!()
        };
        assert!(!log_y);
        assert_eq!(series[0].label, "iptables @ 6.1.0 first");
        assert_eq!(series[1].points, vec![(100.0, 10.0), (1000.0, 30.0)]);
        let Body::Bars(bars) = &charts[6].body else {
            panic!()
        };
        assert_eq!(bars.series[0].0, "iptables @ 6.1.0 (1000 svc)");
        assert_eq!(bars.series[0].1[0], Some(80.0));
        let Body::Bars(k) = &charts[7].body else {
            panic!()
        };
        // nftables ran on one kernel only: nothing to put side by side.
        assert_eq!(k.categories, ["iptables @ 100"]);
        assert_eq!(k.series[0], ("host 6.1.0".into(), vec![Some(50.0)]));
        assert_eq!(k.series[1], ("host 6.12.0".into(), vec![Some(45.0)]));
    }

    #[test]
    fn nothing_to_draw_gives_no_charts() {
        let r = results("6.1", vec![skipped("ipvs", 100, "no ip_vs")]);
        assert!(build(&[r]).is_empty());
        assert!(build(&[]).is_empty());
    }
}
