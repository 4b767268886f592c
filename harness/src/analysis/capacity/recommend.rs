//! The plan's recommendation. A mode is chosen only when, against every other mode, it
//! is better on at least one figure (update or lookup, at a scale both measured) and
//! worse on none, by the one rule ([`stats::trend`], margin a tenth of the lower of the
//! two figures). Otherwise the plan says why there is no choice: a trade-off (each
//! better at something), or noise dominates (no difference is measurable). How far the
//! chosen mode scales is stated only from a slope the rule calls "grows".

use super::{count, num, Bound, Budgets, Comparison, Metric, ModePlan};
use crate::analysis::stats;

/// The plan's advice for one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The mode chosen; `None` when nothing measurable supports a choice.
    pub choice: Option<String>,
    pub text: String,
}

/// `other - mode` on each figure (positive: `mode` is better), with the scale.
fn against<'c>(mode: &str, c: &'c Comparison) -> Option<(&'c str, Figures)> {
    let flip =
        |f: Option<(u64, crate::results::Estimate)>| f.map(|(n, e)| (n, stats::scale(e, -1.0)));
    if c.a == mode {
        Some((
            &c.b,
            Figures {
                update: c.update,
                lookup: c.lookup,
                margins: c.margins,
            },
        ))
    } else if c.b == mode {
        Some((
            &c.a,
            Figures {
                update: flip(c.update),
                lookup: flip(c.lookup),
                margins: c.margins,
            },
        ))
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    update: Option<(u64, crate::results::Estimate)>,
    lookup: Option<(u64, crate::results::Estimate)>,
    /// The margins of `update` and `lookup` ([`Comparison::margins`]).
    margins: [f64; 2],
}

impl Figures {
    /// Each figure's difference and the one rule's call on it with its margin.
    fn calls(&self) -> impl Iterator<Item = stats::Trend> + '_ {
        [self.update, self.lookup]
            .into_iter()
            .zip(self.margins)
            .filter_map(|(f, m)| Some(stats::trend(&f?.1, m, stats::Forbidden::Neither)))
    }

    fn better(&self) -> bool {
        self.calls().any(|t| t == stats::Trend::Grows)
    }

    fn worse(&self) -> bool {
        self.calls().any(|t| t == stats::Trend::Shrinks)
    }
}

/// Whether `mode` beats every other mode measurably.
fn wins(mode: &str, comparisons: &[Comparison]) -> bool {
    comparisons
        .iter()
        .filter_map(|c| against(mode, c))
        .all(|(_, f)| f.better() && !f.worse())
}

/// "updates faster than iptables by 132 ms (95% CI ...) at 1,000 services".
fn reasons(mode: &str, comparisons: &[Comparison]) -> Vec<String> {
    let mut out = Vec::new();
    for (other, f) in comparisons.iter().filter_map(|c| against(mode, c)) {
        for (what, unit, fig, m) in [
            ("updates faster than", "ms", f.update, f.margins[0]),
            ("looks up cheaper than", "ns", f.lookup, f.margins[1]),
        ] {
            let grows = |e: &crate::results::Estimate| {
                stats::trend(e, m, stats::Forbidden::Neither) == stats::Trend::Grows
            };
            if let Some((n, e)) = fig.filter(|(_, e)| grows(e)) {
                out.push(format!(
                    "at {} services it {what} {other} by {} (margin ±{} {unit})",
                    count(n as f64),
                    stats::difference(&e, unit).trim_start_matches('+'),
                    num(m)
                ));
            }
        }
    }
    out
}

/// Every pair's differences in words, for a plan that cannot choose.
fn pairs(comparisons: &[Comparison]) -> Vec<String> {
    comparisons
        .iter()
        .map(|c| {
            let mut parts = Vec::new();
            for (what, unit, fig, m) in [
                ("update", "ms", c.update, c.margins[0]),
                ("lookup", "ns", c.lookup, c.margins[1]),
            ] {
                if let Some((n, e)) = fig {
                    parts.push(format!(
                        "{what} at {} services {}, {}",
                        count(n as f64),
                        stats::difference(&e, unit),
                        stats::with_margin(stats::trend(&e, m, stats::Forbidden::Neither), m, unit)
                    ));
                }
            }
            if parts.is_empty() {
                parts.push("no scale where both have figures with intervals".into());
            }
            format!("{} minus {}: {}", c.b, c.a, parts.join(", "))
        })
        .collect()
}

/// How far a mode goes within the budgets, stated only from measurable growth.
fn scope(p: &ModePlan) -> String {
    let noisy: Vec<String> = [
        (Metric::Update, &p.update_bound),
        (Metric::AddedLatency, &p.latency_bound),
    ]
    .into_iter()
    .filter_map(|(m, b)| match b {
        Bound::NoiseDominates(slope) => Some(format!(
            "the {} ({} per 1,000 services)",
            m.describe(),
            stats::interval(
                &stats::scale(*slope, 1000.0),
                if m == Metric::Update { "ms" } else { "us" }
            )
        )),
        _ => None,
    })
    .collect();
    let mut parts = Vec::new();
    match p.binding() {
        Some((m, b @ Bound::OverBudget(_))) => parts.push(format!("it is {}", b.describe(m))),
        Some((m, b)) => parts.push(format!(
            "it stays within the budgets up to about {}, bound by the {}",
            b.describe(m),
            m.describe()
        )),
        None if !noisy.is_empty() => {
            parts.push("how far it scales is not known from this run".to_string())
        }
        None => {}
    }
    if !noisy.is_empty() {
        parts.push(format!(
            "noise dominates the growth of {}, so no limit is drawn from it",
            noisy.join(" and ")
        ));
    }
    for (m, b) in [
        (Metric::Update, &p.update_bound),
        (Metric::AddedLatency, &p.latency_bound),
    ] {
        if let Bound::Unfitted(why) = b {
            parts.push(format!("the {} budget is unchecked ({why})", m.describe()));
        }
    }
    parts.join("; ")
}

pub(super) fn recommend(
    modes: &[ModePlan],
    comparisons: &[Comparison],
    b: Budgets,
) -> Recommendation {
    let budgets = format!(
        "Budgets: incremental update p50 <= {} ms, added first-packet latency <= {} us.",
        num(b.max_update_ms),
        num(b.max_added_latency_us)
    );
    let text = |s: String| format!("{budgets} {s}");
    match modes {
        [] => {
            return Recommendation {
                choice: None,
                text: text("No successful cases to plan from.".into()),
            }
        }
        [only] => {
            return Recommendation {
                choice: None,
                text: text(format!(
                    "Only {} ran here: nothing to choose between; {}.",
                    only.mode,
                    scope(only)
                )),
            }
        }
        _ => {}
    }
    if let Some(w) = modes.iter().find(|m| wins(&m.mode, comparisons)) {
        let over = matches!(w.binding(), Some((_, Bound::OverBudget(_))));
        let lead = if over {
            format!(
                "No mode stays within the budgets at the measured scales; the best is {}",
                w.mode
            )
        } else {
            format!("Choose {}", w.mode)
        };
        return Recommendation {
            choice: Some(w.mode.clone()),
            text: text(format!(
                "{lead}: {}. {}.",
                reasons(&w.mode, comparisons).join("; "),
                capitalize(&scope(w))
            )),
        };
    }
    let directions: Vec<Figures> = comparisons
        .iter()
        .filter_map(|c| against(&c.a, c).map(|(_, f)| f))
        .collect();
    let s = if directions.iter().any(|f| f.better() && f.worse()) {
        format!(
            "No single choice: one mode is measurably better at one figure and worse at \
             the other, so the budget that binds decides. {}.",
            pairs(comparisons).join("; ")
        )
    } else if directions.iter().any(|f| f.better() || f.worse()) {
        format!(
            "No mode is measurably better than every other. {}.",
            pairs(comparisons).join("; ")
        )
    } else {
        format!(
            "Noise dominates: no mode is measurably better than another, so there is \
             nothing to choose from. {}. More samples or larger scales are needed to tell \
             them apart.",
            pairs(comparisons).join("; ")
        )
    };
    Recommendation {
        choice: None,
        text: text(s),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
