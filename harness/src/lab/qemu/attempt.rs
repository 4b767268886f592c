//! One boot of the lab VM under one accelerator, in named steps: create the results
//! disk and console log, start qemu, watch the console against the deadlines, stop
//! qemu, and turn what happened into an outcome or an error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::console::{clean_line, tail, Watch};
use super::vm::{log_stderr, Next, Stopped, Vm};
use crate::lab::archive::{read_tar, ArchiveError};
use crate::lab::kernel::Kernel;
use crate::lab::{Accel, LabError, LabEvent, LabOptions, LabOutcome};

/// Time allowed between the command's end and qemu's exit (tar, sync, power off).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// How often the watch looks at the deadlines and the interrupt flag.
const TICK: Duration = Duration::from_millis(200);

/// Everything a boot needs, whichever accelerator it runs under.
pub(super) struct Boot<'a> {
    pub qemu: &'a Path,
    pub kernel: &'a Kernel,
    /// The run's initramfs (the cached one plus this run's overlay).
    pub initrd: &'a Path,
    pub run_dir: &'a Path,
    /// Marks the guest's protocol lines on the console.
    pub nonce: &'a str,
    pub opts: &'a LabOptions,
    pub interrupt: Option<&'a AtomicBool>,
}

/// How one boot attempt ended.
pub(super) enum Attempt {
    Done(Box<LabOutcome>),
    /// The guest never came up; the next accelerator may do better.
    NoLife(LabError),
}

/// Why the watch stopped a VM before it finished by itself.
enum Stop {
    /// No sign of life from /init within the boot timeout.
    NoLife {
        boot_timeout: Duration,
        accel: Accel,
    },
    /// The overall limit passed.
    Overran { timeout: Duration },
}

impl Stop {
    fn reason(&self) -> String {
        match self {
            Stop::NoLife {
                boot_timeout,
                accel,
            } => format!(
                "no sign of life from the guest's /init within {}s under {}",
                boot_timeout.as_secs(),
                accel.name()
            ),
            Stop::Overran { timeout } => {
                format!("the run did not finish within {}s", timeout.as_secs())
            }
        }
    }
}

impl Boot<'_> {
    fn console_log(&self) -> PathBuf {
        self.run_dir.join("console.log")
    }

    fn disk(&self) -> PathBuf {
        self.run_dir.join("out.img")
    }

    /// Boots once under `accel` and runs the command to its end.
    pub(super) fn attempt(
        &self,
        accel: Accel,
        progress: &mut dyn FnMut(LabEvent),
    ) -> Result<Attempt, LabError> {
        let log = self.prepare_files(accel)?;
        let vm = Vm::spawn(self.qemu_command(accel), self.run_dir, log)?;
        progress(LabEvent::Booting {
            accel,
            run_dir: self.run_dir.to_path_buf(),
        });
        let mut watch = Watch::default();
        let stop = self.watch(&vm, accel, &mut watch, progress)?;
        // A guest that finished is given time to power off; a stopped one is not.
        let grace = Duration::from_secs(if stop.is_some() { 0 } else { 10 });
        let start = vm.start;
        let stopped = vm.stop(grace);
        let marker = self.marker();
        for raw in &stopped.rest {
            watch.line(&clean_line(raw), &marker, start, accel, progress);
        }
        log_stderr(&self.console_log(), &stopped.stderr);
        self.conclude(accel, watch, stop, stopped)
    }

    /// The sparse results disk, and the console log opened for appending.
    fn prepare_files(&self, accel: Accel) -> Result<std::fs::File, LabError> {
        let disk = self.disk();
        let f = std::fs::File::create(&disk).map_err(|e| LabError::io(&disk, e))?;
        f.set_len(self.opts.results_disk_mib << 20)
            .map_err(|e| LabError::io(&disk, e))?;
        drop(f);
        let console_log = self.console_log();
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console_log)
            .map_err(|e| LabError::io(&console_log, e))?;
        let _ = writeln!(log, "=== kpbench lab: accel {} ===", accel.name());
        Ok(log)
    }

    /// qemu's command line: the kernel and initramfs, the results disk, no network.
    fn qemu_command(&self, accel: Accel) -> Command {
        let mut cmd = Command::new(self.qemu);
        cmd.arg("-name").arg(format!("kpbench-lab-{}", self.nonce));
        match accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
        };
        cmd.args([
            "-m",
            &self.opts.memory_mib.to_string(),
            "-smp",
            &self.opts.cpus.to_string(),
        ])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&self.kernel.vmlinuz)
        .arg("-initrd")
        .arg(self.initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet panic=-1 oops=panic kpbench.accel={}",
            accel.name()
        ))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio",
            self.disk().display()
        ));
        cmd
    }

    fn marker(&self) -> String {
        format!("@@KPBENCH-LAB:{}:", self.nonce)
    }

    fn interrupted(&self) -> bool {
        self.interrupt.is_some_and(|f| f.load(Ordering::SeqCst))
            || dataplane::floor::exec::cancelled()
    }

    /// Follows the console until qemu exits, the command's shutdown grace passes, or a
    /// deadline does (then returns why). An interrupt ends it with an error.
    fn watch(
        &self,
        vm: &Vm,
        accel: Accel,
        watch: &mut Watch,
        progress: &mut dyn FnMut(LabEvent),
    ) -> Result<Option<Stop>, LabError> {
        let boot_timeout = self.opts.boot_timeout.unwrap_or(match accel {
            Accel::Kvm => Duration::from_secs(20),
            Accel::Tcg => Duration::from_secs(180),
        });
        let deadline = vm.start + self.opts.timeout;
        let marker = self.marker();
        loop {
            if self.interrupted() {
                return Err(LabError::Interrupted);
            }
            match vm.next_line(TICK) {
                Next::Line(raw) => {
                    watch.line(&clean_line(&raw), &marker, vm.start, accel, progress)
                }
                Next::Eof => return Ok(None),
                Next::Quiet => {}
            }
            let now = Instant::now();
            if watch.alive.is_none() && now > vm.start + boot_timeout {
                return Ok(Some(Stop::NoLife {
                    boot_timeout,
                    accel,
                }));
            }
            if now > deadline {
                return Ok(Some(Stop::Overran {
                    timeout: self.opts.timeout,
                }));
            }
            if watch.ended.is_some_and(|t| now > t + SHUTDOWN_GRACE) {
                return Ok(None); // The command finished; the guest just hangs on the way down.
            }
        }
    }

    /// The outcome when the guest reported an exit code; else the failure, which the
    /// next accelerator may avoid when the guest never came up.
    fn conclude(
        &self,
        accel: Accel,
        watch: Watch,
        stop: Option<Stop>,
        stopped: Stopped,
    ) -> Result<Attempt, LabError> {
        if let Some(code) = watch.exit_code {
            let disk = self.disk();
            let files = collect_files(&disk, &watch.tar_b64)
                .map_err(|source| LabError::Results { from: disk, source })?;
            return Ok(Attempt::Done(Box::new(LabOutcome {
                exit_code: code,
                accel,
                kernel_release: self.kernel.release.clone(),
                kernel_source: self.kernel.source.clone(),
                console_log: self.console_log(),
                files,
                boot_time: watch.alive.unwrap_or_default(),
                vm_time: stopped.vm_time,
            })));
        }
        let reason = match &stop {
            Some(stop) => stop.reason(),
            None => failure_reason(&watch, &stopped),
        };
        let console_log = self.console_log();
        let err = match stop {
            Some(_) => LabError::Timeout {
                reason,
                console_log,
            },
            None => LabError::BootFailed {
                reason,
                console_log,
            },
        };
        if watch.alive.is_none() {
            Ok(Attempt::NoLife(err))
        } else {
            Err(err)
        }
    }
}

/// Why a guest that stopped by itself reported no exit code.
fn failure_reason(watch: &Watch, stopped: &Stopped) -> String {
    let console_tail = tail(&watch.recent.join("\n"), 8);
    if let Some(p) = &watch.panic {
        return format!("the guest kernel panicked: {p}; last console lines:\n{console_tail}");
    }
    if watch.alive.is_some() {
        return format!(
            "the guest stopped before reporting the command's exit code; last console lines:\n{console_tail}"
        );
    }
    let status = stopped
        .status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown status".into());
    let stderr_tail = tail(&stopped.stderr, 5);
    let said = if stderr_tail.is_empty() {
        console_tail
    } else {
        stderr_tail
    };
    format!("qemu exited ({status}) before the guest's /init started: {said}")
}

/// Reads the guest's tar (from the disk, or the console fallback) and returns the
/// files under `out/`.
fn collect_files(disk: &Path, b64: &str) -> Result<BTreeMap<PathBuf, Vec<u8>>, ArchiveError> {
    let entries = if b64.is_empty() {
        // Only the archive's blocks are read: the rest of the sparse disk is zeros.
        let f = std::fs::File::open(disk)?;
        read_tar(std::io::BufReader::new(f))?
    } else {
        read_tar(&data_encoding::BASE64.decode(b64.as_bytes())?[..])?
    };
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            let rel = e.path.strip_prefix("out").ok()?.to_path_buf();
            Some((rel, e.data))
        })
        .filter(|(rel, _)| !rel.as_os_str().is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_back_from_the_disk_or_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in [
            ("out/r/results.json", &b"{}"[..]),
            ("status/exit_code", b"0\n"),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data).unwrap();
        }
        let mut archive = b.into_inner().unwrap();
        let b64 = data_encoding::BASE64.encode(&archive);
        archive.resize(4 << 20, 0);
        let disk = dir.path().join("out.img");
        std::fs::write(&disk, &archive).unwrap();
        let want: BTreeMap<PathBuf, Vec<u8>> =
            [(PathBuf::from("r/results.json"), b"{}".to_vec())].into();
        assert_eq!(collect_files(&disk, "").unwrap(), want);
        assert_eq!(
            collect_files(Path::new("/nonexistent"), &b64).unwrap(),
            want
        );
        let e = collect_files(&disk, "not base64!").unwrap_err();
        assert!(matches!(e, ArchiveError::Base64(_)), "{e}");
    }

    #[test]
    fn failure_reasons_name_what_was_seen() {
        let stopped = Stopped {
            status: None,
            vm_time: Duration::ZERO,
            rest: vec![],
            stderr: "qemu: could not load kernel\n".into(),
        };
        let watch = Watch::default();
        assert_eq!(
            failure_reason(&watch, &stopped),
            "qemu exited (unknown status) before the guest's /init started: qemu: could not load kernel"
        );
        let stop = Stop::NoLife {
            boot_timeout: Duration::from_secs(20),
            accel: Accel::Kvm,
        };
        assert_eq!(
            stop.reason(),
            "no sign of life from the guest's /init within 20s under kvm"
        );
    }
}
