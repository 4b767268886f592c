//! `kpbench compare BASE NEW`: case by case, did NEW get slower than BASE?
//!
//! Cases match on mode (with IPVS scheduler and profile), services and endpoints, and,
//! by [`MatchBy::Environment`], also on environment kind and kernel. Comparing two
//! kernels (nightly A against B) matches [`MatchBy::Case`] instead: the environments
//! differ on purpose. [`MatchBy::auto`] picks `Case` when each run has one environment.
//!
//! Every figure is decided by the one three-way rule, [`stats::trend`] (no rule of its
//! own here): the change from BASE to NEW gets a 95% interval that holds **both runs'
//! noise**, and the threshold is its margin. **grows** (a regression) when the interval
//! lies above zero and the change is beyond the threshold; **shrinks** (an improvement)
//! the other way; **flat** when the whole interval lies within ±threshold; otherwise
//! **inconclusive**. Only grows is a regression. How each figure gets its interval is
//! in [`judge`]: repeated timings by a bootstrap of both runs' samples, a single value
//! by the case's noise, the cost per service position from both runs' intervals.
//!
//! An interval holds within one run on one machine. Runs from two machines (by
//! [`fingerprint::same_machine`]) are listed in [`Comparison::machines`]; the CLI
//! refuses verdicts on them unless told `--across-machines`.
//!
//! A case that was ok in BASE and failed in NEW is a regression.

mod judge;
mod table;

use std::collections::BTreeMap;

use crate::analysis::cases::{self, Row};
use crate::analysis::fingerprint::{self, SameMachine};
use crate::analysis::stats::Trend;
use crate::results::{Case, Environment, Estimate, Results, Status};

pub use judge::case_noise;
pub use table::table;

/// What must agree for a case of BASE to be compared with one of NEW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchBy {
    /// Environment kind and kernel too: the same machine over time.
    Environment,
    /// Mode, profile, services and endpoints only: e.g. one kernel against another.
    Case,
}

impl MatchBy {
    /// `Case` when each run's cases ran in one environment (one kernel against
    /// another, the nightly-kernel CI), else `Environment`.
    pub fn auto(base: &Results, new: &Results) -> MatchBy {
        let one_env = |r: &Results| {
            let rows = cases::rows(std::slice::from_ref(r));
            cases::envs(&rows).len() == 1
        };
        if one_env(base) && one_env(new) {
            MatchBy::Case
        } else {
            MatchBy::Environment
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Regression,
    Improvement,
    /// Flat or inconclusive: not beyond the threshold and both runs' noise.
    Same,
}

impl Verdict {
    /// The compare verdict of a change (positive = worse) by the rule.
    pub fn of(t: Trend) -> Verdict {
        match t {
            Trend::Grows => Verdict::Regression,
            Trend::Shrinks => Verdict::Improvement,
            Trend::Flat | Trend::Inconclusive | Trend::Unexpected => Verdict::Same,
        }
    }
}

/// The scale a line's change is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A fraction of BASE's value (0.10 = 10% worse).
    Relative,
    /// The figure's own unit, e.g. "ns".
    Absolute(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub case: String,
    pub metric: String,
    pub base: f64,
    pub new: f64,
    /// Relative change, positive = worse.
    pub worse_by: f64,
    /// The change (positive = worse) on `unit`'s scale with its 95% interval over both
    /// runs' noise; `None` for a status line.
    pub change: Option<Estimate>,
    pub unit: Unit,
    /// The practical margin, on `unit`'s scale: the threshold.
    pub margin: f64,
    /// The three-way rule's answer on `change`; `None` for a status line.
    pub trend: Option<Trend>,
    pub verdict: Verdict,
    pub note: String,
    /// Set when the line is about the case's status (BASE's, NEW's) rather than a
    /// number; `base` and `new` are then 0.
    pub status: Option<(Status, Status)>,
}

/// Two environments of a comparison that ran on different machines, or where that
/// cannot be told.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Machines {
    /// "BASE host 6.1: ..., NEW host 6.1: ... (machine a / b)", one per distinct pair
    /// that differs.
    pub differ: Vec<String>,
    /// Pairs where a side did not record its machine.
    pub unknown: Vec<String>,
    /// Every distinct pair of environments compared, described side by side with the
    /// fingerprint fields that differ: shown beside the figures.
    pub shown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparison {
    pub lines: Vec<Line>,
    /// Cases present on one side only, or that failed in NEW.
    pub notes: Vec<String>,
    pub threshold: f64,
    pub machines: Machines,
}

impl Comparison {
    pub fn regressions(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.verdict == Verdict::Regression)
            .count()
    }
}

fn key(r: &Row<'_>, by: MatchBy) -> String {
    let case = format!(
        "{} {} svc x {} ep",
        r.mode(),
        r.case.services,
        r.case.endpoints_per_service
    );
    match by {
        MatchBy::Environment => {
            let e = r.env();
            format!("{} {} {case}", e.kind, e.kernel)
        }
        MatchBy::Case => case,
    }
}

fn index(r: &Results, by: MatchBy) -> BTreeMap<String, &Case> {
    cases::rows(std::slice::from_ref(r))
        .iter()
        .map(|row| (key(row, by), row.case))
        .collect()
}

/// The environments of a run's cases, as one label ("lab-tcg 6.1.0-56-cloud-amd64").
fn env_labels(r: &Results) -> String {
    let rows = cases::rows(std::slice::from_ref(r));
    cases::envs(&rows)
        .iter()
        .map(|e| e.label())
        .collect::<Vec<_>>()
        .join(", ")
}

fn environment<'a>(r: &'a Results, c: &Case) -> Option<&'a Environment> {
    r.environments.iter().find(|e| e.id == c.environment)
}

/// Which matched pairs of environments ran on different machines, and what differs.
fn machines(base: &Results, new: &Results, pairs: &[(&Case, &Case)]) -> Machines {
    let mut seen = std::collections::BTreeSet::new();
    let mut m = Machines::default();
    for (bc, nc) in pairs {
        let (Some(be), Some(ne)) = (environment(base, bc), environment(new, nc)) else {
            continue;
        };
        if !seen.insert((be.id.clone(), ne.id.clone())) {
            continue;
        }
        let pair = format!(
            "BASE {}: {}; NEW {}: {}",
            be.id,
            fingerprint::describe(be),
            ne.id,
            fingerprint::describe(ne)
        );
        let diffs = fingerprint::differences(be, ne);
        m.shown.push(if diffs.is_empty() {
            format!("{pair}; no fingerprint field differs")
        } else {
            format!("{pair}; differs: {}", diffs.join("; "))
        });
        match fingerprint::same_machine(be, ne) {
            SameMachine::Yes => {}
            SameMachine::No(why) => m
                .differ
                .push(format!("BASE {} / NEW {}: {why}", be.id, ne.id)),
            SameMachine::Unknown => m.unknown.push(format!("BASE {} / NEW {}", be.id, ne.id)),
        }
    }
    m
}

/// Compares every case both runs have, matched as `by` says.
pub fn compare(base: &Results, new: &Results, threshold: f64, by: MatchBy) -> Comparison {
    let (b, n) = (index(base, by), index(new, by));
    let mut out = Comparison {
        threshold,
        ..Default::default()
    };
    if by == MatchBy::Case {
        let (be, ne) = (env_labels(base), env_labels(new));
        out.notes.push(format!(
            "matched case by case across environments: BASE ran on {be}, NEW on {ne}"
        ));
        let kind = |l: &str| l.split(' ').next().unwrap_or("").to_string();
        if kind(&be) != kind(&ne) {
            out.notes.push(format!(
                "warning: {} and {} numbers are not comparable (emulated against native); compare lab runs with lab runs",
                kind(&be),
                kind(&ne)
            ));
        }
    }
    let mut pairs = Vec::new();
    for (k, bc) in &b {
        let Some(nc) = n.get(k) else {
            out.notes.push(format!("{k}: only in BASE"));
            continue;
        };
        pairs.push((*bc, *nc));
        match (bc.status, nc.status) {
            (Status::Ok, Status::Ok) => {}
            (Status::Ok, Status::Failed) => {
                out.lines.push(judge::failed(k, nc));
                continue;
            }
            (s1, s2) => {
                if s1 != Status::Ok || s2 != Status::Ok {
                    out.notes
                        .push(format!("{k}: {s1:?} in BASE, {s2:?} in NEW; not compared"));
                }
                continue;
            }
        }
        judge::case(k, bc, nc, threshold, &mut out.lines);
    }
    for k in n.keys().filter(|k| !b.contains_key(*k)) {
        out.notes.push(format!("{k}: only in NEW"));
    }
    out.machines = machines(base, new, &pairs);
    out
}

#[cfg(test)]
mod tests;
