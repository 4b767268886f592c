//! Whole-kernel CPU time from `/proc/stat` (all CPUs, every namespace), sampled around
//! a load window so the data path's cost can be given per request.

use std::io;
use std::time::{Duration, Instant};

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks (`USER_HZ`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Parses the first (`cpu `) line of `/proc/stat`.
    pub fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let mut f = line
            .split_ascii_whitespace()
            .skip(1)
            .map(|v| v.parse::<u64>());
        let mut next = || f.next().unwrap_or(Ok(0)).ok();
        Some(CpuTimes {
            user: next()?,
            nice: next()?,
            system: next()?,
            idle: next()?,
            iowait: next()?,
            irq: next()?,
            softirq: next()?,
            steal: next()?,
        })
    }
}

/// One reading of `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub times: CpuTimes,
    pub at: Instant,
}

/// CPU used between two samples, in milliseconds over all CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CpuDelta {
    /// User time, nice included.
    pub user_ms: f64,
    pub sys_ms: f64,
    pub softirq_ms: f64,
    pub irq_ms: f64,
    pub idle_ms: f64,
    pub wall_ms: f64,
}

impl CpuDelta {
    /// Busy CPU (user + sys + irq + softirq).
    pub fn busy_ms(&self) -> f64 {
        self.user_ms + self.sys_ms + self.irq_ms + self.softirq_ms
    }

    /// Busy CPU per request in microseconds (0 when there were no requests).
    pub fn per_request_us(&self, requests: u64) -> f64 {
        if requests == 0 {
            0.0
        } else {
            self.busy_ms() * 1000.0 / requests as f64
        }
    }
}

fn ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

impl CpuSample {
    /// Reads `/proc/stat` now.
    pub fn now() -> io::Result<CpuSample> {
        let text = std::fs::read_to_string("/proc/stat")?;
        let times = CpuTimes::parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "/proc/stat: no aggregate cpu line",
            )
        })?;
        Ok(CpuSample {
            times,
            at: Instant::now(),
        })
    }

    /// CPU used from `earlier` to this sample.
    pub fn since(&self, earlier: &CpuSample) -> CpuDelta {
        delta(
            &earlier.times,
            &self.times,
            ticks_per_s(),
            self.at.saturating_duration_since(earlier.at),
        )
    }
}

fn delta(a: &CpuTimes, b: &CpuTimes, hz: f64, wall: Duration) -> CpuDelta {
    let ms = |x: u64, y: u64| y.saturating_sub(x) as f64 * 1000.0 / hz;
    CpuDelta {
        user_ms: ms(a.user + a.nice, b.user + b.nice),
        sys_ms: ms(a.system, b.system),
        softirq_ms: ms(a.softirq, b.softirq),
        irq_ms: ms(a.irq, b.irq),
        idle_ms: ms(a.idle + a.iowait, b.idle + b.iowait),
        wall_ms: wall.as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str =
        "cpu  100 5 200 1000 10 3 40 0 0 0\ncpu0 50 2 100 500 5 1 20 0 0 0\nintr 1\n";

    #[test]
    fn parses_the_aggregate_line() {
        let t = CpuTimes::parse(STAT).unwrap();
        assert_eq!(
            (t.user, t.nice, t.system, t.idle, t.softirq),
            (100, 5, 200, 1000, 40)
        );
    }

    #[test]
    fn delta_in_ms() {
        let a = CpuTimes::parse(STAT).unwrap();
        let b = CpuTimes {
            user: 110,
            nice: 5,
            system: 230,
            softirq: 45,
            ..a
        };
        let d = delta(&a, &b, 100.0, Duration::from_secs(1));
        assert_eq!((d.user_ms, d.sys_ms, d.softirq_ms), (100.0, 300.0, 50.0));
        assert_eq!(d.per_request_us(1000), 450.0);
        assert_eq!(d.per_request_us(0), 0.0);
    }

    #[test]
    fn reads_this_machine() {
        let a = CpuSample::now().unwrap();
        let b = CpuSample::now().unwrap();
        let d = b.since(&a);
        assert!(d.user_ms >= 0.0 && d.wall_ms >= 0.0);
    }
}
