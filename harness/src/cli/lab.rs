//! `kpbench lab`: the command-line face of the lab. Prints the guest command's output
//! on stdout, progress on stderr, and exits with the command's own exit code, or with
//! [`EXIT_UNAVAILABLE`](crate::lab::EXIT_UNAVAILABLE) (69) / [`EXIT_BOOT_FAILED`](crate::lab::EXIT_BOOT_FAILED)
//! (70) / 130 when the lab itself could not run it.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::{Failure, RunArgs};
use crate::lab::{
    AccelChoice, GuestCommand, GuestRun, KernelSpec, LabEvent, LabOptions, DEFAULT_KERNEL,
};

/// `kpbench lab --kernel K [run [SCENARIO] [run flags...] | prepare | -- CMD...]`
#[derive(Debug, Clone, clap::Args)]
pub struct LabArgs {
    /// Kernel to boot: debian:6.1, debian:6.12, debian:<linux-image package>, a kernel
    /// .deb file, or VMLINUZ[:MODULES_DIR] (e.g. a nightly bzImage and its
    /// INSTALL_MOD_PATH).
    #[arg(long, short = 'k', default_value = DEFAULT_KERNEL)]
    pub kernel: KernelSpec,
    /// Overall limit for the VM (boot, command, shutdown): seconds, or with a unit (30m).
    #[arg(long, default_value = "3600", value_parser = crate::cli::duration::parse)]
    pub timeout: Duration,
    /// Time to wait for the guest to show a sign of life: seconds, or with a unit
    /// [default: 20 under KVM, 180 under TCG].
    #[arg(long, value_parser = crate::cli::duration::parse)]
    pub boot_timeout: Option<Duration>,
    /// Accelerator [default: auto, or $KPBENCH_LAB_ACCEL]: auto tries KVM, then TCG.
    #[arg(long, value_enum)]
    pub accel: Option<AccelChoice>,
    /// Also print kernel and init console lines (on stderr).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    #[command(subcommand)]
    pub action: Option<LabAction>,
    /// A command to run in the guest instead of a scenario, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// What to do in the lab.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum LabAction {
    /// Run a scenario in the guest (the default): takes `kpbench run`'s arguments;
    /// results are copied back to `--out` (default `results/<run-id>`) on the host.
    #[command(after_help = LAB_RUN_DIFFERS)]
    Run(Box<RunArgs>),
    /// Fetch the kernel and build the initramfs into the cache, without booting.
    Prepare,
}

/// What `kpbench lab run --help` adds to `kpbench run`'s flags.
const LAB_RUN_DIFFERS: &str = "In the lab: the arguments are checked on this host before \
anything is fetched or booted; SCENARIO is a file on this host, copied into the guest; the \
guest writes its results to /lab/out, and they are copied back to --out on this host after it \
exits.";

/// Runs `kpbench lab`. Returns the process exit code; lab failures are printed here and
/// mapped to their documented codes rather than returned as errors. Bad run arguments
/// are a usage failure, before anything is fetched or booted.
pub fn lab_main(args: LabArgs) -> Result<i32, Failure> {
    let spec = &args.kernel;
    let mut opts = LabOptions {
        timeout: args.timeout,
        ..LabOptions::default()
    };
    if let Some(b) = args.boot_timeout {
        opts.boot_timeout = Some(b);
    }
    if let Some(a) = args.accel {
        opts.accel = a;
    }
    let verbose = args.verbose;
    let mut progress = move |e: LabEvent| print_event(&e, verbose);

    let (command, host_out) = match (&args.action, args.command.is_empty()) {
        (Some(LabAction::Prepare), _) => {
            return Ok(match crate::lab::prepare(spec, &opts, &mut progress) {
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("kpbench lab: {e}");
                    e.exit_code()
                }
            });
        }
        (Some(LabAction::Run(run)), _) => run_command(run)?,
        (None, false) => (GuestCommand::Argv(args.command.clone()), None),
        (None, true) => run_command(&RunArgs::default())?,
    };

    // The process-wide flag, so the dataplane's tools see the same cancellation.
    let interrupted: Arc<AtomicBool> = dataplane::floor::exec::cancel_flag();
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&interrupted))?;
    }
    match crate::lab::run(spec, &command, &opts, Some(&interrupted), &mut progress) {
        Ok(outcome) => {
            if let Some(dir) = host_out {
                let dir = dir.unwrap_or_else(|| default_out_dir(&outcome));
                match outcome.write_files(&dir) {
                    Ok(files) if !files.is_empty() => {
                        eprintln!(
                            "kpbench lab: {} result file(s) written under {}",
                            files.len(),
                            dir.display()
                        )
                    }
                    Ok(_) => eprintln!("kpbench lab: the guest wrote no result files"),
                    Err(e) => {
                        eprintln!("kpbench lab: writing results under {}: {e}", dir.display());
                        return Ok(1);
                    }
                }
            }
            Ok(outcome.exit_code)
        }
        Err(e) => {
            eprintln!("kpbench lab: {e}");
            Ok(e.exit_code())
        }
    }
}

/// `kpbench run` in the guest, and the host dir its results go to: the run's `--out`,
/// or (`Some(None)`) `results/<run-id>` as `kpbench run` would pick. The scenario is
/// resolved here first, as `kpbench run` resolves it, so a bad one fails before boot.
fn run_command(run: &RunArgs) -> Result<(GuestCommand, Option<Option<PathBuf>>), Failure> {
    let (scenario, _) = super::run::scenario(run)?;
    if scenario.shape.is_some() {
        // The lab copies the scenario file into the guest, not the shape file it names.
        return Err(Failure::usage(
            "a shape file does not reach the lab's guest yet; run the shape on the host (`kpbench run --shape FILE`), or a `[synthetic]` scenario in the lab",
        ));
    }
    let (guest, host_out) = guest_run(run);
    Ok((GuestCommand::Run(guest), Some(host_out)))
}

/// The guest's `kpbench run`, rebuilt from the parsed arguments: the scenario file for
/// the lab to copy in, every other flag as `--flag=value` (a value never passes for a
/// flag or the scenario), and the host's `--out`, which the lab replaces.
fn guest_run(run: &RunArgs) -> (GuestRun, Option<PathBuf>) {
    // Taken apart whole, so a new field of RunArgs does not compile until it is passed
    // on here; the test below checks each flag against `kpbench run`'s own parser.
    let RunArgs {
        scenario,
        modes,
        services,
        endpoints,
        profiles,
        out,
        run_id,
        no_datapath,
        shape,
        scale,
    } = run;
    fn list<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
        v.iter().map(f).collect::<Vec<_>>().join(",")
    }
    let values = [
        (
            "modes",
            modes.as_ref().map(|v| list(v, |m| m.name().into())),
        ),
        (
            "services",
            services.as_ref().map(|v| list(v, usize::to_string)),
        ),
        ("endpoints", endpoints.map(|n| n.to_string())),
        (
            "profiles",
            profiles.as_ref().map(|v| list(v, |p| p.name().into())),
        ),
        ("run-id", run_id.clone()),
        ("shape", shape.as_ref().map(|p| p.display().to_string())),
        ("scale", scale.map(|s| s.to_string())),
    ];
    let mut flags: Vec<String> = values
        .into_iter()
        .filter_map(|(name, value)| Some(format!("--{name}={}", value?)))
        .collect();
    if *no_datapath {
        flags.push("--no-datapath".into());
    }
    let guest = GuestRun {
        scenario: scenario.clone(),
        flags,
        machine: crate::run::environment::machine(),
    };
    (guest, out.clone())
}

/// `results/<run-id>`, the run id read from the guest's results.json.
fn default_out_dir(outcome: &crate::lab::LabOutcome) -> PathBuf {
    let id = outcome
        .results_json()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v["run"]["id"].as_str().map(str::to_string))
        .filter(|id| !id.is_empty() && !id.contains('/') && id != "." && id != "..")
        .unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("lab-{secs}")
        });
    PathBuf::from("results").join(id)
}

fn print_event(e: &LabEvent, verbose: bool) {
    match e {
        LabEvent::GuestOutput(line) => println!("{line}"),
        LabEvent::Console(line) if verbose => eprintln!("[console] {line}"),
        LabEvent::Console(_) => {}
        LabEvent::FetchingKernel { package } => {
            eprintln!("kpbench lab: fetching {package} with apt-get download")
        }
        LabEvent::ExtractingKernel { deb } => {
            eprintln!("kpbench lab: extracting {}", deb.display())
        }
        LabEvent::KernelReady {
            source, release, ..
        } => eprintln!(
            "kpbench lab: kernel {} ({source})",
            release.as_deref().unwrap_or("of unknown release")
        ),
        LabEvent::BuildingInitramfs { key } => eprintln!("kpbench lab: building initramfs {key}"),
        LabEvent::InitramfsContents {
            modules,
            missing_tools,
        } => {
            if *modules == 0 {
                eprintln!("kpbench lab: no kernel modules: only built-in (=y) features work; give VMLINUZ:MODULES_DIR for the rest");
            } else {
                eprintln!("kpbench lab: initramfs holds {modules} modules");
            }
            if !missing_tools.is_empty() {
                eprintln!(
                    "kpbench lab: not on this host, left out: {}",
                    missing_tools.join(" ")
                );
            }
        }
        LabEvent::InitramfsReady { path, cached } if verbose => {
            eprintln!(
                "kpbench lab: initramfs {} ({})",
                path.display(),
                if *cached { "cached" } else { "new" }
            )
        }
        LabEvent::InitramfsReady { .. } => {}
        LabEvent::Booting { accel, run_dir } => eprintln!(
            "kpbench lab: booting under {} (console log in {})",
            accel.env_kind(),
            run_dir.display()
        ),
        LabEvent::AccelFallback { from, to, reason } => eprintln!(
            "kpbench lab: {} failed ({reason}); falling back to {}",
            from.env_kind(),
            to.env_kind()
        ),
        LabEvent::GuestAlive { after, .. } => {
            eprintln!("kpbench lab: guest up after {:.1}s", after.as_secs_f64())
        }
        LabEvent::GuestExited { code, after } => {
            eprintln!(
                "kpbench lab: command exited with {code} after {:.1}s",
                after.as_secs_f64()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        lab: LabArgs,
    }

    fn parse(args: &[&str]) -> LabArgs {
        Cli::try_parse_from(std::iter::once("lab").chain(args.iter().copied()))
            .unwrap()
            .lab
    }

    #[test]
    fn command_form() {
        let a = parse(&["--kernel", "debian:6.12", "--", "cat", "/proc/version"]);
        assert_eq!(a.kernel, KernelSpec::DebianSeries("6.12".into()));
        assert_eq!(a.command, vec!["cat", "/proc/version"]);
        assert!(a.action.is_none());
    }

    #[test]
    fn run_form_and_defaults() {
        let quick = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/quick.toml");
        let a = parse(&["run", quick, "--modes", "ipvs", "--out", "r"]);
        assert_eq!(a.kernel, KernelSpec::parse(DEFAULT_KERNEL).unwrap());
        assert_eq!(a.timeout, Duration::from_secs(3600));
        assert_eq!(a.boot_timeout, None);
        let Some(LabAction::Run(run)) = &a.action else {
            panic!("{a:?}")
        };
        assert_eq!(run.scenario, Some(PathBuf::from(quick)));
        let (cmd, out) = run_command(run).unwrap();
        assert_eq!(out, Some(Some(PathBuf::from("r"))));
        let GuestCommand::Run(guest) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(guest.flags, ["--modes=ipvs"]);
        let (cmd, out) = run_command(&RunArgs::default()).unwrap();
        assert_eq!(out, Some(None));
        // The guest is told this host's machine, so its results name where it ran.
        assert_eq!(
            cmd,
            GuestCommand::Run(GuestRun {
                machine: crate::run::environment::machine(),
                ..GuestRun::default()
            })
        );
        let a = parse(&["-k", "/tmp/bzImage", "--accel", "tcg", "prepare"]);
        assert!(matches!(a.action, Some(LabAction::Prepare)));
        assert_eq!(a.accel, Some(AccelChoice::Tcg));
    }

    #[test]
    fn durations_follow_the_one_convention() {
        let a = parse(&["--timeout", "1800", "--boot-timeout", "90s", "--", "true"]);
        assert_eq!(a.timeout, Duration::from_secs(1800));
        assert_eq!(a.boot_timeout, Some(Duration::from_secs(90)));
        let a = parse(&["--timeout", "5m", "--", "true"]);
        assert_eq!(a.timeout, Duration::from_secs(300));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [
            &["--kernel", "debian:6", "--", "true"][..],
            &["--kernel", "https://x/bzImage", "--", "true"],
            &["--timeout", "soon", "--", "true"],
            &["--boot-timeout", "-3", "--", "true"],
        ] {
            let e = Cli::try_parse_from(std::iter::once("lab").chain(bad.iter().copied()))
                .err()
                .unwrap_or_else(|| panic!("{bad:?} should be refused"));
            assert_eq!(e.exit_code(), crate::exitcode::USAGE, "{bad:?}: {e}");
        }
    }

    /// `kpbench run`'s clap command, as `kpbench run` parses it.
    fn run_command_def() -> clap::Command {
        use clap::CommandFactory;
        crate::cli::Cli::command()
            .find_subcommand("run")
            .expect("kpbench run")
            .clone()
    }

    /// `kpbench run ARGS` parsed by kpbench run's own definition.
    fn parse_run(args: &[String]) -> Result<RunArgs, clap::Error> {
        let argv = ["kpbench", "run"].map(String::from).into_iter();
        let cli = crate::cli::Cli::try_parse_from(argv.chain(args.iter().cloned()))?;
        match cli.command {
            crate::cli::Command::Run(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    /// `kpbench lab run ARGS` parsed as the binary parses it.
    fn parse_lab_run(args: &[String]) -> Result<RunArgs, clap::Error> {
        let argv = ["kpbench", "lab", "run"].map(String::from).into_iter();
        let cli = crate::cli::Cli::try_parse_from(argv.chain(args.iter().cloned()))?;
        match cli.command {
            crate::cli::Command::Lab(LabArgs {
                action: Some(LabAction::Run(a)),
                ..
            }) => Ok(*a),
            other => panic!("{other:?}"),
        }
    }

    /// A value `kpbench run` accepts for `flag`: the first of a few that parses, so a
    /// new flag needs no entry here unless none of them fits it.
    fn sample_value(flag: &str) -> String {
        let candidates = ["ipvs", "kube-proxy,floor", "100,1000", "7", "lab-7"];
        candidates
            .iter()
            .find(|v| parse_run(&[format!("--{flag}={v}")]).is_ok())
            .unwrap_or_else(|| panic!("no sample value parses for --{flag}: add one here"))
            .to_string()
    }

    /// The guest's arguments for `kpbench lab run ARGS` parse, with kpbench run's own
    /// definition, to what the host parsed, but for `--out`; the scenario and the
    /// host's `--out` come out apart.
    fn check_split(args: &[String], want_out: Option<&str>) {
        let host = parse_lab_run(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(host, parse_run(args).unwrap(), "{args:?}");
        let (guest, out) = guest_run(&host);
        assert_eq!(guest.scenario, Some(PathBuf::from("s.toml")), "{args:?}");
        assert_eq!(
            out.as_deref(),
            want_out.map(std::path::Path::new),
            "{args:?}"
        );
        let argv = guest.argv();
        assert_eq!(argv[0], "run");
        let in_guest = parse_run(&argv[1..]).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        let want = RunArgs {
            out: Some(PathBuf::from(crate::lab::GUEST_OUT_DIR)),
            ..host
        };
        assert_eq!(in_guest, want, "{args:?} became {argv:?}");
    }

    #[test]
    fn every_run_flag_survives_the_lab_in_both_forms() {
        let def = run_command_def();
        let mut all = vec!["s.toml".to_string()];
        let mut flags = 0;
        for arg in def.get_arguments() {
            if arg.is_positional() {
                assert_eq!(
                    arg.get_id(),
                    "scenario",
                    "a new positional: teach guest_run"
                );
                continue;
            }
            let Some(long) = arg.get_long() else {
                panic!("{:?} has no long name", arg.get_id())
            };
            if matches!(
                arg.get_action(),
                clap::ArgAction::Help | clap::ArgAction::Version
            ) {
                continue;
            }
            flags += 1;
            let out = (long == "out").then_some("lab-7");
            let forms: Vec<Vec<String>> = if arg.get_action().takes_values() {
                let v = sample_value(long);
                let v = if long == "out" {
                    "lab-7".to_string()
                } else {
                    v
                };
                vec![
                    vec![format!("--{long}"), v.clone()],
                    vec![format!("--{long}={v}")],
                ]
            } else {
                vec![vec![format!("--{long}")]]
            };
            for form in &forms {
                let scenario = "s.toml".to_string();
                let before = [std::slice::from_ref(&scenario), form].concat();
                let after = [form, std::slice::from_ref(&scenario)].concat();
                check_split(&before, out);
                check_split(&after, out);
            }
            all.extend(forms[0].iter().cloned());
        }
        assert!(flags >= 7, "only {flags} flags found");
        check_split(&all, Some("lab-7"));
    }

    #[test]
    fn bad_run_arguments_fail_at_parse_time_with_kpbench_runs_message() {
        for bad in [
            &["--bogus"][..],
            &["--services", "abc"],
            &["--profiles", "slow"],
        ] {
            let args: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            let lab = parse_lab_run(&args).unwrap_err();
            let run = parse_run(&args).unwrap_err();
            assert_eq!(lab.exit_code(), crate::exitcode::USAGE, "{bad:?}");
            assert_eq!(lab.kind(), run.kind(), "{bad:?}");
            let first = |e: &clap::Error| e.to_string().lines().next().unwrap().to_string();
            assert_eq!(first(&lab), first(&run), "{bad:?}");
            assert!(first(&lab).contains(bad[0]), "{}", first(&lab));
        }
    }

    #[test]
    fn a_missing_scenario_fails_before_boot_as_bad_input() {
        let run = RunArgs {
            scenario: Some("/nonexistent/kpbench.toml".into()),
            ..RunArgs::default()
        };
        let e = run_command(&run).unwrap_err();
        assert_eq!(e.code, crate::exitcode::USAGE, "{:#}", e.error);
    }

    #[test]
    fn lab_run_help_lists_the_run_flags_and_what_differs() {
        use clap::CommandFactory;
        let mut cli = crate::cli::Cli::command();
        let lab = cli.find_subcommand_mut("lab").unwrap();
        let help = lab
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        for arg in run_command_def().get_arguments() {
            if let Some(long) = arg.get_long() {
                assert!(
                    help.contains(&format!("--{long}")),
                    "--{long} not in:\n{help}"
                );
            }
        }
        assert!(help.contains("copied back to --out on this host"), "{help}");
    }
}
