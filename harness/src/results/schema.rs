//! The types of `results.json`, field by field; `shared/results.schema.json` is the
//! contract they serialize to. Units are in the field names (`_ms`, `_us`, `_bytes`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `schema_version` this build writes and reads; bumped when a field is renamed or
/// changes meaning.
pub const SCHEMA_VERSION: &str = "kpbench.results/1";

/// One run: the whole of `results.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// Always [`SCHEMA_VERSION`]; a reader refuses any other.
    pub schema_version: String,
    /// When, with what and from which scenario the run was made.
    pub run: RunInfo,
    /// Where cases ran. Numbers are only comparable between cases of the same
    /// environment.
    pub environments: Vec<Environment>,
    /// Every case, in the order it ran (at least one).
    pub cases: Vec<Case>,
}

/// The run as a whole.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// The run's id (by default also its directory's name, `results/<id>`).
    pub id: String,
    /// When the run started, RFC 3339 (UTC).
    pub started_at: String,
    /// When the run ended (or, while it is going, when the file was last written),
    /// RFC 3339 (UTC).
    pub finished_at: String,
    /// kpbench's version (the harness crate's).
    pub tool_version: String,
    /// The git commit kpbench was built from (40 hex digits); `None` when the build had
    /// no git (see harness/build.rs).
    pub git_rev: Option<String>,
    /// Whether the sources the binary was built from differed from `git_rev` (tracked
    /// changes or new files under harness/, dataplane/, scenarios/ or the workspace
    /// manifests); `None` when unknown.
    #[serde(default)]
    pub git_dirty: Option<bool>,
    /// The scenario that was run.
    pub scenario: ScenarioInfo,
    /// Set when the run was stopped early (signal) or is still going.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// The scenario of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioInfo {
    /// The scenario's `name` (default: its file's stem).
    pub name: String,
    /// The scenario file as given on the command line; `None` for the embedded quick
    /// scenario.
    pub file: Option<String>,
    /// The scenario as run, every default filled in.
    pub resolved: serde_json::Value,
}

/// A machine (or lab guest) that cases ran on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// What cases name it by: `host`, or `lab-<kernel release>`.
    pub id: String,
    /// host, lab-kvm or lab-tcg.
    pub kind: String,
    /// The running kernel's release (`uname -r`).
    pub kernel_release: String,
    /// For a lab: the package, file or URL the kernel came from.
    pub kernel_source: Option<String>,
    /// CPUs available to kpbench.
    pub cpus: u32,
    /// The CPU's model name, from /proc/cpuinfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Total memory, from /proc/meminfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Which machine it was: a digest of /etc/machine-id (never the id itself); a lab
    /// guest records the host's. `kpbench compare` refuses regression verdicts between
    /// machines. Absent in results from before it was recorded, or without a machine id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// What explains a per-rule cost across machines: microcode, the kernel's
    /// vulnerability mitigations, the frequency driver and governor. Absent in results
    /// from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuState>,
    /// Version string of every external program used (iptables-restore, nft, ipset,
    /// ...), by program name.
    pub tools: BTreeMap<String, String>,
}

/// The CPU's state that changes what a rule costs, as the kernel reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CpuState {
    /// The microcode revision, from /proc/cpuinfo (`0x1000065`); `None` when the kernel
    /// shows none (some guests).
    pub microcode: Option<String>,
    /// `/sys/devices/system/cpu/vulnerabilities/*`, file name to its text ("Mitigation:
    /// Retpolines; ..."); empty when the kernel has no such directory.
    pub vulnerabilities: BTreeMap<String, String>,
    /// `cpu0/cpufreq/scaling_driver` (`intel_pstate`, `acpi-cpufreq`); `None` when the
    /// machine has no cpufreq (most guests).
    pub cpufreq_driver: Option<String>,
    /// `cpu0/cpufreq/scaling_governor` (`performance`, `powersave`); `None` without
    /// cpufreq.
    pub governor: Option<String>,
    /// The kernel command line's tokens that switch mitigations or SMT
    /// (`mitigations=off`, `spectre_v2=retpoline`, `pti=off`, `nosmt`), in order.
    pub cmdline_mitigations: Vec<String>,
}

/// How a case ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Measured.
    Ok,
    /// Not attempted: the environment cannot run it (missing tool or kernel feature) or
    /// a smaller scale of its mode already ran out of time.
    Skipped,
    /// Attempted and failed; `reason` says where.
    Failed,
}

/// One mode at one scale in one environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Case {
    /// The [`Environment::id`] it ran in.
    pub environment: String,
    /// The dataplane mode: iptables, iptables-legacy, nftables or ipvs.
    pub mode: String,
    /// IPVS only: the scheduler (rr, lc, sh, dh, wrr, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvs_scheduler: Option<String>,
    /// How syncs were driven: `kube-proxy` (its sync loop's tool runs and requests) or
    /// `floor` (the fastest way to the identical kernel objects). Absent in results
    /// written before profiles existed, which were neither exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The kube-proxy release the `kube-proxy` profile replayed ("1.36").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_proxy_version: Option<String>,
    /// Services programmed.
    pub services: u64,
    /// Endpoints behind each service.
    pub endpoints_per_service: u64,
    /// Whether it was measured, skipped or failed.
    pub status: Status,
    /// Set when status is not ok: what was missing or what failed, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rules the full sync left in the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
    /// How long syncs took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Sync>,
    /// Traffic through the programmed rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath: Option<Datapath>,
    /// The churn phase, when the scenario has one: at its first rate when it sweeps
    /// several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<super::Churn>,
    /// The further phases of a rate sweep (`[churn] rate_per_s = [...]`), one per
    /// further rate in the scenario's order, each measured in this case after the one
    /// before, on the rules it left. Empty (absent) with one rate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub churn_sweep: Vec<super::Churn>,
    /// Wall time the whole case took, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_s: Option<f64>,
    /// The profile whose sync left the kernel objects the read-back and the data path
    /// saw: the case's own `profile`, or `floor` when its kube-proxy full sync ran past
    /// the case's limit (`sync_over_limit_s`). Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programmed_by: Option<String>,
    /// Set when the kube-proxy full sync ran past the case's limit: that limit, seconds.
    /// `sync.full` then holds the partial timings up to it, and no incremental syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_over_limit_s: Option<f64>,
    /// What the mode's data path does not exercise of the features the case's
    /// services use, one sentence each (`Backend::unexercised`): the kernel objects
    /// are programmed, but traffic through kpbench's programs does not take that
    /// path. Empty (absent) for N x E cases and modes whose data path is the real one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Case {
    /// Its churn phases: `churn`, then the sweep's further rates.
    pub fn churn_phases(&self) -> impl Iterator<Item = &super::Churn> {
        self.churn.iter().chain(&self.churn_sweep)
    }
}

/// The rules of a case, as read back from the kernel after the full sync.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rules {
    /// iptables rules, nft rules and set elements, or IPVS services and destinations.
    pub kernel_objects: u64,
    /// Size of the full sync's payload (the `iptables-restore` input, the nft script,
    /// or the netlink messages), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
    /// Kernel memory the rules take, bytes; `null` when not measured.
    #[serde(default)]
    pub kernel_memory_bytes: Option<u64>,
}

/// Sync times: the full sync and each kind of incremental one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sync {
    /// Programming every service from empty rules.
    pub full: DurationSummary,
    /// Adding one service to the full set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_service: Option<DurationSummary>,
    /// Removing one service from the full set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_service: Option<DurationSummary>,
    /// Changing the endpoints of one service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_endpoints: Option<DurationSummary>,
    /// For a shaped scenario: the incremental syncs of each pick (`typical`,
    /// `largest`, `nodeport`), in that order, each its own samples; `add_service`,
    /// `remove_service` and `update_endpoints` above are the `typical` pick's. Empty
    /// (absent) for N x E scenarios and in older results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub picks: Vec<PickedSyncs>,
}

/// The incremental syncs of one pick of a shaped scenario: which service it picked
/// and, per kind of sync, that pick's own samples. Each round adds a copy of the
/// picked service (its type, ports, affinity, policies and endpoint count, at the next
/// free index and fresh addresses), removes it, and replaces one endpoint of the
/// picked service itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PickedSyncs {
    /// `typical`, `largest` or `nodeport`.
    pub pick: String,
    /// The picked service's index (`svc-<i>`); absent when the pick found none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_index: Option<u64>,
    /// Its type: `ClusterIP`, `NodePort` or `LoadBalancer`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its number of ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<u64>,
    /// Its number of endpoints (every condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_service: Option<DurationSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_service: Option<DurationSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_endpoints: Option<DurationSummary>,
    /// Why a kind of sync is absent or has fewer samples than the scenario's
    /// `repeats` (no such service in the shape, no endpoint to replace, the case's
    /// time limit); absent when every kind has them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Repeated wall-time measurements of one kind of sync, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DurationSummary {
    /// How many times it was measured.
    pub samples: u64,
    /// Median wall time.
    pub p50_ms: f64,
    /// 90th percentile wall time.
    #[serde(default)]
    pub p90_ms: f64,
    /// 99th percentile wall time.
    pub p99_ms: f64,
    /// Slowest sample.
    pub max_ms: f64,
    /// CPU of the process and its children (the tools it ran), median per sample.
    #[serde(default)]
    pub cpu_user_ms: f64,
    /// System CPU of the same, median per sample.
    #[serde(default)]
    pub cpu_sys_ms: f64,
    /// Every sample's wall time, so comparisons can judge noise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples_ms: Vec<f64>,
    /// Bytes one such sync wrote to its tools and the kernel (restore input, nft
    /// transactions, netlink messages), the median over the samples: how much of the
    /// table an update rewrites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
    /// Where the time of one such sync went: each tool run and netlink request by
    /// name, averaged over the samples, in the order they first ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepSummary>,
}

/// One named step of a sync (`iptables-restore`, `ipset add`, `IPVS GET_SERVICE`),
/// averaged over the samples of its summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepSummary {
    /// The tool and its verb, or the netlink request.
    pub name: String,
    /// What it spends time on: listing, ensure, ipset, restore, netlink or controller
    /// (kpbench's own rendering and parsing, outside any tool).
    pub category: String,
    /// Runs per sync.
    pub calls: f64,
    /// Wall time per sync, milliseconds.
    pub wall_ms: f64,
    /// User CPU per sync (the tool's own, or kpbench's thread for netlink), milliseconds.
    pub user_ms: f64,
    /// System CPU per sync (kernel work on the tool's behalf), milliseconds.
    pub sys_ms: f64,
}

/// Percentiles of a latency histogram in microseconds (all 0 when nothing answered).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One open-loop load phase against one target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// first, middle, last, direct or random.
    pub target: String,
    /// The service the requests went through; `None` for `direct` (straight to an
    /// endpoint, the baseline without the dataplane).
    pub service_index: Option<u64>,
    /// Requests the generator meant to send (answered plus failed).
    pub requests: u64,
    /// Requests that failed, of every kind.
    pub errors: u64,
    /// Failed requests by kind (refused, reset, timeout, http_status, not_sent,
    /// other); kinds that did not occur are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Requests per second offered (open loop); `None` for a closed loop.
    pub offered_rate_per_s: Option<f64>,
    /// Answered requests per second over the phase's wall time.
    pub achieved_rate_per_s: f64,
    /// Latency of answered requests from their due time (coordinated-omission
    /// corrected), microseconds.
    pub latency_us: Latency,
    /// TCP connect time of each new connection (the SYN, where the rule lookup
    /// happens), microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_latency_us: Option<Latency>,
    /// HdrHistogram V2 (deflate) serialization of `latency_us`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdr_histogram_base64: Option<String>,
    /// Whole-kernel CPU over this target's load window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// The load generator's own CPU per request, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_per_request_us: Option<f64>,
}

/// Whole-kernel CPU over a load window (all CPUs, every namespace), from /proc/stat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Cpu {
    /// User time, nice included.
    pub user_ms: f64,
    /// System time.
    pub sys_ms: f64,
    /// Softirq time (where most packet processing happens).
    pub softirq_ms: f64,
    /// Busy CPU (user + sys + irq + softirq) per request, microseconds.
    pub per_request_us: f64,
    /// `per_request_us` minus the direct target's at the same offered rate: what the
    /// dataplane costs per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_per_request_us: Option<f64>,
    /// The node's in-kernel time for all packets of one request's connection,
    /// nanoseconds, from the transit probes: the CPU that belongs to the dataplane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane_ns_per_request: Option<f64>,
    /// Softirq share of all CPU time during the max-rate phase, percent (machine-wide:
    /// the node's packet processing runs in softirq).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate_softirq_pct: Option<f64>,
}

/// The closed-loop phase through the middle service: as many requests as the
/// connections carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MaxRate {
    /// Answered requests per second.
    pub requests_per_s: f64,
    /// Requests that failed.
    pub errors: u64,
}

/// Which endpoints of the measured services answered, and how evenly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Distribution {
    /// Endpoints of the measured services that answered at least once.
    pub endpoints_hit: u64,
    /// Endpoints of the measured services.
    pub endpoints_total: u64,
    /// Largest deviation of one endpoint's answers from an even share of its
    /// service's, percent.
    pub max_deviation_pct: f64,
}

/// Traffic through the programmed rules of a case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Datapath {
    /// Each request opened a new TCP connection (no keep-alive), so each paid the
    /// rule lookup on its SYN.
    pub connection_per_request: bool,
    /// One open-loop phase per target, the direct baseline first.
    pub targets: Vec<Target>,
    /// Per target through a VIP: p50 latency through the VIP minus p50 latency to the
    /// endpoint directly, microseconds.
    pub lookup_overhead_us: BTreeMap<String, f64>,
    /// The same per target from the SYN alone: TCP connect latency p25 through the VIP
    /// minus p25 to the endpoint directly. The rule lookup happens on the SYN, so this
    /// carries it without the HTTP exchange and with far less scheduling noise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub syn_overhead_us: BTreeMap<String, f64>,
    /// The closed-loop max-rate phase; `None` when skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<MaxRate>,
    /// Whole-kernel CPU summed over the targets through a VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Which endpoints of the measured services answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// The SYN's and SYN-ACK's transit through the node, timed inside the kernel by tc
    /// programs: the lookup cost per service position. `None` when BPF could not load
    /// (`transit_error` says why) or in results from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit: Option<Transit>,
    /// Why the in-kernel timing could not run, and what to do; the end-to-end figures
    /// above are still measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_error: Option<String>,
    /// The end-to-end figures' noise floor: the same direct target measured twice, and
    /// how far apart the two came out. An end-to-end overhead smaller than this is
    /// noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_floor_us: Option<NoiseFloor>,
}

/// Direct against direct: the difference between two phases to the same endpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct NoiseFloor {
    /// |request p50, second phase - first phase|, microseconds.
    pub request_p50: f64,
    /// |connect p25, second phase - first phase| (the SYN's figure), microseconds.
    pub connect_p25: f64,
}

/// In-kernel transit of connection-opening packets through the node namespace: tc
/// ingress on the client-facing veth to tc egress on the backend-facing veth (the SYN),
/// and back (the SYN-ACK), keyed by the SYN's sequence number. Targets are interleaved
/// in one pass, so the machine's speed phases hit all of them alike.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transit {
    /// One entry per target: service positions from first to last, and `direct`.
    pub targets: Vec<TransitTarget>,
    /// The SYN's transit cost per service position: the regression on the targets'
    /// medians (an intercept per replicate), ns per service, with its 95% interval
    /// from the residual error between targets and replicates, its verdict and margin,
    /// and what the interval spans.
    pub ns_per_service: LookupSlope,
    /// The per-packet precision of the same slope: a bootstrap of the packets inside
    /// each target. It leaves effects fixed per target out: never a verdict's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_per_service_packets: Option<Estimate>,
    /// Each replicate's own cost per position, so the spread is visible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicates: Vec<TransitReplicate>,
    /// The seed of the random target order in every round of the (first) pass; each
    /// further replicate's is this plus its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_order_seed: Option<u64>,
    /// How much the probes slow new connections down, percent (paired test: rounds
    /// with and without the programs attached, alternated; the median over the pairs).
    /// Kept for compatibility: `probe_overhead` has it with its interval and verdict.
    pub probe_overhead_pct: f64,
    /// The overhead's 95% interval over the pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_overhead_ci95: Option<[f64; 2]>,
    /// The overhead with its interval and verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_overhead: Option<ProbeOverhead>,
    /// The probes' own BPF run time per connection (both programs, every packet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_run_ns_per_connection: Option<f64>,
    /// SYNs sent whose transit was not captured (a retransmission overwrote its start,
    /// or the packet took another path). 0 in a quiet pass.
    #[serde(default)]
    pub unmatched: u64,
    /// The paths beyond `clusterip` the case has no target for, each with why: the
    /// service set has no service of that kind, or its target had no sample in this
    /// mode (with the connections' outcome). Empty for a plain N x E set, which has
    /// none of them to measure.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub absent_paths: BTreeMap<TransitPath, String>,
}

impl Transit {
    /// The service positions (path `clusterip` with a service), in their order.
    pub fn positions(&self) -> impl Iterator<Item = &TransitTarget> {
        self.targets
            .iter()
            .filter(|t| t.path == TransitPath::ClusterIp && t.service_index.is_some())
    }

    /// The targets of the other paths (`nodeport`, `affinity`, `udp`, `local`).
    pub fn path_targets(&self) -> impl Iterator<Item = &TransitTarget> {
        self.targets
            .iter()
            .filter(|t| t.path != TransitPath::ClusterIp)
    }
}

/// One target of the transit pass.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TransitTarget {
    /// `svc-<index>` for a service VIP, `direct` for an endpoint reached directly, and
    /// for the other paths the path's name (`nodeport`, `affinity`, `udp`, `local`).
    pub target: String,
    /// The service's position in kube-proxy's rule order (0 = first); `None` for direct.
    pub service_index: Option<u64>,
    /// How the target is reached ([`TransitPath`]). The service positions and `direct`
    /// (their baseline) are `clusterip`; results from before paths existed have only
    /// those, so a missing field reads as `clusterip`.
    #[serde(default)]
    pub path: TransitPath,
    /// Connections timed.
    pub samples: u64,
    /// The SYN's transit, nanoseconds.
    pub syn_ns: TransitPercentiles,
    /// The SYN-ACK's transit back, nanoseconds.
    pub synack_ns: TransitPercentiles,
    /// eBPF modes: the lookup program's own run time per invocation over this
    /// target's phase (run_time_ns / run_cnt), nanoseconds: per connect for `ebpf`
    /// (connect4), per packet from the client for `ebpf-tc` (tc ingress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_run_ns: Option<f64>,
}

/// The lookup path a transit target takes through the node.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TransitPath {
    /// A TCP ClusterIP at its service position (and `direct`, their baseline): the
    /// positions the cost per position is fitted on.
    #[default]
    #[serde(rename = "clusterip")]
    ClusterIp,
    /// A NodePort (or LoadBalancer) service with Cluster external policy, dialled at the
    /// node's address and node port.
    #[serde(rename = "nodeport")]
    NodePort,
    /// A `sessionAffinity: ClientIP` service, at its ClusterIP.
    Affinity,
    /// A UDP port, at its ClusterIP: the first datagram of a new flow and its reply are
    /// timed where a TCP target's SYN and SYN-ACK are.
    Udp,
    /// An `externalTrafficPolicy: Local` service with an endpoint on the node, dialled at
    /// the node's address and node port.
    Local,
}

impl TransitPath {
    /// Every path, in the order targets and reports list them.
    pub const ALL: [TransitPath; 5] = [
        TransitPath::ClusterIp,
        TransitPath::NodePort,
        TransitPath::Affinity,
        TransitPath::Udp,
        TransitPath::Local,
    ];

    /// The name results spell it with (`clusterip`, `nodeport`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TransitPath::ClusterIp => "clusterip",
            TransitPath::NodePort => "nodeport",
            TransitPath::Affinity => "affinity",
            TransitPath::Udp => "udp",
            TransitPath::Local => "local",
        }
    }
}

/// Percentiles of one packet's transit, nanoseconds, with the median's 95% interval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TransitPercentiles {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// 95% confidence interval of the median (order statistics).
    pub ci95_p50: [f64; 2],
}

/// What a figure shows by kpbench's one rule (`analysis::stats::trend`): grows or
/// shrinks beyond its margin, flat within it, inconclusive, or a significant move
/// against the expected direction (likely an artefact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    Grows,
    Shrinks,
    Flat,
    Inconclusive,
    /// A significant move against the expected direction: likely an artefact.
    Unexpected,
}

impl Trend {
    /// The word results and reports use.
    pub fn label(self) -> &'static str {
        match self {
            Trend::Grows => "grows",
            Trend::Shrinks => "shrinks",
            Trend::Flat => "flat",
            Trend::Inconclusive => "inconclusive",
            Trend::Unexpected => "unexpected: likely an artefact",
        }
    }
}

/// How a summary's p99 is labelled: of fewer than 100 samples it is their maximum,
/// "max (n=5)"; otherwise "p99".
pub fn tail_label(samples: u64) -> String {
    if samples < 100 {
        format!("max (n={samples})")
    } else {
        "p99".into()
    }
}

/// What an interval spans: the variation it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spans {
    /// Packets inside each target of one pass (per-packet precision only).
    Packets,
    /// The targets of one pass (one replicate): effects fixed per target inside.
    Targets,
    /// Independent replicates of the pass, each in a fresh node namespace with its own
    /// VIP assignment, within one run.
    Replicates,
    /// Separate runs (run-to-run noise included).
    Runs,
}

impl Spans {
    /// Beside an interval in a report: "across replicates".
    pub fn words(self) -> &'static str {
        match self {
            Spans::Packets => "within one run, packets only",
            Spans::Targets => "within one run, across targets",
            Spans::Replicates => "within one run, across replicates",
            Spans::Runs => "across runs",
        }
    }
}

/// The cost per service position with its interval and the verdict drawn from it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LookupSlope {
    /// ns per service position.
    pub estimate: f64,
    pub ci95: [f64; 2],
    /// The one rule's verdict with `margin`; absent in results from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Trend>,
    /// The practical margin of the verdict, ns per position (0.5, or a tenth of
    /// iptables-legacy's slope in the same environment, whichever is larger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    /// What the interval spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<Spans>,
}

impl LookupSlope {
    /// The figure alone.
    pub fn fit(&self) -> Estimate {
        Estimate {
            estimate: self.estimate,
            ci95: self.ci95,
        }
    }

    /// The figure without a verdict yet.
    pub fn undecided(e: Estimate, spans: Spans) -> LookupSlope {
        LookupSlope {
            estimate: e.estimate,
            ci95: e.ci95,
            verdict: None,
            margin: None,
            spans: Some(spans),
        }
    }
}

/// One replicate of the transit pass: its own cost per position (the regression on its
/// targets' medians) and the seed that assigned VIPs to its service positions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct TransitReplicate {
    pub ns_per_service: Estimate,
    /// 0: the generated assignment (service i has the i-th VIP); otherwise the seed of
    /// the shuffle of VIPs over services.
    pub vip_assignment_seed: u64,
}

/// The probes' cost on the connection rate, percent, with its verdict (margin ±5
/// points; a significant negative overhead is `unexpected`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ProbeOverhead {
    pub estimate: f64,
    pub ci95: [f64; 2],
    pub verdict: Trend,
}

/// An estimate with its 95% confidence interval.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    pub estimate: f64,
    pub ci95: [f64; 2],
}

impl Estimate {
    /// Whether the interval includes zero (the one rule, `analysis::stats::trend`, then
    /// calls the figure flat or inconclusive, never grows or shrinks).
    pub fn includes_zero(&self) -> bool {
        self.ci95[0] <= 0.0 && self.ci95[1] >= 0.0
    }
}
