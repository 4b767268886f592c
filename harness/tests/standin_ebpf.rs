//! The BPF map stand-in held against the kernel, for both eBPF modes: the conformance
//! sequence (full sync, add, remove, update, timers fired: the agent has none) through
//! the kube-proxy (agent) controller, once on the maps of a datapath loaded into a real
//! topology and once on the stand-in, with every map's dump compared after each step.
//! The featured sequence does the same over a service per shape feature (NodePort,
//! several ports with UDP, affinity, LoadBalancer with source ranges, Local policies,
//! a terminating endpoint), so Cilium's affinity-match and source-range (LPM trie)
//! maps are written by the kernel's own map calls, not only by the stand-in.
//! Lives in harness for its topology (the datapaths attach to the client's cgroup or
//! the veths). Privileged: without feature `root-tests` reported as ignored.

mod tier;

use std::time::Instant;

use dataplane::conformance::featured::featured_sequence;
use dataplane::conformance::{compare, differences, sequence, Compared, Step};
use dataplane::{backend, Mode, ModeSpec};
use harness::sandbox::topology::Topology;

/// One test at a time: each loads a datapath, and the eBPF kernel tests count programs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `steps` (built for the mode's backend) on the kernel and the stand-in, and
/// checks they agree after every step; returns what was compared.
fn holds(
    mode: Mode,
    tag: &str,
    steps: impl FnOnce(&dyn dataplane::Backend) -> Vec<Step>,
) -> Vec<Compared> {
    let _one = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    tier::require_root();
    let start = Instant::now();
    let b = backend(ModeSpec::new(mode)).unwrap();
    let steps = steps(b.as_ref());
    // Removed when dropped, also on panic.
    let topo = Topology::create(&format!("test-{}-si{tag}", std::process::id())).expect("topology");
    let compared =
        compare(b.as_ref(), &topo.node, &steps).unwrap_or_else(|e| panic!("{mode}: {e}"));
    assert_eq!(compared.len(), steps.len(), "every step compared");
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
    compared
}

/// The number of entries the kernel's dump of `map` held after the first step.
fn entries(compared: &[Compared], map: &str) -> usize {
    let head = format!("map {map} (");
    let line = compared[0]
        .kernel
        .lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no dump of {map}:\n{}", compared[0].kernel));
    line[head.len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("entry count in {line:?}"))
}

/// The featured sequence's full sync wrote the affinity match and the source ranges
/// into the kernel's maps (the ones the N x E sequence leaves empty).
fn featured_holds(mode: Mode, tag: &str) {
    let compared = holds(mode, tag, |b| featured_sequence(4, 2, b.renders()));
    assert!(
        entries(&compared, "cilium_lb_affinity_match") > 0,
        "{mode}: no affinity match written"
    );
    assert!(
        entries(&compared, "cilium_lb4_source_range") >= 2,
        "{mode}: the LoadBalancer's two source ranges were not written"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_map_standin_agrees_with_the_socket_lb_maps() {
    let compared = holds(Mode::Ebpf, "eb", |_| sequence(6, 3));
    assert_eq!(
        compared.len(),
        5,
        "full sync, add, remove, update, timers fired"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_map_standin_agrees_with_the_tc_lb_maps() {
    let compared = holds(Mode::EbpfTc, "et", |_| sequence(6, 3));
    assert_eq!(
        compared.len(),
        5,
        "full sync, add, remove, update, timers fired"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_map_standin_agrees_with_the_socket_lb_maps_on_every_feature() {
    featured_holds(Mode::Ebpf, "ef");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn the_map_standin_agrees_with_the_tc_lb_maps_on_every_feature() {
    featured_holds(Mode::EbpfTc, "tf");
}
