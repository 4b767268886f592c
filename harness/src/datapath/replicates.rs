//! Replicates of the transit pass: the same service positions, each further replicate
//! in a fresh node namespace with the VIPs shuffled over the services, so whatever is
//! fixed per address (a hash bucket, a route or conntrack cache placement) moves
//! between positions instead of masquerading as a slope. The cost per position is then
//! fitted on the targets of every replicate, an intercept per replicate
//! (`analysis::stats::target_slope`); its interval holds both the residual error
//! between the targets and the spread of the replicates' own slopes.

use dataplane::floor::model::ServiceSet;

use crate::analysis::stats::{self, SplitMix64};
use crate::results::{Estimate, LookupSlope, Spans, Transit, TransitReplicate};

/// Connection rounds of the whole pass, divided among the replicates: the precision
/// comes from replicates, not from more packets per target.
pub const ROUNDS: usize = 200;
/// Fewest rounds of one replicate, so each target's median keeps an interval.
pub const MIN_ROUNDS: usize = 60;

/// Rounds of each of `replicates` passes.
pub fn rounds_per_replicate(replicates: usize) -> usize {
    (ROUNDS / replicates.max(1)).max(MIN_ROUNDS)
}

/// The VIP-assignment seed of replicate `r` (0: the generated assignment).
pub fn vip_seed(r: usize) -> u64 {
    if r == 0 {
        0
    } else {
        0x7669_7073_0000_0000 + r as u64
    }
}

/// `set` with its VIPs (and ports) shuffled over the services by `seed`; the rule order,
/// names and endpoints stay, so position k is the same service with another address.
/// Seed 0 is `set` itself.
pub fn assign_vips(set: &ServiceSet, seed: u64) -> ServiceSet {
    let mut out = set.clone();
    if seed == 0 {
        return out;
    }
    let mut addrs: Vec<_> = set.services.iter().map(|s| (s.vip, s.port)).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..addrs.len()).rev() {
        addrs.swap(i, rng.below(i + 1));
    }
    for (s, (vip, port)) in out.services.iter_mut().zip(addrs) {
        s.vip = vip;
        s.port = port;
    }
    out
}

/// A cost per position with the verdict of the one rule at the margin's floor; the
/// run's recorder decides it again with the margin of its environment
/// (`analysis::lookup::decide`), once iptables-legacy's slope there is known.
pub fn decided(e: Estimate, spans: Spans) -> LookupSlope {
    let margin = stats::lookup_margin(None);
    LookupSlope {
        verdict: Some(stats::lookup_trend(&e, margin)),
        margin: Some(margin),
        ..LookupSlope::undecided(e, spans)
    }
}

/// Records every replicate of `all` (the first is `first` itself, as measured) in
/// `first.replicates`, and with two or more, replaces its cost per position by the fit
/// over the targets of all of them (spans `replicates`).
pub fn pool(first: &mut Transit, all: &[(u64, Transit)]) {
    first.replicates = all
        .iter()
        .map(|(seed, t)| TransitReplicate {
            ns_per_service: t.ns_per_service.fit(),
            vip_assignment_seed: *seed,
        })
        .collect();
    if all.len() < 2 {
        return;
    }
    let points: Vec<(usize, f64, f64)> = all
        .iter()
        .enumerate()
        .flat_map(|(r, (_, t))| {
            t.positions()
                .filter_map(move |x| Some((r, x.service_index? as f64, x.syn_ns.p50)))
        })
        .collect();
    if let Some(fit) = stats::target_slope(&points) {
        let slopes: Vec<f64> = all.iter().map(|(_, t)| t.ns_per_service.estimate).collect();
        let ci95 = hull(
            fit.slope.ci95,
            replicate_interval(fit.slope.estimate, &slopes),
        );
        first.ns_per_service = decided(
            Estimate {
                estimate: fit.slope.estimate,
                ci95,
            },
            Spans::Replicates,
        );
    }
}

/// The interval the replicates' own slopes give around `centre`: `± t(k-1) · sd / √k`.
/// A slope that differs between replicates (the machine's load during one pass, an
/// address effect the shuffle moved) is in it, where the pooled fit's residual only
/// holds the scatter of points about one common slope.
fn replicate_interval(centre: f64, slopes: &[f64]) -> [f64; 2] {
    let k = slopes.len() as f64;
    let mean = slopes.iter().sum::<f64>() / k;
    let var = slopes.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (k - 1.0);
    let half = stats::t_975(k - 1.0) * (var / k).sqrt();
    [centre - half, centre + half]
}

/// The smallest interval holding both: the pooled fit's, and the replicates' spread
/// (with three replicates their standard deviation alone can come out small by chance).
fn hull(a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
    [a[0].min(b[0]), a[1].max(b[1])]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, with_transit};
    use crate::results::Trend;

    #[test]
    fn vips_move_between_positions_and_the_rule_order_stays() {
        let set = ServiceSet::generate(1_000, 2);
        assert_eq!(assign_vips(&set, 0), set);
        let a = assign_vips(&set, vip_seed(1));
        let b = assign_vips(&set, vip_seed(2));
        assert_eq!(a, assign_vips(&set, vip_seed(1)), "seeded");
        let idx = |s: &ServiceSet| s.services.iter().map(|s| s.index).collect::<Vec<_>>();
        assert_eq!(idx(&a), idx(&set));
        assert_eq!(a.services[7].endpoints, set.services[7].endpoints);
        let moved = |s: &ServiceSet| {
            s.services
                .iter()
                .zip(&set.services)
                .filter(|(x, y)| x.vip != y.vip)
                .count()
        };
        assert!(moved(&a) > 990 && moved(&b) > 990);
        assert_ne!(a.services[0].vip, b.services[0].vip);
        let mut vips: Vec<_> = a.services.iter().map(|s| s.vip).collect();
        vips.sort();
        vips.dedup();
        assert_eq!(vips.len(), 1_000, "a permutation");
    }

    #[test]
    fn the_interval_holds_the_replicates_spread() {
        // Slopes 4.45, 5.78 and 4.21 (a run on this machine): sd 0.846, t(2) 4.303.
        let [lo, hi] = replicate_interval(4.8, &[4.45, 5.78, 4.21]);
        let half = 4.303 * 0.846_4 / 3f64.sqrt();
        assert!((lo - (4.8 - half)).abs() < 0.01 && (hi - (4.8 + half)).abs() < 0.01);
        assert_eq!(hull([1.0, 2.0], [0.5, 1.5]), [0.5, 2.0]);
    }

    #[test]
    fn rounds_are_divided_among_replicates() {
        assert_eq!(rounds_per_replicate(1), 200);
        assert_eq!(rounds_per_replicate(3), 66);
        assert_eq!(rounds_per_replicate(10), 60);
    }

    fn transit_of(slope: f64, offset: f64, recorded: (f64, f64, f64)) -> Transit {
        let c = with_transit(
            case("iptables-legacy", 1000, 1.0, 1.0, 1.0),
            900.0,
            3000.0 + offset,
            slope,
            30.0,
            est(recorded.0, recorded.1, recorded.2),
        );
        c.datapath.unwrap().transit.unwrap()
    }

    #[test]
    fn replicates_are_pooled_with_an_intercept_each() {
        // The same slope of 2 ns per position at three levels: the pooled fit has it
        // exactly, across replicates; each replicate's own figure is kept.
        let mut first = transit_of(2.0, 0.0, (2.0, 1.9, 2.1));
        let all = vec![
            (0, first.clone()),
            (vip_seed(1), transit_of(2.0, 500.0, (2.1, 2.0, 2.2))),
            (vip_seed(2), transit_of(2.0, -300.0, (1.9, 1.8, 2.0))),
        ];
        pool(&mut first, &all);
        let s = first.ns_per_service;
        assert!((s.estimate - 2.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.spans, Some(Spans::Replicates));
        assert_eq!(s.verdict, Some(Trend::Grows));
        assert_eq!(first.replicates.len(), 3);
        assert_eq!(first.replicates[1].vip_assignment_seed, vip_seed(1));
        assert_eq!(first.replicates[2].ns_per_service, est(1.9, 1.8, 2.0));
        // One replicate: recorded, the figure left as measured.
        let mut one = transit_of(2.0, 0.0, (2.0, 1.9, 2.1));
        let before = one.ns_per_service;
        pool(&mut one.clone(), &[(0, one.clone())]);
        pool(&mut one, &[]);
        assert_eq!(one.ns_per_service, before);
    }
}
