//! `kpbench clean`: removes what crashed or killed runs left behind. A running kpbench
//! registers its pid under `/run/kpbench/runs/<run-id>`; namespaces of runs whose
//! process is still alive are left alone, so two runs never interfere.

use std::path::{Path, PathBuf};

use dataplane::netns::Netns;

use crate::topology::NETNS_PREFIX;

/// Where running kpbench processes register themselves.
pub const RUNS_DIR: &str = "/run/kpbench/runs";

/// Registration of a live run; removed on drop.
#[derive(Debug)]
pub struct RunRegistration {
    path: PathBuf,
}

impl RunRegistration {
    /// Registers `run_id` as owned by this process.
    pub fn new(run_id: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(RUNS_DIR)?;
        let path = Path::new(RUNS_DIR).join(run_id);
        std::fs::write(&path, std::process::id().to_string())?;
        Ok(RunRegistration { path })
    }
}

impl Drop for RunRegistration {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks for existence without sending anything.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Run ids of runs whose process is still alive.
pub fn live_runs() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(RUNS_DIR) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: i32 = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let id = e.file_name().into_string().ok()?;
            if alive(pid) {
                Some(id)
            } else {
                let _ = std::fs::remove_file(e.path());
                None
            }
        })
        .collect()
}

/// What `clean` removed, and what it failed to remove.
#[derive(Debug, Default)]
pub struct CleanReport {
    pub removed: Vec<String>,
    pub kept_live: Vec<String>,
    pub errors: Vec<String>,
}

/// Removes every kpbench namespace not owned by a live run (all of them with `force`).
pub fn clean(force: bool) -> CleanReport {
    let live = if force { Vec::new() } else { live_runs() };
    let mut report = CleanReport::default();
    for name in Netns::list(NETNS_PREFIX) {
        if live
            .iter()
            .any(|id| name.starts_with(&format!("{NETNS_PREFIX}{id}-")))
        {
            report.kept_live.push(name);
            continue;
        }
        match Netns::named(&name).delete() {
            Ok(()) => report.removed.push(format!("network namespace {name}")),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    report
}
