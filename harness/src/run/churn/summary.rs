//! A churn phase's log turned into the case's `churn` object.

use std::time::Duration;

use dataplane::ProfileKind;

use crate::analysis::stats::percentile;
use crate::results::{self, ControllerCpu, LatencySummaryMs, SyncEvent};
use crate::run::churn::batch::Batching;
use crate::run::churn::ChurnLog;
use crate::scenario::Churn;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `churn` object of `log`, run by a controller of `profile` with `batching`; the
/// data path's figures are added by the caller.
pub fn record(
    log: &ChurnLog,
    cfg: &Churn,
    batching: Batching,
    profile: ProfileKind,
) -> results::Churn {
    let applied = log
        .changes
        .iter()
        .filter(|c| c.programmed.is_some())
        .count();
    results::Churn {
        rate_per_s: cfg.rate_per_s,
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
            })
            .collect(),
        programming_latency_ms: None,
        removal_latency_ms: None,
        controller_cpu_pct: controller_cpu(log, profile),
        failed_connections: None,
        failed_connections_quiet: None,
        request_p99_us: None,
    }
}

/// The syncs' CPU as a percentage of one core over the phase, under the profile's key.
fn controller_cpu(log: &ChurnLog, profile: ProfileKind) -> ControllerCpu {
    let wall = log.wall.as_secs_f64();
    let pct = (wall > 0.0).then(|| log.cpu().as_secs_f64() / wall * 100.0);
    match profile {
        ProfileKind::KubeProxy => ControllerCpu {
            kube_proxy: pct,
            floor: None,
        },
        ProfileKind::Floor => ControllerCpu {
            kube_proxy: None,
            floor: pct,
        },
    }
}

/// 0-based ranks bounding quantile `q` of `n` sorted samples with about 95% coverage:
/// the normal approximation to Binomial(n, q), widened to whole ranks; with few samples
/// it reaches the samples' range.
pub fn quantile_ci_ranks(n: usize, q: f64) -> (usize, usize) {
    assert!(n > 0, "quantile interval of no samples");
    let nf = n as f64;
    let half = 1.96 * (nf * q * (1.0 - q)).sqrt();
    let lo = (nf * q - half).floor().max(1.0) as usize;
    let hi = ((nf * q + half).ceil() as usize + 1).min(n);
    (lo - 1, hi - 1)
}

/// p50, p99 (with its interval) and max of latencies in milliseconds; `None` without
/// samples. `unobserved` counts the endpoints left out.
pub fn latency_summary(samples: &[f64], unobserved: u64) -> Option<LatencySummaryMs> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let (lo, hi) = quantile_ci_ranks(s.len(), 0.99);
    Some(LatencySummaryMs {
        p50: percentile(&s, 50.0),
        p99: percentile(&s, 99.0),
        max: s[s.len() - 1],
        ci95_p99: [s[lo], s[hi]],
        samples: s.len() as u64,
        unobserved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p99_interval_brackets_the_p99_and_spans_the_range_when_few() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        let s = latency_summary(&v, 2).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (500.0, 990.0, 1000.0));
        assert!(s.ci95_p99[0] < 990.0 && s.ci95_p99[1] > 990.0, "{s:?}");
        assert!(s.ci95_p99[1] - s.ci95_p99[0] < 20.0, "{s:?}");
        assert_eq!(s.unobserved, 2);
        let few = latency_summary(&[3.0, 1.0, 2.0], 0).unwrap();
        assert_eq!(few.ci95_p99, [2.0, 3.0]);
        assert_eq!(few.max, 3.0);
        assert!(latency_summary(&[], 0).is_none());
    }
}
