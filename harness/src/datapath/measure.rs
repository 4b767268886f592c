//! The data path of one case: a backend server answering on every endpoint IP, and the
//! load generator in the client namespace sending new connections through the node's
//! rules to the first, middle and last service and, as the no-dataplane baseline, to
//! one endpoint directly. Also the max-rate phase, whole-kernel CPU per request and
//! which endpoints answered.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dataplane::model::{ServiceSet, ENDPOINT_PORT};

use crate::datapath::cpustat::CpuSample;
use crate::datapath::load::report::{histogram_base64, summarize};
use crate::datapath::load::{run_load, LoadReport, LoadSpec};
use crate::results::{Cpu, Datapath, Distribution, MaxRate, Target};
use crate::scenario;
use crate::datapath::serve::{ServeOptions, Server};
use crate::sandbox::topology::Topology;

/// A load target: its name in results, the service it goes through (None: direct).
struct Aim {
    name: &'static str,
    service: Option<usize>,
    addr: SocketAddr,
}

fn aims(set: &ServiceSet) -> Vec<Aim> {
    let n = set.len();
    let mut v = Vec::new();
    let first_ep = set
        .services
        .iter()
        .find_map(|s| s.endpoints.first())
        .map(|e| e.ip);
    if let Some(ip) = first_ep {
        v.push(Aim {
            name: "direct",
            service: None,
            addr: SocketAddr::new(ip.into(), ENDPOINT_PORT),
        });
    }
    for (name, i) in [
        ("first", 0),
        ("middle", n / 2),
        ("last", n.saturating_sub(1)),
    ] {
        let svc = &set.services[i];
        if !svc.endpoints.is_empty() {
            v.push(Aim {
                name,
                service: Some(svc.index),
                addr: SocketAddr::new(svc.vip.into(), svc.port),
            });
        }
    }
    v
}

fn target_of(aim: &Aim, r: &LoadReport, cpu: Option<Cpu>) -> Target {
    Target {
        target: aim.name.into(),
        service_index: aim.service.map(|i| i as u64),
        requests: r.requests,
        errors: r.errors.total(),
        errors_by_kind: r
            .errors
            .by_kind()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect(),
        offered_rate_per_s: r.offered_rate_per_s,
        achieved_rate_per_s: r.achieved_rate_per_s,
        latency_us: summarize(&r.latency_us),
        connect_latency_us: Some(summarize(&r.connect_us)),
        hdr_histogram_base64: histogram_base64(&r.latency_us).ok(),
        cpu,
        client_cpu_per_request_us: Some(r.client_cpu_per_request_us()),
    }
}

/// Largest deviation from an even share over the endpoints of each measured service,
/// in percent, plus how many of those endpoints answered.
fn distribution(
    set: &ServiceSet,
    measured: &[usize],
    hits: &BTreeMap<Ipv4Addr, u64>,
) -> Distribution {
    let (mut hit, mut total, mut worst) = (0u64, 0u64, 0f64);
    for &i in measured {
        let Some(svc) = set.get(i) else { continue };
        let counts: Vec<u64> = svc
            .endpoints
            .iter()
            .map(|e| hits.get(&e.ip).copied().unwrap_or(0))
            .collect();
        total += counts.len() as u64;
        hit += counts.iter().filter(|&&c| c > 0).count() as u64;
        let sum: u64 = counts.iter().sum();
        if sum == 0 || counts.is_empty() {
            continue;
        }
        let mean = sum as f64 / counts.len() as f64;
        for c in counts {
            worst = worst.max(((c as f64 - mean).abs() / mean) * 100.0);
        }
    }
    Distribution {
        endpoints_hit: hit,
        endpoints_total: total,
        max_deviation_pct: worst,
    }
}

/// Starts the backend server in the backend namespace: one listener on every
/// address at the endpoint port, which the local route for the pod CIDR makes answer
/// for every endpoint IP.
pub fn start_backend(topo: &Topology) -> Result<Server, crate::datapath::serve::ServeError> {
    Server::start(
        Some(&topo.backend),
        ServeOptions::new(SocketAddr::from(([0, 0, 0, 0], ENDPOINT_PORT))),
    )
}

/// Measures the data path of a programmed topology. Returns a reason on failure.
pub fn measure(
    topo: &Topology,
    set: &ServiceSet,
    cfg: &scenario::Datapath,
    deadline: Instant,
    mut step: impl FnMut(String),
) -> Result<Datapath, String> {
    let server = start_backend(topo).map_err(|e| format!("backend server: {e}"))?;
    let duration = Duration::from_secs_f64(cfg.duration_s);
    let timeout = Duration::from_millis(cfg.request_timeout_ms);
    let mut targets = Vec::new();
    let mut hits: BTreeMap<Ipv4Addr, u64> = BTreeMap::new();
    let mut measured = Vec::new();
    let (mut vip_busy, mut vip_requests, mut direct_per_req) = (0f64, 0u64, None);
    let all = aims(set);
    let mut syn_p25: BTreeMap<String, f64> = BTreeMap::new();
    // The offered rate must stay well below what this environment can do at all, or
    // the open-loop numbers measure queueing, not the dataplane (a TCG guest manages
    // tens of connections per second). Probe the direct target's capacity first.
    let mut rate = cfg.rate_per_s;
    if let Some(direct) = all.iter().find(|a| a.service.is_none()) {
        step("data path: probing capacity".into());
        let mut spec = LoadSpec::closed_loop(
            direct.addr,
            Duration::from_millis(700),
            cfg.connections.clamp(1, 8),
        );
        spec.keepalive = cfg.keepalive;
        spec.request_timeout = timeout;
        let probe =
            run_load(Some(&topo.client), &spec).map_err(|e| format!("capacity probe: {e}"))?;
        if probe.requests == 0 || probe.errors.total() == probe.requests {
            return Err(format!(
                "no request to the endpoint {} succeeded ({:?}); the topology does not carry traffic",
                direct.addr,
                probe.errors.by_kind()
            ));
        }
        rate = rate.min((probe.achieved_rate_per_s * 0.5).max(5.0));
    }
    for aim in all {
        // A signal stops the data path between phases, so a run stops within one phase.
        if dataplane::exec::cancelled() {
            return Err("interrupted".into());
        }
        if Instant::now() + duration + timeout > deadline {
            return Err(format!(
                "case time limit reached before the {} target",
                aim.name
            ));
        }
        step(format!(
            "data path: {} ({} req/s for {:.1} s)",
            aim.name, rate, cfg.duration_s
        ));
        let mut spec = LoadSpec::open_loop(aim.addr, rate, duration, cfg.connections.max(64));
        spec.keepalive = cfg.keepalive;
        spec.request_timeout = timeout;
        let before = CpuSample::now().map_err(|e| format!("/proc/stat: {e}"))?;
        let report = run_load(Some(&topo.client), &spec)
            .map_err(|e| format!("load on {}: {e}", aim.name))?;
        let delta = CpuSample::now()
            .map_err(|e| format!("/proc/stat: {e}"))?
            .since(&before);
        let per_request_us = delta.per_request_us(report.requests);
        let cpu = Cpu {
            user_ms: delta.user_ms,
            sys_ms: delta.sys_ms,
            softirq_ms: delta.softirq_ms,
            per_request_us,
            overhead_per_request_us: None,
        };
        match aim.service {
            None => direct_per_req = Some(per_request_us),
            Some(i) => {
                vip_busy += delta.busy_ms();
                vip_requests += report.requests;
                measured.push(i);
                for (ip, n) in &report.endpoints {
                    *hits.entry(*ip).or_default() += n;
                }
            }
        }
        syn_p25.insert(
            aim.name.to_string(),
            report.connect_us.value_at_quantile(0.25) as f64,
        );
        targets.push(target_of(&aim, &report, Some(cpu)));
    }
    if let Some(d) = direct_per_req {
        for t in targets.iter_mut().filter(|t| t.target != "direct") {
            if let Some(c) = t.cpu.as_mut() {
                c.overhead_per_request_us = Some(c.per_request_us - d);
            }
        }
    }
    let direct_p50 = targets
        .iter()
        .find(|t| t.target == "direct")
        .map(|t| t.latency_us.p50);
    let lookup_overhead_us: BTreeMap<String, f64> = match direct_p50 {
        Some(d) => targets
            .iter()
            .filter(|t| t.target != "direct")
            .map(|t| (t.target.clone(), t.latency_us.p50 - d))
            .collect(),
        None => BTreeMap::new(),
    };
    let syn_overhead_us: BTreeMap<String, f64> = match syn_p25.get("direct") {
        Some(&d) => syn_p25
            .iter()
            .filter(|(name, _)| *name != "direct")
            .map(|(name, v)| (name.clone(), v - d))
            .collect(),
        None => BTreeMap::new(),
    };
    let max_rate = if cfg.max_rate_duration_s > 0.0 && !dataplane::exec::cancelled() {
        let mid = set
            .services
            .get(set.len() / 2)
            .filter(|s| !s.endpoints.is_empty());
        match mid {
            Some(svc)
                if Instant::now() + Duration::from_secs_f64(cfg.max_rate_duration_s) + timeout
                    < deadline =>
            {
                step(format!(
                    "data path: max rate ({} connections)",
                    cfg.connections
                ));
                let mut spec = LoadSpec::closed_loop(
                    SocketAddr::new(svc.vip.into(), svc.port),
                    Duration::from_secs_f64(cfg.max_rate_duration_s),
                    cfg.connections,
                );
                spec.keepalive = cfg.keepalive;
                spec.request_timeout = timeout;
                let r = run_load(Some(&topo.client), &spec)
                    .map_err(|e| format!("max-rate load: {e}"))?;
                Some(MaxRate {
                    requests_per_s: r.achieved_rate_per_s,
                    errors: r.errors.total(),
                })
            }
            _ => None,
        }
    } else {
        None
    };
    let cpu = (vip_requests > 0).then(|| {
        let per_request_us = vip_busy * 1000.0 / vip_requests as f64;
        Cpu {
            user_ms: targets
                .iter()
                .filter(|t| t.target != "direct")
                .filter_map(|t| t.cpu.as_ref())
                .map(|c| c.user_ms)
                .sum(),
            sys_ms: targets
                .iter()
                .filter(|t| t.target != "direct")
                .filter_map(|t| t.cpu.as_ref())
                .map(|c| c.sys_ms)
                .sum(),
            softirq_ms: targets
                .iter()
                .filter(|t| t.target != "direct")
                .filter_map(|t| t.cpu.as_ref())
                .map(|c| c.softirq_ms)
                .sum(),
            per_request_us,
            overhead_per_request_us: direct_per_req.map(|d| per_request_us - d),
        }
    });
    measured.dedup();
    let dist = distribution(set, &measured, &hits);
    drop(server);
    Ok(Datapath {
        connection_per_request: !cfg.keepalive,
        targets,
        lookup_overhead_us,
        syn_overhead_us,
        max_rate,
        cpu,
        distribution: Some(dist),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aims_cover_first_middle_last_and_direct() {
        let set = ServiceSet::generate(5, 2);
        let a = aims(&set);
        let names: Vec<&str> = a.iter().map(|a| a.name).collect();
        assert_eq!(names, vec!["direct", "first", "middle", "last"]);
        assert_eq!(a[0].addr, "10.128.0.1:8080".parse().unwrap());
        assert_eq!(a[3].addr, "10.96.0.5:80".parse().unwrap());
        assert_eq!(a[2].service, Some(2));
    }

    #[test]
    fn distribution_of_known_hits() {
        let set = ServiceSet::generate(2, 2);
        let mut hits = BTreeMap::new();
        hits.insert(set.services[0].endpoints[0].ip, 30);
        hits.insert(set.services[0].endpoints[1].ip, 10);
        let d = distribution(&set, &[0, 1], &hits);
        assert_eq!(d.endpoints_hit, 2);
        assert_eq!(d.endpoints_total, 4);
        assert_eq!(d.max_deviation_pct, 50.0);
    }
}
