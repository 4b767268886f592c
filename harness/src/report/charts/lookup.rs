//! The lookup cost chart, per environment: the SYN's in-kernel transit (p50, its 95%
//! interval as whiskers) against the service's position, one series per mode at its
//! largest scale with a transit pass, and each mode's direct connection (no DNAT) as a
//! thin flat line. The picture the iptables-against-IPVS debate is about.

use std::collections::BTreeMap;

use super::{Body, Chart, Place, Section, Series};
use crate::analysis::cases::Row;
use crate::analysis::lookup::{self, TransitLookup};

pub(super) const CAPTION: &str = "The SYN's transit through the node, from tc ingress on \
     the client's veth to tc egress on the backend's, timed inside the kernel: its p50 per \
     service position with the median's 95% interval as whiskers, for each mode at its \
     largest scale with a transit pass. The whiskers span that target's packets within \
     the first replicate of one run; the cost per position beside the chart spans the \
     targets and replicates (the table says which). Thin flat lines: the same pass's \
     direct connection (no DNAT), the floor every VIP pays on top of.";

pub(super) fn charts(rows: &[Row<'_>], place: &Place<'_>) -> Vec<Chart> {
    // Per mode, the largest scale with a transit pass.
    let mut largest: BTreeMap<String, (u64, TransitLookup)> = BTreeMap::new();
    for r in rows {
        let Some(t) = lookup::transit(r.case) else {
            continue;
        };
        if largest
            .get(&r.mode())
            .is_none_or(|(n, _)| r.case.services > *n)
        {
            largest.insert(r.mode(), (r.case.services, t));
        }
    }
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
    vec![Chart {
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
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, results, with_transit};
    use crate::analysis::cases::{self, EnvKey};

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
