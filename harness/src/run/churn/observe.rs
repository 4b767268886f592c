//! What the background traffic of a churn phase says about it, as pure functions of
//! the phase's log and what the data path saw:
//!
//! - network programming latency: for every added endpoint, the time from its change's
//!   arrival to the first new connection through the service's VIP that reached it
//!   (never reached within the phase: `unobserved`);
//! - removal latency: for every removed endpoint, the time from its change's arrival to
//!   the last new connection that still reached it (0 when none did after the change);
//! - failed connections by kind, and request latency p99 against the quiet phase, the
//!   difference judged by the one rule (`stats::trend`).
//!
//! Both latencies are resolved to the gap between connections reaching one endpoint:
//! about `services x endpoints / background_rate_per_s` seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::analysis::stats::{self, percentile, Forbidden};
use crate::datapath::load::LoadReport;
use crate::results::{
    ChurnVsQuiet, FailedConnections, FailureMark, JudgedDifference, LatencyPoint, LatencySummaryMs,
};
use crate::run::churn::ChurnLog;

/// When each endpoint was reached, from the phase's start, in order.
fn by_endpoint(started: Instant, hits: &[(Instant, IpAddr)]) -> HashMap<IpAddr, Vec<Duration>> {
    let mut map: HashMap<IpAddr, Vec<Duration>> = HashMap::new();
    for &(t, ip) in hits {
        if let Some(d) = t.checked_duration_since(started) {
            map.entry(ip).or_default().push(d);
        }
    }
    for v in map.values_mut() {
        v.sort_unstable();
    }
    map
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The latencies of a phase: summaries and every endpoint's own, on the time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Latencies {
    pub added: Option<LatencySummaryMs>,
    pub removed: Option<LatencySummaryMs>,
    pub points: Vec<LatencyPoint>,
    /// Added endpoints never reached within the phase's traffic.
    pub unreached: u64,
}

/// Programming latency of the added endpoints and removal latency of the removed ones.
pub fn latencies(log: &ChurnLog, hits: &[(Instant, IpAddr)]) -> Latencies {
    let seen = by_endpoint(log.started, hits);
    let (mut added, mut missed) = (Vec::new(), 0);
    let mut removed = Vec::new();
    let mut points = Vec::new();
    let mut point = |c: &crate::run::churn::ChangeRecord, latency_ms: f64, added: bool| {
        points.push(LatencyPoint {
            arrival_ms: ms(c.arrival),
            latency_ms,
            added,
        })
    };
    for c in &log.changes {
        let after = |ip: &std::net::Ipv4Addr| {
            seen.get(&IpAddr::V4(*ip))
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|&t| t >= c.arrival)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        for ip in &c.change.added {
            match after(ip).first() {
                Some(&t) => {
                    added.push(ms(t - c.arrival));
                    point(c, ms(t - c.arrival), true);
                }
                None => missed += 1,
            }
        }
        for ip in &c.change.removed {
            let last = after(ip).last().map_or(Duration::ZERO, |&t| t - c.arrival);
            removed.push(ms(last));
            point(c, ms(last), false);
        }
    }
    Latencies {
        added: latency_summary(&added, missed),
        removed: latency_summary(&removed, 0),
        points,
        unreached: missed,
    }
}

/// Refused, reset and timed-out connections of `reports`, of all attempted.
pub fn failed(reports: &[LoadReport]) -> FailedConnections {
    let mut f = FailedConnections {
        refused: 0,
        reset: 0,
        timeout: 0,
        attempted: 0,
    };
    for r in reports {
        f.refused += r.errors.refused;
        f.reset += r.errors.reset;
        f.timeout += r.errors.timeout;
        f.attempted += r.requests;
    }
    f
}

/// Every time-stamped connection failure of `reports` on the phase's time axis, in
/// time order (one sent just before `started` at 0).
pub fn failure_marks(started: Instant, reports: &[LoadReport]) -> Vec<FailureMark> {
    use crate::datapath::load::ErrorKind;
    let mut marks: Vec<FailureMark> = (reports.iter())
        .flat_map(|r| &r.failures)
        .map(|&(t, kind)| FailureMark {
            at_ms: ms(t.saturating_duration_since(started)),
            kind: match kind {
                ErrorKind::Refused => "refused",
                ErrorKind::Reset => "reset",
                _ => "timeout",
            }
            .into(),
        })
        .collect();
    marks.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    marks
}

/// Each churned service's request latency p99 (µs), of the services answered at all.
fn p99s(reports: &[LoadReport]) -> Vec<f64> {
    reports
        .iter()
        .filter(|r| r.ok > 0)
        .map(|r| r.latency_us.value_at_quantile(0.99) as f64)
        .collect()
}

/// Request p99 during churn against the quiet phase: the median over the churned
/// services of each one's p99, churn minus quiet with a bootstrap interval over the
/// services, judged with a margin of a tenth of the quiet figure. `None` with fewer
/// than three services answered on a side.
pub fn request_p99(churn: &[LoadReport], quiet: &[LoadReport]) -> Option<ChurnVsQuiet> {
    let (c, q) = (p99s(churn), p99s(quiet));
    let e = stats::median_difference(&c, &q)?;
    let quiet_p99 = stats::median(&q)?;
    let margin = stats::relative_margin(quiet_p99);
    Some(ChurnVsQuiet {
        churn: stats::median(&c)?,
        quiet: quiet_p99,
        difference: JudgedDifference {
            estimate: e.estimate,
            ci95: e.ci95,
            verdict: stats::trend(&e, margin, Forbidden::Neither),
            margin,
        },
    })
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
    use std::net::Ipv4Addr;

    use super::*;
    use crate::run::churn::changes::Change;
    use crate::run::churn::ChangeRecord;

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, 0, n)
    }

    #[test]
    fn added_endpoints_count_from_arrival_to_first_hit_and_removed_to_last() {
        let started = Instant::now();
        let at = |ms: u64| started + Duration::from_millis(ms);
        let change = |arrival_ms, added: Vec<Ipv4Addr>, removed: Vec<Ipv4Addr>| ChangeRecord {
            change: Change {
                service: 0,
                added,
                removed,
            },
            arrival: Duration::from_millis(arrival_ms),
            programmed: Some(Duration::from_millis(arrival_ms + 100)),
        };
        let log = ChurnLog {
            started,
            syncs: vec![],
            changes: vec![
                change(100, vec![ip(1)], vec![ip(9)]),
                change(200, vec![ip(2)], vec![ip(8)]),
                change(300, vec![ip(3)], vec![]),
            ],
            set: Default::default(),
            wall: Duration::from_secs(1),
            services: vec![0],
        };
        let v4 = |n| IpAddr::V4(ip(n));
        let hits = vec![
            (at(50), v4(9)),
            (at(120), v4(9)),
            (at(400), v4(9)),
            (at(350), v4(1)),
            (at(700), v4(1)),
            (at(1200), v4(2)),
            (at(150), v4(8)),
        ];
        let l = latencies(&log, &hits);
        assert_eq!((l.points.len(), l.unreached), (4, 1));
        assert!(l.points.iter().any(|p| p.added && p.latency_ms == 1000.0));
        let (added, removed) = (l.added, l.removed);
        let added = added.unwrap();
        // ip 1: 350 - 100; ip 2: 1200 - 200; ip 3 never reached.
        assert_eq!((added.samples, added.unobserved), (2, 1));
        assert_eq!((added.p50, added.max), (250.0, 1000.0));
        // ip 9: last hit at 400 after its change at 100; ip 8: none after 200.
        let removed = removed.unwrap();
        assert_eq!((removed.samples, removed.max, removed.p50), (2, 300.0, 0.0));
    }

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
