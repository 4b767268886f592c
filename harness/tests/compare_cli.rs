//! `kpbench compare` and `kpbench report` as scripts and CI call them: exit codes and
//! output. Pure: no root, no kernel.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kpbench(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpbench"))
        .args(args)
        .output()
        .expect("running kpbench")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/report")
        .join(name)
}

/// A copy of the host fixture with every incremental sample of iptables made 3x slower.
fn slower_copy(dir: &Path) -> PathBuf {
    let mut r = harness::results::Results::read(&fixture("host")).unwrap();
    for c in r.cases.iter_mut().filter(|c| c.mode == "iptables") {
        let s = c.sync.as_mut().unwrap();
        for d in [
            &mut s.add_service,
            &mut s.remove_service,
            &mut s.update_endpoints,
        ]
        .into_iter()
        .flatten()
        {
            d.samples_ms.iter_mut().for_each(|v| *v *= 3.0);
            d.p50_ms *= 3.0;
        }
    }
    let out = dir.join("slower");
    r.write(&out).unwrap();
    out
}

#[test]
fn compare_exit_codes() {
    let same = kpbench(&[Path::new("compare"), &fixture("host"), &fixture("host")]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    let text = String::from_utf8_lossy(&same.stdout);
    assert!(text.contains("0 regression(s)"), "{text}");

    let tmp = tempfile::tempdir().unwrap();
    let slow = slower_copy(tmp.path());
    let worse = kpbench(&[Path::new("compare"), &fixture("host"), &slow]);
    assert_eq!(worse.status.code(), Some(3), "{worse:?}");
    let text = String::from_utf8_lossy(&worse.stdout);
    assert!(
        text.contains("REGRESSION") && text.contains("9 regression(s)"),
        "{text}"
    );

    let missing = kpbench(&[Path::new("compare"), Path::new("/nonexistent/run"), &slow]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/run"));
    let not_results = kpbench(&[Path::new("compare"), Path::new("/etc/hostname"), &slow]);
    assert_eq!(not_results.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&not_results.stderr).contains("not a kpbench results file"));
}

/// A copy of the host fixture as if it ran on another kernel.
fn other_kernel_copy(dir: &Path, kernel: &str) -> PathBuf {
    let mut r = harness::results::Results::read(&fixture("host")).unwrap();
    for e in &mut r.environments {
        e.kernel_release = kernel.into();
    }
    let out = dir.join(kernel);
    r.write(&out).unwrap();
    out
}

#[test]
fn compare_across_kernels_finds_the_common_cases() {
    let tmp = tempfile::tempdir().unwrap();
    let a = other_kernel_copy(tmp.path(), "6.1.0-56-cloud-amd64");
    let b = other_kernel_copy(tmp.path(), "6.12.57-cloud-amd64");
    let out = kpbench(&[Path::new("compare"), &a, &b]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("matched case by case across environments"),
        "{text}"
    );
    assert!(!text.contains("0 metric(s) compared"), "{text}");
    // Runs with nothing in common: a usage error, not a pass.
    let mut other = harness::results::Results::read(&fixture("host")).unwrap();
    for c in &mut other.cases {
        c.services += 1;
    }
    let other_dir = tmp.path().join("other-sizes");
    other.write(&other_dir).unwrap();
    let none = kpbench(&[Path::new("compare"), &fixture("host"), &other_dir]);
    assert_eq!(none.status.code(), Some(2), "{none:?}");
    assert!(String::from_utf8_lossy(&none.stderr).contains("nothing was compared"));
}

#[test]
fn report_merges_runs_into_out() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("merged");
    let ok = kpbench(&[
        Path::new("report"),
        &fixture("host"),
        &fixture("lab"),
        Path::new("--out"),
        &out,
    ]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(out.join("report.html").exists());
    // A host and a lab guest never share an axis: one chart each, no side by side.
    assert!(out
        .join("charts/full_sync-lab-tcg-6.1.0-56-cloud-amd64.svg")
        .exists());
    assert!(!out.join("charts/kernels_full_sync.svg").exists());
    let no_out = kpbench(&[Path::new("report"), &fixture("host"), &fixture("lab")]);
    assert_eq!(no_out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_out.stderr).contains("--out"));
}
