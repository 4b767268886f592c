//! What the connection slots of one generator thread share: the request to send, the
//! phase's deadlines, the open-loop queue and the thread's tallies. The open- and
//! closed-loop slots and the worker that runs them all build on this, so dependencies
//! point one way: `openloop`, `closedloop` and `worker` use `state`, never the reverse.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Notify;

use super::errors::{ErrorCounts, ErrorKind};
use super::http::{request_bytes, Conn, Exchange};
use super::{new_histogram, LoadSpec};

/// One thread's tallies.
pub(crate) struct Stats {
    pub latency: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub errors: ErrorCounts,
    pub requests: u64,
    pub ok: u64,
    pub endpoints: HashMap<Ipv4Addr, u64>,
    pub endpoint_unknown: u64,
    pub last_completion: Option<Instant>,
    /// When each refused, reset or timed-out request was sent, with its kind: the first
    /// [`MAX_FAILURE_MARKS`] of them (the counts in `errors` hold them all).
    pub failures: Vec<(Instant, ErrorKind)>,
}

/// Most failures a generator time-stamps (marks on the churn chart's time axis).
pub const MAX_FAILURE_MARKS: usize = 10_000;

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            latency: new_histogram(),
            uncorrected: new_histogram(),
            connect: new_histogram(),
            lag: new_histogram(),
            errors: ErrorCounts::default(),
            requests: 0,
            ok: 0,
            endpoints: HashMap::new(),
            endpoint_unknown: 0,
            last_completion: None,
            failures: Vec::new(),
        }
    }

    /// Adds another thread's tallies.
    pub(crate) fn merge(&mut self, o: &Stats) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.uncorrected.add(&o.uncorrected);
        let _ = self.connect.add(&o.connect);
        let _ = self.lag.add(&o.lag);
        self.errors.merge(&o.errors);
        self.requests += o.requests;
        self.ok += o.ok;
        for (ip, n) in &o.endpoints {
            *self.endpoints.entry(*ip).or_default() += n;
        }
        self.endpoint_unknown += o.endpoint_unknown;
        self.last_completion = self.last_completion.max(o.last_completion);
        let room = MAX_FAILURE_MARKS.saturating_sub(self.failures.len());
        self.failures.extend(o.failures.iter().take(room));
    }

    /// Counts a failed request of `kind` sent at `sent`, time-stamping the connection
    /// failures (refused, reset, timed out) while there is room.
    fn fail(&mut self, kind: ErrorKind, sent: Instant) {
        self.errors.add(kind);
        let marked = matches!(
            kind,
            ErrorKind::Refused | ErrorKind::Reset | ErrorKind::Timeout
        );
        if marked && self.failures.len() < MAX_FAILURE_MARKS {
            self.failures.push((sent, kind));
        }
    }

    /// Counts a request that was due but never sent.
    pub(crate) fn not_sent(&mut self) {
        self.requests += 1;
        self.errors.add(ErrorKind::NotSent);
    }
}

fn us(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// What the slots of one thread share.
pub(crate) struct Shared {
    pub target: SocketAddr,
    pub req: Vec<u8>,
    pub keepalive: bool,
    pub timeout: Duration,
    /// No request is started (closed loop) or scheduled (open loop) from here on.
    pub end: Instant,
    /// Open loop: requests still queued from here on are counted as not sent.
    pub drain_deadline: Instant,
    pub stats: RefCell<Stats>,
    pub queue: RefCell<VecDeque<Instant>>,
    pub notify: Notify,
    pub dispatch_done: Cell<bool>,
}

impl Shared {
    /// The state of one thread running `spec` from `start`.
    pub(crate) fn new(spec: &LoadSpec, start: Instant) -> Self {
        let end = start + spec.duration;
        Shared {
            target: spec.target,
            req: request_bytes(spec.target, &spec.path, spec.keepalive),
            keepalive: spec.keepalive,
            timeout: spec.request_timeout,
            end,
            drain_deadline: end + spec.request_timeout,
            stats: RefCell::new(Stats::new()),
            queue: RefCell::new(VecDeque::new()),
            notify: Notify::new(),
            dispatch_done: Cell::new(false),
        }
    }

    /// Takes the tallies out, leaving empty ones behind.
    pub(crate) fn take_stats(&self) -> Stats {
        std::mem::replace(&mut *self.stats.borrow_mut(), Stats::new())
    }

    /// Runs one exchange on `conn` and records it. `due` is when an open-loop request
    /// was scheduled; corrected latency counts from it (closed loop: from the start).
    pub(crate) async fn request(&self, conn: &mut Conn, due: Option<Instant>) {
        let started = Instant::now();
        let intended = due.unwrap_or(started);
        let res = tokio::time::timeout(
            self.timeout,
            conn.exchange(self.target, &self.req, self.keepalive),
        )
        .await;
        let mut st = self.stats.borrow_mut();
        st.requests += 1;
        match res {
            Ok(Ok(Exchange {
                connect,
                completed,
                endpoint,
            })) => {
                st.ok += 1;
                st.latency.saturating_record(us(completed - intended));
                st.uncorrected.saturating_record(us(completed - started));
                if let Some(c) = connect {
                    st.connect.saturating_record(us(c));
                }
                if due.is_some() {
                    st.lag.saturating_record(us(started - intended));
                }
                match endpoint {
                    Some(ip) => *st.endpoints.entry(ip).or_default() += 1,
                    None => st.endpoint_unknown += 1,
                }
                st.last_completion = Some(completed);
            }
            Ok(Err(e)) => match e.kind() {
                ErrorKind::Other => st.errors.add_other(|| e.message()),
                k => st.fail(k, started),
            },
            Err(_elapsed) => {
                conn.reset();
                st.fail(ErrorKind::Timeout, started);
            }
        }
    }
}
