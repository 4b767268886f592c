//! The cgroup v2 directory the socket load balancer is attached to: one that kpbench
//! creates for its client, `<cgroup2>/kpbench/<name>`, with kpbench's process in it.
//!
//! A cgroup hook sees the sockets of the processes in its cgroup, and cgroup v2 moves
//! whole processes, not threads. kpbench's load generator is threads of kpbench
//! itself (inside the client network namespace), so kpbench moves its own process
//! into the client cgroup while a socket LB is loaded ([`enter`]) and back to where
//! it was when the last one goes ([`leave`]); the cgroup is then removed. Nothing
//! else on the machine is in it, so nothing else is translated (and the programs also
//! check the client's network namespace).
//!
//! A killed run leaves an empty directory behind (its links die with the process);
//! `kpbench apply` leaves one on purpose, for the client the user puts in it. `kpbench
//! clean` removes the empty ones ([`clean`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::err;
use crate::floor::error::ApplyError;

/// Where kpbench mounts cgroup2 when the host has no cgroup2 mount.
pub const CGROUP2_FALLBACK: &str = "/run/kpbench/cgroup2";
/// The folder under the cgroup2 mount that holds kpbench's client cgroups.
pub const FOLDER: &str = "kpbench";

/// The client cgroup this process is in, how many socket LBs use it, and the cgroup
/// the process came from.
#[derive(Debug)]
struct Inside {
    path: PathBuf,
    home: PathBuf,
    users: usize,
}

static INSIDE: Mutex<Option<Inside>> = Mutex::new(None);

/// The client cgroup's name for a node namespace: the case's prefix
/// (`kpb-<run>-<case>` for `kpb-<run>-<case>-node`), else the namespace's name.
pub fn name_for(node: &str) -> String {
    node.strip_suffix("-node").unwrap_or(node).to_string()
}

/// Moves this process into the client cgroup for `node`, creating it, and returns its
/// path. While the process is already in one (another socket LB is loaded), that one
/// is shared.
pub fn enter(node: &str) -> Result<PathBuf, ApplyError> {
    let mut inside = INSIDE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = inside.as_mut() {
        i.users += 1;
        return Ok(i.path.clone());
    }
    let home = own_cgroup()?;
    let path = mount()?.join(FOLDER).join(name_for(node));
    std::fs::create_dir_all(&path).map_err(err(format!("creating cgroup {}", path.display())))?;
    move_self(&path)?;
    tracing::debug!("moved kpbench into its client cgroup {}", path.display());
    *inside = Some(Inside {
        path: path.clone(),
        home,
        users: 1,
    });
    Ok(path)
}

/// One socket LB less in the client cgroup: after the last, the process goes back to
/// where it came from and the cgroup is removed (unless `keep`: `kpbench apply` leaves
/// it for `kpbench clean`).
pub fn leave(keep: bool) {
    let mut inside = INSIDE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(i) = inside.as_mut() else {
        return;
    };
    i.users = i.users.saturating_sub(1);
    if i.users > 0 {
        return;
    }
    let i = inside.take().expect("checked above");
    if let Err(e) = move_self(&i.home) {
        tracing::warn!("moving kpbench back to {}: {e}", i.home.display());
        return;
    }
    if !keep {
        if let Err(e) = std::fs::remove_dir(&i.path) {
            tracing::warn!("removing cgroup {}: {e}", i.path.display());
        }
        // The folder too, once nothing else is in it.
        if let Some(folder) = i.path.parent() {
            let _ = std::fs::remove_dir(folder);
        }
    }
}

fn move_self(to: &Path) -> Result<(), ApplyError> {
    let procs = to.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(err(format!("moving kpbench into {}", to.display())))
}

/// The cgroup v2 directory this process is in, under a cgroup2 mount.
pub fn own_cgroup() -> Result<PathBuf, ApplyError> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(err("/proc/self/cgroup"))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    Ok(mount()?.join(rel))
}

/// The host's cgroup2 mount of the whole hierarchy, else kpbench's own at
/// [`CGROUP2_FALLBACK`] (mounted on first use).
fn mount() -> Result<PathBuf, ApplyError> {
    if let Some(m) = cgroup2_mount() {
        return Ok(m);
    }
    std::fs::create_dir_all(CGROUP2_FALLBACK).map_err(err(CGROUP2_FALLBACK))?;
    nix::mount::mount(
        Some("cgroup2"),
        CGROUP2_FALLBACK,
        Some("cgroup2"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| err(format!("mounting cgroup2 at {CGROUP2_FALLBACK}"))(e.into()))?;
    Ok(PathBuf::from(CGROUP2_FALLBACK))
}

/// The first cgroup2 mount of the whole hierarchy, from /proc/self/mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let fields: Vec<&str> = pre.split(' ').collect();
        (post.starts_with("cgroup2 ") && fields.get(3) == Some(&"/"))
            .then(|| fields.get(4).map(PathBuf::from))
            .flatten()
    })
}

/// kpbench's client cgroups on this machine (names under [`FOLDER`]).
pub fn leftovers() -> Vec<String> {
    cgroup2_mount()
        .map(|m| super::pins::subdirs(&m.join(FOLDER)))
        .unwrap_or_default()
}

/// Removes the client cgroups `remove` accepts that no process is in (a running
/// kpbench's is busy and stays), then the folder once it is empty. What was removed,
/// and errors.
pub fn clean(remove: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    let Some(folder) = cgroup2_mount().map(|m| m.join(FOLDER)) else {
        return (removed, errors);
    };
    for name in leftovers() {
        if !remove(&name) {
            continue;
        }
        let path = folder.join(&name);
        let busy =
            std::fs::read_to_string(path.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty());
        if busy {
            errors.push(format!(
                "cgroup {} still holds processes (a running kpbench?): left alone",
                path.display()
            ));
            continue;
        }
        match std::fs::remove_dir(&path) {
            Ok(()) => removed.push(format!("cgroup {}", path.display())),
            Err(e) => errors.push(format!("removing cgroup {}: {e}", path.display())),
        }
    }
    if leftovers().is_empty() {
        let _ = std::fs::remove_dir(&folder);
    }
    (removed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_s_client_cgroup_is_named_after_its_prefix() {
        assert_eq!(name_for("kpb-20261130-1-node"), "kpb-20261130-1");
        assert_eq!(name_for("lab"), "lab");
    }
}
