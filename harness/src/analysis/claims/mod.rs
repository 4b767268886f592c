//! "Claims checked": the usual iptables-against-IPVS advice, each claim given a verdict
//! from this run's measurements (confirmed, refuted, or not measured in this run) with
//! the numbers it rests on, per environment and mode. A verdict follows the rule of
//! [`crate::analysis::stats::trend`]: grows or flat against a margin declared per
//! figure, inconclusive otherwise, and a move against physics an artefact.

mod lookup;
mod schedulers;
mod sync;

use std::collections::BTreeMap;

use crate::analysis::cases::{self, EnvKey, Row};
use crate::analysis::stats;
use crate::results::{Case, Results};

use crate::analysis::lookup::iptables_slopes;
use lookup::{constant_lookup, linear};
use schedulers::schedulers;
use sync::{cpu, growth, ipvs_note, whole_table_note};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Claim {
    LinearMatching,
    WholeTableRewrite,
    CpuSoars,
    IpvsConstantLookup,
    IpvsSmoothUpdates,
    IpvsSchedulers,
}

impl Claim {
    pub const ALL: [Claim; 6] = [
        Claim::LinearMatching,
        Claim::WholeTableRewrite,
        Claim::CpuSoars,
        Claim::IpvsConstantLookup,
        Claim::IpvsSmoothUpdates,
        Claim::IpvsSchedulers,
    ];

    pub fn text(self) -> &'static str {
        match self {
            Claim::LinearMatching => "iptables matches linearly as services grow",
            Claim::WholeTableRewrite => "every iptables update rewrites the whole table",
            Claim::CpuSoars => "iptables CPU soars at hundreds of services or thousands of pods",
            Claim::IpvsConstantLookup => "IPVS looks up in O(1) whatever the service count",
            Claim::IpvsSmoothUpdates => "IPVS updates are incremental and smooth",
            Claim::IpvsSchedulers => "IPVS offers rr, lc, sh and dh scheduling",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Confirmed,
    Refuted,
    /// The interval is too wide for the margin either way.
    Inconclusive,
    /// A significant move against physics: likely an artefact, never a confirmation.
    Unexpected,
    NotMeasured,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Refuted => "refuted",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Unexpected => "unexpected: likely an artefact",
            Verdict::NotMeasured => "not measured in this run",
        }
    }
}

/// A claim's verdict from the one rule's call on its figure ([`stats::trend`]):
/// confirmed when the call is what the claim expects (grows for a linear cost, flat for
/// O(1)), refuted when it is the other of grows and flat, inconclusive when the rule
/// cannot tell, and an artefact (a significant move against physics) never confirms.
pub fn from_trend(call: stats::Trend, expect: stats::Trend) -> Verdict {
    use stats::Trend::*;
    match call {
        Inconclusive => Verdict::Inconclusive,
        Unexpected | Shrinks => Verdict::Unexpected,
        c if c == expect => Verdict::Confirmed,
        _ => Verdict::Refuted,
    }
}

/// One verdict: a claim in one environment for one mode (or for the environment).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub claim: Claim,
    /// `None` when nothing relevant ran anywhere.
    pub env: Option<EnvKey>,
    /// The mode (with scheduler and profile), or `None` for the environment as a whole.
    pub mode: Option<String>,
    pub verdict: Verdict,
    /// The numbers, and what was measured.
    pub evidence: String,
}

/// Every claim's findings, in claim order.
pub fn check(results: &[Results]) -> Vec<Finding> {
    let rows: Vec<Row<'_>> = cases::rows(results);
    let ok: Vec<Row<'_>> = rows.iter().filter(|r| r.ok()).copied().collect();
    let mut out = Vec::new();
    for claim in Claim::ALL {
        let found = match claim {
            Claim::LinearMatching => {
                let ipt = iptables_slopes(&ok);
                per_mode(&ok, is_iptables, false, |env, cs| linear(env, cs, &ipt))
            }
            Claim::WholeTableRewrite => per_mode(&ok, is_iptables, true, |_, cs| {
                sync::rewrite(cs)
                    .unwrap_or_else(|| growth(cs, "the add-one-service sync", whole_table_note))
            }),
            Claim::CpuSoars => per_mode(&ok, is_iptables, false, |_, cs| cpu(cs)),
            Claim::IpvsConstantLookup => {
                let ipt = iptables_slopes(&ok);
                per_mode(&ok, is_ipvs, false, |env, cs| {
                    constant_lookup(env, cs, &ipt)
                })
            }
            Claim::IpvsSmoothUpdates => per_mode(&ok, is_ipvs, true, |_, rs| {
                let (v, e) = growth(rs, "the add-one-service sync", ipvs_note);
                // Smooth means flat within the margin: the growth verdict turned round.
                let v = match v {
                    Verdict::Confirmed => Verdict::Refuted,
                    Verdict::Refuted => Verdict::Confirmed,
                    other => other,
                };
                (v, e)
            }),
            Claim::IpvsSchedulers => schedulers(&rows),
        };
        if found.is_empty() {
            out.push(Finding {
                claim,
                env: None,
                mode: None,
                verdict: Verdict::NotMeasured,
                evidence: missing(claim).into(),
            });
        }
        out.extend(
            found
                .into_iter()
                .map(|(env, mode, (verdict, evidence))| Finding {
                    claim,
                    env: Some(env),
                    mode,
                    verdict,
                    evidence,
                }),
        );
    }
    out
}

fn missing(claim: Claim) -> &'static str {
    match claim {
        Claim::LinearMatching => {
            "no iptables or iptables-legacy case with a data path ran ok (floor cases do not \
             measure the data path)"
        }
        Claim::WholeTableRewrite => "no iptables or iptables-legacy case ran ok",
        Claim::CpuSoars => "no iptables or iptables-legacy case of kube-proxy's profile ran ok",
        Claim::IpvsConstantLookup => {
            "no IPVS case with a data path ran ok (floor cases do not measure the data path)"
        }
        Claim::IpvsSmoothUpdates => "no IPVS case ran ok",
        Claim::IpvsSchedulers => "no IPVS case ran",
    }
}

fn is_iptables(c: &Case) -> bool {
    c.mode.starts_with("iptables")
}

fn is_ipvs(c: &Case) -> bool {
    c.mode == "ipvs"
}

type Found = Vec<(EnvKey, Option<String>, (Verdict, String))>;

/// Groups the matching ok cases by environment and mode (floor cases too when
/// `floor`), sorted by services, and judges each group.
fn per_mode<'r>(
    ok: &[Row<'r>],
    matches: fn(&Case) -> bool,
    floor: bool,
    judge: impl Fn(&EnvKey, &[&'r Case]) -> (Verdict, String),
) -> Found {
    let mut groups: BTreeMap<(EnvKey, String), Vec<&'r Case>> = BTreeMap::new();
    for r in ok {
        if matches(r.case) && (floor || !cases::is_floor(r.case)) {
            groups.entry((r.env(), r.mode())).or_default().push(r.case);
        }
    }
    groups
        .into_iter()
        .map(|((env, mode), mut cs)| {
            cs.sort_by_key(|c| (c.services, c.endpoints_per_service));
            let verdict = judge(&env, &cs);
            (env, Some(mode), verdict)
        })
        .collect()
}

fn svc(n: u64) -> String {
    format!("{} services", stats::count(n as f64))
}

#[cfg(test)]
mod tests;
