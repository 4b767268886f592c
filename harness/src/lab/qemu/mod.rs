//! Booting the lab VM: accelerator choice (KVM, falling back to TCG by itself), the
//! per-run initramfs overlay, watching the serial console against two deadlines
//! ("no sign of life" and overall), and making sure qemu never outlives the run.
//!
//! qemu never outlives kpbench: it is killed by a guard on every return path, it gets
//! SIGKILL from the kernel when the thread that spawned it dies (PR_SET_PDEATHSIG, so
//! a kpbench killed outright takes qemu with it), a SIGINT/SIGTERM seen by kpbench
//! (`dataplane::floor::exec::cancelled()`) kills it within 200 ms, and its pid is recorded in
//! `/run/kpbench/lab/qemu-<pid>.pid` so `kpbench clean` can kill leftovers.
//!
//! Layout: `guest` (what the guest is told), `attempt` (one boot), `console` (the
//! serial protocol), `vm` (the qemu process), `cleanup` (leftovers).

mod attempt;
mod cleanup;
mod console;
mod guest;
mod vm;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use attempt::{Attempt, Boot};
use guest::{guest_script, write_run_initrd, RunSettings};

pub use cleanup::clean_leftovers;
pub(crate) use guest::{stage, Staged};
pub use vm::PID_DIR;

use super::kernel::Kernel;
use super::{Accel, AccelChoice, LabError, LabEvent, LabOptions, LabOutcome};

/// Written when KVM failed to boot a guest, so later runs go straight to TCG (until
/// the host reboots: /run is a tmpfs).
const KVM_UNUSABLE: &str = "/run/kpbench/lab/kvm-unusable";
const QEMU: &str = "qemu-system-x86_64";
/// Run directories kept under `<cache>/runs`.
const KEEP_RUNS: usize = 20;

fn kvm_usable() -> bool {
    if Path::new(KVM_UNUSABLE).exists() {
        return false;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn find_qemu() -> Result<PathBuf, LabError> {
    dataplane::floor::exec::which(QEMU).ok_or_else(|| LabError::ToolMissing {
        tool: QEMU.into(),
        hint: format!(
            "install the {} package",
            dataplane::floor::exec::package_of(QEMU)
        ),
    })
}

/// The accelerators to try, in order.
fn accelerators(choice: AccelChoice) -> Vec<Accel> {
    match choice {
        AccelChoice::Kvm => vec![Accel::Kvm],
        AccelChoice::Tcg => vec![Accel::Tcg],
        AccelChoice::Auto if kvm_usable() => vec![Accel::Kvm, Accel::Tcg],
        AccelChoice::Auto => vec![Accel::Tcg],
    }
}

/// A nonce for this run's console markers, so the command cannot forge them.
fn new_nonce() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

/// Boots `kernel` with `initrd`, runs the staged command, and collects its outcome.
pub(super) fn boot(
    kernel: &Kernel,
    initrd: &Path,
    staged: &Staged,
    opts: &LabOptions,
    interrupt: Option<&AtomicBool>,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<LabOutcome, LabError> {
    let qemu = find_qemu()?;
    let run_dir = new_run_dir(&opts.cache_dir)?;
    let nonce = new_nonce();
    let run_initrd = run_dir.join("initrd.cpio");
    let settings = RunSettings {
        command: &staged.command,
        scenario: staged.scenario.as_ref(),
        kernel,
        nonce: &nonce,
    };
    write_run_initrd(initrd, &run_initrd, &settings)?;
    std::fs::write(run_dir.join("command.sh"), guest_script(&staged.command))
        .map_err(|e| LabError::io(&run_dir, e))?;
    let boot = Boot {
        qemu: &qemu,
        kernel,
        initrd: &run_initrd,
        run_dir: &run_dir,
        nonce: &nonce,
        opts,
        interrupt,
    };
    let result = try_accelerators(&boot, &accelerators(opts.accel), opts.accel, progress);
    // The initrd copy and the disk are large; the console log and command stay.
    let _ = std::fs::remove_file(&run_initrd);
    let _ = std::fs::remove_file(run_dir.join("out.img"));
    result
}

/// Boots under each accelerator in turn until a guest comes up.
fn try_accelerators(
    boot: &Boot<'_>,
    accels: &[Accel],
    choice: AccelChoice,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<LabOutcome, LabError> {
    let mut last = LabError::BootFailed {
        reason: "no accelerator to try".into(),
        console_log: boot.run_dir.join("console.log"),
    };
    for (i, &accel) in accels.iter().enumerate() {
        let err = match boot.attempt(accel, progress)? {
            Attempt::Done(outcome) => return Ok(*outcome),
            Attempt::NoLife(err) => err,
        };
        if let Some(&next) = accels.get(i + 1) {
            if accel == Accel::Kvm && choice == AccelChoice::Auto {
                // Remember until the host reboots (/run is a tmpfs).
                let _ = std::fs::write(KVM_UNUSABLE, format!("{err}\n"));
            }
            progress(LabEvent::AccelFallback {
                from: accel,
                to: next,
                reason: err.to_string(),
            });
        }
        last = err;
    }
    Err(last)
}

fn new_run_dir(cache: &Path) -> Result<PathBuf, LabError> {
    let runs = cache.join("runs");
    std::fs::create_dir_all(&runs).map_err(|e| LabError::io(&runs, e))?;
    if let Ok(rd) = std::fs::read_dir(&runs) {
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        let excess = names.len().saturating_sub(KEEP_RUNS);
        for old in names.into_iter().take(excess) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = runs.join(format!("{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    Ok(dir)
}
