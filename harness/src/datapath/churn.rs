//! Background traffic for a churn phase: steady new connections through the churned
//! services' VIPs from the client namespace, one open-loop generator per service, and
//! the backend server logging which endpoint every connection reached and when (the
//! server sees the post-DNAT destination as the address it accepted on).

use std::net::{IpAddr, SocketAddr};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dataplane::floor::model::ENDPOINT_PORT;

use crate::datapath::load::{run_load, LoadError, LoadReport, LoadSpec};
use crate::datapath::serve::{HitLog, ServeError, ServeOptions, Server};
use crate::sandbox::topology::Topology;

/// Connection slots per service: room for a request timeout's worth of stalled
/// connections at the rates a churn phase uses.
const SLOTS_PER_TARGET: usize = 256;

/// Why the background traffic could not run.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    #[error("backend server: {0}")]
    Backend(ServeError),
    #[error("background load thread: {0}")]
    Thread(std::io::Error),
    #[error("background load: {0}")]
    Load(LoadError),
}

/// What background traffic to send.
#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundSpec {
    /// The churned services' VIP:port.
    pub targets: Vec<SocketAddr>,
    /// New connections per second over all targets.
    pub rate_per_s: f64,
    pub duration: Duration,
    pub request_timeout: Duration,
}

/// Background traffic running.
pub struct Background {
    server: Server,
    hits: HitLog,
    loads: Vec<JoinHandle<Result<LoadReport, LoadError>>>,
}

/// What the background traffic saw.
#[derive(Debug)]
pub struct Observed {
    /// One report per target, in target order.
    pub reports: Vec<LoadReport>,
    /// Every accepted connection: when, and the endpoint it reached.
    pub hits: Vec<(Instant, IpAddr)>,
}

impl Background {
    /// Starts the backend server (logging hits) and one generator per target.
    pub fn start(topo: &Topology, spec: &BackgroundSpec) -> Result<Background, BackgroundError> {
        let hits = HitLog::default();
        let server = Server::start(
            Some(&topo.backend),
            ServeOptions {
                hits: Some(hits.clone()),
                ..ServeOptions::new(SocketAddr::from(([0, 0, 0, 0], ENDPOINT_PORT)))
            },
        )
        .map_err(BackgroundError::Backend)?;
        let per_target = spec.rate_per_s / spec.targets.len().max(1) as f64;
        let mut loads = Vec::new();
        for &target in &spec.targets {
            let client = topo.client.clone();
            let load = LoadSpec {
                request_timeout: spec.request_timeout,
                threads: 1,
                ..LoadSpec::open_loop(target, per_target, spec.duration, SLOTS_PER_TARGET)
            };
            let handle = std::thread::Builder::new()
                .name("kpb-churn-load".into())
                .spawn(move || run_load(Some(&client), &load))
                .map_err(BackgroundError::Thread)?;
            loads.push(handle);
        }
        Ok(Background {
            server,
            hits,
            loads,
        })
    }

    /// Waits for every generator to end, stops the server, and returns what was seen.
    pub fn finish(self) -> Result<Observed, BackgroundError> {
        let mut reports = Vec::new();
        let mut first_error = None;
        for h in self.loads {
            match h.join() {
                Ok(Ok(r)) => reports.push(r),
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(_) => first_error = first_error.or(Some(LoadError::Panicked)),
            }
        }
        drop(self.server);
        if let Some(error) = first_error {
            return Err(BackgroundError::Load(error));
        }
        let hits = std::mem::take(&mut *self.hits.lock().unwrap_or_else(|p| p.into_inner()));
        Ok(Observed { reports, hits })
    }
}
