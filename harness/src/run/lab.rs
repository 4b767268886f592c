//! Running a run's IPVS cases in the kernel lab when the host kernel has no IPVS:
//! the resolved scenario goes to a guest booted on the default lab kernel, and the
//! guest's cases and environment come back into this run. With `lab_compare` (the
//! default) the guest also runs the scenario's iptables, nftables and eBPF modes at
//! IPVS's scales ([`lab_scenario`]), so the lab's environment holds the seed's
//! comparison on one kernel; host and lab figures are never compared with each other.

use std::path::PathBuf;
use std::time::Duration;

use dataplane::floor::prereq::Presence;
use dataplane::{KernelFeature, Mode};

use crate::lab::{self, KernelSpec, LabError, LabEvent, DEFAULT_KERNEL};
use crate::results::{Case, Environment, Results};
use crate::scenario::Scenario;

/// What the kernel lab returns: the guest's environments and its cases.
pub type LabCases = (Vec<Environment>, Vec<Case>);

/// Why the lab could not run the ipvs cases; recorded as their `skipped` reason, so
/// each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LabRunError {
    #[error("scenario for the lab: {0}")]
    Scenario(#[from] toml::ser::Error),
    #[error("{path}: {source}")]
    WriteScenario {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}; run scripts/install-deps.sh (qemu, busybox-static, the lab kernel) or `kpbench lab --kernel {DEFAULT_KERNEL} run --modes ipvs`", hint())]
    Lab {
        #[source]
        source: LabError,
    },
    #[error("{}: the guest wrote no results.json (exit {exit_code}; console log {})", hint(), console_log.display())]
    NoResults {
        exit_code: i32,
        console_log: PathBuf,
    },
    #[error("{}: the guest's results.json is unreadable: {source} (console log {})", hint(), console_log.display())]
    Unreadable {
        #[source]
        source: serde_json::Error,
        console_log: PathBuf,
    },
}

/// The start of every message about the lab failing for this run.
fn hint() -> String {
    format!(
        "IPVS is not in this kernel ({}), and the kernel lab could not run it",
        dataplane::floor::prereq::kernel_release()
    )
}

/// Whether this process should hand cases that need `feature` to the lab: the kernel
/// has none and we are not already inside a lab guest.
pub fn lab_needed(feature: KernelFeature) -> bool {
    feature.probe() == Presence::Absent && std::env::var_os("KPBENCH_ENV_KIND").is_none()
}

/// The modes that go to the lab beside IPVS for a same-kernel comparison: kube-proxy's
/// default iptables mode (nf_tables backend), nftables, and Cilium's two eBPF load
/// balancers. iptables-legacy stays on the host: its x_tables walk is the same rule
/// list, and each emulated case costs the quick run about half a minute.
pub const COMPARED_IN_LAB: [Mode; 4] = [Mode::Iptables, Mode::Nftables, Mode::Ebpf, Mode::EbpfTc];

/// What the guest runs: the ipvs mode at its scales and, with `lab_compare`, the
/// scenario's other modes of [`COMPARED_IN_LAB`] at those same scales, IPVS first.
pub fn lab_scenario(s: &Scenario) -> Scenario {
    let mut lab = s.clone();
    let ipvs = s.scales_for(Mode::Ipvs).to_vec();
    lab.modes = vec![Mode::Ipvs];
    if s.lab_compare {
        lab.modes.extend(
            s.modes
                .iter()
                .copied()
                .filter(|m| COMPARED_IN_LAB.contains(m)),
        );
    }
    lab.scales = lab
        .modes
        .iter()
        .map(|m| (m.name().to_string(), ipvs.clone()))
        .collect();
    lab
}

/// The number of cases `lab` makes: modes (each IPVS scheduler its own) x scales x
/// profiles.
fn case_count(lab: &Scenario) -> usize {
    lab.mode_specs()
        .iter()
        .map(|m| lab.scales_for(m.mode()).len())
        .sum::<usize>()
        .max(1)
        * lab.profiles.len().max(1)
}

/// Runs the lab's cases of `s` (see [`lab_scenario`]): the guest's environments and
/// cases.
pub fn run_lab_cases(
    s: &Scenario,
    run_id: &str,
    step: &mut dyn FnMut(String),
) -> Result<LabCases, LabRunError> {
    let only = lab_scenario(s);
    let toml = toml::to_string(&only)?;
    let cases = case_count(&only);
    // Boot and initramfs work plus every case's own limits (a kube-proxy sync past its
    // limit is followed by the floor's programming, by the case's limit).
    let timeout = Duration::from_secs(300) + (s.case_timeout() + s.sync_limit()) * cases as u32;
    // The lab copies a scenario file named on the command line into the guest.
    let file = std::env::temp_dir().join(format!("kpbench-{run_id}-ipvs.toml"));
    std::fs::write(&file, toml).map_err(|source| LabRunError::WriteScenario {
        path: file.clone(),
        source,
    })?;
    let _remove = RemoveOnDrop(file.clone());
    let guest = lab::GuestRun {
        scenario: Some(file.clone()),
        flags: vec![format!("--run-id={run_id}-lab")],
        machine: super::environment::machine(),
    };
    let lab_err = |source| LabRunError::Lab { source };
    let kernel = KernelSpec::parse(DEFAULT_KERNEL).map_err(lab_err)?;
    let mut on = |e: LabEvent| match e {
        LabEvent::GuestOutput(line) => step(format!("lab: {}", line.trim())),
        LabEvent::FetchingKernel { package } => step(format!("lab: fetching {package}")),
        LabEvent::BuildingInitramfs { .. } => step("lab: building the initramfs".into()),
        LabEvent::Booting { accel, .. } => step(format!(
            "lab: booting {DEFAULT_KERNEL} under {}",
            accel.env_kind()
        )),
        _ => {}
    };
    let outcome = lab::run_in_lab(&kernel, &guest, timeout, &mut on).map_err(lab_err)?;
    let Some(bytes) = outcome.results_json() else {
        return Err(LabRunError::NoResults {
            exit_code: outcome.exit_code,
            console_log: outcome.console_log.clone(),
        });
    };
    let guest: Results =
        serde_json::from_slice(bytes).map_err(|source| LabRunError::Unreadable {
            source,
            console_log: outcome.console_log.clone(),
        })?;
    let mut envs = guest.environments;
    for env in &mut envs {
        if env.kernel_source.is_none() {
            env.kernel_source = Some(outcome.kernel_source.clone());
        }
    }
    Ok((envs, guest.cases))
}

/// Removes a temporary file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_runs_the_other_modes_at_ipvs_scales_unless_told_not_to() {
        let toml =
            "modes = [\"iptables\", \"iptables-legacy\", \"nftables\", \"ipvs\", \"ebpf\"]\n\
                    services = [100, 1000]\nprofiles = [\"kube-proxy\", \"floor\"]\n\
                    [scales]\nipvs = [100]\nebpf = [1000]\n";
        let s = Scenario::parse(toml, "t.toml", "t").unwrap();
        let lab = lab_scenario(&s);
        assert_eq!(
            lab.modes,
            [Mode::Ipvs, Mode::Iptables, Mode::Nftables, Mode::Ebpf]
        );
        for m in &lab.modes {
            assert_eq!(lab.scales_for(*m), [100], "{m:?}");
        }
        // 4 modes x 1 scale x 2 profiles.
        assert_eq!(case_count(&lab), 8);
        // What goes to the guest reads back as the same scenario.
        let back = Scenario::parse(&toml::to_string(&lab).unwrap(), "lab.toml", "t").unwrap();
        assert_eq!(back.modes, lab.modes);
        assert_eq!(back.scales, lab.scales);
        let mut off = s.clone();
        off.lab_compare = false;
        assert_eq!(lab_scenario(&off).modes, [Mode::Ipvs]);
        assert_eq!(case_count(&lab_scenario(&off)), 2);
    }
}
