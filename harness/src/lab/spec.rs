//! Naming a kernel: `debian:6.1`, a Debian package, a `.deb`, or a `vmlinuz` with its
//! modules; and picking a series' newest package. Pure: nothing here touches the disk.

use std::fmt;
use std::path::PathBuf;

use super::LabError;

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
            return parse_debian(s, rest);
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

/// `debian:<major>.<minor>` or `debian:<linux-image package>`.
fn parse_debian(whole: &str, rest: &str) -> Result<KernelSpec, LabError> {
    if rest.starts_with("linux-image-") && valid_package_name(rest) {
        return Ok(KernelSpec::DebianPackage(rest.to_string()));
    }
    let numbers: Vec<&str> = rest.split('.').collect();
    let is_series = numbers.len() == 2
        && numbers
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if is_series {
        return Ok(KernelSpec::DebianSeries(rest.to_string()));
    }
    Err(LabError::BadSpec(format!(
        "{whole:?}: expected debian:<major>.<minor> (e.g. debian:6.1) or debian:<linux-image package>"
    )))
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

/// A run of digits or of other characters in a version; numbers sort before text.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk {
    Number(u64),
    Text(String),
}

/// Compares names with embedded numbers numerically (like `sort -V`).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunk(text: String, digits: bool) -> Chunk {
        if digits {
            Chunk::Number(text.parse().unwrap_or(u64::MAX))
        } else {
            Chunk::Text(text)
        }
    }
    fn chunks(s: &str) -> Vec<Chunk> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut digits = false;
        for c in s.chars() {
            if !cur.is_empty() && c.is_ascii_digit() != digits {
                out.push(chunk(std::mem::take(&mut cur), digits));
            }
            digits = c.is_ascii_digit();
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(chunk(cur, digits));
        }
        out
    }
    chunks(a).cmp(&chunks(b))
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
            let e = KernelSpec::parse(bad).expect_err(bad);
            assert!(matches!(e, LabError::BadSpec(_)), "{bad:?}: {e}");
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
        // Numbers sort before text at the same place, as before.
        assert_eq!(version_cmp("a1", "ab"), std::cmp::Ordering::Less);
        assert_eq!(version_cmp("6.1", "6.1"), std::cmp::Ordering::Equal);
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
}
