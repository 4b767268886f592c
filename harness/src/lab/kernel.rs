//! Naming a kernel (`debian:6.1`, a `.deb`, a `vmlinuz` with modules) and turning that
//! name into files on disk, fetching Debian packages into the lab cache.
//!
//! Cache layout (shared with `scripts/fetch-kernels.sh`):
//! `<cache>/kernels/<package>/root/` is the package extracted with `dpkg-deb -x` (with
//! `depmod -b` run on it) and `<cache>/kernels/<package>/complete` holds the kernel
//! release; a directory without `complete` is an interrupted fetch and is redone.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{LabError, LabEvent};

/// Where a lab kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// `debian:6.1`: the newest `linux-image-6.1*-cloud-amd64` in the apt sources.
    DebianSeries(String),
    /// `debian:linux-image-6.1.0-47-cloud-amd64`: exactly this package.
    DebianPackage(String),
    /// A local kernel package file.
    Deb(PathBuf),
    /// A kernel image (a nightly build), optionally with its modules: either a
    /// `lib/modules/<release>` directory or a root holding `lib/modules/<release>/`
    /// (`make modules_install INSTALL_MOD_PATH=<root>`). Written `VMLINUZ[:MODULES]`.
    Image {
        vmlinuz: PathBuf,
        modules: Option<PathBuf>,
    },
}

/// The default kernel of the lab.
pub const DEFAULT_KERNEL: &str = "debian:6.1";

impl KernelSpec {
    /// Parses a kernel name as `--kernel` takes it.
    pub fn parse(s: &str) -> Result<Self, LabError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(LabError::BadSpec("empty kernel name".into()));
        }
        if let Some(rest) = s.strip_prefix("debian:") {
            if rest.starts_with("linux-image-") && valid_package_name(rest) {
                return Ok(KernelSpec::DebianPackage(rest.to_string()));
            }
            let ok = !rest.is_empty()
                && rest.split('.').count() == 2
                && rest
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if ok {
                return Ok(KernelSpec::DebianSeries(rest.to_string()));
            }
            return Err(LabError::BadSpec(format!(
                "{s:?}: expected debian:<major>.<minor> (e.g. debian:6.1) or debian:<linux-image package>"
            )));
        }
        if s.ends_with(".deb") {
            return Ok(KernelSpec::Deb(PathBuf::from(s)));
        }
        if s.contains("://") {
            return Err(LabError::BadSpec(format!(
                "{s:?}: URLs are not fetched; download the file and pass its path"
            )));
        }
        let (vmlinuz, modules) = match s.split_once(':') {
            Some((k, m)) if !m.is_empty() => (k, Some(PathBuf::from(m))),
            Some((k, _)) => (k, None),
            None => (s, None),
        };
        Ok(KernelSpec::Image {
            vmlinuz: PathBuf::from(vmlinuz),
            modules,
        })
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSpec::DebianSeries(s) => write!(f, "debian:{s}"),
            KernelSpec::DebianPackage(p) => write!(f, "debian:{p}"),
            KernelSpec::Deb(p) => write!(f, "{}", p.display()),
            KernelSpec::Image { vmlinuz, modules } => match modules {
                Some(m) => write!(f, "{}:{}", vmlinuz.display(), m.display()),
                None => write!(f, "{}", vmlinuz.display()),
            },
        }
    }
}

impl std::str::FromStr for KernelSpec {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KernelSpec::parse(s)
    }
}

fn valid_package_name(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

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
            let digest = super::initramfs::cached_digest(path, cache)?;
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
    let available = match run_text(Command::new("apt-cache").args([
        "search",
        "--names-only",
        "^linux-image-[0-9].*-cloud-amd64$",
    ])) {
        Ok(text) => text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect::<Vec<_>>(),
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
    pick_series(series, &available, &cached)
}

/// The newest package of `series` among those apt offers (`available`), else among
/// those already in the cache. With none of the series: a usage error naming the
/// series there are (exit 2), or "unavailable" when apt offers no kernel at all (69).
pub fn pick_series(
    series: &str,
    available: &[String],
    cached: &[String],
) -> Result<String, LabError> {
    let of_series = |names: &[String]| {
        names
            .iter()
            .filter(|p| package_series(p).as_deref() == Some(series))
            .max_by(|a, b| version_cmp(a, b))
            .cloned()
    };
    if let Some(p) = of_series(available).or_else(|| of_series(cached)) {
        return Ok(p);
    }
    let mut series_seen: Vec<String> = available
        .iter()
        .chain(cached.iter())
        .filter_map(|p| package_series(p))
        .collect();
    series_seen.sort_by(|a, b| version_cmp(a, b));
    series_seen.dedup();
    if series_seen.is_empty() {
        return Err(LabError::KernelUnavailable(format!(
            "no linux-image-*-cloud-amd64 package in the apt sources (run `apt-get update`; \
             on non-Debian hosts add a Debian archive) and none in the lab cache; \
             or pass a kernel .deb or vmlinuz path instead of debian:{series}"
        )));
    }
    let have: Vec<String> = series_seen.iter().map(|s| format!("debian:{s}")).collect();
    Err(LabError::BadSpec(format!(
        "debian:{series}: no linux-image-{series}*-cloud-amd64 package in the configured apt sources; available: {}",
        have.join(", ")
    )))
}

/// `linux-image-6.12.117+deb12-cloud-amd64` -> `6.12`; `linux-image-6.1.0-56-cloud-amd64` -> `6.1`.
pub fn package_series(name: &str) -> Option<String> {
    let rest = name.strip_prefix("linux-image-")?;
    if !name.ends_with("-cloud-amd64") {
        return None;
    }
    let mut parts = rest.split(['.', '-', '+']);
    let major = parts.next()?;
    let minor = parts.next()?;
    // A third number (patch or ABI) tells a kernel from the series metapackage
    // `linux-image-6.12-cloud-amd64`.
    let third = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor) && digits(third)).then(|| format!("{major}.{minor}"))
}

/// Compares names with embedded numbers numerically (like `sort -V`).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<Result<u64, String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut digit = false;
        for c in s.chars() {
            if !cur.is_empty() && c.is_ascii_digit() != digit {
                out.push(if digit {
                    Ok(cur.parse().unwrap_or(u64::MAX))
                } else {
                    Err(std::mem::take(&mut cur))
                });
                cur.clear();
            }
            digit = c.is_ascii_digit();
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(if digit {
                Ok(cur.parse().unwrap_or(u64::MAX))
            } else {
                Err(cur)
            });
        }
        out
    }
    chunks(a).cmp(&chunks(b))
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
    let download = cache.join("downloads");
    mkdir(&download)?;
    // apt drops privileges to _apt for downloads; let it write here.
    let _ = std::fs::set_permissions(
        &download,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    );
    let status = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(&download)
        .output()
        .map_err(|e| LabError::ToolMissing {
            tool: "apt-get".into(),
            hint: format!("{e}; fetch the package by hand and pass the .deb path"),
        })?;
    if !status.status.success() {
        return Err(LabError::KernelUnavailable(format!(
            "apt-get download {package} failed: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        )));
    }
    let deb = std::fs::read_dir(&download)
        .map_err(|e| LabError::io(&download, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .ok_or_else(|| {
            LabError::KernelUnavailable(format!("apt-get download {package} produced no .deb"))
        })?;
    let kernel = extract_deb_once(&deb, &dir, &source, progress);
    let _ = std::fs::remove_file(&deb);
    kernel
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
    run_text(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))
        .map_err(|e| LabError::KernelUnavailable(format!("dpkg-deb -x {}: {e}", deb.display())))?;
    let kernel = kernel_from_root(dir, source)?;
    if let (Some(release), Some(_)) = (&kernel.release, &kernel.modules_dir) {
        run_text(Command::new("depmod").arg("-b").arg(&root).arg(release)).map_err(|e| {
            LabError::ToolMissing {
                tool: "depmod".into(),
                hint: format!("{e}; install the kmod package"),
            }
        })?;
    }
    let release = kernel.release.clone().unwrap_or_default();
    std::fs::write(dir.join("complete"), format!("{release}\n"))
        .map_err(|e| LabError::io(dir, e))?;
    kernel_from_root(dir, source)
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

/// Runs a command, returning its stdout, or a message with its stderr.
pub(crate) fn run_text(cmd: &mut Command) -> Result<String, String> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| format!("{name}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            KernelSpec::parse("debian:6.1").unwrap(),
            KernelSpec::DebianSeries("6.1".into())
        );
        assert_eq!(
            KernelSpec::parse("debian:6.12").unwrap(),
            KernelSpec::DebianSeries("6.12".into())
        );
        assert_eq!(
            KernelSpec::parse("debian:linux-image-6.1.0-47-cloud-amd64").unwrap(),
            KernelSpec::DebianPackage("linux-image-6.1.0-47-cloud-amd64".into())
        );
        assert_eq!(
            KernelSpec::parse("./k/linux-image-x_amd64.deb").unwrap(),
            KernelSpec::Deb("./k/linux-image-x_amd64.deb".into())
        );
        assert_eq!(
            KernelSpec::parse("/b/arch/x86/boot/bzImage").unwrap(),
            KernelSpec::Image {
                vmlinuz: "/b/arch/x86/boot/bzImage".into(),
                modules: None
            }
        );
        assert_eq!(
            KernelSpec::parse("/b/bzImage:/b/mods").unwrap(),
            KernelSpec::Image {
                vmlinuz: "/b/bzImage".into(),
                modules: Some("/b/mods".into())
            }
        );
        for bad in [
            "",
            "debian:",
            "debian:6",
            "debian:six.one",
            "debian:6.1.x",
            "https://x/vmlinuz",
        ] {
            assert!(
                KernelSpec::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn specs_round_trip_through_display() {
        for s in [
            "debian:6.1",
            "debian:linux-image-6.1.0-47-cloud-amd64",
            "a.deb",
            "/v",
            "/v:/m",
        ] {
            assert_eq!(KernelSpec::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn package_series_and_order() {
        assert_eq!(
            package_series("linux-image-6.1.0-56-cloud-amd64").as_deref(),
            Some("6.1")
        );
        assert_eq!(
            package_series("linux-image-6.12.117+deb12-cloud-amd64").as_deref(),
            Some("6.12")
        );
        assert_eq!(package_series("linux-image-6.12-cloud-amd64-dbg"), None);
        assert_eq!(package_series("linux-image-cloud-amd64"), None);
        assert_eq!(package_series("linux-image-6.12-cloud-amd64"), None);
        let names: Vec<String> = [
            "linux-image-6.1.0-9-cloud-amd64",
            "linux-image-6.1.0-56-cloud-amd64",
            "linux-image-6.1.0-47-cloud-amd64",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            pick_series("6.1", &names, &[]).unwrap(),
            "linux-image-6.1.0-56-cloud-amd64"
        );
        assert_eq!(
            version_cmp("linux-image-6.12.99+deb12", "linux-image-6.12.117+deb12"),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn series_not_in_apt_names_what_is() {
        let apt: Vec<String> = [
            "linux-image-6.1.0-47-cloud-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.12.99+deb12-cloud-amd64",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            pick_series("6.12", &apt, &[]).unwrap(),
            "linux-image-6.12.117+deb12-cloud-amd64"
        );
        let e = pick_series("6.6", &apt, &[]).unwrap_err();
        assert_eq!(e.exit_code(), crate::exitcode::USAGE);
        assert!(
            e.to_string()
                .ends_with("available: debian:6.1, debian:6.12"),
            "{e}"
        );
        // Offline, a package fetched earlier still resolves.
        let cached = vec!["linux-image-6.1.0-50-cloud-amd64".to_string()];
        assert_eq!(
            pick_series("6.1", &[], &cached).unwrap(),
            "linux-image-6.1.0-50-cloud-amd64"
        );
        let e = pick_series("6.1", &[], &[]).unwrap_err();
        assert_eq!(e.exit_code(), crate::exitcode::UNAVAILABLE);
    }

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
}
