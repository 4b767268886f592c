//! The "Charts" section, per environment: sync times against services (p50 with its
//! interval as whiskers), CPU per request (the whole machine's, and the dataplane's own
//! where the probes measured it), latency percentiles; then kernels of one kind of
//! environment side by side.

use std::collections::BTreeMap;

use super::{slug, Bars, Body, Chart, Place, Section, Series};
use crate::analysis::cases::{self, EnvKey, Row};
use crate::analysis::{figures, stats};
use crate::results::{Case, DurationSummary};

/// A point's value and, when it has one, its 95% interval.
type Point = (f64, Option<[f64; 2]>);
type Value<'f> = &'f dyn Fn(&Case) -> Option<Point>;

/// The p50 of a summary with the median's interval (order statistics over its samples,
/// when there are enough).
fn p50(d: &DurationSummary) -> Point {
    let ci = (d.samples_ms.len() >= stats::MIN_SAMPLES)
        .then(|| stats::median_estimate(&d.samples_ms))
        .flatten()
        .map(|e| e.ci95);
    (d.p50_ms, ci)
}

const WHISKERS: &str = "Whiskers: the median's 95% interval (order statistics over the \
     samples; with fewer than 6 samples, their range). They span the samples within one \
     run, not runs or machines.";

pub(super) fn charts(rows: &[Row<'_>], place: &Place<'_>) -> Vec<Chart> {
    let mut modes: Vec<String> = rows.iter().map(|r| r.mode()).collect();
    modes.sort();
    modes.dedup();
    let ctx = Ctx {
        rows,
        modes: &modes,
        place,
    };
    let mut charts = vec![ctx
        .lines(
            "full_sync",
            "Full sync: time to program every service",
            "full sync, ms",
            true,
            &[("", &|c: &Case| {
                crate::analysis::cases::full_sync(c).map(p50)
            })],
        )
        .caption(WHISKERS)];
    type Pick = fn(&Case) -> Option<&DurationSummary>;
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
        let p50 = move |c: &Case| pick(c).map(p50);
        let p99 = move |c: &Case| pick(c).map(|d| (d.p99_ms, None));
        charts.push(
            ctx.lines(
                &format!("incremental_{name}"),
                &format!("Incremental update: {what} (p50 solid, p99 thin)"),
                "ms",
                true,
                &[(" p50", &p50), (" p99", &p99)],
            )
            .caption(WHISKERS),
        );
    }
    charts.push(
        ctx.lines(
            "cpu_per_request",
            "Machine-wide CPU per request under load",
            "whole-machine CPU us per request",
            false,
            &[("", &|c: &Case| {
                Some((c.datapath.as_ref()?.cpu.as_ref()?.per_request_us, None))
            })],
        )
        .caption(
            "Busy CPU of the whole machine (all CPUs, every namespace) over the load \
             phases, divided by the requests: the idle machine, the load generator and the \
             server are in it, so it says little about the dataplane. One figure per case, \
             no interval.",
        ),
    );
    charts.push(
        ctx.lines(
            "dataplane_cpu_per_request",
            "Dataplane CPU per request (in-kernel, from the transit probes)",
            "ns per request",
            false,
            &[("", &|c: &Case| {
                Some((
                    c.datapath
                        .as_ref()?
                        .cpu
                        .as_ref()?
                        .dataplane_ns_per_request?,
                    None,
                ))
            })],
        )
        .caption(
            "The node's in-kernel time for every packet of one request's connection, \
             timed by the transit probes: the CPU that belongs to the dataplane. One figure \
             per case, no interval.",
        ),
    );
    charts.push(latency_at_largest(&ctx));
    charts
}

struct Ctx<'a, 'r> {
    rows: &'a [Row<'r>],
    modes: &'a [String],
    place: &'a Place<'a>,
}

impl Chart {
    fn caption(mut self, caption: &str) -> Chart {
        self.caption = caption.to_string();
        self
    }
}

impl Ctx<'_, '_> {
    fn series(&self, values: &[(&str, Value<'_>)]) -> Vec<Series> {
        let mut out = Vec::new();
        for mode in self.modes {
            for (i, (suffix, value)) in values.iter().enumerate() {
                let mut points: Vec<(f64, Point)> = self
                    .rows
                    .iter()
                    .filter(|r| &r.mode() == mode)
                    .filter_map(|r| Some((r.case.services as f64, value(r.case)?)))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                if points.is_empty() {
                    continue;
                }
                let all_ci = points.iter().all(|p| p.1 .1.is_some());
                out.push(Series {
                    label: format!("{mode}{suffix}"),
                    whiskers: if all_ci {
                        points
                            .iter()
                            .filter_map(|p| p.1 .1.map(|[lo, hi]| (lo, hi)))
                            .collect()
                    } else {
                        Vec::new()
                    },
                    points: points.iter().map(|p| (p.0, p.1 .0)).collect(),
                    secondary: i > 0,
                    color: self.place.color(mode),
                });
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
        // A log axis cannot show zero or less, whiskers included.
        let log_y = log_y
            && series.iter().all(|s| {
                s.points.iter().all(|p| p.1 > 0.0) && s.whiskers.iter().all(|w| w.0 > 0.0)
            });
        Chart {
            name: self.place.name(name),
            title: self.place.title(title),
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
}

/// Latency percentiles to the last service at each mode's largest scale.
fn latency_at_largest(ctx: &Ctx<'_, '_>) -> Chart {
    let categories: Vec<String> = ["p50", "p90", "p99", "p99.9"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut series = Vec::new();
    for mode in ctx.modes {
        let largest = ctx
            .rows
            .iter()
            .filter(|r| &r.mode() == mode)
            .filter_map(|r| Some((r.case.services, cases::target_latency(r.case, "last")?)))
            .max_by_key(|(n, _)| *n);
        if let Some((n, l)) = largest {
            series.push((
                format!("{mode} ({n} svc)"),
                vec![Some(l.p50), Some(l.p90), Some(l.p99), Some(l.p999)],
            ));
        }
    }
    Chart {
        name: ctx.place.name("latency_percentiles"),
        title: ctx
            .place
            .title("End-to-end latency to the last service at each mode's largest scale"),
        x_label: "percentile".into(),
        y_label: "us".into(),
        body: Body::Bars(Bars { categories, series }),
        section: Section::Overview,
        caption: "Request latency as a user sees it (coordinated-omission corrected), the \
                  machine's noise included."
            .into(),
    }
}

/// Kernels of one kind of environment side by side, per metric: per mode, at the largest
/// scale every kernel of that kind measured. Kinds never share a chart.
pub(super) fn kernels(rows: &[Row<'_>], envs: &[EnvKey]) -> Vec<Chart> {
    let mut kinds: BTreeMap<&str, Vec<&EnvKey>> = BTreeMap::new();
    for e in envs {
        kinds.entry(e.kind.as_str()).or_default().push(e);
    }
    kinds.retain(|_, e| e.len() > 1);
    let several = kinds.len() > 1;
    let mut out = Vec::new();
    for (kind, envs) in kinds {
        let rows: Vec<Row<'_>> = rows
            .iter()
            .filter(|r| r.env().kind == kind)
            .copied()
            .collect();
        let mut modes: Vec<String> = rows.iter().map(|r| r.mode()).collect();
        modes.sort();
        modes.dedup();
        for mut c in kernel_charts(&rows, &envs, &modes) {
            if several {
                c.name = format!("{}-{}", c.name, slug(kind));
            }
            c.title = format!("{} ({kind})", c.title);
            out.push(c);
        }
    }
    out
}

fn kernel_charts(rows: &[Row<'_>], envs: &[&EnvKey], modes: &[String]) -> Vec<Chart> {
    type Metric = fn(&Case) -> Option<f64>;
    let metrics: [(&str, &str, &str, Metric); 3] = [
        ("kernels_full_sync", "Full sync per kernel", "ms", |c| {
            crate::analysis::cases::full_sync(c).map(|f| f.p50_ms)
        }),
        (
            "kernels_incremental",
            "Slowest incremental update p50 per kernel",
            "ms",
            |c| figures::update(c).map(|u| u.p50_ms),
        ),
        (
            "kernels_lookup_last",
            "SYN transit to the last service per kernel",
            "ns",
            |c| figures::lookup_last(c).map(|e| e.estimate),
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
                let n: Vec<u64> = rows
                    .iter()
                    .filter(|r| &r.env() == *env && &r.mode() == mode && value(r.case).is_some())
                    .map(|r| r.case.services)
                    .collect();
                if n.is_empty() {
                    continue;
                }
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
                        .find(|r| &r.env() == *env && &r.mode() == mode && r.case.services == scale)
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
            title: format!("{title}, largest common scale"),
            x_label: "mode @ services".into(),
            y_label: unit.into(),
            body: Body::Bars(Bars {
                categories,
                series: per_env.into_iter().map(|(e, v)| (e.label(), v)).collect(),
            }),
            section: Section::Overview,
            caption: "Kernels of one kind of environment, p50 side by side; other kinds are charted apart."
                .into(),
        });
    }
    charts
}
