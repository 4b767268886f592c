//! The `kpbench` binary: parses arguments, calls the engine, maps errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use dataplane::{backend, model, Mode, Netns, ServiceSet};
use harness::cli::{ApplyArgs, CleanArgs, Cli, Command, RulesArgs, RunArgs};
use harness::exitcode;

/// An error with the exit code it maps to.
struct Failure {
    code: i32,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: exitcode::INTERNAL,
            error: e.into(),
        }
    }
}

fn fail(code: i32, msg: impl std::fmt::Display) -> Failure {
    Failure {
        code,
        error: anyhow::anyhow!("{msg}"),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KPBENCH_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,netlink_packet_route=error")
            }),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Rules(a) => cmd_rules(a),
        Command::Apply(a) => cmd_apply(a),
        Command::Clean(a) => cmd_clean(a),
        Command::Lab(a) => harness::lab::lab_main(a).map_err(Failure::from),
        Command::Serve(a) => harness::serve::serve_main(a)
            .map(|()| exitcode::OK)
            .map_err(Failure::from),
        Command::Load(a) => harness::load::load_main(a)
            .map(|()| exitcode::OK)
            .map_err(Failure::from),
        Command::Report(a) => cmd_report(a),
        Command::Compare(a) => cmd_compare(a),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(f) => {
            eprintln!("kpbench: {:#}", f.error);
            ExitCode::from(f.code as u8)
        }
    }
}

fn require_root() -> Result<(), Failure> {
    if !dataplane::netns::is_root() {
        return Err(fail(
            exitcode::UNAVAILABLE,
            "this needs root: kpbench creates network namespaces and programs kernel rules (run it with sudo)",
        ));
    }
    Ok(())
}

fn parse_mode(name: &str) -> Result<Mode, Failure> {
    Mode::parse(name).ok_or_else(|| {
        let all: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
        fail(
            exitcode::USAGE,
            format!(
                "--mode {name:?} is not a mode; use one of {}",
                all.join(", ")
            ),
        )
    })
}

fn service_set(a: &RulesArgs) -> Result<ServiceSet, Failure> {
    if a.services < 0 || a.endpoints < 0 {
        return Err(fail(
            exitcode::USAGE,
            "--services and --endpoints must be whole numbers >= 0",
        ));
    }
    model::check_size(a.services as u64, a.endpoints as u64).map_err(|e| {
        fail(
            exitcode::USAGE,
            format!("--services/--endpoints: {e}; use fewer"),
        )
    })?;
    Ok(ServiceSet::generate(
        a.services as usize,
        a.endpoints as usize,
    ))
}

fn backend_for(a: &RulesArgs) -> Result<Box<dyn dataplane::Backend>, Failure> {
    let mode = parse_mode(&a.mode)?;
    if !harness::scenario::IPVS_SCHEDULERS.contains(&a.scheduler.as_str()) {
        return Err(fail(
            exitcode::USAGE,
            format!(
                "--scheduler {:?}: use one of {}",
                a.scheduler,
                harness::scenario::IPVS_SCHEDULERS.join(", ")
            ),
        ));
    }
    backend::backend_with(mode, Some(&a.scheduler)).ok_or_else(|| {
        fail(
            exitcode::UNAVAILABLE,
            format!("mode {mode} is not implemented in this version of kpbench"),
        )
    })
}

fn cmd_rules(a: RulesArgs) -> Result<i32, Failure> {
    let set = service_set(&a)?;
    let b = backend_for(&a)?;
    use std::io::Write;
    let text = b.render(None, &set);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok(exitcode::OK)
}

fn cmd_apply(a: ApplyArgs) -> Result<i32, Failure> {
    let set = service_set(&a.rules)?;
    let b = backend_for(&a.rules)?;
    require_root()?;
    let ns = if Netns::named(&a.netns).exists() {
        Netns::named(&a.netns)
    } else {
        Netns::create(&a.netns).map_err(|e| fail(exitcode::UNAVAILABLE, e))?
    };
    let timeout = std::time::Duration::from_secs(1800);
    let report = b.sync(&ns, None, &set, timeout).map_err(|e| {
        let code = if e.is_missing_tool() {
            exitcode::UNAVAILABLE
        } else {
            exitcode::INTERNAL
        };
        fail(
            code,
            format!("programming {} into {}: {e}", b.mode(), a.netns),
        )
    })?;
    let found = b
        .read_back(&ns, timeout)
        .map_err(|e| fail(exitcode::INTERNAL, e))?;
    println!(
        "programmed {} services x {} endpoints ({}) into network namespace {} in {:.1} ms; the kernel holds {found} {} ({} expected)",
        set.len(),
        a.rules.endpoints,
        b.mode(),
        a.netns,
        report.cost.wall.as_secs_f64() * 1000.0,
        b.object_kind(),
        b.expected_objects(&set)
    );
    let inspect = match b.mode() {
        Mode::Ipvs => "ipvsadm -S -n",
        Mode::Nftables => "nft list table ip kube-proxy",
        Mode::IptablesLegacy => "iptables-legacy-save",
        _ => "iptables-nft-save",
    };
    println!(
        "inspect with: ip netns exec {ns} {inspect}; remove with: ip netns delete {ns}",
        ns = a.netns
    );
    Ok(exitcode::OK)
}

fn cmd_clean(a: CleanArgs) -> Result<i32, Failure> {
    require_root()?;
    let report = harness::clean::clean(a.force);
    let lab_leftovers = harness::lab::clean_leftovers();
    for k in &lab_leftovers {
        println!("{k}");
    }
    for r in &report.removed {
        println!("removed {r}");
    }
    for k in &report.kept_live {
        println!("kept {k} (its run is still going; --force removes it)");
    }
    for e in &report.errors {
        eprintln!("kpbench clean: {e}");
    }
    if report.removed.is_empty() && report.errors.is_empty() && lab_leftovers.is_empty() {
        println!("nothing to clean");
    }
    Ok(if report.errors.is_empty() {
        exitcode::OK
    } else {
        exitcode::INTERNAL
    })
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

fn cmd_run(a: RunArgs) -> Result<i32, Failure> {
    let (mut scenario, file) =
        harness::scenario::resolve(a.scenario.as_ref()).map_err(|e| fail(exitcode::USAGE, e))?;
    scenario
        .override_with(a.modes.as_deref(), a.services.as_deref(), a.endpoints)
        .map_err(|e| fail(exitcode::USAGE, e))?;
    if a.no_datapath {
        scenario.datapath.enabled = false;
    }
    let run_id = match a.run_id {
        Some(id)
            if !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
        {
            id
        }
        Some(id) => {
            return Err(fail(
                exitcode::USAGE,
                format!("--run-id {id:?}: use letters, digits, '.', '_' and '-' only"),
            ))
        }
        None => new_run_id(),
    };
    require_root()?;
    let out_dir = a
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(&run_id));
    let _registration = harness::clean::RunRegistration::new(&run_id)
        .context("registering the run under /run/kpbench")?;
    let flag = dataplane::exec::cancel_flag();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).context("installing signal handlers")?;
    }
    eprintln!(
        "kpbench run {run_id}: scenario {}, writing {}",
        scenario.name,
        out_dir.display()
    );
    let plan = harness::runner::RunPlan {
        scenario,
        scenario_file: file,
        run_id,
        out_dir: out_dir.clone(),
    };
    let mut progress = harness::progress::Progress::new();
    let results = harness::runner::run(&plan, |e| progress.event(e))?;
    progress.finish();
    println!("{}", harness::progress::summary_table(&results));
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
    match harness::report::write_report(std::slice::from_ref(&results), &out_dir) {
        Ok(files) => println!("report: {}", files[0].display()),
        Err(e) => eprintln!("kpbench: warning: no report: {e}"),
    }
    Ok(exitcode::OK)
}

fn cmd_report(a: harness::report::ReportArgs) -> Result<i32, Failure> {
    let out = a.out_dir().ok_or_else(|| {
        fail(
            exitcode::USAGE,
            "several runs: say where the merged report goes with --out DIR",
        )
    })?;
    let runs = harness::report::read_runs(&a.dirs).map_err(|e| fail(exitcode::USAGE, e))?;
    let files = harness::report::write_report_with(&runs, &out, a.budgets())?;
    for f in &files {
        println!("{}", f.display());
    }
    Ok(exitcode::OK)
}

fn cmd_compare(a: harness::compare::CompareArgs) -> Result<i32, Failure> {
    let threshold =
        harness::compare::parse_threshold(&a.threshold).map_err(|e| fail(exitcode::USAGE, e))?;
    let read =
        |p: &PathBuf| harness::results::Results::read(p).map_err(|e| fail(exitcode::USAGE, e));
    let (base, new) = (read(&a.base)?, read(&a.new)?);
    let c = harness::compare::compare(&base, &new, threshold);
    print!("{}", harness::compare::table(&c));
    Ok(if c.regressions() > 0 {
        exitcode::REGRESSION
    } else {
        exitcode::OK
    })
}
