//! `kpbench lab`: the command-line face of the lab. Prints the guest command's output
//! on stdout, progress on stderr, and exits with the command's own exit code, or with
//! [`EXIT_UNAVAILABLE`](crate::lab::EXIT_UNAVAILABLE) (69) / [`EXIT_BOOT_FAILED`](crate::lab::EXIT_BOOT_FAILED)
//! (70) / 130 when the lab itself could not run it.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::lab::{AccelChoice, GuestCommand, KernelSpec, LabEvent, LabOptions, DEFAULT_KERNEL};

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
    Run {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "RUN ARGS"
        )]
        args: Vec<String>,
    },
    /// Fetch the kernel and build the initramfs into the cache, without booting.
    Prepare,
}

/// Runs `kpbench lab`. Returns the process exit code; lab failures are printed here and
/// mapped to their documented codes rather than returned as errors.
pub fn lab_main(args: LabArgs) -> anyhow::Result<i32> {
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
        (Some(LabAction::Run { args: run }), _) => run_command(run),
        (None, false) => (GuestCommand::Argv(args.command.clone()), None),
        (None, true) => run_command(&[]),
    };

    // The process-wide flag, so the dataplane's tools see the same cancellation.
    let interrupted: Arc<AtomicBool> = dataplane::exec::cancel_flag();
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

/// `kpbench run ARGS` in the guest, and the host dir its results go to: the run's
/// `--out`, or (`Some(None)`) `results/<run-id>` as `kpbench run` would pick.
fn run_command(run: &[String]) -> (GuestCommand, Option<Option<PathBuf>>) {
    let mut argv = vec!["run".to_string()];
    argv.extend(run.iter().cloned());
    let (_, host_out) = crate::lab::guest_kpbench_args(&argv);
    (
        GuestCommand::Kpbench(argv),
        Some(host_out.map(PathBuf::from)),
    )
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
        let a = parse(&[
            "run",
            "scenarios/quick.toml",
            "--modes",
            "ipvs",
            "--out",
            "r",
        ]);
        assert_eq!(a.kernel, KernelSpec::parse(DEFAULT_KERNEL).unwrap());
        assert_eq!(a.timeout, Duration::from_secs(3600));
        assert_eq!(a.boot_timeout, None);
        let Some(LabAction::Run { args }) = &a.action else {
            panic!("{a:?}")
        };
        assert_eq!(
            args,
            &["scenarios/quick.toml", "--modes", "ipvs", "--out", "r"]
        );
        let (cmd, out) = run_command(args);
        assert_eq!(out, Some(Some(PathBuf::from("r"))));
        assert!(matches!(cmd, GuestCommand::Kpbench(ref v) if v[0] == "run"));
        let (_, out) = run_command(&[]);
        assert_eq!(out, Some(None));
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
}
