//! A running qemu process, and the guarantee that it never outlives the run: killed
//! and reaped on drop, SIGKILLed by the kernel when the thread that spawned it dies
//! (PR_SET_PDEATHSIG), its pid recorded under [`PID_DIR`] for `kpbench clean`.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::console::{read_lines, Msg};
use super::QEMU;
use crate::lab::LabError;

/// Where running lab VMs are recorded: `qemu-<qemu pid>.pid` holds the qemu pid, the
/// owning kpbench's pid and the run directory, one per line.
pub const PID_DIR: &str = "/run/kpbench/lab";

/// A running qemu: killed and reaped on drop, pid file removed.
pub(super) struct Vm {
    child: Child,
    pidfile: PathBuf,
    /// When qemu was started.
    pub start: Instant,
    lines: mpsc::Receiver<Msg>,
    reader: Option<JoinHandle<()>>,
    err_reader: Option<JoinHandle<Vec<u8>>>,
}

/// What the console said next.
pub(super) enum Next {
    Line(Vec<u8>),
    /// qemu closed its console: it has exited.
    Eof,
    /// Nothing within the wait.
    Quiet,
}

/// A stopped qemu.
pub(super) struct Stopped {
    /// Its exit status, if it exited by itself.
    pub status: Option<ExitStatus>,
    /// From qemu start to its exit (or kill).
    pub vm_time: Duration,
    /// Console lines read after the watch stopped.
    pub rest: Vec<Vec<u8>>,
    /// What qemu printed on stderr.
    pub stderr: String,
}

impl Vm {
    /// Starts `cmd` (qemu with its arguments) in its own process group with stdout
    /// (the serial console) copied to `log`, and records its pid.
    pub(super) fn spawn(
        mut cmd: Command,
        run_dir: &Path,
        log: std::fs::File,
    ) -> Result<Vm, LabError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let _ = std::fs::write(
            run_dir.join("qemu.args"),
            format!("{:?}\n", cmd.get_args().collect::<Vec<_>>()),
        );
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| LabError::ToolMissing {
            tool: QEMU.into(),
            hint: format!(
                "{e}; install the {} package",
                dataplane::floor::exec::package_of(QEMU)
            ),
        })?;
        let pidfile = record_pid(child.id(), run_dir);
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || read_lines(stdout, log, tx));
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        Ok(Vm {
            child,
            pidfile,
            start,
            lines,
            reader: Some(reader),
            err_reader: Some(err_reader),
        })
    }

    /// The next console line, waiting at most `wait`.
    pub(super) fn next_line(&self, wait: Duration) -> Next {
        match self.lines.recv_timeout(wait) {
            Ok(Msg::Line(raw)) => Next::Line(raw),
            Ok(Msg::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => Next::Eof,
            Err(mpsc::RecvTimeoutError::Timeout) => Next::Quiet,
        }
    }

    /// Gives qemu up to `grace` to exit by itself (a guest powering off), then kills
    /// it, and collects what it still said.
    pub(super) fn stop(mut self, grace: Duration) -> Stopped {
        let until = Instant::now() + grace;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
                _ => break None,
            }
        };
        let vm_time = self.start.elapsed();
        self.kill();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut rest = Vec::new();
        while let Ok(Msg::Line(raw)) = self.lines.try_recv() {
            rest.push(raw);
        }
        let stderr = self
            .err_reader
            .take()
            .and_then(|r| r.join().ok())
            .unwrap_or_default();
        Stopped {
            status,
            vm_time,
            rest,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `<PID_DIR>/qemu-<pid>.pid`: qemu's pid, ours, and the run directory.
fn record_pid(pid: u32, run_dir: &Path) -> PathBuf {
    let _ = std::fs::create_dir_all(PID_DIR);
    let pidfile = Path::new(PID_DIR).join(format!("qemu-{pid}.pid"));
    let _ = std::fs::write(
        &pidfile,
        format!("{pid}\n{}\n{}\n", std::process::id(), run_dir.display()),
    );
    pidfile
}

/// Appends qemu's stderr to the console log.
pub(super) fn log_stderr(console_log: &Path, stderr: &str) {
    if stderr.trim().is_empty() {
        return;
    }
    if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(console_log) {
        let _ = write!(log, "=== qemu stderr ===\n{stderr}");
    }
}
