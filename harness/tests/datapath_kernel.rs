//! Privileged data-path tests: real rules in a namespace topology, real connections
//! through them. They need root: without feature `root-tests` they are reported as
//! ignored; with it, a missing root or tool fails them.
//!
//! The lookup test measures `first` and `last` alternately over several rounds and
//! compares medians, so a burst of noise on a busy machine does not decide it.

mod tier;

use std::net::SocketAddr;
use std::time::Duration;

use dataplane::floor::model::ENDPOINT_PORT;
use dataplane::{backend, Backend, Deadline, Mode, ModeSpec, ServiceSet};
use harness::datapath::load::{run_load, LoadSpec};
use harness::datapath::serve::Server;
use harness::datapath::start_backend;
use harness::sandbox::topology::Topology;

/// The backend of `mode`; fails the test unless this process is root and has the
/// backend's tools.
fn backend_of(mode: Mode) -> Box<dyn Backend> {
    tier::require_root();
    let b = backend(ModeSpec::new(mode)).unwrap_or_else(|e| panic!("{e}"));
    for t in b.tools() {
        tier::require_tool(t);
    }
    b
}

/// A topology for this test with `set` programmed into its node by `b` and the
/// backend server answering for every endpoint.
fn programmed(b: &dyn Backend, tag: &str, set: &ServiceSet, timeout_s: u64) -> (Topology, Server) {
    let topo = topology(tag);
    b.sync(
        &topo.node,
        None,
        set,
        Deadline::after(Duration::from_secs(timeout_s)),
    )
    .expect("sync");
    let server = start_backend(&topo).expect("server");
    (topo, server)
}

fn topology(tag: &str) -> Topology {
    Topology::create(&format!("test-{}-{tag}", std::process::id())).expect("topology")
}

/// Loads `target` and returns the 25th percentile of TCP connect latency: the rule
/// lookup happens on the SYN, so connect time carries it without the HTTP exchange,
/// and a low percentile keeps the additive lookup cost while shedding most of the
/// scheduling noise of a busy 2-core machine.
fn syn_cost(
    topo: &Topology,
    target: SocketAddr,
    ms: u64,
) -> (f64, harness::datapath::load::LoadReport) {
    let spec = LoadSpec::open_loop(target, 400.0, Duration::from_millis(ms), 64);
    let r = run_load(Some(&topo.client), &spec).expect("load runs");
    (r.connect_us.value_at_quantile(0.25) as f64, r)
}

/// Enough services that the chain walk to the last one (a few hundred microseconds
/// through iptables) stands well clear of connection-latency noise.
const SERVICES: usize = 10_000;

/// nftables' full sync grows superlinearly (one anonymous vmap per service), so its
/// test, and the iptables reference beside it, use fewer.
const NFT_SERVICES: usize = 5_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over rounds of (last - first (connect p25)), both through the service VIPs.
fn last_minus_first(topo: &Topology, set: &ServiceSet) -> f64 {
    let vip = |i: usize| SocketAddr::new(set.services[i].vip.into(), 80);
    let (first, last) = (vip(0), vip(set.len() - 1));
    let _ = syn_cost(topo, first, 300); // warm up ARP, routes and the server
    let mut diffs = Vec::new();
    for _ in 0..7 {
        let (f, rf) = syn_cost(topo, first, 700);
        let (l, rl) = syn_cost(topo, last, 700);
        assert_eq!(rf.errors.total() + rl.errors.total(), 0, "requests failed");
        diffs.push(l - f);
    }
    median(diffs)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn iptables_lookup_cost_grows_with_the_position_of_the_service() {
    // The legacy backend programs thousands of services in seconds; the chain walk
    // that makes "last" slower is the same x_tables/nf_tables linear scan either way.
    let b = backend_of(Mode::IptablesLegacy);
    let set = ServiceSet::generate(SERVICES, 1);
    let (topo, _server) = programmed(&*b, "ipt", &set, 300);
    let diff = last_minus_first(&topo, &set);
    eprintln!("iptables-legacy, {SERVICES} services: last - first (connect p25) = {diff:.0} us");
    // The in-kernel walk is about 2.5 ns per x_tables rule (harness/tests/transit.rs
    // times it precisely): 25 us over 10,000 services, plus the cache misses a long
    // walk leaves on the rest of the handshake. Connect p25 carries tens of us of
    // scheduling noise on this machine, so the bar is well under the expected cost.
    assert!(
        diff > 15.0,
        "the last service should cost clearly more than the first: {diff:.0} us"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn nftables_lookup_cost_does_not_depend_on_the_position_of_the_service() {
    let b = backend_of(Mode::Nftables);
    let legacy = backend_of(Mode::IptablesLegacy);
    let set = ServiceSet::generate(NFT_SERVICES, 1);
    let (topo, _server) = programmed(&*b, "nft", &set, 300);
    let nft = last_minus_first(&topo, &set);
    eprintln!("nftables, {NFT_SERVICES} services: last - first (connect p25) = {nft:.0} us");
    drop(_server);
    drop(topo);
    let (topo, _server) = programmed(&*legacy, "nft-ref", &set, 300);
    let ipt = last_minus_first(&topo, &set);
    eprintln!("iptables-legacy, same services: last - first (connect p25) = {ipt:.0} us");
    assert!(nft < ipt / 2.0, "nftables' verdict map should not grow like iptables' chain: nft {nft:.0} us, iptables {ipt:.0} us");
    // One-sided: the claim is that the last service costs no more than the first; a
    // negative difference is noise, not position dependence.
    assert!(
        nft < 40.0,
        "nftables: the last service should cost no more than the first: {nft:.0} us more"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn every_endpoint_answers_and_direct_bypasses_dnat() {
    let b = backend_of(Mode::Iptables);
    let set = ServiceSet::generate(3, 5);
    let (topo, _server) = programmed(&*b, "dist", &set, 120);
    let svc = &set.services[1];
    let (_, r) = syn_cost(&topo, SocketAddr::new(svc.vip.into(), 80), 1500);
    assert_eq!(r.errors.total(), 0);
    for ep in &svc.endpoints {
        assert!(
            r.endpoints.get(&ep.ip).copied().unwrap_or(0) > 0,
            "endpoint {} never answered: {:?}",
            ep.ip,
            r.endpoints
        );
    }
    assert!(
        r.endpoints
            .keys()
            .all(|ip| svc.endpoints.iter().any(|e| e.ip == *ip)),
        "{:?}",
        r.endpoints
    );
    // Direct: the endpoint address itself answers, and no DNAT rule counted it.
    let ep = set.services[2].endpoints[3];
    let (_, r) = syn_cost(&topo, SocketAddr::new(ep.ip.into(), ENDPOINT_PORT), 500);
    assert_eq!(r.errors.total(), 0);
    assert_eq!(r.endpoints.keys().copied().collect::<Vec<_>>(), vec![ep.ip]);
    let counters = dataplane::floor::exec::Tool::new(b.tools()[2], &["-t", "nat", "-c"])
        .netns(&topo.node)
        .run_ok()
        .unwrap()
        .stdout;
    let dnat_line = counters
        .lines()
        .find(|l| l.contains(&format!("--to-destination {}:{}", ep.ip, ep.port)))
        .unwrap();
    assert!(
        dnat_line.starts_with("[0:0]"),
        "direct traffic went through DNAT: {dnat_line}"
    );
}
