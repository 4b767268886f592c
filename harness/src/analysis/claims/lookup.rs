//! The lookup claims: (a) iptables matches linearly, (d) IPVS looks up in O(1).

use std::collections::BTreeMap;

use super::{svc, Verdict};
use crate::analysis::cases::EnvKey;
use crate::analysis::{lookup, stats};
use crate::results::{Case, Estimate};

/// (a): the fitted cost per service position at the largest scale with transit, by the
/// one rule: confirmed when it grows beyond the lookup margin, refuted when flat.
pub(super) fn linear(
    env: &EnvKey,
    cs: &[&Case],
    iptables: &BTreeMap<EnvKey, (String, Estimate)>,
) -> (Verdict, String) {
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
    let (call, margin) = lookup::verdict(largest, lookup::margin(iptables, env));
    let verdict = super::from_trend(call, stats::Trend::Grows);
    let head = format!(
        "the SYN's in-kernel transit per service position at {}: {}.",
        svc(*n),
        stats::with_margin(call, margin, "ns")
    );
    (verdict, format!("{head} {}.", per_scale.join("; ")))
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
    let (call, margin) = lookup::verdict(&t, lookup::margin(iptables, env));
    let verdict = super::from_trend(call, stats::Trend::Flat);
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
