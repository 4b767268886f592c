//! `kpbench run`: resolves the scenario, registers the run, runs it with a progress UI,
//! prints the summary and writes the report.

use std::path::PathBuf;

use anyhow::Context;

use super::failure::{require_root, Failure};
use super::RunArgs;
use crate::exitcode;
use crate::results::{Results, Status};

/// A `--run-id`: letters, digits, '.', '_' and '-' (it names namespaces and folders).
pub fn parse_run_id(id: &str) -> Result<String, String> {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        Ok(id.to_string())
    } else {
        Err(format!(
            "{id:?}: use letters, digits, '.', '_' and '-' only"
        ))
    }
}

fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    let stamp = now.format(&fmt).unwrap_or_else(|_| "run".into());
    format!(
        "{stamp}-{:04x}",
        (std::process::id() ^ now.nanosecond()) & 0xffff
    )
}

/// Whether no case could run at all because something was missing: every case was
/// skipped (none ran, none failed).
pub fn nothing_could_run(results: &Results) -> bool {
    !results.cases.is_empty() && results.cases.iter().all(|c| c.status == Status::Skipped)
}

/// The scenario a run's arguments select, with its overrides applied, and the file it
/// came from; bad input is a usage failure. `kpbench lab run` calls it too, so a bad
/// scenario fails on the host before anything boots.
pub(crate) fn scenario(
    a: &RunArgs,
) -> Result<(crate::scenario::Scenario, Option<String>), Failure> {
    let (mut scenario, file) =
        crate::scenario::resolve(a.scenario.as_ref()).map_err(Failure::usage)?;
    scenario
        .override_with(
            a.modes.as_deref(),
            a.services.as_deref(),
            a.endpoints,
            a.profiles.as_deref(),
        )
        .map_err(Failure::usage)?;
    if let Some(file) = &a.shape {
        scenario.use_shape(file, a.scale).map_err(Failure::usage)?;
    }
    if a.no_datapath {
        scenario.datapath.enabled = false;
    }
    Ok((scenario, file))
}

/// `kpbench run [SCENARIO] [--modes ..] [--services ..] [--endpoints N] [--out DIR]`.
pub fn main(a: RunArgs) -> Result<i32, Failure> {
    let (scenario, file) = self::scenario(&a)?;
    let run_id = a.run_id.unwrap_or_else(new_run_id);
    require_root()?;
    // Before anything is created: a run too large for this machine's memory would fail
    // late, or push the machine into swap and measure that.
    if let Some(why) = crate::run::memory::available_bytes()
        .and_then(|available| crate::run::memory::shortfall(&scenario, available))
    {
        return Err(Failure::unavailable(why));
    }
    let out_dir = a
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(&run_id));
    let _registration = crate::sandbox::registry::RunRegistration::new(&run_id)
        .context("registering the run under /run/kpbench")?;
    let flag = dataplane::floor::exec::cancel_flag();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).context("installing signal handlers")?;
    }
    eprintln!(
        "kpbench run {run_id}: scenario {}, writing {}",
        scenario.name,
        out_dir.display()
    );
    let plan = crate::run::RunPlan {
        scenario,
        scenario_file: file,
        run_id,
        out_dir: out_dir.clone(),
    };
    let mut progress = super::progress::Progress::new();
    let results = crate::run::run(&plan, |e| progress.event(e))?;
    progress.finish();
    println!("{}", super::progress::summary_table(&results));
    println!("{}\n", super::progress::LEGEND);
    println!("results: {}/results.json, results.csv", out_dir.display());
    if results.run.incomplete.is_some() {
        // Stop promptly when asked to: the report can be built later from the results.
        eprintln!(
            "kpbench: interrupted; the finished cases are in {dir}; `kpbench report {dir}` builds their report",
            dir = out_dir.display()
        );
        return Ok(exitcode::INTERRUPTED);
    }
    // A report is a view of results already on disk: its failure never fails the run.
    match crate::report::write_report(std::slice::from_ref(&results), &out_dir) {
        Ok(files) => println!("report: {}", files[0].display()),
        Err(e) => eprintln!("kpbench: warning: no report: {e}"),
    }
    if nothing_could_run(&results) {
        return Err(Failure::unavailable(format!(
            "no case could run here: every case was skipped (the reasons are in the summary above and in {}/results.json)",
            out_dir.display()
        )));
    }
    Ok(exitcode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, results, skipped};

    #[test]
    fn a_run_where_every_case_was_skipped_could_not_run() {
        let none = results(
            "6.1",
            vec![
                skipped("iptables", 100, "iptables-nft-restore not found"),
                skipped("nftables", 100, "nft not found"),
            ],
        );
        assert!(nothing_could_run(&none));
        let one_ran = results(
            "6.1",
            vec![
                skipped("iptables", 100, "iptables-nft-restore not found"),
                case("nftables", 100, 10.0, 1.0, 5.0),
            ],
        );
        assert!(!nothing_could_run(&one_ran));
    }

    #[test]
    fn run_ids_name_namespaces_so_only_safe_characters_pass() {
        assert_eq!(parse_run_id("ci-1.2_x"), Ok("ci-1.2_x".to_string()));
        assert!(parse_run_id("").is_err());
        assert!(parse_run_id("a/b").is_err());
        assert!(parse_run_id("a b").is_err());
    }
}
