//! What the guest is told: the command as `/lab/cmd.sh`, kpbench's arguments pointed
//! at the guest's out dir, the host's scenario file, and the per-run cpio appended to
//! the cached initramfs that carries them.

use std::io::Write;
use std::path::Path;

use crate::lab::archive::CpioWriter;
use crate::lab::kernel::Kernel;
use crate::lab::{GuestCommand, LabError, GUEST_OUT_DIR};

/// Quotes a word for the guest's shell.
pub fn sh_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Rewrites kpbench arguments for the guest: `--out X` / `--out=X` point at
/// [`GUEST_OUT_DIR`], and `run` gets `--out` when it has none. Returns the new
/// arguments and the original `--out` value, if any.
pub fn guest_kpbench_args(args: &[String]) -> (Vec<String>, Option<String>) {
    let mut out = Vec::with_capacity(args.len() + 2);
    let mut host_out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(it.by_ref().cloned());
            break;
        }
        if a == "--out" {
            host_out = it.next().cloned();
            out.push(a.clone());
            out.push(GUEST_OUT_DIR.to_string());
        } else if let Some(v) = a.strip_prefix("--out=") {
            host_out = Some(v.to_string());
            out.push(format!("--out={GUEST_OUT_DIR}"));
        } else {
            out.push(a.clone());
        }
    }
    if host_out.is_none() && args.first().is_some_and(|a| a == "run") {
        let at = out.iter().position(|a| a == "--").unwrap_or(out.len());
        out.splice(at..at, ["--out".to_string(), GUEST_OUT_DIR.to_string()]);
    }
    (out, host_out)
}

/// `kpbench run` flags that take a value (so the value is not the scenario argument).
const RUN_VALUE_FLAGS: &[&str] = &["--modes", "--services", "--endpoints", "--out", "--run-id"];

/// The index of `kpbench run`'s scenario argument (its first positional), if any.
pub fn scenario_arg(args: &[String]) -> Option<usize> {
    if args.first().map(String::as_str) != Some("run") {
        return None;
    }
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            return (i + 1 < args.len()).then_some(i + 1);
        }
        if RUN_VALUE_FLAGS.contains(&a) {
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// A file for the per-run overlay: guest path without the leading `/`, and contents.
pub(super) type OverlayFile = (String, Vec<u8>);

/// The host's scenario file goes into the guest as `/lab/scenario/<file name>`: returns
/// the command with that path and the file.
pub(super) fn stage_scenario(
    command: &GuestCommand,
) -> Result<(GuestCommand, Option<OverlayFile>), LabError> {
    let GuestCommand::Kpbench(args) = command else {
        return Ok((command.clone(), None));
    };
    let Some(i) = scenario_arg(args) else {
        return Ok((command.clone(), None));
    };
    let host = Path::new(&args[i]);
    let data = std::fs::read(host).map_err(|source| LabError::BadScenario {
        path: host.to_path_buf(),
        source,
    })?;
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario.toml".into());
    let guest = format!("lab/scenario/{name}");
    let mut args = args.clone();
    args[i] = format!("/{guest}");
    Ok((GuestCommand::Kpbench(args), Some((guest, data))))
}

/// The guest's `/lab/cmd.sh` for a command.
pub fn guest_script(command: &GuestCommand) -> String {
    let words: Vec<String> = match command {
        GuestCommand::Kpbench(args) => std::iter::once("/usr/local/bin/kpbench".to_string())
            .chain(guest_kpbench_args(args).0)
            .collect(),
        GuestCommand::Argv(argv) => argv.clone(),
    };
    let quoted: Vec<String> = words.iter().map(|w| sh_quote(w)).collect();
    format!("exec {}\n", quoted.join(" "))
}

/// What one run tells the guest, besides the cached initramfs.
pub(super) struct RunSettings<'a> {
    pub command: &'a GuestCommand,
    pub scenario: Option<&'a OverlayFile>,
    pub kernel: &'a Kernel,
    pub nonce: &'a str,
}

/// `/lab/run.env`: the nonce, the kernel's source, and the host's log settings.
fn run_env(settings: &RunSettings<'_>) -> String {
    let mut env = format!(
        "export KPBENCH_LAB_NONCE={}\nexport KPBENCH_KERNEL_SOURCE={}\n",
        sh_quote(settings.nonce),
        sh_quote(&settings.kernel.source)
    );
    for var in ["RUST_LOG", "RUST_BACKTRACE", "KPBENCH_LOG"] {
        if let Ok(v) = std::env::var(var) {
            env.push_str(&format!("export {var}={}\n", sh_quote(&v)));
        }
    }
    env
}

/// The per-run cpio: `/lab/run.env`, `/lab/cmd.sh` and the scenario file, if any.
fn overlay(settings: &RunSettings<'_>) -> std::io::Result<Vec<u8>> {
    let mut w = CpioWriter::new(Vec::new());
    w.dir("lab", 0o755)?;
    w.file("lab/run.env", 0o644, run_env(settings).as_bytes())?;
    w.file(
        "lab/cmd.sh",
        0o755,
        guest_script(settings.command).as_bytes(),
    )?;
    if let Some((path, data)) = settings.scenario {
        w.dir("lab/scenario", 0o755)?;
        w.file(path, 0o644, data)?;
    }
    w.finish()
}

/// The cached initramfs plus an appended cpio with this run's command and settings
/// (the kernel unpacks concatenated archives in order).
pub(super) fn write_run_initrd(
    base: &Path,
    dest: &Path,
    settings: &RunSettings<'_>,
) -> Result<(), LabError> {
    std::fs::copy(base, dest).map_err(|e| LabError::io(base, e))?;
    let overlay = overlay(settings).map_err(|e| LabError::io(dest, e))?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dest)
        .map_err(|e| LabError::io(dest, e))?;
    f.write_all(&overlay).map_err(|e| LabError::io(dest, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("ip_vs"), "ip_vs");
        assert_eq!(sh_quote("/proc/net/ip_vs"), "/proc/net/ip_vs");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("$(x)"), "'$(x)'");
    }

    #[test]
    fn out_dir_is_redirected() {
        let (a, host) = guest_kpbench_args(&s(&["run", "quick.toml", "--out", "res/x"]));
        assert_eq!(a, s(&["run", "quick.toml", "--out", "/lab/out"]));
        assert_eq!(host.as_deref(), Some("res/x"));
        let (a, host) = guest_kpbench_args(&s(&["run", "--out=r"]));
        assert_eq!(a, s(&["run", "--out=/lab/out"]));
        assert_eq!(host.as_deref(), Some("r"));
        let (a, host) = guest_kpbench_args(&s(&["run", "--modes", "ipvs"]));
        assert_eq!(a, s(&["run", "--modes", "ipvs", "--out", "/lab/out"]));
        assert_eq!(host, None);
        let (a, _) = guest_kpbench_args(&s(&["rules", "--mode", "ipvs"]));
        assert_eq!(a, s(&["rules", "--mode", "ipvs"]));
    }

    #[test]
    fn scenario_argument() {
        assert_eq!(
            scenario_arg(&s(&["run", "a.toml", "--modes", "ipvs"])),
            Some(1)
        );
        assert_eq!(
            scenario_arg(&s(&["run", "--modes", "ipvs", "a.toml"])),
            Some(3)
        );
        assert_eq!(
            scenario_arg(&s(&["run", "--no-datapath", "a.toml"])),
            Some(2)
        );
        assert_eq!(
            scenario_arg(&s(&["run", "--out", "x", "--run-id", "y"])),
            None
        );
        assert_eq!(scenario_arg(&s(&["run", "--", "a.toml"])), Some(2));
        assert_eq!(scenario_arg(&s(&["rules", "a.toml"])), None);
        let missing = GuestCommand::Kpbench(s(&["run", "/nonexistent/x.toml"]));
        let e = stage_scenario(&missing).unwrap_err();
        assert!(matches!(e, LabError::BadScenario { .. }), "{e}");
        assert_eq!(e.exit_code(), crate::exitcode::USAGE);
    }

    #[test]
    fn scripts() {
        assert_eq!(
            guest_script(&GuestCommand::Argv(s(&[
                "sh",
                "-c",
                "modprobe ip_vs && cat /proc/net/ip_vs"
            ]))),
            "exec sh -c 'modprobe ip_vs && cat /proc/net/ip_vs'\n"
        );
        assert_eq!(
            guest_script(&GuestCommand::Kpbench(s(&["run"]))),
            "exec /usr/local/bin/kpbench run --out /lab/out\n"
        );
    }

    #[test]
    fn the_overlay_carries_the_run() {
        let kernel = Kernel {
            vmlinuz: "/k".into(),
            modules_dir: None,
            release: None,
            source: "debian:linux-image-x".into(),
        };
        let command = GuestCommand::Argv(s(&["true"]));
        let scenario = ("lab/scenario/a.toml".to_string(), b"name = 'a'\n".to_vec());
        let settings = RunSettings {
            command: &command,
            scenario: Some(&scenario),
            kernel: &kernel,
            nonce: "n1",
        };
        assert!(run_env(&settings).starts_with(
            "export KPBENCH_LAB_NONCE=n1\nexport KPBENCH_KERNEL_SOURCE=debian:linux-image-x\n"
        ));
        let text = String::from_utf8_lossy(&overlay(&settings).unwrap()).into_owned();
        for want in [
            "lab/run.env\0",
            "lab/cmd.sh\0",
            "exec true\n",
            "lab/scenario/a.toml\0",
        ] {
            assert!(text.contains(want), "{want:?}");
        }
    }
}
