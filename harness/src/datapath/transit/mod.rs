//! Lookup cost measured inside the kernel: the SYN's (and SYN-ACK's) transit through
//! the node namespace, timed by tc programs, per target at service positions from
//! first to last plus direct, and on a shaped set per further lookup path (a UDP
//! target's first datagram and reply timed as the SYN and SYN-ACK are), interleaved in
//! one pass; a fitted cost per service position with its 95% interval; the probes'
//! own cost on the connection rate; and the node's in-kernel time for every TCP packet
//! (the CPU that belongs to the dataplane).
//!
//! - [`probes`]: load the object once, attach it in the node namespace, read samples
//!   and counters.
//! - [`pass`]: the interleaved connection pass and the paired probe-overhead rounds.
//! - [`result`]: what a case records (`datapath.transit`), built from the samples.
//! - [`target`]: the targets of the pass (service positions, then direct, then one
//!   per further lookup path a shaped set has: NodePort, affinity, UDP, Local).
//! - [`stats`]: the pure statistics (percentiles, order-statistic and bootstrap
//!   intervals).
//!
//! # Toolchain
//!
//! The programs are C (`dataplane/bpf/transit.bpf.c`), built by the dataplane crate's `build.rs` with Debian's
//! clang and libbpf-dev headers, and embedded in the binary, so the lab's kernels load
//! the very same object. They are loaded by [`aya`] 0.13: a maintained, pure-Rust
//! loader on stable Rust. libbpf-rs would also do, but it builds a vendored libbpf
//! (plus libelf and zlib) from C on every clean build of this 2-core machine and adds
//! a second C toolchain dependency beyond clang; aya reads the clang-built ELF
//! directly. aya's limits (its fentry cannot attach to module functions) do not touch
//! tc programs.
//!
//! # Using it from a case
//!
//! ```text
//! let mut probes = Probes::load(&topo.node)?;                 // loaded and attached
//! let transit = transit::measure(&mut probes, &topo, &set, &PassConfig::default())?;
//! let before = probes.counters()?;
//! // ... a load phase of `requests` completed requests ...
//! let cpu = probes.counters()?.since(&before);
//! let ns = cpu.ns_per_request(requests);                      // dataplane_ns_per_request
//! ```
//!
//! The probes cost a few percent of the connection rate while attached (the pass
//! measures how much); detach them ([`Probes::detach`]) around a phase that must not
//! carry them. Per-packet cost depends on how warm the caches are: the pass's
//! back-to-back connections see a SYN of about 4.4 us through nftables where a
//! 300 requests/s phase sees about 15 us, so `dataplane_ns_per_request` belongs with
//! the rate of the phase it came from.
//!
//! Kernels from 6.6 take the programs as tcx links; older ones (the lab's 6.1) as
//! cls_bpf filters under a clsact qdisc (modules `sch_ingress` and `cls_bpf`).

pub mod pass;
pub mod probes;
pub mod result;
pub mod stats;
pub mod target;

pub use pass::{measure, PassConfig, TransitPass};
pub use probes::{enable_run_stats, Counters, Kind, Probes, RunStats, Sample};
pub use result::{Overhead, OverheadRound, TargetSamples, Transit, TransitChecks, TransitTarget};
pub use stats::{Estimate, Quantiles};
pub use target::{all_targets, targets, Target, Targets};

/// Why the transit measurement could not run. The case keeps its end-to-end figures
/// and records this message instead.
#[derive(Debug, thiserror::Error)]
pub enum TransitError {
    /// `build.rs` found no clang or no libbpf headers.
    #[error(
        "BPF programs not built: install clang and libbpf-dev (scripts/install-deps.sh), then rebuild"
    )]
    NotBuilt,
    #[error("loading BPF programs needs root (CAP_BPF and CAP_NET_ADMIN): run kpbench as root")]
    NotRoot,
    /// The embedded object could not be read (a build problem, not the kernel's).
    #[error(
        "the embedded BPF object is unreadable: {0} (rebuild kpbench with clang and libbpf-dev)"
    )]
    Object(String),
    /// The kernel refused the object or a program (verifier, missing BPF support).
    #[error(
        "the kernel refused the transit probes: {0} (needs CONFIG_BPF_SYSCALL and tc BPF support)"
    )]
    Load(String),
    #[error(
        "attaching {program} to {iface} in namespace {ns}: {detail} (needs tc clsact and cls_bpf: modules sch_ingress and cls_bpf before kernel 6.6)"
    )]
    Attach {
        program: &'static str,
        iface: &'static str,
        ns: String,
        detail: String,
    },
    #[error("BPF map {map}: {detail}")]
    Map { map: &'static str, detail: String },
    #[error(transparent)]
    Netns(#[from] dataplane::floor::netns::NetnsError),
    #[error("transit probe thread: {0}")]
    Thread(String),
    /// A signal arrived (`dataplane::floor::exec::cancelled`); the pass stops between
    /// connections.
    #[error("interrupted")]
    Interrupted,
    /// The pass itself could not run (no service, no connection succeeded).
    #[error("transit pass: {0}")]
    Pass(String),
}
