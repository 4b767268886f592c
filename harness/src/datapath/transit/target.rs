//! The targets of the transit pass: service positions from first to last, then
//! direct, then one target per further lookup path the set has ([`TransitPath`]: a
//! NodePort through the node's address, an affinity service, a UDP port, an
//! `externalTrafficPolicy: Local` service). Below both the pass (which dials them) and
//! the result (which labels the samples they yield by them), so neither imports the
//! other for it.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;

use dataplane::floor::model::{Service, ServiceSet, ENDPOINT_PORT};
use dataplane::floor::spec::{Protocol, Spec};
use dataplane::floor::topology;

use crate::results::TransitPath;
use crate::sandbox::topology::NODE_CLIENT_ADDR;

/// One target of the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `svc-<index>`, `direct`, or the path's name for the other paths.
    pub name: String,
    /// The service's index; `None` for direct.
    pub service_index: Option<usize>,
    /// Its position in rule order (the x of the fit); `None` for direct and for the
    /// other paths' targets, which the fit leaves out.
    pub position: Option<usize>,
    /// How it is reached; `clusterip` for the positions and direct.
    pub path: TransitPath,
    /// Where the client connects (or sends its datagram): the VIP and port, the
    /// endpoint IP:8080 (direct), or the node's address and node port.
    pub addr: SocketAddrV4,
    /// The service's endpoints (those its path can reach, at the port's target port):
    /// where its SYNs go when the client's socket load balancer (ebpf mode) picked the
    /// backend before the packet existed, so the node sees the endpoint, not the VIP;
    /// for a UDP target also where the echo listens. Empty for direct.
    pub backends: Vec<SocketAddrV4>,
}

impl Target {
    /// Whether the target is a UDP port (one datagram per flow, not a connection).
    pub fn udp(&self) -> bool {
        self.path == TransitPath::Udp
    }
}

/// The targets of the pass and why the set has none for some paths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Targets {
    pub targets: Vec<Target>,
    /// Paths beyond `clusterip` without a target, each with why (only for a shaped
    /// set: a plain N x E set has none of them to measure).
    pub absent: BTreeMap<TransitPath, String>,
}

/// `positions` services evenly spaced over `set` in rule order (0 and N-1 always
/// among them; fewer when the set is smaller), then `direct`: the first service's
/// first endpoint. Empty when the set has no service. Only the ClusterIP targets; see
/// [`all_targets`] for the other paths too.
pub fn targets(set: &ServiceSet, positions: usize) -> Vec<Target> {
    position_targets(set, positions, &[])
}

/// The positions and direct ([`targets`]), then a target per further path the set has
/// a service for; the services those use are no position.
pub fn all_targets(set: &ServiceSet, positions: usize) -> Targets {
    let (paths, absent) = path_targets(set);
    let taken: Vec<usize> = paths.iter().filter_map(|t| t.service_index).collect();
    let mut targets = position_targets(set, positions, &taken);
    if !targets.is_empty() {
        targets.extend(paths);
    }
    Targets { targets, absent }
}

fn position_targets(set: &ServiceSet, positions: usize, taken: &[usize]) -> Vec<Target> {
    let n = set.len();
    if n == 0 {
        return Vec::new();
    }
    let positions = positions.max(2);
    let reachable = reachable(set, taken);
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
                path: TransitPath::ClusterIp,
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
            path: TransitPath::ClusterIp,
            addr: SocketAddrV4::new(ep.ip, ENDPOINT_PORT),
            backends: Vec::new(),
        });
    }
    out
}

/// The positions of the services a SYN can time: with an endpoint and a TCP first
/// port, and not the service of another path's target. Every position when none can
/// (N x 0: the targets are as they always were).
fn reachable(set: &ServiceSet, taken: &[usize]) -> Vec<usize> {
    let v: Vec<usize> = (0..set.len())
        .filter(|&p| {
            let s = &set.services[p];
            !s.endpoints.is_empty() && s.spec.protocol == Protocol::Tcp && !taken.contains(&s.index)
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

/// One target per path beyond `clusterip`, each on the first service in rule order
/// that takes it, and why the others have none (a plain set: no reasons). Two paths
/// may share a service (a NodePort's TCP port and its UDP port): their addresses
/// differ, so their samples do not mix.
fn path_targets(set: &ServiceSet) -> (Vec<Target>, BTreeMap<TransitPath, String>) {
    let mut out = Vec::new();
    let mut absent = BTreeMap::new();
    let shaped = set.services.iter().any(|s| s.spec != Spec::default());
    for path in &TransitPath::ALL[1..] {
        let path = *path;
        let found = set.services.iter().find_map(|s| path_target(s, path));
        match found {
            Some(t) => out.push(t),
            None if shaped => {
                absent.insert(path, format!("the service set has no {}", wanted(path)));
            }
            None => {}
        }
    }
    (out, absent)
}

/// What a path needs of a service, in words (for the reason it has no target).
pub fn wanted(path: TransitPath) -> &'static str {
    match path {
        TransitPath::ClusterIp => "TCP ClusterIP service with an endpoint",
        TransitPath::NodePort => {
            "NodePort or LoadBalancer service with a TCP node port, Cluster external policy and an endpoint"
        }
        TransitPath::Affinity => "ClientIP-affinity service with a TCP port and an endpoint",
        TransitPath::Udp => "UDP service port with an endpoint",
        TransitPath::Local => {
            "externalTrafficPolicy: Local service with a TCP node port and an endpoint on the node"
        }
    }
}

/// The endpoints traffic to the ClusterIP of `svc`'s port with `node_port` can reach:
/// the local ones under `internalTrafficPolicy: Local`, the cluster ones otherwise.
fn internal(svc: &Service, node_port: Option<u16>) -> Vec<usize> {
    let c = topology::categorize(svc, node_port);
    if topology::internal_policy_local(svc) {
        c.local
    } else {
        c.cluster
    }
}

/// `svc`'s target for `path`, when it takes that path: the address the client dials
/// and the endpoints the rules can send it to.
fn path_target(svc: &Service, path: TransitPath) -> Option<Target> {
    let spec = &svc.spec;
    let ports = svc.ports();
    let first = &ports[0];
    let tcp_first = first.protocol == Protocol::Tcp;
    let endpoints = |j: &[usize], target_port: u16| -> Vec<SocketAddrV4> {
        j.iter()
            .map(|&j| SocketAddrV4::new(svc.endpoints[j].ip, target_port))
            .collect()
    };
    let (addr, backends) = match path {
        TransitPath::ClusterIp => return None,
        TransitPath::NodePort => {
            let np = first.node_port.filter(|_| tcp_first)?;
            if topology::external_policy_local(svc) {
                return None;
            }
            let c = topology::categorize(svc, Some(np));
            (
                SocketAddrV4::new(NODE_CLIENT_ADDR, np),
                endpoints(&c.cluster, first.target_port),
            )
        }
        TransitPath::Affinity => {
            spec.affinity_timeout_s.filter(|_| tcp_first)?;
            (
                SocketAddrV4::new(svc.vip, first.port),
                endpoints(&internal(svc, first.node_port), first.target_port),
            )
        }
        TransitPath::Udp => {
            let p = ports.iter().find(|p| p.protocol == Protocol::Udp)?;
            (
                SocketAddrV4::new(svc.vip, p.port),
                endpoints(&internal(svc, p.node_port), p.target_port),
            )
        }
        TransitPath::Local => {
            let np = first.node_port.filter(|_| tcp_first)?;
            if !topology::external_policy_local(svc) {
                return None;
            }
            let c = topology::categorize(svc, Some(np));
            (
                SocketAddrV4::new(NODE_CLIENT_ADDR, np),
                endpoints(&c.local, first.target_port),
            )
        }
    };
    if backends.is_empty() {
        return None;
    }
    Some(Target {
        name: path.name().into(),
        service_index: Some(svc.index),
        position: None,
        path,
        addr,
        backends,
    })
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
    fn a_plain_set_has_no_other_path_and_says_nothing() {
        let set = ServiceSet::generate(50, 2);
        let all = all_targets(&set, 9);
        assert_eq!(all.targets, targets(&set, 9));
        assert!(all.absent.is_empty());
    }

    #[test]
    fn a_featured_set_gives_one_target_per_path_off_the_positions() {
        use dataplane::conformance::featured::{featured_index, featured_set};
        use dataplane::floor::shape::FIRST_NODE_PORT;
        use dataplane::floor::spec::Feature;
        let set = featured_set(20, 1, &Feature::ALL);
        let all = all_targets(&set, 9);
        assert!(all.absent.is_empty(), "{:?}", all.absent);
        let path = |p: TransitPath| all.targets.iter().find(|t| t.path == p).unwrap();
        let (np, aff, lb) = (
            featured_index(20, 0),
            featured_index(20, 1),
            featured_index(20, 2),
        );
        let nodeport = path(TransitPath::NodePort);
        assert_eq!(nodeport.name, "nodeport");
        assert_eq!(nodeport.service_index, Some(np));
        assert_eq!(nodeport.position, None);
        assert_eq!(
            nodeport.addr,
            SocketAddrV4::new(NODE_CLIENT_ADDR, FIRST_NODE_PORT)
        );
        assert_eq!(nodeport.backends.len(), set.services[np].endpoints.len());
        let affinity = path(TransitPath::Affinity);
        assert_eq!(affinity.service_index, Some(aff));
        assert_eq!(
            affinity.addr,
            SocketAddrV4::new(set.services[aff].vip, set.services[aff].port)
        );
        // The NodePort's second port is UDP 81 -> 8081: the udp target, on the same
        // service, with the endpoints at the UDP target port.
        let udp = path(TransitPath::Udp);
        assert!(udp.udp() && !nodeport.udp());
        assert_eq!(udp.service_index, Some(np));
        assert_eq!(udp.addr, SocketAddrV4::new(set.services[np].vip, 81));
        assert!(udp.backends.iter().all(|b| b.port() == 8081));
        // The LoadBalancer with Local policy: through its node port, to its one local
        // endpoint only.
        let local = path(TransitPath::Local);
        assert_eq!(local.service_index, Some(lb));
        assert_eq!(
            local.addr,
            SocketAddrV4::new(NODE_CLIENT_ADDR, FIRST_NODE_PORT + 2)
        );
        let lb_ep = set.services[lb].endpoints[0];
        assert_eq!(local.backends, [SocketAddrV4::new(lb_ep.ip, lb_ep.port)]);
        // No path target's service is a position; the positions still span the set.
        let positions: Vec<usize> = all.targets.iter().filter_map(|t| t.position).collect();
        for s in [np, aff, lb] {
            assert!(!positions.contains(&s), "{s} in {positions:?}");
        }
        assert_eq!(positions.first(), Some(&0));
        assert_eq!(positions.last(), Some(&(set.len() - 1)));
        let names: Vec<&str> = all.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names[names.len() - 5..],
            ["direct", "nodeport", "affinity", "udp", "local"]
        );
    }

    #[test]
    fn a_shape_without_a_path_says_why_and_a_local_policy_needs_a_local_endpoint() {
        use dataplane::floor::spec::{ServiceType, TrafficPolicy};
        let mut set = ServiceSet::generate(10, 2);
        let s = &mut set.services[3];
        s.spec.kind = ServiceType::NodePort;
        s.spec.node_port = Some(30_003);
        s.spec.external_policy = TrafficPolicy::Local;
        // Every endpoint remote: Local policy drops node-port traffic, no target.
        let all = all_targets(&set, 5);
        assert!(all.targets.iter().all(|t| t.path == TransitPath::ClusterIp));
        assert_eq!(
            all.absent.keys().copied().collect::<Vec<_>>(),
            [
                TransitPath::NodePort,
                TransitPath::Affinity,
                TransitPath::Udp,
                TransitPath::Local
            ]
        );
        assert_eq!(
            all.absent[&TransitPath::Local],
            "the service set has no externalTrafficPolicy: Local service with a TCP node port and an endpoint on the node"
        );
        let ip = set.services[3].endpoints[1].ip;
        set.services[3].spec.conditions.insert(
            ip,
            dataplane::floor::spec::Conditions {
                local: true,
                ..Default::default()
            },
        );
        let all = all_targets(&set, 5);
        let local = all.targets.last().unwrap();
        assert_eq!(local.path, TransitPath::Local);
        assert_eq!(local.backends, [SocketAddrV4::new(ip, ENDPOINT_PORT)]);
        assert!(!all.absent.contains_key(&TransitPath::Local));
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
