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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

use super::errors::ErrorKind;
use super::http::Conn;
use super::worker::Shared;

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
            let mut st = sh.stats.borrow_mut();
            st.requests += 1;
            st.errors.add(ErrorKind::NotSent);
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
                    let mut st = sh.stats.borrow_mut();
                    st.requests += 1;
                    st.errors.add(ErrorKind::NotSent);
                } else {
                    sh.request(&mut conn, Some(due)).await;
                }
            }
            None if sh.dispatch_done.get() => return,
            None => sh.notify.notified().await,
        }
    }
}

/// A one-shot timer on a timerfd, awaited through tokio's reactor.
struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
}

impl PreciseTimer {
    fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create returns a new descriptor we own, or -1.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the AsyncFd owns the descriptor and nothing closes or replaces it.
        let fd = unsafe { AsyncFd::register(fd)? };
        Ok(PreciseTimer { fd })
    }

    async fn sleep_until(&mut self, deadline: Instant) -> io::Result<()> {
        let now = Instant::now();
        if deadline <= now + Duration::from_micros(2) {
            return Ok(());
        }
        let d = deadline - now;
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid descriptor and a valid itimerspec; no old value requested.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut guard = self.fd.readable().await?;
            let res = guard.try_io(|fd| {
                let mut expirations = [0u8; 8];
                // SAFETY: reads 8 bytes into a local buffer of 8 bytes.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        expirations.as_mut_ptr().cast(),
                        expirations.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            });
            match res {
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
