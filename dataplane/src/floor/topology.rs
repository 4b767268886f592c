//! Which endpoints of a service port kube-proxy uses, and for what: its topology
//! filter, `CategorizeEndpoints` (pkg/proxy/topology.go), and the service-port
//! predicates it rests on (`ExternallyAccessible`, `UsesClusterEndpoints`,
//! `UsesLocalEndpoints` in pkg/proxy/serviceport.go, `ExternalPolicyLocal` in
//! pkg/apis/core/v1/helper). Shared by the x_tables modes.
//!
//! Topology hints (`hints.forZones`) are not modelled: every endpoint is available to
//! the node, as when no endpoint carries hints.

use crate::floor::model::Service;
use crate::floor::spec::{Conditions, ServiceType, TrafficPolicy};

/// `ExternallyAccessible` for a port with `node_port`: a node port, a load-balancer
/// ingress IP or an external IP.
pub fn externally_accessible(svc: &Service, node_port: Option<u16>) -> bool {
    node_port.is_some() || !svc.spec.ingress_ips.is_empty() || !svc.spec.external_ips.is_empty()
}

/// `externalPolicyLocal`: `externalTrafficPolicy: Local` counts only for a NodePort or
/// LoadBalancer service or one with external IPs (the API helper's
/// `ExternalPolicyLocal`).
pub fn external_policy_local(svc: &Service) -> bool {
    let external = svc.spec.kind != ServiceType::ClusterIP || !svc.spec.external_ips.is_empty();
    external && svc.spec.external_policy == TrafficPolicy::Local
}

/// `internalPolicyLocal`.
pub fn internal_policy_local(svc: &Service) -> bool {
    svc.spec.internal_policy == TrafficPolicy::Local
}

/// `UsesClusterEndpoints`: Cluster internal policy, or any external access (a Local
/// external policy still needs the cluster endpoints for its short circuits).
pub fn uses_cluster_endpoints(svc: &Service, node_port: Option<u16>) -> bool {
    !internal_policy_local(svc) || externally_accessible(svc, node_port)
}

/// `UsesLocalEndpoints`.
pub fn uses_local_endpoints(svc: &Service, node_port: Option<u16>) -> bool {
    internal_policy_local(svc)
        || (external_policy_local(svc) && externally_accessible(svc, node_port))
}

/// `CategorizeEndpoints`' answer, as indices into `Service::endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Categories {
    /// The endpoints of Cluster policy: the ready ones, else the serving and
    /// terminating ones.
    pub cluster: Vec<usize>,
    /// The endpoints of Local policy: the local ready ones, else the local serving and
    /// terminating ones.
    pub local: Vec<usize>,
    /// Every endpoint either uses, in the service's order (kube-proxy's order is its
    /// map's; the rules it writes do not depend on it).
    pub reachable: Vec<usize>,
    /// Whether any endpoint anywhere can serve (`hasAnyEndpoints`).
    pub has_any: bool,
}

/// The categories of `n` endpoints that are all ready, under Cluster policies: what
/// [`categorize`] answers when [`all_plain`] holds.
pub fn plain(n: usize) -> Categories {
    let all: Vec<usize> = (0..n).collect();
    Categories {
        cluster: all.clone(),
        local: Vec::new(),
        reachable: all,
        has_any: n > 0,
    }
}

/// `CategorizeEndpoints` for the port of `svc` with `node_port`.
pub fn categorize(svc: &Service, node_port: Option<u16>) -> Categories {
    let conds: Vec<Conditions> = svc.endpoints.iter().map(|e| svc.conditions(e)).collect();
    let filter = |keep: &dyn Fn(&Conditions) -> bool| -> Vec<usize> {
        (0..conds.len()).filter(|&j| keep(&conds[j])).collect()
    };
    let mut out = Categories::default();
    let serving_terminating = |c: &Conditions| c.serving && c.terminating;
    if uses_cluster_endpoints(svc, node_port) {
        out.cluster = filter(&|c| c.ready);
        if out.cluster.is_empty() {
            out.cluster = filter(&serving_terminating);
        }
        out.has_any = !out.cluster.is_empty();
    }
    if !uses_local_endpoints(svc, node_port) {
        out.reachable = out.cluster.clone();
        return out;
    }
    out.has_any |= conds.iter().any(|c| c.ready || serving_terminating(c));
    let local_ready = filter(&|c| c.local && c.ready);
    out.local = if local_ready.is_empty() {
        filter(&|c| c.local && serving_terminating(c))
    } else {
        local_ready
    };
    out.reachable = if uses_cluster_endpoints(svc, node_port) {
        (0..conds.len())
            .filter(|j| out.cluster.contains(j) || out.local.contains(j))
            .collect()
    } else {
        out.local.clone()
    };
    out
}

/// Whether the port's endpoints are all ready and kube-proxy's topology filter keeps
/// them all for Cluster policy alone (every synthetic N x E service): callers may skip
/// [`categorize`] on their hot path.
pub fn all_plain(svc: &Service) -> bool {
    svc.spec.conditions.is_empty()
        && !internal_policy_local(svc)
        && svc.spec.external_policy == TrafficPolicy::Cluster
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::floor::model::service;

    fn with(svc: &mut Service, j: usize, c: Conditions) {
        let ip: Ipv4Addr = svc.endpoints[j].ip;
        svc.spec.conditions.insert(ip, c);
    }

    const NOT_READY: Conditions = Conditions {
        ready: false,
        serving: false,
        terminating: false,
        local: false,
    };
    const SERVING_TERMINATING: Conditions = Conditions {
        ready: false,
        serving: true,
        terminating: true,
        local: false,
    };

    // The cases follow pkg/proxy/topology_test.go `TestCategorizeEndpoints`.

    #[test]
    fn cluster_policy_uses_the_ready_endpoints() {
        let mut svc = service(0, 3);
        with(&mut svc, 1, NOT_READY);
        let c = categorize(&svc, None);
        assert_eq!(c.cluster, vec![0, 2]);
        assert!(c.local.is_empty());
        assert_eq!(c.reachable, vec![0, 2]);
        assert!(c.has_any);
    }

    #[test]
    fn without_ready_endpoints_serving_terminating_ones_are_the_fallback() {
        let mut svc = service(0, 3);
        with(&mut svc, 0, NOT_READY);
        with(&mut svc, 1, SERVING_TERMINATING);
        with(&mut svc, 2, NOT_READY);
        let c = categorize(&svc, None);
        assert_eq!(c.cluster, vec![1]);
        assert!(c.has_any);
        with(&mut svc, 1, NOT_READY);
        let c = categorize(&svc, None);
        assert!(c.cluster.is_empty() && !c.has_any);
    }

    #[test]
    fn internal_local_uses_only_local_endpoints_and_knows_remote_ones_exist() {
        let mut svc = service(0, 2);
        svc.spec.internal_policy = TrafficPolicy::Local;
        let c = categorize(&svc, None);
        assert!(c.cluster.is_empty() && c.local.is_empty() && c.reachable.is_empty());
        assert!(c.has_any, "remote ready endpoints still count as endpoints");
        with(
            &mut svc,
            1,
            Conditions {
                local: true,
                ..Conditions::default()
            },
        );
        let c = categorize(&svc, None);
        assert_eq!((c.local.clone(), c.reachable), (vec![1], vec![1]));
    }

    #[test]
    fn external_local_merges_cluster_and_local_endpoints() {
        let mut svc = service(0, 3);
        svc.spec.kind = ServiceType::NodePort;
        svc.spec.external_policy = TrafficPolicy::Local;
        with(
            &mut svc,
            2,
            Conditions {
                local: true,
                ..SERVING_TERMINATING
            },
        );
        let c = categorize(&svc, Some(30000));
        assert_eq!(c.cluster, vec![0, 1]);
        assert_eq!(c.local, vec![2], "a local serving-terminating fallback");
        assert_eq!(c.reachable, vec![0, 1, 2]);
        // Without a node port or external address the external policy does not count.
        svc.spec.kind = ServiceType::ClusterIP;
        assert!(!external_policy_local(&svc));
        assert!(!uses_local_endpoints(&svc, None));
    }
}
