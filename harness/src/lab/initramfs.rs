//! Builds (and caches) the lab's initramfs: busybox, the kernel's netfilter/IPVS
//! modules, the `kpbench` binary, and the iptables/nft/ipset/ipvsadm/ip tools with
//! their shared libraries, laid out at the same paths as on the host.
//!
//! Cache: `<cache>/initramfs/<key>/initrd.cpio` (uncompressed: under TCG unpacking is
//! faster than decompressing), keyed by the kernel, the kpbench binary's hash, the
//! host tools (path, size, mtime) and the init script. The newest few are kept.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::archive::CpioWriter;
use super::kernel::{run_text, Kernel};
use super::modules::{ModuleIndex, WANTED_MODULES};
use super::{LabError, LabEvent};

/// The guest's /init.
pub const INIT_SCRIPT: &str = include_str!("init.sh");

/// Bumped when the layout changes, so older cached images are not reused.
const FORMAT: &str = "kpbench-lab-initramfs/1";

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

const ETC_FILES: &[&str] = &[
    "/etc/protocols",
    "/etc/services",
    "/etc/ethertypes",
    "/etc/iproute2/rt_tables",
];

/// A built initramfs.
#[derive(Debug, Clone)]
pub struct Initramfs {
    pub path: PathBuf,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// sha256 of a file, hex, remembered under `<cache>/digests/` by the file's path, size,
/// mtime and inode: hashing a 100 MB debug build of kpbench takes seconds.
pub fn cached_digest(path: &Path, cache: &Path) -> Result<String, LabError> {
    let meta = std::fs::metadata(path).map_err(|e| LabError::io(path, e))?;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let stamp = format!(
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
        .join(&hex(&Sha256::digest(stamp.as_bytes()))[..32]);
    if let Ok(d) = std::fs::read_to_string(&memo) {
        let d = d.trim();
        if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(d.to_string());
        }
    }
    let digest = file_digest(path)?;
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find_tool(name: &str) -> Option<PathBuf> {
    BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

fn busybox() -> Result<PathBuf, LabError> {
    ["/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| LabError::ToolMissing {
            tool: "busybox".into(),
            hint: "install the busybox-static package".into(),
        })
}

fn xtables_dir() -> Option<PathBuf> {
    XTABLES_DIRS.iter().map(PathBuf::from).find(|p| p.is_dir())
}

fn stamp(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{}:{}:{}\n", path.display(), m.len(), m.mtime()),
        Err(_) => format!("{}:-\n", path.display()),
    }
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
    for t in TOOLS {
        if let Some(p) = find_tool(t) {
            h.update(stamp(&p));
            if let Ok(real) = std::fs::canonicalize(&p) {
                h.update(stamp(&real));
            }
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
        // Touch, so pruning keeps recently used images.
        let _ = std::fs::File::options().append(true).open(&path);
        let _ = filetime_now(&dir);
        return Ok(Initramfs { path, cached: true });
    }
    progress(LabEvent::BuildingInitramfs { key: key.clone() });
    let staging = base.join(format!("{key}.staging-{}", std::process::id()));
    let result = stage(kernel, kpbench, &staging, progress).and_then(|_| {
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
        // Per process: two runs may build the same image at once; the rename is atomic.
        let tmp = dir.join(format!("initrd.cpio.tmp-{}", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(|e| LabError::io(&tmp, e))?;
        let mut w = CpioWriter::new(std::io::BufWriter::new(file));
        w.tree(&staging).map_err(|e| LabError::io(&staging, e))?;
        w.finish().map_err(|e| LabError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LabError::io(&path, e))
    });
    let _ = std::fs::remove_dir_all(&staging);
    result?;
    prune(&base, &key);
    Ok(Initramfs {
        path,
        cached: false,
    })
}

fn filetime_now(dir: &Path) -> std::io::Result<()> {
    // Creating and removing an entry updates the directory's mtime.
    let marker = dir.join(".used");
    std::fs::write(&marker, b"")?;
    std::fs::remove_file(marker)
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

/// Copies everything into a staging tree laid out like the guest's root.
fn stage(
    kernel: &Kernel,
    kpbench: &Path,
    root: &Path,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<(), LabError> {
    let _ = std::fs::remove_dir_all(root);
    let mk = |p: &str| {
        let d = root.join(p);
        std::fs::create_dir_all(&d).map_err(|e| LabError::io(&d, e))
    };
    for d in [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "usr/local/bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "mnt",
        "var",
        "lab/out",
        "lab/status",
        "lab/work",
    ] {
        mk(d)?;
    }
    // Merged /usr, as on current Debian/Ubuntu: host paths resolve the same way.
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("var/run", "../run"),
    ] {
        symlink(target, &root.join(link))?;
    }
    write(root, "init", INIT_SCRIPT.as_bytes(), 0o755)?;
    write(
        root,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    )?;
    write(root, "etc/group", b"root:x:0:\n", 0o644)?;
    write(
        root,
        "etc/hosts",
        b"127.0.0.1 localhost\n::1 localhost\n",
        0o644,
    )?;
    for f in ETC_FILES {
        if Path::new(f).is_file() {
            copy_file(Path::new(f), root)?;
        }
    }

    let mut libs = Libs::default();
    // kpbench itself, stripped of debug info when `strip` is around (debug builds are big).
    let dest = root.join("usr/local/bin/kpbench");
    let stripped = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&dest)
        .arg(kpbench)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !stripped {
        std::fs::copy(kpbench, &dest).map_err(|e| LabError::io(&dest, e))?;
    }
    libs.add_deps_of(kpbench)?;

    let mut missing = Vec::new();
    for t in TOOLS {
        match find_tool(t) {
            Some(p) => {
                let real = copy_path(&p, root)?;
                libs.add_deps_of(&real)?;
            }
            None => missing.push(t.to_string()),
        }
    }
    if let Some(x) = xtables_dir() {
        let rd = std::fs::read_dir(&x).map_err(|e| LabError::io(&x, e))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|e| e == "so") {
                let real = copy_path(&p, root)?;
                libs.add_deps_of(&real)?;
            }
        }
    }
    let bb = busybox()?;
    let bb_dest = root.join("usr/bin/busybox");
    std::fs::copy(&bb, &bb_dest).map_err(|e| LabError::io(&bb_dest, e))?;
    libs.add_deps_of(&bb)?;
    for lib in libs.0.clone() {
        copy_path(&lib, root)?;
    }

    // busybox's applets fill only the names no real tool took.
    let list =
        run_text(Command::new(&bb).arg("--list-full")).map_err(|e| LabError::ToolMissing {
            tool: "busybox".into(),
            hint: format!("{e}; install the busybox-static package"),
        })?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = root.join(applet);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink("/usr/bin/busybox", &link)?;
        }
    }

    let modules = stage_modules(kernel, root)?;
    let manifest = format!(
        "kernel: {}\nrelease: {}\nmodules: {}\nabsent modules (built in or not configured): {}\nmissing tools: {}\n",
        kernel.source,
        kernel.release.as_deref().unwrap_or("unknown"),
        modules.0,
        modules.1.join(" "),
        missing.join(" "),
    );
    write(root, "lab/manifest.txt", manifest.as_bytes(), 0o644)?;
    progress(LabEvent::InitramfsContents {
        modules: modules.0,
        missing_tools: missing,
    });
    Ok(())
}

/// Copies the wanted modules (decompressed, so busybox's modprobe loads them) and runs
/// depmod on the result. Returns (number of modules, absent names).
fn stage_modules(kernel: &Kernel, root: &Path) -> Result<(usize, Vec<String>), LabError> {
    let (Some(src), Some(release)) = (&kernel.modules_dir, &kernel.release) else {
        write(root, "lab/modules.load", b"", 0o644)?;
        return Ok((0, vec![]));
    };
    let read = |name: &str| std::fs::read_to_string(src.join(name)).unwrap_or_default();
    let dep = read("modules.dep");
    if dep.is_empty() {
        return Err(LabError::KernelUnavailable(format!(
            "{}: no modules.dep; run `depmod -b <root> {release}` on the modules tree",
            src.display()
        )));
    }
    let index = ModuleIndex::parse(&dep, &read("modules.softdep"), &read("modules.alias"));
    let res = index.resolve(WANTED_MODULES);
    let dest = root.join("lib/modules").join(release);
    for rel in &res.paths {
        let from = src.join(rel);
        let (to_rel, tool) = match rel.rsplit_once(".ko.") {
            Some((stem, "xz")) => (format!("{stem}.ko"), Some("xz")),
            Some((stem, "zst")) => (format!("{stem}.ko"), Some("zstd")),
            Some((stem, "gz")) => (format!("{stem}.ko"), Some("gzip")),
            _ => (rel.clone(), None),
        };
        let to = dest.join(&to_rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
        }
        match tool {
            None => {
                std::fs::copy(&from, &to).map_err(|e| LabError::io(&from, e))?;
            }
            Some(tool) => {
                let out = Command::new(tool)
                    .arg("-dc")
                    .arg(&from)
                    .output()
                    .map_err(|e| LabError::ToolMissing {
                        tool: tool.into(),
                        hint: format!("{e}; needed to decompress {}", from.display()),
                    })?;
                if !out.status.success() {
                    return Err(LabError::io(
                        &from,
                        std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
                    ));
                }
                std::fs::write(&to, out.stdout).map_err(|e| LabError::io(&to, e))?;
            }
        }
    }
    for f in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        if src.join(f).is_file() {
            std::fs::copy(src.join(f), dest.join(f)).map_err(|e| LabError::io(&dest, e))?;
        }
    }
    run_text(Command::new("depmod").arg("-b").arg(root).arg(release)).map_err(|e| {
        LabError::ToolMissing {
            tool: "depmod".into(),
            hint: format!("{e}; install the kmod package"),
        }
    })?;
    write(
        root,
        "lab/modules.load",
        format!("{}\n", res.load.join("\n")).as_bytes(),
        0o644,
    )?;
    Ok((res.paths.len(), res.absent))
}

/// Shared libraries needed by the copied programs, from `ldd`.
#[derive(Default)]
struct Libs(BTreeSet<PathBuf>);

impl Libs {
    fn add_deps_of(&mut self, exe: &Path) -> Result<(), LabError> {
        let out = Command::new("ldd")
            .arg(exe)
            .output()
            .map_err(|e| LabError::ToolMissing {
                tool: "ldd".into(),
                hint: format!("{e}; install libc-bin"),
            })?;
        // "not a dynamic executable" exits non-zero: nothing to add.
        for p in parse_ldd(&String::from_utf8_lossy(&out.stdout)) {
            self.0.insert(p);
        }
        Ok(())
    }
}

/// The library paths in `ldd` output (`libx.so => /path (0x..)` and `/lib64/ld-... (0x..)`).
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let target = match l.split_once("=>") {
                Some((_, rhs)) => rhs.trim(),
                None => l,
            };
            let path = target.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    std::fs::write(&p, data).map_err(|e| LabError::io(&p, e))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(&p, e))
}

fn symlink(target: &str, link: &Path) -> Result<(), LabError> {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    match std::os::unix::fs::symlink(target, link) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(LabError::io(link, e)),
    }
}

/// Copies a regular file to the same absolute path under `root`.
fn copy_file(src: &Path, root: &Path) -> Result<(), LabError> {
    let dest = root.join(src.strip_prefix("/").unwrap_or(src));
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LabError::io(parent, e))?;
    }
    if std::fs::symlink_metadata(&dest).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, &dest).map_err(|e| LabError::io(src, e))?;
    Ok(())
}

/// Copies `path` to the same place under `root`: the real file at its canonical path,
/// and, when `path` is a symlink (chain), a link at `path` to it. Returns the real path.
fn copy_path(path: &Path, root: &Path) -> Result<PathBuf, LabError> {
    let real = std::fs::canonicalize(path).map_err(|e| LabError::io(path, e))?;
    copy_file(&real, root)?;
    if real != path {
        let link = root.join(path.strip_prefix("/").unwrap_or(path));
        // Through the merged-/usr links, `link` may already be the real file.
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(&real.to_string_lossy(), &link)?;
        }
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\
            \tlibgone.so => not found\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libmnl.so.0"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }
}
