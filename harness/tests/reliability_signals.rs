//! Crashes, signals and concurrency: what `kpbench run` leaves when it is killed, how
//! it stops on SIGINT/SIGTERM, that `kpbench clean` removes leftovers but never a live
//! run's namespaces, and that two runs at once do not interfere. Needs root: without
//! feature `root-tests` the tests are reported as ignored. A fake `iptables-legacy-restore` that hangs holds a run mid-case.

mod reliability;
mod tier;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reliability::*;

/// `kpbench clean` removes every dead run's namespaces, so these tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a run of [10, 20, 30] services whose `hang_at`th restore hangs, and waits
/// until it hangs.
fn hanging_run(tag: &str, hang_at: u32, dir: &std::path::Path) -> (Run, FakeTool) {
    let fake = FakeTool::new("iptables-legacy-restore", hang_at, Misbehave::Hang);
    let scenario = legacy_scenario(dir, "[10, 20, 30]", "");
    let run = Run::scenario(tag, dir, &scenario, Some(&fake));
    assert!(
        wait_for(Duration::from_secs(30), || fake.hanging()),
        "the fake restore was never called {hang_at} times"
    );
    (run, fake)
}

/// Signals a hanging run and checks the promises of an interrupted run.
fn interrupt(run: &mut Run, sig: i32, finished_ok: u64) {
    let sent = Instant::now();
    run.signal(sig);
    let (code, text, _) = run.wait(Duration::from_secs(20));
    let stop = sent.elapsed();
    assert_eq!(code, Some(130), "{text}");
    assert!(stop < Duration::from_secs(5), "took {stop:?} to stop");
    let r = run.results();
    let incomplete = r["run"]["incomplete"].as_str().unwrap_or("");
    assert!(
        incomplete.contains("interrupted"),
        "run.incomplete: {incomplete:?}"
    );
    let cases = cases(&r);
    let ok: Vec<_> = cases.iter().filter(|c| c.0 == "ok").collect();
    assert_eq!(ok.len() as u64, finished_ok, "{cases:?}");
    assert!(ok.iter().all(|c| c.1 == 10), "{cases:?}");
    assert!(
        cases.iter().all(|c| c.1 != 30),
        "a case after the signal ran: {cases:?}"
    );
    nothing_left(&run.id);
    eprintln!("signal {sig}: stopped in {stop:?}");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn sigint_keeps_finished_cases_and_leaves_nothing() {
    tier::require_root();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    // One full sync and three incremental syncs per case: call 5 is case 2's full sync.
    let (mut run, _fake) = hanging_run("int", 5, dir.path());
    interrupt(&mut run, libc::SIGINT, 1);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn sigint_in_the_data_path_stops_within_one_load_phase() {
    tier::require_root();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("dp.toml");
    // Four 4 s phases and a 2 s max-rate phase: about 18 s if a signal waited for them.
    std::fs::write(
        &scenario,
        "modes = [\"iptables-legacy\"]\nservices = [10, 20]\nendpoints_per_service = 2\n\
         repeats = 1\n[datapath]\nrate_per_s = 50\nduration_s = 4\nmax_rate_duration_s = 2\n\
         connections = 4\nrequest_timeout_ms = 1000\n",
    )
    .unwrap();
    let mut run = Run::scenario("dp", dir.path(), &scenario, None);
    assert!(
        wait_for(Duration::from_secs(60), || run
            .log()
            .contains("data path: first")),
        "the data path never started:\n{}",
        run.log()
    );
    let sent = Instant::now();
    run.signal(libc::SIGINT);
    let (code, text, _) = run.wait(Duration::from_secs(30));
    let stop = sent.elapsed();
    assert_eq!(code, Some(130), "{text}");
    // One phase (4 s) plus one request timeout (1 s), with slack.
    assert!(stop < Duration::from_secs(7), "took {stop:?} to stop");
    let r = run.results();
    assert!(r["run"]["incomplete"].is_string(), "{r}");
    let c = cases(&r);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].2.contains("interrupted"), "{c:?}");
    nothing_left(&run.id);
    eprintln!("signal in the data path: stopped in {stop:?}");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn clean_keeps_a_live_run_and_sigterm_stops_it() {
    tier::require_root();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut run, _fake) = hanging_run("term", 1, dir.path());
    let live = namespaces(&run.id);
    assert_eq!(live.len(), 3, "{live:?}");
    let (code, text) = clean();
    assert_eq!(code, Some(0), "{text}");
    for n in &live {
        assert!(text.contains(&format!("kept {n}")), "{text}");
    }
    assert_eq!(
        namespaces(&run.id),
        live,
        "clean removed a live run's namespace"
    );
    interrupt(&mut run, libc::SIGTERM, 0);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn kill_9_leaves_namespaces_that_clean_removes() {
    tier::require_root();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut run, _fake) = hanging_run("kill", 1, dir.path());
    run.kill9();
    clean_removes_the_three_namespaces_left(&run.id);
    // The dead run's registration goes too.
    nothing_left(&run.id);
    // And the machine is fit for the next run.
    let out = dir.path().join("next");
    let mut next = Run::start(
        &run_id("killnext"),
        &out,
        &[
            "--modes",
            "iptables-legacy",
            "--services",
            "20",
            "--endpoints",
            "2",
            "--no-datapath",
        ],
        None,
    );
    let (code, text, _) = next.wait(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cases(&next.results())[0].0, "ok", "{text}");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn two_runs_at_once_both_succeed_and_results_are_never_partial() {
    tier::require_root();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--modes",
        "iptables-legacy",
        "--services",
        "20,40",
        "--endpoints",
        "2",
        "--no-datapath",
    ];
    let mut runs: Vec<Run> = ["a", "b"]
        .iter()
        .map(|t| {
            Run::start(
                &run_id(&format!("conc{t}")),
                &dir.path().join(t),
                &args,
                None,
            )
        })
        .collect();
    // Meanwhile: every results.json a reader can open parses (written by rename), and
    // both runs' namespaces are seen.
    let (mut reads, mut seen) = (0, [false, false]);
    let end = Instant::now() + Duration::from_secs(90);
    while runs.iter_mut().any(|r| !r.exited()) && Instant::now() < end {
        for (i, r) in runs.iter().enumerate() {
            seen[i] |= !namespaces(&r.id).is_empty();
            if let Ok(text) = std::fs::read_to_string(r.out.join("results.json")) {
                reads += 1;
                if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                    panic!("a reader saw a partial results.json ({e}):\n{text}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for r in &mut runs {
        let (code, text, took) = r.wait(Duration::from_secs(5));
        assert_eq!(code, Some(0), "{text}");
        let c = cases(&r.results());
        assert!(c.iter().all(|c| c.0 == "ok"), "{c:?}");
        nothing_left(&r.id);
        eprintln!("run {} took {took:?}", r.id);
    }
    assert_eq!(seen, [true, true], "namespaces of both runs were seen");
    eprintln!("{reads} reads of results.json, all valid");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn clean_keeps_a_live_processs_topology() {
    tier::require_root();
    let _g = serial();
    let id = run_id("topo");
    let topo = harness::sandbox::topology::Topology::create(&id).expect("topology");
    let live = namespaces(&id);
    assert_eq!(live.len(), 3, "{live:?}");
    let (code, text) = clean();
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        namespaces(&id),
        live,
        "clean removed a live topology:\n{text}"
    );
    drop(topo);
    nothing_left(&id);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn kill_9_in_an_ebpf_run_leaves_nothing_attached_and_clean_removes_its_cgroup() {
    tier::require_root();
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let loaded = || {
        dataplane::ebpf::sys::program_names()
            .unwrap()
            .iter()
            .filter(|n| n.starts_with("kpb_sock4"))
            .count()
    };
    let before = loaded();
    let mut run = Run::start(
        &run_id("ebkill"),
        &dir.path().join("out"),
        &["--modes", "ebpf", "--services", "20", "--endpoints", "2"],
        None,
    );
    // Killed while its socket LB is attached: the client cgroup exists then.
    assert!(
        wait_for(Duration::from_secs(60), || !client_cgroups(&run.id)
            .is_empty()
            && loaded() > before),
        "the run never attached its socket LB: {}",
        run.log()
    );
    run.kill9();
    // The links and programs died with the process; the empty cgroup stays for clean.
    assert!(
        wait_for(Duration::from_secs(5), || loaded() == before),
        "socket LB programs still loaded after kill -9"
    );
    let left = client_cgroups(&run.id);
    assert_eq!(left.len(), 1, "{left:?}");
    let (code, text) = clean();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("/kpbench/{}", left[0])), "{text}");
    nothing_left(&run.id);
}
