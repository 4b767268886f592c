//! Open loop (constant rate) with coordinated-omission correction.
//!
//! A dispatcher puts each request's due time on a queue exactly when it is due; idle
//! connection slots take them in order. A request's latency counts from its due time,
//! not from when a slot got to send it, so a stalled target shows up as the queueing
//! it causes (as in wrk2) instead of silently lowering the send rate.
//!
//! tokio's timers tick in milliseconds, which would add up to 1 ms of error to every
//! latency; the dispatcher waits on a timerfd instead, which fires to the microsecond.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;

use super::http::Conn;
use super::state::Shared;

/// Due requests further behind than this are counted as not sent right away, which
/// bounds the queue's memory when the target or the client cannot keep up.
const MAX_QUEUE: usize = 1 << 20;

/// Which requests of the global schedule this thread sends: request `g` (0-based) is
/// due at `start + g / rate`, and thread `index` of `threads` sends those with
/// `g % threads == index`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Share {
    pub rate: f64,
    pub index: usize,
    pub threads: usize,
    pub start: Instant,
}

impl Share {
    /// Due time of this thread's `i`-th request.
    pub(crate) fn due(&self, i: u64) -> Instant {
        let g = i * self.threads as u64 + self.index as u64;
        self.start + Duration::from_secs_f64(g as f64 / self.rate)
    }
}

/// Queues every due time of this thread's share until the phase ends.
pub(crate) async fn dispatch(sh: Rc<Shared>, share: Share) {
    let mut timer = PreciseTimer::new().ok();
    let mut i = 0u64;
    loop {
        let due = share.due(i);
        if due >= sh.end {
            break;
        }
        match &mut timer {
            Some(t) => {
                if t.sleep_until(due).await.is_err() {
                    timer = None;
                }
            }
            None => tokio::time::sleep_until(due.into()).await,
        }
        let mut q = sh.queue.borrow_mut();
        if q.len() >= MAX_QUEUE {
            sh.stats.borrow_mut().not_sent();
        } else {
            q.push_back(due);
            sh.notify.notify_one();
        }
        i += 1;
    }
    sh.dispatch_done.set(true);
    sh.notify.notify_waiters();
}

/// One connection slot: sends queued requests until the dispatcher is done and the
/// queue is empty. Requests still queued after the drain deadline are not sent.
pub(crate) async fn slot(sh: Rc<Shared>) {
    let mut conn = Conn::new();
    loop {
        let next = sh.queue.borrow_mut().pop_front();
        match next {
            Some(due) => {
                if Instant::now() >= sh.drain_deadline {
                    sh.stats.borrow_mut().not_sent();
                } else {
                    sh.request(&mut conn, Some(due)).await;
                }
            }
            None if sh.dispatch_done.get() => return,
            None => sh.notify.notified().await,
        }
    }
}

/// nix's [`TimerFd`] offers its descriptor through `AsFd`; tokio's reactor wants `AsRawFd`.
struct TimerDescriptor(TimerFd);

impl AsRawFd for TimerDescriptor {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot timer on a timerfd, awaited through tokio's reactor.
struct PreciseTimer {
    fd: AsyncFd<TimerDescriptor>,
}

impl PreciseTimer {
    fn new() -> io::Result<Self> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: the AsyncFd owns the TimerFd, whose descriptor stays open and the same
        // until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register(TimerDescriptor(timer))? };
        Ok(PreciseTimer { fd })
    }

    async fn sleep_until(&mut self, deadline: Instant) -> io::Result<()> {
        let now = Instant::now();
        if deadline <= now + Duration::from_micros(2) {
            return Ok(());
        }
        let wait = TimeSpec::from_duration(deadline - now);
        self.fd
            .get_ref()
            .0
            .set(Expiration::OneShot(wait), TimerSetTimeFlags::empty())?;
        loop {
            let mut guard = self.fd.readable().await?;
            // A non-blocking read of the expiration count: WouldBlock until it fired.
            match guard.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_interleave_the_global_schedule() {
        let start = Instant::now();
        let a = Share {
            rate: 1000.0,
            index: 0,
            threads: 2,
            start,
        };
        let b = Share { index: 1, ..a };
        assert_eq!(a.due(0), start);
        assert_eq!(b.due(0) - start, Duration::from_millis(1));
        assert_eq!(a.due(1) - start, Duration::from_millis(2));
        assert_eq!(b.due(1) - start, Duration::from_millis(3));
    }

    #[test]
    fn precise_timer_wakes_on_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut t = PreciseTimer::new().unwrap();
            for _ in 0..20 {
                let due = Instant::now() + Duration::from_micros(300);
                t.sleep_until(due).await.unwrap();
                let now = Instant::now();
                assert!(now >= due, "woke early");
                // Generous: a loaded CI machine may be slow, but never a whole tick late.
                assert!(now - due < Duration::from_millis(5), "{:?}", now - due);
            }
        });
    }
}
