//! The BPF map stand-in held against the kernel, for both eBPF modes: the conformance
//! sequence (full sync, add, remove, update, timers fired: the agent has none) through
//! the kube-proxy (agent) controller, once on the maps of a datapath loaded into a real
//! topology and once on the stand-in, with every map's dump compared after each step.
//! Lives in harness for its topology (the datapaths attach to the client's cgroup or
//! the veths). Privileged: without feature `root-tests` reported as ignored.

mod tier;

use std::time::Instant;

use dataplane::conformance::{compare, differences, sequence};
use dataplane::{backend, Mode, ModeSpec};
use harness::sandbox::topology::Topology;

/// One test at a time: each loads a datapath, and the eBPF kernel tests count programs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn holds(mode: Mode, tag: &str) {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    tier::require_root();
    let start = Instant::now();
    let b = backend(ModeSpec::new(mode)).unwrap();
    // Removed when dropped, also on panic.
    let topo = Topology::create(&format!("test-{}-si{tag}", std::process::id())).expect("topology");
    let compared =
        compare(b.as_ref(), &topo.node, &sequence(6, 3)).unwrap_or_else(|e| panic!("{mode}: {e}"));
    assert_eq!(compared.len(), 5, "every step compared");
    if let Some(d) = differences(&compared) {
        panic!("{mode}: the stand-in differs from the kernel\n{d}");
    }
    let sizes: Vec<String> = compared
        .iter()
        .map(|c| format!("{}: {} lines", c.step, c.kernel.lines().count()))
        .collect();
    assert!(
        compared.iter().all(|c| c.kernel.contains("-> ")),
        "{mode}: empty maps"
    );
    eprintln!(
        "{mode}: the map stand-in agrees with the kernel after every step ({}), {:.1}s",
        sizes.join(", "),
        start.elapsed().as_secs_f64()
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_map_standin_agrees_with_the_socket_lb_maps() {
    holds(Mode::Ebpf, "eb");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_map_standin_agrees_with_the_tc_lb_maps() {
    holds(Mode::EbpfTc, "et");
}
