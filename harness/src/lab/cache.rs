//! The lab's cache and its keys: where it lives, file digests and host-file stamps.
//!
//! Both the kernel (a local `.deb` is extracted under its digest) and the initramfs
//! (keyed by the kpbench binary's digest and the host tools' stamps) build on these;
//! this module depends on neither, so the dependencies point one way.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::LabError;

/// The lab's cache: `$KPBENCH_LAB_CACHE`, else `/var/cache/kpbench/lab`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KPBENCH_LAB_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/kpbench/lab"))
}

/// sha256 of a file, hex, remembered under `<cache>/digests/` by the file's path, size,
/// mtime and inode: hashing a 100 MB debug build of kpbench takes seconds.
pub fn cached_digest(path: &Path, cache: &Path) -> Result<String, LabError> {
    let meta = std::fs::metadata(path).map_err(|e| LabError::io(path, e))?;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let identity = format!(
        "{}:{}:{}.{}:{}:{}",
        real.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino(),
        meta.dev()
    );
    let memo = cache
        .join("digests")
        .join(&hex(&Sha256::digest(identity.as_bytes()))[..32]);
    if let Ok(d) = std::fs::read_to_string(&memo) {
        let d = d.trim();
        if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(d.to_string());
        }
    }
    let digest = file_digest(path)?;
    // The memo is only a shortcut: failing to write it costs a re-hash next time.
    if let Some(dir) = memo.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&memo, format!("{digest}\n"));
    Ok(digest)
}

/// sha256 of a file, hex.
pub fn file_digest(path: &Path) -> Result<String, LabError> {
    let mut f = std::fs::File::open(path).map_err(|e| LabError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| LabError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// A host file's path, size and mtime, one line: cheap change detection for cache keys.
pub(super) fn stamp(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{}:{}:{}\n", path.display(), m.len(), m.mtime()),
        Err(_) => format!("{}:-\n", path.display()),
    }
}

/// Lower-case hex of bytes.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_remembered_by_file_identity() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        std::fs::write(&f, b"abc").unwrap();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(file_digest(&f).unwrap(), want);
        let cache = dir.path().join("cache");
        assert_eq!(cached_digest(&f, &cache).unwrap(), want);
        assert_eq!(std::fs::read_dir(cache.join("digests")).unwrap().count(), 1);
        assert_eq!(cached_digest(&f, &cache).unwrap(), want);
        assert!(stamp(&f).contains(":3:"), "{}", stamp(&f));
        assert!(stamp(&dir.path().join("absent")).ends_with(":-\n"));
        assert!(cached_digest(&dir.path().join("absent"), &cache).is_err());
    }
}
