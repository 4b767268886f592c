//! Whole-kernel CPU time from `/proc/stat` (all CPUs, every namespace), sampled around
//! a load window so the data path's cost can be given per request.

use std::time::{Duration, Instant};

use procfs::{CpuTime, FromBufReadSI, KernelStats};

/// `/proc/stat` could not be read or parsed. The message carries procfs's error (so it
/// is not also given as the source, which error chains would print twice).
#[derive(Debug, thiserror::Error)]
#[error("/proc/stat: {0} (is /proc mounted?)")]
pub struct CpuStatError(procfs::ProcError);

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks (`USER_HZ`); fields the
/// kernel does not report count as 0.
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

impl From<&CpuTime> for CpuTimes {
    fn from(t: &CpuTime) -> Self {
        CpuTimes {
            user: t.user,
            nice: t.nice,
            system: t.system,
            idle: t.idle,
            iowait: t.iowait.unwrap_or(0),
            irq: t.irq.unwrap_or(0),
            softirq: t.softirq.unwrap_or(0),
            steal: t.steal.unwrap_or(0),
        }
    }
}

impl CpuTimes {
    /// Parses the aggregate (`cpu `) line of `/proc/stat` text.
    pub fn parse(stat: &str) -> Result<CpuTimes, CpuStatError> {
        // Only the parse of the cpu lines uses the system info, for its tick rate.
        let info = procfs::ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: procfs::ticks_per_second(),
            page_size: 4096,
            is_little_endian: cfg!(target_endian = "little"),
        };
        let stats = KernelStats::from_buf_read(stat.as_bytes(), &info).map_err(CpuStatError)?;
        Ok(CpuTimes::from(&stats.total))
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
    /// System time.
    pub sys_ms: f64,
    /// Softirq time.
    pub softirq_ms: f64,
    /// Hard interrupt time.
    pub irq_ms: f64,
    /// Idle time, iowait included.
    pub idle_ms: f64,
    /// Wall time between the samples.
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

impl CpuSample {
    /// Reads `/proc/stat` now.
    pub fn now() -> Result<CpuSample, CpuStatError> {
        use procfs::CurrentSI;
        let stats = KernelStats::current().map_err(CpuStatError)?;
        Ok(CpuSample {
            times: CpuTimes::from(&stats.total),
            at: Instant::now(),
        })
    }

    /// CPU used from `earlier` to this sample.
    pub fn since(&self, earlier: &CpuSample) -> CpuDelta {
        delta(
            &earlier.times,
            &self.times,
            procfs::ticks_per_second() as f64,
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

    const STAT: &str = "cpu  100 5 200 1000 10 3 40 0 0 0\ncpu0 50 2 100 500 5 1 20 0 0 0\n\
        intr 1\nctxt 7\nbtime 1700000000\nprocesses 9\nprocs_running 1\n";

    #[test]
    fn parses_the_aggregate_line() {
        let t = CpuTimes::parse(STAT).unwrap();
        assert_eq!(
            (t.user, t.nice, t.system, t.idle, t.softirq),
            (100, 5, 200, 1000, 40)
        );
    }

    #[test]
    fn text_without_an_aggregate_line_is_an_error() {
        let e = CpuTimes::parse("cpu0 1 2 3 4\nctxt 7\nbtime 1\nprocesses 9\n").unwrap_err();
        assert!(e.to_string().starts_with("/proc/stat: "), "{e}");
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
