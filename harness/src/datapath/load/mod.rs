//! The load generator: HTTP/1.1 requests to one target, by default a new TCP
//! connection per request (the first SYN is where the kernel's rule lookup happens).
//!
//! - Open loop ([`LoadSpec::rate_per_s`] set): requests are due at a constant rate and
//!   latency counts from each one's due time (coordinated-omission correction).
//! - Closed loop (rate `None`): `connections` slots send back to back, for the max rate.
//!
//! Latencies go to HDR histograms in microseconds; failures are counted by kind, never
//! dropped; the endpoint named in each response body is tallied. Every request has a
//! timeout and every phase a duration: a run always ends by itself, within about
//! `duration + 2 * request_timeout`.

mod closedloop;
pub mod errors;
mod http;
mod openloop;
pub mod report;
mod state;
mod worker;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dataplane::floor::netns::{Netns, NetnsError};
use hdrhistogram::Histogram;

pub use errors::{ErrorCounts, ErrorKind};
pub use report::{histogram_base64, summarize, HistogramEncodeError, LatencySummary};

/// Highest latency the histograms hold, in microseconds (one hour); larger values are
/// clamped to it.
pub const HISTOGRAM_MAX_US: u64 = 3_600_000_000;
/// Significant decimal digits the histograms keep.
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// An empty latency histogram with kpbench's bounds (microseconds).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// What load to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadSpec {
    /// Where requests go (a service VIP:port or an endpoint IP:port).
    pub target: SocketAddr,
    /// Request path.
    pub path: String,
    /// Requests per second (open loop); `None` sends as fast as possible (closed loop).
    pub rate_per_s: Option<f64>,
    /// How long requests are started (closed loop) or scheduled (open loop).
    pub duration: Duration,
    /// Concurrent connection slots: in flight at most (open loop), or always (closed).
    pub connections: usize,
    /// Reuse each slot's connection instead of opening one per request.
    pub keepalive: bool,
    /// Limit for one request, connect included.
    pub request_timeout: Duration,
    /// Generator threads; 0 picks one per CPU (fewer at low rates).
    pub threads: usize,
}

impl LoadSpec {
    /// Closed loop, a new connection per request, 2 s request timeout.
    pub fn closed_loop(target: SocketAddr, duration: Duration, connections: usize) -> Self {
        LoadSpec {
            target,
            path: "/".into(),
            rate_per_s: None,
            duration,
            connections,
            keepalive: false,
            request_timeout: Duration::from_secs(2),
            threads: 0,
        }
    }

    /// Open loop at `rate_per_s`, a new connection per request, 2 s request timeout.
    pub fn open_loop(
        target: SocketAddr,
        rate_per_s: f64,
        duration: Duration,
        connections: usize,
    ) -> Self {
        LoadSpec {
            rate_per_s: Some(rate_per_s),
            ..LoadSpec::closed_loop(target, duration, connections)
        }
    }

    fn validate(&self) -> Result<(), SpecError> {
        if self.connections == 0 {
            return Err(SpecError::Connections);
        }
        if self.duration.is_zero() {
            return Err(SpecError::Duration);
        }
        if self.request_timeout.is_zero() {
            return Err(SpecError::RequestTimeout);
        }
        if let Some(r) = self.rate_per_s {
            if !(r.is_finite() && r > 0.0) {
                return Err(SpecError::Rate);
            }
        }
        if !self.path.starts_with('/') || self.path.bytes().any(|b| b <= b' ') {
            return Err(SpecError::Path);
        }
        Ok(())
    }

    /// How many generator threads this spec runs on.
    pub fn effective_threads(&self) -> usize {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wanted = match (self.threads, self.rate_per_s) {
            (0, None) => cpus,
            // One thread easily paces 20,000 requests/s; fewer threads, fewer wake-ups.
            (0, Some(r)) => ((r / 20_000.0).ceil() as usize).clamp(1, cpus),
            (n, _) => n,
        };
        wanted.clamp(1, self.connections.max(1))
    }
}

/// A [`LoadSpec`] that cannot run: which field, and what it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("connections must be at least 1")]
    Connections,
    #[error("duration must be more than 0")]
    Duration,
    #[error("request timeout must be more than 0")]
    RequestTimeout,
    #[error("rate must be a positive number of requests per second")]
    Rate,
    #[error("path must start with / and contain no spaces or control characters")]
    Path,
}

/// Errors that stop a load run (failed requests are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    // Not a `#[source]`: the message already carries it, and error chains would repeat it.
    #[error("invalid load spec: {0}")]
    Spec(SpecError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("load generator thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("load generator thread panicked")]
    Panicked,
    #[error("load generator aborted: another thread failed to start")]
    Aborted,
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests the generator meant to send: `ok + errors.total()`.
    pub requests: u64,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Failed requests by kind.
    pub errors: ErrorCounts,
    /// Requests per second offered (open loop); `None` for a closed loop.
    pub offered_rate_per_s: Option<f64>,
    /// `ok / wall`.
    pub achieved_rate_per_s: f64,
    /// Latency of answered requests in microseconds, from the due time (open loop,
    /// coordinated-omission corrected) or from the start (closed loop).
    pub latency_us: Histogram<u64>,
    /// Latency from the actual send, without the correction (equal in closed loop).
    pub uncorrected_latency_us: Histogram<u64>,
    /// TCP connect time of each new connection, in microseconds.
    pub connect_us: Histogram<u64>,
    /// Open loop: how late each request was sent after its due time, in microseconds.
    pub send_lag_us: Histogram<u64>,
    /// Which endpoint answered, from the response body.
    pub endpoints: BTreeMap<Ipv4Addr, u64>,
    /// Answers whose body was not an IPv4 address.
    pub endpoint_unknown: u64,
    /// User CPU time of the generator's threads over the run.
    pub client_cpu_user_ms: f64,
    /// System CPU time of the generator's threads over the run.
    pub client_cpu_sys_ms: f64,
    /// From the start until the last thread finished.
    pub wall: Duration,
    /// Generator threads.
    pub threads: usize,
    /// Connection slots.
    pub connections: usize,
    /// When each refused, reset or timed-out request was sent, with its kind, in no
    /// particular order: at most `MAX_FAILURE_MARKS` per thread's merge (the counts in
    /// `errors` hold every one).
    pub failures: Vec<(std::time::Instant, ErrorKind)>,
}

impl LoadReport {
    /// CPUs the generator kept busy on average (1.0 = one core all the time).
    pub fn client_cpu_cores(&self) -> f64 {
        let wall_ms = self.wall.as_secs_f64() * 1000.0;
        if wall_ms <= 0.0 {
            return 0.0;
        }
        (self.client_cpu_user_ms + self.client_cpu_sys_ms) / wall_ms
    }

    /// The generator's CPU (user + sys) per answered request, in microseconds.
    pub fn client_cpu_per_request_us(&self) -> f64 {
        if self.ok == 0 {
            return 0.0;
        }
        (self.client_cpu_user_ms + self.client_cpu_sys_ms) * 1000.0 / self.ok as f64
    }

    /// Whether the client, not the target, was probably the limit: requests were not
    /// sent in time, or the generator's threads were at least 90% busy.
    pub fn client_limited(&self) -> bool {
        self.errors.not_sent > 0 || self.client_cpu_cores() >= 0.9 * self.threads as f64
    }
}

/// Runs `spec` from inside `ns` (or the current namespace) and reports what it measured.
pub fn run_load(ns: Option<&Netns>, spec: &LoadSpec) -> Result<LoadReport, LoadError> {
    spec.validate().map_err(LoadError::Spec)?;
    raise_nofile_limit();
    let threads = spec.effective_threads();
    let (outs, start) = worker::run_threads(ns, spec, threads)?;
    let finished = std::time::Instant::now();
    let mut outs = outs.into_iter();
    let Some(first) = outs.next() else {
        return Err(LoadError::Aborted);
    };
    let (mut stats, mut user, mut sys) = (first.stats, first.cpu_user, first.cpu_sys);
    for o in outs {
        stats.merge(&o.stats);
        user += o.cpu_user;
        sys += o.cpu_sys;
    }
    let wall = finished.saturating_duration_since(start);
    let achieved = if wall.is_zero() {
        0.0
    } else {
        stats.ok as f64 / wall.as_secs_f64()
    };
    Ok(LoadReport {
        requests: stats.requests,
        ok: stats.ok,
        errors: stats.errors,
        offered_rate_per_s: spec.rate_per_s,
        achieved_rate_per_s: achieved,
        latency_us: stats.latency,
        uncorrected_latency_us: stats.uncorrected,
        connect_us: stats.connect,
        send_lag_us: stats.lag,
        endpoints: stats.endpoints.into_iter().collect(),
        endpoint_unknown: stats.endpoint_unknown,
        client_cpu_user_ms: user.as_secs_f64() * 1000.0,
        client_cpu_sys_ms: sys.as_secs_f64() * 1000.0,
        wall,
        threads,
        connections: spec.connections,
        failures: stats.failures,
    })
}

/// Many connections at once need many descriptors: raise the soft limit to the hard one.
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
