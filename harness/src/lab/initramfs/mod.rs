//! Builds (and caches) the lab's initramfs: busybox, the kernel's netfilter/IPVS
//! modules, the `kpbench` binary, and the iptables/nft/ipset/ipvsadm/ip tools and a
//! real shell with their shared libraries, laid out at the same paths as on the host.
//!
//! Cache: `<cache>/initramfs/<key>/initrd.cpio` (uncompressed: under TCG unpacking is
//! faster than decompressing), keyed by the kernel, the kpbench binary's hash, the
//! host tools (path, size, mtime) and the init script. The newest few are kept.
//!
//! Layout: `stage` lays out the guest's root in a staging directory, `libs` finds the
//! shared libraries to copy, `tree` copies host files to the same paths.

mod libs;
mod stage;
mod tree;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::archive::CpioWriter;
use super::cache::{cached_digest, hex, stamp};
use super::kernel::Kernel;
use super::{LabError, LabEvent};

/// The guest's /init.
pub const INIT_SCRIPT: &str = include_str!("../init.sh");

/// Bumped when the layout changes, so older cached images are not reused.
const FORMAT: &str = "kpbench-lab-initramfs/2";

/// Cached images kept besides the one in use.
const KEEP: usize = 8;

/// Host programs copied into the guest, by name (looked up in the sbin/bin dirs).
/// Missing ones are left out; the command that needs them then fails in the guest.
pub const TOOLS: &[&str] = &[
    "ip",
    "iptables",
    "iptables-save",
    "iptables-restore",
    "iptables-nft",
    "iptables-nft-save",
    "iptables-nft-restore",
    "iptables-legacy",
    "iptables-legacy-save",
    "iptables-legacy-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
    "ip6tables-legacy",
    "ip6tables-legacy-save",
    "ip6tables-legacy-restore",
    "nft",
    "ipset",
    "ipvsadm",
    "conntrack",
];

/// The guest's `sh`, first found wins: a real shell, because Debian's busybox-static
/// ash runs its own applets (`ip`, `modprobe`, ...) in preference to PATH, whatever
/// comes first there (`FEATURE_SH_STANDALONE`). Without one, `sh` is busybox's.
pub const SHELLS: &[&str] = &["dash", "bash"];

const BIN_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

const XTABLES_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/xtables",
    "/usr/lib64/xtables",
    "/usr/lib/xtables",
    "/lib/xtables",
];

/// A built initramfs.
#[derive(Debug, Clone)]
pub struct Initramfs {
    pub path: PathBuf,
    /// Whether it came from the cache.
    pub cached: bool,
}

fn find_tool(name: &str) -> Option<PathBuf> {
    BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

fn find_shell() -> Option<PathBuf> {
    SHELLS.iter().find_map(|s| find_tool(s))
}

fn busybox() -> Result<PathBuf, LabError> {
    ["/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| LabError::ToolMissing {
            tool: "busybox".into(),
            hint: format!(
                "install the {} package",
                dataplane::floor::exec::package_of("busybox")
            ),
        })
}

fn xtables_dir() -> Option<PathBuf> {
    XTABLES_DIRS.iter().map(PathBuf::from).find(|p| p.is_dir())
}

/// The cache key for a kernel + kpbench binary + host tools.
fn cache_key(kernel: &Kernel, kpbench: &Path, cache: &Path) -> Result<String, LabError> {
    let mut h = Sha256::new();
    h.update(FORMAT);
    h.update(INIT_SCRIPT);
    h.update(kernel.source.as_bytes());
    h.update(stamp(&kernel.vmlinuz));
    if let Some(m) = &kernel.modules_dir {
        h.update(stamp(&m.join("modules.dep")));
        h.update(stamp(&m.join("modules.order")));
    }
    h.update(cached_digest(kpbench, cache)?);
    h.update(stamp(&busybox()?));
    let programs = TOOLS
        .iter()
        .filter_map(|t| find_tool(t))
        .chain(find_shell());
    for p in programs {
        h.update(stamp(&p));
        if let Ok(real) = std::fs::canonicalize(&p) {
            h.update(stamp(&real));
        }
    }
    if let Some(x) = xtables_dir() {
        h.update(stamp(&x));
    }
    Ok(hex(&h.finalize())[..24].to_string())
}

/// Returns the cached initramfs for this kernel and binary, building it if needed.
pub fn build(
    kernel: &Kernel,
    kpbench: &Path,
    cache: &Path,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<Initramfs, LabError> {
    if !kpbench.is_file() {
        return Err(LabError::ToolMissing {
            tool: "kpbench binary".into(),
            hint: format!("{} does not exist", kpbench.display()),
        });
    }
    let key = cache_key(kernel, kpbench, cache)?;
    let base = cache.join("initramfs");
    let dir = base.join(&key);
    let path = dir.join("initrd.cpio");
    if path.is_file() {
        // Pruning keeps recently used images: mark this one used.
        let _ = touch(&dir);
        return Ok(Initramfs { path, cached: true });
    }
    progress(LabEvent::BuildingInitramfs { key: key.clone() });
    std::fs::create_dir_all(&base).map_err(|e| LabError::io(&base, e))?;
    // Removed on drop, whatever happens below.
    let staging = tempfile::Builder::new()
        .prefix(&format!("{key}.staging-"))
        .tempdir_in(&base)
        .map_err(|e| LabError::io(&base, e))?;
    let contents = stage::stage(kernel, kpbench, staging.path())?;
    write_image(staging.path(), &dir, &path)?;
    progress(LabEvent::InitramfsContents {
        modules: contents.modules,
        missing_tools: contents.missing_tools,
    });
    prune(&base, &key);
    Ok(Initramfs {
        path,
        cached: false,
    })
}

/// Packs the staging tree into `path` (in `dir`) through a temporary file renamed into
/// place: two runs may build the same image at once, and the rename is atomic.
fn write_image(staging: &Path, dir: &Path, path: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix("initrd.cpio.tmp-")
        .tempfile_in(dir)
        .map_err(|e| LabError::io(dir, e))?;
    let mut w = CpioWriter::new(std::io::BufWriter::new(tmp));
    w.tree(staging).map_err(|e| LabError::io(staging, e))?;
    let tmp = w
        .finish()
        .map_err(|e| LabError::io(path, e))?
        .into_inner()
        .map_err(|e| LabError::io(path, e.into_error()))?;
    tmp.persist(path).map_err(|e| LabError::io(path, e.error))?;
    Ok(())
}

/// Sets a directory's mtime to now.
fn touch(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.set_modified(std::time::SystemTime::now())
}

fn prune(base: &Path, keep_key: &str) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_name() != keep_key && e.path().is_dir())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(KEEP);
    for (_, d) in dirs.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_marks_a_directory_used() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
        std::fs::File::open(dir.path())
            .unwrap()
            .set_modified(old)
            .unwrap();
        touch(dir.path()).unwrap();
        let now = std::fs::metadata(dir.path()).unwrap().modified().unwrap();
        assert!(now > old + std::time::Duration::from_secs(3600));
    }

    #[test]
    fn an_image_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir_all(staging.join("lab")).unwrap();
        std::fs::write(staging.join("lab/x"), b"x").unwrap();
        let out = dir.path().join("key");
        write_image(&staging, &out, &out.join("initrd.cpio")).unwrap();
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("initrd.cpio")]);
        let bytes = std::fs::read(out.join("initrd.cpio")).unwrap();
        assert!(bytes.starts_with(b"070701"));
    }
}
