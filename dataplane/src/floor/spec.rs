//! What a service is beyond a ClusterIP with one TCP port: everything of a Kubernetes
//! `Service` and its `EndpointSlice`s that kube-proxy renders. A [`Spec`] at its
//! default is today's synthetic service (ClusterIP, TCP, no affinity, Cluster
//! policies, endpoints ready), so N x E scenarios are one shape among others and
//! render exactly as they did.
//!
//! Headless and ExternalName services have no type here: kube-proxy skips them
//! (`pkg/proxy/servicechangetracker.go`, `serviceToServiceMap`), so an imported shape
//! only counts them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// `spec.type`, of the types kube-proxy programs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub const ALL: [ServiceType; 3] = [
        ServiceType::ClusterIP,
        ServiceType::NodePort,
        ServiceType::LoadBalancer,
    ];

    /// The Kubernetes spelling (`ClusterIP`, `NodePort`, `LoadBalancer`).
    pub fn name(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }

    /// Whether the type allocates node ports (NodePort and LoadBalancer do).
    pub fn has_node_ports(self) -> bool {
        self != ServiceType::ClusterIP
    }
}

/// A port's protocol. kube-proxy also programs SCTP; kpbench models TCP and UDP.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
}

impl Protocol {
    /// Lower case, as iptables' `-p` and nftables spell it.
    pub fn lower(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// The Kubernetes spelling (`TCP`, `UDP`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// `externalTrafficPolicy` or `internalTrafficPolicy`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// One further port of a service (the first is the service's own `port`, named `http`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServicePort {
    /// The port's name, which kube-proxy's chain names hash (`kpbench/svc-<i>:<name>`).
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    /// The port every endpoint serves it on.
    pub target_port: u16,
    /// Its node port, for NodePort and LoadBalancer services.
    pub node_port: Option<u16>,
}

/// An endpoint's conditions (`EndpointSlice` `endpoints[].conditions`) and whether its
/// pod runs on the node kube-proxy programs (`nodeName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conditions {
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub local: bool,
}

impl Conditions {
    /// Not ready, not serving, not terminating, on another node.
    pub const NOT_READY: Conditions = Conditions {
        ready: false,
        serving: false,
        terminating: false,
        local: false,
    };
    /// Terminating but still serving, on another node.
    pub const SERVING_TERMINATING: Conditions = Conditions {
        ready: false,
        serving: true,
        terminating: true,
        local: false,
    };
}

impl Default for Conditions {
    /// Ready and serving, not terminating, on another node: every synthetic endpoint.
    fn default() -> Self {
        Conditions {
            ready: true,
            serving: true,
            terminating: false,
            local: false,
        }
    }
}

/// Everything of a service beyond its index, ClusterIP, first port number and
/// endpoints. The default is a ClusterIP service with one TCP port, no affinity,
/// Cluster policies and every endpoint ready.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spec {
    pub kind: ServiceType,
    /// The first port's protocol.
    pub protocol: Protocol,
    /// The first port's node port (NodePort and LoadBalancer services).
    pub node_port: Option<u16>,
    /// Ports after the first, in the service's order.
    pub extra_ports: Vec<ServicePort>,
    /// `sessionAffinity: ClientIP` with its `timeoutSeconds`; None is `None`.
    pub affinity_timeout_s: Option<u32>,
    pub external_policy: TrafficPolicy,
    pub internal_policy: TrafficPolicy,
    /// `loadBalancerSourceRanges`, as (network, prefix length).
    pub source_ranges: Vec<(Ipv4Addr, u8)>,
    /// `externalIPs`.
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` (LoadBalancer services).
    pub ingress_ips: Vec<Ipv4Addr>,
    /// The endpoints (by address) whose conditions differ from [`Conditions::default`].
    pub conditions: BTreeMap<Ipv4Addr, Conditions>,
}

/// A feature of a service that a mode may or may not render yet; what a case skipped
/// for it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    NodePort,
    LoadBalancer,
    Udp,
    SeveralPorts,
    Affinity,
    ExternalPolicyLocal,
    InternalPolicyLocal,
    SourceRanges,
    ExternalIps,
    /// An endpoint not ready, or terminating.
    EndpointConditions,
}

impl Feature {
    pub const ALL: [Feature; 10] = [
        Feature::NodePort,
        Feature::LoadBalancer,
        Feature::Udp,
        Feature::SeveralPorts,
        Feature::Affinity,
        Feature::ExternalPolicyLocal,
        Feature::InternalPolicyLocal,
        Feature::SourceRanges,
        Feature::ExternalIps,
        Feature::EndpointConditions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Feature::NodePort => "NodePort",
            Feature::LoadBalancer => "LoadBalancer",
            Feature::Udp => "UDP ports",
            Feature::SeveralPorts => "several ports",
            Feature::Affinity => "session affinity",
            Feature::ExternalPolicyLocal => "externalTrafficPolicy: Local",
            Feature::InternalPolicyLocal => "internalTrafficPolicy: Local",
            Feature::SourceRanges => "loadBalancerSourceRanges",
            Feature::ExternalIps => "external IPs",
            Feature::EndpointConditions => "endpoints not ready or terminating",
        }
    }
}

impl Spec {
    /// The features this service uses, in [`Feature::ALL`] order; none for the default.
    /// Node-local endpoints are none by themselves: they change the rules only under a
    /// Local traffic policy, which is one.
    pub fn features(&self) -> Vec<Feature> {
        let udp = self.protocol == Protocol::Udp
            || self.extra_ports.iter().any(|p| p.protocol == Protocol::Udp);
        let conditions = self
            .conditions
            .values()
            .any(|c| !c.ready || !c.serving || c.terminating);
        let has = |f: Feature| match f {
            Feature::NodePort => self.kind == ServiceType::NodePort,
            Feature::LoadBalancer => self.kind == ServiceType::LoadBalancer,
            Feature::Udp => udp,
            Feature::SeveralPorts => !self.extra_ports.is_empty(),
            Feature::Affinity => self.affinity_timeout_s.is_some(),
            Feature::ExternalPolicyLocal => self.external_policy == TrafficPolicy::Local,
            Feature::InternalPolicyLocal => self.internal_policy == TrafficPolicy::Local,
            Feature::SourceRanges => !self.source_ranges.is_empty(),
            Feature::ExternalIps => !self.external_ips.is_empty(),
            Feature::EndpointConditions => conditions,
        };
        Feature::ALL.into_iter().filter(|&f| has(f)).collect()
    }
}

/// The features of `services` outside `rendered`, each with how many services use it:
/// what a mode that renders only `rendered` would leave out (empty: it renders them
/// all).
pub fn unrendered<'a>(
    services: impl IntoIterator<Item = &'a Spec>,
    rendered: &[Feature],
) -> BTreeMap<Feature, usize> {
    let mut out = BTreeMap::new();
    for spec in services {
        for f in spec.features() {
            if !rendered.contains(&f) {
                *out.entry(f).or_insert(0) += 1;
            }
        }
    }
    out
}

/// `unrendered`'s answer as a case's skip reason: `"<mode> does not render NodePort (3
/// services), session affinity (1 service) yet"`; None when nothing is left out.
pub fn skip_reason(mode: &str, left_out: &BTreeMap<Feature, usize>) -> Option<String> {
    if left_out.is_empty() {
        return None;
    }
    let list: Vec<String> = left_out
        .iter()
        .map(|(f, n)| {
            let s = if *n == 1 { "service" } else { "services" };
            format!("{} ({n} {s})", f.name())
        })
        .collect();
    Some(format!(
        "{mode} does not render {} yet; run a shape without them for this mode",
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spec_uses_no_feature() {
        assert!(Spec::default().features().is_empty());
        assert!(unrendered([&Spec::default()], &[]).is_empty());
        assert_eq!(skip_reason("iptables", &BTreeMap::new()), None);
    }

    #[test]
    fn features_are_found_and_counted_per_service() {
        let a = Spec {
            kind: ServiceType::NodePort,
            node_port: Some(30001),
            affinity_timeout_s: Some(10800),
            ..Spec::default()
        };
        let mut b = Spec {
            kind: ServiceType::NodePort,
            protocol: Protocol::Udp,
            ..Spec::default()
        };
        b.conditions.insert(
            Ipv4Addr::new(10, 128, 0, 1),
            Conditions {
                ready: false,
                ..Conditions::default()
            },
        );
        assert_eq!(
            b.features(),
            vec![Feature::NodePort, Feature::Udp, Feature::EndpointConditions]
        );
        let left = unrendered([&a, &b], &[Feature::Udp]);
        assert_eq!(left[&Feature::NodePort], 2);
        assert_eq!(left[&Feature::Affinity], 1);
        assert!(!left.contains_key(&Feature::Udp));
        assert_eq!(
            skip_reason("ipvs", &left).unwrap(),
            "ipvs does not render NodePort (2 services), session affinity (1 service), \
             endpoints not ready or terminating (1 service) yet; run a shape without them \
             for this mode"
        );
    }

    #[test]
    fn a_local_endpoint_under_cluster_policies_is_no_feature() {
        let mut s = Spec::default();
        s.conditions.insert(
            Ipv4Addr::new(10, 128, 0, 1),
            Conditions {
                local: true,
                ..Conditions::default()
            },
        );
        assert!(s.features().is_empty());
        s.external_policy = TrafficPolicy::Local;
        assert_eq!(s.features(), vec![Feature::ExternalPolicyLocal]);
    }
}
