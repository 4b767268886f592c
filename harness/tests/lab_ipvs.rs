//! IPVS in the kernel lab, checked by independent readers: kpbench programs services
//! over its own netlink client, then the guest's `ipvsadm -S -n` must list exactly what
//! `kpbench rules --mode ipvs` says was meant, and the two sync profiles must leave the
//! same objects (`ipvsadm -S -n`, `ipset list`, `iptables-save`, kube-ipvs0's addresses).
//! Needs root and qemu: without feature `lab-tests` the tests are reported as ignored;
//! with it, a missing prerequisite fails them.

mod tier;

use std::process::{Command, Stdio};
use std::time::Instant;

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn ipvsadm_in_the_guest_agrees_with_kpbench() {
    tier::require_lab();
    let script = "set -e; \
        kpbench apply --mode ipvs --scheduler wrr --services 20 --endpoints 3 --netns t; \
        ip netns exec t ipvsadm -S -n | sort > /tmp/got; \
        kpbench rules --mode ipvs --scheduler wrr --services 20 --endpoints 3 \
          | sed -n -e 's/^netlink: new service -t \\(.*\\)$/-A -t \\1 -s wrr/p' \
                   -e 's/^netlink: new real server \\(.*\\) of -t \\(.*\\)$/-a -t \\2 -r \\1 -m -w 1/p' \
          | sort > /tmp/want; \
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

/// What a namespace holds, normalised for comparison: `ipvsadm -S -n` sorted; `ipset
/// list` without its size and hash seed, members sorted per set (their order is the
/// hash's); `iptables-save` without comments and counters; kube-ipvs0's addresses.
const NORMALISE: &str = r#"SAVE=$(command -v iptables-nft-save || command -v iptables-save)
objects() {
  ip netns exec $1 ipvsadm -S -n | sort
  echo '--- ipset'
  ip netns exec $1 ipset list | sed -e '/^Size in memory:/d' -e 's/ initval 0x[0-9a-f]*//' > /tmp/sets-$1
  awk '/^Members:/{m=1; next} /^$/{m=0; next} !m' /tmp/sets-$1
  awk '/^Name:/{n=$2} /^Members:/{m=1; next} /^$/{m=0; next} m{print n, $0}' /tmp/sets-$1 | sort
  echo '--- iptables'
  ip netns exec $1 $SAVE | grep -v '^#' | sed -e 's/\[[0-9]*:[0-9]*\]/[0:0]/'
  echo '--- kube-ipvs0'
  ip netns exec $1 ip -4 -o addr show dev kube-ipvs0 | awk '{print $4}' | sort
}
"#;

/// The kube-proxy profile, run twice into one namespace (20 x 3, then 15 x 2: a restart
/// that finds 5 services to delete, every endpoint changed and every set entry of 5
/// services stale), and the floor once into another (15 x 2): the guest's tools must
/// read back the same objects.
#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn both_sync_profiles_leave_the_same_objects_in_the_guest() {
    tier::require_lab();
    let script = format!(
        "set -e\n{NORMALISE}\
        kpbench apply --mode ipvs --profile kube-proxy --services 20 --endpoints 3 --netns kp\n\
        kpbench apply --mode ipvs --profile kube-proxy --services 15 --endpoints 2 --netns kp\n\
        kpbench apply --mode ipvs --profile floor --services 15 --endpoints 2 --netns fl\n\
        objects kp > /tmp/kp\n\
        objects fl > /tmp/fl\n\
        diff /tmp/kp /tmp/fl\n\
        echo PROFILES-AGREE $(grep -c '^-a ' /tmp/kp) $(grep -c '^Name: ' /tmp/kp) \
          $(grep -c '^KUBE-CLUSTER-IP ' /tmp/kp) $(grep -c '^KUBE-IPVS-IPS ' /tmp/kp) \
          $(grep -c '^-A KUBE-IPVS-FILTER ' /tmp/kp) $(grep -c '/32$' /tmp/kp)\n"
    );
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(["lab", "--kernel", "debian:6.1", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("kpbench lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "both_sync_profiles_leave_the_same_objects_in_the_guest: took {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // 30 real servers, 17 sets, 15 entries in each of the two filled sets, the 6
    // KUBE-IPVS-FILTER rules and 15 ClusterIPs on kube-ipvs0.
    assert!(
        stdout.contains("PROFILES-AGREE 30 17 15 15 6 15"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

/// On a host without IPVS (CI's), the ipvs case runs in the lab; on a host with IPVS it
/// must stay on the host, which is checked instead of passing without a look.
#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn kpbench_run_sends_ipvs_cases_to_the_lab_when_the_host_has_none() {
    tier::require_lab();
    let host_has_ipvs = std::path::Path::new("/proc/net/ip_vs").exists();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("ipvs.toml");
    std::fs::write(
        &scenario,
        "modes = [\"iptables-legacy\", \"iptables\", \"ipvs\"]\nservices = [4]\nendpoints_per_service = 2\nrepeats = 1\n\
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
    let ipvs = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["mode"] == "ipvs")
        .expect("an ipvs case");
    assert_eq!(ipvs["status"], "ok", "{ipvs}");
    assert_eq!(ipvs["rules"]["kernel_objects"], 12, "{ipvs}");
    if host_has_ipvs {
        eprintln!("this host has IPVS: checked that kpbench run measured it here");
        assert_eq!(envs.len(), 1, "the host only: {text}");
        assert_eq!(ipvs["environment"], envs[0]["id"], "{ipvs}");
        return;
    }
    assert_eq!(envs.len(), 2, "host and lab: {text}");
    let lab = envs
        .iter()
        .find(|e| e["kind"] != "host")
        .expect("a lab environment");
    assert!(
        lab["kind"] == "lab-tcg" || lab["kind"] == "lab-kvm",
        "{lab}"
    );
    assert_eq!(ipvs["environment"], lab["id"], "{ipvs}");
    // The same-kernel comparison (lab_compare, the default): iptables ran in the lab
    // too, at IPVS's scale; iptables-legacy stayed on the host only.
    let envs_of = |mode: &str| -> Vec<String> {
        json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["mode"] == mode && c["status"] == "ok")
            .map(|c| c["environment"].as_str().unwrap().to_string())
            .collect()
    };
    let host = envs
        .iter()
        .find(|e| e["kind"] == "host")
        .expect("the host environment");
    let (host_id, lab_id) = (host["id"].as_str().unwrap(), lab["id"].as_str().unwrap());
    assert_eq!(envs_of("iptables"), [host_id, lab_id], "{text}");
    assert_eq!(envs_of("iptables-legacy"), [host_id], "{text}");
}
