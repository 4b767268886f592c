//! Privileged tests of the ebpf mode (Cilium's socket load balancer) in a real
//! topology: every endpoint answers through the VIP and `getpeername()` shows the VIP;
//! connects from other namespaces are not translated; the BPF cost per connect is flat
//! in the number of services; `kpbench apply` pins and `kpbench clean` removes it all.
//! They need root: without feature `root-tests` they are reported as ignored.

mod tier;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use dataplane::ebpf::datapath;
use dataplane::ebpf::sys::program_names;
use dataplane::{backend, Backend, Deadline, Mode, ModeSpec, ServiceSet};
use harness::datapath::load::{run_load, LoadSpec};
use harness::datapath::serve::Server;
use harness::datapath::start_backend;
use harness::datapath::transit::enable_run_stats;
use harness::sandbox::topology::Topology;

/// One test at a time: the apply test counts the programs loaded on the machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn ebpf() -> Box<dyn Backend> {
    tier::require_root();
    backend(ModeSpec::new(Mode::Ebpf)).unwrap()
}

fn programmed(b: &dyn Backend, tag: &str, set: &ServiceSet) -> (Topology, Server) {
    let topo =
        Topology::create(&format!("test-{}-eb-{tag}", std::process::id())).expect("topology");
    b.sync(
        &topo.node,
        None,
        set,
        Deadline::after(Duration::from_secs(300)),
    )
    .unwrap_or_else(|e| panic!("sync: {e}"));
    b.verify(&topo.node, set, Deadline::after(Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("verify: {e}"));
    let server = start_backend(&topo).expect("server");
    (topo, server)
}

fn vip(set: &ServiceSet, i: usize) -> SocketAddr {
    SocketAddr::new(set.services[i].vip.into(), set.services[i].port)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn every_endpoint_answers_through_the_vip_and_getpeername_shows_the_vip() {
    let _one = serial();
    let b = ebpf();
    let set = ServiceSet::generate(5, 4);
    let (topo, _server) = programmed(b.as_ref(), "all", &set);
    for i in [0, 2, 4] {
        let r = run_load(
            Some(&topo.client),
            &LoadSpec::closed_loop(vip(&set, i), Duration::from_millis(600), 4),
        )
        .expect("load");
        let answered: BTreeSet<Ipv4Addr> = r.endpoints.keys().copied().collect();
        let want: BTreeSet<Ipv4Addr> = set.services[i].endpoints.iter().map(|e| e.ip).collect();
        assert_eq!(
            answered,
            want,
            "svc-{i}: {} requests, errors {:?}",
            r.requests,
            r.errors.by_kind()
        );
        assert_eq!(r.errors.total(), 0);
    }
    let to = vip(&set, 1);
    let peer = topo
        .client
        .run(move || {
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect");
            s.peer_addr().expect("getpeername")
        })
        .unwrap();
    assert_eq!(peer, to, "getpeername4 must show the VIP");
    let (client, cgroup) = datapath::attachment(&topo.node).expect("attached");
    assert_eq!(client, topo.client.name);
    eprintln!("attached to {} for {client}", cgroup.display());
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn connects_from_other_namespaces_are_not_translated() {
    let _one = serial();
    let b = ebpf();
    let set = ServiceSet::generate(3, 2);
    let (topo, _server) = programmed(b.as_ref(), "other", &set);
    // The backend namespace answers on every endpoint IP: translated, a connect to the
    // VIP from there would succeed. Untranslated, the VIP has no route there.
    let to = vip(&set, 0);
    let from_backend = topo
        .backend
        .run(move || TcpStream::connect_timeout(&to, Duration::from_millis(800)).is_ok())
        .unwrap();
    assert!(
        !from_backend,
        "a connect from the backend namespace was translated"
    );
    let from_client = topo
        .client
        .run(move || TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok())
        .unwrap();
    assert!(from_client, "the client's connect must be translated");
}

/// Mean BPF run time per connect through the first, middle and last service.
fn cost_per_connect(services: usize) -> f64 {
    let b = ebpf();
    let set = ServiceSet::generate(services, 2);
    let (topo, _server) = programmed(b.as_ref(), &format!("flat{services}"), &set);
    let _stats = enable_run_stats().expect("BPF_ENABLE_STATS");
    let before = datapath::connect_run_stats(&topo.node).unwrap();
    for i in [0, services / 2, services - 1] {
        let r = run_load(
            Some(&topo.client),
            &LoadSpec::closed_loop(vip(&set, i), Duration::from_millis(500), 2),
        )
        .expect("load");
        assert!(r.requests > 20, "svc-{i}: {} requests", r.requests);
    }
    let after = datapath::connect_run_stats(&topo.node).unwrap();
    let ns = (after.0 - before.0) as f64 / (after.1 - before.1) as f64;
    eprintln!(
        "{services} services: {ns:.0} ns of BPF per connect over {} runs",
        after.1 - before.1
    );
    ns
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn bpf_cost_per_connect_is_flat_in_the_number_of_services() {
    let _one = serial();
    // Alternated, and the median of three each, so the VM's speed phases cancel.
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        small.push(cost_per_connect(100));
        large.push(cost_per_connect(3000));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let (small, large) = (median(&mut small), median(&mut large));
    assert!(
        large < small * 1.5,
        "BPF per connect: {large:.0} ns at 3,000 services against {small:.0} ns at 100"
    );
}

fn kpbench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(args)
        .output()
        .expect("kpbench");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kpbench {args:?}: {text}");
    text
}

fn ours_loaded() -> usize {
    program_names()
        .unwrap()
        .iter()
        .filter(|n| n.starts_with("kpb_sock4"))
        .count()
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn apply_pins_it_and_clean_removes_pins_and_links() {
    let _one = serial();
    tier::require_root();
    let ns = format!("kpb-test{}ap-node", std::process::id());
    let before = ours_loaded();
    let text = kpbench(&[
        "apply",
        "--mode",
        "ebpf",
        "--services",
        "20",
        "--endpoints",
        "2",
        "--netns",
        &ns,
    ]);
    assert!(text.contains("pinned under /run/kpbench/bpf/"), "{text}");
    let pins = std::path::Path::new(datapath::PIN_ROOT).join(&ns);
    for f in [
        "cilium_lb4_services_v2",
        "cilium_lb4_backends_v3",
        "link_kpb_sock4_connect",
    ] {
        assert!(pins.join(f).exists(), "no pin {f} under {}", pins.display());
    }
    // The apply process is gone; its links live on in their pins.
    assert_eq!(ours_loaded(), before + 2);
    kpbench(&["clean"]);
    assert!(!pins.exists(), "pins left at {}", pins.display());
    assert_eq!(ours_loaded(), before, "programs still loaded after clean");
    assert!(!dataplane::Netns::named(&ns).exists());
}
