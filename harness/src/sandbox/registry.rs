//! The registry of live runs: a running kpbench registers its pid under
//! `/run/kpbench/runs/<run-id>`, so `kpbench clean` can tell a crashed run's leftovers
//! from a live run's namespaces.

use std::path::{Path, PathBuf};

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
    use nix::errno::Errno;
    // Signal 0 checks for existence without sending anything; EPERM means it exists
    // but belongs to someone else.
    pid > 0
        && matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Ok(()) | Err(Errno::EPERM)
        )
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
