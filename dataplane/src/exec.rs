//! Running the kernel's own tools (iptables-restore, nft, ipset, ...) inside a network
//! namespace, with a timeout, and measuring their wall time and CPU exactly (wait4).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netns::Netns;

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

/// A tool invocation: program, arguments, optional stdin and target namespace.
pub struct Tool<'a> {
    pub program: &'a str,
    pub args: Vec<String>,
    pub stdin: Option<&'a [u8]>,
    pub netns: Option<&'a Netns>,
    pub timeout: Duration,
}

impl<'a> Tool<'a> {
    pub fn new(program: &'a str, args: &[&str]) -> Self {
        Tool {
            program,
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
            netns: None,
            timeout: Duration::from_secs(600),
        }
    }

    pub fn stdin(mut self, data: &'a [u8]) -> Self {
        self.stdin = Some(data);
        self
    }

    pub fn netns(mut self, ns: &'a Netns) -> Self {
        self.netns = Some(ns);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
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
        if let Some(ns) = self.netns {
            let fd: OwnedFd = ns.open().map_err(|e| ExecError::Spawn {
                tool: self.program.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let raw = fd.as_raw_fd();
            // SAFETY: setns is async-signal-safe; the fd stays open until spawn returns.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
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
        let (status, rusage) = wait_with_timeout(pid, self.timeout, start);
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
                after: self.timeout,
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
/// status is None when it was killed for the timeout.
fn wait_with_timeout(
    pid: libc::pid_t,
    timeout: Duration,
    start: Instant,
) -> (Option<i32>, libc::rusage) {
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
        if start.elapsed() >= timeout || cancelled() {
            // SAFETY: the child is ours and not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
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
