//! `kpbench compare` and `kpbench report` as scripts and CI call them: exit codes and
//! output. Pure: no root, no kernel.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kpbench<P: AsRef<std::ffi::OsStr>>(args: &[P]) -> Output {
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

/// Every incremental sample of iptables made 3x slower.
fn slower(r: &mut harness::results::Results) {
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
}

/// A copy of the host fixture with every incremental sample of iptables made 3x slower.
fn slower_copy(dir: &Path) -> PathBuf {
    changed_copy(dir, "slower", slower)
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

/// A copy of the host fixture with `f` applied, written to `dir/name`.
fn changed_copy(dir: &Path, name: &str, f: impl FnOnce(&mut harness::results::Results)) -> PathBuf {
    let mut r = harness::results::Results::read(&fixture("host")).unwrap();
    f(&mut r);
    let out = dir.join(name);
    r.write(&out).unwrap();
    out
}

/// Every repeated timing's samples redrawn: each sample i moved by +-`by` of itself,
/// alternately, so the runs differ by noise only.
fn jitter(r: &mut harness::results::Results, by: f64) {
    for c in &mut r.cases {
        let Some(s) = c.sync.as_mut() else { continue };
        for d in [
            Some(&mut s.full),
            s.add_service.as_mut(),
            s.remove_service.as_mut(),
            s.update_endpoints.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            for (i, v) in d.samples_ms.iter_mut().enumerate() {
                *v *= if i % 2 == 0 { 1.0 + by } else { 1.0 - by };
            }
        }
    }
}

#[test]
fn a_difference_inside_both_runs_noise_is_no_regression() {
    let tmp = tempfile::tempdir().unwrap();
    let noisy = changed_copy(tmp.path(), "noisy", |r| jitter(r, 0.15));
    let out = kpbench(&[Path::new("compare"), &fixture("host"), &noisy]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0 regression(s) by the three-way rule"),
        "{text}"
    );
    assert!(!text.contains("REGRESSION"), "{text}");
    // Each figure says its verdict and margin.
    assert!(
        text.contains("(inconclusive)") || text.contains("(flat)"),
        "{text}"
    );
    assert!(text.contains("±10.0%"), "{text}");
}

#[test]
fn runs_of_two_machines_need_across_machines() {
    let tmp = tempfile::tempdir().unwrap();
    let on = |name: &str, machine: &'static str| {
        changed_copy(tmp.path(), name, move |r| {
            for e in &mut r.environments {
                e.machine = Some(machine.into());
            }
        })
    };
    let (a, b) = (on("a", "aaaaaaaaaaaaaaaa"), on("b", "bbbbbbbbbbbbbbbb"));
    let refused = kpbench(&[Path::new("compare"), &a, &b]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--across-machines") && err.contains("aaaaaaaaaaaaaaaa / bbbbbbbbbbbbbbbb"),
        "{err}"
    );
    let slow = changed_copy(tmp.path(), "b-slow", |r| {
        for e in &mut r.environments {
            e.machine = Some("bbbbbbbbbbbbbbbb".into());
        }
        slower(r);
    });
    let across = kpbench(&[
        Path::new("compare"),
        &a,
        &slow,
        Path::new("--across-machines"),
    ]);
    assert_eq!(across.status.code(), Some(3), "{across:?}");
    let text = String::from_utf8_lossy(&across.stdout);
    assert!(text.contains("machine differences are included"), "{text}");
    assert!(
        text.contains("differs: machine: aaaaaaaaaaaaaaaa / bbbbbbbbbbbbbbbb"),
        "{text}"
    );
    // The same machine: no refusal, no flag needed.
    let same = kpbench(&[Path::new("compare"), &a, &on("a2", "aaaaaaaaaaaaaaaa")]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");
}

/// A copy of the host fixture as if it ran on another kernel.
fn other_kernel_copy(dir: &Path, kernel: &str) -> PathBuf {
    changed_copy(dir, kernel, |r| {
        for e in &mut r.environments {
            e.kernel_release = kernel.into();
        }
    })
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
