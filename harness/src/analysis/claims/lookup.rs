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

/// (d): the cost per position is flat by the one rule: its whole interval within the
/// lookup margin (0.5 ns, or a tenth of iptables' in the same environment).
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
    // The one rule (analysis::stats::trend): flat only when the whole interval lies
    // within the margin; a significant fall is an artefact, never a confirmation.
    let margin = stats::lookup_margin(ipt.map(|(_, i)| i.estimate));
    let call = stats::lookup_trend(&e, margin);
    let verdict = match call {
        stats::Trend::Flat => Verdict::Confirmed,
        stats::Trend::Grows => Verdict::Refuted,
        stats::Trend::Unexpected | stats::Trend::Shrinks => Verdict::Unexpected,
        stats::Trend::Inconclusive => Verdict::Inconclusive,
    };
    let head = format!(
        "the SYN's in-kernel transit per service position is {}",
        stats::with_margin(call, margin, "ns")
    );
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
