//! The HTML report and chart files of one or several runs: `report.html` (self-contained)
//! plus `charts/<name>.svg` and `.png`, written next to results.json. A report is a view
//! of results already on disk, so callers treat its failure as a warning, never as a
//! failed measurement.

pub mod charts;
mod churn_section;
mod findings;
mod html;
mod markup;
mod notes_section;
mod picks_section;
mod plan_section;
mod published_section;
mod sync_sections;

use std::path::{Path, PathBuf};

pub use markup::escape;

use crate::analysis::capacity::{self, Budgets};
use crate::results::{write_atomic, Results, ResultsError};
use charts::ChartError;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] ResultsError),
    #[error(transparent)]
    Chart(#[from] ChartError),
}

/// Writes report.html, charts/*.svg and charts/*.png into `out_dir` with the default
/// budgets; returns the files written, report.html first.
pub fn write_report(results: &[Results], out_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    write_report_with(results, out_dir, Budgets::default())
}

/// [`write_report`] with the capacity budgets given.
pub fn write_report_with(
    results: &[Results],
    out_dir: &Path,
    budgets: Budgets,
) -> Result<Vec<PathBuf>, ReportError> {
    let charts = charts::build(results);
    let chart_dir = out_dir.join("charts");
    std::fs::create_dir_all(&chart_dir).map_err(|source| ReportError::Io {
        path: chart_dir.clone(),
        source,
    })?;
    let mut written = Vec::new();
    let mut drawn = Vec::new();
    for c in &charts {
        let svg = charts::render_svg(c)?;
        let svg_path = chart_dir.join(format!("{}.svg", c.name));
        write_atomic(&svg_path, svg.as_bytes())?;
        let png_path = chart_dir.join(format!("{}.png", c.name));
        charts::render_png(c, &png_path)?;
        written.push(svg_path);
        written.push(png_path);
        drawn.push((c, svg));
    }
    remove_stale_charts(&chart_dir, &written);
    let plan = capacity::plan(results, budgets);
    let page = html::page(results, &drawn, &plan);
    let report = out_dir.join("report.html");
    write_atomic(&report, page.as_bytes())?;
    written.insert(0, report);
    Ok(written)
}

/// Charts an earlier report drew that this one did not (e.g. data-path charts of a run
/// since rebuilt without a data path) would otherwise linger next to the new ones.
fn remove_stale_charts(dir: &Path, keep: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let chart_file = matches!(p.extension().and_then(|x| x.to_str()), Some("svg" | "png"));
        if chart_file && !keep.contains(&p) {
            if let Err(err) = std::fs::remove_file(&p) {
                tracing::warn!("{}: removing an old chart: {err}", p.display());
            }
        }
    }
}

/// Reads every run named on the command line; the error names the path that failed.
pub fn read_runs(paths: &[PathBuf]) -> Result<Vec<Results>, ResultsError> {
    paths.iter().map(|p| Results::read(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, results, skipped, with_transit};

    fn hostile() -> Results {
        let mut r = results(
            "6.18.0-<script>alert(1)</script>",
            vec![
                case("iptables", 100, 50.0, 5.0, 10.0),
                with_transit(
                    case("iptables", 1000, 400.0, 40.0, 30.0),
                    900.0,
                    3000.0,
                    15.0,
                    30.0,
                    est(15.0, 14.5, 15.5),
                ),
                case("nftables", 100, 30.0, 3.0, 4.0),
                with_transit(
                    case("nftables", 1000, 90.0, 4.0, 5.0),
                    900.0,
                    3100.0,
                    0.0,
                    30.0,
                    est(0.01, -0.1, 0.1),
                ),
                skipped("ipvs", 100, "ip_vs missing: <b>load</b> the module & retry"),
            ],
        );
        r.run.scenario.name = "quick\"><img src=x onerror=alert(1)>".into();
        r
    }

    #[test]
    fn report_is_self_contained_and_escapes_input() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_report(&[hostile()], dir.path()).unwrap();
        assert_eq!(files[0], dir.path().join("report.html"));
        assert!(files.contains(&dir.path().join("charts/full_sync.svg")));
        assert!(files.contains(&dir.path().join("charts/latency_percentiles.png")));
        for f in &files {
            assert!(f.exists(), "{}", f.display());
        }
        let html = std::fs::read_to_string(&files[0]).unwrap();
        assert!(!html.contains("<script"), "script injected");
        assert!(!html.contains("<img"), "attribute injected");
        assert!(html.contains("6.18.0-&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;b&gt;load&lt;/b&gt; the module &amp; retry"));
        assert!(html.contains("quick&quot;&gt;&lt;img"));
        // Nothing fetched: no external URLs other than the SVG namespace.
        let no_ns = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!no_ns.contains("http://") && !no_ns.contains("https://"));
        // The short answer opens the page; every section in its place.
        let mut at = 0;
        for section in [
            "id=\"answer\"",
            "id=\"run\"",
            "id=\"environment\"",
            "id=\"claims\"",
            "id=\"lookup\"",
            "id=\"summary\"",
            "id=\"charts\"",
            "id=\"breakdown\"",
            "id=\"overhead\"",
            "id=\"capacity\"",
            "id=\"skipped\"",
        ] {
            let i = html.find(section).unwrap_or_else(|| panic!("{section}"));
            assert!(i > at, "{section} out of order");
            at = i;
        }
        // Full sync, three incremental, machine CPU, percentiles; the lookup chart.
        assert_eq!(html.matches("<svg").count(), 7);
        assert!(files.contains(&dir.path().join("charts/lookup_cost.svg")));
        let answer = section(&html, "answer");
        assert!(
            answer.contains("<strong>nftables</strong>: 4.00 ms (95% CI 3.97..4.04), add service; faster than iptables by 36.00 ms"),
            "{answer}"
        );
        assert!(
            answer.contains("<strong>nftables</strong>: 3100 ns (95% CI 3070..3130), SYN transit to svc-999; cheaper than iptables by 14885 ns"),
            "{answer}"
        );
        assert!(
            answer.contains(
                "<td class=\"l\">not measured: no in-kernel timing in these results</td>"
            ),
            "{answer}"
        );
        let claims = section(&html, "claims");
        assert!(claims.contains("iptables matches linearly as services grow"));
        assert!(
            claims.contains("<td class=\"l nw confirmed\">confirmed</td>"),
            "{claims}"
        );
        assert!(claims.contains("not measured in this run"));
        let lookup = section(&html, "lookup");
        assert!(lookup.contains("<svg"), "the lookup chart inline");
        assert!(
            lookup.contains("15.0 ns (95% CI 14.5..15.5), within one run, across targets"),
            "{lookup}"
        );
        assert!(
            lookup.contains("no interval (no latency histograms)"),
            "end-to-end without histograms draws no difference"
        );
        let summary = section(&html, "summary");
        assert!(summary.contains("machine-wide CPU us/req"));
        assert!(summary.contains("dataplane CPU ns/req"));
        assert!(html.contains("Choose nftables"), "recommendation");
    }

    /// The HTML of one section: from its heading to the next.
    fn section<'h>(html: &'h str, id: &str) -> &'h str {
        let start = html.find(&format!("id=\"{id}\"")).unwrap();
        let rest = &html[start..];
        let end = rest[1..].find("<h2 ").map_or(rest.len(), |i| i + 1);
        &rest[..end]
    }

    #[test]
    fn each_environment_gets_its_own_charts() {
        let host = hostile();
        let mut lab = results("6.1.0", vec![case("ipvs", 100, 900.0, 90.0, 20_000.0)]);
        lab.environments[0].kind = "lab-tcg".into();
        let dir = tempfile::tempdir().unwrap();
        let files = write_report(&[host, lab], dir.path()).unwrap();
        let charts: Vec<String> = files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "svg"))
            .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(
            charts.contains(&"full_sync-lab-tcg-6.1.0".to_string()),
            "{charts:?}"
        );
        assert!(
            charts
                .iter()
                .any(|c| c.starts_with("full_sync-host-6.18.0")),
            "{charts:?}"
        );
        assert!(!charts.contains(&"full_sync".to_string()), "no shared axis");
        let html = std::fs::read_to_string(&files[0]).unwrap();
        assert!(html.contains("Full sync: time to program every service (lab-tcg 6.1.0)"));
        // The short answer and the plan speak per environment too.
        let answer = section(&html, "answer");
        assert!(answer.contains("lab-tcg 6.1.0"));
        assert!(answer.contains("only ipvs/rr measured"), "{answer}");
        assert!(section(&html, "capacity").contains("<h3>lab-tcg 6.1.0</h3>"));
    }

    #[test]
    fn sync_breakdown_and_overhead_are_inline() {
        use crate::analysis::cases::fixtures::{profiled, step, with_steps};
        use crate::analysis::cases::SyncKind;
        let steps = |listing: f64| {
            vec![
                step(
                    "nft --json --terse list table",
                    "listing",
                    1.0,
                    listing,
                    1.0,
                    1.0,
                ),
                step("nft -f", "restore", 1.0, 200.0, 120.0, 60.0),
            ]
        };
        let both = |c, s: Vec<_>| {
            with_steps(
                with_steps(c, SyncKind::Full, s.clone()),
                SyncKind::AddService,
                s,
            )
        };
        let incr: Vec<f64> = (0..10).map(|i| 300.0 + i as f64).collect();
        let kp = both(
            profiled("nftables", 1000, "kube-proxy", &[900.0], &incr),
            steps(500.0),
        );
        let floor = both(
            profiled("nftables", 1000, "floor", &[300.0], &incr),
            steps(0.0),
        );
        let mut r = hostile();
        r.cases.extend([kp, floor]);
        let dir = tempfile::tempdir().unwrap();
        let files = write_report(&[r], dir.path()).unwrap();
        for name in ["breakdown_full_sync", "breakdown_add_service"] {
            assert!(files.contains(&dir.path().join(format!("charts/{name}.png"))));
        }
        let html = std::fs::read_to_string(&files[0]).unwrap();
        assert_eq!(
            html.matches("<svg").count(),
            9,
            "6 overview charts, the lookup chart, 2 breakdowns"
        );
        let breakdown = &html[html.find("id=\"breakdown\"").unwrap()..];
        let overhead = &breakdown[breakdown.find("id=\"overhead\"").unwrap()..];
        assert_eq!(
            breakdown[..breakdown.len() - overhead.len()]
                .matches("<svg")
                .count(),
            2
        );
        assert!(breakdown.contains("Restore user: the user CPU"), "caption");
        // Full: +600 ms from one sample a side, so no interval; add: equal samples, so
        // flat within the margin (a tenth of the floor).
        assert!(overhead.contains("<td>+600 (noise unknown)</td><td>3.00x</td>"));
        assert!(overhead.contains("<td>flat (margin ±"), "{overhead}");
        let no_ns = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!no_ns.contains("http://") && !no_ns.contains("https://"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn a_run_with_nothing_ok_still_reports() {
        let dir = tempfile::tempdir().unwrap();
        write_report(&[hostile()], dir.path()).unwrap();
        let r = results("6.1", vec![skipped("ipvs", 100, "no ip_vs")]);
        let files = write_report(&[r], dir.path()).unwrap();
        let left = std::fs::read_dir(dir.path().join("charts"))
            .unwrap()
            .count();
        assert_eq!(left, 0, "charts of the earlier report removed");
        assert_eq!(files.len(), 1);
        let html = std::fs::read_to_string(&files[0]).unwrap();
        assert!(html.contains("No successful measurements to chart."));
        assert!(html.contains("no ip_vs"));
    }

    #[test]
    fn an_unwritable_directory_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = write_report(&[hostile()], &file.join("out"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("file/out/charts"), "{e}");
    }
}
