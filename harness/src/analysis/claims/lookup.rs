//! The lookup claims: (a) iptables matches linearly, (d) IPVS looks up in O(1).

use std::collections::BTreeMap;

use super::{svc, Verdict};
use crate::analysis::cases::{self, EnvKey, Row};
use crate::analysis::{lookup, stats};
use crate::results::{Case, Estimate};

/// (a): the fitted cost per service position at the largest scale with transit.
pub(super) fn linear(cs: &[&Case]) -> (Verdict, String) {
    let measured: Vec<(u64, lookup::TransitLookup)> = cs
        .iter()
        .filter_map(|c| Some((c.services, lookup::transit(c)?)))
        .collect();
    let Some((n, largest)) = measured.last() else {
        let why = cs
            .last()
            .map(|c| lookup::transit_missing(c))
            .unwrap_or_default();
        return (
            Verdict::NotMeasured,
            format!("lookup cost not timed: {why}"),
        );
    };
    let per_scale: Vec<String> = measured
        .iter()
        .map(|(n, t)| {
            let lf = t
                .last_vs_first()
                .map(|d| format!(", last minus first {}", stats::difference(&d, "ns")))
                .unwrap_or_default();
            format!(
                "{}: {} per service position{lf}",
                svc(*n),
                stats::with_ci(&t.ns_per_service, "ns")
            )
        })
        .collect();
    let e = largest.ns_per_service;
    let verdict = if stats::above_zero(&e) {
        Verdict::Confirmed
    } else {
        Verdict::Refuted
    };
    let head = if verdict == Verdict::Confirmed {
        format!(
            "the SYN's in-kernel transit grows with the service's position (at {}).",
            svc(*n)
        )
    } else {
        format!(
            "no measurable growth of the SYN's in-kernel transit with position at {}.",
            svc(*n)
        )
    };
    (verdict, format!("{head} {}.", per_scale.join("; ")))
}

/// The iptables modes' costs per service position in each environment (largest scale).
pub(super) fn iptables_slopes(ok: &[Row<'_>]) -> BTreeMap<EnvKey, (String, Estimate)> {
    let mut out: BTreeMap<EnvKey, (u64, String, Estimate)> = BTreeMap::new();
    for r in ok
        .iter()
        .filter(|r| super::is_iptables(r.case) && !cases::is_floor(r.case))
    {
        let Some(t) = lookup::transit(r.case) else {
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

/// (d): the cost per position is not measurably above zero, or stays under a tenth of
/// iptables' in the same environment.
pub(super) fn constant_lookup(
    env: &EnvKey,
    cs: &[&Case],
    iptables: &BTreeMap<EnvKey, (String, Estimate)>,
) -> (Verdict, String) {
    let Some((c, t)) = cs
        .iter()
        .rev()
        .find_map(|c| Some((*c, lookup::transit(c)?)))
    else {
        let why = cs
            .last()
            .map(|c| lookup::transit_missing(c))
            .unwrap_or_default();
        return (
            Verdict::NotMeasured,
            format!("lookup cost not timed: {why}"),
        );
    };
    let e = t.ns_per_service;
    let ipt = iptables.get(env);
    let tiny = ipt.is_some_and(|(_, i)| e.ci95[1] < i.estimate / 10.0);
    let (verdict, head) = if !stats::above_zero(&e) {
        (
            Verdict::Confirmed,
            format!(
                "no measurable growth of the SYN's in-kernel transit with position (at most {} ns per position at 95%)",
                stats::num(e.ci95[1].max(0.0))
            ),
        )
    } else if tiny {
        (
            Verdict::Confirmed,
            "the transit grows measurably with position, but by under a tenth of iptables'"
                .to_string(),
        )
    } else {
        (
            Verdict::Refuted,
            "the SYN's in-kernel transit grows with the service's position".to_string(),
        )
    };
    let against = ipt
        .map(|(m, i)| format!("; {m}: {} per position", stats::with_ci(i, "ns")))
        .unwrap_or_else(|| "; no iptables mode timed in this environment to compare".into());
    let lf = t
        .last_vs_first()
        .map(|d| format!(", last minus first {}", stats::difference(&d, "ns")))
        .unwrap_or_default();
    (
        verdict,
        format!(
            "{head}: at {}, {} per service position{lf}{against}.",
            svc(c.services),
            stats::with_ci(&e, "ns")
        ),
    )
}
