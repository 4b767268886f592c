//! `kpbench apply`'s pins: the maps and links of a loaded load balancer kept under
//! [`PIN_ROOT`]`/<namespace>/` on a bpffs kpbench mounts (outside /sys, which `ip netns
//! exec` remounts), so they outlive the process; `kpbench clean` removes them, which
//! detaches the links.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::err;
use crate::floor::error::ApplyError;

/// Where kpbench mounts a bpffs of its own for `kpbench apply`'s pins.
pub const PIN_ROOT: &str = "/run/kpbench/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

/// Mounts kpbench's bpffs at [`PIN_ROOT`] unless one is there.
fn ensure_bpffs() -> Result<(), ApplyError> {
    if is_bpffs(Path::new(PIN_ROOT)) {
        return Ok(());
    }
    std::fs::create_dir_all(PIN_ROOT).map_err(err(PIN_ROOT))?;
    nix::mount::mount(
        Some("bpf"),
        PIN_ROOT,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| err(format!("mounting bpffs at {PIN_ROOT}"))(e.into()))
}

/// The folder for `node`'s pins, created on kpbench's bpffs (mounted when missing).
pub fn dir_for(node: &str) -> Result<PathBuf, ApplyError> {
    ensure_bpffs()?;
    let dir = Path::new(PIN_ROOT).join(node);
    std::fs::create_dir_all(&dir).map_err(err(dir.display().to_string()))?;
    Ok(dir)
}

/// Pins a BPF link by its descriptor.
pub fn pin_link(link: impl AsFd, path: &Path) -> Result<(), ApplyError> {
    super::sys::obj_pin(link.as_fd(), path).map_err(err(format!("pinning link {}", path.display())))
}

/// Removes what an earlier `kpbench apply` pinned for `node` (a fresh load replaces it).
pub fn unpin(node: &str) {
    let _ = std::fs::remove_dir_all(Path::new(PIN_ROOT).join(node));
}

/// The namespaces with pins under [`PIN_ROOT`] (its directories; a bpffs also holds
/// the kernel's `maps.debug` and `progs.debug`).
pub fn pinned() -> Vec<String> {
    if !is_bpffs(Path::new(PIN_ROOT)) {
        return Vec::new();
    }
    subdirs(Path::new(PIN_ROOT))
}

/// The names of the directories in `dir`, sorted; none when it cannot be read.
pub(crate) fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// Removes the pins of every namespace `remove` accepts (their links detach with
/// them), and unmounts kpbench's bpffs once it is empty. What was removed, and errors.
pub fn clean_pins(remove: impl Fn(&str) -> bool) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    for name in pinned() {
        if !remove(&name) {
            continue;
        }
        let path = Path::new(PIN_ROOT).join(&name);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(format!("BPF pins {}", path.display())),
            Err(e) => errors.push(format!("removing {}: {e}", path.display())),
        }
    }
    if is_bpffs(Path::new(PIN_ROOT)) && pinned().is_empty() {
        if let Err(e) = nix::mount::umount2(PIN_ROOT, nix::mount::MntFlags::MNT_DETACH) {
            errors.push(format!("unmounting {PIN_ROOT}: {e}"));
        }
    }
    (removed, errors)
}
