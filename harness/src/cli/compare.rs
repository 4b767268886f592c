//! `kpbench compare BASE NEW`: prints the case-by-case comparison; exit 3 on a regression,
//! exit 2 when the runs are from different machines and `--across-machines` is not given.

use std::path::PathBuf;

use super::failure::Failure;
use crate::analysis::compare;
use crate::exitcode;
use crate::results::Results;

/// `kpbench compare BASE NEW [--threshold 10%]`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The baseline run directory (or results.json).
    pub base: PathBuf,
    /// The run to check against it.
    pub new: PathBuf,
    /// The margin: how much worse a figure must get to count, e.g. 10%; its interval
    /// over both runs' noise must lie above zero too (the three-way rule).
    #[arg(long, default_value = "10%", value_parser = parse_threshold)]
    pub threshold: f64,
    /// Match cases on mode, profile, services and endpoints only, across environments
    /// (e.g. nightly kernel A against B). The default does so when each run has one
    /// environment, and otherwise matches environments too.
    #[arg(long)]
    pub across_environments: bool,
    /// Give verdicts on runs from different machines (by machine id, CPU model and
    /// count). Refused without it (exit 2): an interval holds within one run on one
    /// machine, and machines of one kind differ by more. With it, machine differences
    /// are included in every figure.
    #[arg(long)]
    pub across_machines: bool,
}

/// A `--threshold`: "10%", "10" or "7.5%" -> 0.10, 0.10, 0.075.
pub fn parse_threshold(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let n = t.strip_suffix('%').unwrap_or(t).trim();
    match n.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
        _ => Err(format!("{s:?}: give a percentage >= 0, e.g. 10%")),
    }
}

/// `kpbench compare BASE NEW [--threshold 10%] [--across-environments] [--across-machines]`.
pub fn main(a: CompareArgs) -> Result<i32, Failure> {
    let read = |p: &PathBuf| Results::read(p).map_err(Failure::usage);
    let (base, new) = (read(&a.base)?, read(&a.new)?);
    let by = if a.across_environments {
        compare::MatchBy::Case
    } else {
        compare::MatchBy::auto(&base, &new)
    };
    let c = compare::compare(&base, &new, a.threshold, by);
    if !c.machines.differ.is_empty() && !a.across_machines {
        return Err(Failure::usage(format!(
            "{} and {} ran on different machines ({}); an interval holds within one run on one machine, and machines of one kind differ by more, so no regression verdict is given across machines: add --across-machines to compare anyway, machine differences included\n{}",
            a.base.display(),
            a.new.display(),
            c.machines.differ.join("; "),
            c.machines.shown.join("\n"),
        )));
    }
    print!("{}", compare::table(&c));
    if c.lines.is_empty() {
        return Err(Failure::usage(format!(
            "no case of {} matches one of {}: nothing was compared{}",
            a.base.display(),
            a.new.display(),
            if by == compare::MatchBy::Environment {
                "; to compare across environments (e.g. two kernels), add --across-environments"
            } else {
                "; the runs measured different modes, profiles or sizes"
            }
        )));
    }
    Ok(if c.regressions() > 0 {
        exitcode::REGRESSION
    } else {
        exitcode::OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse() {
        assert_eq!(parse_threshold("10%"), Ok(0.1));
        assert_eq!(parse_threshold("7.5"), Ok(0.075));
        assert!(parse_threshold("-3%").is_err());
        assert!(parse_threshold("ten").is_err());
    }
}
