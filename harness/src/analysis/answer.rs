//! The report's short answer: for each environment and scale measured, which mode is
//! fastest to update (the lowest slowest-incremental-sync p50) and which is cheapest to
//! look up (the lowest in-kernel SYN transit to the last service position), each against
//! its runner-up with the difference's 95% interval. A winner is declared only when the
//! one rule ([`stats::trend`]) calls the difference "grows" against a margin of a tenth
//! of the best figure; otherwise the answer is that the two are "level within the
//! margin" (flat) or "cannot be told apart" (inconclusive), with the verdict and its
//! margin.

use crate::analysis::cases::{EnvKey, Row};
use crate::analysis::figures::{self, Scale};
use crate::analysis::{lookup, stats};
use crate::results::Estimate;

/// One mode's figure at a scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub mode: String,
    /// The figure, with its interval when it has one.
    pub value: f64,
    pub ci95: Option<[f64; 2]>,
    /// What was measured ("add service", "last position (svc-999)").
    pub what: String,
}

/// The answer to one question at one scale.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick {
    /// No mode has the figure here; why.
    NotMeasured(String),
    /// One mode only: nothing to choose between.
    Only(Entry),
    /// The lowest and the runner-up; `difference` is runner-up minus best, `None` when
    /// either side has no interval (then no winner is declared).
    Best {
        best: Entry,
        runner_up: Entry,
        difference: Option<Estimate>,
    },
}

impl Pick {
    /// The one rule's call on the difference (runner-up minus best) with its margin, a
    /// tenth of the best mode's figure: `None` without two modes and an interval.
    pub fn call(&self) -> Option<(stats::Trend, f64)> {
        match self {
            Pick::Best {
                best,
                difference: Some(d),
                ..
            } => {
                let m = stats::relative_margin(best.value);
                Some((stats::trend(d, m, stats::Forbidden::Neither), m))
            }
            _ => None,
        }
    }

    /// The mode that wins by the one rule (the runner-up's figure grows beyond the
    /// margin), if any.
    pub fn winner(&self) -> Option<&str> {
        match (self, self.call()) {
            (Pick::Best { best, .. }, Some((stats::Trend::Grows, _))) => Some(&best.mode),
            _ => None,
        }
    }
}

/// The short answer at one scale of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub env: EnvKey,
    pub scale: Scale,
    /// Fastest to update, ms.
    pub update: Pick,
    /// Cheapest to look up, ns.
    pub lookup: Pick,
    /// The seed's question, "iptables or IPVS?": the same two picks between kube-proxy's
    /// iptables mode (nf_tables backend) and IPVS alone, when both ran here.
    pub iptables_or_ipvs: Option<(Pick, Pick)>,
}

/// Whether `mode` is one side of the seed's question: `iptables` or an IPVS scheduler.
fn seed_side(mode: &str) -> bool {
    mode == "iptables" || mode.starts_with("ipvs")
}

/// The answers, by environment and scale.
pub fn answers(rows: &[Row<'_>]) -> Vec<Answer> {
    figures::by_scale(rows)
        .into_iter()
        .map(|((env, scale), modes)| {
            let modes: Vec<(&String, &Row<'_>)> = modes.iter().collect();
            let seed: Vec<(&String, &Row<'_>)> = modes
                .iter()
                .copied()
                .filter(|(m, _)| seed_side(m))
                .collect();
            let both = seed.iter().any(|(m, _)| *m == "iptables")
                && seed.iter().any(|(m, _)| m.starts_with("ipvs"));
            Answer {
                update: update_pick(&modes),
                lookup: lookup_pick(&modes),
                iptables_or_ipvs: both.then(|| (update_pick(&seed), lookup_pick(&seed))),
                env,
                scale,
            }
        })
        .collect()
}

fn entry(mode: &str, value: f64, ci95: Option<[f64; 2]>, what: String) -> Entry {
    Entry {
        mode: mode.to_string(),
        value,
        ci95,
        what,
    }
}

fn sorted<T>(mut v: Vec<(Entry, T)>) -> Vec<(Entry, T)> {
    v.sort_by(|a, b| {
        a.0.value
            .total_cmp(&b.0.value)
            .then(a.0.mode.cmp(&b.0.mode))
    });
    v
}

fn update_pick(modes: &[(&String, &Row<'_>)]) -> Pick {
    let v = sorted(
        modes
            .iter()
            .filter_map(|(m, r)| {
                let u = figures::update(r.case)?;
                let e = entry(m, u.p50_ms, u.median.map(|e| e.ci95), u.op.into());
                Some((e, u.samples_ms))
            })
            .collect(),
    );
    match v.as_slice() {
        [] => Pick::NotMeasured("no incremental sync measured".into()),
        [(only, _)] => Pick::Only(only.clone()),
        [(best, a), (next, b), ..] => Pick::Best {
            difference: stats::median_difference(b, a),
            best: best.clone(),
            runner_up: next.clone(),
        },
    }
}

fn lookup_pick(modes: &[(&String, &Row<'_>)]) -> Pick {
    let v = sorted(
        modes
            .iter()
            .filter_map(|(m, r)| {
                let t = lookup::transit(r.case)?;
                let last = t.last()?;
                let what = format!("SYN transit to svc-{}", last.service_index);
                Some((
                    entry(m, last.syn_ns.estimate, Some(last.syn_ns.ci95), what),
                    last.syn_ns,
                ))
            })
            .collect(),
    );
    match v.as_slice() {
        [] => Pick::NotMeasured(
            modes
                .first()
                .map(|(_, r)| lookup::transit_missing(r.case))
                .unwrap_or_else(|| "no case".into()),
        ),
        [(only, _)] => Pick::Only(only.clone()),
        [(best, a), (next, b), ..] => Pick::Best {
            difference: Some(stats::difference_of_estimates(*b, *a)),
            best: best.clone(),
            runner_up: next.clone(),
        },
    }
}

fn value(e: &Entry, unit: &str) -> String {
    match e.ci95 {
        Some(ci) => stats::with_ci(
            &Estimate {
                estimate: e.value,
                ci95: ci,
            },
            unit,
        ),
        None => format!(
            "{} {unit} (no interval: fewer than {} samples)",
            stats::num(e.value),
            stats::MIN_SAMPLES
        ),
    }
}

/// The answer in words: "nftables: 18.0 ms (95% CI 17.9..18.1), add service; faster
/// than iptables by 132 ms (95% CI 131..133)", or "nftables and iptables cannot be
/// told apart: ...".
pub fn describe(p: &Pick, unit: &str, better: &str) -> String {
    match p {
        Pick::NotMeasured(why) => format!("not measured: {why}"),
        Pick::Only(e) => format!("only {} measured: {}, {}", e.mode, value(e, unit), e.what),
        Pick::Best {
            best,
            runner_up,
            difference,
        } => {
            let both = format!(
                "{}: {}, {}; {}: {}, {}",
                best.mode,
                value(best, unit),
                best.what,
                runner_up.mode,
                value(runner_up, unit),
                runner_up.what
            );
            match (difference, p.call()) {
                (Some(d), Some((stats::Trend::Grows, m))) => format!(
                    "{}: {}, {}; {better} than {} by {} (margin ±{} {unit})",
                    best.mode,
                    value(best, unit),
                    best.what,
                    runner_up.mode,
                    stats::difference(d, unit).trim_start_matches('+'),
                    stats::num(m)
                ),
                (Some(d), Some((call, m))) => format!(
                    "{} and {} {}: {}, {} ({both})",
                    best.mode,
                    runner_up.mode,
                    if call == stats::Trend::Flat {
                        "are level within the margin"
                    } else {
                        "cannot be told apart"
                    },
                    stats::difference(d, unit),
                    stats::with_margin(call, m, unit)
                ),
                _ => format!(
                    "no interval to tell {} from {} ({both})",
                    best.mode, runner_up.mode
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, results, summary, with_transit};
    use crate::analysis::cases::{self};

    fn noisy(mut c: crate::results::Case, samples: &[f64]) -> crate::results::Case {
        let s = c.sync.as_mut().unwrap();
        s.add_service = Some(summary(samples));
        s.remove_service = Some(summary(samples));
        s.update_endpoints = Some(summary(samples));
        c
    }

    #[test]
    fn the_seeds_question_is_answered_between_iptables_and_ipvs_alone() {
        let fig = |mode, add, ns: f64| {
            with_transit(
                case(mode, 100, 400.0, add, 1.0),
                900.0,
                3000.0,
                ns,
                40.0,
                est(ns, ns - 0.5, ns + 0.5),
            )
        };
        let mut ipvs = fig("ipvs", 60.0, 0.0);
        ipvs.ipvs_scheduler = Some("rr".into());
        // nftables is best at both, so the first row names it; the seed's row does not.
        let r = results(
            "6.1.0",
            vec![
                fig("iptables", 150.0, 15.0),
                fig("nftables", 18.0, 0.0),
                ipvs,
            ],
        );
        let rows = cases::rows(std::slice::from_ref(&r));
        let a = answers(&rows);
        assert_eq!(a[0].update.winner(), Some("nftables"));
        let (update, lookup) = a[0].iptables_or_ipvs.as_ref().expect("both ran");
        assert_eq!(update.winner(), Some("ipvs/rr"));
        assert!(describe(update, "ms", "faster").contains("faster than iptables"));
        assert_eq!(lookup.winner(), Some("ipvs/rr"));
        // Without IPVS in that environment, no such row.
        let r = results(
            "6.18.0",
            vec![fig("iptables", 150.0, 15.0), fig("nftables", 18.0, 0.0)],
        );
        let rows = cases::rows(std::slice::from_ref(&r));
        assert_eq!(answers(&rows)[0].iptables_or_ipvs, None);
    }

    #[test]
    fn a_measurable_winner_and_a_tie_within_noise() {
        let ipt = with_transit(
            case("iptables", 1000, 400.0, 150.0, 1.0),
            900.0,
            3000.0,
            15.0,
            40.0,
            est(15.0, 14.5, 15.5),
        );
        let nft = with_transit(
            case("nftables", 1000, 90.0, 18.0, 1.0),
            900.0,
            3100.0,
            0.0,
            40.0,
            est(0.0, -0.1, 0.1),
        );
        let r = results("6.18.0", vec![ipt, nft]);
        let rows = cases::rows(std::slice::from_ref(&r));
        let a = answers(&rows);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].scale, (1000, 10));
        assert_eq!(a[0].update.winner(), Some("nftables"));
        assert_eq!(a[0].lookup.winner(), Some("nftables"));
        let text = describe(&a[0].update, "ms", "faster");
        assert!(
            text.starts_with("nftables: 18.00 ms (95% CI 17.97..18.04), add service; faster than iptables by 132.00 ms (95% CI "),
            "{text}"
        );
        // iptables' last position: 3,000 + 15 x 999 = 17,985 ns.
        let text = describe(&a[0].lookup, "ns", "cheaper");
        assert!(
            text.starts_with(
                "nftables: 3100 ns (95% CI 3060..3140), SYN transit to svc-999; cheaper than iptables by 14885 ns (95% CI "
            ),
            "{text}"
        );

        // Two modes within each other's noise: no winner, the interval instead.
        let spread: Vec<f64> = (0..10).map(|i| 10.0 + 2.0 * i as f64).collect();
        let shifted: Vec<f64> = spread.iter().map(|v| v + 1.0).collect();
        let r = results(
            "6.18.0",
            vec![
                noisy(case("iptables", 100, 1.0, 1.0, 1.0), &shifted),
                noisy(case("nftables", 100, 1.0, 1.0, 1.0), &spread),
            ],
        );
        let rows = cases::rows(std::slice::from_ref(&r));
        let a = answers(&rows);
        assert_eq!(a[0].update.winner(), None);
        let text = describe(&a[0].update, "ms", "faster");
        assert!(
            text.starts_with("nftables and iptables cannot be told apart: +1.00 ms (95% CI "),
            "{text}"
        );
        assert_eq!(
            describe(&a[0].lookup, "ns", "cheaper"),
            "not measured: no in-kernel timing in these results"
        );
    }

    #[test]
    fn one_mode_or_too_few_samples_declare_no_winner() {
        let r = results("6.18.0", vec![case("nftables", 100, 1.0, 4.0, 1.0)]);
        let rows = cases::rows(std::slice::from_ref(&r));
        let a = answers(&rows);
        assert_eq!(
            describe(&a[0].update, "ms", "faster"),
            "only nftables measured: 4.00 ms (95% CI 3.97..4.04), add service"
        );
        let r = results(
            "6.18.0",
            vec![
                noisy(case("iptables", 100, 1.0, 1.0, 1.0), &[9.0, 9.0]),
                noisy(case("nftables", 100, 1.0, 1.0, 1.0), &[3.0, 3.0]),
            ],
        );
        let rows = cases::rows(std::slice::from_ref(&r));
        let a = answers(&rows);
        assert_eq!(a[0].update.winner(), None);
        assert!(describe(&a[0].update, "ms", "faster")
            .starts_with("no interval to tell nftables from iptables (nftables: 3.00 ms (no interval: fewer than 3 samples)"));
    }
}
