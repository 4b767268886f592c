//! `kpbench shape show`: a shape's summary, counts only (what a bug report needs to
//! say which services a run programmed).

use std::collections::BTreeMap;
use std::fmt::Write;

use dataplane::floor::shape::Shape;
use dataplane::floor::spec::{Protocol, ServiceType, TrafficPolicy};

/// The endpoint-count buckets of the histogram: (lowest, highest, label).
const BUCKETS: [(u32, u32, &str); 7] = [
    (0, 0, "0"),
    (1, 1, "1"),
    (2, 3, "2-3"),
    (4, 10, "4-10"),
    (11, 100, "11-100"),
    (101, 1000, "101-1000"),
    (1001, u32::MAX, ">1000"),
];

/// `n services`, `1 service`.
fn services(n: u64) -> String {
    format!("{n} service{}", if n == 1 { "" } else { "s" })
}

/// The summary as printed, one line per aspect.
pub fn summary(shape: &Shape) -> String {
    let per = |f: &dyn Fn(&dataplane::floor::shape::Group) -> u64| -> u64 {
        shape.groups.iter().map(|g| g.count * f(g)).sum()
    };
    let mut out = String::new();
    let skipped = shape.skipped;
    let _ = writeln!(
        out,
        "shape ({}): {} services kube-proxy programs, {} endpoints; skipped as kube-proxy skips them: {} headless, {} ExternalName",
        shape.source,
        shape.services(),
        shape.endpoints(),
        skipped.headless,
        skipped.external_name
    );
    let types: Vec<String> = ServiceType::ALL
        .iter()
        .map(|&t| format!("{} {}", t.name(), per(&|g| (g.kind == t) as u64)))
        .collect();
    let _ = writeln!(out, "types: {}", types.join(", "));
    let mut per_service: BTreeMap<usize, u64> = BTreeMap::new();
    for g in &shape.groups {
        *per_service.entry(g.ports.len()).or_insert(0) += g.count;
    }
    let proto = |p: Protocol| per(&|g| g.ports.iter().filter(|&&q| q == p).count() as u64);
    let dist: Vec<String> = per_service
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "ports: TCP {}, UDP {}; ports per service (ports: services) {}",
        proto(Protocol::Tcp),
        proto(Protocol::Udp),
        dist.join(", ")
    );
    let hist: Vec<String> = BUCKETS
        .iter()
        .map(|&(lo, hi, label)| {
            let n = per(&|g| (lo..=hi).contains(&g.endpoints.total()) as u64);
            format!("{label}: {n}")
        })
        .collect();
    let _ = writeln!(
        out,
        "endpoints per service (endpoints: services): {}",
        hist.join(", ")
    );
    let _ = writeln!(
        out,
        "endpoint conditions: ready {}, not ready {}, serving and terminating {}, terminating {}; on the node {}",
        per(&|g| g.endpoints.ready as u64),
        per(&|g| g.endpoints.not_ready as u64),
        per(&|g| g.endpoints.serving_terminating as u64),
        per(&|g| g.endpoints.terminating as u64),
        per(&|g| g.endpoints.local as u64),
    );
    let local = |p: TrafficPolicy| p == TrafficPolicy::Local;
    let _ = writeln!(
        out,
        "affinity: ClientIP {}; externalTrafficPolicy Local {}; internalTrafficPolicy Local {}",
        per(&|g| g.affinity_timeout_s.is_some() as u64),
        per(&|g| local(g.external_traffic_policy) as u64),
        per(&|g| local(g.internal_traffic_policy) as u64),
    );
    let _ = write!(
        out,
        "source ranges: {} ({} ranges); external IPs: {} ({} IPs); load-balancer ingress IPs: {}",
        services(per(&|g| (g.source_ranges > 0) as u64)),
        per(&|g| g.source_ranges as u64),
        services(per(&|g| (g.external_ips > 0) as u64)),
        per(&|g| g.external_ips as u64),
        per(&|g| g.ingress_ips as u64),
    );
    out
}
