//! A churn phase's log turned into the case's `churn` object.

use std::time::Duration;

use dataplane::ProfileKind;

use crate::analysis::stats;

use crate::datapath::churn::Observed;
use crate::results::{self, ControllerCpu, SyncEvent, SyncWrite};
use crate::run::churn::batch::Batching;
use crate::run::churn::{observe, ChurnLog, Phase};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `churn` object of `log` (of `phase`), run by a controller of `profile` with
/// `batching`; the data path's figures are added by the caller.
pub fn record(
    log: &ChurnLog,
    phase: Phase<'_>,
    batching: Batching,
    profile: ProfileKind,
) -> results::Churn {
    let applied = log
        .changes
        .iter()
        .filter(|c| c.programmed.is_some())
        .count();
    let cfg = phase.cfg;
    results::Churn {
        rate_per_s: phase.rate_per_s,
        duration_s: cfg.duration_s,
        kind: cfg.kind.name().into(),
        batching: match batching {
            Batching::MinSyncPeriod(_) => "min-sync-period",
            Batching::PerChange => "per-change",
        }
        .into(),
        services_churned: log.services.len() as u64,
        changes: applied as u64,
        syncs: log.syncs.len() as u64,
        sync_events: log
            .syncs
            .iter()
            .map(|s| SyncEvent {
                start_ms: ms(s.start),
                end_ms: ms(s.end),
                changes: s.changes as u64,
                writes: (s.writes.iter())
                    .map(|(name, calls)| SyncWrite {
                        name: name.clone(),
                        calls: u64::from(*calls),
                    })
                    .collect(),
            })
            .collect(),
        programming_latency_ms: None,
        removal_latency_ms: None,
        controller_cpu_pct: controller_cpu(log, profile),
        failed_connections: None,
        failed_connections_quiet: None,
        request_p99_us: None,
        datapath_error: None,
        latency_points: vec![],
        failure_marks: vec![],
    }
}

/// Adds what the background traffic saw in the quiet phase and during churn.
pub fn observed(churn: &mut results::Churn, log: &ChurnLog, quiet: &Observed, seen: &Observed) {
    let l = observe::latencies(log, &seen.hits);
    churn.programming_latency_ms = l.added;
    churn.removal_latency_ms = l.removed;
    churn.latency_points = l.points;
    if churn.programming_latency_ms.is_none() && l.unreached > 0 {
        churn.datapath_error = Some(format!(
            "none of the {} added endpoints was reached before the background traffic ended",
            l.unreached
        ));
    }
    churn.failed_connections = Some(observe::failed(&seen.reports));
    churn.failure_marks = observe::failure_marks(log.started, &seen.reports);
    churn.failed_connections_quiet = Some(observe::failed(&quiet.reports));
    churn.request_p99_us = observe::request_p99(&seen.reports, &quiet.reports);
}

/// The syncs' CPU as a percentage of one core over the phase, under the profile's key,
/// with its 95% interval: the syncs redrawn with replacement ([`stats::RESAMPLES`]
/// times, seeded), each draw's total over the same wall time.
fn controller_cpu(log: &ChurnLog, profile: ProfileKind) -> ControllerCpu {
    let wall = log.wall.as_secs_f64();
    let per: Vec<f64> = log
        .syncs
        .iter()
        .map(|s| (s.cost.user + s.cost.sys).as_secs_f64() / wall * 100.0)
        .collect();
    let pct = (wall > 0.0).then(|| per.iter().sum::<f64>());
    let ci = pct.filter(|_| per.len() >= stats::MIN_SAMPLES).map(|_| {
        let mut rng = stats::SplitMix64::new(stats::SEED);
        let mut totals: Vec<f64> = (0..stats::RESAMPLES)
            .map(|_| (0..per.len()).map(|_| per[rng.below(per.len())]).sum())
            .collect();
        stats::percentile_interval(&mut totals)
    });
    match profile {
        ProfileKind::KubeProxy => ControllerCpu {
            kube_proxy: pct,
            kube_proxy_ci95: ci,
            ..ControllerCpu::default()
        },
        ProfileKind::Floor => ControllerCpu {
            floor: pct,
            floor_ci95: ci,
            ..ControllerCpu::default()
        },
    }
}
