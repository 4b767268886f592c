//! A service as kube-proxy's iptables proxier walks it: one service port at a time
//! (`svcPortMap`), each with its own name (`ns/svc:port`), protocol, chains and
//! endpoints (the endpoint IPs at the port's target port).

use crate::floor::model::{Endpoint, Service};
use crate::floor::names::{kube_sep_chain, kube_svc_chain};
use crate::floor::spec::Feature;

/// The features the iptables renderer writes as kube-proxy does: several TCP ports,
/// ClientIP affinity and NodePort services with `externalTrafficPolicy: Cluster`.
/// UDP is left out (kube-proxy's sync then also deletes conntrack entries with
/// `conntrack`, which the kube-proxy profile does not replay yet); so are
/// LoadBalancer services, external IPs, source ranges, Local policies and endpoint
/// conditions.
pub const RENDERS: &[Feature] = &[Feature::SeveralPorts, Feature::Affinity, Feature::NodePort];

/// One service port.
pub struct PortView {
    /// `kpbench/svc-<i>:<port name>`.
    pub name: String,
    pub proto: &'static str,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `KUBE-SVC-<hash>`.
    pub svc_chain: String,
    /// Its endpoints at the port's target port, with their `KUBE-SEP-` chains.
    pub endpoints: Vec<(Endpoint, String)>,
}

impl PortView {
    /// `KUBE-EXT-<hash>`: kube-proxy's `servicePortExternalChainName`, the service
    /// chain's hash.
    pub fn ext_chain(&self) -> String {
        self.svc_chain.replacen("KUBE-SVC-", "KUBE-EXT-", 1)
    }
}

/// The service's ports in order; the first is named as every synthetic service's
/// one port always was (`names::svc_chain`, `names::sep_chain` for TCP), so N x E
/// renders as before.
pub fn views(svc: &Service) -> Vec<PortView> {
    let mut out = Vec::with_capacity(1 + svc.spec.extra_ports.len());
    let (name, proto) = (svc.port_name(), svc.spec.protocol.lower());
    out.push(PortView {
        svc_chain: kube_svc_chain(&name, proto),
        endpoints: svc
            .endpoints
            .iter()
            .map(|ep| (*ep, kube_sep_chain(&name, proto, &ep.host_port())))
            .collect(),
        name,
        proto,
        port: svc.port,
        node_port: svc.spec.node_port,
    });
    for p in &svc.spec.extra_ports {
        let name = format!(
            "{}/{}:{}",
            crate::floor::model::NAMESPACE,
            svc.name(),
            p.name
        );
        let proto = p.protocol.lower();
        let endpoints = svc
            .endpoints
            .iter()
            .map(|ep| {
                let ep = Endpoint {
                    ip: ep.ip,
                    port: p.target_port,
                };
                (ep, kube_sep_chain(&name, proto, &ep.host_port()))
            })
            .collect();
        out.push(PortView {
            svc_chain: kube_svc_chain(&name, proto),
            name,
            proto,
            port: p.port,
            node_port: p.node_port,
            endpoints,
        });
    }
    out
}
