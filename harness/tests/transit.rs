//! Privileged transit tests: the tc probes in a real topology with real rules, timing
//! the SYN through the node per service position. They need root: without feature
//! `root-tests` they are reported as ignored; with it, a missing root, tool or BPF
//! build fails them.

mod tier;

use std::time::Duration;

use dataplane::{backend, Backend, Deadline, Mode, ModeSpec, ServiceSet};
use harness::datapath::serve::Server;
use harness::datapath::start_backend;
use harness::datapath::transit::{self, PassConfig, Probes, TransitPass};
use harness::sandbox::topology::Topology;

fn backend_of(mode: Mode) -> Box<dyn Backend> {
    tier::require_root();
    let b = backend(ModeSpec::new(mode)).unwrap_or_else(|e| panic!("{e}"));
    for t in b.tools() {
        tier::require_tool(t);
    }
    b
}

/// A topology named for this test with `set` programmed into its node by `b` and the
/// backend server answering for every endpoint.
fn programmed(b: &dyn Backend, tag: &str, set: &ServiceSet) -> (Topology, Server) {
    let topo =
        Topology::create(&format!("test-{}-tr-{tag}", std::process::id())).expect("topology");
    b.sync(
        &topo.node,
        None,
        set,
        Deadline::after(Duration::from_secs(300)),
    )
    .expect("sync");
    let server = start_backend(&topo).expect("server");
    (topo, server)
}

/// Enough rounds for medians within a few tens of ns, few overhead pairs: the tests
/// check the lookup, the overhead has its own figure in real runs.
fn config() -> PassConfig {
    PassConfig {
        rounds: 150,
        overhead_pairs: 4,
        overhead_round: Duration::from_millis(100),
        ..PassConfig::default()
    }
}

fn pass(b: &dyn Backend, tag: &str, services: usize) -> TransitPass {
    let set = ServiceSet::generate(services, 1);
    let (topo, _server) = programmed(b, tag, &set);
    let mut probes = Probes::load(&topo.node).unwrap_or_else(|e| panic!("{e}"));
    let p = transit::measure(&mut probes, &topo, &set, &config()).unwrap_or_else(|e| panic!("{e}"));
    for t in &p.transit.targets {
        let q = t.syn_ns.expect("SYN samples");
        eprintln!(
            "{} {services}: {:>9} p50 {:>7} ns [{}, {}]  synack p50 {:?}",
            b.mode(),
            t.target,
            q.p50,
            q.ci95_p50[0],
            q.ci95_p50[1],
            t.synack_ns.map(|q| q.p50)
        );
    }
    eprintln!(
        "{} {services}: ns/service {:?}; overhead {:?}%; checks {:?}",
        b.mode(),
        p.transit.ns_per_service,
        p.transit.probe_overhead_pct,
        p.transit.checks
    );
    p
}

/// Median SYN transit of the last service position minus the first's (ns).
fn last_minus_first(p: &TransitPass) -> f64 {
    let services: Vec<_> = p
        .transit
        .targets
        .iter()
        .filter(|t| t.service_index.is_some())
        .collect();
    let p50 = |t: &transit::TransitTarget| t.syn_ns.expect("samples").p50 as f64;
    p50(services[services.len() - 1]) - p50(services[0])
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn iptables_legacy_transit_grows_with_the_service_position() {
    let b = backend_of(Mode::IptablesLegacy);
    for services in [100, 5_000] {
        let p = pass(&*b, &format!("ipt{services}"), services);
        let slope = p.transit.ns_per_service.expect("a slope");
        assert!(
            slope.excludes_zero() && slope.estimate > 0.0,
            "iptables-legacy at {services} services: the per-position cost should be measurable: {slope:?}"
        );
        assert!(p.transit.checks.complete(), "{:?}", p.transit.checks);
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn nftables_transit_does_not_depend_on_the_service_position() {
    let nft = backend_of(Mode::Nftables);
    let legacy = backend_of(Mode::IptablesLegacy);
    let n = last_minus_first(&pass(&*nft, "nft", 5_000));
    let l = last_minus_first(&pass(&*legacy, "nftref", 5_000));
    eprintln!("5,000 services, last - first: nftables {n:.0} ns, iptables-legacy {l:.0} ns");
    assert!(
        n < 1_000.0 || n < l / 10.0,
        "nftables' verdict map should not grow with the position: last - first {n:.0} ns (iptables-legacy {l:.0} ns)"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn every_syn_sent_has_a_sample_and_the_probes_go_with_their_owner() {
    let b = backend_of(Mode::Nftables);
    let p = pass(&*b, "quiet", 20);
    let c = p.transit.checks;
    assert!(c.connections > 0);
    assert_eq!(c.syn_unmatched, 0, "{c:?}");
    assert_eq!(c.synack_unmatched, 0, "{c:?}");
    assert_eq!(c.samples_lost, 0, "{c:?}");
    for t in &p.transit.targets {
        assert_eq!(t.errors, 0, "{}", t.target);
        assert_eq!(
            t.samples as u64, t.connections,
            "{}: one SYN sample per connection",
            t.target
        );
        let s = p.samples.iter().find(|s| s.target == t.target).unwrap();
        assert_eq!(
            s.synack_ns.len() as u64,
            t.connections,
            "{}: one SYN-ACK sample per connection",
            t.target
        );
    }
    assert!(c.node_ns_per_connection.unwrap() > 0);
    assert!(p.transit.probe_overhead_pct.is_some());

    // Loaded while the probes live, gone with them.
    let loaded = || {
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter(|p| p.name_as_str() == Some("transit_in"))
            .count()
    };
    let set = ServiceSet::generate(1, 1);
    let (topo, _server) = programmed(&*b, "drop", &set);
    let before = loaded();
    let probes = Probes::load(&topo.node).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded(), before + 1);
    drop(probes);
    assert_eq!(loaded(), before);
}

/// One transit case as a run makes it: the scenario's default replicates, the first
/// with the generated VIPs, each further one in a fresh topology with the VIPs shuffled
/// over the services, pooled into one cost per position.
fn replicated(mode: Mode, tag: &str, services: usize) -> harness::results::Transit {
    use harness::datapath::measure::transit_replicate;
    use harness::datapath::replicates::{assign_vips, pool, vip_seed};
    let b = backend_of(mode);
    let cfg = harness::scenario::Datapath::default();
    let set = ServiceSet::generate(services, 1);
    let mut all = Vec::new();
    for r in 0..cfg.replicates {
        let shuffled = assign_vips(&set, vip_seed(r));
        let topo = Topology::create(&format!("test-{}-rp-{tag}{r}", std::process::id()))
            .expect("topology");
        b.sync(
            &topo.node,
            None,
            &shuffled,
            Deadline::after(Duration::from_secs(300)),
        )
        .expect("sync");
        let t = transit_replicate(&topo, &shuffled, &cfg, r)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("a fitted cost per position");
        all.push((vip_seed(r), t));
    }
    let mut first = all[0].1.clone();
    pool(&mut first, &all);
    first
}

/// Item 5 of issue 18: the same small case twice, each in fresh sandboxes, gives cost
/// per position intervals that overlap, for a mode that grows and one that is flat.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_same_case_twice_gives_overlapping_intervals() {
    for (mode, tag) in [(Mode::IptablesLegacy, "ipt"), (Mode::Nftables, "nft")] {
        let started = std::time::Instant::now();
        let runs: Vec<_> = (0..2)
            .map(|k| replicated(mode, &format!("{tag}{k}"), 1_000))
            .collect();
        for (k, t) in runs.iter().enumerate() {
            let s = t.ns_per_service;
            let each: Vec<String> = t
                .replicates
                .iter()
                .map(|r| {
                    format!(
                        "{:.3} [{:.3}, {:.3}]",
                        r.ns_per_service.estimate,
                        r.ns_per_service.ci95[0],
                        r.ns_per_service.ci95[1]
                    )
                })
                .collect();
            println!(
                "reproducibility {mode} 1000 services, run {}: {:.3} ns/position [{:.3}, {:.3}] {:?} (margin {:?}, spans {:?}); replicates {}; per-packet {:?}; probe overhead {:?}",
                k + 1,
                s.estimate,
                s.ci95[0],
                s.ci95[1],
                s.verdict,
                s.margin,
                s.spans,
                each.join(", "),
                t.ns_per_service_packets,
                t.probe_overhead,
            );
        }
        println!(
            "reproducibility {mode}: both runs in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let (a, b) = (runs[0].ns_per_service, runs[1].ns_per_service);
        assert!(
            a.ci95[0] <= b.ci95[1] && b.ci95[0] <= a.ci95[1],
            "{mode}: the two runs' intervals do not overlap: {a:?} against {b:?}"
        );
        assert_eq!(a.spans, Some(harness::results::Spans::Replicates));
    }
}

/// Issue 20 item 5: a shaped set's further lookup paths are timed in the same pass as
/// the ClusterIP positions: a NodePort through the node's address, an affinity service,
/// a UDP port (its first datagram, answered by the echo), an `externalTrafficPolicy:
/// Local` service through its node port. Each has samples for every flow it made and a
/// transit of the order of the positions'.
#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn a_shaped_set_times_every_lookup_path() {
    use dataplane::conformance::featured::featured_set;
    use dataplane::floor::spec::Feature;
    use harness::results::TransitPath;
    for (mode, tag) in [(Mode::IptablesLegacy, "pl"), (Mode::Nftables, "pn")] {
        let b = backend_of(mode);
        let set = featured_set(20, 1, &Feature::ALL);
        let (topo, _server) = programmed(&*b, tag, &set);
        let mut probes = Probes::load(&topo.node).unwrap_or_else(|e| panic!("{e}"));
        let p = transit::measure(&mut probes, &topo, &set, &config())
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let t = &p.transit;
        for x in &t.targets {
            eprintln!(
                "{mode} paths: {:>9} {:<9} samples {:>4} of {:>4} (errors {}) syn p50 {:?} answer p50 {:?}",
                x.target,
                x.path.name(),
                x.samples,
                x.connections,
                x.errors,
                x.syn_ns.map(|q| q.p50),
                x.synack_ns.map(|q| q.p50)
            );
        }
        eprintln!("{mode} paths: checks {:?}", t.checks);
        assert!(t.absent_paths.is_empty(), "{mode}: {:?}", t.absent_paths);
        let direct = t.targets.iter().find(|x| x.target == "direct").unwrap();
        let direct_p50 = direct.syn_ns.expect("direct samples").p50;
        for path in &TransitPath::ALL[1..] {
            let x = t
                .targets
                .iter()
                .find(|x| x.path == *path)
                .unwrap_or_else(|| panic!("{mode}: no {} target", path.name()));
            assert_eq!(x.errors, 0, "{mode} {}: every flow answered", x.target);
            assert!(x.samples > 0, "{mode} {}: no sample", x.target);
            assert_eq!(
                x.samples as u64, x.connections,
                "{mode} {}: one opening sample per flow",
                x.target
            );
            let syn = x.syn_ns.unwrap().p50;
            let answer = x.synack_ns.expect("the answer timed too").p50;
            assert!(
                syn > direct_p50 / 2 && syn < 1_000_000,
                "{mode} {}: {syn} ns against direct's {direct_p50} ns is implausible",
                x.target
            );
            assert!(
                answer > 0 && answer < 1_000_000,
                "{mode} {}: {answer}",
                x.target
            );
        }
        assert_eq!(t.checks.udp_unmatched, 0, "{mode}: {:?}", t.checks);
        assert!(
            t.ns_per_service.is_some(),
            "{mode}: the positions still fit"
        );
    }
}
