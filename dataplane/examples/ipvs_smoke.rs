//! IPVS live check and measurement, for a kernel with IPVS (the kernel lab).
//!
//! `ipvs_smoke smoke [SCHEDULER]`: in a fresh namespace, a full sync of 5 services x 3
//! endpoints through `IpvsBackend`, then a partial sync (one service removed, one
//! added, one with a changed endpoint); after each, the netlink read-back, the
//! `ipvsadm -S -n` output, the addresses on kube-ipvs0 and the ipset must all match
//! what was meant. Exit 0 when they do.
//!
//! `ipvs_smoke bench SERVICES ENDPOINTS`: programs SERVICES x ENDPOINTS virtual
//! services / real servers with `IpvsClient` (batched netlink) in one fresh namespace
//! and with `ipvsadm -R` (same content) in another, and prints both wall times.
//!
//! `ipvs_smoke sync SERVICES ENDPOINTS`: the whole `IpvsBackend` at that size (full
//! sync, read-back, one partial sync), with times.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dataplane::exec::Tool;
use dataplane::ipvs::render::{ipvsadm_line, Changes};
use dataplane::ipvs::{host_port, IpvsBackend, IpvsClient};
use dataplane::model::{service, ServiceSet};
use dataplane::{Backend, Netns};

const TIMEOUT: Duration = Duration::from_secs(600);

/// A namespace removed on drop.
struct Ns(Netns);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("kpb-ipvs-{tag}-{}", std::process::id());
        let ns = Ns(Netns::create(&name).expect("create namespace"));
        // A real server's address is checked against the local routing table, which a
        // namespace only has once it has an address (as a node always does).
        Tool::new("/usr/sbin/ip", &["link", "set", "lo", "up"])
            .netns(&ns.0)
            .run_ok()
            .expect("ip link set lo up");
        ns
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

/// What the kernel holds, in `ipvsadm -S -n` form, sorted.
fn kernel_lines(ns: &Netns) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (s, dests) in IpvsBackend::dump(ns, TIMEOUT).expect("netlink dump") {
        let svc = host_port(s.addr, s.port);
        out.insert(format!("-A -t {svc} -s {}", s.scheduler));
        for d in dests {
            let fwd = if d.fwd_method == 0 { "-m" } else { "-?" };
            out.insert(format!(
                "-a -t {svc} -r {} {fwd} -w {}",
                host_port(d.addr, d.port),
                d.weight
            ));
        }
    }
    out
}

fn ipvsadm_lines(ns: &Netns) -> BTreeSet<String> {
    let out = Tool::new("ipvsadm", &["-S", "-n"])
        .netns(ns)
        .run_ok()
        .expect("ipvsadm -S -n");
    out.stdout.lines().map(str::to_string).collect()
}

fn expected_lines(set: &ServiceSet, sched: &str) -> BTreeSet<String> {
    Changes::compute(None, set, sched)
        .ops()
        .iter()
        .map(ipvsadm_line)
        .collect()
}

fn check(ns: &Netns, backend: &IpvsBackend, set: &ServiceSet, what: &str) -> bool {
    let want = expected_lines(set, backend.scheduler());
    let netlink = kernel_lines(ns);
    let ipvsadm = ipvsadm_lines(ns);
    let count = backend.read_back(ns, TIMEOUT).expect("read back");
    let addrs = Tool::new(
        "/usr/sbin/ip",
        &["-4", "-o", "addr", "show", "dev", "kube-ipvs0"],
    )
    .netns(ns)
    .run_ok()
    .map(|o| o.stdout.lines().count())
    .unwrap_or(usize::MAX);
    let ipset = Tool::new("ipset", &["list", "KUBE-CLUSTER-IP"])
        .netns(ns)
        .run_ok()
        .map(|o| o.stdout.lines().filter(|l| l.contains(",tcp:")).count())
        .unwrap_or(usize::MAX);
    println!("--- {what}: ipvsadm -S -n in the namespace:");
    for l in &ipvsadm {
        println!("{l}");
    }
    let ok = netlink == want
        && ipvsadm == want
        && count == backend.expected_objects(set)
        && addrs == set.len()
        && ipset == set.len();
    println!(
        "{what}: netlink dump {} lines, ipvsadm {} lines, expected {}; read_back {count} (expected {}); kube-ipvs0 addresses {addrs}, KUBE-CLUSTER-IP entries {ipset} (expected {}) => {}",
        netlink.len(),
        ipvsadm.len(),
        want.len(),
        backend.expected_objects(set),
        set.len(),
        if ok { "OK" } else { "MISMATCH" }
    );
    ok
}

fn smoke(sched: &str) -> bool {
    let ns = Ns::new("smoke");
    let backend = IpvsBackend::new(sched);
    let old = ServiceSet::generate(5, 3);
    let r = backend.sync(&ns.0, None, &old, TIMEOUT).expect("full sync");
    println!("full sync: {:?} ({} bytes)", r.cost, r.payload_bytes);
    let mut ok = check(&ns.0, &backend, &old, "full sync");
    let mut new = old.clone();
    new.remove(1);
    new.upsert(service(7, 3));
    let mut changed = new.get(3).unwrap().clone();
    changed.endpoints[0].ip = dataplane::model::spare_endpoint_ip(0);
    new.upsert(changed);
    let r = backend
        .sync(&ns.0, Some(&old), &new, TIMEOUT)
        .expect("partial sync");
    println!("partial sync: {:?} ({} bytes)", r.cost, r.payload_bytes);
    ok &= check(&ns.0, &backend, &new, "partial sync");
    ok
}

fn bench(services: usize, endpoints: usize) {
    let set = ServiceSet::generate(services, endpoints);
    let changes = Changes::compute(None, &set, "rr");
    let ops = changes.ops();

    let ns = Ns::new("bench-nl");
    let start = Instant::now();
    let mut client = IpvsClient::open_in(&ns.0).expect("open IPVS client");
    client.set_timeout(TIMEOUT).expect("timeout");
    let opened = start.elapsed();
    let stats = client.execute_ok(&ops, |_, _| false).expect("program IPVS");
    let nl = start.elapsed();
    let read = Instant::now();
    let count = kernel_lines(&ns.0).len();
    println!(
        "kpbench netlink: {} requests ({} bytes) in {:.3} s (socket + family {:.1} ms); read back {count} objects by netlink dumps in {:.3} s",
        stats.requests,
        stats.bytes,
        nl.as_secs_f64(),
        opened.as_secs_f64() * 1e3,
        read.elapsed().as_secs_f64()
    );
    drop(client);
    drop(ns);

    let ns = Ns::new("bench-ipvsadm");
    let input: String = ops.iter().map(|o| ipvsadm_line(o) + "\n").collect();
    let out = Tool::new("ipvsadm", &["-R"])
        .stdin(input.as_bytes())
        .netns(&ns.0)
        .timeout(TIMEOUT)
        .run_ok()
        .expect("ipvsadm -R");
    let count = kernel_lines(&ns.0).len();
    println!(
        "ipvsadm -R: {} lines in {:.3} s (user {:.3} s, sys {:.3} s); read back {count} objects",
        ops.len(),
        out.cost.wall.as_secs_f64(),
        out.cost.user.as_secs_f64(),
        out.cost.sys.as_secs_f64()
    );
    println!(
        "speed-up: {:.2}x",
        out.cost.wall.as_secs_f64() / nl.as_secs_f64()
    );
}

/// The whole backend (sysctls, kube-ipvs0, IPVS, ipset, iptables) at size: a full
/// sync, the read-back, then one partial sync adding a service.
fn sync(services: usize, endpoints: usize) -> bool {
    let ns = Ns::new("sync");
    let backend = IpvsBackend::new("rr");
    let set = ServiceSet::generate(services, endpoints);
    let r = backend.sync(&ns.0, None, &set, TIMEOUT).expect("full sync");
    println!(
        "backend full sync {services}x{endpoints}: wall {:.3} s, user {:.3} s, sys {:.3} s, {} bytes",
        r.cost.wall.as_secs_f64(),
        r.cost.user.as_secs_f64(),
        r.cost.sys.as_secs_f64(),
        r.payload_bytes
    );
    let start = Instant::now();
    let count = backend.read_back(&ns.0, TIMEOUT).expect("read back");
    println!(
        "read back {count} objects (expected {}) in {:.3} s",
        backend.expected_objects(&set),
        start.elapsed().as_secs_f64()
    );
    let mut new = set.clone();
    new.upsert(service(services, endpoints));
    let r = backend
        .sync(&ns.0, Some(&set), &new, TIMEOUT)
        .expect("partial sync");
    println!(
        "backend partial sync (add one service): wall {:.3} s, {} bytes",
        r.cost.wall.as_secs_f64(),
        r.payload_bytes
    );
    count == backend.expected_objects(&set)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("smoke") => {
            let sched = args.get(1).map(String::as_str).unwrap_or("rr");
            if smoke(sched) {
                println!("IPVS SMOKE OK ({sched})");
                ExitCode::SUCCESS
            } else {
                println!("IPVS SMOKE FAILED ({sched})");
                ExitCode::FAILURE
            }
        }
        Some("sync") => {
            let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
            if sync(n(1, 10_000), n(2, 10)) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("bench") => {
            let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
            bench(n(1, 10_000), n(2, 10));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: ipvs_smoke smoke [SCHEDULER] | bench [SERVICES] [ENDPOINTS] | sync [SERVICES] [ENDPOINTS]");
            ExitCode::from(2)
        }
    }
}
