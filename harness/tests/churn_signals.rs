//! A churn phase interrupted: SIGINT stops the run promptly and leaves nothing, and
//! after kill -9 `kpbench clean` removes what is left. Needs root: without feature
//! `root-tests` the tests are reported as ignored.

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

/// Starts an iptables-legacy run whose case has a churn phase with background traffic
/// and waits until the changes have been arriving for a second.
fn churning(tag: &str, dir: &std::path::Path) -> Run {
    tier::require_root();
    tier::require_tool("iptables-legacy-restore");
    let scenario = dir.join("churn.toml");
    std::fs::write(
        &scenario,
        "modes = [\"iptables-legacy\"]\nservices = [20]\nendpoints_per_service = 2\n\
         repeats = 1\nfull_sync_repeats = 1\n\
         [datapath]\nrate_per_s = 50\nduration_s = 0.5\nmax_rate_duration_s = 0\n\
         transit = false\nrequest_timeout_ms = 1000\n\
         [churn]\nrate_per_s = 10\nduration_s = 4\nservices = 4\nbackground_rate_per_s = 100\n",
    )
    .unwrap();
    let run = Run::scenario(tag, dir, &scenario, None);
    assert!(
        wait_for(Duration::from_secs(90), || run
            .log()
            .contains("churn: rolling")),
        "the churn phase never started:\n{}",
        run.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    run
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn sigint_during_churn_stops_promptly_and_leaves_nothing() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut run = churning("churnint", dir.path());
    let sent = Instant::now();
    run.signal(libc::SIGINT);
    let (code, text, _) = run.wait(Duration::from_secs(30));
    let stop = sent.elapsed();
    assert_eq!(code, Some(130), "{text}");
    // The driver checks for a signal between syncs (at most 50 ms apart here).
    assert!(stop < Duration::from_secs(5), "took {stop:?} to stop");
    let c = cases(&run.results());
    assert!(c.iter().all(|c| c.2.contains("interrupted")), "{c:?}");
    nothing_left(&run.id);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root: scripts/test.sh runs it as root"
)]
fn kill_9_during_churn_leaves_namespaces_that_clean_removes() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut run = churning("churnkill", dir.path());
    run.kill9();
    clean_removes_the_three_namespaces_left(&run.id);
    nothing_left(&run.id);
}
