//! `kpbench clean`: removes what crashed or killed runs left behind. Namespaces of runs
//! whose process is still alive (see [`super::registry`]) are left alone, so two runs
//! never interfere.

use dataplane::floor::netns::Netns;

use super::names::NETNS_PREFIX;
use super::registry::live_runs;

/// What `clean` removed, and what it failed to remove.
#[derive(Debug, Default)]
pub struct CleanReport {
    pub removed: Vec<String>,
    pub kept_live: Vec<String>,
    pub errors: Vec<String>,
}

/// Removes every kpbench namespace not owned by a live run (all of them with `force`).
pub fn clean(force: bool) -> CleanReport {
    let live = if force { Vec::new() } else { live_runs() };
    let mut report = CleanReport::default();
    for name in Netns::list(NETNS_PREFIX) {
        if live
            .iter()
            .any(|id| name.starts_with(&format!("{NETNS_PREFIX}{id}-")))
        {
            report.kept_live.push(name);
            continue;
        }
        match Netns::named(&name).delete() {
            Ok(()) => report.removed.push(format!("network namespace {name}")),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    let not_live = |name: &str| {
        !live
            .iter()
            .any(|id| name.starts_with(&format!("{NETNS_PREFIX}{id}-")))
    };
    // The ebpf modes' pins (`kpbench apply`): removing them detaches their links.
    let (removed, errors) = dataplane::ebpf::datapath::clean_pins(not_live);
    report.removed.extend(removed);
    report.errors.extend(errors);
    // Then the socket LB's client cgroups that no process is in any more.
    let (removed, errors) = dataplane::ebpf::cgroup::clean(not_live);
    report.removed.extend(removed);
    report.errors.extend(errors);
    report
}
