//! The report as a person sees it: report.html rendered by headless Chromium must draw its
//! charts and log no console errors. Needs /usr/bin/chromium (Debian package
//! `chromium`): without feature `browser-tests` the tests are reported as ignored; with
//! it, a missing Chromium fails them. The screenshot is kept under
//! target/tmp/report-browser/ for a look.

mod tier;

use std::path::{Path, PathBuf};
use std::process::Command;

use tier::CHROMIUM;

struct Rendered {
    dom: String,
    log: String,
}

/// Loads `page` in headless Chromium twice: once dumping the DOM (with console logging on
/// stderr), once taking a screenshot.
fn chromium(page: &Path, screenshot: &Path) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let run = |extra: &[String]| {
        let out = Command::new("timeout")
            .arg("120")
            .arg(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("running chromium");
        assert!(out.status.success(), "chromium failed: {out:?}");
        out
    };
    let dump = run(&["--dump-dom".to_string()]);
    let shot = run(&[
        "--window-size=1280,2400".to_string(),
        format!("--screenshot={}", screenshot.display()),
    ]);
    Rendered {
        dom: String::from_utf8_lossy(&dump.stdout).into_owned(),
        log: format!(
            "{}{}",
            String::from_utf8_lossy(&dump.stderr),
            String::from_utf8_lossy(&shot.stderr)
        ),
    }
}

/// Console errors and failed loads (the report must fetch nothing).
fn page_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains("ERROR:CONSOLE")
                || l.contains("Failed to load resource")
                || l.contains("net::ERR_")
        })
        .collect()
}

fn fixtures() -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report");
    vec![base.join("host"), base.join("lab")]
}

#[test]
#[cfg_attr(
    not(feature = "browser-tests"),
    ignore = "needs chromium: scripts/test.sh runs it when chromium is installed"
)]
fn report_draws_its_charts_without_console_errors() {
    tier::require_chromium();
    let runs = harness::report::read_runs(&fixtures()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let files = harness::report::write_report(&runs, out.path()).unwrap();
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&keep).unwrap();
    let shot = keep.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let r = chromium(&files[0], &shot);
    assert!(
        r.dom.contains("<h1>kpbench report: 2 runs</h1>"),
        "page not loaded"
    );
    let svgs = r.dom.matches("<svg").count();
    // Six charts per environment (host and lab-tcg apart, never on one axis).
    assert_eq!(svgs, 12, "every chart inline");
    assert!(r.dom.matches("<polyline").count() >= 10, "lines drawn");
    assert!(r.dom.matches("<rect").count() >= 20, "bars drawn");
    assert!(
        r.dom.contains("Choose nftables"),
        "capacity planning rendered"
    );
    let errors = page_errors(&r.log);
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 20_000 && &png[1..4] == b"PNG", "screenshot");
    eprintln!("screenshot: {}", shot.display());
}

#[test]
#[cfg_attr(
    not(feature = "browser-tests"),
    ignore = "needs chromium: scripts/test.sh runs it when chromium is installed"
)]
fn the_console_check_catches_a_broken_page() {
    tier::require_chromium();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>notDefined()</script></body></html>",
    )
    .unwrap();
    let r = chromium(&page, &dir.path().join("broken.png"));
    assert!(!page_errors(&r.log).is_empty(), "missed: {}", r.log);
}
