//! Running the kernel's own tools (iptables-restore, nft, ipset, ...) inside a network
//! namespace, by a [`Deadline`], and measuring their wall time and CPU exactly (wait4);
//! [`Meter`] adds the calling thread's own CPU to what a sync's tools cost.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::floor::deadline::Deadline;
use crate::floor::netns::Netns;
use crate::floor::thread_cpu::ThreadCpu;

static CANCEL: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

/// The process-wide cancellation flag (set by SIGINT/SIGTERM handlers): running tools
/// are killed and report [`ExecError::Cancelled`].
pub fn cancel_flag() -> Arc<AtomicBool> {
    CANCEL
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

/// Whether the run was asked to stop.
pub fn cancelled() -> bool {
    CANCEL.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// What running one tool cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        self.wall += o.wall;
        self.user += o.user;
        self.sys += o.sys;
    }
}

/// The user and system CPU the calling thread has used so far (wall is zero): a
/// reading to take differences of with [`ThreadCpu::since`].
pub fn thread_cpu() -> ThreadCpu {
    crate::floor::thread_cpu::now()
}

/// Measures one sync: the wall time since [`Meter::start`] and the CPU of the calling
/// thread (rendering, netlink) plus whatever the sync's tools and helper threads cost.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    start: Instant,
    cpu: ThreadCpu,
}

impl Meter {
    pub fn start() -> Self {
        Meter {
            start: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    /// The whole cost: wall time since the start, this thread's CPU since the start
    /// plus `others` (tools' and helper threads' CPU; their wall time is ignored).
    pub fn finish(self, others: Cost) -> Cost {
        let (user, sys) = thread_cpu().since(self.cpu);
        Cost {
            wall: self.start.elapsed(),
            user: others.user + user,
            sys: others.sys + sys,
        }
    }
}

/// The result of a finished tool.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub cost: Cost,
}

/// Errors running an external tool.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{tool} not found: install the {package} package")]
    NotFound { tool: String, package: String },
    #[error("{tool}: could not start: {source}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} timed out after {after:?} and was killed")]
    Timeout { tool: String, after: Duration },
    #[error("{tool} was stopped: the run was interrupted")]
    Cancelled { tool: String },
    #[error("{tool} failed (exit {status}): {stderr}")]
    Failed {
        tool: String,
        status: i32,
        stderr: String,
    },
}

/// The Debian package that ships a tool, for "install X" hints.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        t if t.starts_with("iptables") || t.starts_with("ip6tables") => "iptables",
        "nft" => "nftables",
        "ipset" => "ipset",
        "ipvsadm" => "ipvsadm",
        "ip" => "iproute2",
        // The host tools the kernel lab runs.
        "apt-get" | "apt-cache" => "apt",
        "dpkg-deb" => "dpkg",
        "depmod" | "modprobe" => "kmod",
        "ldd" => "libc-bin",
        "strip" => "binutils",
        "xz" => "xz-utils",
        "zstd" => "zstd",
        "gzip" => "gzip",
        "busybox" => "busybox-static",
        "qemu-system-x86_64" => "qemu-system-x86",
        _ => "matching",
    }
}

/// Finds a tool on PATH (plus the sbin directories, which root's PATH may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// How long a tool may run when its caller gives no deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A tool invocation: program, arguments, optional stdin and target namespace.
pub struct Tool<'a> {
    pub program: &'a str,
    pub args: Vec<String>,
    pub stdin: Option<&'a [u8]>,
    pub netns: Option<&'a Netns>,
    /// When the tool is killed; None: [`DEFAULT_TIMEOUT`] after it starts.
    pub deadline: Option<Deadline>,
    /// The tool's working directory; None: the caller's.
    pub current_dir: Option<&'a Path>,
}

impl<'a> Tool<'a> {
    pub fn new(program: &'a str, args: &[&str]) -> Self {
        Tool {
            program,
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            netns: None,
            deadline: None,
            current_dir: None,
        }
    }

    /// Runs the tool in `dir` (e.g. `apt-get download`, which saves into its cwd).
    pub fn current_dir(mut self, dir: &'a Path) -> Self {
        self.current_dir = Some(dir);
        self
    }

    pub fn stdin(mut self, data: &'a [u8]) -> Self {
        self.stdin = Some(data);
        self
    }

    pub fn netns(mut self, ns: &'a Netns) -> Self {
        self.netns = Some(ns);
        self
    }

    /// Kills the tool `t` after it starts.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.deadline = Some(Deadline::after(t));
        self
    }

    /// Kills the tool at `deadline` (it gets at least [`crate::floor::deadline::MIN_BUDGET`]).
    pub fn deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Runs the tool and returns its output whatever its exit status.
    pub fn output(&self) -> Result<Output, ExecError> {
        let path = which(self.program).ok_or_else(|| ExecError::NotFound {
            tool: self.program.to_string(),
            package: package_of(self.program).to_string(),
        })?;
        let mut cmd = Command::new(&path);
        cmd.args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = self.current_dir {
            cmd.current_dir(dir);
        }
        if let Some(ns) = self.netns {
            let fd: OwnedFd = ns.open().map_err(|e| ExecError::Spawn {
                tool: self.program.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let raw = fd.as_raw_fd();
            // SAFETY: setns is async-signal-safe (one syscall, no allocation), and the
            // fd stays open until spawn returns, so `raw` is valid in the child.
            unsafe {
                cmd.pre_exec(move || {
                    let ns = std::os::fd::BorrowedFd::borrow_raw(raw);
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)
                });
            }
            let out = self.run(cmd);
            drop(fd);
            return out;
        }
        self.run(cmd)
    }

    /// Runs the tool and fails unless it exits 0.
    pub fn run_ok(&self) -> Result<Output, ExecError> {
        let out = self.output()?;
        if out.status != 0 {
            return Err(ExecError::Failed {
                tool: self.program.to_string(),
                status: out.status,
                stderr: first_lines(&out.stderr, 6),
            });
        }
        Ok(out)
    }

    fn run(&self, mut cmd: Command) -> Result<Output, ExecError> {
        let start = Instant::now();
        let deadline = self
            .deadline
            .unwrap_or_else(|| Deadline::after_from(start, DEFAULT_TIMEOUT));
        // A tool that is started is always bounded, even when its deadline has passed.
        let deadline = deadline.max(Deadline::after_from(
            start,
            crate::floor::deadline::MIN_BUDGET,
        ));
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            tool: self.program.to_string(),
            source,
        })?;
        let pid = child.id() as libc::pid_t;
        // Feed stdin and drain stdout/stderr on threads so a large payload cannot
        // deadlock against a full pipe.
        let stdin = child.stdin.take();
        let data = self.stdin.map(|d| d.to_vec());
        let writer = std::thread::spawn(move || {
            if let (Some(mut s), Some(d)) = (stdin, data) {
                let _ = s.write_all(&d);
            }
        });
        let mut out_pipe = child.stdout.take().expect("stdout is piped");
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let out_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out_pipe.read_to_end(&mut v);
            v
        });
        let err_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err_pipe.read_to_end(&mut v);
            v
        });
        let (status, rusage) = wait_until(pid, deadline);
        let _ = writer.join();
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        let wall = start.elapsed();
        // The child was reaped by wait4 above; make sure std does not wait again.
        std::mem::forget(child);
        let Some(status) = status else {
            if cancelled() {
                return Err(ExecError::Cancelled {
                    tool: self.program.to_string(),
                });
            }
            return Err(ExecError::Timeout {
                tool: self.program.to_string(),
                after: wall,
            });
        };
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            cost: Cost {
                wall,
                user: tv(rusage.ru_utime),
                sys: tv(rusage.ru_stime),
            },
        })
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Waits for `pid`, killing it at the deadline. Returns (exit status, rusage); the
/// status is None when it was killed for the deadline or a cancellation. This stays on
/// libc: wait4 is the one call that returns the child's own rusage, and nix has none.
fn wait_until(pid: libc::pid_t, deadline: Deadline) -> (Option<i32>, libc::rusage) {
    let mut killed = false;
    let mut delay = Duration::from_micros(200);
    loop {
        let mut status = 0;
        // SAFETY: plain syscall with valid out-pointers.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if killed { 0 } else { libc::WNOHANG };
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if r == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            return (if killed { None } else { Some(code) }, ru);
        }
        if r < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return (Some(-1), ru);
        }
        if deadline.expired() || cancelled() {
            // The child is ours and not yet reaped, so the pid is still its own.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed = true;
            continue;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

/// The first `n` lines of a tool's stderr, for error messages.
pub fn first_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).take(n).collect();
    let mut out = lines.join("; ");
    if out.is_empty() {
        out = "(no output)".into();
    }
    out
}

/// Version string of a tool (`tool --version`, first line), or None if absent.
pub fn version(tool: &str) -> Option<String> {
    let arg = if tool == "ipset" {
        "version"
    } else {
        "--version"
    };
    let out = Tool::new(tool, &[arg])
        .timeout(Duration::from_secs(10))
        .output()
        .ok()?;
    let text = if out.stdout.trim().is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    text.lines().next().map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_measures_a_tool() {
        let out = Tool::new("sh", &["-c", "cat; echo err >&2; exit 3"])
            .stdin(b"hello")
            .output()
            .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.stderr.trim(), "err");
        assert!(out.cost.wall > Duration::ZERO);
    }

    #[test]
    fn kills_a_tool_at_its_timeout() {
        let start = Instant::now();
        let err = Tool::new("sleep", &["30"])
            .timeout(Duration::from_millis(200))
            .output()
            .unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_passed_deadline_still_starts_and_bounds_the_tool() {
        let err = Tool::new("sleep", &["30"])
            .deadline(Deadline::at(Instant::now()))
            .output()
            .unwrap_err();
        assert!(
            matches!(err, ExecError::Timeout { ref tool, .. } if tool == "sleep"),
            "{err}"
        );
    }

    #[test]
    fn a_meter_counts_this_threads_cpu_and_the_others() {
        let meter = Meter::start();
        let mut x = 0u64;
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let tools = Cost {
            wall: Duration::from_secs(100),
            user: Duration::from_secs(1),
            sys: Duration::from_secs(2),
        };
        let c = meter.finish(tools);
        assert!(c.wall >= Duration::from_millis(30) && c.wall < Duration::from_secs(100));
        assert!(c.user >= Duration::from_secs(1) && c.sys >= Duration::from_secs(2));
        assert!(c.user + c.sys > Duration::from_secs(3), "{c:?}");
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let err = Tool::new("iptables-nonexistent-restore", &[])
            .output()
            .unwrap_err();
        assert!(
            err.to_string().contains("install the iptables package"),
            "{err}"
        );
    }

    #[test]
    fn child_cpu_is_measured() {
        let out = Tool::new(
            "sh",
            &["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"],
        )
        .output()
        .unwrap();
        assert!(
            out.cost.user + out.cost.sys > Duration::from_millis(10),
            "{:?}",
            out.cost
        );
    }
}
