//! What the guest is told: the command as `/lab/cmd.sh` (a run pointed at the guest's
//! out dir), the host's scenario file, and the per-run cpio appended to the cached
//! initramfs that carries them. The run's flags come parsed from the command line
//! (`crate::cli::lab`), so nothing here needs to know which flags take a value.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::lab::archive::CpioWriter;
use crate::lab::kernel::Kernel;
use crate::lab::{GuestCommand, GuestRun, LabError};

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

/// A file for the per-run overlay: guest path without the leading `/`, and contents.
pub(super) type OverlayFile = (String, Vec<u8>);

/// A command ready for the guest: a run's scenario path points into the guest, and
/// the host's scenario file goes with it.
pub(crate) struct Staged {
    pub command: GuestCommand,
    pub scenario: Option<OverlayFile>,
}

/// The host's scenario file goes into the guest as `/lab/scenario/<file name>`: reads
/// it (so a missing file fails before anything is fetched or booted) and returns the
/// command with the guest's path.
pub(crate) fn stage(command: &GuestCommand) -> Result<Staged, LabError> {
    let unchanged = || Staged {
        command: command.clone(),
        scenario: None,
    };
    let GuestCommand::Run(run) = command else {
        return Ok(unchanged());
    };
    let Some(host) = &run.scenario else {
        return Ok(unchanged());
    };
    let data = std::fs::read(host).map_err(|source| LabError::BadScenario {
        path: host.clone(),
        source,
    })?;
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario.toml".into());
    let guest = format!("lab/scenario/{name}");
    let run = GuestRun {
        scenario: Some(PathBuf::from(format!("/{guest}"))),
        flags: run.flags.clone(),
        machine: run.machine.clone(),
    };
    Ok(Staged {
        command: GuestCommand::Run(run),
        scenario: Some((guest, data)),
    })
}

/// The guest's `/lab/cmd.sh` for a command.
pub fn guest_script(command: &GuestCommand) -> String {
    let words: Vec<String> = match command {
        GuestCommand::Run(run) => std::iter::once("/usr/local/bin/kpbench".to_string())
            .chain(run.argv())
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

/// `/lab/run.env`: the nonce, the kernel's source, the host's machine (so a guest's
/// results name the machine it ran on) and the host's log settings.
fn run_env(settings: &RunSettings<'_>) -> String {
    let mut env = format!(
        "export KPBENCH_LAB_NONCE={}\nexport KPBENCH_KERNEL_SOURCE={}\n",
        sh_quote(settings.nonce),
        sh_quote(&settings.kernel.source)
    );
    if let GuestCommand::Run(GuestRun {
        machine: Some(m), ..
    }) = settings.command
    {
        env.push_str(&format!("export KPBENCH_MACHINE={}\n", sh_quote(m)));
    }
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
    fn the_scenario_goes_into_the_guest() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("a b.toml");
        std::fs::write(&host, "name = 'a'\n").unwrap();
        let run = GuestRun {
            scenario: Some(host),
            flags: s(&["--modes=ipvs"]),
            machine: Some("0123456789abcdef".into()),
        };
        let staged = stage(&GuestCommand::Run(run)).unwrap();
        assert_eq!(
            staged.scenario,
            Some(("lab/scenario/a b.toml".into(), b"name = 'a'\n".to_vec()))
        );
        assert_eq!(
            guest_script(&staged.command),
            "exec /usr/local/bin/kpbench run '/lab/scenario/a b.toml' --out /lab/out --modes=ipvs\n"
        );
        let missing = GuestCommand::Run(GuestRun {
            scenario: Some("/nonexistent/x.toml".into()),
            flags: vec![],
            machine: None,
        });
        let e = stage(&missing).err().unwrap();
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
            guest_script(&GuestCommand::Run(GuestRun::default())),
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
        assert!(!run_env(&settings).contains("KPBENCH_MACHINE"));
        let run = GuestCommand::Run(GuestRun {
            scenario: None,
            flags: vec![],
            machine: Some("0123456789abcdef".into()),
        });
        let told = run_env(&RunSettings {
            command: &run,
            ..settings
        });
        assert!(
            told.contains("\nexport KPBENCH_MACHINE=0123456789abcdef\n"),
            "{told}"
        );
    }
}
