//! Where cases run: kernel, CPU, memory, the version of every external tool used, the
//! machine (a digest of its machine id) and the CPU state that explains per-rule cost
//! across machines (microcode, vulnerability mitigations, cpufreq, the command line's
//! mitigation flags). Inside the kernel lab the guest is told its kind, kernel source
//! and the host's machine through `KPBENCH_ENV_KIND`, `KPBENCH_KERNEL_SOURCE` and
//! `KPBENCH_MACHINE`.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::results::{CpuState, Environment};

/// The kernel release (`uname -r`).
pub fn kernel_release() -> String {
    dataplane::floor::prereq::kernel_release()
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The `microcode` line of /proc/cpuinfo (the first CPU's).
fn microcode(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("microcode"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Command-line parameters that switch a CPU vulnerability's mitigation or SMT
/// (Documentation/admin-guide/kernel-parameters.txt); `no...` forms are listed whole.
const MITIGATION_PARAMS: [&str; 32] = [
    "mitigations",
    "spectre_v2",
    "spectre_v2_user",
    "spectre_bhi",
    "spec_store_bypass_disable",
    "ssbd",
    "pti",
    "kpti",
    "mds",
    "tsx",
    "tsx_async_abort",
    "l1tf",
    "l1d_flush",
    "retbleed",
    "srbds",
    "mmio_stale_data",
    "gather_data_sampling",
    "spec_rstack_overflow",
    "reg_file_data_sampling",
    "indirect_target_selection",
    "tsa",
    "vmscape",
    "nosmt",
    "nopti",
    "nospectre_v1",
    "nospectre_v2",
    "nospectre_bhb",
    "nospec_store_bypass_disable",
    "nobp",
    "noibrs",
    "noibpb",
    "smt",
];

/// The tokens of a kernel command line that [`MITIGATION_PARAMS`] names, in order.
/// Arguments after `--` go to init, not the kernel, and are left out.
pub fn cmdline_mitigations(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .take_while(|t| *t != "--")
        .filter(|t| {
            let key = t.split_once('=').map_or(*t, |(k, _)| k);
            MITIGATION_PARAMS.contains(&key)
        })
        .map(String::from)
        .collect()
}

/// One line of a sysfs file, trimmed; `None` when it is absent or empty.
fn sysfs_line(p: &Path) -> Option<String> {
    let v = std::fs::read_to_string(p).ok()?;
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The CPU's state under `root` (`/` on a real machine; a directory tree in tests).
pub fn cpu_state(root: &Path) -> CpuState {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
    let cpu = root.join("sys/devices/system/cpu");
    let vulnerabilities = std::fs::read_dir(cpu.join("vulnerabilities"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    Some((name, sysfs_line(&e.path())?))
                })
                .collect()
        })
        .unwrap_or_default();
    CpuState {
        microcode: microcode(&read("proc/cpuinfo")),
        vulnerabilities,
        cpufreq_driver: sysfs_line(&cpu.join("cpu0/cpufreq/scaling_driver")),
        governor: sysfs_line(&cpu.join("cpu0/cpufreq/scaling_governor")),
        cmdline_mitigations: cmdline_mitigations(&read("proc/cmdline")),
    }
}

/// This machine: a digest of its machine id (the id itself is meant to stay on the
/// machine), or what the lab's host passed on in `KPBENCH_MACHINE`; `None` without one.
pub fn machine() -> Option<String> {
    if let Ok(m) = std::env::var("KPBENCH_MACHINE") {
        return Some(m).filter(|m| !m.is_empty());
    }
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| sysfs_line(Path::new(p)))
        .map(|id| machine_digest(&id))
}

/// The first 16 hex digits of SHA-256 over "kpbench machine " and the id.
fn machine_digest(id: &str) -> String {
    let d = Sha256::digest(format!("kpbench machine {id}").as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Probes this machine. `tools` are the external programs whose versions to record.
pub fn probe(tools: &[&str]) -> Environment {
    let kind = std::env::var("KPBENCH_ENV_KIND").unwrap_or_else(|_| "host".into());
    let kind = match kind.as_str() {
        "lab-kvm" | "lab-tcg" => kind,
        _ => "host".into(),
    };
    let release = kernel_release();
    let id = if kind == "host" {
        "host".to_string()
    } else {
        format!("lab-{release}")
    };
    let mut versions = BTreeMap::new();
    for t in tools {
        if let Some(v) = dataplane::floor::exec::version(t) {
            versions.insert(t.to_string(), v);
        }
    }
    Environment {
        id,
        kind,
        kernel_release: release,
        kernel_source: std::env::var("KPBENCH_KERNEL_SOURCE").ok(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        cpu_model: cpu_model(),
        memory_bytes: memory_bytes(),
        machine: machine(),
        cpu: Some(cpu_state(Path::new("/"))),
        tools: versions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_keeps_only_mitigation_flags() {
        let line = "BOOT_IMAGE=/vmlinuz root=/dev/vda1 mitigations=auto,nosmt quiet \
                    spectre_v2=retpoline pti=off nosmt smtfoo=1 nospectre_v1 -- pti=on";
        assert_eq!(
            cmdline_mitigations(line),
            [
                "mitigations=auto,nosmt",
                "spectre_v2=retpoline",
                "pti=off",
                "nosmt",
                "nospectre_v1"
            ]
        );
        assert!(cmdline_mitigations("console=ttyS0 quiet").is_empty());
    }

    #[test]
    fn the_cpu_state_is_read_from_proc_and_sys_and_absent_parts_are_none() {
        let root = tempfile::tempdir().unwrap();
        let w = |p: &str, text: &str| {
            let f = root.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        };
        w(
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: Test CPU\nmicrocode\t: 0xb4\n\nprocessor\t: 1\n",
        );
        w("proc/cmdline", "root=/dev/sda mitigations=off\n");
        let v = "sys/devices/system/cpu/vulnerabilities";
        w(&format!("{v}/meltdown"), "Not affected\n");
        w(&format!("{v}/spectre_v2"), "Mitigation: Retpolines\n");
        let bare = cpu_state(root.path());
        assert_eq!(bare.microcode.as_deref(), Some("0xb4"));
        assert_eq!(bare.cmdline_mitigations, ["mitigations=off"]);
        assert_eq!(bare.vulnerabilities.len(), 2);
        assert_eq!(bare.vulnerabilities["spectre_v2"], "Mitigation: Retpolines");
        // No cpufreq directory, as in most guests: none, not a guess.
        assert_eq!((bare.cpufreq_driver, bare.governor), (None, None));
        w(
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_driver",
            "intel_pstate\n",
        );
        w(
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            "performance\n",
        );
        let with = cpu_state(root.path());
        assert_eq!(with.cpufreq_driver.as_deref(), Some("intel_pstate"));
        assert_eq!(with.governor.as_deref(), Some("performance"));
        let nothing = cpu_state(&root.path().join("missing"));
        assert_eq!(nothing, CpuState::default());
    }

    #[test]
    fn the_machine_is_a_digest_not_the_id() {
        let d = machine_digest("3d1219c7c4c5404aaa1f6d2a48adfda4");
        assert_eq!(d.len(), 16);
        assert!(!d.contains("3d1219c7"));
        assert_eq!(d, machine_digest("3d1219c7c4c5404aaa1f6d2a48adfda4"));
        assert_ne!(d, machine_digest("another"));
    }
}
