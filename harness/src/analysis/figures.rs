//! The per-case figures that the short answer, the claims and the capacity plan compare,
//! each with what its interval needs: how fast a mode follows a change (the slowest
//! incremental sync, with its samples) and what a lookup costs at the worst position
//! (the in-kernel SYN transit to the last service, with its interval).

use std::collections::BTreeMap;

use crate::analysis::cases::{self, EnvKey, Row, SyncKind};
use crate::analysis::{lookup, stats};
use crate::results::{Case, Estimate};

/// One incremental sync of a case.
#[derive(Debug, Clone, PartialEq)]
pub struct Update<'a> {
    /// "add service", "remove service" or "update endpoints".
    pub op: &'static str,
    pub p50_ms: f64,
    /// Every sample, for bootstrap differences.
    pub samples_ms: &'a [f64],
    /// The median with its order-statistic interval; `None` with fewer than
    /// [`stats::MIN_SAMPLES`] samples.
    pub median: Option<Estimate>,
}

/// The slowest incremental sync of a case by p50: what bounds how fast a proxy follows
/// changes.
pub fn update(c: &Case) -> Option<Update<'_>> {
    [
        SyncKind::AddService,
        SyncKind::RemoveService,
        SyncKind::UpdateEndpoints,
    ]
    .into_iter()
    .filter_map(|k| update_of(c, k))
    // The first of equals: add, remove, update.
    .reduce(|a, b| if b.p50_ms > a.p50_ms { b } else { a })
}

/// One kind of sync of a case, with its samples.
pub fn update_of(c: &Case, kind: SyncKind) -> Option<Update<'_>> {
    let d = kind.pick(c)?;
    Some(Update {
        op: kind.label(),
        p50_ms: d.p50_ms,
        samples_ms: &d.samples_ms,
        median: (d.samples_ms.len() >= stats::MIN_SAMPLES)
            .then(|| stats::median_estimate(&d.samples_ms))
            .flatten(),
    })
}

/// The SYN's in-kernel transit to the last service position measured, ns.
pub fn lookup_last(c: &Case) -> Option<Estimate> {
    Some(lookup::transit(c)?.last()?.syn_ns)
}

/// A scale: services and endpoints per service.
pub type Scale = (u64, u64);

/// One mode's case at one scale in one environment.
pub type ByScale<'r> = BTreeMap<(EnvKey, Scale), BTreeMap<String, Row<'r>>>;

/// What users run, per environment and scale, then per mode: kube-proxy's profile (and
/// results from before profiles); the floor only in an environment that ran nothing
/// else. The first case of a mode at a scale wins (merged runs may repeat one).
pub fn by_scale<'r>(rows: &[Row<'r>]) -> ByScale<'r> {
    let ok: Vec<&Row<'r>> = rows.iter().filter(|r| r.ok()).collect();
    let mut with_users: Vec<EnvKey> = ok
        .iter()
        .filter(|r| !cases::is_floor(r.case))
        .map(|r| r.env())
        .collect();
    with_users.sort();
    with_users.dedup();
    let mut out: ByScale<'r> = BTreeMap::new();
    for r in ok {
        let env = r.env();
        if cases::is_floor(r.case) && with_users.binary_search(&env).is_ok() {
            continue;
        }
        let scale = (r.case.services, r.case.endpoints_per_service);
        out.entry((env, scale))
            .or_default()
            .entry(r.mode())
            .or_insert(*r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::cases::fixtures::{case, est, profiled, results, with_transit};

    #[test]
    fn figures_pick_the_slowest_update_and_the_last_position() {
        let mut c = with_transit(
            case("iptables", 1000, 1.0, 10.0, 1.0),
            900.0,
            3000.0,
            5.0,
            30.0,
            est(5.0, 4.9, 5.1),
        );
        c.sync.as_mut().unwrap().remove_service =
            Some(crate::analysis::cases::fixtures::summary(&[
                20.0, 21.0, 22.0, 23.0, 24.0, 25.0,
            ]));
        let u = update(&c).unwrap();
        assert_eq!((u.op, u.p50_ms), ("remove service", 22.0));
        assert_eq!(u.median, Some(est(22.0, 20.0, 25.0)));
        assert_eq!(update_of(&c, SyncKind::AddService).unwrap().p50_ms, 10.0);
        assert_eq!(lookup_last(&c), Some(est(7995.0, 7965.0, 8025.0)));
        // Two samples: no interval.
        let short = profiled("nftables", 10, "floor", &[1.0], &[1.0, 2.0]);
        assert_eq!(update(&short).unwrap().median, None);
    }

    #[test]
    fn by_scale_prefers_what_users_run() {
        let host = results(
            "6.18.0",
            vec![
                profiled("nftables", 100, "kube-proxy", &[1.0], &[1.0; 3]),
                profiled("nftables", 100, "floor", &[1.0], &[1.0; 3]),
                profiled("iptables", 100, "floor", &[1.0], &[1.0; 3]),
            ],
        );
        let mut lab = results(
            "6.1.0",
            vec![profiled("ipvs", 100, "floor", &[1.0], &[1.0; 3])],
        );
        lab.environments[0].kind = "lab-tcg".into();
        let runs = [host, lab];
        let rows = cases::rows(&runs);
        let g = by_scale(&rows);
        let modes: Vec<(String, Vec<&str>)> = g
            .iter()
            .map(|((env, _), m)| (env.label(), m.keys().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            modes,
            [
                ("host 6.18.0".to_string(), vec!["nftables"]),
                ("lab-tcg 6.1.0".to_string(), vec!["ipvs/rr (floor)"]),
            ]
        );
    }
}
