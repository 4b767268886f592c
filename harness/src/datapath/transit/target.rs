//! The targets of the transit pass: service positions from first to last, then
//! direct. Below both the pass (which dials them) and the result (which labels the
//! samples they yield by them), so neither imports the other for it.

use std::net::SocketAddrV4;

use dataplane::floor::model::{ServiceSet, ENDPOINT_PORT};
use dataplane::floor::spec::Protocol;

/// One target of the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `svc-<index>` or `direct`.
    pub name: String,
    /// The service's index; `None` for direct.
    pub service_index: Option<usize>,
    /// Its position in rule order (the x of the fit); `None` for direct.
    pub position: Option<usize>,
    /// Where the client connects: the VIP:80, or the endpoint IP:8080.
    pub addr: SocketAddrV4,
    /// The service's endpoints: where its SYNs go when the client's socket load
    /// balancer (ebpf mode) picked the backend before the packet existed, so the node
    /// sees the endpoint, not the VIP. Empty for direct.
    pub backends: Vec<SocketAddrV4>,
}

/// `positions` services evenly spaced over `set` in rule order (0 and N-1 always
/// among them; fewer when the set is smaller), then `direct`: the first service's
/// first endpoint. Empty when the set has no service.
pub fn targets(set: &ServiceSet, positions: usize) -> Vec<Target> {
    let n = set.len();
    if n == 0 {
        return Vec::new();
    }
    let positions = positions.max(2);
    let reachable = reachable(set);
    let mut picks: Vec<usize> = (0..positions)
        .map(|k| ((k * (n - 1)) as f64 / (positions - 1) as f64).round() as usize)
        .map(|p| nearest(&reachable, p))
        .collect();
    picks.dedup();
    let mut out: Vec<Target> = picks
        .into_iter()
        .map(|p| {
            let s = &set.services[p];
            Target {
                name: format!("svc-{}", s.index),
                service_index: Some(s.index),
                position: Some(p),
                addr: SocketAddrV4::new(s.vip, s.port),
                backends: s
                    .endpoints
                    .iter()
                    .map(|e| SocketAddrV4::new(e.ip, e.port))
                    .collect(),
            }
        })
        .collect();
    if let Some(ep) = set.services.iter().find_map(|s| s.endpoints.first()) {
        out.push(Target {
            name: "direct".into(),
            service_index: None,
            position: None,
            addr: SocketAddrV4::new(ep.ip, ENDPOINT_PORT),
            backends: Vec::new(),
        });
    }
    out
}

/// The positions of the services a SYN can time: with an endpoint and a TCP first
/// port. Every position when none can (N x 0: the targets are as they always were).
fn reachable(set: &ServiceSet) -> Vec<usize> {
    let v: Vec<usize> = (0..set.len())
        .filter(|&p| {
            let s = &set.services[p];
            !s.endpoints.is_empty() && s.spec.protocol == Protocol::Tcp
        })
        .collect();
    if v.is_empty() {
        (0..set.len()).collect()
    } else {
        v
    }
}

/// The reachable position at or after `p`, else the last before it (a shape's
/// services without endpoints or with a UDP port are passed over; for N x E every
/// position is reachable, so it is `p`).
fn nearest(reachable: &[usize], p: usize) -> usize {
    match reachable.binary_search(&p) {
        Ok(i) => reachable[i],
        Err(i) if i < reachable.len() => reachable[i],
        Err(i) => reachable[i - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_span_first_to_last_then_direct() {
        let set = ServiceSet::generate(1_000, 10);
        let t = targets(&set, 9);
        let idx: Vec<Option<usize>> = t.iter().map(|t| t.service_index).collect();
        assert_eq!(
            idx,
            [
                Some(0),
                Some(125),
                Some(250),
                Some(375),
                Some(500),
                Some(624),
                Some(749),
                Some(874),
                Some(999),
                None
            ]
        );
        assert_eq!(t[0].name, "svc-0");
        assert_eq!(t[0].addr, "10.96.0.1:80".parse().unwrap());
        assert_eq!(t[8].addr, "10.96.3.232:80".parse().unwrap());
        assert_eq!(t[9].name, "direct");
        assert_eq!(t[9].addr, "10.128.0.1:8080".parse().unwrap());
    }

    #[test]
    fn a_small_set_gives_each_service_once() {
        let t = targets(&ServiceSet::generate(3, 1), 9);
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["svc-0", "svc-1", "svc-2", "direct"]);
        assert!(targets(&ServiceSet::default(), 9).is_empty());
    }

    #[test]
    fn a_shapes_services_without_endpoints_are_passed_over() {
        let mut set = ServiceSet::generate(5, 1);
        set.services[0].endpoints.clear();
        set.services[2].endpoints.clear();
        let idx: Vec<Option<usize>> = targets(&set, 5).iter().map(|t| t.service_index).collect();
        assert_eq!(idx, [Some(1), Some(3), Some(4), None]);
        // N x 0: nothing is reachable, the positions stay.
        let none = ServiceSet::generate(3, 0);
        assert_eq!(targets(&none, 9).len(), 3);
    }
}
