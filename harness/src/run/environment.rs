//! Where cases run: kernel, CPU, memory and the version of every external tool used.
//! Inside the kernel lab the guest is told its kind and kernel source through
//! `KPBENCH_ENV_KIND` and `KPBENCH_KERNEL_SOURCE`.

use std::collections::BTreeMap;

use crate::results::Environment;

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
        tools: versions,
    }
}
