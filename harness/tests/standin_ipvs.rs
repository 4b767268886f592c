//! The IPVS stand-in held against the lab kernel (the host has no IPVS): the hidden
//! `kpbench conformance --mode ipvs` runs the conformance sequence (full sync, add,
//! remove, update, graceful terminations fired) in the guest, comparing `ipvsadm -S
//! -n`, `ipset list` and `iptables-save` of a namespace with the stand-in's after each
//! step. Needs root and qemu: without feature `lab-tests` reported as ignored.

mod tier;

use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs `kpbench conformance --mode ipvs [extra]` in the lab guest.
fn conformance_in_the_lab(extra: &[&str]) -> std::process::Output {
    tier::require_lab();
    Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(["lab", "--kernel", "debian:6.1", "--"])
        .args(["kpbench", "conformance", "--mode", "ipvs"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("kpbench lab runs")
}

/// Asserts the guest printed the stand-in's agreement after all 5 steps.
fn assert_agrees(test: &str, start: Instant, out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{test}: took {:.1}s\n{stdout}",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("STANDIN-AGREES ipvs 5"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn the_ipvs_standin_agrees_with_the_lab_kernel() {
    let start = Instant::now();
    let out = conformance_in_the_lab(&[]);
    assert_agrees("the_ipvs_standin_agrees_with_the_lab_kernel", start, &out);
}

/// The same over the featured sequence: a NodePort service with a second, UDP port
/// (virtual services on the node IP, `-u` ones, the KUBE-NODE-PORT-* bitmap sets and
/// their rules) and an affinity service, beside plain ClusterIPs.
#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn the_ipvs_standin_agrees_with_the_lab_kernel_on_every_rendered_feature() {
    let start = Instant::now();
    let out = conformance_in_the_lab(&["--featured"]);
    assert_agrees(
        "the_ipvs_standin_agrees_with_the_lab_kernel_on_every_rendered_feature",
        start,
        &out,
    );
}
