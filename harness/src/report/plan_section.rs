//! "Capacity planning": the plan of [`crate::analysis::capacity`], per environment.

use std::fmt::Write;

use crate::analysis::capacity::{self, Bound, Metric, Plan};

use super::markup::escape;

pub(super) fn capacity(h: &mut String, plan: &Plan) {
    let b = plan.budgets;
    let _ = writeln!(
        h,
        "<h2 id=\"capacity\">Capacity planning</h2>\n<p>Budgets: incremental update (the \
         slowest of add, remove and update-endpoints, p50) &le; {} ms; added first-packet \
         latency (the SYN's in-kernel transit to the last service minus direct) &le; {} us. \
         The update line is a least-squares fit through each scale's median, its slope with \
         a bootstrap 95% interval (within one run); scales timed fewer than {} times are left out. The \
         latency is the transit at the first service plus the fitted cost per service \
         position; end-to-end latency is not used (it is mostly the machine's noise). A \
         limit is drawn only from a slope the one three-way rule calls <em>grows</em> \
         against its margin, else <em>noise dominates</em>; limits past the largest \
         measured scale are marked, past twice it <em>extrapolated</em>. Modes are chosen \
         between only by differences the same rule calls beyond a margin of a tenth of the \
         lower figure, at scales both measured.</p>",
        capacity::num(b.max_update_ms),
        capacity::num(b.max_added_latency_us),
        crate::analysis::stats::MIN_SAMPLES
    );
    if plan.envs.is_empty() {
        h.push_str("<p>No successful cases to plan from.</p>\n");
    }
    for e in &plan.envs {
        let _ = writeln!(
            h,
            "<h3>{}</h3>\n<div class=\"scroll\"><table>\n<tr><th class=\"l\">mode</th><th class=\"l\">incremental update p50</th><th class=\"l\">added first-packet latency</th><th>largest measured within budget</th><th>largest measured</th><th class=\"l\">update budget reached at</th><th class=\"l\">latency budget reached at</th></tr>",
            escape(&e.env.label())
        );
        for m in &e.modes {
            let _ = writeln!(
                h,
                "<tr><td class=\"l nw\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                escape(&m.mode),
                m.update
                    .as_ref()
                    .map(|u| escape(&u.describe()))
                    .unwrap_or_else(|| "&ndash;".into()),
                m.latency
                    .as_ref()
                    .map(|l| escape(&l.describe()))
                    .unwrap_or_else(|| "&ndash;".into()),
                m.largest_measured_ok
                    .map(|n| capacity::count(n as f64))
                    .unwrap_or_else(|| "none".into()),
                capacity::count(m.max_measured as f64),
                bound(&m.update_bound, Metric::Update),
                bound(&m.latency_bound, Metric::AddedLatency),
            );
        }
        h.push_str("</table></div>\n");
        let _ = writeln!(h, "<p class=\"rec\">{}</p>", escape(&e.recommendation.text));
    }
}

fn bound(b: &Bound, m: Metric) -> String {
    let text = escape(&b.describe(m));
    match b {
        Bound::At { .. } | Bound::OverBudget(_) => text,
        _ => format!("<em>{text}</em>"),
    }
}
