//! The sync claims: (b) every iptables update rewrites the whole table, (c) iptables
//! CPU soars, (e) IPVS updates are smooth.

use super::{svc, Verdict};
use crate::analysis::cases::{self, SyncKind};
use crate::analysis::{figures, stats};
use crate::results::{Case, Estimate};

/// (b), (e): does the add sync grow from the smallest scale to the largest?
pub(super) fn growth(
    cs: &[&Case],
    what: &str,
    note: fn(&Case) -> &'static str,
) -> (Verdict, String) {
    let with: Vec<(&Case, figures::Update<'_>)> = cs
        .iter()
        .filter_map(|c| Some((*c, figures::update_of(c, SyncKind::AddService)?)))
        .filter(|(_, u)| u.median.is_some())
        .collect();
    let (Some((c0, u0)), Some((c1, u1))) = (with.first(), with.last()) else {
        return (
            Verdict::NotMeasured,
            format!(
                "{what} was not timed with at least {} samples",
                stats::MIN_SAMPLES
            ),
        );
    };
    if c0.services == c1.services {
        return (
            Verdict::NotMeasured,
            format!(
                "one scale only ({}): growth with the service count needs two",
                svc(c0.services)
            ),
        );
    }
    let d = stats::median_difference(u1.samples_ms, u0.samples_ms).expect("both have samples");
    let m0 = u0.median.expect("filtered");
    // The one rule, with a margin of a tenth of the smallest scale's p50.
    let margin = stats::relative_margin(m0.estimate);
    let call = stats::growth_trend(&d, margin);
    let verdict = super::from_trend(call, stats::Trend::Grows);
    let ev = format!(
        "{what}'s growth with the service count: {}; p50 {} at {}, {} at {}: {} (within one run). {}",
        stats::with_margin(call, margin, "ms"),
        stats::with_ci(&m0, "ms"),
        svc(c0.services),
        stats::with_ci(&u1.median.expect("filtered"), "ms"),
        svc(c1.services),
        stats::difference(&d, "ms"),
        note(c1)
    );
    (verdict, ev)
}

/// (b) from what was written: the add sync's payload against the full sync's at the
/// largest scale that recorded both. Refuted when an update writes under half of what
/// rewriting the table takes; the time's growth with N is given beside it. None when
/// no case recorded the payloads (results from before they were kept).
pub(super) fn rewrite(cs: &[&Case]) -> Option<(Verdict, String)> {
    let c = cs.iter().rev().find(|c| {
        c.sync
            .as_ref()
            .and_then(|s| s.add_service.as_ref())
            .and_then(|a| a.payload_bytes)
            .is_some()
            && c.rules.as_ref().and_then(|r| r.payload_bytes).is_some()
    })?;
    let add = c.sync.as_ref()?.add_service.as_ref()?.payload_bytes?;
    let full = c.rules.as_ref()?.payload_bytes?;
    let share = add as f64 / full.max(1) as f64;
    let verdict = if share < 0.5 {
        Verdict::Refuted
    } else {
        Verdict::Confirmed
    };
    let (_, timing) = growth(cs, "the add-one-service sync", whole_table_note);
    let kernel = if c.mode == "iptables-legacy" {
        " (x_tables then swaps the whole table in the kernel on every restore, whatever the payload)"
    } else {
        ""
    };
    Some((
        verdict,
        format!(
            "at {}, adding one service wrote {} bytes against {} bytes for the whole table ({:.1}%){kernel}. Time: {timing}",
            svc(c.services),
            add,
            full,
            100.0 * share
        ),
    ))
}

pub(super) fn whole_table_note(c: &Case) -> &'static str {
    match (cases::is_floor(c), c.mode.as_str()) {
        (true, _) => {
            "Measured: the floor profile's sync wall time, the fastest way to the same rules."
        }
        (false, "iptables-legacy") => {
            "Measured: the sync's wall time. kube-proxy's partial sync restores \
             KUBE-SERVICES in full (a rule per service) plus the changed service's chains, \
             not every chain; with the legacy backend each restore then replaces the \
             whole table in the kernel. Growth with N is consistent with that; the run \
             does not record which rules were rewritten."
        }
        _ => {
            "Measured: the sync's wall time. kube-proxy's partial sync restores \
             KUBE-SERVICES in full (a rule per service) plus the changed service's chains, \
             not the whole table, and the nft backend sends the kernel only the rules that \
             changed: growth with N shows that chain and the listing growing, not a \
             whole-table rewrite; the run does not record which rules were rewritten."
        }
    }
}

pub(super) fn ipvs_note(c: &Case) -> &'static str {
    if cases::is_floor(c) {
        "Measured: the floor profile, one netlink request per kernel change: the kernel's \
         own cost of an IPVS update."
    } else {
        "Measured: kube-proxy's profile, which walks every service on each sync (listing \
         the IPVS services and rebuilding its ipsets), so its update time can grow with N \
         even though each kernel change is one netlink request."
    }
}

/// A case's sync CPU (user + sys of kpbench and its tools, median per sample) with the
/// relative interval of the same sync's wall-time median: CPU is recorded as one
/// median, so it borrows the noise of the wall time it was spent in.
fn sync_cpu(c: &Case, kind: SyncKind) -> Option<Estimate> {
    let d = kind.pick(c)?;
    let cpu = d.cpu_user_ms + d.cpu_sys_ms;
    let wall = figures::update_of(c, kind)?.median?;
    if wall.estimate <= 0.0 {
        return None;
    }
    let rel = |v: f64| cpu * v / wall.estimate;
    Some(Estimate {
        estimate: cpu,
        ci95: [rel(wall.ci95[0]), rel(wall.ci95[1])],
    })
}

/// (c): sync CPU from the smallest scale to the largest, and the dataplane's own CPU
/// per request where the probes measured it.
pub(super) fn cpu(cs: &[&Case]) -> (Verdict, String) {
    let pods = |c: &Case| c.services * c.endpoints_per_service;
    let mut parts = Vec::new();
    let mut verdict = Verdict::NotMeasured;
    for kind in [SyncKind::AddService, SyncKind::Full] {
        let with: Vec<(&Case, Estimate)> = cs
            .iter()
            .filter_map(|c| Some((*c, sync_cpu(c, kind)?)))
            .collect();
        let (Some((c0, e0)), Some((c1, e1))) = (with.first(), with.last()) else {
            continue;
        };
        if c0.services == c1.services {
            continue;
        }
        let d = stats::difference_of_estimates(*e1, *e0);
        let margin = stats::relative_margin(e0.estimate);
        let call = stats::growth_trend(&d, margin);
        if verdict == Verdict::NotMeasured {
            verdict = super::from_trend(call, stats::Trend::Grows);
        }
        parts.push(format!(
            "CPU per {} sync {}: {} at {} ({} pods), {} at {} ({} pods): {}",
            kind.label(),
            stats::with_margin(call, margin, "ms"),
            stats::with_ci(e0, "ms"),
            svc(c0.services),
            stats::count(pods(c0) as f64),
            stats::with_ci(e1, "ms"),
            svc(c1.services),
            stats::count(pods(c1) as f64),
            stats::difference(&d, "ms")
        ));
    }
    if parts.is_empty() {
        parts.push(format!(
            "sync CPU needs two scales each timed at least {} times",
            stats::MIN_SAMPLES
        ));
    } else {
        parts.push(
            "CPU is recorded as one median per sync, so its interval borrows the relative \
             interval of the same sync's wall time"
                .into(),
        );
    }
    let dp: Vec<String> = cs
        .iter()
        .filter_map(|c| {
            let ns = c
                .datapath
                .as_ref()?
                .cpu
                .as_ref()?
                .dataplane_ns_per_request?;
            Some(format!("{} ns at {}", stats::num(ns), svc(c.services)))
        })
        .collect();
    if !dp.is_empty() {
        parts.push(format!(
            "the dataplane's own in-kernel CPU per request (one figure per case, no \
             interval): {}",
            dp.join(", ")
        ));
    }
    (verdict, format!("{}.", parts.join("; ")))
}
