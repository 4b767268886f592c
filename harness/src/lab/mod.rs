//! The kernel lab: boots a chosen kernel in qemu with a small initramfs holding
//! `kpbench` and the dataplane tools, runs a command inside, and brings its exit code,
//! console output and result files back.
//!
//! Why: the host kernel may lack features (IPVS, dummy links) and CI wants numbers on
//! nightly kernels. Lab numbers are only comparable with lab numbers of the same kernel
//! and accelerator (`lab-kvm` / `lab-tcg`), which is recorded with every run.
//!
//! How results come back: the guest writes `/lab/out` (the command's `--out` dir) and
//! its exit code as a tar archive onto a raw virtio disk image (`out.img` in the run
//! dir), which the host reads after qemu exits. A kernel without virtio-blk falls back
//! to base64 framed by markers on the serial console. The exit code is also announced
//! on the console, so it survives a failed disk write. Markers carry a per-run nonce,
//! so the command's own output cannot forge them. See `init.sh` for the protocol.
//!
//! What goes in: the cached initramfs (`<cache>/initramfs/<key>/initrd.cpio`, key =
//! kernel + kpbench binary hash + host tools) plus a small per-run cpio appended to it
//! with the command, its environment (`KPBENCH_ENV_KIND` comes from the kernel command
//! line, `KPBENCH_KERNEL_SOURCE` from the spec) and, for `run SCENARIO.toml`, the host's
//! scenario file as `/lab/scenario/<name>`. The command runs with stdout and stderr on
//! one pipe to the console (no tty: no progress-bar redraws), kernel messages below
//! KERN_ALERT silenced while it runs.
//!
//! Layout: `spec` (kernel names), `kernel` (fetching them), `cache` (the cache and
//! its keys), `host` (the host tools, through `dataplane::exec`), `modules`
//! (modules.dep closure), `initramfs` (build + cache), `archive` (cpio/tar), `qemu`
//! (boot, timeouts, cleanup), `error`. The command line is `crate::cli::lab`; nothing
//! here prints: progress goes out as [`LabEvent`]s.

mod archive;
mod cache;
mod error;
mod host;
mod initramfs;
pub mod kernel;
pub mod modules;
mod qemu;
mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use archive::{read_tar, ArchiveError, TarEntry};
pub use cache::cache_dir;
pub use error::{LabError, EXIT_BOOT_FAILED, EXIT_INTERRUPTED, EXIT_UNAVAILABLE};
pub use kernel::Kernel;
pub use qemu::{clean_leftovers, PID_DIR};
pub use spec::{KernelSpec, DEFAULT_KERNEL};

/// Where the guest's command writes its results (its `--out`).
pub const GUEST_OUT_DIR: &str = "/lab/out";

/// The accelerator a guest ran under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// The environment kind of the results schema: `lab-kvm` or `lab-tcg`.
    pub fn env_kind(self) -> &'static str {
        match self {
            Accel::Kvm => "lab-kvm",
            Accel::Tcg => "lab-tcg",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Which accelerators to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM when /dev/kvm works, else (or when KVM fails to boot) TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// What the guest runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestCommand {
    /// `kpbench run` on a host scenario file, its results written to [`GUEST_OUT_DIR`].
    Run(GuestRun),
    /// A program and its arguments, run as given (e.g. `["sh", "-c", "a && b"]`).
    Argv(Vec<String>),
}

/// A `kpbench run` for the guest, split by the caller that parsed it: the lab copies
/// `scenario` in and sets `--out` itself, and passes `flags` on untouched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestRun {
    /// A scenario file on the host; `None`: the quick scenario, embedded in kpbench.
    pub scenario: Option<PathBuf>,
    /// `kpbench run`'s other flags, without the scenario and `--out`.
    pub flags: Vec<String>,
    /// The host's machine (`run::environment::machine`), told to the guest as
    /// `KPBENCH_MACHINE` so its results name the machine the guest ran on.
    pub machine: Option<String>,
}

impl GuestRun {
    /// kpbench's arguments in the guest: `run`, the scenario, `--out` [`GUEST_OUT_DIR`],
    /// then the other flags as given.
    pub fn argv(&self) -> Vec<String> {
        let mut words = vec!["run".to_string()];
        words.extend(self.scenario.iter().map(|p| p.display().to_string()));
        words.extend(["--out".to_string(), GUEST_OUT_DIR.to_string()]);
        words.extend(self.flags.iter().cloned());
        words
    }
}

/// Everything a lab run can be told. `Default` gives the lab's defaults.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Overall limit for the VM: boot, command and shutdown.
    pub timeout: Duration,
    /// Limit for the guest's /init to announce itself. `None`: 20 s under KVM,
    /// 180 s under TCG (or `$KPBENCH_LAB_BOOT_TIMEOUT` seconds).
    pub boot_timeout: Option<Duration>,
    pub accel: AccelChoice,
    /// The kpbench binary to put in the guest. `None`: `$KPBENCH_LAB_BINARY`, else the
    /// running executable.
    pub kpbench_binary: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Size of the sparse results disk.
    pub results_disk_mib: u64,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            timeout: Duration::from_secs(3600),
            boot_timeout: std::env::var("KPBENCH_LAB_BOOT_TIMEOUT")
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Duration::from_secs),
            accel: match std::env::var("KPBENCH_LAB_ACCEL").as_deref() {
                Ok("kvm") => AccelChoice::Kvm,
                Ok("tcg") => AccelChoice::Tcg,
                _ => AccelChoice::Auto,
            },
            kpbench_binary: None,
            cache_dir: cache_dir(),
            memory_mib: 2048,
            cpus: 2,
            results_disk_mib: 512,
        }
    }
}

/// Progress of a lab run, for a UI to show (the engine never prints).
#[derive(Debug, Clone)]
pub enum LabEvent {
    FetchingKernel {
        package: String,
    },
    ExtractingKernel {
        deb: PathBuf,
    },
    KernelReady {
        source: String,
        release: Option<String>,
        vmlinuz: PathBuf,
    },
    BuildingInitramfs {
        key: String,
    },
    InitramfsContents {
        modules: usize,
        missing_tools: Vec<String>,
    },
    InitramfsReady {
        path: PathBuf,
        cached: bool,
    },
    Booting {
        accel: Accel,
        run_dir: PathBuf,
    },
    /// The accelerator failed before the guest came up; trying the next one.
    AccelFallback {
        from: Accel,
        to: Accel,
        reason: String,
    },
    /// The guest's /init is running.
    GuestAlive {
        accel: Accel,
        after: Duration,
    },
    /// A line the command printed (stdout and stderr share the serial console).
    GuestOutput(String),
    /// A console line outside the command: kernel messages, init's own notes.
    Console(String),
    GuestExited {
        code: i32,
        after: Duration,
    },
}

/// What a finished lab run gives back.
#[derive(Debug, Clone)]
pub struct LabOutcome {
    /// The command's exit code inside the guest.
    pub exit_code: i32,
    pub accel: Accel,
    pub kernel_release: Option<String>,
    pub kernel_source: String,
    /// The full serial console of the run.
    pub console_log: PathBuf,
    /// Files the command left in its out dir, by path relative to it.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// From qemu start to the guest's /init announcing itself.
    pub boot_time: Duration,
    /// From qemu start to qemu exit.
    pub vm_time: Duration,
}

impl LabOutcome {
    /// The bytes of the first `results.json` among the files (at the top or one
    /// directory down, e.g. `<run-id>/results.json`).
    pub fn results_json(&self) -> Option<&[u8]> {
        self.files
            .iter()
            .filter(|(p, _)| p.file_name().is_some_and(|n| n == "results.json"))
            .min_by_key(|(p, _)| p.components().count())
            .map(|(_, v)| v.as_slice())
    }

    /// Writes the files under `dir`, keeping their relative paths.
    pub fn write_files(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (rel, data) in &self.files {
            let p = dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, data)?;
            written.push(p);
        }
        Ok(written)
    }
}

/// Runs `kpbench run` in a lab on `kernel` with the default options otherwise, and
/// returns the command's exit code, the accelerator, the console log and the files it
/// wrote to its `--out` (see [`LabOutcome::results_json`]). A SIGINT/SIGTERM
/// registered on `dataplane::floor::exec::cancel_flag()` stops it ([`LabError::Interrupted`]).
pub fn run_in_lab(
    kernel: &KernelSpec,
    guest: &GuestRun,
    timeout: Duration,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<LabOutcome, LabError> {
    let opts = LabOptions {
        timeout,
        ..LabOptions::default()
    };
    run(
        kernel,
        &GuestCommand::Run(guest.clone()),
        &opts,
        None,
        progress,
    )
}

/// Fetches the kernel and builds (or finds) the initramfs, without booting.
pub fn prepare(
    kernel: &KernelSpec,
    opts: &LabOptions,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<(Kernel, PathBuf), LabError> {
    let k = kernel::prepare(kernel, &opts.cache_dir, progress)?;
    progress(LabEvent::KernelReady {
        source: k.source.clone(),
        release: k.release.clone(),
        vmlinuz: k.vmlinuz.clone(),
    });
    let bin = match &opts.kpbench_binary {
        Some(b) => b.clone(),
        None => match std::env::var_os("KPBENCH_LAB_BINARY").filter(|v| !v.is_empty()) {
            Some(b) => PathBuf::from(b),
            None => {
                std::env::current_exe().map_err(|e| LabError::io(Path::new("/proc/self/exe"), e))?
            }
        },
    };
    let image = initramfs::build(&k, &bin, &opts.cache_dir, progress)?;
    progress(LabEvent::InitramfsReady {
        path: image.path.clone(),
        cached: image.cached,
    });
    Ok((k, image.path))
}

/// Runs a command in a lab. `interrupt`, when set to true (e.g. by a signal handler),
/// stops the run and kills qemu. A run's scenario file is read first, so a wrong path
/// fails before any kernel is fetched.
pub fn run(
    kernel: &KernelSpec,
    command: &GuestCommand,
    opts: &LabOptions,
    interrupt: Option<&std::sync::atomic::AtomicBool>,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<LabOutcome, LabError> {
    let staged = qemu::stage(command)?;
    let (k, initrd) = prepare(kernel, opts, progress)?;
    if interrupt.is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
        || dataplane::floor::exec::cancelled()
    {
        return Err(LabError::Interrupted);
    }
    qemu::boot(&k, &initrd, &staged, opts, interrupt, progress)
}
