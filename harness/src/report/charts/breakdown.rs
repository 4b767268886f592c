//! "Where the time goes": per environment, the full sync and the add (incremental) sync
//! of every mode and profile at the largest scale, as stacked bars of the segments of
//! [`crate::analysis::breakdown`]. One chart per environment and kind of sync, so a lab's
//! numbers never share an axis with a host's.

use crate::analysis::breakdown::{self, EnvBars, Segment as Part};
use crate::analysis::cases::{EnvKey, SyncKind};
use crate::results::Results;

use super::{slug, Body, Chart, Section, Segment, Stacked};

/// The kinds of sync broken down, with their chart name and title.
const KINDS: [(SyncKind, &str, &str); 2] = [
    (SyncKind::Full, "breakdown_full_sync", "Full sync"),
    (
        SyncKind::AddService,
        "breakdown_add_service",
        "Add one service (incremental sync)",
    ),
];

/// The breakdown charts, per environment: the full sync, then the add.
pub(super) fn charts(results: &[Results]) -> Vec<Chart> {
    let per_kind: Vec<Vec<EnvBars>> = KINDS
        .iter()
        .map(|(kind, _, _)| breakdown::at_largest(results, *kind))
        .collect();
    let mut envs: Vec<&EnvKey> = per_kind.iter().flatten().map(|e| &e.env).collect();
    envs.sort();
    envs.dedup();
    let several = envs.len() > 1;
    let mut out = Vec::new();
    for env in envs {
        for ((_, name, what), bars) in KINDS.iter().zip(&per_kind) {
            let Some(e) = bars.iter().find(|e| &e.env == env) else {
                continue;
            };
            let name = if several {
                format!("{name}-{}", slug(&env.label()))
            } else {
                name.to_string()
            };
            out.push(chart(name, what, e));
        }
    }
    out
}

/// One environment's bars as a stacked chart; segments that are zero in every bar are
/// left out of it (and its legend), the others keep their colour.
fn chart(name: String, what: &str, e: &EnvBars) -> Chart {
    let categories = e
        .bars
        .iter()
        .map(|b| format!("{} @ {}", b.label, b.services))
        .collect();
    let segments = Part::ALL
        .iter()
        .enumerate()
        .map(|(color, part)| Segment {
            label: part.label().into(),
            color,
            values: e.bars.iter().map(|b| b.split.get(*part)).collect(),
        })
        .filter(|s| s.values.iter().any(|v| *v > 0.0))
        .collect();
    Chart {
        name,
        title: format!("{what}: where the time goes ({})", e.env.label()),
        x_label: "ms per sync (mean)".into(),
        y_label: "mode (profile) @ services".into(),
        body: Body::Stacked(Stacked {
            categories,
            segments,
        }),
        section: Section::Breakdown,
        caption: format!(
            "Each bar is the mean wall time of one sync at the largest scale measured \
             in {}, split by the steps it recorded. {}",
            e.env.label(),
            breakdown::MAPPING
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{profiled, results, step, with_steps};

    fn fixture() -> Vec<Results> {
        let kp = with_steps(
            with_steps(
                profiled("nftables", 1000, "kube-proxy", &[800.0], &[60.0]),
                SyncKind::Full,
                vec![
                    step("nft list table", "listing", 1.0, 130.0, 90.0, 30.0),
                    step("nft -f", "restore", 1.0, 600.0, 350.0, 200.0),
                    step(
                        "kpbench (render, parse)",
                        "controller",
                        1.0,
                        20.0,
                        18.0,
                        1.0,
                    ),
                ],
            ),
            SyncKind::AddService,
            vec![
                step("nft list table", "listing", 1.0, 40.0, 30.0, 5.0),
                step("nft -f", "restore", 1.0, 15.0, 4.0, 8.0),
            ],
        );
        let floor = with_steps(
            profiled("nftables", 1000, "floor", &[300.0], &[12.0]),
            SyncKind::Full,
            vec![step("nft -f", "restore", 2.0, 280.0, 150.0, 100.0)],
        );
        let mut lab = results(
            "6.1.0",
            vec![with_steps(
                profiled("ipvs", 100, "floor", &[50.0], &[2.0]),
                SyncKind::Full,
                vec![step("IPVS batch", "netlink", 1.0, 45.0, 1.0, 40.0)],
            )],
        );
        lab.environments[0].kind = "lab-tcg".into();
        vec![results("6.18.0", vec![kp, floor]), lab]
    }

    #[test]
    fn one_chart_per_environment_and_sync_with_the_segments_drawn() {
        let charts = charts(&fixture());
        let names: Vec<&str> = charts.iter().map(|c| c.name.as_str()).collect();
        // The floor recorded no add steps and the lab none at all: no add chart for it.
        assert_eq!(
            names,
            [
                "breakdown_full_sync-host-6.18.0",
                "breakdown_add_service-host-6.18.0",
                "breakdown_full_sync-lab-tcg-6.1.0"
            ]
        );
        assert!(charts.iter().all(|c| c.section == Section::Breakdown));
        assert!(charts[0].caption.contains("Restore user: the user CPU"));
        assert_eq!(
            charts[0].title,
            "Full sync: where the time goes (host 6.18.0)"
        );
        let Body::Stacked(s) = &charts[0].body else {
            panic!("{:?}", charts[0].body)
        };
        assert_eq!(
            s.categories,
            [
                "nftables (kube-proxy 1.36) @ 1000",
                "nftables (floor) @ 1000"
            ]
        );
        let seg: Vec<(&str, usize, &[f64])> = s
            .segments
            .iter()
            .map(|g| (g.label.as_str(), g.color, g.values.as_slice()))
            .collect();
        // No ensure, ipset or netlink step: those segments are left out.
        assert_eq!(
            seg,
            [
                ("listing", 0, &[130.0, 0.0][..]),
                ("restore user", 3, &[350.0, 150.0][..]),
                ("kernel", 4, &[200.0, 100.0][..]),
                ("controller", 6, &[20.0, 0.0][..]),
                ("other wall", 7, &[100.0, 50.0][..]),
            ]
        );
        assert_eq!(s.totals(), [800.0, 300.0]);
        let Body::Stacked(add) = &charts[1].body else {
            panic!()
        };
        assert_eq!(add.categories, ["nftables (kube-proxy 1.36) @ 1000"]);
        assert_eq!(add.totals(), [60.0]);
        let Body::Stacked(lab) = &charts[2].body else {
            panic!()
        };
        assert_eq!(lab.categories, ["ipvs/rr (floor) @ 100"]);
        assert_eq!(lab.segments[0].label, "netlink round trips");
        assert_eq!(lab.segments[0].values, [45.0]);
    }

    #[test]
    fn one_environment_keeps_plain_names() {
        let mut runs = fixture();
        runs.pop();
        let names: Vec<String> = charts(&runs).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["breakdown_full_sync", "breakdown_add_service"]);
        assert_eq!(slug("lab-tcg 6.18.0-<x>/y"), "lab-tcg-6.18.0-x-y");
    }
}
