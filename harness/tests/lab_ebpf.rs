//! Both eBPF modes in the kernel lab (Debian 6.1: tc programs attach as cls_bpf filters
//! under clsact there, from the initramfs's sch_ingress and cls_bpf modules; the
//! socket LB needs only cgroup2, which kpbench mounts in the guest): a small run of
//! `ebpf` and `ebpf-tc` must program, verify and carry traffic through every endpoint,
//! with each target's BPF cost recorded. Needs root and qemu: without feature
//! `lab-tests` the test is reported as ignored; with it, a missing prerequisite fails it.

mod tier;

use std::process::{Command, Stdio};
use std::time::Instant;

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn both_ebpf_modes_run_in_the_lab_kernel() {
    tier::require_lab();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("ebpf.toml");
    std::fs::write(
        &scenario,
        "name = \"lab-ebpf\"\nmodes = [\"ebpf\", \"ebpf-tc\"]\nservices = [20]\n\
         endpoints_per_service = 2\nrepeats = 1\nprofiles = [\"kube-proxy\"]\n\
         [datapath]\nrate_per_s = 50\nduration_s = 0.5\nmax_rate_duration_s = 0\n\
         connections = 4\nrequest_timeout_ms = 3000\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(["lab", "--kernel", "debian:6.1", "run"])
        .arg(&scenario)
        .arg("--out")
        .arg(&out_dir)
        .stdin(Stdio::null())
        .output()
        .expect("kpbench lab runs");
    eprintln!(
        "both_ebpf_modes_run_in_the_lab_kernel: took {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let text = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let env = &json["environments"][0];
    assert!(
        env["kind"] == "lab-tcg" || env["kind"] == "lab-kvm",
        "{env}"
    );
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{text}");
    for c in cases {
        let mode = c["mode"].as_str().unwrap();
        assert_eq!(c["status"], "ok", "{c}");
        // 20 masters and reverse NAT entries, 40 slots and 40 backends.
        assert_eq!(c["rules"]["kernel_objects"], 120, "{mode}: {c}");
        let dp = &c["datapath"];
        assert_eq!(
            dp["distribution"]["endpoints_hit"], dp["distribution"]["endpoints_total"],
            "{mode}: {dp}"
        );
        for t in dp["targets"].as_array().unwrap() {
            assert_eq!(t["errors"], 0, "{mode}: {t}");
        }
        let targets = dp["transit"]["targets"].as_array().unwrap();
        let bpf: Vec<f64> = targets
            .iter()
            .filter_map(|t| t["bpf_run_ns"].as_f64())
            .collect();
        assert!(bpf.len() >= 3, "{mode}: {targets:?}");
        eprintln!("{mode} in the lab: BPF per run {bpf:?} ns");
    }
}
