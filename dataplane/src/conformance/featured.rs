//! A service set that uses the shape features (several ports, UDP, NodePort,
//! LoadBalancer with external and ingress IPs, ClientIP affinity, both Local traffic
//! policies, a terminating endpoint), beside N x E ClusterIPs, and a conformance
//! sequence over it, for the privileged tests of the modes that render them.

use std::net::Ipv4Addr;

use super::Step;
use crate::floor::model::{service, spare_endpoint_ip, Service, ServiceSet};
use crate::floor::shape::FIRST_NODE_PORT;
use crate::floor::spec::{Conditions, Feature, Protocol, ServicePort, ServiceType, TrafficPolicy};

/// Services `0..n` with `e` endpoints each, then from index `n` one service per
/// feature: a NodePort with a second, UDP port; ClientIP affinity; a LoadBalancer with
/// `externalTrafficPolicy: Local`, an external IP, an ingress IP, two source ranges
/// and its first
/// endpoint on the node; `internalTrafficPolicy: Local` with one local endpoint; a
/// service whose first endpoint is terminating (still serving). Only features in
/// `rendered` are used (the others' services stay plain ClusterIPs).
pub fn featured_set(n: usize, e: usize, rendered: &[Feature]) -> ServiceSet {
    let mut set = ServiceSet::generate(n, e);
    let has = |f: Feature| rendered.contains(&f);
    let local = Conditions {
        local: true,
        ..Conditions::default()
    };
    let next = |set: &ServiceSet| set.fresh_service(set.len(), e.max(2));
    let mut np = next(&set);
    if has(Feature::NodePort) {
        np.spec.kind = ServiceType::NodePort;
        np.spec.node_port = Some(FIRST_NODE_PORT);
    }
    if has(Feature::SeveralPorts) {
        np.spec.extra_ports.push(ServicePort {
            name: "p1".into(),
            protocol: if has(Feature::Udp) {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            port: 81,
            target_port: 8081,
            node_port: has(Feature::NodePort).then_some(FIRST_NODE_PORT + 1),
        });
    }
    set.upsert(np);
    let mut aff = next(&set);
    if has(Feature::Affinity) {
        aff.spec.affinity_timeout_s = Some(10800);
    }
    set.upsert(aff);
    let mut lb = next(&set);
    if has(Feature::LoadBalancer) && has(Feature::ExternalPolicyLocal) {
        lb.spec.kind = ServiceType::LoadBalancer;
        lb.spec.node_port = Some(FIRST_NODE_PORT + 2);
        lb.spec.external_policy = TrafficPolicy::Local;
        lb.spec.ingress_ips = vec![Ipv4Addr::new(198, 19, 0, 1)];
        lb.spec.conditions.insert(lb.endpoints[0].ip, local);
        if has(Feature::ExternalIps) {
            lb.spec.external_ips = vec![Ipv4Addr::new(198, 18, 0, 1)];
        }
        if has(Feature::SourceRanges) {
            // Two adjacent /24s, as `floor::shape` hands them out.
            lb.spec.source_ranges = vec![
                (Ipv4Addr::new(100, 64, 0, 0), 24),
                (Ipv4Addr::new(100, 64, 1, 0), 24),
            ];
        }
    }
    set.upsert(lb);
    let mut itp = next(&set);
    if has(Feature::InternalPolicyLocal) {
        itp.spec.internal_policy = TrafficPolicy::Local;
        itp.spec.conditions.insert(itp.endpoints[1].ip, local);
    }
    set.upsert(itp);
    let mut term = next(&set);
    if has(Feature::EndpointConditions) {
        term.spec.conditions.insert(
            term.endpoints[0].ip,
            Conditions {
                ready: false,
                serving: true,
                terminating: true,
                local: false,
            },
        );
    }
    set.upsert(term);
    set
}

/// The index of the first feature service of [`featured_set`]`(n, ..)` plus `k`
/// (0 NodePort, 1 affinity, 2 LoadBalancer, 3 internal Local, 4 terminating).
pub fn featured_index(n: usize, k: usize) -> usize {
    n + k
}

/// Changes a feature service the way a cluster does: the affinity service's first
/// endpoint replaced, the LoadBalancer's local endpoint moved off the node, the
/// terminating endpoint gone; returns the changed set.
pub fn featured_change(set: &ServiceSet, n: usize) -> ServiceSet {
    let mut out = set.clone();
    let edit = |out: &mut ServiceSet, k: usize, f: &dyn Fn(&mut Service)| {
        if let Some(s) = out.get(featured_index(n, k)) {
            let mut s = s.clone();
            f(&mut s);
            out.upsert(s);
        }
    };
    edit(&mut out, 1, &|s| s.endpoints[0].ip = spare_endpoint_ip(40));
    edit(&mut out, 2, &|s| s.spec.conditions.clear());
    edit(&mut out, 4, &|s| {
        let gone = s.endpoints.remove(0);
        s.spec.conditions.remove(&gone.ip);
    });
    out
}

/// The conformance sequence over [`featured_set`]: full sync, a feature service
/// changed, the NodePort service removed, a plain service added, the timers fired.
pub fn featured_sequence(n: usize, e: usize, rendered: &[Feature]) -> Vec<Step> {
    let full = featured_set(n, e, rendered);
    let changed = featured_change(&full, n);
    let mut removed = changed.clone();
    removed.remove(featured_index(n, 0));
    let mut added = removed.clone();
    added.upsert(service(n + 10, e));
    let step = Step::at;
    vec![
        step("full sync", &full, 0, false),
        step("change feature services", &changed, 1, false),
        step("remove the NodePort service", &removed, 2, false),
        step("add a service", &added, 3, false),
        step("timers fired", &added, 3, true),
    ]
}
