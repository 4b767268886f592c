//! The command line (clap derive). Names are a contract: design.md lists them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kpbench",
    version,
    about = "Measures Kubernetes service dataplanes (kube-proxy's iptables, nftables and IPVS modes) on a real kernel",
    long_about = "kpbench builds a small cluster out of network namespaces, programs thousands of synthetic \
services exactly as kube-proxy does, and measures rule-update time, lookup latency and CPU.\n\n\
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
    Lab(crate::lab::LabArgs),
    /// Run the backend server on its own: answers every request with the address it was reached on.
    Serve(crate::serve::ServeArgs),
    /// Run the load generator on its own (open loop with --rate, else closed-loop max rate).
    Load(crate::load::LoadArgs),
    /// Rebuild report.html and charts from one or more runs (e.g. one per kernel, merged).
    Report(crate::report::ReportArgs),
    /// Compare two runs case by case; exits 3 when NEW regressed beyond the threshold and the noise.
    Compare(crate::compare::CompareArgs),
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Scenario file (TOML); omitted: the quick scenario.
    pub scenario: Option<PathBuf>,
    /// Comma-separated modes to run (iptables, iptables-legacy, nftables, ipvs, ebpf), overriding the scenario.
    #[arg(long)]
    pub modes: Option<String>,
    /// Comma-separated service counts, e.g. 100,1000 (replaces the scenario's scales for every mode).
    #[arg(long)]
    pub services: Option<String>,
    /// Endpoints per service.
    #[arg(long, allow_negative_numbers = true)]
    pub endpoints: Option<i64>,
    /// Output directory (default: results/<run-id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run id (default: a timestamp plus a random suffix); letters, digits, '.', '_' and '-'.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Skip the data-path measurements (rule updates only).
    #[arg(long)]
    pub no_datapath: bool,
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Mode: iptables, iptables-legacy, nftables or ipvs.
    #[arg(long)]
    pub mode: String,
    /// Number of services.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    pub services: i64,
    /// Endpoints per service.
    #[arg(long, default_value_t = 2, allow_negative_numbers = true)]
    pub endpoints: i64,
    /// IPVS scheduler (ipvs mode only).
    #[arg(long, default_value = "rr")]
    pub scheduler: String,
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
