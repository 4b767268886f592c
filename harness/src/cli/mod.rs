//! The command line: clap-derived argument types, typed at parse time (modes, counts,
//! durations), and one module per command that calls the engine, prints, and maps
//! errors to exit codes. Names are a contract: design.md lists them.
//!
//! This is the only layer that prints; the engine reports through return values and
//! [`crate::run::Event`]s.

pub mod clean;
pub mod compare;
pub mod conformance;
pub mod duration;
pub mod failure;
pub mod lab;
pub mod load;
pub mod payload;
pub mod progress;
pub mod report;
pub mod run;
pub mod serve;
pub mod shape;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use dataplane::{IpvsScheduler, KubeProxyVersion, Mode, Profile, ProfileKind};

pub use failure::Failure;

#[derive(Debug, Parser)]
#[command(
    name = "kpbench",
    version,
    about = "Measures Kubernetes service dataplanes (kube-proxy's iptables, nftables and IPVS modes, and Cilium's socket LB) on a real kernel",
    long_about = "kpbench builds a small cluster out of network namespaces, programs thousands of synthetic \
services exactly as kube-proxy does (sync profile `kube-proxy`, beside the kernel's `floor`), and measures \
rule-update time and where it goes, lookup cost timed inside the kernel per service position, latency and \
the dataplane's CPU, each difference with its 95% interval.\n\n\
Exit codes: 0 ok, 1 internal error, 2 bad input, 3 regression found (compare), \
69 environment cannot run it (not root, missing tool or kernel feature), 70 kernel lab failure, 130 interrupted.\n\
Log level: KPBENCH_LOG=debug (tracing's env-filter syntax)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario (default: the quick scenario, embedded in the binary) and write results/<run-id>/.
    Run(RunArgs),
    /// Print the exact payload a full sync would program (no root needed).
    Rules(RulesArgs),
    /// Program the rules into a network namespace and leave them there for inspection.
    Apply(ApplyArgs),
    /// Remove namespaces (and lab processes) that crashed or killed runs left behind.
    Clean(CleanArgs),
    /// Boot a kernel in qemu (the kernel lab) and run a scenario or a command inside.
    Lab(lab::LabArgs),
    /// Run the backend server on its own: answers every request with the address it was reached on.
    Serve(serve::ServeArgs),
    /// Run the load generator on its own (open loop with --rate, else closed-loop max rate).
    Load(load::LoadArgs),
    /// Rebuild report.html and charts from one or more runs (e.g. one per kernel, merged).
    Report(report::ReportArgs),
    /// Compare two runs case by case; exits 3 when NEW regressed beyond the threshold and the noise.
    Compare(compare::CompareArgs),
    /// Import a cluster's services as an anonymised shape file, or summarise one.
    Shape(shape::ShapeArgs),
    /// Hidden: the stand-in conformance sequence in a fresh namespace (the IPVS lab test's).
    #[command(hide = true)]
    Conformance(conformance::ConformanceArgs),
}

impl Command {
    /// Runs the command; the exit code, or the failure with its exit code.
    pub fn execute(self) -> Result<i32, Failure> {
        match self {
            Command::Run(a) => run::main(a),
            Command::Rules(a) => payload::rules_main(a),
            Command::Apply(a) => payload::apply_main(a),
            Command::Clean(a) => clean::main(a),
            Command::Lab(a) => lab::lab_main(a),
            Command::Serve(a) => serve::serve_main(a)
                .map(|()| crate::exitcode::OK)
                .map_err(Failure::from),
            Command::Load(a) => load::load_main(a)
                .map(|()| crate::exitcode::OK)
                .map_err(Failure::from),
            Command::Report(a) => report::main(a),
            Command::Compare(a) => compare::main(a),
            Command::Conformance(a) => conformance::main(a),
            Command::Shape(a) => shape::main(a),
        }
    }
}

/// A mode name on the command line.
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s.trim()).ok_or_else(|| {
        let all: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
        format!("{s:?} is not a mode; use one of {}", all.join(", "))
    })
}

/// An IPVS scheduler name on the command line.
pub fn parse_scheduler(s: &str) -> Result<IpvsScheduler, String> {
    IpvsScheduler::parse(s.trim()).map_err(|_| {
        format!(
            "{s:?} is not a scheduler; use one of {}",
            IpvsScheduler::names()
        )
    })
}

/// A sync profile name on the command line.
pub fn parse_profile(s: &str) -> Result<ProfileKind, String> {
    ProfileKind::parse(s).ok_or_else(|| {
        format!(
            "{s:?} is not a profile; use one of {}",
            ProfileKind::names()
        )
    })
}

/// A kube-proxy release on the command line.
pub fn parse_version(s: &str) -> Result<KubeProxyVersion, String> {
    KubeProxyVersion::parse(s).ok_or_else(|| {
        let known: Vec<&str> = KubeProxyVersion::ALL.iter().map(|v| v.name()).collect();
        format!(
            "{s:?} is not a release kpbench replays; use one of {}",
            known.join(", ")
        )
    })
}

/// A service count on the command line (`1000` or `1_000`).
pub fn parse_count(s: &str) -> Result<usize, String> {
    s.trim()
        .replace('_', "")
        .parse::<usize>()
        .map_err(|_| format!("{s:?} is not a count; give a whole number >= 0, e.g. 100"))
}

/// `kpbench run`'s arguments; `kpbench lab run` takes the same ones.
#[derive(Debug, Args, Clone, Default, PartialEq)]
pub struct RunArgs {
    /// Scenario file (TOML); omitted: the quick scenario.
    pub scenario: Option<PathBuf>,
    /// Comma-separated modes to run (iptables, iptables-legacy, nftables, ipvs, ebpf, ebpf-tc), overriding the scenario.
    #[arg(long, value_delimiter = ',', value_parser = parse_mode)]
    pub modes: Option<Vec<Mode>>,
    /// Comma-separated service counts, e.g. 100,1000 (replaces the scenario's scales for every mode).
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    pub services: Option<Vec<usize>>,
    /// Endpoints per service.
    #[arg(long, value_parser = parse_count)]
    pub endpoints: Option<usize>,
    /// Comma-separated sync profiles (kube-proxy, floor), overriding the scenario.
    #[arg(long, value_delimiter = ',', value_parser = parse_profile)]
    pub profiles: Option<Vec<ProfileKind>>,
    /// Output directory (default: results/<run-id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run id (default: a timestamp plus a random suffix); letters, digits, '.', '_' and '-'.
    #[arg(long, value_parser = run::parse_run_id)]
    pub run_id: Option<String>,
    /// Skip the data-path measurements (rule updates only).
    #[arg(long)]
    pub no_datapath: bool,
    /// A shape file (`kpbench shape import`) whose services the run programs instead of
    /// the scenario's.
    #[arg(long)]
    pub shape: Option<PathBuf>,
    /// The shape file's scale: every count times it (2.0 doubles them); with --shape.
    #[arg(long)]
    pub scale: Option<f64>,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Mode: iptables, iptables-legacy, nftables, ipvs, ebpf or ebpf-tc.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Mode,
    /// Number of services.
    #[arg(long, default_value_t = 3, value_parser = parse_count)]
    pub services: usize,
    /// Endpoints per service.
    #[arg(long, default_value_t = 2, value_parser = parse_count)]
    pub endpoints: usize,
    /// IPVS scheduler (ipvs mode only): rr, lc, sh, dh or wrr.
    #[arg(long, default_value = "rr", value_parser = parse_scheduler)]
    pub scheduler: IpvsScheduler,
    /// Sync profile: kube-proxy (its sync loop's calls, in order) or floor (the fastest
    /// way to the identical kernel objects).
    #[arg(long, default_value = "kube-proxy", value_parser = parse_profile)]
    pub profile: ProfileKind,
    /// The kube-proxy release the kube-proxy profile replays (1.35 or 1.36).
    #[arg(long, default_value = "1.36", value_parser = parse_version)]
    pub kube_proxy_version: KubeProxyVersion,
}

impl RulesArgs {
    /// The profile with its release.
    pub fn profile(&self) -> Profile {
        Profile::new(self.profile, self.kube_proxy_version)
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Network namespace to program (created if missing; it is left in place).
    #[arg(long)]
    pub netns: String,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Also remove namespaces of runs that are still alive.
    #[arg(long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_arguments_reject_bad_values_at_parse_time() {
        let ok = Cli::try_parse_from([
            "kpbench",
            "run",
            "--modes",
            "iptables,nftables",
            "--services",
            "100,1_000",
            "--endpoints",
            "3",
        ])
        .unwrap();
        let Command::Run(a) = ok.command else {
            panic!("run")
        };
        assert_eq!(a.modes, Some(vec![Mode::Iptables, Mode::Nftables]));
        assert_eq!(a.services, Some(vec![100, 1000]));
        assert_eq!(a.endpoints, Some(3));
        for bad in [
            &["kpbench", "run", "--modes", "bogus"][..],
            &["kpbench", "run", "--services", "1,x"],
            &["kpbench", "run", "--endpoints", "-1"],
            &["kpbench", "rules", "--mode", "iptables", "--services", "-5"],
            &["kpbench", "run", "--run-id", "a/b"],
            &["kpbench", "rules", "--mode", "ipvs", "--scheduler", "fifo"],
            &["kpbench", "rules", "--mode", "ipvs", "--profile", "fast"],
            &["kpbench", "run", "--profiles", "kube-proxy,slow"],
            &[
                "kpbench",
                "rules",
                "--mode",
                "nftables",
                "--kube-proxy-version",
                "1.2",
            ],
        ] {
            let e = Cli::try_parse_from(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
    }
}
