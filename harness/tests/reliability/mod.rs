//! Helpers of the reliability tests: a fake dataplane tool put first on PATH that
//! misbehaves on its Nth call, and a `kpbench run` child whose guard kills it and
//! removes its namespaces, even when the test panics.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::floor::netns::Netns;

/// A unique run id for a test.
pub fn run_id(tag: &str) -> String {
    format!("rel{tag}-{}", std::process::id())
}

/// The namespaces of run `id` that exist now.
pub fn namespaces(id: &str) -> Vec<String> {
    Netns::list(&format!("kpb-{id}-"))
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// What the fake tool does on its Nth call.
pub enum Misbehave {
    /// Prints `stderr` and exits 1.
    Fail(&'static str),
    /// Creates the marker file, then sleeps (until killed).
    Hang,
}

/// A fake `tool` first on PATH: it counts its calls that have a marker argument and
/// misbehaves on call `nth` of them; every other call runs the real tool.
pub struct FakeTool {
    dir: tempfile::TempDir,
    tool: String,
}

impl FakeTool {
    /// Counts the sync calls (those with `--noflush`, as iptables-restore gets), not
    /// version probes or reads.
    pub fn new(tool: &str, nth: u32, what: Misbehave) -> FakeTool {
        FakeTool::counting(tool, "--noflush", nth, what)
    }

    /// Counts the calls that have the argument `marker` (`-f` for `nft -f -`, `add`
    /// for `ipset add`).
    pub fn counting(tool: &str, marker: &str, nth: u32, what: Misbehave) -> FakeTool {
        let real = dataplane::floor::exec::which(tool).expect("the real tool is installed");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let action = match what {
            Misbehave::Fail(msg) => format!("echo '{msg}' >&2; exit 1"),
            Misbehave::Hang => format!("touch {d}/hanging; exec sleep 60"),
        };
        let script = format!(
            "#!/bin/sh\n\
             case \" $* \" in *\" {marker} \"*)\n\
             n=$(cat {d}/calls 2>/dev/null || echo 0); n=$((n+1)); echo $n > {d}/calls\n\
             if [ $n -eq {nth} ]; then {action}; fi;;\n\
             esac\n\
             exec {} \"$@\"\n",
            real.display()
        );
        let path = dir.path().join(tool);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeTool {
            dir,
            tool: tool.to_string(),
        }
    }

    /// PATH with the fake first.
    pub fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The fake itself (for an executor that runs it in place of the real tool).
    pub fn program(&self) -> PathBuf {
        self.dir.path().join(&self.tool)
    }

    /// How many marked calls it has seen.
    pub fn calls(&self) -> u32 {
        let text = std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
        text.trim().parse().unwrap_or(0)
    }

    /// Whether the fake is hanging now (its Nth call has started).
    pub fn hanging(&self) -> bool {
        self.dir.path().join("hanging").exists()
    }
}

/// Writes a scenario file of the iptables-legacy mode without the data path.
pub fn legacy_scenario(dir: &Path, services: &str, extra: &str) -> PathBuf {
    scenario_of(dir, "iptables-legacy", services, extra)
}

/// Writes a scenario file of `modes` (TOML list items: `"nftables"`) without the data
/// path, 2 endpoints per service unless `extra` sets them.
pub fn scenario_of(dir: &Path, modes: &str, services: &str, extra: &str) -> PathBuf {
    let p = dir.join("scenario.toml");
    let modes: Vec<String> = modes
        .split(',')
        .map(|m| format!("\"{}\"", m.trim()))
        .collect();
    let endpoints = match extra.contains("endpoints_per_service") {
        true => "",
        false => "endpoints_per_service = 2\n",
    };
    std::fs::write(
        &p,
        format!(
            "name = \"reliability\"\nmodes = [{}]\nservices = {services}\n\
             {endpoints}repeats = 1\nfull_sync_repeats = 1\n{extra}\n[datapath]\nenabled = false\n",
            modes.join(", ")
        ),
    )
    .unwrap();
    p
}

/// A `kpbench run` child in a process group of its own. Dropping it kills the group
/// (the child and any tool it started) and removes the run's namespaces.
pub struct Run {
    pub id: String,
    pub out: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    started: Instant,
}

impl Run {
    /// Starts `kpbench run ARGS --run-id ID --out OUT` with PATH = `path` if given.
    pub fn start(id: &str, out: &Path, args: &[&str], path: Option<&str>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kpbench"));
        cmd.arg("run")
            .args(args)
            .args(["--run-id", id, "--out"])
            .arg(out);
        // Output goes to a file, so a chatty run can never block on a full pipe.
        let log_path = out.with_extension("log");
        let log = std::fs::File::create(&log_path).unwrap();
        cmd.stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        // Steps of a case go to the log at info level, for tests that wait for one.
        cmd.env("KPBENCH_LOG", "warn,harness=info");
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        Run {
            id: id.to_string(),
            out: out.to_path_buf(),
            log: log_path,
            child: Some(cmd.spawn().expect("kpbench starts")),
            started: Instant::now(),
        }
    }

    /// `kpbench run SCENARIO` into `dir/out`, with `fake` first on PATH if given.
    pub fn scenario(tag: &str, dir: &Path, scenario: &Path, fake: Option<&FakeTool>) -> Run {
        let path = fake.map(FakeTool::path_env);
        let args = [scenario.to_str().expect("utf-8 path")];
        Run::start(&run_id(tag), &dir.join("out"), &args, path.as_deref())
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits up to `limit` for the exit; returns (exit code, stdout + stderr, how long
    /// it ran). Panics (after killing it) if it is still running.
    pub fn wait(&mut self, limit: Duration) -> (Option<i32>, String, Duration) {
        let end = Instant::now() + limit;
        let child = self.child.as_mut().expect("running");
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > end {
                self.kill_group();
                panic!("kpbench run {} still running after {limit:?}", self.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = self.started.elapsed();
        let status = self.child.take().unwrap().wait().unwrap();
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        (status.code(), text, took)
    }

    /// The run's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the child has exited (without reaping it for [`Run::wait`]).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    fn kill_group(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: the group is the child's own (process_group(0)).
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// Kills the whole group with SIGKILL, as the OOM killer or a CI timeout would.
    pub fn kill9(&mut self) {
        self.kill_group();
    }

    /// results.json as JSON; panics with the text if it is not valid.
    pub fn results(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.out.join("results.json")).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid results.json: {e}\n{text}"))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.kill_group();
        for n in namespaces(&self.id) {
            let _ = Netns::named(&n).delete();
        }
    }
}

/// Asserts that run `id` left no namespace and no registration.
pub fn nothing_left(id: &str) {
    assert!(namespaces(id).is_empty(), "left: {:?}", namespaces(id));
    let cgroups = client_cgroups(id);
    assert!(cgroups.is_empty(), "client cgroups left: {cgroups:?}");
    let reg = Path::new(harness::sandbox::registry::RUNS_DIR).join(id);
    assert!(!reg.exists(), "{} left", reg.display());
    let pins: Vec<String> = dataplane::ebpf::pins::pinned()
        .into_iter()
        .filter(|p| p.contains(id))
        .collect();
    assert!(pins.is_empty(), "BPF pins left: {pins:?}");
}

/// The socket LB's client cgroups of run `id` (`<cgroup2>/kpbench/kpb-<id>-...`).
pub fn client_cgroups(id: &str) -> Vec<String> {
    dataplane::ebpf::cgroup::leftovers()
        .into_iter()
        .filter(|n| n.contains(id))
        .collect()
}

/// `kpbench clean`; returns (exit code, stdout + stderr).
pub fn clean() -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .arg("clean")
        .output()
        .expect("kpbench clean starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// After a kill -9: run `id` left its three namespaces, and `kpbench clean` exits 0
/// naming each as removed.
pub fn clean_removes_the_three_namespaces_left(id: &str) {
    let left = namespaces(id);
    assert_eq!(left.len(), 3, "after kill -9: {left:?}");
    let (code, text) = clean();
    assert_eq!(code, Some(0), "{text}");
    for n in &left {
        assert!(
            text.contains(&format!("removed network namespace {n}")),
            "{text}"
        );
    }
}

/// The cases of a results.json as (status, services, reason).
pub fn cases(results: &serde_json::Value) -> Vec<(String, u64, String)> {
    results["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["services"].as_u64().unwrap_or(0),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}
