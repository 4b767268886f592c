//! Summaries of repeated measurements: nearest-rank percentiles over samples.

use std::time::Duration;

use crate::analysis::stats::percentile;
use crate::results::{DurationSummary, StepSummary};

/// One timed sample: wall time and CPU (process plus children).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub wall: Duration,
    pub user: Duration,
    pub sys: Duration,
}

impl From<dataplane::floor::exec::Cost> for Sample {
    fn from(c: dataplane::floor::exec::Cost) -> Self {
        Sample {
            wall: c.wall,
            user: c.user,
            sys: c.sys,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

/// Summarises samples as p50/p90/p99/max of wall time and the median CPU.
/// Returns None for no samples (the schema requires at least one).
pub fn summarize(samples: &[Sample]) -> Option<DurationSummary> {
    if samples.is_empty() {
        return None;
    }
    let walls: Vec<f64> = samples.iter().map(|s| ms(s.wall)).collect();
    let mut sorted = walls.clone();
    sorted.sort_by(f64::total_cmp);
    Some(DurationSummary {
        samples: samples.len() as u64,
        p50_ms: percentile(&sorted, 50.0),
        p90_ms: percentile(&sorted, 90.0),
        p99_ms: percentile(&sorted, 99.0),
        max_ms: *sorted.last().expect("non-empty"),
        cpu_user_ms: median(samples.iter().map(|s| ms(s.user)).collect()),
        cpu_sys_ms: median(samples.iter().map(|s| ms(s.sys)).collect()),
        samples_ms: walls,
        payload_bytes: None,
        steps: Vec::new(),
    })
}

/// The steps of several syncs of one kind, averaged per sync, in the order they first
/// ran.
pub fn mean_steps(logs: &[dataplane::floor::sync::StepLog]) -> Vec<StepSummary> {
    let n = logs.len().max(1) as f64;
    let mut out: Vec<StepSummary> = Vec::new();
    for log in logs {
        for s in &log.steps {
            let i = match out.iter().position(|o| o.name == s.name) {
                Some(i) => i,
                None => {
                    out.push(StepSummary {
                        name: s.name.clone(),
                        category: s.category.name().to_string(),
                        calls: 0.0,
                        wall_ms: 0.0,
                        user_ms: 0.0,
                        sys_ms: 0.0,
                    });
                    out.len() - 1
                }
            };
            let o = &mut out[i];
            o.calls += f64::from(s.calls) / n;
            o.wall_ms += ms(s.cost.wall) / n;
            o.user_ms += ms(s.cost.user) / n;
            o.sys_ms += ms(s.cost.sys) / n;
        }
    }
    out
}

/// The samples of one kind of sync, with their steps.
#[derive(Debug, Default)]
pub struct Samples {
    samples: Vec<Sample>,
    steps: Vec<dataplane::floor::sync::StepLog>,
    payloads: Vec<usize>,
}

impl Samples {
    pub fn push(
        &mut self,
        (sample, payload, steps): (Sample, usize, dataplane::floor::sync::StepLog),
    ) {
        self.samples.push(sample);
        self.steps.push(steps);
        self.payloads.push(payload);
    }

    /// The samples so far.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn summary(&self) -> Option<DurationSummary> {
        let mut s = summarize(&self.samples)?;
        s.steps = mean_steps(&self.steps);
        let mut p = self.payloads.clone();
        p.sort_unstable();
        s.payload_bytes = p.get(p.len() / 2).map(|&b| b as u64);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s: Vec<Sample> = [30u64, 10, 20]
            .iter()
            .map(|&m| Sample {
                wall: Duration::from_millis(m),
                user: Duration::from_millis(m / 10),
                sys: Duration::from_millis(m / 5),
            })
            .collect();
        let d = summarize(&s).unwrap();
        assert_eq!(d.samples, 3);
        assert_eq!(d.p50_ms, 20.0);
        assert_eq!(d.max_ms, 30.0);
        assert_eq!(d.p99_ms, 30.0);
        assert_eq!(d.cpu_user_ms, 2.0);
        assert_eq!(d.cpu_sys_ms, 4.0);
        assert_eq!(d.samples_ms, vec![30.0, 10.0, 20.0]);
        assert!(summarize(&[]).is_none());
    }
}
