//! The calling thread's CPU to the nanosecond. `getrusage(RUSAGE_THREAD)` alone is
//! not enough: its user and system counters move in scheduler ticks (a 30 µs map
//! update reads 0 or several milliseconds), so a sync of a few map writes reads zero.
//! The total comes from the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`, the
//! scheduler's exact run time); only the split into user and system follows
//! `getrusage`.

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};
use nix::time::{clock_gettime, ClockId};

/// One reading of the calling thread's CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadCpu {
    /// The thread's CPU clock.
    clock: Duration,
    /// `getrusage`'s user and system time, tick-grained.
    user: Duration,
    sys: Duration,
}

/// Reads the calling thread's CPU now.
pub fn now() -> ThreadCpu {
    let clock = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| Duration::new(t.tv_sec().max(0) as u64, t.tv_nsec().max(0) as u32))
        .unwrap_or_default();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    // Only EINVAL is possible, and RUSAGE_THREAD is valid on Linux.
    let (user, sys) = getrusage(UsageWho::RUSAGE_THREAD)
        .map(|u| (tv(u.user_time()), tv(u.system_time())))
        .unwrap_or_default();
    ThreadCpu { clock, user, sys }
}

impl ThreadCpu {
    /// The CPU between `earlier` and this reading as (user, sys). They add up to the CPU
    /// clock's difference exactly; it is split as `getrusage`'s counters moved over the
    /// same span or, when neither moved (a span shorter than a tick), as they split the
    /// thread's whole life so far (all user when the thread has no tick yet).
    pub fn since(self, earlier: ThreadCpu) -> (Duration, Duration) {
        let total = self.clock.saturating_sub(earlier.clock);
        let (du, ds) = (
            self.user.saturating_sub(earlier.user),
            self.sys.saturating_sub(earlier.sys),
        );
        let (u, s) = if du + ds > Duration::ZERO {
            (du, ds)
        } else {
            (self.user, self.sys)
        };
        let ticks = (u + s).as_secs_f64();
        let sys = if ticks > 0.0 {
            total.mul_f64(s.as_secs_f64() / ticks)
        } else {
            Duration::ZERO
        };
        (total - sys.min(total), sys.min(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(clock_us: u64, user_ms: u64, sys_ms: u64) -> ThreadCpu {
        ThreadCpu {
            clock: Duration::from_micros(clock_us),
            user: Duration::from_millis(user_ms),
            sys: Duration::from_millis(sys_ms),
        }
    }

    #[test]
    fn a_span_shorter_than_a_tick_keeps_its_exact_total() {
        // 30 µs of CPU while getrusage did not move: split as the thread's life (1:3).
        let (u, s) = at(10_030, 1, 3).since(at(10_000, 1, 3));
        assert_eq!(u + s, Duration::from_micros(30));
        assert_eq!(s, Duration::from_nanos(22_500));
    }

    #[test]
    fn a_span_over_ticks_splits_as_they_moved() {
        // 8 ms of clock while one 4 ms tick went to user and one to sys.
        let (u, s) = at(18_000, 5, 4).since(at(10_000, 1, 0));
        assert_eq!((u, s), (Duration::from_millis(4), Duration::from_millis(4)));
        // No tick yet in the whole life: all user.
        assert_eq!(
            at(50, 0, 0).since(at(20, 0, 0)),
            (Duration::from_micros(30), Duration::ZERO)
        );
    }

    #[test]
    fn a_busy_loop_of_microseconds_reads_nonzero() {
        // What getrusage alone read as zero: a few microseconds of work on this thread.
        let before = now();
        let mut x = 0u64;
        for i in 0..20_000u64 {
            x = std::hint::black_box(x.wrapping_add(i * i));
        }
        let (u, s) = now().since(before);
        assert!(
            u + s > Duration::ZERO && u + s < Duration::from_millis(500),
            "{u:?} {s:?} {x}"
        );
    }
}
