//! The IPVS stand-in held against the lab kernel (the host has no IPVS): the hidden
//! `kpbench conformance --mode ipvs` runs the conformance sequence (full sync, add,
//! remove, update, graceful terminations fired) in the guest, comparing `ipvsadm -S
//! -n`, `ipset list` and `iptables-save` of a namespace with the stand-in's after each
//! step. Needs root and qemu: without feature `lab-tests` reported as ignored.

mod tier;

use std::process::{Command, Stdio};
use std::time::Instant;

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn the_ipvs_standin_agrees_with_the_lab_kernel() {
    tier::require_lab();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(["lab", "--kernel", "debian:6.1", "--"])
        .args(["kpbench", "conformance", "--mode", "ipvs"])
        .stdin(Stdio::null())
        .output()
        .expect("kpbench lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "the_ipvs_standin_agrees_with_the_lab_kernel: took {:.1}s\n{stdout}",
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
