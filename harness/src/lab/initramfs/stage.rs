//! Laying out the guest's root in a staging directory, one named step at a time:
//! the skeleton, kpbench, the dataplane tools, a real shell, busybox for the rest, the
//! shared libraries, and the kernel modules.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::libs::Libs;
use super::tree::{copy_file, copy_path, in_root, mkdir, symlink, write};
use super::{busybox, find_shell, find_tool, xtables_dir, INIT_SCRIPT, TOOLS};
use crate::lab::host::{self, limit};
use crate::lab::kernel::{depmod, Kernel};
use crate::lab::modules::{ModuleIndex, WANTED_MODULES};
use crate::lab::LabError;

/// Where busybox goes in the guest; its applet links point here.
const GUEST_BUSYBOX: &str = "/usr/bin/busybox";

const DIRS: &[&str] = &[
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
];

/// Merged /usr, as on current Debian/Ubuntu: host paths resolve the same way.
const LINKS: &[(&str, &str)] = &[
    ("bin", "usr/bin"),
    ("sbin", "usr/sbin"),
    ("lib", "usr/lib"),
    ("lib64", "usr/lib64"),
    ("var/run", "../run"),
];

const ETC_FILES: &[&str] = &[
    "/etc/protocols",
    "/etc/services",
    "/etc/ethertypes",
    "/etc/iproute2/rt_tables",
];

/// What went into the image, for the progress report.
pub(super) struct Contents {
    pub modules: usize,
    pub missing_tools: Vec<String>,
}

/// Copies everything into `root`, a fresh staging tree laid out like the guest's root.
pub(super) fn stage(kernel: &Kernel, kpbench: &Path, root: &Path) -> Result<Contents, LabError> {
    let mut s = Stager {
        root,
        libs: Libs::default(),
        provided: BTreeSet::new(),
    };
    s.skeleton()?;
    s.kpbench(kpbench)?;
    let missing_tools = s.tools()?;
    s.xtables()?;
    let shell = s.shell()?;
    s.busybox()?;
    s.libraries()?;
    let modules = stage_modules(kernel, root)?;
    let manifest =
        format!(
        "kernel: {}\nrelease: {}\nmodules: {}\nabsent modules (built in or not configured): {}\n\
         missing tools: {}\nshell: {}\n",
        kernel.source,
        kernel.release.as_deref().unwrap_or("unknown"),
        modules.count,
        modules.absent.join(" "),
        missing_tools.join(" "),
        shell.as_deref().map_or("busybox".into(), |p| p.display().to_string()),
    );
    write(root, "lab/manifest.txt", manifest.as_bytes(), 0o644)?;
    Ok(Contents {
        modules: modules.count,
        missing_tools,
    })
}

/// The staging tree being filled.
struct Stager<'a> {
    root: &'a Path,
    /// Libraries the copied programs link against, copied last.
    libs: Libs,
    /// Command names a real program took: busybox gets no applet link for them.
    provided: BTreeSet<String>,
}

impl Stager<'_> {
    /// Directories, merged-/usr links, /init and the few /etc files tools read.
    fn skeleton(&mut self) -> Result<(), LabError> {
        let root = self.root;
        for d in DIRS {
            mkdir(&root.join(d))?;
        }
        for (link, target) in LINKS {
            symlink(target, &root.join(link))?;
        }
        write(root, "init", INIT_SCRIPT.as_bytes(), 0o755)?;
        let etc: [(&str, &[u8]); 3] = [
            ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", b"root:x:0:\n"),
            ("etc/hosts", b"127.0.0.1 localhost\n::1 localhost\n"),
        ];
        for (rel, data) in etc {
            write(root, rel, data, 0o644)?;
        }
        for f in ETC_FILES.iter().map(Path::new).filter(|f| f.is_file()) {
            copy_file(f, root)?;
        }
        Ok(())
    }

    /// kpbench itself, stripped of debug info when `strip` is around (debug builds
    /// are big), else copied as it is.
    fn kpbench(&mut self, kpbench: &Path) -> Result<(), LabError> {
        let dest = self.root.join("usr/local/bin/kpbench");
        let (dest_arg, src_arg) = (host::arg(&dest), host::arg(kpbench));
        let strip = host::tool(
            "strip",
            &["--strip-debug", "-o", &dest_arg, &src_arg],
            limit::STRIP,
        );
        match host::run_ok(strip, String::new) {
            Ok(_) => {}
            Err(LabError::Interrupted) => return Err(LabError::Interrupted),
            Err(_) => {
                std::fs::copy(kpbench, &dest).map_err(|e| LabError::io(&dest, e))?;
            }
        }
        self.libs.add_deps_of(kpbench)
    }

    /// The dataplane tools found on the host; returns the names of those that are not.
    fn tools(&mut self) -> Result<Vec<String>, LabError> {
        let mut missing = Vec::new();
        for t in TOOLS {
            match find_tool(t) {
                Some(p) => self.program(&p, t)?,
                None => missing.push(t.to_string()),
            }
        }
        Ok(missing)
    }

    /// iptables' extensions (`libxt_*.so`), which it loads at run time.
    fn xtables(&mut self) -> Result<(), LabError> {
        let Some(x) = xtables_dir() else {
            return Ok(());
        };
        let rd = std::fs::read_dir(&x).map_err(|e| LabError::io(&x, e))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|e| e == "so") {
                let real = copy_path(&p, self.root)?;
                self.libs.add_deps_of(&real)?;
            }
        }
        Ok(())
    }

    /// A real shell as the guest's `sh` (see [`super::SHELLS`]). Returns its host path.
    fn shell(&mut self) -> Result<Option<PathBuf>, LabError> {
        let Some(shell) = find_shell() else {
            return Ok(None);
        };
        let name = shell
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.program(&shell, &name)?;
        symlink(&shell.to_string_lossy(), &self.root.join("usr/bin/sh"))?;
        self.provided.insert("sh".into());
        Ok(Some(shell))
    }

    /// busybox, and its applets as links for every name no real program took.
    fn busybox(&mut self) -> Result<(), LabError> {
        let bb = busybox()?;
        let dest = in_root(self.root, Path::new(GUEST_BUSYBOX));
        std::fs::copy(&bb, &dest).map_err(|e| LabError::io(&dest, e))?;
        self.libs.add_deps_of(&bb)?;
        let bb_arg = host::arg(&bb);
        let list = host::tool(&bb_arg, &["--list-full"], limit::QUICK);
        let list = host::run_ok(list, || "listing busybox's applets".into())?.stdout;
        for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let name = applet.rsplit('/').next().unwrap_or(applet);
            let link = self.root.join(applet);
            if !self.provided.contains(name) && std::fs::symlink_metadata(&link).is_err() {
                symlink(GUEST_BUSYBOX, &link)?;
            }
        }
        Ok(())
    }

    /// The shared libraries collected so far.
    fn libraries(&mut self) -> Result<(), LabError> {
        for lib in self.libs.iter() {
            copy_path(lib, self.root)?;
        }
        Ok(())
    }

    /// A host program at its host path (and its real path), known as `name`.
    fn program(&mut self, path: &Path, name: &str) -> Result<(), LabError> {
        let real = copy_path(path, self.root)?;
        self.libs.add_deps_of(&real)?;
        self.provided.insert(name.to_string());
        Ok(())
    }
}

/// The kernel modules that went into the image.
struct Modules {
    count: usize,
    /// Wanted names the kernel has no module for (built in or not configured).
    absent: Vec<String>,
}

/// Copies the wanted modules (decompressed, so busybox's modprobe loads them), runs
/// depmod on the result and lists what init loads in `lab/modules.load`.
fn stage_modules(kernel: &Kernel, root: &Path) -> Result<Modules, LabError> {
    let (Some(src), Some(release)) = (&kernel.modules_dir, &kernel.release) else {
        write(root, "lab/modules.load", b"", 0o644)?;
        return Ok(Modules {
            count: 0,
            absent: vec![],
        });
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
        copy_module(&src.join(rel), &dest.join(rel))?;
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
    depmod(root, release)?;
    let load = format!("{}\n", res.load.join("\n"));
    write(root, "lab/modules.load", load.as_bytes(), 0o644)?;
    Ok(Modules {
        count: res.paths.len(),
        absent: res.absent,
    })
}

/// The decompressor for a module file name: (tool, arguments before the file).
fn decompressor(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    match name.rsplit_once(".ko.")?.1 {
        "xz" => Some(("xz", &["-d", "-f", "-q"])),
        "zst" => Some(("zstd", &["-d", "-f", "-q", "--rm"])),
        "gz" => Some(("gzip", &["-d", "-f", "-q"])),
        _ => None,
    }
}

/// Copies a module to `to`; a compressed one is decompressed in place there
/// (`x.ko.xz` becomes `x.ko`), as busybox's modprobe needs.
fn copy_module(from: &Path, to: &Path) -> Result<(), LabError> {
    if let Some(parent) = to.parent() {
        mkdir(parent)?;
    }
    std::fs::copy(from, to).map_err(|e| LabError::io(from, e))?;
    let name = to.to_string_lossy();
    if let Some((tool, args)) = decompressor(&name) {
        let mut t = host::tool(tool, args, limit::QUICK);
        t.args.push(name.clone().into_owned());
        host::run_ok(t, || format!("decompressing {}", from.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_modules_are_decompressed_in_place() {
        assert_eq!(decompressor("k/ip_vs.ko.xz").unwrap().0, "xz");
        assert_eq!(decompressor("k/ip_vs.ko.zst").unwrap().0, "zstd");
        assert_eq!(decompressor("k/ip_vs.ko"), None);
        let gzip = dataplane::floor::exec::which("gzip").expect("gzip (Debian: essential) on PATH");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("m.ko");
        std::fs::write(&plain, b"\x7fELF module").unwrap();
        let out = std::process::Command::new(gzip)
            .arg("-k")
            .arg(&plain)
            .status()
            .unwrap();
        assert!(out.success());
        let to = dir.path().join("out/kernel/m.ko.gz");
        copy_module(&dir.path().join("m.ko.gz"), &to).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("out/kernel/m.ko")).unwrap(),
            b"\x7fELF module"
        );
        assert!(!to.exists());
    }
}
