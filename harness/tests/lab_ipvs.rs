//! IPVS in the kernel lab, checked by an independent reader: kpbench programs
//! services over its own netlink client, then the guest's `ipvsadm -S -n` must list
//! exactly what `kpbench rules --mode ipvs` says was meant. Needs root and qemu; says
//! "skipped: ..." otherwise.

use std::process::{Command, Stdio};
use std::time::Instant;

fn missing() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root");
    }
    if dataplane::exec::which("qemu-system-x86_64").is_none() {
        return Some("needs qemu-system-x86_64 (apt-get install qemu-system-x86)");
    }
    None
}

#[test]
fn ipvsadm_in_the_guest_agrees_with_kpbench() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why} (ipvsadm_in_the_guest_agrees_with_kpbench)");
        return;
    }
    let script = "set -e; \
        kpbench apply --mode ipvs --scheduler wrr --services 20 --endpoints 3 --netns t; \
        /usr/sbin/ip netns exec t ipvsadm -S -n | sort > /tmp/got; \
        kpbench rules --mode ipvs --scheduler wrr --services 20 --endpoints 3 | grep -E '^-[Aa] -t ' | sort > /tmp/want; \
        diff /tmp/want /tmp/got; \
        echo IPVSADM-AGREES $(wc -l < /tmp/got)";
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(["lab", "--kernel", "debian:6.1", "--", "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("kpbench lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "ipvsadm_in_the_guest_agrees_with_kpbench: took {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // 20 virtual services + 60 real servers, as ipvsadm read them from the kernel.
    assert!(
        stdout.contains("IPVSADM-AGREES 80"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("the kernel holds 80 IPVS"),
        "stdout:\n{stdout}"
    );
}

#[test]
fn kpbench_run_sends_ipvs_cases_to_the_lab_when_the_host_has_none() {
    if let Some(why) = missing() {
        eprintln!(
            "skipped: {why} (kpbench_run_sends_ipvs_cases_to_the_lab_when_the_host_has_none)"
        );
        return;
    }
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        eprintln!("skipped: this host has IPVS, so kpbench run measures it here (kpbench_run_sends_ipvs_cases_to_the_lab_when_the_host_has_none)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("ipvs.toml");
    std::fs::write(
        &scenario,
        "modes = [\"iptables-legacy\", \"ipvs\"]\nservices = [4]\nendpoints_per_service = 2\nrepeats = 1\n\
         [datapath]\nenabled = false\n",
    )
    .unwrap();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdin(Stdio::null())
        .output()
        .expect("kpbench runs");
    eprintln!(
        "kpbench_run_sends_ipvs_cases_to_the_lab_when_the_host_has_none: took {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let text = std::fs::read_to_string(dir.path().join("out/results.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let envs = json["environments"].as_array().unwrap();
    assert_eq!(envs.len(), 2, "host and lab: {text}");
    let lab = envs
        .iter()
        .find(|e| e["kind"] != "host")
        .expect("a lab environment");
    assert!(
        lab["kind"] == "lab-tcg" || lab["kind"] == "lab-kvm",
        "{lab}"
    );
    let ipvs = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["mode"] == "ipvs")
        .expect("an ipvs case");
    assert_eq!(ipvs["status"], "ok", "{ipvs}");
    assert_eq!(ipvs["environment"], lab["id"], "{ipvs}");
    assert_eq!(ipvs["rules"]["kernel_objects"], 12, "{ipvs}");
}
