//! The kernel lab: boots Debian's 6.1 cloud kernel in qemu (KVM, else TCG), checks a
//! command's output and exit code, a scenario's results coming back, that broken
//! kernels fail in bounded time, and that no qemu outlives kpbench (Ctrl-C, SIGKILL).
//!
//! Lab tests need root (the cache under /var/cache, namespaces in the guest run as
//! root anyway), qemu-system-x86_64 and busybox-static. Without feature `lab-tests` they
//! are reported as ignored; with it, a missing prerequisite fails them. The first run
//! fetches the kernel with `apt-get download` (`scripts/fetch-kernels.sh` does it
//! ahead). Each prints how long it took.

mod tier;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::lab::modules::{ModuleIndex, WANTED_MODULES};
use harness::lab::{GuestCommand, GuestRun, KernelSpec, LabOptions};

const KPBENCH: &str = env!("CARGO_BIN_EXE_kpbench");

/// One VM at a time: under TCG two guests on two host CPUs slow each other to a crawl.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn took(name: &str, start: Instant) {
    eprintln!("{name}: took {:.1}s", start.elapsed().as_secs_f64());
}

/// The run directory a `kpbench lab` invocation reported on stderr.
fn run_dir_of(stderr: &str) -> Option<String> {
    let at = stderr.rfind("console log in ")? + "console log in ".len();
    let rest = &stderr[at..];
    Some(rest[..rest.find(')')?].to_string())
}

/// Pids of processes whose command line mentions `needle` (a run dir: qemu's
/// -initrd and -drive live there).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

fn assert_no_qemu_left(run_dir: &str) {
    // The kernel delivers PDEATHSIG and reaps asynchronously: allow a moment.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_mentioning(run_dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "qemu left behind for {run_dir}: pids {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kpbench_lab(args: &[&str]) -> (i32, String, String, Duration) {
    let start = Instant::now();
    let out = Command::new(KPBENCH)
        .arg("lab")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running kpbench");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    )
}

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn debian_6_1_boots_and_loads_ipvs() {
    tier::require_lab();
    let _one = serial();
    let start = Instant::now();
    let (code, stdout, stderr, _) = kpbench_lab(&[
        "--kernel",
        "debian:6.1",
        "--",
        "sh",
        "-c",
        "cat /proc/sys/kernel/osrelease; modprobe ip_vs && cat /proc/net/ip_vs",
    ]);
    took("debian_6_1_boots_and_loads_ipvs", start);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let mut lines = stdout.lines();
    let release = lines.next().unwrap_or_default();
    assert!(
        release.starts_with("6.1.") && release.ends_with("-cloud-amd64"),
        "osrelease {release:?}; stdout:\n{stdout}"
    );
    assert!(
        stdout.contains("IP Virtual Server version"),
        "no /proc/net/ip_vs header; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("booting under lab-tcg") || stderr.contains("booting under lab-kvm"),
        "{stderr}"
    );
    assert_no_qemu_left(&run_dir_of(&stderr).expect("run dir on stderr"));
}

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn exit_code_and_stderr_come_back() {
    tier::require_lab();
    let _one = serial();
    let start = Instant::now();
    let (code, stdout, stderr, _) = kpbench_lab(&[
        "--",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; echo $KPBENCH_ENV_KIND $KPBENCH_KERNEL_SOURCE; exit 42",
    ]);
    took("exit_code_and_stderr_come_back", start);
    assert_eq!(code, 42, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("to-stdout") && stdout.contains("to-stderr"));
    assert!(
        stdout.contains("lab-tcg debian:linux-image-6.1.")
            || stdout.contains("lab-kvm debian:linux-image-6.1."),
        "{stdout}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn real_tools_come_before_busybox_applets() {
    tier::require_lab();
    let _one = serial();
    let start = Instant::now();
    // `sh` is the guest's real shell and `ip` iproute2's, not busybox's applets: the
    // applet `ip` knows no `-V` and no `netns`.
    let (code, stdout, stderr, _) = kpbench_lab(&[
        "--",
        "sh",
        "-c",
        "ip -V; ip netns add t && ip netns exec t ipvsadm -S -n && echo NETNS-EXEC-OK",
    ]);
    took("real_tools_come_before_busybox_applets", start);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("iproute2"),
        "not iproute2's ip; stdout:\n{stdout}"
    );
    assert!(!stdout.contains("BusyBox"), "stdout:\n{stdout}");
    assert!(stdout.contains("NETNS-EXEC-OK"), "stdout:\n{stdout}");
}

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn a_scenario_runs_and_its_results_come_back() {
    tier::require_lab();
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("lab-test.toml");
    std::fs::write(
        &scenario,
        "name = \"lab-test\"\nmodes = [\"ipvs\"]\nservices = [5]\nendpoints_per_service = 2\n\
         repeats = 1\n[datapath]\nenabled = false\n",
    )
    .unwrap();
    let opts = LabOptions {
        timeout: Duration::from_secs(900),
        kpbench_binary: Some(PathBuf::from(KPBENCH)),
        ..LabOptions::default()
    };
    let command = GuestCommand::Run(GuestRun {
        scenario: Some(scenario.clone()),
        flags: vec!["--run-id".into(), "labtest".into()],
        machine: harness::run::environment::machine(),
    });
    let start = Instant::now();
    let mut events = Vec::new();
    let outcome = harness::lab::run(
        &KernelSpec::parse("debian:6.1").unwrap(),
        &command,
        &opts,
        None,
        &mut |e| events.push(format!("{e:?}")),
    )
    .unwrap_or_else(|e| panic!("lab failed: {e}\nevents:\n{}", events.join("\n")));
    took("a_scenario_runs_and_its_results_come_back", start);
    eprintln!(
        "  boot {:.1}s, vm {:.1}s under {}",
        outcome.boot_time.as_secs_f64(),
        outcome.vm_time.as_secs_f64(),
        outcome.accel.env_kind()
    );
    assert_eq!(outcome.exit_code, 0, "events:\n{}", events.join("\n"));
    let json: serde_json::Value =
        serde_json::from_slice(outcome.results_json().expect("results.json came back")).unwrap();
    assert_eq!(json["run"]["id"], "labtest");
    let env = &json["environments"][0];
    assert_eq!(env["kind"], outcome.accel.env_kind());
    assert!(env["kernel_release"].as_str().unwrap().starts_with("6.1."));
    assert!(env["kernel_source"]
        .as_str()
        .unwrap()
        .starts_with("debian:linux-image-6.1."));
    // The guest records the machine it ran on (the host's) and its own CPU state.
    assert_eq!(
        env["machine"].as_str(),
        harness::run::environment::machine().as_deref(),
        "{env}"
    );
    assert!(env["cpu"]["vulnerabilities"].is_object(), "{env}");
    assert!(env["cpu"]["cmdline_mitigations"].is_array(), "{env}");
    eprintln!("  guest cpu: {}", env["cpu"]);
    let case = &json["cases"][0];
    assert_eq!(case["mode"], "ipvs", "{case}");
    assert_eq!(case["status"], "ok", "{case}");
    let written = outcome.write_files(dir.path()).unwrap();
    assert!(
        written.iter().any(|p| p.ends_with("results.csv")),
        "{written:?}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn broken_kernels_fail_in_bounded_time_and_leave_no_qemu() {
    tier::require_lab();
    let dir = tempfile::tempdir().unwrap();
    // Not a kernel at all: refused before qemu starts.
    let garbage = dir.path().join("vmlinuz");
    std::fs::write(&garbage, vec![0x5au8; 4 << 20]).unwrap();
    let start = Instant::now();
    let (code, _, stderr, t) = kpbench_lab(&["--kernel", garbage.to_str().unwrap(), "--", "true"]);
    took("garbage vmlinuz", start);
    assert_eq!(code, harness::exitcode::LAB_INFRA, "{stderr}");
    assert!(
        stderr.contains("not a bootable x86 kernel image"),
        "{stderr}"
    );
    assert!(t < Duration::from_secs(10), "took {t:?}");

    // A real bzImage header with its compressed kernel smashed: qemu starts, the
    // decompressor halts, and the no-sign-of-life timeout must end it.
    let _one = serial();
    let kernel = harness::lab::kernel::prepare(
        &KernelSpec::parse("debian:6.1").unwrap(),
        &harness::lab::cache_dir(),
        &mut |_| {},
    )
    .expect("debian:6.1 kernel (run scripts/fetch-kernels.sh)");
    let mut image = std::fs::read(&kernel.vmlinuz).unwrap();
    let n = image.len();
    image[n * 2 / 5..n * 3 / 5].fill(0xa5);
    let broken = dir.path().join("bzImage-broken");
    std::fs::write(&broken, &image).unwrap();
    let start = Instant::now();
    let (code, _, stderr, t) = kpbench_lab(&[
        "--kernel",
        broken.to_str().unwrap(),
        "--boot-timeout",
        "20",
        "--timeout",
        "120",
        "--",
        "true",
    ]);
    took("corrupted bzImage", start);
    assert_eq!(code, harness::exitcode::LAB_INFRA, "{stderr}");
    assert!(stderr.contains("lab VM"), "{stderr}");
    assert!(t < Duration::from_secs(120), "took {t:?}");
    assert_no_qemu_left(&run_dir_of(&stderr).expect("run dir on stderr"));
}

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn overall_timeout_kills_the_vm() {
    tier::require_lab();
    let _one = serial();
    let start = Instant::now();
    let (code, _, stderr, t) = kpbench_lab(&["--timeout", "45", "--", "sleep", "600"]);
    took("overall_timeout_kills_the_vm", start);
    assert_eq!(code, harness::exitcode::LAB_INFRA, "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    // The limit counts from qemu's start; fetching and an initramfs build come first.
    assert!(t < Duration::from_secs(110), "took {t:?}");
    assert_no_qemu_left(&run_dir_of(&stderr).expect("run dir on stderr"));
}

/// Starts `kpbench lab -- sh -c 'echo ready; sleep 600'` and waits for "ready".
fn sleeping_guest() -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(KPBENCH)
        .args(["lab", "--", "sh", "-c", "echo ready; sleep 600"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !line.contains("ready") {
        line.clear();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
            let _ = child.kill();
            panic!("guest never said ready: {}", err.join().unwrap());
        }
    }
    (child, err)
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<i32> {
    let until = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s.code().unwrap_or(-1));
        }
        if Instant::now() > until {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[cfg_attr(
    not(feature = "lab-tests"),
    ignore = "boots the kernel lab (root, qemu): scripts/test.sh runs it as root"
)]
fn ctrl_c_and_sigkill_leave_no_qemu() {
    tier::require_lab();
    let _one = serial();
    let start = Instant::now();
    let (mut child, err) = sleeping_guest();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let code = wait_bounded(&mut child, Duration::from_secs(10));
    let stderr = err.join().unwrap();
    took("ctrl-c", start);
    assert_eq!(code, Some(harness::exitcode::INTERRUPTED), "{stderr}");
    let run_dir = run_dir_of(&stderr).expect("run dir on stderr");
    assert_no_qemu_left(&run_dir);

    // kpbench killed outright: qemu dies with it (PR_SET_PDEATHSIG), and `kpbench
    // clean`'s lab part removes the stale pid file.
    let start = Instant::now();
    let (mut child, err) = sleeping_guest();
    child.kill().unwrap();
    let _ = child.wait();
    let stderr = err.join().unwrap();
    let run_dir = run_dir_of(&stderr).expect("run dir on stderr");
    assert_no_qemu_left(&run_dir);
    let cleaned = harness::lab::clean_leftovers();
    took("sigkill", start);
    assert!(
        !cleaned.iter().any(|c| c.starts_with("killed")),
        "qemu survived its kpbench: {cleaned:?}"
    );
}

#[test]
fn spec_parsing() {
    for (s, want) in [
        ("debian:6.1", KernelSpec::DebianSeries("6.1".into())),
        ("debian:6.12", KernelSpec::DebianSeries("6.12".into())),
        (
            "debian:linux-image-6.1.0-56-cloud-amd64",
            KernelSpec::DebianPackage("linux-image-6.1.0-56-cloud-amd64".into()),
        ),
        (
            "k/linux-image.deb",
            KernelSpec::Deb("k/linux-image.deb".into()),
        ),
        (
            "/b/bzImage:/b/mods",
            KernelSpec::Image {
                vmlinuz: "/b/bzImage".into(),
                modules: Some("/b/mods".into()),
            },
        ),
    ] {
        assert_eq!(KernelSpec::parse(s).unwrap(), want, "{s}");
    }
    for bad in [
        "",
        "debian:",
        "debian:6",
        "debian:latest",
        "http://x/bzImage",
    ] {
        let e = KernelSpec::parse(bad).unwrap_err();
        assert_eq!(e.exit_code(), harness::exitcode::USAGE, "{bad:?}: {e}");
    }
}

#[test]
fn modules_dep_closure() {
    // The shape of Debian 6.1's modules.dep for IPVS with the rr scheduler.
    let dep = "\
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko:
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:
kernel/lib/libcrc32c.ko:
kernel/drivers/net/dummy.ko:
";
    let r = ModuleIndex::parse(dep, "", "").resolve(&["ip_vs_rr", "dummy", "ip_vs", "xt_nope"]);
    let names: Vec<String> = r
        .paths
        .iter()
        .map(|p| harness::lab::modules::module_name(p))
        .collect();
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert_eq!(names.len(), 7, "{names:?}");
    assert!(pos("nf_conntrack") < pos("ip_vs") && pos("ip_vs") < pos("ip_vs_rr"));
    assert!(pos("libcrc32c") < pos("nf_conntrack"));
    assert_eq!(r.load, vec!["ip_vs_rr", "dummy", "ip_vs"]);
    assert_eq!(r.absent, vec!["xt_nope"]);
    // What the dataplanes need is asked for.
    for m in [
        "ip_vs",
        "ip_vs_rr",
        "nft_numgen",
        "xt_statistic",
        "ip_set_hash_ipport",
        "dummy",
        "veth",
    ] {
        assert!(WANTED_MODULES.contains(&m), "{m}");
    }
}
