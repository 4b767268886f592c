//! The targets of a case's data path and what follows from their phases: which
//! addresses the load goes to ([`aims`]), and, once every phase ran, the targets'
//! results with their overheads over the direct target ([`Phases`]).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use dataplane::floor::model::{ServiceSet, ENDPOINT_PORT};

use crate::datapath::cpustat::CpuDelta;
use crate::datapath::load::report::{histogram_base64, summarize};
use crate::datapath::load::LoadReport;
use crate::results::{Cpu, Datapath, Distribution, MaxRate, Target};

/// A load target: its name in results, the service it goes through (None: direct).
pub(super) struct Aim {
    pub name: &'static str,
    pub service: Option<usize>,
    pub addr: SocketAddr,
}

pub(super) fn aims(set: &ServiceSet) -> Vec<Aim> {
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

/// What the open-loop phases measured, target by target.
#[derive(Default)]
pub(super) struct Phases {
    targets: Vec<Target>,
    /// Answers per endpoint, over the targets through a VIP.
    hits: BTreeMap<Ipv4Addr, u64>,
    /// The services measured through their VIP, in order.
    measured: Vec<usize>,
    /// Whole-kernel busy CPU (ms) and requests, over the targets through a VIP.
    vip_busy_ms: f64,
    vip_requests: u64,
    /// Whole-kernel CPU per request of the direct target, microseconds.
    direct_per_request_us: Option<f64>,
    /// TCP connect p25 per target, microseconds: the SYN's cost.
    syn_p25_us: BTreeMap<String, f64>,
}

impl Phases {
    /// Adds one target's phase.
    pub(super) fn record(&mut self, aim: &Aim, report: &LoadReport, delta: CpuDelta) {
        let per_request_us = delta.per_request_us(report.requests);
        let cpu = Cpu {
            user_ms: delta.user_ms,
            sys_ms: delta.sys_ms,
            softirq_ms: delta.softirq_ms,
            per_request_us,
            overhead_per_request_us: None,
            dataplane_ns_per_request: None,
            max_rate_softirq_pct: None,
        };
        match aim.service {
            None => self.direct_per_request_us = Some(per_request_us),
            Some(i) => {
                self.vip_busy_ms += delta.busy_ms();
                self.vip_requests += report.requests;
                self.measured.push(i);
                for (ip, n) in &report.endpoints {
                    *self.hits.entry(*ip).or_default() += n;
                }
            }
        }
        self.syn_p25_us.insert(
            aim.name.to_string(),
            report.connect_us.value_at_quantile(0.25) as f64,
        );
        self.targets.push(target_of(aim, report, Some(cpu)));
    }

    /// The case's data-path results: the targets with their CPU overhead over the
    /// direct target, the latency and SYN overheads, whole-kernel CPU over the VIP
    /// targets and how evenly the endpoints answered.
    pub(super) fn into_datapath(
        mut self,
        set: &ServiceSet,
        keepalive: bool,
        max_rate: Option<MaxRate>,
    ) -> Datapath {
        if let Some(d) = self.direct_per_request_us {
            for t in self.targets.iter_mut().filter(|t| t.target != "direct") {
                if let Some(c) = t.cpu.as_mut() {
                    c.overhead_per_request_us = Some(c.per_request_us - d);
                }
            }
        }
        let p50 = self
            .targets
            .iter()
            .map(|t| (t.target.as_str(), t.latency_us.p50));
        let lookup_overhead_us = over_direct(p50);
        let syn_overhead_us = over_direct(self.syn_p25_us.iter().map(|(k, v)| (k.as_str(), *v)));
        let cpu = self.vip_cpu();
        self.measured.dedup();
        let dist = distribution(set, &self.measured, &self.hits);
        Datapath {
            connection_per_request: !keepalive,
            targets: self.targets,
            lookup_overhead_us,
            syn_overhead_us,
            max_rate,
            cpu,
            distribution: Some(dist),
            transit: None,
            transit_error: None,
            noise_floor_us: None,
        }
    }

    /// Whole-kernel CPU summed over the targets through a VIP, per request and over
    /// the direct target's.
    fn vip_cpu(&self) -> Option<Cpu> {
        if self.vip_requests == 0 {
            return None;
        }
        let per_request_us = self.vip_busy_ms * 1000.0 / self.vip_requests as f64;
        let vip = || {
            self.targets
                .iter()
                .filter(|t| t.target != "direct")
                .filter_map(|t| t.cpu.as_ref())
        };
        Some(Cpu {
            user_ms: vip().map(|c| c.user_ms).sum(),
            sys_ms: vip().map(|c| c.sys_ms).sum(),
            softirq_ms: vip().map(|c| c.softirq_ms).sum(),
            per_request_us,
            overhead_per_request_us: self.direct_per_request_us.map(|d| per_request_us - d),
            dataplane_ns_per_request: None,
            max_rate_softirq_pct: None,
        })
    }
}

/// Each target's value minus the direct target's (empty without a direct target).
fn over_direct<'a>(values: impl Iterator<Item = (&'a str, f64)> + Clone) -> BTreeMap<String, f64> {
    let Some((_, direct)) = values.clone().find(|(name, _)| *name == "direct") else {
        return BTreeMap::new();
    };
    values
        .filter(|(name, _)| *name != "direct")
        .map(|(name, v)| (name.to_string(), v - direct))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    /// A phase where every request took `latency_us` and connected in `connect_us`,
    /// answered by `endpoint`.
    fn phase(latency_us: u64, connect_us: u64, endpoint: Ipv4Addr) -> LoadReport {
        let mut latency = crate::datapath::load::new_histogram();
        let mut connect = crate::datapath::load::new_histogram();
        for _ in 0..100 {
            latency.record(latency_us).unwrap();
            connect.record(connect_us).unwrap();
        }
        LoadReport {
            requests: 100,
            ok: 100,
            errors: Default::default(),
            offered_rate_per_s: Some(100.0),
            achieved_rate_per_s: 100.0,
            uncorrected_latency_us: latency.clone(),
            latency_us: latency,
            connect_us: connect,
            send_lag_us: crate::datapath::load::new_histogram(),
            endpoints: [(endpoint, 100)].into_iter().collect(),
            endpoint_unknown: 0,
            client_cpu_user_ms: 0.0,
            client_cpu_sys_ms: 0.0,
            wall: Duration::from_secs(1),
            threads: 1,
            connections: 64,
            failures: vec![],
        }
    }

    fn busy(ms: f64) -> CpuDelta {
        CpuDelta {
            user_ms: ms / 2.0,
            sys_ms: ms / 2.0,
            ..CpuDelta::default()
        }
    }

    #[test]
    fn overheads_are_over_the_direct_target() {
        let set = ServiceSet::generate(3, 2);
        let all = aims(&set);
        let mut phases = Phases::default();
        // direct: 100 us, SYN 50 us, 20 ms busy CPU over 100 requests; each next target
        // (first, middle, last) 30 us, 10 us and 10 ms more.
        for (i, aim) in all.iter().enumerate() {
            let endpoint = match aim.service {
                Some(s) => set.services[s].endpoints[0].ip,
                None => set.services[0].endpoints[0].ip,
            };
            let k = i as u64;
            let report = phase(100 + 30 * k, 50 + 10 * k, endpoint);
            phases.record(aim, &report, busy(20.0 + 10.0 * i as f64));
        }
        let d = phases.into_datapath(&set, false, None);
        assert!(d.connection_per_request);
        let names: Vec<&str> = d.targets.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(names, ["direct", "first", "middle", "last"]);
        assert_eq!(d.lookup_overhead_us["first"], 30.0);
        assert_eq!(d.lookup_overhead_us["last"], 90.0);
        assert!(!d.lookup_overhead_us.contains_key("direct"));
        assert_eq!(d.syn_overhead_us["first"], 10.0);
        assert_eq!(d.syn_overhead_us["last"], 30.0);
        let cpu = |name: &str| {
            d.targets
                .iter()
                .find(|t| t.target == name)
                .unwrap()
                .cpu
                .clone()
        };
        assert_eq!(cpu("direct").unwrap().overhead_per_request_us, None);
        assert_eq!(cpu("first").unwrap().per_request_us, 300.0);
        assert_eq!(cpu("first").unwrap().overhead_per_request_us, Some(100.0));
        // Over the VIP targets: (30 + 40 + 50) ms over 300 requests = 400 us each.
        let all_cpu = d.cpu.unwrap();
        assert_eq!(all_cpu.per_request_us, 400.0);
        assert_eq!(all_cpu.overhead_per_request_us, Some(200.0));
        assert_eq!((all_cpu.user_ms, all_cpu.sys_ms), (60.0, 60.0));
        let dist = d.distribution.unwrap();
        assert_eq!((dist.endpoints_hit, dist.endpoints_total), (3, 6));
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
