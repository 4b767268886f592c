//! Why a lab run failed, and the documented exit code of each failure.

use std::path::{Path, PathBuf};

use dataplane::floor::exec::ExecError;

use super::archive::ArchiveError;

/// Exit code: the lab cannot run here (kernel not found, qemu/busybox/apt missing).
pub const EXIT_UNAVAILABLE: i32 = crate::exitcode::UNAVAILABLE;
/// Exit code: the VM failed: the kernel did not boot, panicked, showed no sign of life
/// in time, the command overran the timeout, or the guest never reported an exit code.
pub const EXIT_BOOT_FAILED: i32 = crate::exitcode::LAB_INFRA;
/// Exit code: interrupted (Ctrl-C / SIGTERM); qemu was killed.
pub const EXIT_INTERRUPTED: i32 = crate::exitcode::INTERRUPTED;

/// Why a lab run failed (the command's own failure is an `Ok` with its exit code).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("bad kernel name: {0}")]
    BadSpec(String),
    /// The scenario file named on the command line cannot be read.
    #[error("scenario {}: {source} (give a TOML file on this host)", path.display())]
    BadScenario {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel unavailable: {0}")]
    KernelUnavailable(String),
    /// The kernel file cannot boot (checked before starting qemu).
    #[error("{0}")]
    BadKernel(String),
    #[error("{tool} not found: {hint}")]
    ToolMissing { tool: String, hint: String },
    /// A host tool the lab runs (apt-get, dpkg-deb, depmod, xz, ...) failed or overran
    /// its time limit; `doing` names the step.
    #[error("{doing}: {source}")]
    HostTool {
        doing: String,
        #[source]
        source: ExecError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The guest's results archive (on the results disk or the console) is unreadable.
    #[error("the guest's results ({}): {source}", from.display())]
    Results {
        from: PathBuf,
        #[source]
        source: ArchiveError,
    },
    #[error("lab VM failed: {reason} (console log: {})", console_log.display())]
    BootFailed {
        reason: String,
        console_log: PathBuf,
    },
    #[error("lab VM timed out: {reason}; qemu was killed (console log: {})", console_log.display())]
    Timeout {
        reason: String,
        console_log: PathBuf,
    },
    #[error("interrupted; qemu was killed")]
    Interrupted,
}

impl LabError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A host tool's failure during `doing`: a missing tool names its package, a
    /// cancelled one is an interruption.
    pub(crate) fn host_tool(doing: impl Into<String>, source: ExecError) -> Self {
        match source {
            ExecError::NotFound { tool, package } => LabError::ToolMissing {
                tool,
                hint: format!("install the {package} package"),
            },
            ExecError::Cancelled { .. } => LabError::Interrupted,
            source => LabError::HostTool {
                doing: doing.into(),
                source,
            },
        }
    }

    /// The documented exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            LabError::BadSpec(_) | LabError::BadScenario { .. } => crate::exitcode::USAGE,
            LabError::KernelUnavailable(_)
            | LabError::ToolMissing { .. }
            | LabError::HostTool { .. } => EXIT_UNAVAILABLE,
            LabError::Io { .. } | LabError::Results { .. } => crate::exitcode::INTERNAL,
            LabError::BadKernel(_) | LabError::BootFailed { .. } | LabError::Timeout { .. } => {
                EXIT_BOOT_FAILED
            }
            LabError::Interrupted => EXIT_INTERRUPTED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tool_failures_keep_their_meaning() {
        let missing = LabError::host_tool(
            "x",
            ExecError::NotFound {
                tool: "depmod".into(),
                package: "kmod".into(),
            },
        );
        assert_eq!(
            missing.to_string(),
            "depmod not found: install the kmod package"
        );
        assert_eq!(missing.exit_code(), EXIT_UNAVAILABLE);
        let cancelled = LabError::host_tool(
            "x",
            ExecError::Cancelled {
                tool: "apt-get".into(),
            },
        );
        assert!(matches!(cancelled, LabError::Interrupted));
        let failed = LabError::host_tool(
            "extracting k.deb",
            ExecError::Failed {
                tool: "dpkg-deb".into(),
                status: 2,
                stderr: "bad archive".into(),
            },
        );
        assert_eq!(
            failed.to_string(),
            "extracting k.deb: dpkg-deb failed (exit 2): bad archive"
        );
        assert_eq!(failed.exit_code(), EXIT_UNAVAILABLE);
    }
}
