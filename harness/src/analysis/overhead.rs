//! The controller's overhead: kube-proxy's profile minus the floor, for every mode and
//! scale where both ran in one environment, on the full sync and on the p50 of each
//! incremental sync. The floor reaches the identical kernel objects the fastest way
//! kpbench knows, so the difference is what kube-proxy's sync loop adds on top of the
//! kernel's work.
//!
//! **When a difference is told from noise.** The difference of the two medians comes
//! with a 95% bootstrap interval ([`stats::median_difference`]: each side's samples
//! redrawn, a fixed seed, so the interval spans the samples within one run). It is
//! judged by the one rule ([`stats::trend`]) with a margin of a tenth of the floor's
//! p50 ([`stats::relative_margin`]): **grows** (kube-proxy costs more, beyond the
//! margin), **flat** (the whole interval within ±margin), **inconclusive**, or
//! **unexpected** when kube-proxy is significantly faster than the floor, which by
//! construction it cannot be. A side timed fewer than [`stats::MIN_SAMPLES`] times
//! (results from before the full sync was repeated) has no interval and no verdict;
//! the number is shown flagged as such.

use std::collections::BTreeMap;

use crate::analysis::cases::{self, EnvKey, Row, SyncKind};
use crate::analysis::stats::{self, Trend};
use crate::results::{Case, Estimate, Results};

/// kube-proxy minus floor for one kind of sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Overhead {
    pub kind: SyncKind,
    /// kube-proxy's p50, milliseconds.
    pub kube_proxy_ms: f64,
    /// The floor's p50, milliseconds.
    pub floor_ms: f64,
    /// kube-proxy minus floor, milliseconds.
    pub difference_ms: f64,
    /// kube-proxy over floor; `None` when the floor took no time.
    pub ratio: Option<f64>,
    /// The difference of the medians with its 95% bootstrap interval; `None` when a
    /// side has fewer than [`stats::MIN_SAMPLES`] samples.
    pub interval: Option<Estimate>,
}

impl Overhead {
    /// The practical margin: a tenth of the floor's p50, milliseconds.
    pub fn margin(&self) -> f64 {
        stats::relative_margin(self.floor_ms)
    }

    /// The one rule's verdict on the difference with [`Overhead::margin`]; `None`
    /// without an interval (a side timed fewer than [`stats::MIN_SAMPLES`] times).
    pub fn verdict(&self) -> Option<Trend> {
        let e = self.interval.as_ref()?;
        Some(stats::trend(e, self.margin(), stats::Forbidden::Down))
    }
}

/// A mode at one scale where both profiles ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub env: EnvKey,
    /// The mode with its IPVS scheduler.
    pub mode: String,
    pub services: u64,
    pub endpoints_per_service: u64,
    /// The release kube-proxy's profile replayed.
    pub kube_proxy_version: Option<String>,
    /// One per kind of sync both measured, full sync first.
    pub lines: Vec<Overhead>,
}

type Key = (EnvKey, String, u64, u64);

fn key(r: &Row<'_>) -> Key {
    (
        r.env(),
        cases::base_mode(r.case),
        r.case.services,
        r.case.endpoints_per_service,
    )
}

/// Every kube-proxy case with a floor case of the same environment, mode and scale
/// (from the same run when there is one), sorted by environment, mode and scale.
pub fn pairs(results: &[Results]) -> Vec<Pair> {
    let rows: Vec<Row<'_>> = cases::rows(results)
        .into_iter()
        .filter(|r| r.ok())
        .collect();
    let mut floors: BTreeMap<Key, Vec<&Row<'_>>> = BTreeMap::new();
    for r in rows.iter().filter(|r| cases::is_floor(r.case)) {
        floors.entry(key(r)).or_default().push(r);
    }
    let mut out = Vec::new();
    for kp in rows
        .iter()
        .filter(|r| r.case.profile.as_deref() == Some("kube-proxy"))
    {
        let k = key(kp);
        let Some(candidates) = floors.get(&k) else {
            continue;
        };
        let floor = candidates
            .iter()
            .find(|f| std::ptr::eq(f.run, kp.run))
            .unwrap_or(&candidates[0]);
        let (env, mode, services, endpoints_per_service) = k;
        out.push(Pair {
            env,
            mode,
            services,
            endpoints_per_service,
            kube_proxy_version: kp.case.kube_proxy_version.clone(),
            lines: lines(kp.case, floor.case),
        });
    }
    out.sort_by(|a, b| {
        (
            &a.env,
            &a.mode,
            a.services,
            a.endpoints_per_service,
            &a.kube_proxy_version,
        )
            .cmp(&(
                &b.env,
                &b.mode,
                b.services,
                b.endpoints_per_service,
                &b.kube_proxy_version,
            ))
    });
    out
}

/// kube-proxy minus floor for every kind of sync both cases measured.
pub fn lines(kube_proxy: &Case, floor: &Case) -> Vec<Overhead> {
    SyncKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let (k, f) = (kind.pick(kube_proxy)?, kind.pick(floor)?);
            Some(Overhead {
                kind,
                kube_proxy_ms: k.p50_ms,
                floor_ms: f.p50_ms,
                difference_ms: k.p50_ms - f.p50_ms,
                ratio: (f.p50_ms > 0.0).then(|| k.p50_ms / f.p50_ms),
                interval: stats::median_difference(&k.samples_ms, &f.samples_ms),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, profiled, results, summary};

    fn ten(from: f64) -> Vec<f64> {
        (0..10).map(|i| from + 2.0 * i as f64).collect()
    }

    #[test]
    fn differences_are_judged_by_the_one_rule_with_a_tenth_of_the_floor_as_margin() {
        // add: 50, 52, ..., 68 against 20, 22, ..., 38: medians (nearest rank, the 5th)
        // 58 and 28, and every redrawn difference lies within 30 +- 18.
        let mut kp = profiled(
            "iptables",
            1000,
            "kube-proxy",
            &[700.0, 710.0, 690.0],
            &ten(50.0),
        );
        let mut floor = profiled(
            "iptables",
            1000,
            "floor",
            &[300.0, 305.0, 295.0],
            &ten(20.0),
        );
        // update: 10..14 against 8..14, medians 12 and 11: within each other's spread.
        kp.sync.as_mut().unwrap().update_endpoints = Some(summary(&[10.0, 11.0, 12.0, 13.0, 14.0]));
        floor.sync.as_mut().unwrap().update_endpoints =
            Some(summary(&[8.0, 10.0, 11.0, 13.0, 14.0]));
        let l = lines(&kp, &floor);
        assert_eq!(l.len(), 4);
        let full = &l[0];
        assert_eq!((full.kind, full.difference_ms), (SyncKind::Full, 400.0));
        // Three samples a side: medians 700 and 300, redrawn ones 690..710 and 295..305.
        let i = full.interval.unwrap();
        assert_eq!(i.estimate, 400.0);
        assert!(i.ci95[0] >= 385.0 && i.ci95[1] <= 415.0, "{i:?}");
        assert_eq!(full.verdict(), Some(Trend::Grows));
        let add = &l[1];
        assert_eq!(add.kind, SyncKind::AddService);
        assert_eq!((add.kube_proxy_ms, add.floor_ms), (58.0, 28.0));
        assert_eq!(add.difference_ms, 30.0);
        assert_eq!(add.ratio, Some(58.0 / 28.0));
        let i = add.interval.unwrap();
        assert!(
            i.ci95[0] >= 12.0 && i.ci95[1] <= 48.0 && i.ci95[0] > 0.0,
            "{i:?}"
        );
        assert_eq!(add.verdict(), Some(Trend::Grows));
        let update = &l[3];
        assert_eq!(update.difference_ms, 1.0);
        assert!(update.interval.unwrap().includes_zero());
        // 1 ms against a margin of 1.1 ms (a tenth of the floor's 11), with an interval
        // wider than that: neither grows nor flat.
        assert_eq!(update.verdict(), Some(Trend::Inconclusive));
    }

    #[test]
    fn a_side_without_enough_samples_has_no_interval() {
        // A full sync measured once (results from before it was repeated).
        let kp = profiled("nftables", 1000, "kube-proxy", &[700.0], &ten(50.0));
        let floor = profiled("nftables", 1000, "floor", &[300.0], &ten(20.0));
        let full = &lines(&kp, &floor)[0];
        assert_eq!(full.kind, SyncKind::Full);
        assert_eq!(full.difference_ms, 400.0);
        assert_eq!(full.interval, None);
        assert_eq!(full.verdict(), None);
    }

    #[test]
    fn pairs_match_environment_mode_and_scale() {
        let kp = |n| profiled("nftables", n, "kube-proxy", &[700.0], &ten(50.0));
        let floor = |n| profiled("nftables", n, "floor", &[300.0], &ten(20.0));
        let host = results(
            "6.18.0",
            vec![
                kp(100),
                kp(1000),
                floor(1000),
                floor(5000),
                case("iptables", 1000, 50.0, 5.0, 1.0),
            ],
        );
        let mut lab = results("6.18.0", vec![floor(100)]);
        lab.environments[0].kind = "lab-kvm".into();
        let p = pairs(&[host, lab]);
        // 100 has its floor in the lab only; 5,000 has no kube-proxy case.
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].mode.as_str(), p[0].services), ("nftables", 1000));
        assert_eq!(p[0].env.label(), "host 6.18.0");
        assert_eq!(p[0].kube_proxy_version.as_deref(), Some("1.36"));
        assert_eq!(p[0].lines[0].difference_ms, 400.0);
    }
}
