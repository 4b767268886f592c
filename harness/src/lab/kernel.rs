//! Turning a [`KernelSpec`] into files on disk, fetching Debian packages into the lab
//! cache.
//!
//! Cache layout (shared with `scripts/fetch-kernels.sh`):
//! `<cache>/kernels/<package>/root/` is the package extracted with `dpkg-deb -x` (with
//! `depmod -b` run on it) and `<cache>/kernels/<package>/complete` holds the kernel
//! release; a directory without `complete` is an interrupted fetch and is redone.

use std::path::{Path, PathBuf};

use super::cache::cached_digest;
use super::host::{self, limit};
use super::{KernelSpec, LabError, LabEvent};

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` with `modules.dep`, if the kernel has modules.
    pub modules_dir: Option<PathBuf>,
    /// `uname -r` of the kernel, when it could be read from the image or package.
    pub release: Option<String>,
    /// What the kernel came from, e.g. `debian:linux-image-6.1.0-56-cloud-amd64`.
    pub source: String,
}

/// Resolves a spec to files, fetching and extracting packages into `cache` as needed.
pub fn prepare(
    spec: &KernelSpec,
    cache: &Path,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<Kernel, LabError> {
    match spec {
        KernelSpec::DebianSeries(series) => {
            let package = resolve_series(series, cache)?;
            fetch_package(&package, cache, progress)
        }
        KernelSpec::DebianPackage(p) => fetch_package(p, cache, progress),
        KernelSpec::Deb(path) => {
            if !path.is_file() {
                return Err(LabError::KernelUnavailable(format!(
                    "{}: no such kernel package file",
                    path.display()
                )));
            }
            let digest = cached_digest(path, cache)?;
            let dir = cache.join("kernels").join(format!("deb-{}", &digest[..16]));
            let source = path.display().to_string();
            extract_deb_once(path, &dir, &source, progress)
        }
        KernelSpec::Image { vmlinuz, modules } => image_kernel(vmlinuz, modules.as_deref()),
    }
}

fn image_kernel(vmlinuz: &Path, modules: Option<&Path>) -> Result<Kernel, LabError> {
    if !vmlinuz.is_file() {
        return Err(LabError::KernelUnavailable(format!(
            "{}: no such kernel image (expected a vmlinuz/bzImage file, a .deb or debian:<version>)",
            vmlinuz.display()
        )));
    }
    let bytes = std::fs::read(vmlinuz).map_err(|e| LabError::io(vmlinuz, e))?;
    if !is_bootable_image(&bytes) {
        return Err(LabError::BadKernel(format!(
            "{}: not a bootable x86 kernel image (no bzImage boot header, not an ELF vmlinux); \
             pass arch/x86/boot/bzImage of the build",
            vmlinuz.display()
        )));
    }
    let release = bzimage_release(&bytes);
    let modules_dir = match modules {
        None => None,
        Some(m) => Some(find_modules_dir(m, release.as_deref())?),
    };
    let release = release.or_else(|| {
        modules_dir
            .as_ref()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
    });
    Ok(Kernel {
        vmlinuz: vmlinuz.to_path_buf(),
        modules_dir,
        release,
        source: match modules {
            Some(m) => format!("{}:{}", vmlinuz.display(), m.display()),
            None => vmlinuz.display().to_string(),
        },
    })
}

/// Finds `lib/modules/<release>` given either that directory or a root above it.
fn find_modules_dir(given: &Path, release: Option<&str>) -> Result<PathBuf, LabError> {
    if given.join("modules.order").is_file() || given.join("modules.dep").is_file() {
        return Ok(given.to_path_buf());
    }
    for base in ["lib/modules", "usr/lib/modules"] {
        let base = given.join(base);
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        if let Some(r) = release {
            if let Some(d) = dirs.iter().find(|d| d.ends_with(r)) {
                return Ok(d.clone());
            }
        }
        if dirs.len() == 1 {
            return Ok(dirs.remove(0));
        }
    }
    Err(LabError::KernelUnavailable(format!(
        "{}: not a modules directory (expected lib/modules/<release> with modules.order, or a root holding it)",
        given.display()
    )))
}

/// Whether qemu's `-kernel` can boot this: a bzImage (setup header magic `HdrS`) or an
/// ELF vmlinux (booted through its PVH entry point).
pub fn is_bootable_image(image: &[u8]) -> bool {
    image.get(0x202..0x206) == Some(b"HdrS") || image.starts_with(b"\x7fELF")
}

/// The release string of a bzImage, from its setup header (`kernel_version` field).
pub fn bzimage_release(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*image.get(0x20E)?, *image.get(0x20F)?]) as usize;
    let start = ptr.checked_add(0x200)?;
    let tail = image.get(start..)?;
    let end = tail.iter().take(256).position(|&b| b == 0)?;
    let text = std::str::from_utf8(&tail[..end]).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

/// Picks the newest cloud-amd64 kernel of a Debian series (e.g. `6.1`) from apt, or,
/// offline, from the packages fetched into the cache earlier.
fn resolve_series(series: &str, cache: &Path) -> Result<String, LabError> {
    let search = host::tool(
        "apt-cache",
        &[
            "search",
            "--names-only",
            "^linux-image-[0-9].*-cloud-amd64$",
        ],
        limit::APT_SEARCH,
    );
    // Without apt (or its lists) the cache may still have the series.
    let available = match host::run_ok(search, || "searching apt for kernels".into()) {
        Ok(out) => out
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect::<Vec<_>>(),
        Err(LabError::Interrupted) => return Err(LabError::Interrupted),
        Err(_) => Vec::new(),
    };
    let cached: Vec<String> = std::fs::read_dir(cache.join("kernels"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("complete").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    super::spec::pick_series(series, &available, &cached)
}

fn fetch_package(
    package: &str,
    cache: &Path,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<Kernel, LabError> {
    let dir = cache.join("kernels").join(package);
    let source = format!("debian:{package}");
    if dir.join("complete").is_file() {
        return kernel_from_root(&dir, &source);
    }
    progress(LabEvent::FetchingKernel {
        package: package.to_string(),
    });
    let deb = download(package, &cache.join("downloads"))?;
    let kernel = extract_deb_once(&deb, &dir, &source, progress);
    let _ = std::fs::remove_file(&deb);
    kernel
}

/// `apt-get download PACKAGE` into `dir`; returns the `.deb`.
fn download(package: &str, dir: &Path) -> Result<PathBuf, LabError> {
    mkdir(dir)?;
    // apt drops privileges to _apt for downloads; let it write here.
    let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777));
    let apt =
        host::tool("apt-get", &["download", "-q", package], limit::APT_DOWNLOAD).current_dir(dir);
    host::run_ok(apt, || {
        format!("kernel unavailable: apt-get download {package}")
    })?;
    std::fs::read_dir(dir)
        .map_err(|e| LabError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .ok_or_else(|| {
            LabError::KernelUnavailable(format!("apt-get download {package} produced no .deb"))
        })
}

/// Extracts a kernel package into `dir` unless already done, and runs depmod.
fn extract_deb_once(
    deb: &Path,
    dir: &Path,
    source: &str,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<Kernel, LabError> {
    if dir.join("complete").is_file() {
        return kernel_from_root(dir, source);
    }
    progress(LabEvent::ExtractingKernel {
        deb: deb.to_path_buf(),
    });
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    }
    let root = dir.join("root");
    mkdir(&root)?;
    let (deb_arg, root_arg) = (host::arg(deb), host::arg(&root));
    let extract = host::tool("dpkg-deb", &["-x", &deb_arg, &root_arg], limit::EXTRACT);
    host::run_ok(extract, || {
        format!("kernel unavailable: dpkg-deb -x {}", deb.display())
    })?;
    let kernel = kernel_from_root(dir, source)?;
    if let (Some(release), Some(_)) = (&kernel.release, &kernel.modules_dir) {
        depmod(&root, release)?;
    }
    let release = kernel.release.clone().unwrap_or_default();
    std::fs::write(dir.join("complete"), format!("{release}\n"))
        .map_err(|e| LabError::io(dir, e))?;
    kernel_from_root(dir, source)
}

/// `depmod -b ROOT RELEASE`: writes `modules.dep` and friends for a modules tree.
pub(super) fn depmod(root: &Path, release: &str) -> Result<(), LabError> {
    let root_arg = host::arg(root);
    let depmod = host::tool("depmod", &["-b", &root_arg, release], limit::DEPMOD);
    host::run_ok(depmod, || format!("depmod -b {} {release}", root.display()))?;
    Ok(())
}

/// A kernel from an extracted package: `root/boot/vmlinuz-<release>`.
fn kernel_from_root(dir: &Path, source: &str) -> Result<Kernel, LabError> {
    let boot = dir.join("root/boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(|e| {
            LabError::KernelUnavailable(format!("{}: {e} (not a kernel package?)", boot.display()))
        })?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-") || n.starts_with("vmlinux-"))
        })
        .ok_or_else(|| {
            LabError::KernelUnavailable(format!(
                "{}: no vmlinuz-* (not a kernel image package?)",
                boot.display()
            ))
        })?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n[8..].to_string());
    let modules_dir = release.as_ref().and_then(|r| {
        ["lib/modules", "usr/lib/modules"]
            .iter()
            .map(|b| dir.join("root").join(b).join(r))
            .find(|p| p.is_dir())
    });
    Ok(Kernel {
        vmlinuz,
        modules_dir,
        release,
        source: source.to_string(),
    })
}

fn mkdir(p: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(p).map_err(|e| LabError::io(p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_release_from_bzimage_header() {
        let mut img = vec![0u8; 0x1000];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let text = b"6.13.0-rc1-nightly (builder@ci) #1 SMP\0";
        img[0x500..0x500 + text.len()].copy_from_slice(text);
        assert_eq!(bzimage_release(&img).as_deref(), Some("6.13.0-rc1-nightly"));
        assert!(is_bootable_image(&img));
        assert_eq!(bzimage_release(b"garbage"), None);
        assert!(!is_bootable_image(b"garbage"));
        assert!(is_bootable_image(b"\x7fELF\x02\x01\x01"));
        assert_eq!(bzimage_release(&vec![0u8; 0x1000]), None);
    }

    #[test]
    fn an_extracted_package_names_its_release_and_modules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("boot")).unwrap();
        std::fs::create_dir_all(root.join("lib/modules/6.1.0-9-cloud-amd64")).unwrap();
        std::fs::write(root.join("boot/vmlinuz-6.1.0-9-cloud-amd64"), b"k").unwrap();
        let k = kernel_from_root(dir.path(), "debian:x").unwrap();
        assert_eq!(k.release.as_deref(), Some("6.1.0-9-cloud-amd64"));
        assert!(k
            .modules_dir
            .unwrap()
            .ends_with("lib/modules/6.1.0-9-cloud-amd64"));
        let e = kernel_from_root(&dir.path().join("none"), "x").unwrap_err();
        assert_eq!(e.exit_code(), crate::exitcode::UNAVAILABLE);
    }
}
