//! The `churn` object of a case: what its churn phase applied, how long the data path
//! took to follow (network programming latency), what the controller spent, and what
//! traffic through the churned services felt. See results/README.md.

use serde::{Deserialize, Serialize};

use super::{Estimate, Trend};

/// One case's churn phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Churn {
    /// Endpoint changes per second offered.
    pub rate_per_s: f64,
    /// Length of the phase (changes arrive in it), seconds.
    pub duration_s: f64,
    /// rolling, scale or replace.
    pub kind: String,
    /// How the controller batched: `min-sync-period` (kube-proxy, both profiles) or
    /// `per-change` (the eBPF modes, as Cilium's agent).
    pub batching: String,
    /// Services the changes went round.
    pub services_churned: u64,
    /// Changes applied (synced before the phase ended).
    pub changes: u64,
    /// Syncs run.
    pub syncs: u64,
    /// Each sync on the phase's time axis: iptables-legacy's whole-table swap, an
    /// nftables transaction, a batch of map updates.
    pub sync_events: Vec<SyncEvent>,
    /// From each added endpoint's change to the first new connection through its
    /// service's VIP that reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programming_latency_ms: Option<LatencySummaryMs>,
    /// From each removed endpoint's change to the last new connection that reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_latency_ms: Option<LatencySummaryMs>,
    /// The controller's CPU over the phase, percent of one core.
    pub controller_cpu_pct: ControllerCpu,
    /// Background connections through the churned services' VIPs during the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_connections: Option<FailedConnections>,
    /// The same connections in the quiet phase before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_connections_quiet: Option<FailedConnections>,
    /// Request latency p99 during churn and in a quiet phase of the same length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_p99_us: Option<ChurnVsQuiet>,
    /// Why the background traffic could not run, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath_error: Option<String>,
    /// Every observed endpoint's latency at its change's arrival, for the time-series
    /// chart (added: programming latency; removed: removal latency).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_points: Vec<LatencyPoint>,
    /// Every refused, reset or timed-out background connection of the phase (the
    /// first 10,000 per churned service) at the time it was sent, for the chart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_marks: Vec<FailureMark>,
}

/// One failed background connection on the phase's time axis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailureMark {
    /// When it was sent, ms from the phase's start (0 for one sent just before).
    pub at_ms: f64,
    /// `refused`, `reset` or `timeout`.
    pub kind: String,
}

/// One endpoint's latency on the phase's time axis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyPoint {
    pub arrival_ms: f64,
    pub latency_ms: f64,
    /// An added endpoint (programming latency), else a removed one.
    pub added: bool,
}

/// A sync of the churn phase, milliseconds from the phase's start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SyncEvent {
    pub start_ms: f64,
    pub end_ms: f64,
    /// Changes it programmed.
    pub changes: u64,
    /// What it wrote to the kernel: each step of category restore (iptables-legacy's
    /// whole-table swap, an iptables-nft or nftables transaction), ipset, netlink
    /// (IPVS) or bpf (map updates), with how many calls. Absent in older results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<SyncWrite>,
}

/// A kernel write of a sync: the step's name (`iptables-restore`, `nft -f`,
/// `BPF map update`) and its calls in that sync.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SyncWrite {
    pub name: String,
    pub calls: u64,
}

/// Percentiles of per-endpoint latencies, milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencySummaryMs {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// The p99's 95% interval (order statistics; the samples' range below 6 samples).
    pub ci95_p99: [f64; 2],
    pub samples: u64,
    /// Endpoints never observed before the phase ended (added: never reached).
    pub unobserved: u64,
}

/// The controller's CPU, user plus sys of its thread and every tool it ran, over the
/// phase: the case's own profile is set, the other is in its own case.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ControllerCpu {
    pub kube_proxy: Option<f64>,
    pub floor: Option<f64>,
    /// `kube_proxy`'s 95% interval (the phase's syncs redrawn), with 3 syncs or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_proxy_ci95: Option<[f64; 2]>,
    /// `floor`'s 95% interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_ci95: Option<[f64; 2]>,
}

/// Failed background connections by kind, of those attempted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailedConnections {
    pub refused: u64,
    pub reset: u64,
    pub timeout: u64,
    pub attempted: u64,
}

/// A figure during churn against the quiet phase, the difference judged by the one
/// rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChurnVsQuiet {
    pub churn: f64,
    pub quiet: f64,
    pub difference: JudgedDifference,
}

/// churn minus quiet with its interval and the verdict of `stats::trend`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JudgedDifference {
    pub estimate: f64,
    pub ci95: [f64; 2],
    pub verdict: Trend,
    /// The verdict's practical margin (same unit).
    pub margin: f64,
}

impl JudgedDifference {
    pub fn estimate(&self) -> Estimate {
        Estimate {
            estimate: self.estimate,
            ci95: self.ci95,
        }
    }
}
