//! Capacity planning from measured data: per environment and mode, least-squares lines of
//! the slowest incremental update (p50, ms) and of the latency the dataplane adds (p99 to
//! the last service minus p99 direct, us) against the number of services; the largest
//! service count within [`Budgets`]; where one mode overtakes another; and a plain
//! recommendation that cites the numbers it rests on. Anything past the largest measured
//! scale is marked extrapolated: a straight line is a model, not a measurement.

use std::collections::BTreeMap;

use crate::analysis::cases::{self, EnvKey, Row};
use crate::results::Results;

/// What a deployment can afford. Defaults: a rule change is programmed within a second,
/// and the dataplane adds at most 100 us at p99.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budgets {
    pub max_update_ms: f64,
    pub max_added_latency_us: f64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            max_update_ms: 1000.0,
            max_added_latency_us: 100.0,
        }
    }
}

/// y = intercept + slope * services, fitted by least squares.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub intercept: f64,
    /// Growth per added service.
    pub slope: f64,
    /// The measured points (services, value), sorted by services.
    pub points: Vec<(f64, f64)>,
}

impl Fit {
    /// Least squares over points; None with fewer than two distinct service counts.
    pub fn new(mut points: Vec<(f64, f64)>) -> Option<Fit> {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = points.len() as f64;
        let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        if points.len() < 2 || sxx == 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        Some(Fit {
            intercept: my - slope * mx,
            slope,
            points,
        })
    }

    pub fn at(&self, services: f64) -> f64 {
        self.intercept + self.slope * services
    }

    pub fn max_measured(&self) -> f64 {
        self.points.last().map(|p| p.0).unwrap_or(0.0)
    }

    /// "12.0 ms + 4.56 ms per 1,000 services (3 scales)"; a falling line is called out,
    /// since more services never make a dataplane faster: noise dominates it.
    pub fn describe(&self, unit: &str) -> String {
        let per_k = self.slope * 1000.0;
        let mut s = format!(
            "{} {unit} {} {} {unit} per 1,000 services ({} scales",
            num(self.intercept),
            if per_k < 0.0 { "\u{2212}" } else { "+" },
            num(per_k.abs()),
            self.points.len()
        );
        if per_k < 0.0 {
            s.push_str("; falls with services: noise dominates");
        }
        s.push(')');
        s
    }

    /// "grows 4.56 ms" or "falls 605 ms" (per 1,000 services).
    fn trend(&self, unit: &str) -> String {
        let per_k = self.slope * 1000.0;
        let verb = if per_k < 0.0 { "falls" } else { "grows" };
        format!("{verb} {} {unit} per 1,000 services", num(per_k.abs()))
    }

    pub fn min_measured(&self) -> f64 {
        self.points.first().map(|p| p.0).unwrap_or(0.0)
    }

    /// The service count where the line reaches `budget`; None when it never does.
    /// 0 when even an empty table is over budget.
    pub fn reaches(&self, budget: f64) -> Option<f64> {
        if self.slope <= 0.0 {
            return (self.intercept > budget).then_some(0.0);
        }
        Some(((budget - self.intercept) / self.slope).max(0.0))
    }
}

/// Which budget a limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Update,
    AddedLatency,
}

impl Metric {
    pub fn describe(self) -> &'static str {
        match self {
            Metric::Update => "incremental update p50",
            Metric::AddedLatency => "added p99 latency",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::Update => "ms",
            Metric::AddedLatency => "us",
        }
    }
}

/// The largest number of services within the budgets, and which budget binds first.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// Neither fitted line reaches its budget (flat or falling).
    Unbounded,
    At {
        services: f64,
        binding: Metric,
        /// Past the largest measured scale.
        extrapolated: bool,
    },
}

/// One mode in one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ModePlan {
    pub mode: String,
    pub update: Option<Fit>,
    pub added_latency: Option<Fit>,
    /// The largest measured scale where every measured budget metric was within budget.
    pub largest_measured_ok: Option<u64>,
    pub max_measured: u64,
    /// None when no metric could be fitted (a single scale, or no data).
    pub limit: Option<Limit>,
}

/// Beyond `services`, `winner` is better than `loser` on `metric` (by the fitted lines).
#[derive(Debug, Clone, PartialEq)]
pub struct Crossover {
    pub metric: Metric,
    pub services: f64,
    pub winner: String,
    pub loser: String,
    pub extrapolated: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnvPlan {
    pub env: EnvKey,
    pub modes: Vec<ModePlan>,
    pub crossovers: Vec<Crossover>,
    pub recommendation: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub budgets: Budgets,
    pub envs: Vec<EnvPlan>,
}

/// Plans every environment of the given runs.
pub fn plan(results: &[Results], budgets: Budgets) -> Plan {
    let rows = cases::rows(results);
    let mut groups: BTreeMap<EnvKey, BTreeMap<String, Vec<Row<'_>>>> = BTreeMap::new();
    // The plan is about what users run: kube-proxy's profile (or results from before
    // profiles). The floor is the kernel's share, shown in the sync breakdown instead.
    for r in rows.iter().filter(|r| r.ok() && !cases::is_floor(r.case)) {
        groups
            .entry(r.env())
            .or_default()
            .entry(r.mode())
            .or_default()
            .push(*r);
    }
    let envs = groups
        .into_iter()
        .map(|(env, modes)| {
            let modes: Vec<ModePlan> = modes
                .into_iter()
                .map(|(mode, rows)| mode_plan(mode, &rows, budgets))
                .collect();
            let crossovers = crossovers(&modes);
            let recommendation = recommend(&modes, &crossovers, budgets);
            EnvPlan {
                env,
                modes,
                crossovers,
                recommendation,
            }
        })
        .collect();
    Plan { budgets, envs }
}

fn mode_plan(mode: String, rows: &[Row<'_>], b: Budgets) -> ModePlan {
    let update_pts: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.case.services as f64,
                cases::slowest_incremental(r.case)?.1.p50_ms,
            ))
        })
        .collect();
    let latency_pts: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.case.services as f64, cases::added_p99_us(r.case)?)))
        .collect();
    let largest_measured_ok = rows
        .iter()
        .filter(|r| {
            let u = cases::slowest_incremental(r.case).map(|d| d.1.p50_ms);
            let l = cases::added_p99_us(r.case);
            (u.is_some() || l.is_some())
                && u.is_none_or(|u| u <= b.max_update_ms)
                && l.is_none_or(|l| l <= b.max_added_latency_us)
        })
        .map(|r| r.case.services)
        .max();
    let max_measured = rows.iter().map(|r| r.case.services).max().unwrap_or(0);
    let update = Fit::new(update_pts);
    let added_latency = Fit::new(latency_pts);
    let limits: Vec<(Metric, Option<f64>)> = [
        (Metric::Update, update.as_ref(), b.max_update_ms),
        (
            Metric::AddedLatency,
            added_latency.as_ref(),
            b.max_added_latency_us,
        ),
    ]
    .into_iter()
    .filter_map(|(m, f, budget)| f.map(|f| (m, f.reaches(budget))))
    .collect();
    let limit = if limits.is_empty() {
        None
    } else {
        Some(
            limits
                .iter()
                .filter_map(|(m, at)| at.map(|s| (*m, s)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(binding, services)| Limit::At {
                    services,
                    binding,
                    extrapolated: services > max_measured as f64,
                })
                .unwrap_or(Limit::Unbounded),
        )
    };
    ModePlan {
        mode,
        update,
        added_latency,
        largest_measured_ok,
        max_measured,
        limit,
    }
}

fn crossovers(modes: &[ModePlan]) -> Vec<Crossover> {
    let mut out = Vec::new();
    for (i, a) in modes.iter().enumerate() {
        for b in &modes[i + 1..] {
            let pairs = [
                (Metric::Update, a.update.as_ref(), b.update.as_ref()),
                (
                    Metric::AddedLatency,
                    a.added_latency.as_ref(),
                    b.added_latency.as_ref(),
                ),
            ];
            for (metric, fa, fb) in pairs {
                let (Some(fa), Some(fb)) = (fa, fb) else {
                    continue;
                };
                if fa.slope == fb.slope {
                    continue;
                }
                let n = (fb.intercept - fa.intercept) / (fa.slope - fb.slope);
                if n <= 0.0 {
                    continue;
                }
                // Past the crossing, the flatter line is lower.
                let (winner, loser) = if fa.slope < fb.slope { (a, b) } else { (b, a) };
                out.push(Crossover {
                    metric,
                    services: n,
                    winner: winner.mode.clone(),
                    loser: loser.mode.clone(),
                    // Outside the scales both modes measured, the crossing is a model's.
                    extrapolated: n > fa.max_measured().min(fb.max_measured())
                        || n < fa.min_measured().max(fb.min_measured()),
                });
            }
        }
    }
    out
}

/// A service count for prose: whole numbers with thousands separators.
pub fn count(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with three significant digits, for prose.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The limit in words: "1,996 services (extrapolated, bound by incremental update p50)".
pub fn describe_limit(l: &Limit) -> String {
    match l {
        Limit::Unbounded => "no limit in sight: neither fitted line grows".into(),
        Limit::At {
            services, binding, ..
        } if *services <= 0.0 => format!(
            "no service count: the {} line starts over budget",
            binding.describe()
        ),
        Limit::At {
            services,
            binding,
            extrapolated,
        } => format!(
            "{} services ({}, bound by {})",
            count(*services),
            if *extrapolated {
                "extrapolated"
            } else {
                "within the measured range"
            },
            binding.describe()
        ),
    }
}

fn limit_value(p: &ModePlan) -> f64 {
    match p.limit {
        Some(Limit::Unbounded) => f64::INFINITY,
        Some(Limit::At { services, .. }) => services,
        None => p.largest_measured_ok.map(|n| n as f64).unwrap_or(-1.0),
    }
}

fn recommend(modes: &[ModePlan], crossovers: &[Crossover], b: Budgets) -> String {
    let Some(best) = modes.iter().max_by(|x, y| {
        limit_value(x)
            .total_cmp(&limit_value(y))
            // Ties (e.g. two unbounded modes): the faster update at the largest scale wins.
            .then_with(|| {
                let at = |p: &ModePlan| {
                    p.update
                        .as_ref()
                        .map(|f| -f.at(p.max_measured as f64))
                        .unwrap_or(f64::NEG_INFINITY)
                };
                at(x).total_cmp(&at(y))
            })
    }) else {
        return "no successful cases to plan from".into();
    };
    let mut s = format!(
        "Budgets: incremental update <= {} ms, added p99 latency <= {} us. ",
        num(b.max_update_ms),
        num(b.max_added_latency_us)
    );
    let within = limit_value(best) > 0.0;
    if within {
        s.push_str(&format!("Choose {}", best.mode));
    } else {
        s.push_str(&format!(
            "No mode stays within the budgets at any measured scale; the closest is {}",
            best.mode
        ));
    }
    match &best.limit {
        Some(l) if within => s.push_str(&format!(
            ": it stays within budget up to {}",
            describe_limit(l)
        )),
        Some(l) => s.push_str(&format!(": {}", describe_limit(l))),
        None => s.push_str(&format!(
            ": only one scale was measured ({} services), too few to fit a trend",
            count(best.max_measured as f64)
        )),
    }
    if let Some(f) = &best.update {
        s.push_str(&format!(
            "; its incremental update p50 {} ({} ms at {} services measured)",
            f.trend("ms"),
            num(f.points.last().map(|p| p.1).unwrap_or(0.0)),
            count(f.max_measured())
        ));
    }
    if let Some(f) = &best.added_latency {
        s.push_str(&format!("; its added p99 latency {}", f.trend("us")));
    } else {
        s.push_str("; the data path was not measured, so the latency budget is unchecked");
    }
    s.push('.');
    for other in modes.iter().filter(|m| m.mode != best.mode) {
        if let Some(l) = &other.limit {
            let up_to = if limit_value(other) > 0.0 {
                "up to "
            } else {
                ""
            };
            s.push_str(&format!(" {}: {up_to}{}.", other.mode, describe_limit(l)));
        }
    }
    for c in crossovers.iter().filter(|c| c.metric == Metric::Update) {
        s.push_str(&format!(
            " Past {} services{} {} updates faster than {}.",
            count(c.services),
            if c.extrapolated {
                " (extrapolated)"
            } else {
                ""
            },
            c.winner,
            c.loser
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, results};

    #[test]
    fn least_squares_is_exact_on_a_line() {
        let f = Fit::new(vec![(300.0, 152.0), (100.0, 52.0), (200.0, 102.0)]).unwrap();
        assert_eq!(f.slope, 0.5);
        assert_eq!(f.intercept, 2.0);
        assert_eq!(f.at(1000.0), 502.0);
        assert_eq!(f.reaches(1000.0), Some(1996.0));
        assert_eq!(f.max_measured(), 300.0);
        assert!(Fit::new(vec![(100.0, 1.0)]).is_none());
        assert!(Fit::new(vec![(100.0, 1.0), (100.0, 2.0)]).is_none());
    }

    #[test]
    fn fits_describe_themselves() {
        let up = Fit::new(vec![(100.0, 52.0), (300.0, 152.0)]).unwrap();
        assert_eq!(
            up.describe("ms"),
            "2.00 ms + 500 ms per 1,000 services (2 scales)"
        );
        let down = Fit::new(vec![(100.0, 152.0), (300.0, 52.0)]).unwrap();
        assert_eq!(
            down.describe("ms"),
            "202 ms \u{2212} 500 ms per 1,000 services (2 scales; falls with services: noise dominates)"
        );
        assert_eq!(down.trend("ms"), "falls 500 ms per 1,000 services");
        let over = Limit::At {
            services: 0.0,
            binding: Metric::AddedLatency,
            extrapolated: false,
        };
        assert_eq!(
            describe_limit(&over),
            "no service count: the added p99 latency line starts over budget"
        );
    }

    #[test]
    fn nothing_within_budget_says_so() {
        let b = Budgets {
            max_update_ms: 1.0,
            max_added_latency_us: 1.0,
        };
        let r = &plan(&[two_modes()], b).envs[0].recommendation;
        assert!(
            r.contains("No mode stays within the budgets at any measured scale"),
            "{r}"
        );
        assert!(!r.contains("Choose"), "{r}");
    }

    #[test]
    fn flat_lines_never_reach_a_budget_above_them() {
        let f = Fit::new(vec![(100.0, 5.0), (300.0, 5.0)]).unwrap();
        assert_eq!(f.reaches(1000.0), None);
        assert_eq!(f.reaches(1.0), Some(0.0));
    }

    fn two_modes() -> Results {
        // iptables: update 2 + 0.5 ms/svc, added latency 10 + 0.05 us/svc.
        // nftables: update 20 + 0.05 ms/svc, added latency 5 us flat.
        results(
            "6.18.0",
            vec![
                case("iptables", 100, 50.0, 52.0, 15.0),
                case("iptables", 300, 150.0, 152.0, 25.0),
                case("nftables", 100, 40.0, 25.0, 5.0),
                case("nftables", 300, 60.0, 35.0, 5.0),
            ],
        )
    }

    #[test]
    fn limits_crossovers_and_recommendation_from_known_lines() {
        let p = plan(&[two_modes()], Budgets::default());
        assert_eq!(p.envs.len(), 1);
        let e = &p.envs[0];
        assert_eq!(e.env.label(), "host 6.18.0");
        let ipt = &e.modes[0];
        assert_eq!(ipt.mode, "iptables");
        let u = ipt.update.as_ref().unwrap();
        assert_eq!((u.slope, u.intercept), (0.5, 2.0));
        assert_eq!(u.reaches(1000.0), Some(1996.0));
        let l = ipt.added_latency.as_ref().unwrap();
        assert!((l.slope - 0.05).abs() < 1e-12 && (l.intercept - 10.0).abs() < 1e-9);
        // Latency: 10 + 0.05 N <= 100 -> N = 1800; update: (1000 - 2) / 0.5 = 1996.
        match ipt.limit.as_ref().unwrap() {
            Limit::At {
                services,
                binding,
                extrapolated,
            } => {
                assert!((services - 1800.0).abs() < 1e-6, "{services}");
                assert_eq!(*binding, Metric::AddedLatency);
                assert!(*extrapolated);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ipt.largest_measured_ok, Some(300));
        let nft = &e.modes[1];
        // nftables: update 20 + 0.05 N <= 1000 -> N = 19600; latency flat.
        match nft.limit.as_ref().unwrap() {
            Limit::At {
                services, binding, ..
            } => {
                assert!((services - 19600.0).abs() < 1e-6, "{services}");
                assert_eq!(*binding, Metric::Update);
            }
            other => panic!("{other:?}"),
        }
        // Update lines cross at 2 + 0.5 N = 20 + 0.05 N -> N = 40, below the smallest scale.
        let c = e
            .crossovers
            .iter()
            .find(|c| c.metric == Metric::Update)
            .unwrap();
        assert!((c.services - 40.0).abs() < 1e-9, "{}", c.services);
        assert_eq!(
            (c.winner.as_str(), c.loser.as_str()),
            ("nftables", "iptables")
        );
        assert!(c.extrapolated);
        let r = &e.recommendation;
        assert!(r.contains("Choose nftables"), "{r}");
        assert!(r.contains("19,600 services (extrapolated"), "{r}");
        assert!(
            r.contains("iptables: up to 1,800 services (extrapolated, bound by added p99 latency)"),
            "{r}"
        );
        assert!(r.contains("grows 50.0 ms per 1,000 services"), "{r}");
    }

    #[test]
    fn tighter_budgets_move_the_limit_into_the_measured_range() {
        let b = Budgets {
            max_update_ms: 100.0,
            max_added_latency_us: 1000.0,
        };
        let p = plan(&[two_modes()], b);
        let ipt = &p.envs[0].modes[0];
        // (100 - 2) / 0.5 = 196, below the 300 measured.
        match ipt.limit.as_ref().unwrap() {
            Limit::At {
                services,
                extrapolated,
                ..
            } => {
                assert_eq!(*services, 196.0);
                assert!(!extrapolated);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ipt.largest_measured_ok, Some(100));
    }

    #[test]
    fn one_scale_and_no_data_path_still_plan() {
        let mut c = case("iptables", 100, 50.0, 52.0, 15.0);
        c.datapath = None;
        let p = plan(&[results("6.1", vec![c])], Budgets::default());
        let m = &p.envs[0].modes[0];
        assert!(m.limit.is_none());
        assert_eq!(m.largest_measured_ok, Some(100));
        let r = &p.envs[0].recommendation;
        assert!(
            r.contains("only one scale was measured (100 services)"),
            "{r}"
        );
        assert!(plan(&[], Budgets::default()).envs.is_empty());
    }

    #[test]
    fn counts_and_numbers_read_well() {
        assert_eq!(count(1234567.4), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(num(0.01234), "0.012");
        assert_eq!(num(12.345), "12.3");
        assert_eq!(num(1234.5), "1234");
    }
}
