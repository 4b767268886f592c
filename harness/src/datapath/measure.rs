//! The data path of one case: a backend server answering on every endpoint IP, and the
//! load generator in the client namespace sending new connections through the node's
//! rules to the first, middle and last service and, as the no-dataplane baseline, to
//! one endpoint directly. Also the max-rate phase, whole-kernel CPU per request and
//! which endpoints answered.
//!
//! [`measure`] runs the phases in order: probe the direct target's capacity (to pick a
//! rate the environment can carry), one open-loop phase per target, then the
//! closed-loop max-rate phase; it then derives the overheads against the direct target.
//! Last, with the BPF probes loaded in the node (when the scenario asks, default), the
//! in-kernel transit pass per service position and one phase whose probe counters give
//! the dataplane's own CPU per request; if BPF cannot load, `transit_error` says why
//! and the end-to-end figures stand.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dataplane::floor::model::{ServiceSet, ENDPOINT_PORT};

use crate::analysis::stats;
use crate::datapath::cpustat::{CpuDelta, CpuSample, CpuStatError};
use crate::datapath::load::{run_load, LoadError, LoadReport, LoadSpec};
use crate::datapath::serve::{ServeError, ServeOptions, Server};
use crate::datapath::targets::{aims, Aim, Phases};
use crate::datapath::{replicates, transit};
use crate::results::{
    Datapath, Estimate, MaxRate, NoiseFloor, ProbeOverhead, Spans, Transit, TransitPath,
    TransitPercentiles, TransitTarget,
};
use crate::sandbox::topology::Topology;
use crate::scenario;

/// Why a data-path measurement stopped. The runner records it as the case's reason
/// after "data path: ", so each message names the phase or target that failed and
/// carries the error beneath it in full (which is why none is also a `#[source]`:
/// error chains would print it twice).
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The backend server did not start in the backend namespace.
    #[error("backend server: {0}")]
    Backend(ServeError),
    /// The load generator could not run the capacity probe.
    #[error("capacity probe: {0}")]
    Probe(LoadError),
    /// Not one probe request to an endpoint, bypassing the dataplane, was answered.
    #[error(
        "no request to the endpoint {endpoint} succeeded ({errors:?}); the topology does not carry traffic"
    )]
    NoTraffic {
        endpoint: SocketAddr,
        /// The probe's failures by kind.
        errors: BTreeMap<String, u64>,
    },
    /// A signal arrived; the measurement stops between phases.
    #[error("interrupted")]
    Interrupted,
    /// Too little of the case's time limit was left for the next target's phase.
    #[error("case time limit reached before the {target} target")]
    CaseTimeLimit { target: &'static str },
    /// Whole-kernel CPU could not be sampled.
    #[error(transparent)]
    CpuStat(#[from] CpuStatError),
    /// The load generator could not run one target's open-loop phase.
    #[error("load on {target}: {error}")]
    Load {
        target: &'static str,
        error: LoadError,
    },
    /// The load generator could not run the max-rate phase.
    #[error("max-rate load: {0}")]
    MaxRate(LoadError),
    /// A further replicate of the transit pass could not run.
    #[error("in-kernel transit: {0}")]
    Transit(String),
}

/// Starts the backend server in the backend namespace: one listener on every
/// address at the endpoint port, which the local route for the pod CIDR makes answer
/// for every endpoint IP.
pub fn start_backend(topo: &Topology) -> Result<Server, ServeError> {
    Server::start(
        Some(&topo.backend),
        ServeOptions::new(SocketAddr::from(([0, 0, 0, 0], ENDPOINT_PORT))),
    )
}

/// Measures the data path of a programmed topology; `step` hears each phase as it starts.
pub fn measure(
    topo: &Topology,
    set: &ServiceSet,
    cfg: &scenario::Datapath,
    deadline: Instant,
    mut step: impl FnMut(String),
) -> Result<Datapath, MeasureError> {
    let server = start_backend(topo).map_err(MeasureError::Backend)?;
    let gen = Generator::new(topo, cfg);
    let all = aims(set);
    let rate = gen.probe_rate(&all, &mut step)?;
    let mut phases = Phases::default();
    let mut direct_first = None;
    for aim in &all {
        gen.check_time(aim.name, gen.duration, deadline)?;
        step(format!(
            "data path: {} ({} req/s for {:.1} s)",
            aim.name, rate, cfg.duration_s
        ));
        let (report, cpu) = gen.open_loop(aim, rate)?;
        if aim.service.is_none() {
            direct_first = Some(latency_figures(&report));
        }
        phases.record(aim, &report, cpu);
    }
    let noise_floor = match (all.iter().find(|a| a.service.is_none()), direct_first) {
        (Some(direct), Some(first)) => gen.noise_floor(direct, first, rate, deadline, &mut step)?,
        _ => None,
    };
    let (max_rate, softirq_pct) = gen.max_rate(set, deadline, &mut step)?;
    let mut datapath = phases.into_datapath(set, cfg.keepalive, max_rate);
    datapath.noise_floor_us = noise_floor;
    if let Some(c) = datapath.cpu.as_mut() {
        c.max_rate_softirq_pct = softirq_pct;
    }
    if cfg.transit {
        gen.check_time("in-kernel transit", gen.duration * 2, deadline)?;
        match gen.in_kernel(set, rate, &mut step) {
            Ok((transit, ns)) => {
                if transit.is_none() {
                    datapath.transit_error =
                        Some("fewer than three services: no cost per position to fit with an interval between targets".into());
                }
                datapath.transit = transit;
                if let (Some(c), Some(ns)) = (datapath.cpu.as_mut(), ns) {
                    c.dataplane_ns_per_request = Some(ns);
                }
            }
            Err(e) => datapath.transit_error = Some(e.to_string()),
        }
        if let Some(t) = datapath.transit.as_mut() {
            step("data path: BPF run time per connect".into());
            gen.bpf_lb_cost(set, t);
        }
    }
    drop(server);
    Ok(datapath)
}

/// A phase's request p50 and connect p25, microseconds.
fn latency_figures(r: &LoadReport) -> (f64, f64) {
    (
        r.latency_us.value_at_quantile(0.5) as f64,
        r.connect_us.value_at_quantile(0.25) as f64,
    )
}

/// The pass's figures as the results record them: targets without a SYN sample are
/// left out (they have no percentiles to report; a path target among them is in
/// `absent_paths` with why). None without a fitted cost per position (fewer than three
/// services).
fn transit_result(t: transit::Transit) -> Option<Transit> {
    let fit = t.ns_per_service?;
    let pct = |q: transit::Quantiles| TransitPercentiles {
        p10: q.p10 as f64,
        p50: q.p50 as f64,
        p90: q.p90 as f64,
        p99: q.p99 as f64,
        ci95_p50: [q.ci95_p50[0] as f64, q.ci95_p50[1] as f64],
    };
    let empty = || TransitPercentiles {
        p10: 0.0,
        p50: 0.0,
        p90: 0.0,
        p99: 0.0,
        ci95_p50: [0.0, 0.0],
    };
    Some(Transit {
        targets: t
            .targets
            .into_iter()
            .filter_map(|x| {
                let syn = x.syn_ns?;
                Some(TransitTarget {
                    target: x.target,
                    service_index: x.service_index.map(|i| i as u64),
                    path: x.path,
                    samples: x.samples as u64,
                    syn_ns: pct(syn),
                    synack_ns: x.synack_ns.map(pct).unwrap_or_else(empty),
                    bpf_run_ns: None,
                })
            })
            .collect(),
        ns_per_service: replicates::decided(
            Estimate {
                estimate: fit.estimate,
                ci95: fit.ci95,
            },
            Spans::Targets,
        ),
        ns_per_service_packets: t.ns_per_service_packets.map(|e| Estimate {
            estimate: e.estimate,
            ci95: e.ci95,
        }),
        replicates: Vec::new(),
        round_order_seed: Some(t.round_order_seed),
        probe_overhead_pct: t.probe_overhead_pct.unwrap_or(0.0),
        probe_overhead_ci95: t.probe_overhead_ci95,
        probe_overhead: probe_overhead(t.probe_overhead_pct, t.probe_overhead_ci95),
        probe_run_ns_per_connection: t.probe_run_ns_per_connection,
        unmatched: t.checks.syn_unmatched,
        absent_paths: t.absent_paths,
    })
}

/// The transit pass of replicate `r` of `replicates`: its share of the rounds, its own
/// round-order seed; the probe-overhead test only in the first. The overhead test stops
/// once its interval is within ±5 points (20 pairs at least, about a second); a noisier
/// machine gets up to 2 s before it is reported as not resolved (4 s resolved no more
/// cases on 2 busy cores: the interval narrows with the square root of the time).
fn pass_config(replicates: usize, r: usize) -> transit::PassConfig {
    let d = transit::PassConfig::default();
    transit::PassConfig {
        rounds: replicates::rounds_per_replicate(replicates),
        overhead_pairs: if r == 0 { 120 } else { 0 },
        overhead_time_limit: Duration::from_secs(2),
        seed: d.seed + r as u64,
        ..d
    }
}

/// Replicate `r` (from 1) of the transit pass through `topo`, freshly programmed with
/// `set` (its VIPs shuffled): the backend server, the probes and the pass, no overhead
/// test and no load phase. `None` without a fitted cost per position.
pub fn transit_replicate(
    topo: &Topology,
    set: &ServiceSet,
    cfg: &scenario::Datapath,
    r: usize,
) -> Result<Option<Transit>, MeasureError> {
    let _server = start_backend(topo).map_err(MeasureError::Backend)?;
    let run = || -> Result<Option<Transit>, transit::TransitError> {
        let mut probes = transit::Probes::load(&topo.node)?;
        let pass = transit::measure(&mut probes, topo, set, &pass_config(cfg.replicates, r))?;
        Ok(transit_result(pass.transit))
    };
    run().map_err(|e| MeasureError::Transit(e.to_string()))
}

/// The probe overhead with its verdict, when its paired rounds gave an interval.
fn probe_overhead(estimate: Option<f64>, ci95: Option<[f64; 2]>) -> Option<ProbeOverhead> {
    let e = Estimate {
        estimate: estimate?,
        ci95: ci95?,
    };
    Some(ProbeOverhead {
        estimate: e.estimate,
        ci95: e.ci95,
        verdict: stats::overhead_trend(&e),
    })
}

/// The load generator in the client namespace with the scenario's settings.
struct Generator<'a> {
    topo: &'a Topology,
    cfg: &'a scenario::Datapath,
    /// Length of each open-loop phase.
    duration: Duration,
    request_timeout: Duration,
}

impl<'a> Generator<'a> {
    fn new(topo: &'a Topology, cfg: &'a scenario::Datapath) -> Self {
        Generator {
            topo,
            cfg,
            duration: Duration::from_secs_f64(cfg.duration_s),
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
        }
    }

    /// `spec` with the scenario's keep-alive and request timeout, run from the client.
    fn run(&self, mut spec: LoadSpec) -> Result<LoadReport, LoadError> {
        spec.keepalive = self.cfg.keepalive;
        spec.request_timeout = self.request_timeout;
        run_load(Some(&self.topo.client), &spec)
    }

    /// Stops between phases on a signal, or when a phase of `length` (plus a request's
    /// timeout to drain) would end past the case's deadline.
    fn check_time(
        &self,
        target: &'static str,
        length: Duration,
        deadline: Instant,
    ) -> Result<(), MeasureError> {
        // A signal stops the data path between phases, so a run stops within one phase.
        if dataplane::floor::exec::cancelled() {
            return Err(MeasureError::Interrupted);
        }
        if Instant::now() + length + self.request_timeout > deadline {
            return Err(MeasureError::CaseTimeLimit { target });
        }
        Ok(())
    }

    /// The open-loop rate to offer: the scenario's, capped at half of what the direct
    /// target carries closed-loop. The offered rate must stay well below what this
    /// environment can do at all, or the open-loop numbers measure queueing, not the
    /// dataplane (a TCG guest manages tens of connections per second).
    fn probe_rate(&self, all: &[Aim], step: &mut impl FnMut(String)) -> Result<f64, MeasureError> {
        let rate = self.cfg.rate_per_s;
        let Some(direct) = all.iter().find(|a| a.service.is_none()) else {
            return Ok(rate);
        };
        step("data path: probing capacity".into());
        let probe = self
            .run(LoadSpec::closed_loop(
                direct.addr,
                Duration::from_millis(700),
                self.cfg.connections.clamp(1, 8),
            ))
            .map_err(MeasureError::Probe)?;
        if probe.requests == 0 || probe.errors.total() == probe.requests {
            return Err(MeasureError::NoTraffic {
                endpoint: direct.addr,
                errors: probe.errors.by_kind(),
            });
        }
        Ok(rate.min((probe.achieved_rate_per_s * 0.5).max(5.0)))
    }

    /// One target's open-loop phase at `rate`, with whole-kernel CPU over its window.
    fn open_loop(&self, aim: &Aim, rate: f64) -> Result<(LoadReport, CpuDelta), MeasureError> {
        let spec = LoadSpec::open_loop(aim.addr, rate, self.duration, self.cfg.connections.max(64));
        let before = CpuSample::now()?;
        let report = self.run(spec).map_err(|error| MeasureError::Load {
            target: aim.name,
            error,
        })?;
        let delta = CpuSample::now()?.since(&before);
        Ok((report, delta))
    }

    /// The direct target once more at the same rate: how far two measurements of the
    /// same thing land apart is the noise floor of every end-to-end difference.
    fn noise_floor(
        &self,
        direct: &Aim,
        (request, connect): (f64, f64),
        rate: f64,
        deadline: Instant,
        step: &mut impl FnMut(String),
    ) -> Result<Option<NoiseFloor>, MeasureError> {
        if self
            .check_time("direct (again)", self.duration, deadline)
            .is_err()
        {
            return Ok(None);
        }
        step("data path: direct again, for the noise floor".into());
        let (report, _) = self.open_loop(direct, rate)?;
        let (r2, c2) = latency_figures(&report);
        Ok(Some(NoiseFloor {
            request_p50: (r2 - request).abs(),
            connect_p25: (c2 - connect).abs(),
        }))
    }

    /// The in-kernel figures: the interleaved transit pass with its probe overhead,
    /// then one open-loop phase through the middle service at `rate` with the probes
    /// attached, whose counters give the node's in-kernel time per request.
    fn in_kernel(
        &self,
        set: &ServiceSet,
        rate: f64,
        step: &mut impl FnMut(String),
    ) -> Result<(Option<Transit>, Option<f64>), transit::TransitError> {
        step("data path: in-kernel transit per service position".into());
        let mut probes = transit::Probes::load(&self.topo.node)?;
        let cfg = pass_config(self.cfg.replicates, 0);
        let pass = transit::measure(&mut probes, self.topo, set, &cfg)?;
        let middle = set
            .services
            .get(set.len() / 2)
            .filter(|s| !s.endpoints.is_empty());
        let mut ns_per_request = None;
        if let Some(svc) = middle {
            step("data path: the dataplane's CPU per request".into());
            probes.attach()?;
            let before = probes.counters()?;
            let spec = LoadSpec::open_loop(
                SocketAddr::new(svc.vip.into(), svc.port),
                rate,
                self.duration,
                self.cfg.connections.max(64),
            );
            if let Ok(report) = self.run(spec) {
                ns_per_request = probes
                    .counters()?
                    .since(&before)
                    .ns_per_request(report.requests);
            }
        }
        Ok((transit_result(pass.transit), ns_per_request))
    }

    /// The eBPF load balancer's own cost (the ebpf modes): for each transit target
    /// with a service, a short closed-loop phase through its VIP with BPF statistics
    /// on, and the lookup program's run_time_ns / run_cnt over it as `bpf_run_ns`: per
    /// connect for the socket LB (connect4), per packet from the client for the tc LB.
    /// Nothing for other modes (no eBPF LB is loaded for their node).
    fn bpf_lb_cost(&self, set: &ServiceSet, t: &mut Transit) {
        use dataplane::ebpf::datapath::lookup_run_stats;
        let node = &self.topo.node;
        if lookup_run_stats(node).is_none() {
            return;
        }
        let Some(_stats) = transit::enable_run_stats() else {
            return;
        };
        for target in t
            .targets
            .iter_mut()
            .filter(|x| x.path == TransitPath::ClusterIp)
        {
            let Some(svc) = target
                .service_index
                .and_then(|i| set.services.get(i as usize))
            else {
                continue;
            };
            let before = lookup_run_stats(node);
            let spec = LoadSpec::closed_loop(
                SocketAddr::new(svc.vip.into(), svc.port),
                Duration::from_millis(300),
                self.cfg.connections.clamp(1, 4),
            );
            if self.run(spec).is_err() {
                continue;
            }
            let after = lookup_run_stats(node);
            if let (Some((_, ns0, n0)), Some((_, ns1, n1))) = (before, after) {
                if n1 > n0 {
                    target.bpf_run_ns = Some((ns1 - ns0) as f64 / (n1 - n0) as f64);
                }
            }
        }
    }

    /// The closed-loop max-rate phase through the middle service's VIP, with the
    /// machine's softirq share of all CPU time over it, percent; `None` when the
    /// scenario skips it, a signal arrived, the middle service has no endpoints or the
    /// case has no time left for it.
    fn max_rate(
        &self,
        set: &ServiceSet,
        deadline: Instant,
        step: &mut impl FnMut(String),
    ) -> Result<(Option<MaxRate>, Option<f64>), MeasureError> {
        let cfg = self.cfg;
        if cfg.max_rate_duration_s <= 0.0 || dataplane::floor::exec::cancelled() {
            return Ok((None, None));
        }
        let Some(svc) = set
            .services
            .get(set.len() / 2)
            .filter(|s| !s.endpoints.is_empty())
        else {
            return Ok((None, None));
        };
        let length = Duration::from_secs_f64(cfg.max_rate_duration_s);
        if Instant::now() + length + self.request_timeout >= deadline {
            return Ok((None, None));
        }
        step(format!(
            "data path: max rate ({} connections)",
            cfg.connections
        ));
        let before = CpuSample::now()?;
        let r = self
            .run(LoadSpec::closed_loop(
                SocketAddr::new(svc.vip.into(), svc.port),
                length,
                cfg.connections,
            ))
            .map_err(MeasureError::MaxRate)?;
        let cpu = CpuSample::now()?.since(&before);
        let all = cpu.busy_ms() + cpu.idle_ms;
        let softirq = (all > 0.0).then(|| 100.0 * cpu.softirq_ms / all);
        Ok((
            Some(MaxRate {
                requests_per_s: r.achieved_rate_per_s,
                errors: r.errors.total(),
            }),
            softirq,
        ))
    }
}
