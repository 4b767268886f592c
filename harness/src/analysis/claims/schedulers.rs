//! (f): IPVS offers rr, lc, sh and dh scheduling.

use std::collections::BTreeMap;

use super::{Found, Verdict};
use crate::analysis::cases::{EnvKey, Row};
use crate::results::Status;

/// (f): which of rr, lc, sh and dh ran ok, per environment.
pub(super) fn schedulers(rows: &[Row<'_>]) -> Found {
    const WANTED: [&str; 4] = ["rr", "lc", "sh", "dh"];
    let mut by_env: BTreeMap<EnvKey, BTreeMap<String, (Status, Option<String>)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| super::is_ipvs(r.case)) {
        let s = r.case.ipvs_scheduler.clone().unwrap_or_else(|| "rr".into());
        let e = by_env.entry(r.env()).or_default();
        // Ok anywhere wins; else a failure; else a skip.
        let rank = |st: Status| match st {
            Status::Ok => 2,
            Status::Failed => 1,
            Status::Skipped => 0,
        };
        let new = (r.case.status, r.case.reason.clone());
        match e.get(&s) {
            Some(old) if rank(old.0) >= rank(new.0) => {}
            _ => {
                e.insert(s, new);
            }
        }
    }
    by_env
        .into_iter()
        .map(|(env, seen)| {
            let state = |s: &str| seen.get(s);
            let ok: Vec<&str> = WANTED
                .into_iter()
                .filter(|s| matches!(state(s), Some((Status::Ok, _))))
                .collect();
            let failed = WANTED
                .into_iter()
                .any(|s| matches!(state(s), Some((Status::Failed, _))));
            let verdict = if ok.len() == WANTED.len() {
                Verdict::Confirmed
            } else if failed {
                Verdict::Refuted
            } else {
                Verdict::NotMeasured
            };
            let each: Vec<String> = WANTED
                .into_iter()
                .map(|s| match state(s) {
                    Some((Status::Ok, _)) => format!("{s}: measured ok"),
                    Some((st, why)) => format!(
                        "{s}: {} ({})",
                        if *st == Status::Failed {
                            "failed"
                        } else {
                            "skipped"
                        },
                        why.as_deref().unwrap_or("no reason recorded")
                    ),
                    None => format!("{s}: not in this run's scenario"),
                })
                .collect();
            (env, None, (verdict, format!("{}.", each.join("; "))))
        })
        .collect()
}
