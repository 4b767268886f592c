//! kpbench's batched IPVS netlink client against `ipvsadm -R`, on a kernel with IPVS
//! (root, `ip_vs` and `ipvsadm`; `scripts/ipvs-vs-ipvsadm.sh` runs it in the kernel lab).
//!
//! `ipvs_vs_ipvsadm [SERVICES] [ENDPOINTS]` (defaults 10000 x 10): programs SERVICES x
//! ENDPOINTS virtual services / real servers with `IpvsClient` in one fresh namespace
//! and with `ipvsadm -R` (the same changes, as `ipvsadm` lines) in another, and prints
//! both wall times. The checks that a sync leaves what was meant are the lab tests
//! (`harness/tests/lab_ipvs.rs`); sync costs per profile are `kpbench run --modes ipvs`.

use std::time::{Duration, Instant};

use dataplane::floor::exec::Tool;
use dataplane::ipvs::render::{ipvsadm_line, Changes};
use dataplane::ipvs::{IpvsBackend, IpvsClient};
use dataplane::{Deadline, Netns, ServiceSet};

const TIMEOUT: Duration = Duration::from_secs(1800);

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

/// Virtual services plus real servers the kernel holds, by netlink dumps.
fn objects(ns: &Netns) -> usize {
    let dump = IpvsBackend::dump(ns, Deadline::after(TIMEOUT)).expect("netlink dump");
    dump.iter().map(|(_, dests)| 1 + dests.len()).sum()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (services, endpoints) = (n(0, 10_000), n(1, 10));
    let set = ServiceSet::generate(services, endpoints);
    let changes = Changes::compute(None, &set, "rr", &[]);
    let ops = changes.ops();

    let ns = Ns::new("bench-nl");
    let start = Instant::now();
    let mut client = IpvsClient::open_in(&ns.0).expect("open IPVS client");
    client.set_timeout(TIMEOUT).expect("timeout");
    let opened = start.elapsed();
    let stats = client.execute_ok(&ops, |_, _| false).expect("program IPVS");
    let nl = start.elapsed();
    let read = Instant::now();
    let count = objects(&ns.0);
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
    let count = objects(&ns.0);
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
