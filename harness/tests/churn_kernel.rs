//! Privileged churn tests: real rules in a namespace topology, changed at a steady rate
//! by kube-proxy's controller batching at minSyncPeriod (the eBPF modes: per change, as
//! Cilium's agent), with background connections through the churned services' VIPs. Without feature `root-tests` they are reported
//! as ignored; with it, a missing root or tool fails them.
//!
//! - an added endpoint is reached within one sync period plus the sync time (plus the
//!   background traffic's resolution; per change: within the sync time), and never
//!   before its sync started;
//! - a removed endpoint gets no new connection once its sync has ended.

mod tier;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dataplane::{backend, Backend, Deadline, Mode, ModeSpec, Profile, ServiceSet};
use harness::datapath::churn::{Background, BackgroundSpec};
use harness::run::churn::batch::Batching;
use harness::run::churn::changes::Churner;
use harness::run::churn::{batching_for, observe, ChurnLog, Driver, Phase};
use harness::run::seams::CaseSandbox;
use harness::sandbox::topology::Topology;
use harness::scenario::{Churn, ChurnKind};

const PERIOD: Duration = Duration::from_secs(1);
/// The gap between connections reaching one endpoint is about 16 endpoints / 400 per
/// second = 40 ms on average; a connection can also wait in the accept queue of a busy
/// 2-core machine. This much past the bound is still within it.
const SLACK: Duration = Duration::from_millis(600);

fn backend_of(mode: Mode) -> Box<dyn Backend> {
    tier::require_root();
    let b = backend(ModeSpec::new(mode)).unwrap_or_else(|e| panic!("{e}"));
    for t in b.tools() {
        tier::require_tool(t);
    }
    b
}

/// 100 services x 4 endpoints programmed, then 4 s of rolling changes at 5/s to 4
/// services with 400 connections/s through them: the log and what the server saw.
fn churn(mode: Mode) -> (ChurnLog, Vec<(Instant, IpAddr)>) {
    let b = backend_of(mode);
    let topo = Topology::create(&format!(
        "test-{}-churn-{}",
        std::process::id(),
        mode.name()
    ))
    .expect("topology");
    let set = ServiceSet::generate(100, 4);
    let mut ctl = b.controller(Profile::default());
    let mut io = topo.executor();
    let deadline = Deadline::after(Duration::from_secs(120));
    io.begin(deadline);
    ctl.sync(io.as_mut(), None, &set, Duration::ZERO)
        .expect("full sync");
    io.finish();
    let cfg = Churn {
        rates_per_s: vec![5.0],
        duration_s: 4.0,
        kind: ChurnKind::Rolling,
        services: 4,
        ..Churn::default()
    };
    let targets = Churner::new(cfg.kind, &set, cfg.services, 0)
        .services()
        .iter()
        .map(|&i| std::net::SocketAddr::from((set.services[i].vip, 80)))
        .collect();
    let bg = Background::start(
        &topo,
        &BackgroundSpec {
            targets,
            rate_per_s: 400.0,
            duration: cfg.duration() + PERIOD + Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
        },
    )
    .expect("background traffic");
    let mut driver = Driver {
        controller: ctl.as_mut(),
        io: io.as_mut(),
        batching: batching_for(mode, PERIOD),
        at: PERIOD,
        deadline,
    };
    let phase = Phase::all(&cfg)[0];
    let log = driver.run(set, phase, Instant::now()).expect("churn phase");
    let seen = bg.finish().expect("background traffic ends");
    let failed = observe::failed(&seen.reports);
    assert!(failed.attempted > 1000, "{failed:?}");
    (log, seen.hits)
}

fn check(mode: Mode) {
    let (log, hits) = churn(mode);
    assert_eq!(log.changes.len(), 20);
    // Batched at minSyncPeriod a change waits up to one period; per change, only for
    // the syncs ahead of it.
    let period = match batching_for(mode, PERIOD) {
        Batching::MinSyncPeriod(p) => p,
        Batching::PerChange => {
            assert_eq!(log.syncs.len(), 20, "{mode}: one sync per change");
            Duration::ZERO
        }
    };
    let sync_of = |end: Duration| log.syncs.iter().find(|s| s.end == end).unwrap();
    let longest = log.syncs.iter().map(|s| s.end - s.start).max().unwrap();
    let at = |t: Instant| t.saturating_duration_since(log.started);
    for c in &log.changes {
        let end = c.programmed.expect("every change synced");
        let sync = sync_of(end);
        for ip in &c.change.added {
            let first = hits
                .iter()
                .filter(|(_, h)| *h == IpAddr::V4(*ip))
                .map(|&(t, _)| at(t))
                .min()
                .unwrap_or_else(|| panic!("{mode}: added {ip} never reached"));
            assert!(
                first >= sync.start,
                "{mode}: {ip} reached at {first:?}, before its sync at {:?}",
                sync.start
            );
            let latency = first - c.arrival;
            assert!(
                latency <= period + longest + SLACK,
                "{mode}: {ip} reached {latency:?} after its change (sync {longest:?})"
            );
        }
        for ip in &c.change.removed {
            let late: Vec<Duration> = hits
                .iter()
                .filter(|(t, h)| *h == IpAddr::V4(*ip) && at(*t) > end + SLACK / 3)
                .map(|&(t, _)| at(t))
                .collect();
            assert!(
                late.is_empty(),
                "{mode}: removed {ip} still reached at {late:?}, its sync ended at {end:?}"
            );
        }
    }
    let l = observe::latencies(&log, &hits);
    let (added, removed) = (l.added, l.removed);
    let added = added.expect("programming latency");
    assert_eq!((added.samples, added.unobserved), (20, 0));
    assert!(removed.expect("removal latency").samples == 20);
    eprintln!(
        "{mode}: programming latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} syncs",
        added.p50,
        added.p99,
        added.max,
        log.syncs.len()
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "privileged: needs root and feature harness/root-tests"
)]
fn iptables_legacy_reaches_added_endpoints_within_a_period_and_leaves_removed_ones() {
    check(Mode::IptablesLegacy);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "privileged: needs root and feature harness/root-tests"
)]
fn nftables_reaches_added_endpoints_within_a_period_and_leaves_removed_ones() {
    check(Mode::Nftables);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "privileged: needs root and feature harness/root-tests"
)]
fn ebpf_syncs_per_change_and_reaches_added_endpoints_and_leaves_removed_ones() {
    check(Mode::Ebpf);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "privileged: needs root and feature harness/root-tests"
)]
fn ebpf_tc_syncs_per_change_and_reaches_added_endpoints_and_leaves_removed_ones() {
    check(Mode::EbpfTc);
}
