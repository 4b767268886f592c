//! Capacity planning from measured figures that carry intervals, per environment and
//! mode (kube-proxy's profile: what users run):
//!
//! - **Update**: a line through the slowest incremental sync's p50 at each scale, with a
//!   bootstrap interval of its slope ([`stats::bootstrap_slope`]); scales timed fewer
//!   than [`stats::MIN_SAMPLES`] times are left out, having no interval.
//! - **Lookup**: the added first-packet latency of the last of N services, from the
//!   in-kernel transit: `(first position - direct) + ns_per_service x (N - 1) / 1000`
//!   microseconds. End-to-end latency is not used: it is the machine's noise, not the
//!   lookup's cost.
//!
//! A budget's limit is drawn only from a slope the one rule (`stats::trend`) calls "grows", and it
//! carries the interval the slope's gives it. Otherwise the plan says **noise
//! dominates** rather than giving a number. A limit past the largest measured scale is
//! marked as such, past twice it as **extrapolated**. Modes are chosen between only by
//! measurable differences at scales both measured ([`recommend`]).

mod recommend;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::analysis::cases::{self, EnvKey, SyncKind};
use crate::analysis::figures;
use crate::analysis::lookup;
use crate::analysis::stats::{self, SlopeFit};
use crate::results::{Case, Estimate, Results};

pub use crate::analysis::stats::{count, num};
pub use recommend::Recommendation;

/// What a deployment can afford. Defaults: a rule change is programmed within a second,
/// and the lookup adds at most 100 us to a connection's first packet.
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

/// How far a service count lies from what was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// At or below the largest measured scale.
    Measured,
    /// Past it, up to twice it.
    Beyond,
    /// Past twice the largest measured scale: a straight line is a model there.
    Extrapolated,
}

impl Reach {
    pub fn of(services: f64, max_measured: u64) -> Reach {
        let max = max_measured as f64;
        if services <= max {
            Reach::Measured
        } else if services <= 2.0 * max {
            Reach::Beyond
        } else {
            Reach::Extrapolated
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Reach::Measured => "within the measured range",
            Reach::Beyond => "beyond the largest measured scale, within 2x",
            Reach::Extrapolated => "extrapolated: past 2x the largest measured scale",
        }
    }
}

/// Which budget a bound comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Update,
    AddedLatency,
}

impl Metric {
    pub fn describe(self) -> &'static str {
        match self {
            Metric::Update => "incremental update p50",
            Metric::AddedLatency => "added first-packet latency",
        }
    }
}

/// The update line of a mode.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateFit {
    /// The incremental sync fitted: the slowest at the largest scale.
    pub op: &'static str,
    /// Milliseconds against services.
    pub fit: SlopeFit,
    /// Each scale's median with its interval.
    pub points: Vec<(u64, Estimate)>,
    /// The one rule's call on the slope and its margin, ms per service: a tenth of the
    /// smallest scale's median over the measured range of services.
    pub call: (stats::Trend, f64),
}

impl UpdateFit {
    /// "2.00 ms + 500 ms per 1,000 services (95% CI 499..501; 2 scales)", or "noise
    /// dominates: ..." when the one rule does not call the slope "grows".
    pub fn describe(&self) -> String {
        let per_k = stats::scale(self.fit.slope, 1000.0);
        let scales = format!("{} scales", self.points.len());
        let (call, m) = self.call;
        if call == stats::Trend::Grows {
            format!(
                "{}: {} ms + {} per 1,000 services; {scales}",
                self.op,
                num(self.fit.intercept),
                stats::with_ci(&per_k, "ms"),
            )
        } else {
            format!(
                "{}: noise dominates: {} per 1,000 services, {}; {scales}",
                self.op,
                stats::interval(&per_k, "ms"),
                stats::with_margin(call, m * 1000.0, "ms")
            )
        }
    }
}

/// Added first-packet latency to the last of N services, microseconds, from the
/// in-kernel transit.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyModel {
    /// The scale whose pass gave the cost per position (the largest with one).
    pub services: u64,
    /// The first position's SYN transit minus direct's: what any VIP adds.
    pub base_us: Estimate,
    /// `ns_per_service / 1000`.
    pub per_service_us: Estimate,
    /// At each scale: the last position minus direct.
    pub measured: Vec<(u64, Estimate)>,
    /// The cost per position's verdict and margin (ns), as the results record it.
    pub call: (stats::Trend, f64),
}

impl LatencyModel {
    pub fn at(&self, services: f64) -> f64 {
        self.base_us.estimate + self.per_service_us.estimate * (services - 1.0).max(0.0)
    }

    pub fn describe(&self) -> String {
        let per_k = stats::scale(self.per_service_us, 1000.0);
        let (call, m) = self.call;
        let growth = if call == stats::Trend::Grows {
            format!("+ {} per 1,000 services", stats::with_ci(&per_k, "us"))
        } else {
            format!(
                "noise dominates its growth: {} per 1,000 services, {} per position",
                stats::interval(&per_k, "us"),
                stats::with_margin(call, m, "ns")
            )
        };
        format!(
            "{} at the first service, {growth} (transit at {} services)",
            stats::with_ci(&self.base_us, "us"),
            count(self.services as f64)
        )
    }
}

/// What a budget allows a mode.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// Nothing to fit, and why.
    Unfitted(String),
    /// The one rule does not call the growth "grows": no limit is drawn from it.
    NoiseDominates(Estimate),
    /// Over budget already at the smallest measured scale.
    OverBudget(u64),
    /// The line reaches the budget at about `services`, within `ci95`.
    At {
        services: f64,
        ci95: [f64; 2],
        reach: Reach,
    },
}

impl Bound {
    pub fn describe(&self, metric: Metric) -> String {
        match self {
            Bound::Unfitted(why) => why.clone(),
            Bound::NoiseDominates(_) => format!(
                "noise dominates: the {} does not measurably grow, so no limit is drawn",
                metric.describe()
            ),
            Bound::OverBudget(n) => format!(
                "over the {} budget already at {} services",
                metric.describe(),
                count(*n as f64)
            ),
            Bound::At {
                services,
                ci95,
                reach,
            } => format!(
                "{} services (95% CI {}..{}; {})",
                count(*services),
                count(ci95[0]),
                count(ci95[1]),
                reach.describe()
            ),
        }
    }
}

/// One mode in one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ModePlan {
    pub mode: String,
    pub update: Option<UpdateFit>,
    pub latency: Option<LatencyModel>,
    pub update_bound: Bound,
    pub latency_bound: Bound,
    /// The largest measured scale whose measured figures are within budget, interval
    /// included.
    pub largest_measured_ok: Option<u64>,
    pub max_measured: u64,
}

impl ModePlan {
    /// The bound that binds first: a budget already broken, else the smallest limit.
    pub fn binding(&self) -> Option<(Metric, &Bound)> {
        let both = [
            (Metric::Update, &self.update_bound),
            (Metric::AddedLatency, &self.latency_bound),
        ];
        if let Some(over) = both.iter().find(|(_, b)| matches!(b, Bound::OverBudget(_))) {
            return Some(*over);
        }
        both.into_iter()
            .filter_map(|(m, b)| match b {
                Bound::At { services, .. } => Some((m, b, *services)),
                _ => None,
            })
            .min_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(m, b, _)| (m, b))
    }
}

/// Two modes at scales both measured: `b - a` (positive: `a` is better).
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Slowest incremental p50, ms, at the largest scale both timed with samples.
    pub update: Option<(u64, Estimate)>,
    /// SYN transit to the last position, ns, at the largest scale both timed.
    pub lookup: Option<(u64, Estimate)>,
    /// The margins the one rule judges `update` (ms) and `lookup` (ns) by: a tenth of
    /// the lower of the two modes' figures.
    pub margins: [f64; 2],
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnvPlan {
    pub env: EnvKey,
    pub modes: Vec<ModePlan>,
    pub comparisons: Vec<Comparison>,
    pub recommendation: Recommendation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub budgets: Budgets,
    pub envs: Vec<EnvPlan>,
}

/// Plans every environment of the given runs.
pub fn plan(results: &[Results], budgets: Budgets) -> Plan {
    let rows = cases::rows(results);
    let mut groups: BTreeMap<EnvKey, BTreeMap<String, Vec<&Case>>> = BTreeMap::new();
    // What users run: kube-proxy's profile (or results from before profiles). The floor
    // is the kernel's share, shown in the sync sections instead.
    for r in rows.iter().filter(|r| r.ok() && !cases::is_floor(r.case)) {
        groups
            .entry(r.env())
            .or_default()
            .entry(r.mode())
            .or_default()
            .push(r.case);
    }
    let envs = groups
        .into_iter()
        .map(|(env, modes)| {
            let modes: BTreeMap<String, Vec<&Case>> = modes
                .into_iter()
                .map(|(m, mut cs)| {
                    cs.sort_by_key(|c| c.services);
                    // One case per scale: the first (merged runs may repeat one).
                    cs.dedup_by_key(|c| c.services);
                    (m, cs)
                })
                .collect();
            let plans: Vec<ModePlan> = modes
                .iter()
                .map(|(m, cs)| mode_plan(m, cs, budgets))
                .collect();
            let comparisons = compare(&modes);
            let recommendation = recommend::recommend(&plans, &comparisons, budgets);
            EnvPlan {
                env,
                modes: plans,
                comparisons,
                recommendation,
            }
        })
        .collect();
    Plan { budgets, envs }
}

/// The update line: the sync that is slowest at the largest scale, at every scale
/// timed often enough to have an interval.
fn update_fit(cs: &[&Case]) -> Option<UpdateFit> {
    let op = cs.iter().rev().find_map(|c| figures::update(c))?.op;
    let kind = SyncKind::ALL.into_iter().find(|k| k.label() == op)?;
    let with: Vec<(u64, figures::Update<'_>)> = cs
        .iter()
        .filter_map(|c| Some((c.services, figures::update_of(c, kind)?)))
        .filter(|(_, u)| u.median.is_some())
        .collect();
    let groups: Vec<stats::Group<'_>> = with
        .iter()
        .map(|(n, u)| stats::Group {
            block: 0,
            x: *n as f64,
            samples: u.samples_ms,
        })
        .collect();
    let fit = stats::bootstrap_slope(&groups)?;
    let (first, last) = (with.first()?, with.last()?);
    let range = (last.0 - first.0).max(1) as f64;
    let margin = stats::relative_margin(first.1.median?.estimate) / range;
    Some(UpdateFit {
        op,
        call: (stats::growth_trend(&fit.slope, margin), margin),
        fit,
        points: with
            .iter()
            .filter_map(|(n, u)| Some((*n, u.median?)))
            .collect(),
    })
}

fn us(e: Estimate) -> Estimate {
    stats::scale(e, 1e-3)
}

fn latency_model(cs: &[&Case]) -> Option<LatencyModel> {
    let passes: Vec<(u64, lookup::TransitLookup)> = cs
        .iter()
        .filter_map(|c| Some((c.services, lookup::transit(c)?)))
        .collect();
    let (services, largest) = passes.last()?;
    let first = largest.first()?.syn_ns;
    Some(LatencyModel {
        services: *services,
        base_us: us(stats::difference_of_estimates(first, largest.direct?)),
        per_service_us: us(largest.ns_per_service),
        call: lookup::verdict(largest, stats::lookup_margin(None)),
        measured: passes
            .iter()
            .filter_map(|(n, t)| Some((*n, us(t.vip_vs_direct()?))))
            .collect(),
    })
}

/// Where `intercept + slope * x` reaches `budget`, with the interval the slope's gives.
fn reach_budget(budget: f64, intercept: f64, slope: Estimate, max: u64) -> Bound {
    let room = budget - intercept;
    let at = |s: f64| (room / s).max(0.0);
    let services = at(slope.estimate);
    Bound::At {
        services,
        ci95: [at(slope.ci95[1]), at(slope.ci95[0])],
        reach: Reach::of(services, max),
    }
}

fn mode_plan(mode: &str, cs: &[&Case], b: Budgets) -> ModePlan {
    let max_measured = cs.iter().map(|c| c.services).max().unwrap_or(0);
    let update = update_fit(cs);
    let latency = latency_model(cs);
    let update_bound = match &update {
        None => Bound::Unfitted(format!(
            "no line: needs two scales each timed at least {} times",
            stats::MIN_SAMPLES
        )),
        Some(u) => match u.points.first() {
            Some((n, e)) if e.ci95[0] > b.max_update_ms => Bound::OverBudget(*n),
            _ if u.call.0 != stats::Trend::Grows => Bound::NoiseDominates(u.fit.slope),
            _ => reach_budget(b.max_update_ms, u.fit.intercept, u.fit.slope, max_measured),
        },
    };
    let latency_bound = match &latency {
        None => Bound::Unfitted(format!(
            "lookup not timed in the kernel: {}",
            cs.last()
                .map(|c| lookup::transit_missing(c))
                .unwrap_or_default()
        )),
        Some(l) => match l.measured.first() {
            Some((n, e)) if e.ci95[0] > b.max_added_latency_us => Bound::OverBudget(*n),
            _ if l.call.0 != stats::Trend::Grows => Bound::NoiseDominates(l.per_service_us),
            // Position N - 1 is the last of N services.
            _ => match reach_budget(
                b.max_added_latency_us,
                l.base_us.estimate,
                l.per_service_us,
                max_measured,
            ) {
                Bound::At { services, ci95, .. } => Bound::At {
                    services: services + 1.0,
                    ci95: [ci95[0] + 1.0, ci95[1] + 1.0],
                    reach: Reach::of(services + 1.0, max_measured),
                },
                other => other,
            },
        },
    };
    // Measured figures with intervals, whether or not a line could be fitted.
    let within = |c: &Case| {
        let u = figures::update(c).and_then(|u| u.median);
        let l = lookup::transit(c).and_then(|t| t.vip_vs_direct()).map(us);
        (u.is_some() || l.is_some())
            && u.is_none_or(|e| e.ci95[1] <= b.max_update_ms)
            && l.is_none_or(|e| e.ci95[1] <= b.max_added_latency_us)
    };
    ModePlan {
        mode: mode.to_string(),
        largest_measured_ok: cs.iter().filter(|c| within(c)).map(|c| c.services).max(),
        update,
        latency,
        update_bound,
        latency_bound,
        max_measured,
    }
}

/// A figure's difference between two cases, with the lower of the two figures.
type Differ = dyn Fn(&Case, &Case) -> Option<(Estimate, f64)>;

/// Every pair of modes, on the largest scale both measured each figure at.
fn compare(modes: &BTreeMap<String, Vec<&Case>>) -> Vec<Comparison> {
    let list: Vec<(&String, &Vec<&Case>)> = modes.iter().collect();
    let mut out = Vec::new();
    for (i, (a, ca)) in list.iter().enumerate() {
        for (b, cb) in &list[i + 1..] {
            // Each figure's difference with the lower of the two figures it is of.
            let common = |f: &Differ| {
                ca.iter().rev().find_map(|x| {
                    let y = cb.iter().find(|y| y.services == x.services)?;
                    Some((x.services, f(x, y)?))
                })
            };
            let update = common(&|x, y| {
                let (ux, uy) = (figures::update(x)?, figures::update(y)?);
                let d = stats::median_difference(uy.samples_ms, ux.samples_ms)?;
                Some((d, ux.p50_ms.min(uy.p50_ms)))
            });
            let lookup = common(&|x, y| {
                let (lx, ly) = (figures::lookup_last(x)?, figures::lookup_last(y)?);
                Some((
                    stats::difference_of_estimates(ly, lx),
                    lx.estimate.min(ly.estimate),
                ))
            });
            let margin = |f: Option<(u64, (Estimate, f64))>| {
                f.map_or(0.0, |(_, (_, base))| stats::relative_margin(base))
            };
            let strip = |f: Option<(u64, (Estimate, f64))>| f.map(|(n, (e, _))| (n, e));
            out.push(Comparison {
                a: a.to_string(),
                b: b.to_string(),
                margins: [margin(update), margin(lookup)],
                update: strip(update),
                lookup: strip(lookup),
            });
        }
    }
    out
}
