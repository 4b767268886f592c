//! `kpbench clean`'s lab part: lab qemu processes whose kpbench is gone.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::vm::PID_DIR;

/// Whether `pid` is a lab qemu (its command line names `kpbench-lab-`).
fn is_lab_qemu(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    cmdline.contains("qemu-system") && cmdline.contains("-name\0kpbench-lab-")
}

fn alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

fn kill_qemu(pid: i32, why: &str, done: &mut Vec<String>) {
    // The pid was just checked to be a lab qemu.
    if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
        done.push(format!("killed lab qemu (pid {pid}): {why}"));
    }
}

/// Kills lab qemu processes whose owning kpbench is dead: those recorded under
/// [`PID_DIR`] with a dead owner, and any lab qemu orphaned to init. Removes stale pid
/// files. Returns one line per thing done, for `kpbench clean` to print.
pub fn clean_leftovers() -> Vec<String> {
    let mut done = Vec::new();
    clean_recorded(&mut done);
    clean_orphans(&mut done);
    done
}

/// VMs recorded under [`PID_DIR`] whose kpbench is gone.
fn clean_recorded(done: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(PID_DIR) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("qemu-") && name.ends_with(".pid")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let mut lines = text.lines();
        let pid: Option<i32> = lines.next().and_then(|l| l.trim().parse().ok());
        let owner: Option<i32> = lines.next().and_then(|l| l.trim().parse().ok());
        if owner.is_some_and(alive) {
            continue; // A live kpbench still owns it.
        }
        if let Some(pid) = pid.filter(|&p| is_lab_qemu(p)) {
            let owner = owner.map(|o| o.to_string()).unwrap_or_else(|| "?".into());
            kill_qemu(pid, &format!("its kpbench (pid {owner}) is gone"), done);
        }
        if std::fs::remove_file(e.path()).is_ok() {
            done.push(format!("removed {}", e.path().display()));
        }
    }
}

/// Lab qemus without a pid file (e.g. /run was cleared), reparented to init.
fn clean_orphans(done: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if !is_lab_qemu(pid) {
            continue;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Field 4 (ppid) follows the parenthesised command name.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(1) {
            kill_qemu(pid, "orphaned (no kpbench parent)", done);
        }
    }
}
