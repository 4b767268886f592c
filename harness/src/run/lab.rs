//! Running a run's IPVS cases in the kernel lab when the host kernel has no IPVS:
//! the resolved scenario (only the ipvs mode) goes to a guest booted on the default
//! lab kernel, and the guest's cases and environment come back into this run.

use std::time::Duration;

use dataplane::Mode;

use crate::lab::{self, KernelSpec, LabEvent, DEFAULT_KERNEL};
use crate::results::{Case, Environment, Results};
use crate::scenario::Scenario;

/// Whether this process should hand ipvs cases to the lab: the kernel has no IPVS and
/// we are not already inside a lab guest.
pub fn lab_needed() -> bool {
    !crate::run::environment::has_ipvs() && std::env::var_os("KPBENCH_ENV_KIND").is_none()
}

/// Runs the ipvs cases of `s` in the lab. On success returns the guest's environment
/// and cases; on failure, the reason (with what to do) for marking them skipped.
pub fn run_ipvs_cases(
    s: &Scenario,
    run_id: &str,
    step: &mut dyn FnMut(String),
) -> Result<(Vec<Environment>, Vec<Case>), String> {
    let mut only = s.clone();
    only.modes = vec![Mode::Ipvs];
    let toml = toml::to_string(&only).map_err(|e| format!("scenario for the lab: {e}"))?;
    let cases = (s.scales_for(Mode::Ipvs).len() * s.ipvs_schedulers.len()).max(1);
    // Boot and initramfs work plus every case's own limit.
    let timeout = Duration::from_secs(300) + s.case_timeout() * cases as u32;
    // The lab copies a scenario file named on the command line into the guest.
    let file = std::env::temp_dir().join(format!("kpbench-{run_id}-ipvs.toml"));
    std::fs::write(&file, toml).map_err(|e| format!("{}: {e}", file.display()))?;
    let _remove = RemoveOnDrop(file.clone());
    let args: Vec<String> = vec![
        "run".into(),
        file.display().to_string(),
        "--run-id".into(),
        format!("{run_id}-lab"),
    ];
    let kernel = KernelSpec::parse(DEFAULT_KERNEL).map_err(|e| e.to_string())?;
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
    let hint = format!(
        "IPVS is not in this kernel ({}), and the kernel lab could not run it",
        crate::run::environment::kernel_release()
    );
    let outcome = lab::run_in_lab(&kernel, &args, timeout, &mut on).map_err(|e| {
        format!("{hint}: {e}; run scripts/install-deps.sh (qemu, busybox-static, the lab kernel) or `kpbench lab --kernel {DEFAULT_KERNEL} run --modes ipvs`")
    })?;
    let Some(bytes) = outcome.results_json() else {
        return Err(format!(
            "{hint}: the guest wrote no results.json (exit {}; console log {})",
            outcome.exit_code,
            outcome.console_log.display()
        ));
    };
    let guest: Results = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "{hint}: the guest's results.json is unreadable: {e} (console log {})",
            outcome.console_log.display()
        )
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
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
