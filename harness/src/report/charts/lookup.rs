//! The lookup cost chart, per environment: the SYN's in-kernel transit (p50, its 95%
//! interval as whiskers) against the service's position, one series per mode at its
//! largest scale with a transit pass, and each mode's direct connection (no DNAT) as a
//! thin flat line. The picture the iptables-against-IPVS debate is about. Beside it,
//! when a shaped set gave the pass targets on further paths, the opening packet's
//! transit per path (direct, the last ClusterIP position, NodePort, affinity, UDP,
//! Local), one bar per mode.

use std::collections::BTreeMap;

use super::{Bars, Body, Chart, Place, Section, Series};
use crate::analysis::cases::Row;
use crate::analysis::lookup::{self, TransitLookup};
use crate::results::TransitPath;

pub(super) const CAPTION: &str = "The SYN's transit through the node, from tc ingress on \
     the client's veth to tc egress on the backend's, timed inside the kernel: its p50 per \
     service position with the median's 95% interval as whiskers, for each mode at its \
     largest scale with a transit pass. The whiskers span that target's packets within \
     the first replicate of one run; the cost per position beside the chart spans the \
     targets and replicates (the table says which). Thin flat lines: the same pass's \
     direct connection (no DNAT), the floor every VIP pays on top of.";

pub(super) const PATHS_CAPTION: &str = "The opening packet's transit through the node \
     per lookup path, p50, for each mode at its largest scale whose pass had targets on \
     other paths: direct (no DNAT), the last ClusterIP position, a NodePort service dialled \
     at the node's address, a ClientIP-affinity service, a UDP port (its first datagram, \
     timed as the SYN is) and an externalTrafficPolicy: Local service through its node \
     port. Each path is one service, at the rule position the table gives. A missing bar: \
     that mode has no target on the path (the table says why).";

/// Per mode, its largest scale whose case passes `keep`.
fn largest(
    rows: &[Row<'_>],
    keep: impl Fn(&TransitLookup) -> bool,
) -> BTreeMap<String, (u64, TransitLookup)> {
    let mut out: BTreeMap<String, (u64, TransitLookup)> = BTreeMap::new();
    for r in rows {
        let Some(t) = lookup::transit(r.case).filter(|t| keep(t)) else {
            continue;
        };
        if out.get(&r.mode()).is_none_or(|(n, _)| r.case.services > *n) {
            out.insert(r.mode(), (r.case.services, t));
        }
    }
    out
}

pub(super) fn charts(rows: &[Row<'_>], place: &Place<'_>) -> Vec<Chart> {
    let mut out = vec![positions_chart(rows, place)];
    out.extend(paths_chart(rows, place));
    out
}

/// The per-path bars; `None` when no case has a target beyond `clusterip`.
fn paths_chart(rows: &[Row<'_>], place: &Place<'_>) -> Option<Chart> {
    let largest = largest(rows, |t| !t.paths.is_empty());
    if largest.is_empty() {
        return None;
    }
    let mut categories = vec!["direct".to_string(), "clusterip (last)".to_string()];
    categories.extend(TransitPath::ALL[1..].iter().map(|p| p.name().to_string()));
    let series = largest
        .iter()
        .map(|(mode, (services, t))| {
            let mut v = vec![
                t.direct.map(|d| d.estimate),
                t.last().map(|p| p.syn_ns.estimate),
            ];
            v.extend(
                TransitPath::ALL[1..]
                    .iter()
                    .map(|p| t.path(*p).map(|x| x.syn_ns.estimate)),
            );
            (format!("{mode} ({services} svc)"), v)
        })
        .collect();
    Some(Chart {
        name: place.name("lookup_paths"),
        title: place.title("Lookup cost per path: the opening packet's in-kernel transit"),
        x_label: "path".into(),
        y_label: "SYN or first datagram transit, ns (p50)".into(),
        body: Body::Bars(Bars { categories, series }),
        section: Section::Lookup,
        caption: PATHS_CAPTION.into(),
    })
}

fn positions_chart(rows: &[Row<'_>], place: &Place<'_>) -> Chart {
    // Per mode, the largest scale with a transit pass.
    let largest = largest(rows, |_| true);
    let mut series = Vec::new();
    for (mode, (services, t)) in &largest {
        let color = place.color(mode);
        series.push(Series {
            label: format!("{mode} ({services} svc)"),
            points: t
                .positions
                .iter()
                .map(|p| (p.service_index as f64, p.syn_ns.estimate))
                .collect(),
            whiskers: t
                .positions
                .iter()
                .map(|p| (p.syn_ns.ci95[0], p.syn_ns.ci95[1]))
                .collect(),
            secondary: false,
            color,
        });
        if let (Some(d), Some(last)) = (t.direct, t.last()) {
            series.push(Series {
                label: format!("{mode} direct"),
                points: vec![(0.0, d.estimate), (last.service_index as f64, d.estimate)],
                whiskers: Vec::new(),
                secondary: true,
                color,
            });
        }
    }
    Chart {
        name: place.name("lookup_cost"),
        title: place.title("Lookup cost: the SYN's in-kernel transit by service position"),
        x_label: "service position (0 = first in rule order)".into(),
        y_label: "SYN transit, ns (p50)".into(),
        body: Body::Lines {
            series,
            log_x: false,
            log_y: false,
        },
        section: Section::Lookup,
        caption: CAPTION.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, results, with_paths, with_transit};
    use crate::analysis::cases::{self, EnvKey};

    #[test]
    fn paths_get_their_own_bars_per_mode_and_plain_runs_none() {
        let timed = |mode: &str| {
            with_transit(
                case(mode, 100, 1.0, 1.0, 1.0),
                900.0,
                3000.0,
                1.0,
                30.0,
                est(1.0, 0.5, 1.5),
            )
        };
        let ipt = with_paths(
            timed("iptables"),
            &[
                (TransitPath::NodePort, 100, 5000.0),
                (TransitPath::Udp, 101, 4000.0),
            ],
            &[],
        );
        let nft = with_paths(
            timed("nftables"),
            &[(TransitPath::NodePort, 100, 3500.0)],
            &[(TransitPath::Udp, "no sample")],
        );
        let env = EnvKey {
            kind: "host".into(),
            kernel: "6.18.0".into(),
        };
        let modes = ["iptables".to_string(), "nftables".into()];
        let place = Place {
            env: &env,
            several: false,
            modes: &modes,
        };
        let r = results("6.18.0", vec![ipt, nft]);
        let rows = cases::rows(std::slice::from_ref(&r));
        let all = charts(&rows, &place);
        assert_eq!(all.len(), 2);
        let c = &all[1];
        assert_eq!(c.name, "lookup_paths");
        assert_eq!(c.section, Section::Lookup);
        let Body::Bars(b) = &c.body else { panic!() };
        assert_eq!(
            b.categories,
            [
                "direct",
                "clusterip (last)",
                "nodeport",
                "affinity",
                "udp",
                "local"
            ]
        );
        assert_eq!(b.series[0].0, "iptables (100 svc)");
        assert_eq!(
            b.series[0].1,
            [
                Some(900.0),
                Some(3099.0),
                Some(5000.0),
                None,
                Some(4000.0),
                None
            ]
        );
        assert_eq!(b.series[1].1[2], Some(3500.0));
        assert_eq!(b.series[1].1[4], None);
        // No path targets anywhere: the positions chart alone.
        let r = results("6.18.0", vec![timed("iptables")]);
        let rows = cases::rows(std::slice::from_ref(&r));
        assert_eq!(charts(&rows, &place).len(), 1);
    }

    #[test]
    fn one_series_per_mode_at_its_largest_scale_with_whiskers() {
        let ipt = |n| {
            with_transit(
                case("iptables", n, 1.0, 1.0, 1.0),
                900.0,
                3000.0,
                15.0,
                30.0,
                est(15.0, 14.5, 15.5),
            )
        };
        let nft = with_transit(
            case("nftables", 100, 1.0, 1.0, 1.0),
            900.0,
            3100.0,
            0.0,
            20.0,
            est(0.0, -0.1, 0.1),
        );
        let no_transit = case("ipvs", 100, 1.0, 1.0, 1.0);
        let r = results("6.18.0", vec![ipt(100), ipt(1000), nft, no_transit]);
        let rows = cases::rows(std::slice::from_ref(&r));
        let env = EnvKey {
            kind: "host".into(),
            kernel: "6.18.0".into(),
        };
        let modes = ["iptables".to_string(), "ipvs/rr".into(), "nftables".into()];
        let place = Place {
            env: &env,
            several: false,
            modes: &modes,
        };
        let c = &charts(&rows, &place)[0];
        assert_eq!(c.name, "lookup_cost");
        assert_eq!(
            c.title,
            "Lookup cost: the SYN's in-kernel transit by service position (host 6.18.0)"
        );
        let Body::Lines { series, .. } = &c.body else {
            panic!()
        };
        let labels: Vec<(&str, usize, bool)> = series
            .iter()
            .map(|s| (s.label.as_str(), s.color, s.secondary))
            .collect();
        assert_eq!(
            labels,
            [
                ("iptables (1000 svc)", 0, false),
                ("iptables direct", 0, true),
                ("nftables (100 svc)", 2, false),
                ("nftables direct", 2, true),
            ]
        );
        assert_eq!(series[0].points.len(), 9);
        assert_eq!(series[0].points[8], (999.0, 3000.0 + 15.0 * 999.0));
        assert_eq!(series[0].whiskers[8], (17955.0, 18015.0));
        assert_eq!(series[1].points, [(0.0, 900.0), (999.0, 900.0)]);
        assert!(series[1].whiskers.is_empty());
    }
}
