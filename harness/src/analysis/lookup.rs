//! What a lookup costs in one case, every difference with its interval.
//!
//! - **In-kernel transit** (`datapath.transit`), when present: each target's SYN p50
//!   with its order-statistic interval, so the VIP against direct (the last position's
//!   p50 minus direct's) and the last position against the first are differences of
//!   estimates ([`stats::difference_of_estimates`]), and the cost per service position
//!   is the pass's fitted `ns_per_service` with its bootstrap interval.
//! - **End to end**, otherwise: each request-latency phase's p50 with the interval its
//!   recorded histogram gives (order statistics over every request). The phases ran one
//!   after the other, so a drift of the machine between them is not in the interval;
//!   results without histograms have no interval and no difference is drawn from them.

use std::collections::BTreeMap;

use crate::analysis::cases::{self, EnvKey, Row};
use crate::analysis::stats;
use crate::results::{Case, Estimate, Results, Spans, Transit, TransitPath, TransitTarget, Trend};

/// One service position of the transit pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// The service's position in rule order (0 = first).
    pub service_index: u64,
    /// The SYN's transit p50, ns, with its interval.
    pub syn_ns: Estimate,
}

/// The target of a path beyond `clusterip` (a NodePort through the node's address, an
/// affinity service, a UDP port, an `externalTrafficPolicy: Local` service).
#[derive(Debug, Clone, PartialEq)]
pub struct PathTarget {
    pub path: TransitPath,
    /// The service it goes through, and its position in rule order.
    pub service_index: Option<u64>,
    /// The opening packet's transit p50, ns, with its interval: the SYN, or for `udp`
    /// the first datagram of the flow.
    pub syn_ns: Estimate,
    pub samples: u64,
}

/// The transit figures of a case.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitLookup {
    /// Direct (no DNAT): the SYN's transit p50, ns.
    pub direct: Option<Estimate>,
    /// Service positions, first to last.
    pub positions: Vec<Position>,
    /// The fitted cost per service position, ns.
    pub ns_per_service: Estimate,
    /// The verdict the results record with its margin (absent in older results).
    pub verdict: Option<(Trend, f64)>,
    /// What the cost per position's interval spans (absent in older results).
    pub spans: Option<Spans>,
    pub probe_overhead_pct: f64,
    /// The overhead with its interval (absent in older results).
    pub probe_overhead: Option<Estimate>,
    pub unmatched: u64,
    /// The other paths' targets, in [`TransitPath::ALL`] order.
    pub paths: Vec<PathTarget>,
    /// The paths the case has no target for, with why (empty in older results and for
    /// plain N x E sets).
    pub absent_paths: BTreeMap<TransitPath, String>,
}

fn syn(t: &TransitTarget) -> Estimate {
    Estimate {
        estimate: t.syn_ns.p50,
        ci95: t.syn_ns.ci95_p50,
    }
}

impl TransitLookup {
    pub fn from_transit(t: &Transit) -> TransitLookup {
        let mut positions: Vec<Position> = t
            .positions()
            .filter_map(|x| {
                Some(Position {
                    service_index: x.service_index?,
                    syn_ns: syn(x),
                })
            })
            .collect();
        positions.sort_by_key(|p| p.service_index);
        TransitLookup {
            direct: t
                .targets
                .iter()
                .find(|x| x.path == TransitPath::ClusterIp && x.service_index.is_none())
                .map(syn),
            positions,
            ns_per_service: t.ns_per_service.fit(),
            verdict: t.ns_per_service.verdict.zip(t.ns_per_service.margin),
            spans: t.ns_per_service.spans,
            probe_overhead_pct: t.probe_overhead_pct,
            probe_overhead: t.probe_overhead_ci95.map(|ci95| Estimate {
                estimate: t.probe_overhead_pct,
                ci95,
            }),
            unmatched: t.unmatched,
            paths: {
                let mut v: Vec<PathTarget> = t
                    .path_targets()
                    .map(|x| PathTarget {
                        path: x.path,
                        service_index: x.service_index,
                        syn_ns: syn(x),
                        samples: x.samples,
                    })
                    .collect();
                v.sort_by_key(|p| p.path);
                v
            },
            absent_paths: t.absent_paths.clone(),
        }
    }

    /// The target of `path`: a service position's figure is not one (see
    /// [`TransitLookup::positions`]).
    pub fn path(&self, path: TransitPath) -> Option<&PathTarget> {
        self.paths.iter().find(|p| p.path == path)
    }

    /// The opening packet of `path`'s target against direct's, ns, with its interval.
    pub fn path_vs_direct(&self, path: TransitPath) -> Option<Estimate> {
        Some(stats::difference_of_estimates(
            self.path(path)?.syn_ns,
            self.direct?,
        ))
    }

    pub fn first(&self) -> Option<&Position> {
        self.positions.first()
    }

    /// The last service position measured: the most rules ahead of it.
    pub fn last(&self) -> Option<&Position> {
        self.positions.last()
    }

    /// The cost per position with its interval, verdict, margin and span in words:
    /// "2.41 [2.30, 2.52] ns, grows (margin ±0.500 ns), within one run, across targets".
    pub fn per_service_words(&self) -> String {
        let mut out = stats::with_ci(&self.ns_per_service, "ns");
        if let Some((v, m)) = self.verdict {
            out.push_str(&format!(", {}", stats::with_margin(v, m, "ns")));
        }
        if let Some(s) = self.spans {
            out.push_str(&format!(", {}", s.words()));
        }
        out
    }

    /// The probe overhead in words ("not resolved (interval ...)", "no measurable
    /// overhead", or the figure with its interval); the bare figure in results without
    /// an interval.
    pub fn overhead_words(&self) -> String {
        match &self.probe_overhead {
            Some(e) => stats::overhead_words(e),
            None => format!("{}% (no interval)", stats::num(self.probe_overhead_pct)),
        }
    }

    /// The last position's SYN p50 minus direct's, ns.
    pub fn vip_vs_direct(&self) -> Option<Estimate> {
        Some(stats::difference_of_estimates(
            self.last()?.syn_ns,
            self.direct?,
        ))
    }

    /// The last position's SYN p50 minus the first's, ns; `None` with one position.
    pub fn last_vs_first(&self) -> Option<Estimate> {
        let (first, last) = (self.first()?, self.last()?);
        (last.service_index > first.service_index)
            .then(|| stats::difference_of_estimates(last.syn_ns, first.syn_ns))
    }
}

/// The iptables modes' costs per service position in each environment (largest scale).
pub fn iptables_slopes(ok: &[Row<'_>]) -> BTreeMap<EnvKey, (String, Estimate)> {
    let mut out: BTreeMap<EnvKey, (u64, String, Estimate)> = BTreeMap::new();
    for r in ok
        .iter()
        .filter(|r| r.case.mode.starts_with("iptables") && !cases::is_floor(r.case))
    {
        let Some(t) = transit(r.case) else {
            continue;
        };
        let e = out
            .entry(r.env())
            .or_insert((0, r.mode(), t.ns_per_service));
        // The largest scale, and of those the cheapest iptables mode: the strictest bar.
        if r.case.services > e.0
            || (r.case.services == e.0 && t.ns_per_service.estimate < e.2.estimate)
        {
            *e = (r.case.services, r.mode(), t.ns_per_service);
        }
    }
    out.into_iter().map(|(k, (_, m, e))| (k, (m, e))).collect()
}

/// The lookup margin in `env`: 0.5 ns per position, or a tenth of the iptables slope
/// there (`iptables`, from [`iptables_slopes`]), whichever is larger.
pub fn margin(iptables: &BTreeMap<EnvKey, (String, Estimate)>, env: &EnvKey) -> f64 {
    stats::lookup_margin(iptables.get(env).map(|(_, e)| e.estimate))
}

/// The cost per position's verdict and margin: the one the results record, or, for
/// results from before verdicts were recorded, the one rule's call with `margin` (the
/// environment's, [`margin`], where the caller knows it).
pub fn verdict(t: &TransitLookup, margin: f64) -> (Trend, f64) {
    t.verdict
        .unwrap_or_else(|| (stats::lookup_trend(&t.ns_per_service, margin), margin))
}

/// Decides every case's cost per position by the one rule with the margin of its
/// environment, into `datapath.transit.ns_per_service.{verdict, margin}`: the run's
/// recorder calls it before each write, so the results carry the verdict the report,
/// the claims and the planner draw.
pub fn decide(r: &mut Results) {
    let margins: Vec<Option<f64>> = {
        let all = cases::rows(std::slice::from_ref(&*r));
        let ok: Vec<Row<'_>> = all.iter().copied().filter(Row::ok).collect();
        let ipt = iptables_slopes(&ok);
        all.iter()
            .map(|row| row.ok().then(|| margin(&ipt, &row.env())))
            .collect()
    };
    for (case, m) in r.cases.iter_mut().zip(margins) {
        let (Some(m), Some(t)) = (m, case.datapath.as_mut().and_then(|d| d.transit.as_mut()))
        else {
            continue;
        };
        let s = &mut t.ns_per_service;
        s.verdict = Some(stats::lookup_trend(&s.fit(), m));
        s.margin = Some(m);
    }
}

/// The case's transit figures, when the pass ran.
pub fn transit(c: &Case) -> Option<TransitLookup> {
    c.datapath
        .as_ref()?
        .transit
        .as_ref()
        .map(TransitLookup::from_transit)
}

/// Why a case has no transit figures, in words.
pub fn transit_missing(c: &Case) -> String {
    match c.datapath.as_ref() {
        None => "data path not measured".into(),
        Some(d) => match &d.transit_error {
            Some(e) => format!("in-kernel timing did not run: {e}"),
            None => "no in-kernel timing in these results".into(),
        },
    }
}

/// End-to-end request p50 of the case's phases, us, each with its histogram's interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndToEnd {
    pub direct: Option<Estimate>,
    pub first: Option<Estimate>,
    pub last: Option<Estimate>,
}

impl EndToEnd {
    /// Last through the VIP minus direct, us.
    pub fn vip_vs_direct(&self) -> Option<Estimate> {
        Some(stats::difference_of_estimates(self.last?, self.direct?))
    }

    pub fn last_vs_first(&self) -> Option<Estimate> {
        Some(stats::difference_of_estimates(self.last?, self.first?))
    }
}

/// The end-to-end p50s with intervals; a phase without a readable histogram has none.
pub fn end_to_end(c: &Case) -> EndToEnd {
    let phase = |name: &str| -> Option<Estimate> {
        let t = c
            .datapath
            .as_ref()?
            .targets
            .iter()
            .find(|t| t.target == name)?;
        let ci = histogram_median_ci(t.hdr_histogram_base64.as_deref()?)?;
        let p50 = t.latency_us.p50;
        Some(Estimate {
            estimate: p50,
            ci95: [ci[0].min(p50), ci[1].max(p50)],
        })
    };
    EndToEnd {
        direct: phase("direct"),
        first: phase("first"),
        last: phase("last"),
    }
}

/// The median's order-statistic interval from an HdrHistogram V2 (deflate) in base64.
pub fn histogram_median_ci(b64: &str) -> Option<[f64; 2]> {
    use hdrhistogram::serialization::Deserializer;
    let bytes = data_encoding::BASE64.decode(b64.as_bytes()).ok()?;
    let h: hdrhistogram::Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .ok()?;
    let n = h.len();
    if n == 0 {
        return None;
    }
    let (lo, hi) = stats::median_ci_ranks(usize::try_from(n).ok()?);
    // The value of 0-based rank r: the smallest whose cumulative count reaches r + 1.
    let at = |r: usize| h.value_at_quantile((r as f64 + 1.0) / n as f64) as f64;
    Some([at(lo), at(hi)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, with_paths, with_transit};

    #[test]
    fn path_targets_are_no_position_and_differ_from_direct() {
        let c = with_transit(
            case("iptables", 1000, 1.0, 1.0, 1.0),
            3000.0,
            4000.0,
            5.0,
            30.0,
            est(5.0, 4.5, 5.5),
        );
        let c = with_paths(
            c,
            &[
                (TransitPath::Udp, 10, 4500.0),
                (TransitPath::NodePort, 20, 9000.0),
            ],
            &[(TransitPath::Local, "the service set has no Local service")],
        );
        let t = transit(&c).unwrap();
        assert_eq!(t.positions.len(), 9, "the path targets are no position");
        assert_eq!(t.last().unwrap().service_index, 999);
        assert_eq!(t.direct.unwrap().estimate, 3000.0);
        let paths: Vec<TransitPath> = t.paths.iter().map(|p| p.path).collect();
        assert_eq!(paths, [TransitPath::NodePort, TransitPath::Udp]);
        assert_eq!(t.path(TransitPath::Udp).unwrap().service_index, Some(10));
        let d = t.path_vs_direct(TransitPath::NodePort).unwrap();
        assert_eq!(d.estimate, 6000.0);
        // Both medians +- 20 and +- 30 ns: the halves in quadrature.
        let half = (20.0f64.powi(2) + 30.0f64.powi(2)).sqrt();
        assert!((d.ci95[1] - d.estimate - half).abs() < 1e-9, "{d:?}");
        assert_eq!(t.path_vs_direct(TransitPath::Affinity), None);
        assert!(t.absent_paths[&TransitPath::Local].contains("Local"));
    }

    #[test]
    fn transit_differences_carry_intervals() {
        // 9 positions over 1,000 services: 0, 124, ..., 999; 3,000 + 5 ns per position.
        let c = with_transit(
            case("iptables", 1000, 1.0, 1.0, 1.0),
            900.0,
            3000.0,
            5.0,
            30.0,
            est(5.0, 4.9, 5.1),
        );
        let t = transit(&c).unwrap();
        assert_eq!(t.positions.len(), 9);
        assert_eq!(t.first().unwrap().service_index, 0);
        assert_eq!(t.last().unwrap().syn_ns, est(7995.0, 7965.0, 8025.0));
        assert_eq!(t.direct, Some(est(900.0, 870.0, 930.0)));
        // Halves of 30 and 30 in quadrature: 30 sqrt 2.
        let h = 30.0 * 2f64.sqrt();
        let d = t.vip_vs_direct().unwrap();
        assert_eq!(d.estimate, 7095.0);
        assert!((d.ci95[0] - (7095.0 - h)).abs() < 1e-9);
        let lf = t.last_vs_first().unwrap();
        assert_eq!(lf.estimate, 4995.0);
        assert!((lf.ci95[1] - (4995.0 + h)).abs() < 1e-9);
        assert_eq!(t.ns_per_service, est(5.0, 4.9, 5.1));
        let plain = case("iptables", 1000, 1.0, 1.0, 1.0);
        assert!(transit(&plain).is_none());
        assert_eq!(
            transit_missing(&plain),
            "no in-kernel timing in these results"
        );
        let mut failed = plain.clone();
        failed.datapath.as_mut().unwrap().transit_error = Some("needs root".into());
        assert_eq!(
            transit_missing(&failed),
            "in-kernel timing did not run: needs root"
        );
    }

    #[test]
    fn the_recorded_verdict_takes_the_margin_of_its_environment() {
        use crate::analysis::cases::fixtures::results;
        use crate::results::Trend;
        let legacy = with_transit(
            case("iptables-legacy", 1000, 1.0, 1.0, 1.0),
            900.0,
            3000.0,
            15.0,
            30.0,
            est(15.0, 14.0, 16.0),
        );
        // Inside ±1.5 (a tenth of iptables-legacy's), outside the 0.5 floor.
        let ipvs = with_transit(
            case("ipvs", 1000, 1.0, 1.0, 1.0),
            900.0,
            3000.0,
            0.0,
            30.0,
            est(0.2, -1.0, 1.2),
        );
        let mut r = results("6.1.0", vec![legacy, ipvs]);
        decide(&mut r);
        let slope = |i: usize| {
            r.cases[i]
                .datapath
                .as_ref()
                .unwrap()
                .transit
                .as_ref()
                .unwrap()
                .ns_per_service
        };
        assert_eq!(slope(0).verdict, Some(Trend::Grows));
        assert_eq!(slope(1).verdict, Some(Trend::Flat));
        assert!((slope(1).margin.unwrap() - 1.5).abs() < 1e-12);
    }

    #[test]
    fn end_to_end_intervals_come_from_the_histograms() {
        let mut c = case("iptables", 1000, 1.0, 1.0, 30.0);
        // Without histograms: no interval, so no difference.
        assert_eq!(end_to_end(&c).vip_vs_direct(), None);
        let hist = |from: u64| {
            let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
            for v in from..from + 10 {
                h.record(v).unwrap();
            }
            let mut bytes = Vec::new();
            use hdrhistogram::serialization::Serializer;
            hdrhistogram::serialization::V2DeflateSerializer::new()
                .serialize(&h, &mut bytes)
                .unwrap();
            data_encoding::BASE64.encode(&bytes)
        };
        let dp = c.datapath.as_mut().unwrap();
        for (t, from) in dp.targets.iter_mut().zip([50, 55, 76]) {
            t.hdr_histogram_base64 = Some(hist(from));
        }
        // 10 requests: the median's interval is the 2nd to the 9th value.
        assert_eq!(histogram_median_ci(&hist(50)), Some([51.0, 58.0]));
        let e = end_to_end(&c);
        assert_eq!(e.direct, Some(est(50.0, 50.0, 58.0)), "widened to the p50");
        assert_eq!(e.last, Some(est(80.0, 77.0, 84.0)));
        assert!(e.vip_vs_direct().unwrap().ci95[0] > 0.0);
        assert_eq!(histogram_median_ci("not base64!"), None);
    }
}
