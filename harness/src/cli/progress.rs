//! Shows a run's progress (a bar on a terminal, plain lines otherwise) and prints the
//! end-of-run summary table. The engine only emits [`Event`]s.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::results::{Case, Results, Status};
use crate::run::Event;

/// Renders events to stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            bar: None,
            label: String::new(),
        }
    }

    pub fn event(&mut self, e: Event) {
        match e {
            Event::CaseStarted {
                index,
                total,
                label,
            } => {
                self.label = label.clone();
                if std::io::stderr().is_terminal() {
                    let bar = self.bar.get_or_insert_with(|| {
                        let b = ProgressBar::new(total as u64);
                        b.set_style(
                            ProgressStyle::with_template(
                                "{elapsed_precise} [{bar:25}] {pos}/{len} {msg}",
                            )
                            .expect("valid template")
                            .progress_chars("=> "),
                        );
                        b.enable_steady_tick(std::time::Duration::from_millis(200));
                        b
                    });
                    bar.set_position(index as u64);
                    bar.set_message(label);
                } else {
                    eprintln!("[{}/{}] {label}", index + 1, total);
                }
            }
            Event::Step(step) => match &self.bar {
                Some(b) => b.set_message(format!("{}: {step}", self.label)),
                None => tracing::info!("{}: {step}", self.label),
            },
            Event::CaseFinished { index, case } => {
                let line = format!("{} {}", status_word(&case), one_line(&case));
                match &self.bar {
                    Some(b) => {
                        b.println(line);
                        b.set_position(index as u64 + 1);
                    }
                    None => eprintln!("      {line}"),
                }
            }
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

fn status_word(c: &Case) -> &'static str {
    match c.status {
        Status::Ok => "ok     ",
        Status::Skipped => "skipped",
        Status::Failed => "FAILED ",
    }
}

use crate::analysis::cases::mode_label;

fn one_line(c: &Case) -> String {
    let head = format!(
        "{} {} svc x {} ep",
        mode_label(c),
        c.services,
        c.endpoints_per_service
    );
    match (&c.sync, &c.reason) {
        (Some(_), _) if c.sync_over_limit_s.is_some() => format!(
            "{head}: full sync over {:.0} s; data path through the floor's identical objects",
            c.sync_over_limit_s.unwrap_or_default()
        ),
        (Some(s), _) => format!("{head}: full sync {:.0} ms", s.full.p50_ms),
        (None, Some(r)) => format!("{head}: {r}"),
        _ => head,
    }
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// Milliseconds: one decimal, two below 1 ms (an eBPF update of 0.04 ms is not 0.0).
fn ms(v: Option<f64>) -> String {
    cell(
        v,
        if v.is_some_and(|x| x.abs() < 1.0) {
            2
        } else {
            1
        },
    )
}

/// The in-kernel cost per service position by the one rule (`analysis::stats::trend`,
/// the verdict the results record, or the margin's floor in results from before it):
/// the figure when it grows (or shrinks), `flat` within the margin, `inconcl.` when
/// inconclusive, `artefact?` for a significant fall (likely an artefact).
fn per_service(t: Option<&crate::results::Transit>) -> String {
    use crate::analysis::stats::{lookup_margin, lookup_trend, Trend};
    let Some(s) = t.map(|t| t.ns_per_service) else {
        return "-".into();
    };
    let verdict = s
        .verdict
        .unwrap_or_else(|| lookup_trend(&s.fit(), lookup_margin(None)));
    match verdict {
        Trend::Grows | Trend::Shrinks => format!("{:.1}", s.estimate),
        Trend::Flat => "flat".into(),
        Trend::Inconclusive => "inconcl.".into(),
        Trend::Unexpected => "artefact?".into(),
    }
}

/// What the summary's columns mean, under it.
pub const LEGEND: &str = "ms: sync times (full: median of the full syncs from empty; add/remove/update: incremental, p50/p99, a p99 of fewer than 100 syncs shown as their max (n=...)); \
+us: end-to-end request p50 (syn: connect p25) through the VIP minus to an endpoint directly; \
noise +us: the direct target measured twice, |second - first| (end-to-end figures under it are noise); \
ns/svc: the SYN's in-kernel transit per service position by the three-way rule (a figure: grows beyond the margin; flat: its 95% interval within ±margin, 0.5 ns or a tenth of iptables'; inconcl.: inconclusive, neither; artefact?: a significant fall, likely an artefact)";

/// The summary's column headings, in order.
const SUMMARY_HEADER: [&str; 16] = [
    "env",
    "mode",
    "services",
    "status",
    "objects",
    "full ms",
    "full cpu ms",
    "add p50",
    "remove p50",
    "update p50",
    "update p99",
    "first +us",
    "last +us",
    "last syn +us",
    "noise +us",
    "ns/svc",
];

/// The end-of-run summary as a fixed-width table, with a note under it for every case
/// that did not finish.
pub fn summary_table(r: &Results) -> String {
    let mut rows: Vec<Vec<String>> = vec![SUMMARY_HEADER.iter().map(|s| s.to_string()).collect()];
    rows.extend(r.cases.iter().map(summary_row));
    let mut out = aligned(&rows);
    out.push_str(&summary_notes(r));
    out
}

/// One case's cells, in the order of `SUMMARY_HEADER`.
fn summary_row(c: &Case) -> Vec<String> {
    let s = c.sync.as_ref();
    let dp = c.datapath.as_ref();
    vec![
        c.environment.clone(),
        mode_label(c),
        c.services.to_string(),
        status_word(c).trim().to_string(),
        c.rules
            .as_ref()
            .map(|r| r.kernel_objects.to_string())
            .unwrap_or_else(|| "-".into()),
        match c.sync_over_limit_s {
            Some(limit) => format!(">{limit:.0} s"),
            None => ms(s.map(|s| s.full.p50_ms)),
        },
        ms(crate::analysis::cases::full_sync(c).map(|f| f.cpu_user_ms + f.cpu_sys_ms)),
        ms(s.and_then(|s| s.add_service.as_ref()).map(|d| d.p50_ms)),
        ms(s.and_then(|s| s.remove_service.as_ref()).map(|d| d.p50_ms)),
        ms(s.and_then(|s| s.update_endpoints.as_ref())
            .map(|d| d.p50_ms)),
        s.and_then(|s| s.update_endpoints.as_ref())
            .map(|d| {
                format!(
                    "{} {}",
                    ms(Some(d.p99_ms)),
                    crate::results::tail_label(d.samples)
                )
            })
            .unwrap_or_else(|| "-".into()),
        cell(
            dp.and_then(|d| d.lookup_overhead_us.get("first").copied()),
            0,
        ),
        cell(
            dp.and_then(|d| d.lookup_overhead_us.get("last").copied()),
            0,
        ),
        cell(dp.and_then(|d| d.syn_overhead_us.get("last").copied()), 0),
        cell(dp.and_then(|d| d.noise_floor_us).map(|n| n.request_p50), 0),
        per_service(dp.and_then(|d| d.transit.as_ref())),
    ]
}

/// The rows in columns: the first, second and fourth left-aligned, the rest right;
/// a rule under the heading row.
fn aligned(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..SUMMARY_HEADER.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if i < 2 || i == 3 {
                    format!("{v:<w$}", w = widths[i])
                } else {
                    format!("{v:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    out
}

/// "status mode x services: why" for every case that did not finish, after a blank line.
fn summary_notes(r: &Results) -> String {
    let mut out = String::new();
    let notes: Vec<String> = r
        .cases
        .iter()
        .filter(|c| c.status != Status::Ok)
        .filter_map(|c| {
            c.reason.as_ref().map(|why| {
                format!(
                    "{} {} x {}: {why}",
                    status_word(c).trim(),
                    mode_label(c),
                    c.services
                )
            })
        })
        .collect();
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use dataplane::Mode;

    use super::summary_table;
    use crate::run::testing::{run_fake, scenario, FakeBackends, FakeHost, FakeSandbox};

    /// A run on the fakes: exact sync numbers, a timeout, a give-up and a mode
    /// that is not implemented, as the end-of-run table shows them.
    #[test]
    fn the_summary_table_of_a_fake_run() {
        let out = tempfile::tempdir().unwrap();
        let mut backends = FakeBackends::all_ok();
        backends
            .scripts
            .get_mut(&Mode::Nftables)
            .unwrap()
            .timeout_from = Some(200);
        let mut s = scenario(
            &[Mode::Iptables, Mode::Nftables, Mode::Ebpf],
            &[100, 200, 400],
        );
        s.scales = BTreeMap::from([("ebpf".to_string(), vec![100])]);
        let (r, _) = run_fake(
            s,
            &backends,
            &FakeSandbox::default(),
            &FakeHost::default(),
            out.path(),
        );
        let want = format!(
            "\
env   mode      services  status   objects  full ms  full cpu ms  add p50  remove p50  update p50     update p99  first +us  last +us  last syn +us  noise +us  ns/svc
----------------------------------------------------------------------------------------------------------------------------------------------------------------------
host  iptables       100  ok           300    100.0         30.0      2.0         3.0         4.0  4.0 max (n=3)          -         -             -          -       -
host  iptables       200  ok           600    200.0         60.0      2.0         3.0         4.0  4.0 max (n=3)          -         -             -          -       -
host  iptables       400  ok          1200    400.0        120.0      2.0         3.0         4.0  4.0 max (n=3)          -         -             -          -       -
host  nftables       100  ok           300    100.0         30.0      2.0         3.0         4.0  4.0 max (n=3)          -         -             -          -       -
host  nftables       200  FAILED         -        -            -        -           -           -              -          -         -             -          -       -
host  nftables       400  skipped        -        -            -        -           -           -              -          -         -             -          -       -
host  ebpf           100  skipped        -        -            -        -           -           -              -          -         -             -          -       -

FAILED nftables x 200: full sync: case time limit of 300 s reached (fake-restore timed out after 1s and was killed)
skipped nftables x 400: not attempted: nftables (kube-proxy profile) timed out at 200 services; raise case_timeout_s in the scenario to try larger scales
skipped ebpf x 100: mode ebpf is not implemented in kpbench {}; run the other modes
",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(summary_table(&r), want);
    }

    /// A kube-proxy full sync past its limit shows as over it, never as a time.
    #[test]
    fn a_sync_over_its_limit_reads_over_n_s() {
        let out = tempfile::tempdir().unwrap();
        let mut backends = FakeBackends::all_ok();
        let script = backends.scripts.get_mut(&Mode::Nftables).unwrap();
        script.timeout_from = Some(200);
        script.floor_in_time = true;
        let s = scenario(&[Mode::Nftables], &[100, 200]);
        let (r, _) = run_fake(
            s,
            &backends,
            &FakeSandbox::default(),
            &FakeHost::default(),
            out.path(),
        );
        let table = summary_table(&r);
        let row = table.lines().find(|l| l.contains(" 200 ")).unwrap();
        assert!(row.contains(">300 s"), "{row}");
        assert!(!row.contains("200.0"), "{row}");
        assert!(super::one_line(&r.cases[1]).contains("full sync over 300 s"));
    }

    #[test]
    fn milliseconds_below_one_keep_two_decimals() {
        assert_eq!(super::ms(Some(0.037)), "0.04");
        assert_eq!(super::ms(Some(0.0)), "0.00");
        assert_eq!(super::ms(Some(47.55)), "47.5");
        assert_eq!(super::ms(None), "-");
    }
}
