//! Running a run's IPVS cases in the kernel lab when the host kernel has no IPVS:
//! the resolved scenario (only the ipvs mode) goes to a guest booted on the default
//! lab kernel, and the guest's cases and environment come back into this run.

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

/// Runs the ipvs cases of `s` in the lab: the guest's environments and cases.
pub fn run_ipvs_cases(
    s: &Scenario,
    run_id: &str,
    step: &mut dyn FnMut(String),
) -> Result<LabCases, LabRunError> {
    let mut only = s.clone();
    only.modes = vec![Mode::Ipvs];
    let toml = toml::to_string(&only)?;
    let cases = (s.scales_for(Mode::Ipvs).len() * s.ipvs_schedulers.len()).max(1);
    // Boot and initramfs work plus every case's own limit.
    let timeout = Duration::from_secs(300) + s.case_timeout() * cases as u32;
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
