//! "Published figures beside ours": each published experiment (`scenarios/published.json`)
//! with its figures and setup, kpbench's measurement of the same quantity in one
//! environment, the one rule's verdict on the shape, and what differs. Omitted when no
//! case ran in an entry's range of scales.

use std::fmt::Write;

use crate::analysis::published::{self, Compared, Measured, Point};
use crate::analysis::stats;
use crate::results::Results;

use super::markup::escape;

fn figure_cell(p: &Point) -> String {
    let fig = match p.figure {
        Some(e) => stats::with_ci(&e, p.unit),
        None => "not measured".into(),
    };
    let verdict = p
        .verdict
        .map(|(t, m)| format!(", {}", stats::with_margin(t, m, "ns")))
        .unwrap_or_default();
    let note = if p.note.is_empty() {
        String::new()
    } else {
        format!(" <span class=\"sub\">({})</span>", escape(&p.note))
    };
    format!(
        "{}: {}{}{note}",
        stats::count(p.services as f64),
        escape(&fig),
        escape(&verdict)
    )
}

fn measured_row(h: &mut String, shape: &published::Shape, m: &Measured) {
    let points: Vec<String> = m.points.iter().map(figure_cell).collect();
    let expect = match &shape.versus {
        Some(v) => format!("{} minus {v}: {}", shape.mode, shape.expect.label()),
        None => shape.expect.label().to_string(),
    };
    let _ = writeln!(
        h,
        "<tr><td class=\"l\">{} <span class=\"sub\">({})</span></td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\"><strong>{}</strong></td></tr>",
        escape(&expect),
        escape(&shape.words),
        escape(&m.mode),
        points.join("<br>"),
        escape(&m.evidence),
        escape(m.agreement.map_or("not judged", |a| a.label()))
    );
}

fn entry(h: &mut String, c: &Compared<'_>) {
    let e = c.entry;
    let _ = writeln!(
        h,
        "<h3>{} <span class=\"sub\">({}, {}): {}</span></h3>\n<p>Source: <code>{}</code>. {} \
         Statistic: {}.{}</p>",
        escape(&e.source.title),
        escape(&e.source.org),
        escape(&e.source.date),
        escape(&c.env.label()),
        // The address as text: the report links to nothing outside itself.
        escape(
            e.source
                .url
                .trim_start_matches("https://")
                .trim_start_matches("http://")
        ),
        escape(&e.setup),
        escape(&e.statistic),
        e.caveat
            .as_deref()
            .map(|c| format!(" <em>{}</em>", escape(c)))
            .unwrap_or_default()
    );
    h.push_str("<div class=\"scroll\"><table>\n<tr><th class=\"l\">published: mode</th><th>services</th><th class=\"l\">figure</th><th class=\"l\">source's words</th></tr>\n");
    for f in &e.figures {
        let value = match f.value {
            Some(v) => format!("{} {}", stats::num(v), f.unit),
            None => "in words only".into(),
        };
        let stat = f
            .statistic
            .as_deref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}{}</td><td class=\"l\">{}</td></tr>",
            escape(&f.mode),
            stats::count(f.services as f64),
            escape(&value),
            escape(&stat),
            escape(&f.quote)
        );
    }
    h.push_str("</table></div>\n");
    let _ = writeln!(
        h,
        "<p>kpbench's measurement of the same quantity: {}.</p>",
        escape(e.quantity.kpbench_words())
    );
    h.push_str("<div class=\"scroll\"><table>\n<tr><th class=\"l\">published shape</th><th class=\"l\">kpbench mode</th><th class=\"l\">kpbench, per scale</th><th class=\"l\">kpbench's verdict</th><th class=\"l\">shape</th></tr>\n");
    for (shape, ms) in &c.shapes {
        if ms.is_empty() {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{} ({})</td><td class=\"l\">{}</td><td class=\"l\">not run in this environment</td><td class=\"l\">-</td><td class=\"l\">not judged</td></tr>",
                escape(shape.expect.label()),
                escape(&shape.words),
                escape(&shape.kpbench.join(", "))
            );
        }
        for m in ms {
            measured_row(h, shape, m);
        }
    }
    h.push_str("</table></div>\n<p>What differs:</p>\n<ul>\n");
    for d in &e.differences {
        let _ = writeln!(h, "<li>{}</li>", escape(d));
    }
    h.push_str("</ul>\n");
}

/// The section, when any published entry has a kpbench case in its range of scales.
pub(super) fn published(h: &mut String, results: &[Results]) {
    let p = published::load();
    let all = published::compare(&p, results);
    if all.is_empty() {
        return;
    }
    h.push_str(
        "<h2 id=\"published\">Published figures beside ours</h2>\n<p>The experiments people \
         quote, from <code>scenarios/published.json</code>, beside kpbench's measurement of the \
         same quantity in one environment. Shapes are compared, never absolute values: the \
         sources ran other machines, kernels and releases (each lists what differs). A shape \
         <em>agrees</em> when kpbench's verdict by the one rule (grows, flat within the stated \
         margin) is the source's; an inconclusive figure, or one moving against physics, \
         cannot tell. <code>kpbench run scenarios/published.toml</code> runs their scales.</p>\n",
    );
    for c in &all {
        entry(h, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, results, with_transit};

    #[test]
    fn the_section_names_source_verdict_and_differences() {
        let c = |mode: &str, n: u64, slope: f64| {
            with_transit(
                case(mode, n, 1.0, 1.0, 1.0),
                3000.0,
                4000.0,
                slope,
                20.0,
                est(slope, slope - 0.1, slope + 0.1),
            )
        };
        let r = results(
            "6.1",
            vec![
                c("iptables-legacy", 5000, 2.5),
                c("iptables-legacy", 30000, 2.6),
                c("nftables", 5000, 0.0),
                c("nftables", 30000, 0.0),
            ],
        );
        let mut h = String::new();
        published(&mut h, std::slice::from_ref(&r));
        assert!(h.contains("Published figures beside ours"), "{h}");
        assert!(h.contains("kubernetes.io/blog/2025/02/28/nftables-kube-proxy"));
        assert!(h.contains("What differs"));
        // iptables-legacy grows and nftables is flat at both scales: both agree.
        assert_eq!(h.matches("<strong>agrees</strong>").count(), 2, "{h}");
        // The quick run's scales are outside the blog's range: no section for it.
        let quick = results("6.1", vec![c("nftables", 100, 0.0)]);
        let mut h = String::new();
        published(&mut h, std::slice::from_ref(&quick));
        assert!(!h.contains("nftables-kube-proxy"), "{h}");
    }
}
