//! Where the time of a sync goes: the steps a sync recorded (each tool run and netlink
//! batch, averaged per sync) folded into a few segments that add up to the sync's wall
//! time, per mode and profile at the largest scale measured in each environment.
//!
//! The mapping, step category to segment (a step's wall time is what the caller waited
//! for it; its user and sys CPU are the tool's own, or kpbench's thread for netlink):
//!
//! | category | segment |
//! | --- | --- |
//! | `listing` | **listing**: its wall time |
//! | `ensure` | **ensure**: its wall time |
//! | `ipset` | **ipset**: its wall time |
//! | `restore` | its user CPU to **restore user**, its sys CPU to **kernel** |
//! | `netlink` | **netlink**: its wall time (round trips, the kernel's work inside) |
//! | `controller` | **controller**: its wall time (kpbench's own rendering and parsing) |
//! | anything else | nothing: its time ends up in **other wall** |
//!
//! **other wall** is the sync's mean wall time minus every segment above, never below
//! zero: the time a restore tool did not spend on a CPU (process start, waiting in the
//! kernel, e.g. for an RCU grace period) and any time between steps. Listing, ensure and
//! ipset are charged whole, because each is a cost kube-proxy's loop chooses to pay
//! (the floor skips them), while a restore is split to show what the kernel costs.
//!
//! The bar is the mean wall time, not the p50: the steps are means over the same
//! samples, so only the mean adds up.

use std::collections::{BTreeMap, BTreeSet};

use crate::analysis::cases::{self, EnvKey, Row, SyncKind};
use crate::results::{DurationSummary, Results};

/// A part of a sync's wall time; see the module's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    Listing,
    Ensure,
    Ipset,
    RestoreUser,
    Kernel,
    Netlink,
    Controller,
    OtherWall,
}

impl Segment {
    /// Every segment, in the order bars stack them (bottom first).
    pub const ALL: [Segment; 8] = [
        Segment::Listing,
        Segment::Ensure,
        Segment::Ipset,
        Segment::RestoreUser,
        Segment::Kernel,
        Segment::Netlink,
        Segment::Controller,
        Segment::OtherWall,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Segment::Listing => "listing",
            Segment::Ensure => "ensure",
            Segment::Ipset => "ipset",
            Segment::RestoreUser => "restore user",
            Segment::Kernel => "kernel",
            Segment::Netlink => "netlink round trips",
            Segment::Controller => "controller",
            Segment::OtherWall => "other wall",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How the segments are drawn from the steps, for captions and the report.
pub const MAPPING: &str = "Listing, ensure and ipset: the wall time of those tool runs \
     (iptables-save, nft --json list, ipset list; iptables -N/-C/-I, ipset create; ipset \
     add/del/restore). Restore user: the user CPU of iptables-restore and nft -f; kernel: \
     their sys CPU (the kernel applying the payload). Netlink round trips: the wall time \
     of netlink requests. Controller: kpbench's own work outside any tool (rendering, \
     parsing). Other wall: the rest of the sync's mean wall time, not explained by the \
     above (restore tools waiting off-CPU: process start, RCU grace periods).";

/// One sync's mean wall time split into segments.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Milliseconds per segment, in [`Segment::ALL`] order.
    pub ms: [f64; 8],
    /// The sync's mean wall time, milliseconds.
    pub wall_ms: f64,
}

impl Split {
    pub fn get(&self, s: Segment) -> f64 {
        self.ms[s.index()]
    }

    /// The bar's height: every segment. Equals `wall_ms` unless the steps' CPU exceeds
    /// the wall time (a multi-threaded tool), when other wall is 0.
    pub fn total(&self) -> f64 {
        self.ms.iter().sum()
    }
}

/// Mean wall time of a summary's samples (its p50 when the samples were not kept).
pub fn mean_wall(d: &DurationSummary) -> f64 {
    if d.samples_ms.is_empty() {
        d.p50_ms
    } else {
        d.samples_ms.iter().sum::<f64>() / d.samples_ms.len() as f64
    }
}

/// The segments of a sync; `None` when it recorded no steps (results from before steps).
pub fn split(d: &DurationSummary) -> Option<Split> {
    if d.steps.is_empty() {
        return None;
    }
    let mut ms = [0.0; 8];
    for s in &d.steps {
        let mut add = |seg: Segment, v: f64| ms[seg.index()] += v.max(0.0);
        match s.category.as_str() {
            "listing" => add(Segment::Listing, s.wall_ms),
            "ensure" => add(Segment::Ensure, s.wall_ms),
            "ipset" => add(Segment::Ipset, s.wall_ms),
            "restore" => {
                add(Segment::RestoreUser, s.user_ms);
                add(Segment::Kernel, s.sys_ms);
            }
            "netlink" => add(Segment::Netlink, s.wall_ms),
            "controller" => add(Segment::Controller, s.wall_ms),
            _ => {}
        }
    }
    let wall_ms = mean_wall(d);
    let explained: f64 = ms.iter().sum();
    ms[Segment::OtherWall.index()] = (wall_ms - explained).max(0.0);
    Some(Split { ms, wall_ms })
}

/// One bar: a mode and profile at one scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The mode with its profile: `nftables (kube-proxy 1.36)`, `nftables (floor)`.
    pub label: String,
    pub services: u64,
    pub endpoints_per_service: u64,
    pub split: Split,
}

/// The bars of one environment (never mixed with another's).
#[derive(Debug, Clone, PartialEq)]
pub struct EnvBars {
    pub env: EnvKey,
    pub bars: Vec<Bar>,
}

/// Kube-proxy's profile first, then results without a profile, then the floor.
fn profile_rank(r: &Row<'_>) -> u8 {
    match r.case.profile.as_deref() {
        Some("kube-proxy") => 0,
        None => 1,
        Some("floor") => 3,
        Some(_) => 2,
    }
}

/// Per environment, one bar per mode and profile for the `kind` of sync, at the largest
/// scale (services, then endpoints) with steps. The profiles of one mode share the
/// largest scale they all measured, so they stand side by side; with none in common
/// each shows its own largest.
pub fn at_largest(results: &[Results], kind: SyncKind) -> Vec<EnvBars> {
    type Scale = (u64, u64);
    /// A mode's rows with steps, by (profile rank, profile label).
    type Profiles<'r> = BTreeMap<(u8, String), Vec<Row<'r>>>;
    let mut groups: BTreeMap<EnvKey, BTreeMap<String, Profiles<'_>>> = BTreeMap::new();
    for r in cases::rows(results) {
        let has_steps = kind.pick(r.case).is_some_and(|d| !d.steps.is_empty());
        if r.ok() && has_steps {
            groups
                .entry(r.env())
                .or_default()
                .entry(cases::base_mode(r.case))
                .or_default()
                .entry((profile_rank(&r), cases::profile_label(r.case)))
                .or_default()
                .push(r);
        }
    }
    let scale = |r: &Row<'_>| -> Scale { (r.case.services, r.case.endpoints_per_service) };
    let mut out = Vec::new();
    for (env, modes) in groups {
        let mut bars = Vec::new();
        for profiles in modes.values() {
            let scales: Vec<BTreeSet<Scale>> = profiles
                .values()
                .map(|rows| rows.iter().map(scale).collect())
                .collect();
            let common = scales
                .iter()
                .skip(1)
                .fold(scales[0].clone(), |acc, s| &acc & s);
            for ((_, label), rows) in profiles {
                let own = rows.iter().map(scale).max();
                let Some(at) = common.iter().max().copied().or(own) else {
                    continue;
                };
                let Some(row) = rows.iter().find(|r| scale(r) == at) else {
                    continue;
                };
                let Some(split) = kind.pick(row.case).and_then(split) else {
                    continue;
                };
                bars.push(Bar {
                    label: label.clone(),
                    services: at.0,
                    endpoints_per_service: at.1,
                    split,
                });
            }
        }
        if !bars.is_empty() {
            out.push(EnvBars { env, bars });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, profiled, results, step, with_steps};

    fn kube_proxy_full() -> Vec<crate::results::StepSummary> {
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
        ]
    }

    #[test]
    fn steps_map_to_segments_exactly() {
        let mut d = crate::analysis::cases::fixtures::summary(&[700.0, 800.0, 900.0]);
        d.steps = vec![
            step("iptables-save", "listing", 1.0, 10.0, 6.0, 3.0),
            step("iptables -N", "ensure", 20.0, 40.0, 10.0, 20.0),
            step("ipset add", "ipset", 100.0, 300.0, 50.0, 150.0),
            step("iptables-restore", "restore", 1.0, 200.0, 120.0, 60.0),
            step("IPVS GET_SERVICE", "netlink", 50.0, 25.0, 5.0, 15.0),
            step(
                "kpbench (render, parse)",
                "controller",
                1.0,
                15.0,
                14.0,
                1.0,
            ),
            step("something new", "future", 1.0, 100.0, 100.0, 0.0),
        ];
        let s = split(&d).unwrap();
        assert_eq!(s.wall_ms, 800.0);
        // listing, ensure, ipset, restore user, kernel, netlink, controller: 570;
        // the rest of the 800 ms mean (the restore's 20 ms off-CPU, the unknown step's
        // 100 and 110 between steps) is other wall.
        assert_eq!(s.ms, [10.0, 40.0, 300.0, 120.0, 60.0, 25.0, 15.0, 230.0]);
        assert_eq!(s.total(), 800.0);
        assert_eq!(s.get(Segment::Kernel), 60.0);
    }

    #[test]
    fn cpu_past_the_wall_leaves_no_other_wall() {
        let mut d = crate::analysis::cases::fixtures::summary(&[100.0]);
        d.samples_ms.clear();
        d.steps = vec![step("nft -f", "restore", 1.0, 100.0, 90.0, 30.0)];
        let s = split(&d).unwrap();
        assert_eq!(s.wall_ms, 100.0, "p50 when no samples were kept");
        assert_eq!(s.get(Segment::OtherWall), 0.0);
        assert_eq!(s.total(), 120.0);
        d.steps.clear();
        assert_eq!(split(&d), None);
    }

    #[test]
    fn profiles_share_their_largest_common_scale_per_environment() {
        let kp = |n, full: f64| {
            with_steps(
                profiled("nftables", n, "kube-proxy", &[full], &[50.0]),
                SyncKind::Full,
                kube_proxy_full(),
            )
        };
        let floor = |n| {
            with_steps(
                profiled("nftables", n, "floor", &[300.0], &[10.0]),
                SyncKind::Full,
                vec![step("nft -f", "restore", 2.0, 280.0, 150.0, 100.0)],
            )
        };
        let old = case("iptables", 5000, 900.0, 9.0, 1.0);
        let r = results(
            "6.18.0",
            vec![
                kp(100, 400.0),
                kp(1000, 800.0),
                floor(1000),
                floor(5000),
                old,
            ],
        );
        let mut lab = results("6.1.0", vec![floor(100)]);
        lab.environments[0].kind = "lab-tcg".into();
        let envs = at_largest(&[r, lab], SyncKind::Full);
        assert_eq!(envs.len(), 2, "host and lab apart");
        assert_eq!(envs[0].env.label(), "host 6.18.0");
        let host: Vec<(&str, u64)> = envs[0]
            .bars
            .iter()
            .map(|b| (b.label.as_str(), b.services))
            .collect();
        // 5,000 only for the floor: both stand at 1,000. No steps: iptables has no bar.
        assert_eq!(
            host,
            [
                ("nftables (kube-proxy 1.36)", 1000),
                ("nftables (floor)", 1000)
            ]
        );
        assert_eq!(
            envs[0].bars[0].split.ms,
            [130.0, 0.0, 0.0, 350.0, 200.0, 0.0, 20.0, 100.0]
        );
        assert_eq!(
            envs[0].bars[1].split.ms,
            [0.0, 0.0, 0.0, 150.0, 100.0, 0.0, 0.0, 50.0]
        );
        assert_eq!(envs[1].env.label(), "lab-tcg 6.1.0");
        assert_eq!(envs[1].bars[0].label, "nftables (floor)");
        assert!(at_largest(&[], SyncKind::AddService).is_empty());
    }

    #[test]
    fn without_a_common_scale_each_profile_shows_its_largest() {
        let a = with_steps(
            profiled("ipvs", 100, "kube-proxy", &[900.0], &[90.0]),
            SyncKind::AddService,
            vec![step("ipset add", "ipset", 2.0, 60.0, 4.0, 20.0)],
        );
        let b = with_steps(
            profiled("ipvs", 1000, "floor", &[90.0], &[2.0]),
            SyncKind::AddService,
            vec![step("IPVS batch", "netlink", 1.0, 1.5, 0.1, 1.2)],
        );
        let envs = at_largest(&[results("6.18.0", vec![b, a])], SyncKind::AddService);
        let bars: Vec<(&str, u64, f64)> = envs[0]
            .bars
            .iter()
            .map(|b| (b.label.as_str(), b.services, b.split.total()))
            .collect();
        assert_eq!(
            bars,
            [
                ("ipvs/rr (kube-proxy 1.36)", 100, 90.0),
                ("ipvs/rr (floor)", 1000, 2.0)
            ]
        );
    }
}
