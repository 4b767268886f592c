//! Writing the staging tree: files, links, and host files copied to the same path.

use std::path::{Path, PathBuf};

use crate::lab::LabError;

pub(super) fn mkdir(p: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(p).map_err(|e| LabError::io(p, e))
}

fn mkdir_parent(p: &Path) -> Result<(), LabError> {
    match p.parent() {
        Some(parent) => mkdir(parent),
        None => Ok(()),
    }
}

/// Writes `root/rel` with `mode`.
pub(super) fn write(root: &Path, rel: &str, data: &[u8], mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    mkdir_parent(&p)?;
    std::fs::write(&p, data).map_err(|e| LabError::io(&p, e))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(&p, e))
}

/// A symbolic link at `link` to `target`, unless something is there already.
pub(super) fn symlink(target: &str, link: &Path) -> Result<(), LabError> {
    mkdir_parent(link)?;
    match std::os::unix::fs::symlink(target, link) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(LabError::io(link, e)),
    }
}

/// Where the host's absolute `path` goes under `root`.
pub(super) fn in_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Copies a regular file to the same absolute path under `root`.
pub(super) fn copy_file(src: &Path, root: &Path) -> Result<(), LabError> {
    let dest = in_root(root, src);
    mkdir_parent(&dest)?;
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, &dest).map_err(|e| LabError::io(src, e))?;
    Ok(())
}

/// Copies `path` to the same place under `root`: the real file at its canonical path,
/// and, when `path` is a symlink (chain), a link at `path` to it. Returns the real path.
pub(super) fn copy_path(path: &Path, root: &Path) -> Result<PathBuf, LabError> {
    let real = std::fs::canonicalize(path).map_err(|e| LabError::io(path, e))?;
    copy_file(&real, root)?;
    if real != path {
        let link = in_root(root, path);
        // Through the merged-/usr links, `link` may already be the real file.
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(&real.to_string_lossy(), &link)?;
        }
    }
    Ok(real)
}
