//! `kpbench report DIR...`: rebuilds report.html and the charts from runs on disk.

use std::path::{Path, PathBuf};

use super::failure::Failure;
use crate::analysis::capacity::Budgets;
use crate::exitcode;

/// `kpbench report DIR... [--out DIR]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// Run directories (or results.json files) to merge into one report, e.g. one per kernel.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write report.html and charts/ (default: the run's own directory; required with several runs).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Capacity budget: the slowest incremental update's p50, milliseconds.
    #[arg(long, default_value_t = 1000.0)]
    pub max_update_ms: f64,
    /// Capacity budget: first-packet latency the dataplane adds to the last service (its SYN's in-kernel transit over an endpoint reached directly), microseconds.
    #[arg(long, default_value_t = 100.0)]
    pub max_added_latency_us: f64,
}

impl ReportArgs {
    pub fn budgets(&self) -> Budgets {
        Budgets {
            max_update_ms: self.max_update_ms,
            max_added_latency_us: self.max_added_latency_us,
        }
    }

    /// Where the report goes: --out, or the single input's directory.
    pub fn out_dir(&self) -> Option<PathBuf> {
        if let Some(o) = &self.out {
            return Some(o.clone());
        }
        match self.dirs.as_slice() {
            [one] if one.is_dir() => Some(one.clone()),
            [one] => Some(
                one.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf(),
            ),
            _ => None,
        }
    }
}

/// `kpbench report DIR... [--out DIR]`.
pub fn main(a: ReportArgs) -> Result<i32, Failure> {
    let out = a.out_dir().ok_or_else(|| {
        Failure::usage("several runs: say where the merged report goes with --out DIR")
    })?;
    let runs = crate::report::read_runs(&a.dirs).map_err(Failure::usage)?;
    let files = crate::report::write_report_with(&runs, &out, a.budgets())?;
    for f in &files {
        println!("{}", f.display());
    }
    Ok(exitcode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_dir_defaults_to_the_single_run() {
        let a = |dirs: &[&str], out: Option<&str>| ReportArgs {
            dirs: dirs.iter().map(PathBuf::from).collect(),
            out: out.map(PathBuf::from),
            max_update_ms: 1000.0,
            max_added_latency_us: 100.0,
        };
        assert_eq!(a(&["/tmp"], None).out_dir(), Some(PathBuf::from("/tmp")));
        assert_eq!(
            a(&["/nonexistent/r/results.json"], None).out_dir(),
            Some(PathBuf::from("/nonexistent/r"))
        );
        assert_eq!(a(&["a", "b"], None).out_dir(), None);
        assert_eq!(
            a(&["a", "b"], Some("o")).out_dir(),
            Some(PathBuf::from("o"))
        );
    }
}
