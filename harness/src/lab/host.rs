//! The host tools the lab runs (apt-get, dpkg-deb, depmod, ldd, strip, xz, busybox),
//! through the same exec layer as the dataplane tools: each has a time limit, stops on
//! the process-wide cancel flag, and a missing one names its Debian package.

use std::path::Path;
use std::time::Duration;

use dataplane::floor::exec::{Output, Tool};

use super::LabError;

/// How long each host tool may run.
pub(super) mod limit {
    use std::time::Duration;

    /// `apt-cache search`: a local index lookup.
    pub const APT_SEARCH: Duration = Duration::from_secs(60);
    /// `apt-get download` of a kernel package (tens of MB).
    pub const APT_DOWNLOAD: Duration = Duration::from_secs(900);
    /// `dpkg-deb -x` of a kernel package.
    pub const EXTRACT: Duration = Duration::from_secs(300);
    /// `depmod` over a modules tree.
    pub const DEPMOD: Duration = Duration::from_secs(300);
    /// `strip` of a (debug) kpbench binary, some 100 MB.
    pub const STRIP: Duration = Duration::from_secs(300);
    /// `ldd`, `busybox --list-full`, one module's decompression.
    pub const QUICK: Duration = Duration::from_secs(60);
}

/// `program args...` with its time limit. Paths are passed as (lossy) UTF-8 text.
pub(super) fn tool<'a>(program: &'a str, args: &[&str], limit: Duration) -> Tool<'a> {
    Tool::new(program, args).timeout(limit)
}

/// A path as a tool argument.
pub(super) fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Runs a tool and fails unless it exits 0; `doing` names the step in the error.
pub(super) fn run_ok(tool: Tool<'_>, doing: impl FnOnce() -> String) -> Result<Output, LabError> {
    tool.run_ok().map_err(|e| LabError::host_tool(doing(), e))
}

/// Runs a tool whatever its exit status (e.g. `ldd` exits 1 on a static binary).
pub(super) fn output(tool: Tool<'_>, doing: impl FnOnce() -> String) -> Result<Output, LabError> {
    tool.output().map_err(|e| LabError::host_tool(doing(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_host_tool_names_its_package() {
        let e = run_ok(tool("dpkg-deb-nonexistent", &[], limit::QUICK), || {
            "x".into()
        });
        assert!(matches!(e, Err(LabError::ToolMissing { .. })), "{e:?}");
        let out = output(tool("sh", &["-c", "echo hi; exit 3"], limit::QUICK), || {
            "x".into()
        })
        .unwrap();
        assert_eq!((out.status, out.stdout.as_str()), (3, "hi\n"));
        let e = run_ok(tool("sh", &["-c", "exit 3"], limit::QUICK), || {
            "doing it".into()
        })
        .unwrap_err();
        assert!(
            e.to_string().starts_with("doing it: sh failed (exit 3)"),
            "{e}"
        );
    }
}
