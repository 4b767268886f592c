//! Times the SYN through the node for a mode at some service counts and prints the
//! per-position table, the fitted ns per service, the probe overhead and the
//! dataplane's ns per request (a short load phase through the first service).
//! Needs root.
//!
//! ```text
//! cargo run --release -p harness --example transit -- iptables-legacy 1000,5000 10
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dataplane::{backend, Deadline, Mode, ModeSpec, ServiceSet};
use harness::datapath::load::{run_load, LoadSpec};
use harness::datapath::start_backend;
use harness::datapath::transit::{self, PassConfig, Probes};
use harness::sandbox::topology::Topology;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(1) {
        Some(m) => Mode::parse(m).ok_or_else(|| anyhow::anyhow!("unknown mode {m}"))?,
        None => Mode::IptablesLegacy,
    };
    let sizes: Vec<usize> = args
        .get(2)
        .map(|s| s.split(',').map(|n| n.parse()).collect::<Result<_, _>>())
        .transpose()?
        .unwrap_or_else(|| vec![1_000]);
    let endpoints: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let b = backend(ModeSpec::new(mode))?;
    for n in sizes {
        let set = ServiceSet::generate(n, endpoints);
        let topo = Topology::create(&format!("ex-{}-{n}", std::process::id()))?;
        let t0 = Instant::now();
        b.sync(
            &topo.node,
            None,
            &set,
            Deadline::after(Duration::from_secs(1_800)),
        )?;
        let sync_s = t0.elapsed().as_secs_f64();
        let _server = start_backend(&topo)?;
        let mut probes = Probes::load(&topo.node)?;
        let p = transit::measure(&mut probes, &topo, &set, &PassConfig::default())?;

        // The dataplane's CPU per request: a short open-loop phase, new connection
        // per request, through the first service.
        let vip = SocketAddr::new(set.services[0].vip.into(), 80);
        let _ = probes.drain();
        let before = probes.counters()?;
        let r = run_load(
            Some(&topo.client),
            &LoadSpec::open_loop(vip, 300.0, Duration::from_secs(3), 64),
        )?;
        let cpu = probes.counters()?.since(&before);
        let mut load_syn: Vec<u64> = probes
            .drain()
            .into_iter()
            .filter(|s| s.kind == transit::Kind::Syn)
            .map(|s| s.ns)
            .collect();
        load_syn.sort_unstable();

        println!("## {mode}, {n} services x {endpoints} endpoints (sync {sync_s:.1} s)");
        println!("| target | SYN p50 ns | 95% CI | p10 | p90 | p99 | SYN-ACK p50 | samples |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
        for t in &p.transit.targets {
            let (Some(q), a) = (t.syn_ns, t.synack_ns) else {
                println!("| {} | - | | | | | | 0 |", t.target);
                continue;
            };
            println!(
                "| {} | {} | [{}, {}] | {} | {} | {} | {} | {} |",
                t.target,
                q.p50,
                q.ci95_p50[0],
                q.ci95_p50[1],
                q.p10,
                q.p90,
                q.p99,
                a.map(|a| a.p50.to_string()).unwrap_or_default(),
                t.samples
            );
        }
        if let Some(e) = p.transit.ns_per_service {
            println!(
                "ns_per_service {:.3} [{:.3}, {:.3}]{}",
                e.estimate,
                e.ci95[0],
                e.ci95[1],
                if e.excludes_zero() {
                    ""
                } else {
                    " (no measurable difference)"
                }
            );
        }
        println!(
            "probe_overhead_pct {:?} ci95 {:?} over {} pairs",
            p.transit
                .probe_overhead_pct
                .map(|v| (v * 100.0).round() / 100.0),
            p.transit.probe_overhead_ci95,
            p.transit.probe_overhead_rounds.len()
        );
        println!(
            "probe_run_ns_per_connection {:?}",
            p.transit.probe_run_ns_per_connection.map(|v| v.round())
        );
        println!("checks {:?}", p.transit.checks);
        if std::env::var_os("TRANSIT_VERBOSE").is_some() {
            for r in &p.transit.probe_overhead_rounds {
                println!("  round on {:.0}/s off {:.0}/s", r.on_per_s, r.off_per_s);
            }
            println!("pass counters {:?}", p.counters);
            println!("load counters {cpu:?}");
        }
        println!(
            "dataplane_ns_per_request {:?} ({} requests, {} packets, {} ns)",
            cpu.ns_per_request(r.ok).map(|v| v.round()),
            r.ok,
            cpu.packets,
            cpu.transit_ns
        );
        if let Some(m) = load_syn.get(load_syn.len() / 2) {
            println!(
                "SYN p50 during that load phase: {m} ns ({} samples)",
                load_syn.len()
            );
        }
        println!();
    }
    Ok(())
}
