//! The churn phases of a run: one row per environment, mode, service count and rate
//! (kube-proxy's case, with the floor's controller CPU beside it), and the planner's
//! "up to how many services does each mode meet the programming-latency SLO and a CPU
//! budget at this churn rate", drawn only from measured scales. Whether a p99 meets the
//! SLO is the one rule (`stats::trend`) on p99 minus the SLO.

use crate::analysis::cases::{base_mode, is_floor, rows as case_rows, EnvKey, Row};
use crate::analysis::stats::{difference_of_estimates, relative_margin, trend, Forbidden, Trend};
use crate::results::{Churn, Estimate, Results};

/// Kubernetes' network programming latency SLO: p99 within 30 s.
pub const SLO_P99_MS: f64 = 30_000.0;

/// One measured churn phase with the floor's CPU beside it.
#[derive(Debug, Clone)]
pub struct ChurnRow {
    pub env: EnvKey,
    pub mode: String,
    pub services: u64,
    pub churn: Churn,
    /// The floor profile's controller CPU at the same environment, mode, N and rate.
    pub floor_cpu_pct: Option<f64>,
    /// Its 95% interval.
    pub floor_cpu_ci95: Option<[f64; 2]>,
}

impl ChurnRow {
    /// kube-proxy's controller CPU, percent of one core.
    pub fn kube_proxy_cpu_pct(&self) -> Option<f64> {
        self.churn.controller_cpu_pct.kube_proxy
    }

    /// kube-proxy's CPU minus the floor's (the controller's share), both intervals in
    /// quadrature, with the one rule's verdict against a margin of a tenth of the floor's
    /// figure (the share cannot be negative); `None` without both figures and intervals.
    pub fn cpu_split(&self) -> Option<(Estimate, Trend, f64)> {
        let cpu = &self.churn.controller_cpu_pct;
        let kp = Estimate {
            estimate: cpu.kube_proxy?,
            ci95: cpu.kube_proxy_ci95?,
        };
        let fl = Estimate {
            estimate: self.floor_cpu_pct?,
            ci95: self.floor_cpu_ci95?,
        };
        let e = difference_of_estimates(kp, fl);
        let margin = relative_margin(fl.estimate);
        Some((e, trend(&e, margin, Forbidden::Down), margin))
    }

    /// The verdict on programming latency p99 against the SLO: `Shrinks` (below it,
    /// the whole interval), `Grows` (above it), `Inconclusive`; `None` unmeasured.
    pub fn slo(&self) -> Option<Trend> {
        let l = self.churn.programming_latency_ms.as_ref()?;
        let e = Estimate {
            estimate: l.p99 - SLO_P99_MS,
            ci95: [l.ci95_p99[0] - SLO_P99_MS, l.ci95_p99[1] - SLO_P99_MS],
        };
        Some(trend(&e, 0.0, Forbidden::Neither))
    }
}

fn same_point(a: &Row<'_>, b: &Row<'_>, ca: &Churn, cb: &Churn) -> bool {
    a.env() == b.env()
        && base_mode(a.case) == base_mode(b.case)
        && a.case.services == b.case.services
        && ca.rate_per_s == cb.rate_per_s
}

/// Every churn phase of kube-proxy's profile (or of a case without a profile), a
/// sweep's every rate its own row, in environment, mode, rate and service order.
pub fn rows(results: &[Results]) -> Vec<ChurnRow> {
    let all = case_rows(results);
    let with: Vec<(&Row<'_>, &Churn)> = all
        .iter()
        .flat_map(|r| r.case.churn_phases().map(move |c| (r, c)))
        .collect();
    let mut out: Vec<ChurnRow> = with
        .iter()
        .filter(|(r, _)| !is_floor(r.case))
        .map(|(r, c)| {
            let floor = with
                .iter()
                .find(|(f, fc)| is_floor(f.case) && same_point(r, f, c, fc))
                .map(|(_, fc)| &fc.controller_cpu_pct);
            ChurnRow {
                env: r.env(),
                mode: r.mode(),
                services: r.case.services,
                churn: (*c).clone(),
                floor_cpu_pct: floor.and_then(|f| f.floor),
                floor_cpu_ci95: floor.and_then(|f| f.floor_ci95),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (
            a.env.label(),
            &a.mode,
            a.churn.rate_per_s.to_bits(),
            a.services,
        )
            .cmp(&(
                b.env.label(),
                &b.mode,
                b.churn.rate_per_s.to_bits(),
                b.services,
            ))
    });
    out
}

/// The planner's line for one mode at one rate in one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanLine {
    pub env: String,
    pub mode: String,
    pub rate_per_s: f64,
    /// The largest measured N up to which every measured N met both (None: not even
    /// the smallest).
    pub up_to: Option<u64>,
    /// The first measured N that failed or could not be decided, and why.
    pub stopped_by: Option<(u64, String)>,
    pub largest_measured: u64,
}

/// Up to how many services each mode meets the SLO (the one rule: p99's whole interval
/// below 30 s) and `cpu_budget_pct` of one core of controller CPU (kube-proxy's
/// profile; its point figure), at each rate, from the measured
/// scales only.
pub fn plan(rows: &[ChurnRow], cpu_budget_pct: f64) -> Vec<PlanLine> {
    let mut lines: Vec<PlanLine> = Vec::new();
    for r in rows {
        let key = (r.env.label(), r.mode.clone(), r.churn.rate_per_s);
        let i = match lines
            .iter()
            .position(|l| (l.env.clone(), l.mode.clone(), l.rate_per_s) == key)
        {
            Some(i) => i,
            None => {
                lines.push(PlanLine {
                    env: key.0,
                    mode: key.1,
                    rate_per_s: key.2,
                    up_to: None,
                    stopped_by: None,
                    largest_measured: 0,
                });
                lines.len() - 1
            }
        };
        let l = &mut lines[i];
        l.largest_measured = l.largest_measured.max(r.services);
        if l.stopped_by.is_some() {
            continue;
        }
        let why = match (r.slo(), r.kube_proxy_cpu_pct()) {
            (Some(Trend::Shrinks), Some(cpu)) if cpu <= cpu_budget_pct => None,
            (Some(Trend::Shrinks), Some(cpu)) => Some(format!(
                "controller CPU {cpu:.0}% of a core over the {cpu_budget_pct:.0}% budget"
            )),
            (Some(Trend::Shrinks), None) => Some("controller CPU not measured".into()),
            (Some(Trend::Grows), _) => Some("programming latency p99 above 30 s".into()),
            (Some(_), _) => Some("programming latency p99's interval spans 30 s".into()),
            (None, _) => Some("programming latency not measured".into()),
        };
        match why {
            None => l.up_to = Some(r.services),
            Some(w) => l.stopped_by = Some((r.services, w)),
        }
    }
    lines
}

/// A churn phase with exact figures, for tests: p99 `p99_ms` with an interval of ±10%,
/// the controller CPU under `profile`'s key.
#[cfg(test)]
pub(crate) fn sample(p99_ms: f64, cpu: f64, profile: &str) -> Churn {
    use crate::results::{ControllerCpu, LatencySummaryMs};
    let kp = profile != "floor";
    Churn {
        rate_per_s: 10.0,
        duration_s: 10.0,
        kind: "rolling".into(),
        batching: "min-sync-period".into(),
        services_churned: 10,
        changes: 100,
        syncs: 11,
        sync_events: vec![],
        programming_latency_ms: kp.then_some(LatencySummaryMs {
            p50: p99_ms / 2.0,
            p99: p99_ms,
            max: p99_ms,
            ci95_p99: [p99_ms * 0.9, p99_ms * 1.1],
            samples: 100,
            unobserved: 0,
        }),
        removal_latency_ms: None,
        controller_cpu_pct: ControllerCpu {
            kube_proxy: kp.then_some(cpu),
            floor: (!kp).then_some(cpu),
            kube_proxy_ci95: kp.then_some([cpu * 0.95, cpu * 1.05]),
            floor_ci95: (!kp).then_some([cpu * 0.95, cpu * 1.05]),
        },
        failed_connections: None,
        failed_connections_quiet: None,
        request_p99_us: None,
        datapath_error: None,
        latency_points: vec![],
        failure_marks: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(services: u64, p99_ms: f64, cpu: f64) -> ChurnRow {
        ChurnRow {
            env: EnvKey {
                kind: "host".into(),
                kernel: "6.1".into(),
            },
            mode: "nftables".into(),
            services,
            churn: sample(p99_ms, cpu, "kube-proxy"),
            floor_cpu_pct: None,
            floor_cpu_ci95: None,
        }
    }

    #[test]
    fn the_plan_stops_at_the_first_scale_past_the_slo_or_the_budget() {
        let rows = [
            row(1000, 2_000.0, 20.0),
            row(5000, 9_000.0, 60.0),
            row(10000, 28_000.0, 90.0),
        ];
        let p = plan(&rows, 50.0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].up_to, Some(1000));
        assert_eq!(p[0].largest_measured, 10000);
        assert!(p[0].stopped_by.as_ref().unwrap().1.contains("budget"));
        // 28 s with an interval up to 30.8 s cannot be said to meet the SLO.
        let p = plan(&rows, 100.0);
        assert_eq!(p[0].up_to, Some(5000));
        assert!(p[0].stopped_by.as_ref().unwrap().1.contains("spans 30 s"));
        assert_eq!(rows[0].slo(), Some(Trend::Shrinks));
        assert_eq!(row(1, 40_000.0, 1.0).slo(), Some(Trend::Grows));
    }
}
