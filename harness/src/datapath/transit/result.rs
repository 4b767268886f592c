//! What a case records of the transit pass (`datapath.transit`), and how it is built
//! from the labelled samples. Pure: the pass hands over samples and tallies.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use super::probes::{Counters, Sample};
use super::stats::{self, Estimate, Quantiles};
use super::target::Target;
use crate::results::TransitPath;

/// `datapath.transit` of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transit {
    /// Per target, service positions in rule order, then `direct`.
    pub targets: Vec<TransitTarget>,
    /// Fitted SYN transit per service position (ns): the regression on the targets'
    /// medians, its 95% interval from the residual error between targets, so whatever
    /// is fixed per target (hash bucket, cache placement) is inside it. Absent with
    /// fewer than three service positions (no residual to judge by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_per_service: Option<Estimate>,
    /// The per-packet precision of the same slope: a bootstrap of the packets inside
    /// each target. It leaves per-target effects out; never a verdict's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_per_service_packets: Option<Estimate>,
    /// The probes' cost in percent of the connection rate (median over paired rounds);
    /// absent when no overhead round ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_overhead_pct: Option<f64>,
    /// The overhead's 95% interval (order statistics over the pairs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_overhead_ci95: Option<[f64; 2]>,
    /// The paired rounds behind the overhead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_overhead_rounds: Vec<OverheadRound>,
    /// The probes' own run time per connection (both programs, every packet), from
    /// the kernel's BPF statistics during the attached rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_run_ns_per_connection: Option<f64>,
    /// Whether every SYN sent was timed.
    pub checks: TransitChecks,
    /// The seed of the random target order of every round (the pass can be replayed).
    #[serde(default)]
    pub round_order_seed: u64,
    /// The paths beyond `clusterip` with no target or no sample, each with why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub absent_paths: BTreeMap<TransitPath, String>,
}

/// One target of the pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitTarget {
    /// `svc-<index>`, `direct`, or the path's name.
    pub target: String,
    /// The service's index (rule order); null for `direct`.
    pub service_index: Option<usize>,
    #[serde(default)]
    pub path: TransitPath,
    /// SYN samples (exact transits; a UDP target's first datagrams) behind the figures.
    pub samples: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syn_ns: Option<Quantiles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synack_ns: Option<Quantiles>,
    /// Connections opened to the target, and those that failed.
    pub connections: u64,
    pub errors: u64,
}

/// One pair of the overhead test: connections per second with the probes attached
/// and detached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverheadRound {
    pub on_per_s: f64,
    pub off_per_s: f64,
}

/// The probe-overhead test: its paired rounds and the programs' own run time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overhead {
    pub rounds: Vec<OverheadRound>,
    pub run_ns_per_connection: Option<f64>,
}

/// The pass's own accounting: every SYN the client sent should have a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitChecks {
    /// Connections that completed (each sent at least one SYN), and UDP flows that got
    /// their reply.
    pub connections: u64,
    /// SYN samples labelled with a target, and a UDP target's first-datagram samples.
    pub syn_samples: u64,
    /// SYNs that entered the node and were never timed out of it.
    pub syn_unmatched: u64,
    /// Retransmitted SYNs (each overwrote its pending start).
    pub syn_retransmitted: u64,
    /// SYN-ACKs that entered the node and were never timed out of it.
    pub synack_unmatched: u64,
    /// Probe datagrams that entered the node and were never timed out of it.
    #[serde(default)]
    pub udp_unmatched: u64,
    /// Samples lost to a full ring buffer.
    pub samples_lost: u64,
    /// Samples whose label was no target of the pass (other traffic).
    pub unlabelled: u64,
    /// The node's transit time for all TCP packets of the pass, per connection
    /// (handshake and close, no request).
    pub node_ns_per_connection: Option<u64>,
}

impl TransitChecks {
    /// Every completed connection's SYN was timed, none went missing.
    pub fn complete(&self) -> bool {
        self.syn_unmatched == 0
            && self.udp_unmatched == 0
            && self.samples_lost == 0
            && self.syn_samples >= self.connections
    }
}

/// Connections made to one target during the pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub ok: u64,
    pub errors: u64,
}

/// The exact samples of one target, kept beside the result (for histograms or files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSamples {
    pub target: String,
    pub service_index: Option<usize>,
    pub path: TransitPath,
    /// The opening packet's transits (SYN, or a UDP target's first datagram) and the
    /// answer's (SYN-ACK, or the echo's reply).
    pub syn_ns: Vec<u64>,
    pub synack_ns: Vec<u64>,
}

/// How the figures are fitted.
#[derive(Debug, Clone, Copy)]
pub struct FitConfig {
    pub resamples: usize,
    pub seed: u64,
}

/// Labels `samples` by target and builds the case's record. `tallies` is parallel to
/// `targets`; `counters` are the pass's own (a difference); `overhead` the paired
/// rounds; `absent` the paths the set gave no target, with why (a path target without
/// a sample joins them).
pub fn summarize(
    targets: &[Target],
    absent: &BTreeMap<TransitPath, String>,
    tallies: &[Tally],
    samples: &[Sample],
    counters: &Counters,
    overhead: &Overhead,
    // The slope's statistics use analysis::stats' fixed resamples and seed, so every
    // slope in kpbench is drawn the same way; `fit.seed` is the round order's.
    fit: FitConfig,
) -> (Transit, Vec<TargetSamples>) {
    // A sample is labelled by the address the client dialled; with a socket load
    // balancer (ebpf mode) the node only ever sees the chosen endpoint, so a service's
    // endpoints label it too. The dialled addresses win (direct is an endpoint of the
    // first service). TCP and UDP are labelled apart: a port number may be both.
    let mut by_addr: HashMap<(SocketAddrV4, bool), usize> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        for b in &t.backends {
            by_addr.insert((*b, t.udp()), i);
        }
    }
    for (i, t) in targets.iter().enumerate() {
        by_addr.insert((t.addr, t.udp()), i);
    }
    let mut kept: Vec<TargetSamples> = targets
        .iter()
        .map(|t| TargetSamples {
            target: t.name.clone(),
            service_index: t.service_index,
            path: t.path,
            syn_ns: Vec::new(),
            synack_ns: Vec::new(),
        })
        .collect();
    let mut unlabelled = 0;
    for s in samples {
        let Some(&i) = by_addr.get(&(s.dest, s.kind.udp())) else {
            unlabelled += 1;
            continue;
        };
        if s.kind.opening() {
            kept[i].syn_ns.push(s.ns);
        } else {
            kept[i].synack_ns.push(s.ns);
        }
    }
    let rows = targets
        .iter()
        .zip(&kept)
        .zip(tallies)
        .map(|((t, k), tally)| TransitTarget {
            target: t.name.clone(),
            service_index: t.service_index,
            path: t.path,
            samples: k.syn_ns.len(),
            syn_ns: stats::quantiles(&k.syn_ns),
            synack_ns: stats::quantiles(&k.synack_ns),
            connections: tally.ok + tally.errors,
            errors: tally.errors,
        })
        .collect();
    let (ns_per_service, ns_per_service_packets) = fit_slope(targets, &kept);
    let pairs: Vec<(f64, f64)> = overhead
        .rounds
        .iter()
        .map(|r| (r.on_per_s, r.off_per_s))
        .collect();
    let overhead_est = stats::paired_overhead_pct(&pairs);
    let connections: u64 = tallies.iter().map(|t| t.ok).sum();
    let checks = TransitChecks {
        connections,
        syn_samples: kept.iter().map(|k| k.syn_ns.len() as u64).sum(),
        syn_unmatched: counters.syn_unmatched(),
        syn_retransmitted: counters.syn_restarted,
        synack_unmatched: counters.synack_unmatched(),
        udp_unmatched: counters.udp_unmatched(),
        samples_lost: counters.ring_full,
        unlabelled,
        node_ns_per_connection: (connections > 0).then(|| counters.transit_ns / connections),
    };
    let transit = Transit {
        targets: rows,
        ns_per_service,
        ns_per_service_packets,
        probe_overhead_pct: overhead_est.map(|e| e.estimate),
        probe_overhead_ci95: overhead_est.map(|e| e.ci95),
        probe_overhead_rounds: overhead.rounds.clone(),
        probe_run_ns_per_connection: overhead.run_ns_per_connection,
        checks,
        round_order_seed: fit.seed,
        absent_paths: absent_paths(absent, targets, &kept, tallies),
    };
    (transit, kept)
}

/// `absent`, and each path target beyond `clusterip` without an opening sample, with
/// what its connections did: the mode's rules did not carry it through the node.
fn absent_paths(
    absent: &BTreeMap<TransitPath, String>,
    targets: &[Target],
    kept: &[TargetSamples],
    tallies: &[Tally],
) -> BTreeMap<TransitPath, String> {
    let mut out = absent.clone();
    for ((t, k), tally) in targets.iter().zip(kept).zip(tallies) {
        if t.path == TransitPath::ClusterIp || !k.syn_ns.is_empty() {
            continue;
        }
        let what = if t.udp() { "datagrams" } else { "connections" };
        out.insert(
            t.path,
            format!(
                "{} (svc-{} at {}{}): no packet timed through the node; {} of {} {what} to it failed",
                t.name,
                t.service_index.unwrap_or_default(),
                t.addr,
                if t.udp() { "/UDP" } else { "" },
                tally.errors,
                tally.ok + tally.errors,
            ),
        );
    }
    out
}

/// The cost per service position from the positioned targets' samples: the
/// target-level regression (the interval a verdict uses) and the packet bootstrap
/// (the per-packet precision).
fn fit_slope(targets: &[Target], kept: &[TargetSamples]) -> (Option<Estimate>, Option<Estimate>) {
    use crate::analysis::stats as a;
    let groups: Vec<(f64, Vec<f64>)> = targets
        .iter()
        .zip(kept)
        .filter_map(|(t, k)| {
            let p = t.position?;
            (!k.syn_ns.is_empty()).then(|| (p as f64, k.syn_ns.iter().map(|&v| v as f64).collect()))
        })
        .collect();
    let points: Vec<(usize, f64, f64)> = groups
        .iter()
        .filter_map(|(x, s)| Some((0, *x, a::median(s)?)))
        .collect();
    let blocks: Vec<a::Group<'_>> = groups
        .iter()
        .map(|(x, s)| a::Group {
            block: 0,
            x: *x,
            samples: s,
        })
        .collect();
    let own = |e: crate::results::Estimate| Estimate {
        estimate: e.estimate,
        ci95: e.ci95,
    };
    (
        a::target_slope(&points).map(|t| own(t.slope)),
        a::bootstrap_slope(&blocks).map(|f| own(f.slope)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::probes::Kind;
    use super::*;

    fn target(name: &str, index: Option<usize>, addr: &str) -> Target {
        Target {
            name: name.into(),
            service_index: index,
            position: index,
            path: TransitPath::ClusterIp,
            addr: addr.parse().unwrap(),
            backends: Vec::new(),
        }
    }

    fn sample(kind: Kind, dest: &str, ns: u64) -> Sample {
        Sample {
            kind,
            key: 0,
            dest: dest.parse().unwrap(),
            ns,
        }
    }

    #[test]
    fn samples_are_labelled_by_the_address_dialled_and_fitted_by_position() {
        let targets = [
            target("svc-0", Some(0), "10.96.0.1:80"),
            target("svc-10", Some(10), "10.96.0.11:80"),
            target("direct", None, "10.128.0.1:8080"),
        ];
        let mut samples = Vec::new();
        for k in 0..7u64 {
            samples.push(sample(Kind::Syn, "10.96.0.1:80", 1_000 + k));
            samples.push(sample(Kind::Syn, "10.96.0.11:80", 1_500 + k));
            samples.push(sample(Kind::Syn, "10.128.0.1:8080", 800 + k));
            samples.push(sample(Kind::SynAck, "10.96.0.1:80", 300 + k));
        }
        samples.push(sample(Kind::Syn, "10.255.0.1:22", 5));
        let tallies = [
            Tally { ok: 7, errors: 0 },
            Tally { ok: 7, errors: 1 },
            Tally { ok: 7, errors: 0 },
        ];
        let counters = Counters {
            transit_ns: 42_000,
            syn_in: 22,
            syn_out: 22,
            ..Default::default()
        };
        let overhead = Overhead {
            rounds: vec![OverheadRound {
                on_per_s: 96.0,
                off_per_s: 100.0,
            }],
            run_ns_per_connection: Some(1_500.0),
        };
        let fit = FitConfig {
            resamples: 100,
            seed: 1,
        };
        let (t, kept) = summarize(
            &targets,
            &BTreeMap::new(),
            &tallies,
            &samples,
            &counters,
            &overhead,
            fit,
        );
        assert_eq!(t.targets.len(), 3);
        assert_eq!(t.targets[0].samples, 7);
        assert_eq!(t.targets[0].syn_ns.unwrap().p50, 1_003);
        assert_eq!(t.targets[0].synack_ns.unwrap().p50, 303);
        assert_eq!(t.targets[1].syn_ns.unwrap().ci95_p50, [1_500, 1_506]);
        assert_eq!(t.targets[1].connections, 8);
        assert_eq!(t.targets[1].errors, 1);
        assert_eq!(t.targets[2].service_index, None);
        assert_eq!(t.targets[2].synack_ns, None);
        // Two positions leave no residual between targets: no verdict's interval.
        assert_eq!(t.ns_per_service, None);
        // (1503 - 1003) / 10 positions; direct is not a position.
        assert_eq!(t.ns_per_service_packets.unwrap().estimate, 50.0);
        assert_eq!(t.probe_overhead_pct, Some(4.0));
        assert_eq!(t.checks.unlabelled, 1);
        assert_eq!(t.checks.syn_samples, 21);
        assert_eq!(t.checks.node_ns_per_connection, Some(2_000));
        assert!(t.checks.complete());
        assert_eq!(kept[2].syn_ns, (800..807).collect::<Vec<u64>>());
    }

    #[test]
    fn the_record_has_the_fields_other_tools_read() {
        let targets = [
            target("svc-0", Some(0), "10.96.0.1:80"),
            target("svc-1", Some(1), "10.96.0.2:80"),
            target("svc-2", Some(2), "10.96.0.3:80"),
        ];
        let samples: Vec<Sample> = (0..10)
            .flat_map(|k| {
                [
                    sample(Kind::Syn, "10.96.0.1:80", 1_000 + k),
                    sample(Kind::Syn, "10.96.0.2:80", 1_100 + k),
                    sample(Kind::Syn, "10.96.0.3:80", 1_210 + k),
                ]
            })
            .collect();
        let (t, _) = summarize(
            &targets,
            &BTreeMap::new(),
            &[Tally { ok: 10, errors: 0 }; 3],
            &samples,
            &Counters::default(),
            &Overhead {
                rounds: vec![OverheadRound {
                    on_per_s: 95.0,
                    off_per_s: 100.0,
                }],
                run_ns_per_connection: None,
            },
            FitConfig {
                resamples: 10,
                seed: 1,
            },
        );
        let v = serde_json::to_value(&t).unwrap();
        let first = &v["targets"][0];
        assert_eq!(first["target"], "svc-0");
        assert_eq!(first["service_index"], 0);
        assert_eq!(first["samples"], 10);
        for q in ["p10", "p50", "p90", "p99"] {
            assert!(first["syn_ns"][q].is_u64(), "{q}");
        }
        assert_eq!(first["syn_ns"]["ci95_p50"].as_array().unwrap().len(), 2);
        assert!(v["ns_per_service"]["estimate"].is_f64());
        assert_eq!(v["ns_per_service"]["ci95"].as_array().unwrap().len(), 2);
        assert_eq!(v["probe_overhead_pct"], 5.0);
        let back: Transit = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }
}
