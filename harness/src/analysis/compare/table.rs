//! The comparison as a fixed-width table: per figure its change, the change's 95%
//! interval over both runs, the rule's verdict and the margin; then the notes and the
//! environments side by side.

use std::fmt::Write;

use crate::analysis::stats;
use crate::results::{Estimate, Status};

use super::{Comparison, Line, Unit, Verdict};

/// "12.3% worse", "5.0% better" or "0.0%".
fn change(worse_by: f64) -> String {
    let pct = worse_by * 100.0;
    if !pct.is_finite() {
        "-".into()
    } else if pct >= 0.05 {
        format!("{pct:.1}% worse")
    } else if pct <= -0.05 {
        format!("{:.1}% better", -pct)
    } else {
        "0.0%".into()
    }
}

/// A status as results.json spells it.
fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Skipped => "skipped",
        Status::Failed => "failed",
    }
}

/// The value on the line's scale: a fraction as percent, else as it is.
fn on_scale(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Relative => format!("{:+.1}%", v * 100.0),
        Unit::Absolute(u) => format!("{} {u}", stats::signed(v)),
    }
}

fn ci(e: &Estimate, unit: Unit) -> String {
    match unit {
        Unit::Relative => format!("{:+.1}..{:+.1}%", e.ci95[0] * 100.0, e.ci95[1] * 100.0),
        Unit::Absolute(u) => format!(
            "{}..{} {u}",
            stats::signed(e.ci95[0]),
            stats::signed(e.ci95[1])
        ),
    }
}

fn margin(l: &Line) -> String {
    match l.unit {
        Unit::Relative => format!("±{:.1}%", l.margin * 100.0),
        Unit::Absolute(u) => format!("±{} {u}", stats::num(l.margin)),
    }
}

fn row(l: &Line) -> Vec<String> {
    let verdict = match l.verdict {
        Verdict::Regression => "REGRESSION",
        Verdict::Improvement => "improved",
        Verdict::Same => "same",
    };
    vec![
        l.case.clone(),
        l.metric.clone(),
        match l.status {
            Some((base, _)) => status_word(base).into(),
            None => format!("{:.2}", l.base),
        },
        match l.status {
            Some((_, new)) => status_word(new).into(),
            None => format!("{:.2}", l.new),
        },
        match (l.unit, &l.change) {
            (Unit::Absolute(_), Some(e)) => on_scale(e.estimate, l.unit),
            _ => change(l.worse_by),
        },
        l.change
            .as_ref()
            .map(|e| ci(e, l.unit))
            .unwrap_or("-".into()),
        match l.trend {
            Some(t) => format!("{verdict} ({})", t.label()),
            None => format!("{verdict} (status)"),
        },
        if l.trend.is_some() {
            margin(l)
        } else {
            "-".into()
        },
        l.note.clone(),
    ]
}

/// The comparison as a fixed-width table plus notes and the environments compared.
pub fn table(c: &Comparison) -> String {
    let header = [
        "case",
        "metric",
        "base",
        "new",
        "change",
        "95% CI of change",
        "verdict",
        "margin",
        "note",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    rows.extend(c.lines.iter().map(row));
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, v)| match i {
                2..=5 => format!("{v:>w$}", w = widths[i]),
                _ => format!("{v:<w$}", w = widths[i]),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 16));
        }
    }
    for note in &c.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let m = &c.machines;
    for pair in &m.shown {
        let _ = writeln!(out, "environments: {pair}");
    }
    for d in &m.differ {
        let _ = writeln!(
            out,
            "note: different machines ({d}): machine differences are included in every figure above; an interval holds within one run on one machine"
        );
    }
    for u in &m.unknown {
        let _ = writeln!(
            out,
            "note: {u}: a side did not record its machine, so whether they ran on one machine is unknown; an interval holds within one run on one machine"
        );
    }
    let _ = writeln!(
        out,
        "{} regression(s) by the three-way rule: the change's interval above zero and the change beyond its margin (the {:.1}% threshold); {} metric(s) compared",
        c.regressions(),
        c.threshold * 100.0,
        c.lines.len()
    );
    out
}
