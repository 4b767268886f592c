//! What Cilium's agent ([`super::layout::CILIUM_RELEASE`]) makes of one Kubernetes
//! service: its frontends, each a service of its own in the agent (its own ID, which
//! is its reverse-NAT index), with the flags, scope and backends the agent gives it.
//! Pure.
//!
//! The rules, from Cilium's sources:
//!
//! - **Frontends** (`pkg/k8s/watchers/watcher.go` `datapathSVCs`, `genCartesianProduct`;
//!   `pkg/k8s/service.go` `ParseService`): the ClusterIP, each load-balancer ingress IP
//!   and each external IP at every service port (one per port and protocol:
//!   `UniquePorts` keys them by `port/protocol`), then for NodePort and LoadBalancer
//!   services every node port at each node address and at `0.0.0.0` (the surrogate
//!   frontend the socket LB's wildcard lookup uses). Every frontend has the external
//!   scope; when exactly one traffic policy is Local, NodePort and LoadBalancer
//!   frontends get a second one with the internal scope. Cilium walks Go maps there,
//!   so its order is random; kpbench takes the service's port order, node addresses
//!   before the surrogate, external scope before internal.
//! - **Backends** (`pkg/k8s/endpoints.go` `ParseEndpointSliceV1`): an endpoint that is
//!   not ready is left out unless it is serving (`--enable-k8s-terminating-endpoint`,
//!   on by default); a terminating one is kept with `BE_STATE_TERMINATING`.
//!   `pkg/service/service.go` `filterBackends` keeps only the node's own endpoints for
//!   an external-scope frontend under `externalTrafficPolicy: Local` (a ClusterIP's,
//!   under `internalTrafficPolicy: Local`) and for an internal-scope frontend under
//!   `internalTrafficPolicy: Local`. `segregateBackends`: active backends are counted
//!   in the master entry, the others take the slots after them; with no active
//!   backend the terminating ones count.
//! - **Flags** (`pkg/loadbalancer/loadbalancer.go` `NewSvcFlag`,
//!   `pkg/maps/lbmap/lbmap.go` `updateMasterService`): the type's flag; `ROUTABLE`
//!   unless a ClusterIP (`--bpf-lb-external-clusterip` off, the default) or the
//!   surrogate; `EXT_LOCAL_SCOPE` (`isExtLocal`: NodePort, LoadBalancer and external
//!   IPs under `externalTrafficPolicy: Local`), `INT_LOCAL_SCOPE` (`isIntLocal`),
//!   `TWO_SCOPES` when they differ on a frontend that is not a ClusterIP; `AFFINITY`
//!   with the timeout in the master's backend-ID slot; `SOURCE_RANGE` on a
//!   LoadBalancer frontend with source ranges (`checkLBSourceRange`), which only
//!   LoadBalancer frontends are given.

use std::net::Ipv4Addr;

use super::layout::{self, PROTO_TCP, PROTO_UDP};
use crate::floor::model::Service;
use crate::floor::spec::{Protocol, ServiceType, TrafficPolicy};

/// `LB_LOOKUP_SCOPE_INT`.
pub const SCOPE_INT: u8 = 1;
/// `BE_STATE_ACTIVE`.
pub const BE_STATE_ACTIVE: u8 = 0;
/// `BE_STATE_TERMINATING`.
pub const BE_STATE_TERMINATING: u8 = 1;

/// The agent's service type of a frontend (`loadbalancer.SVCType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeKind {
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalIP,
}

impl FeKind {
    /// Its bit in `lb4_service.flags`.
    fn flag(self) -> u8 {
        match self {
            FeKind::ClusterIP => 0,
            FeKind::NodePort => layout::SVC_FLAG_NODEPORT,
            FeKind::LoadBalancer => layout::SVC_FLAG_LOADBALANCER,
            FeKind::ExternalIP => layout::SVC_FLAG_EXTERNAL_IP,
        }
    }
}

/// A frontend's identity: its `lb4_key` without the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeKey {
    pub address: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
    pub scope: u8,
}

impl FeKey {
    /// Its `lb4_key` at `slot` (0: the master entry).
    pub fn slot(&self, slot: u16) -> layout::Lb4Key {
        layout::Lb4Key {
            address: self.address,
            dport: self.port,
            backend_slot: slot,
            proto: self.proto,
            scope: self.scope,
        }
    }
}

/// A backend's identity (the agent's `L3n4Addr` hash): one backend ID however many
/// frontends use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendAddr {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
}

/// A backend of a frontend, with its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeBackend {
    pub addr: BackendAddr,
    /// `BE_STATE_ACTIVE` or `BE_STATE_TERMINATING`.
    pub state: u8,
}

/// One frontend as the agent programs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    pub key: FeKey,
    pub kind: FeKind,
    /// `lb4_service.flags` and `flags2` of the master entry, but `SOURCE_RANGE`, which
    /// the agent also sets while removing a frontend's last source range (see
    /// [`super::agent`]).
    pub flags: u8,
    pub flags2: u8,
    /// `sessionAffinity: ClientIP`'s timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// Its backends in the service's endpoint order.
    pub backends: Vec<FeBackend>,
    /// `loadBalancerSourceRanges` (LoadBalancer frontends only).
    pub source_ranges: Vec<(Ipv4Addr, u8)>,
}

impl Frontend {
    /// Whether `b` counts in the master entry (`segregateBackends`): an active
    /// backend, or with none active, a terminating one.
    pub fn counts(&self, b: &FeBackend) -> bool {
        let any_active = self.backends.iter().any(|x| x.state == BE_STATE_ACTIVE);
        b.state == BE_STATE_ACTIVE || (!any_active && b.state == BE_STATE_TERMINATING)
    }

    /// How many backends the master entry counts.
    pub fn active(&self) -> usize {
        self.backends.iter().filter(|b| self.counts(b)).count()
    }
}

fn proto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => PROTO_TCP,
        Protocol::Udp => PROTO_UDP,
    }
}

/// The addresses of the node the agent runs on that NodePort frontends use: kpbench's
/// node namespace has one, the address of its client link (the primary address
/// `kube-proxy --nodeport-addresses primary` also uses).
pub fn node_addresses() -> Vec<Ipv4Addr> {
    vec![crate::nftables::DEFAULT_NODE_IP]
}

/// One service port: its frontend port, protocol, node port and endpoints' port.
struct Port {
    port: u16,
    proto: u8,
    node_port: Option<u16>,
    /// None: each endpoint's own port (the first port).
    target: Option<u16>,
}

fn ports(svc: &Service) -> Vec<Port> {
    let mut out: Vec<Port> = Vec::new();
    let first = Port {
        port: svc.port,
        proto: proto(svc.spec.protocol),
        node_port: svc.spec.node_port,
        target: None,
    };
    let rest = svc.spec.extra_ports.iter().map(|p| Port {
        port: p.port,
        proto: proto(p.protocol),
        node_port: p.node_port,
        target: Some(p.target_port),
    });
    for p in std::iter::once(first).chain(rest) {
        // UniquePorts: one frontend per port and protocol.
        if !out.iter().any(|q| q.port == p.port && q.proto == p.proto) {
            out.push(p);
        }
    }
    out
}

/// The endpoints the agent keeps for `port` (not ready and not serving: left out),
/// with whether each is on this node.
fn backends(svc: &Service, port: &Port) -> Vec<(FeBackend, bool)> {
    svc.endpoints
        .iter()
        .filter_map(|e| {
            let c = svc.conditions(e);
            if !c.ready && !c.serving {
                return None;
            }
            let b = FeBackend {
                addr: BackendAddr {
                    ip: e.ip,
                    port: port.target.unwrap_or(e.port),
                    proto: port.proto,
                },
                state: if c.terminating {
                    BE_STATE_TERMINATING
                } else {
                    BE_STATE_ACTIVE
                },
            };
            Some((b, c.local))
        })
        .collect()
}

/// The frontend of `svc` of `kind` at `address`:`fe_port` in `scope`, for `port`.
fn frontend(
    svc: &Service,
    kind: FeKind,
    (address, fe_port, scope): (Ipv4Addr, u16, u8),
    port: &Port,
) -> Frontend {
    let spec = &svc.spec;
    let external = kind != FeKind::ClusterIP;
    let ext_local = external && spec.external_policy == TrafficPolicy::Local;
    let int_local = spec.internal_policy == TrafficPolicy::Local;
    let only_local = match (scope, kind) {
        (SCOPE_INT, _) | (_, FeKind::ClusterIP) => int_local,
        _ => ext_local,
    };
    let source_ranges = if kind == FeKind::LoadBalancer {
        spec.source_ranges.clone()
    } else {
        Vec::new()
    };
    let surrogate = address.is_unspecified();
    let mut flags = kind.flag();
    if external && !surrogate {
        flags |= layout::SVC_FLAG_ROUTABLE;
    }
    if ext_local {
        flags |= layout::SVC_FLAG_EXT_LOCAL_SCOPE;
    }
    if spec.affinity_timeout_s.is_some() {
        flags |= layout::SVC_FLAG_AFFINITY;
    }
    let mut flags2 = 0;
    if int_local {
        flags2 |= layout::SVC_FLAG_INT_LOCAL_SCOPE;
    }
    if ext_local != int_local && external {
        flags2 |= layout::SVC_FLAG_TWO_SCOPES;
    }
    Frontend {
        key: FeKey {
            address,
            port: fe_port,
            proto: port.proto,
            scope,
        },
        kind,
        flags,
        flags2,
        affinity_timeout: spec.affinity_timeout_s,
        backends: backends(svc, port)
            .into_iter()
            .filter(|(_, local)| !only_local || *local)
            .map(|(b, _)| b)
            .collect(),
        source_ranges,
    }
}

/// Every frontend of `svc` in the agent's order, with NodePort frontends at
/// `node_ips` and the surrogate `0.0.0.0`.
pub fn frontends(svc: &Service, node_ips: &[Ipv4Addr]) -> Vec<Frontend> {
    let spec = &svc.spec;
    let ports = ports(svc);
    let two_scopes = (spec.external_policy == TrafficPolicy::Local)
        != (spec.internal_policy == TrafficPolicy::Local);
    let mut out = Vec::new();
    let add = |out: &mut Vec<Frontend>, kind: FeKind, address: Ipv4Addr, fe_port: u16, p: &Port| {
        out.push(frontend(
            svc,
            kind,
            (address, fe_port, layout::SCOPE_EXT),
            p,
        ));
        if two_scopes && matches!(kind, FeKind::NodePort | FeKind::LoadBalancer) {
            out.push(frontend(svc, kind, (address, fe_port, SCOPE_INT), p));
        }
    };
    let ingress: &[Ipv4Addr] = if spec.kind == ServiceType::LoadBalancer {
        &spec.ingress_ips
    } else {
        &[]
    };
    for (kind, addresses) in [
        (FeKind::ClusterIP, std::slice::from_ref(&svc.vip)),
        (FeKind::LoadBalancer, ingress),
        (FeKind::ExternalIP, &spec.external_ips[..]),
    ] {
        for address in addresses {
            for p in &ports {
                add(&mut out, kind, *address, p.port, p);
            }
        }
    }
    if spec.kind.has_node_ports() {
        for p in &ports {
            let Some(node_port) = p.node_port else {
                continue;
            };
            for address in node_ips.iter().chain([&Ipv4Addr::UNSPECIFIED]) {
                add(&mut out, FeKind::NodePort, *address, node_port, p);
            }
        }
    }
    out
}
