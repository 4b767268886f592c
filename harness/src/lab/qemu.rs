//! Booting the lab VM: accelerator choice (KVM, falling back to TCG by itself), the
//! per-run initramfs overlay, watching the serial console against two deadlines
//! ("no sign of life" and overall), and making sure qemu never outlives the run.
//!
//! qemu never outlives kpbench: it is killed by a guard on every return path, it gets
//! SIGKILL from the kernel when the thread that spawned it dies (PR_SET_PDEATHSIG, so
//! a kpbench killed outright takes qemu with it), a SIGINT/SIGTERM seen by kpbench
//! (`dataplane::exec::cancelled()`) kills it within 200 ms, and its pid is recorded in
//! `/run/kpbench/lab/qemu-<pid>.pid` so `kpbench clean` can kill leftovers.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::archive::{read_tar, CpioWriter};
use super::kernel::Kernel;
use super::{
    Accel, AccelChoice, GuestCommand, LabError, LabEvent, LabOptions, LabOutcome, GUEST_OUT_DIR,
};

/// Where running lab VMs are recorded: `qemu-<qemu pid>.pid` holds the qemu pid, the
/// owning kpbench's pid and the run directory, one per line.
pub const PID_DIR: &str = "/run/kpbench/lab";
/// Written when KVM failed to boot a guest, so later runs go straight to TCG (until
/// the host reboots: /run is a tmpfs).
const KVM_UNUSABLE: &str = "/run/kpbench/lab/kvm-unusable";
const QEMU: &str = "qemu-system-x86_64";
/// Time allowed between the command's end and qemu's exit (tar, sync, power off).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// Run directories kept under `<cache>/runs`.
const KEEP_RUNS: usize = 20;

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
type OverlayFile = (String, Vec<u8>);

/// The host's scenario file goes into the guest as `/lab/scenario/<file name>`: returns
/// the command with that path and the file.
fn stage_scenario(command: &GuestCommand) -> Result<(GuestCommand, Option<OverlayFile>), LabError> {
    let GuestCommand::Kpbench(args) = command else {
        return Ok((command.clone(), None));
    };
    let Some(i) = scenario_arg(args) else {
        return Ok((command.clone(), None));
    };
    let host = Path::new(&args[i]);
    let data = std::fs::read(host).map_err(|e| {
        LabError::BadInput(format!(
            "scenario {}: {e} (give a TOML file on this host)",
            host.display()
        ))
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

/// Drops terminal escape sequences (SeaBIOS clears the screen) and carriage returns.
fn clean_line(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    while let Some(&n) = chars.peek() {
                        chars.next();
                        if n.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A running qemu: killed and reaped on drop, pid file removed.
struct Vm {
    child: Child,
    pidfile: PathBuf,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

enum Msg {
    Line(Vec<u8>),
    Eof,
}

/// How one boot attempt ended.
enum Attempt {
    Done(Box<LabOutcome>),
    /// The guest never came up; the next accelerator may do better.
    NoLife(LabError),
}

fn kvm_usable() -> bool {
    if Path::new(KVM_UNUSABLE).exists() {
        return false;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

fn find_qemu() -> Result<PathBuf, LabError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(QEMU))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::ToolMissing {
            tool: QEMU.into(),
            hint: "install the qemu-system-x86 package".into(),
        })
}

/// Boots `kernel` with `initrd`, runs `command`, and collects its outcome.
pub(super) fn boot(
    kernel: &Kernel,
    initrd: &Path,
    command: &GuestCommand,
    opts: &LabOptions,
    interrupt: Option<&AtomicBool>,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<LabOutcome, LabError> {
    let qemu = find_qemu()?;
    let run_dir = new_run_dir(&opts.cache_dir)?;
    let nonce = format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let (command, scenario) = stage_scenario(command)?;
    let command = &command;
    let run_initrd = run_dir.join("initrd.cpio");
    write_run_initrd(
        initrd,
        &run_initrd,
        command,
        scenario.as_ref(),
        kernel,
        &nonce,
    )?;
    std::fs::write(run_dir.join("command.sh"), guest_script(command))
        .map_err(|e| LabError::io(&run_dir, e))?;

    let accels: Vec<Accel> = match opts.accel {
        AccelChoice::Kvm => vec![Accel::Kvm],
        AccelChoice::Tcg => vec![Accel::Tcg],
        AccelChoice::Auto if kvm_usable() => vec![Accel::Kvm, Accel::Tcg],
        AccelChoice::Auto => vec![Accel::Tcg],
    };
    let mut result = Err(LabError::BootFailed {
        reason: "no accelerator to try".into(),
        console_log: run_dir.join("console.log"),
    });
    for (i, &accel) in accels.iter().enumerate() {
        let attempt = attempt(
            &qemu,
            kernel,
            &run_initrd,
            &run_dir,
            &nonce,
            accel,
            opts,
            interrupt,
            progress,
        );
        match attempt {
            Ok(Attempt::Done(outcome)) => {
                result = Ok(*outcome);
                break;
            }
            Ok(Attempt::NoLife(err)) => {
                if let Some(&next) = accels.get(i + 1) {
                    if accel == Accel::Kvm && opts.accel == AccelChoice::Auto {
                        // Remember until the host reboots (/run is a tmpfs).
                        let _ = std::fs::write(KVM_UNUSABLE, format!("{err}\n"));
                    }
                    progress(LabEvent::AccelFallback {
                        from: accel,
                        to: next,
                        reason: err.to_string(),
                    });
                }
                result = Err(err);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // The initrd copy and the disk are large; the console log and command stay.
    let _ = std::fs::remove_file(&run_initrd);
    let _ = std::fs::remove_file(run_dir.join("out.img"));
    result
}

fn new_run_dir(cache: &Path) -> Result<PathBuf, LabError> {
    let runs = cache.join("runs");
    std::fs::create_dir_all(&runs).map_err(|e| LabError::io(&runs, e))?;
    if let Ok(rd) = std::fs::read_dir(&runs) {
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        let excess = names.len().saturating_sub(KEEP_RUNS);
        for old in names.into_iter().take(excess) {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = runs.join(format!("{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
    Ok(dir)
}

/// The cached initramfs plus an appended cpio with this run's command and settings
/// (the kernel unpacks concatenated archives in order).
fn write_run_initrd(
    base: &Path,
    dest: &Path,
    command: &GuestCommand,
    extra: Option<&OverlayFile>,
    kernel: &Kernel,
    nonce: &str,
) -> Result<(), LabError> {
    std::fs::copy(base, dest).map_err(|e| LabError::io(base, e))?;
    let mut env = format!(
        "export KPBENCH_LAB_NONCE={}\nexport KPBENCH_KERNEL_SOURCE={}\n",
        sh_quote(nonce),
        sh_quote(&kernel.source)
    );
    for var in ["RUST_LOG", "RUST_BACKTRACE", "KPBENCH_LOG"] {
        if let Ok(v) = std::env::var(var) {
            env.push_str(&format!("export {var}={}\n", sh_quote(&v)));
        }
    }
    let mut w = CpioWriter::new(Vec::new());
    let overlay = (|| {
        w.dir("lab", 0o755)?;
        w.file("lab/run.env", 0o644, env.as_bytes())?;
        w.file("lab/cmd.sh", 0o755, guest_script(command).as_bytes())?;
        if let Some((path, data)) = extra {
            w.dir("lab/scenario", 0o755)?;
            w.file(path, 0o644, data)?;
        }
        w.finish()
    })()
    .map_err(|e| LabError::io(dest, e))?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dest)
        .map_err(|e| LabError::io(dest, e))?;
    f.write_all(&overlay).map_err(|e| LabError::io(dest, e))
}

#[allow(clippy::too_many_arguments)]
fn attempt(
    qemu: &Path,
    kernel: &Kernel,
    initrd: &Path,
    run_dir: &Path,
    nonce: &str,
    accel: Accel,
    opts: &LabOptions,
    interrupt: Option<&AtomicBool>,
    progress: &mut dyn FnMut(LabEvent),
) -> Result<Attempt, LabError> {
    let console_log = run_dir.join("console.log");
    let disk = run_dir.join("out.img");
    let f = std::fs::File::create(&disk).map_err(|e| LabError::io(&disk, e))?;
    f.set_len(opts.results_disk_mib << 20)
        .map_err(|e| LabError::io(&disk, e))?;
    drop(f);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&console_log)
        .map_err(|e| LabError::io(&console_log, e))?;
    let _ = writeln!(log, "=== kpbench lab: accel {} ===", accel.name());

    let mut cmd = Command::new(qemu);
    cmd.arg("-name").arg(format!("kpbench-lab-{nonce}"));
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => cmd.args(["-accel", "tcg", "-cpu", "max"]),
    };
    cmd.args([
        "-m",
        &opts.memory_mib.to_string(),
        "-smp",
        &opts.cpus.to_string(),
    ])
    .args(["-nographic", "-no-reboot", "-nic", "none"])
    .arg("-kernel")
    .arg(&kernel.vmlinuz)
    .arg("-initrd")
    .arg(initrd)
    .arg("-append")
    .arg(format!(
        "console=ttyS0 quiet panic=-1 oops=panic kpbench.accel={}",
        accel.name()
    ))
    .arg("-drive")
    .arg(format!("file={},format=raw,if=virtio", disk.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let _ = std::fs::write(
        run_dir.join("qemu.args"),
        format!("{:?}\n", cmd.get_args().collect::<Vec<_>>()),
    );
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| LabError::ToolMissing {
        tool: QEMU.into(),
        hint: format!("{e}; install the qemu-system-x86 package"),
    })?;
    let _ = std::fs::create_dir_all(PID_DIR);
    let pidfile = Path::new(PID_DIR).join(format!("qemu-{}.pid", child.id()));
    let _ = std::fs::write(
        &pidfile,
        format!(
            "{}\n{}\n{}\n",
            child.id(),
            std::process::id(),
            run_dir.display()
        ),
    );
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut vm = Vm { child, pidfile };
    progress(LabEvent::Booting {
        accel,
        run_dir: run_dir.to_path_buf(),
    });

    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || read_lines(stdout, log, tx));
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut stderr = stderr;
        let _ = stderr.read_to_end(&mut buf);
        buf
    });

    let boot_timeout = opts.boot_timeout.unwrap_or(match accel {
        Accel::Kvm => Duration::from_secs(20),
        Accel::Tcg => Duration::from_secs(180),
    });
    let deadline = start + opts.timeout;
    let marker = format!("@@KPBENCH-LAB:{nonce}:");
    let mut st = Watch::default();
    let mut failure: Option<(bool, String)> = None; // (is timeout, reason)
    loop {
        if interrupt.is_some_and(|f| f.load(Ordering::SeqCst)) || dataplane::exec::cancelled() {
            drop(vm);
            return Err(LabError::Interrupted);
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Msg::Line(raw)) => st.line(&clean_line(&raw), &marker, start, accel, progress),
            Ok(Msg::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if st.alive.is_none() && now > start + boot_timeout {
            failure = Some((
                true,
                format!(
                    "no sign of life from the guest's /init within {}s under {}",
                    boot_timeout.as_secs(),
                    accel.name()
                ),
            ));
            break;
        }
        if now > deadline {
            failure = Some((
                true,
                format!("the run did not finish within {}s", opts.timeout.as_secs()),
            ));
            break;
        }
        if st.ended.is_some_and(|t| now > t + SHUTDOWN_GRACE) {
            break; // The command finished; the guest just hangs on the way down.
        }
    }
    // Reap qemu (waiting a little for a guest that is powering off), then collect.
    let exit_wait = Instant::now() + Duration::from_secs(if failure.is_some() { 0 } else { 10 });
    let status = loop {
        match vm.child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < exit_wait => std::thread::sleep(Duration::from_millis(50)),
            _ => break None,
        }
    };
    let vm_time = start.elapsed();
    drop(vm);
    let _ = reader.join();
    while let Ok(Msg::Line(raw)) = rx.try_recv() {
        st.line(&clean_line(&raw), &marker, start, accel, progress);
    }
    let stderr_text = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if !stderr_text.trim().is_empty() {
        if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(&console_log) {
            let _ = write!(log, "=== qemu stderr ===\n{stderr_text}");
        }
    }

    if let Some(code) = st.exit_code {
        let files = collect_files(&disk, &st.tar_b64)?;
        return Ok(Attempt::Done(Box::new(LabOutcome {
            exit_code: code,
            accel,
            kernel_release: kernel.release.clone(),
            kernel_source: kernel.source.clone(),
            console_log,
            files,
            boot_time: st.alive.unwrap_or_default(),
            vm_time,
        })));
    }
    let stderr_tail = tail(&stderr_text, 5);
    let console_tail = tail(&st.recent.join("\n"), 8);
    let reason = if let Some((_, reason)) = &failure {
        reason.clone()
    } else if let Some(p) = &st.panic {
        format!("the guest kernel panicked: {p}; last console lines:\n{console_tail}")
    } else if st.alive.is_none() {
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown status".into());
        format!(
            "qemu exited ({status}) before the guest's /init started: {}",
            if stderr_tail.is_empty() {
                console_tail.clone()
            } else {
                stderr_tail.clone()
            }
        )
    } else {
        format!("the guest stopped before reporting the command's exit code; last console lines:\n{console_tail}")
    };
    let err = match failure {
        Some((true, _)) => LabError::Timeout {
            reason,
            console_log,
        },
        _ => LabError::BootFailed {
            reason,
            console_log,
        },
    };
    if st.alive.is_none() {
        Ok(Attempt::NoLife(err))
    } else {
        Err(err)
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn read_lines(mut stdout: impl Read, mut log: std::fs::File, tx: mpsc::Sender<Msg>) {
    let mut buf = [0u8; 8192];
    let mut line = Vec::new();
    loop {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = log.write_all(&buf[..n]);
                for &b in &buf[..n] {
                    if b == b'\n' {
                        let _ = tx.send(Msg::Line(std::mem::take(&mut line)));
                    } else {
                        line.push(b);
                    }
                }
            }
        }
    }
    if !line.is_empty() {
        let _ = tx.send(Msg::Line(line));
    }
    let _ = tx.send(Msg::Eof);
}

/// What the console has told so far.
#[derive(Default)]
struct Watch {
    alive: Option<Duration>,
    began: bool,
    exit_code: Option<i32>,
    ended: Option<Instant>,
    in_tar: bool,
    tar_b64: String,
    panic: Option<String>,
    recent: Vec<String>,
}

impl Watch {
    fn line(
        &mut self,
        line: &str,
        marker: &str,
        start: Instant,
        accel: Accel,
        progress: &mut dyn FnMut(LabEvent),
    ) {
        if let Some(at) = line.find(marker) {
            let before = &line[..at];
            let what = line[at + marker.len()..].trim_end_matches('@');
            if self.began && self.exit_code.is_none() && !before.is_empty() {
                progress(LabEvent::GuestOutput(before.to_string()));
            }
            if what == "INIT" {
                let after = start.elapsed();
                self.alive = Some(after);
                progress(LabEvent::GuestAlive { accel, after });
            } else if what == "BEGIN" {
                self.began = true;
            } else if let Some(rc) = what.strip_prefix("END rc=") {
                let code = rc.trim().parse().unwrap_or(-1);
                self.exit_code = Some(code);
                self.ended = Some(Instant::now());
                progress(LabEvent::GuestExited {
                    code,
                    after: start.elapsed(),
                });
            } else if what == "TAR-BEGIN" {
                self.in_tar = true;
            } else if what == "TAR-END" {
                self.in_tar = false;
            }
            return;
        }
        if self.in_tar {
            self.tar_b64.push_str(line.trim());
            return;
        }
        if line.contains("Kernel panic - not syncing") && self.panic.is_none() {
            self.panic = Some(line.trim().to_string());
        }
        self.recent.push(line.to_string());
        if self.recent.len() > 50 {
            self.recent.remove(0);
        }
        if self.began && self.exit_code.is_none() {
            progress(LabEvent::GuestOutput(line.to_string()));
        } else {
            progress(LabEvent::Console(line.to_string()));
        }
    }
}

/// Reads the guest's tar (from the disk, or the console fallback) and returns the
/// files under `out/`.
fn collect_files(disk: &Path, b64: &str) -> Result<BTreeMap<PathBuf, Vec<u8>>, LabError> {
    let entries = if !b64.is_empty() {
        let bytes = data_encoding::BASE64.decode(b64.as_bytes()).map_err(|e| {
            LabError::io(disk, std::io::Error::other(format!("console results: {e}")))
        })?;
        read_tar(&bytes)
    } else {
        read_disk_tar(disk)?
    }
    .map_err(|e| LabError::io(disk, std::io::Error::other(e)))?;
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            let rel = e.path.strip_prefix("out").ok()?.to_path_buf();
            Some((rel, e.data))
        })
        .filter(|(rel, _)| !rel.as_os_str().is_empty())
        .collect())
}

/// Reads as much of the sparse disk as the tar needs (doubling until it parses).
fn read_disk_tar(disk: &Path) -> Result<Result<Vec<super::TarEntry>, String>, LabError> {
    let mut f = std::fs::File::open(disk).map_err(|e| LabError::io(disk, e))?;
    let total = f.metadata().map_err(|e| LabError::io(disk, e))?.len() as usize;
    let mut buf = Vec::new();
    let mut want = 1usize << 20;
    loop {
        let want_now = want.min(total);
        let mut chunk = vec![0u8; want_now - buf.len()];
        f.read_exact(&mut chunk)
            .map_err(|e| LabError::io(disk, e))?;
        buf.extend_from_slice(&chunk);
        match read_tar(&buf) {
            Err(e) if e.contains("past the end") && want_now < total => want *= 2,
            other => return Ok(other),
        }
    }
}

/// Whether `pid` is a lab qemu (its command line names `kpbench-lab-`).
fn is_lab_qemu(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    cmdline.contains("qemu-system") && cmdline.contains("-name\0kpbench-lab-")
}

fn alive(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

fn kill_qemu(pid: i32, why: &str, done: &mut Vec<String>) {
    // SAFETY: plain kill(2) on a pid just checked to be a lab qemu.
    if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
        done.push(format!("killed lab qemu (pid {pid}): {why}"));
    }
}

/// Kills lab qemu processes whose owning kpbench is dead: those recorded under
/// [`PID_DIR`] with a dead owner, and any lab qemu orphaned to init. Removes stale pid
/// files. Returns one line per thing done, for `kpbench clean` to print.
pub fn clean_leftovers() -> Vec<String> {
    let mut done = Vec::new();
    if let Ok(rd) = std::fs::read_dir(PID_DIR) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("qemu-") && name.ends_with(".pid")) {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let mut lines = text.lines();
            let pid: Option<i32> = lines.next().and_then(|l| l.trim().parse().ok());
            let owner: Option<i32> = lines.next().and_then(|l| l.trim().parse().ok());
            if owner.is_some_and(alive) {
                continue; // A live kpbench still owns it.
            }
            if let Some(pid) = pid.filter(|&p| is_lab_qemu(p)) {
                let owner = owner.map(|o| o.to_string()).unwrap_or_else(|| "?".into());
                kill_qemu(
                    pid,
                    &format!("its kpbench (pid {owner}) is gone"),
                    &mut done,
                );
            }
            if std::fs::remove_file(e.path()).is_ok() {
                done.push(format!("removed {}", e.path().display()));
            }
        }
    }
    // Orphans without a pid file (e.g. /run was cleared): reparented to init.
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if !is_lab_qemu(pid) {
                continue;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Field 4 (ppid) follows the parenthesised command name.
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(1) {
                kill_qemu(pid, "orphaned (no kpbench parent)", &mut done);
            }
        }
    }
    done
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
    fn console_lines_are_cleaned() {
        assert_eq!(clean_line(b"\x1bc\x1b[?7l\x1b[2JSeaBIOS\r"), "SeaBIOS");
        assert_eq!(
            clean_line(b"6.1.0-56-cloud-amd64\r"),
            "6.1.0-56-cloud-amd64"
        );
    }

    #[test]
    fn watch_follows_the_protocol() {
        let mut events = Vec::new();
        let mut w = Watch::default();
        let m = "@@KPBENCH-LAB:n1:";
        let start = Instant::now();
        for l in [
            "boot noise",
            "@@KPBENCH-LAB:n1:INIT@@",
            "kpbench-lab: modprobe x failed",
            "@@KPBENCH-LAB:n1:BEGIN@@",
            "hello",
            "no newline@@KPBENCH-LAB:n1:END rc=3@@",
            "@@KPBENCH-LAB:n1:TAR-BEGIN@@",
            "AAAA",
            "@@KPBENCH-LAB:n1:TAR-END@@",
            "reboot: Power down",
        ] {
            w.line(l, m, start, Accel::Tcg, &mut |e| events.push(e));
        }
        assert_eq!(w.exit_code, Some(3));
        assert!(w.alive.is_some());
        assert_eq!(w.tar_b64, "AAAA");
        let out: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                LabEvent::GuestOutput(l) => Some(l.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(out, s(&["hello", "no newline"]));
    }
}
