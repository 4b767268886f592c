//! Privileged tests of the ebpf modes in a real topology, Cilium's socket LB (`ebpf`)
//! and its per-packet tc LB (`ebpf-tc`): every endpoint answers through the VIP (and
//! `getpeername()` shows the VIP); connects from other namespaces are not translated;
//! the BPF cost per connect (per packet) is flat in the number of services; `kpbench
//! apply` pins and `kpbench clean` removes pins, links and the client cgroup.
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

fn ebpf(mode: Mode) -> Box<dyn Backend> {
    tier::require_root();
    backend(ModeSpec::new(mode)).unwrap()
}

fn programmed(b: &dyn Backend, tag: &str, set: &ServiceSet) -> (Topology, Server) {
    let short = if b.mode() == Mode::Ebpf { "eb" } else { "et" };
    let topo =
        Topology::create(&format!("test-{}-{short}-{tag}", std::process::id())).expect("topology");
    let report = b
        .sync(
            &topo.node,
            None,
            set,
            Deadline::after(Duration::from_secs(300)),
        )
        .unwrap_or_else(|e| panic!("sync: {e}"));
    // One MAP_UPDATE_ELEM per entry, counted in a step of their own (their CPU read
    // once per run of calls), inside the sync's wall time.
    let updates = report
        .steps
        .get("bpf MAP_UPDATE_ELEM")
        .expect("a MAP_UPDATE_ELEM step");
    assert_eq!(
        updates.calls as usize,
        dataplane::ebpf::expected_entries(set)
    );
    assert!(updates.cost.wall <= report.cost.wall, "{report:?}");
    b.verify(&topo.node, set, Deadline::after(Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("verify: {e}"));
    let server = start_backend(&topo).expect("server");
    (topo, server)
}

fn vip(set: &ServiceSet, i: usize) -> SocketAddr {
    SocketAddr::new(set.services[i].vip.into(), set.services[i].port)
}

/// Every endpoint of the first, middle and last service answers through its VIP.
fn every_endpoint_answers(mode: Mode) -> (Topology, Server, ServiceSet) {
    let b = ebpf(mode);
    let set = ServiceSet::generate(5, 4);
    let (topo, server) = programmed(b.as_ref(), "all", &set);
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
            "{mode} svc-{i}: {} requests, errors {:?}",
            r.requests,
            r.errors.by_kind()
        );
        assert_eq!(r.errors.total(), 0);
    }
    (topo, server, set)
}

/// The address the client sees as its peer after connecting to `to`.
fn peer_of(topo: &Topology, to: SocketAddr) -> SocketAddr {
    topo.client
        .run(move || {
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect");
            s.peer_addr().expect("getpeername")
        })
        .unwrap()
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn socket_lb_every_endpoint_answers_through_the_vip_and_getpeername_shows_the_vip() {
    let _one = serial();
    let (topo, _server, set) = every_endpoint_answers(Mode::Ebpf);
    let to = vip(&set, 1);
    assert_eq!(peer_of(&topo, to), to, "getpeername4 must show the VIP");
    // Attached to the client cgroup the run made, with this process in it.
    let at = datapath::attachment(&topo.node).expect("attached");
    let cgroup = at[0].strip_prefix("cgroup ").expect("a cgroup").to_string();
    assert!(
        cgroup.ends_with(&format!("/kpbench/kpb-test-{}-eb-all", std::process::id())),
        "{at:?}"
    );
    assert_eq!(at[1], format!("netns {}", topo.client.name));
    let ours = std::fs::read_to_string(format!("{cgroup}/cgroup.procs")).unwrap();
    assert!(
        ours.lines().any(|p| p == std::process::id().to_string()),
        "kpbench is not in {cgroup}: {ours}"
    );
    drop(topo);
    assert!(
        !std::path::Path::new(&cgroup).exists(),
        "{cgroup} left after the namespaces went"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn tc_lb_every_endpoint_answers_through_the_vip_with_reverse_nat() {
    let _one = serial();
    let (topo, _server, set) = every_endpoint_answers(Mode::EbpfTc);
    // The reply came back from the VIP (reverse NAT at tc): the socket saw no other
    // peer, or the handshake would not have completed.
    let to = vip(&set, 3);
    assert_eq!(peer_of(&topo, to), to);
    let at = datapath::attachment(&topo.node).expect("attached");
    assert_eq!(
        at,
        [
            "kpb_tc_client at tc ingress of veth-client",
            "kpb_tc_backend at tc ingress of veth-backend"
        ]
    );
}

/// A connect to a VIP from the backend namespace, which answers on every endpoint IP:
/// translated, it would succeed; untranslated, the VIP has no route there.
fn not_translated_from_other_namespaces(mode: Mode) {
    let b = ebpf(mode);
    let set = ServiceSet::generate(3, 2);
    let (topo, _server) = programmed(b.as_ref(), "other", &set);
    let to = vip(&set, 0);
    let from_backend = topo
        .backend
        .run(move || TcpStream::connect_timeout(&to, Duration::from_millis(800)).is_ok())
        .unwrap();
    assert!(
        !from_backend,
        "{mode}: a connect from the backend namespace was translated"
    );
    let from_client = topo
        .client
        .run(move || TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_ok())
        .unwrap();
    assert!(
        from_client,
        "{mode}: the client's connect must be translated"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn connects_from_other_namespaces_are_not_translated() {
    let _one = serial();
    not_translated_from_other_namespaces(Mode::Ebpf);
    not_translated_from_other_namespaces(Mode::EbpfTc);
}

/// Mean BPF run time of the lookup program through the first, middle and last
/// service: per connect (socket LB) or per packet from the client (tc LB).
fn lookup_cost(mode: Mode, services: usize) -> f64 {
    let b = ebpf(mode);
    let set = ServiceSet::generate(services, 2);
    let (topo, _server) = programmed(b.as_ref(), &format!("flat{services}"), &set);
    let _stats = enable_run_stats().expect("BPF_ENABLE_STATS");
    let before = datapath::lookup_run_stats(&topo.node).unwrap();
    for i in [0, services / 2, services - 1] {
        let r = run_load(
            Some(&topo.client),
            &LoadSpec::closed_loop(vip(&set, i), Duration::from_millis(500), 2),
        )
        .expect("load");
        assert!(r.requests > 20, "svc-{i}: {} requests", r.requests);
    }
    let after = datapath::lookup_run_stats(&topo.node).unwrap();
    let ns = (after.1 - before.1) as f64 / (after.2 - before.2) as f64;
    eprintln!(
        "{mode} at {services} services: {ns:.0} ns of BPF per run over {} runs",
        after.2 - before.2
    );
    ns
}

/// Alternated, and the median of three each, so the VM's speed phases cancel.
fn assert_flat(mode: Mode) {
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        small.push(lookup_cost(mode, 100));
        large.push(lookup_cost(mode, 3000));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    let (small, large) = (median(&mut small), median(&mut large));
    assert!(
        large < small * 1.5,
        "{mode}: BPF per run {large:.0} ns at 3,000 services against {small:.0} ns at 100"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn bpf_cost_per_connect_is_flat_in_the_number_of_services() {
    let _one = serial();
    assert_flat(Mode::Ebpf);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn bpf_cost_per_packet_is_flat_in_the_number_of_services() {
    let _one = serial();
    assert_flat(Mode::EbpfTc);
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

fn ours_loaded(prefix: &str) -> usize {
    program_names()
        .unwrap()
        .iter()
        .filter(|n| n.starts_with(prefix))
        .count()
}

/// `kpbench apply` into a fresh namespace, then `kpbench clean`: the pins named are
/// there in between, with the mode's two programs loaded after the process ended;
/// afterwards pins, programs, namespace (and the socket LB's client cgroup) are gone.
fn apply_then_clean(mode: &str, tag: &str, prefix: &str, pinned: &[&str]) {
    let name = format!("kpb-test{}{tag}", std::process::id());
    let ns = format!("{name}-node");
    let before = ours_loaded(prefix);
    let text = kpbench(&[
        "apply",
        "--mode",
        mode,
        "--services",
        "20",
        "--endpoints",
        "2",
        "--netns",
        &ns,
    ]);
    assert!(text.contains("pinned under /run/kpbench/bpf/"), "{text}");
    let pins = std::path::Path::new(datapath::PIN_ROOT).join(&ns);
    for f in pinned {
        assert!(pins.join(f).exists(), "no pin {f} under {}", pins.display());
    }
    // The apply process is gone; its programs live on in their pins.
    assert_eq!(ours_loaded(prefix), before + 2, "{mode}");
    let cgroup_left = || dataplane::ebpf::cgroup::leftovers().contains(&name);
    assert_eq!(
        cgroup_left(),
        mode == "ebpf",
        "{mode}: client cgroup {name}"
    );
    kpbench(&["clean"]);
    assert!(!pins.exists(), "pins left at {}", pins.display());
    assert_eq!(
        ours_loaded(prefix),
        before,
        "programs still loaded after clean"
    );
    assert!(!dataplane::Netns::named(&ns).exists());
    assert!(!cgroup_left(), "client cgroup {name} left after clean");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn apply_pins_it_and_clean_removes_pins_links_and_the_cgroup() {
    let _one = serial();
    tier::require_root();
    apply_then_clean(
        "ebpf",
        "ap",
        "kpb_sock4",
        &[
            "cilium_lb4_services_v2",
            "cilium_lb4_backends_v3",
            "link_kpb_sock4_connect",
            "prog_kpb_sock4_connect",
        ],
    );
    apply_then_clean(
        "ebpf-tc",
        "at",
        "kpb_tc_",
        &[
            "cilium_lb4_services_v2",
            "cilium_ct4_global",
            "prog_kpb_tc_client",
            "prog_kpb_tc_backend",
        ],
    );
}
