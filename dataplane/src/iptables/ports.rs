//! A service as kube-proxy's iptables proxier walks it: one service port at a time
//! (`svcPortMap`), each with its own name (`ns/svc:port`), protocol, chains and
//! endpoints (the endpoint IPs at the port's target port), and what `syncProxyRules`
//! decides for it before writing a rule: which endpoints each policy uses
//! ([`crate::floor::topology`]), which chains it needs and where each kind of
//! traffic goes.

use crate::floor::model::{Endpoint, Service};
use crate::floor::names::{kube_sep_chain, kube_svc_chain};
use crate::floor::spec::Feature;
use crate::floor::topology::{self, Categories};

/// The features the iptables renderer writes as kube-proxy does: every one of the
/// shape model. What the kube-proxy profile does not replay of them (the conntrack
/// cleanup after a UDP service's endpoints change, health-check node ports) is in
/// [`super::controller`]'s documentation.
pub const RENDERS: &[Feature] = &Feature::ALL;

/// One service port.
pub struct PortView {
    /// `kpbench/svc-<i>:<port name>`.
    pub name: String,
    pub proto: &'static str,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `KUBE-SVC-<hash>`.
    pub svc_chain: String,
    /// Every endpoint at the port's target port, with its `KUBE-SEP-` chain.
    pub endpoints: Vec<(Endpoint, String)>,
    /// Which of `endpoints` each policy uses.
    pub cats: Categories,
    /// `internalTrafficPolicy: Local`.
    pub int_local: bool,
    /// `externalTrafficPolicy: Local`, where it counts.
    pub ext_local: bool,
    /// A node port, an ingress IP or an external IP.
    pub accessible: bool,
    /// Ingress IPs and source ranges both present (`usesFWChain` before
    /// `hasEndpoints`).
    pub firewalled: bool,
    /// Whether the port uses Cluster and Local endpoints (`UsesClusterEndpoints`,
    /// `UsesLocalEndpoints`).
    pub uses_cluster: bool,
    pub uses_local: bool,
}

impl PortView {
    /// The chain of this port with `prefix` in place of `KUBE-SVC-`: kube-proxy's
    /// `KUBE-EXT-`, `KUBE-SVL-` and `KUBE-FW-` names share the service chain's hash.
    fn sibling(&self, prefix: &str) -> String {
        self.svc_chain.replacen("KUBE-SVC-", prefix, 1)
    }

    /// `KUBE-EXT-<hash>` (`servicePortExternalChainName`).
    pub fn ext_chain(&self) -> String {
        self.sibling("KUBE-EXT-")
    }

    /// `KUBE-SVL-<hash>` (`servicePortPolicyLocalChainName`).
    pub fn svl_chain(&self) -> String {
        self.sibling("KUBE-SVL-")
    }

    /// `KUBE-FW-<hash>` (`serviceFirewallChainName`).
    pub fn fw_chain(&self) -> String {
        self.sibling("KUBE-FW-")
    }

    /// `hasEndpoints`: some endpoint can serve, here or elsewhere.
    pub fn has_endpoints(&self) -> bool {
        self.cats.has_any
    }

    /// `hasInternalEndpoints`.
    pub fn has_internal(&self) -> bool {
        self.has_endpoints() && !(self.int_local && self.cats.local.is_empty())
    }

    /// `hasExternalEndpoints`.
    pub fn has_external(&self) -> bool {
        self.has_endpoints() && !(self.ext_local && self.cats.local.is_empty())
    }

    /// `internalTrafficChain`: where cluster IP traffic goes.
    pub fn internal_chain(&self) -> String {
        if self.int_local {
            self.svl_chain()
        } else {
            self.svc_chain.clone()
        }
    }

    /// `externalPolicyChain`: where the EXT chain sends what it does not short-circuit.
    pub fn external_policy_chain(&self) -> String {
        if self.ext_local {
            self.svl_chain()
        } else {
            self.svc_chain.clone()
        }
    }

    /// `usesExternalTrafficChain`.
    pub fn uses_ext(&self) -> bool {
        self.has_endpoints() && self.accessible
    }

    /// `usesFWChain`.
    pub fn uses_fw(&self) -> bool {
        self.has_endpoints() && self.firewalled
    }

    /// `usesClusterPolicyChain`.
    pub fn uses_svc(&self) -> bool {
        self.uses_cluster && !self.cats.cluster.is_empty()
    }

    /// `usesLocalPolicyChain`.
    pub fn uses_svl(&self) -> bool {
        self.uses_local && !self.cats.local.is_empty()
    }

    /// Where load-balancer IP traffic goes: the FW chain when it is used, else EXT.
    pub fn lb_chain(&self) -> String {
        if self.uses_fw() {
            self.fw_chain()
        } else {
            self.ext_chain()
        }
    }

    /// The endpoints of `which` (indices into `endpoints`).
    pub fn pick<'a>(&'a self, which: &'a [usize]) -> impl Iterator<Item = &'a (Endpoint, String)> {
        which.iter().map(|&j| &self.endpoints[j])
    }

    /// The nat chains this port owns, in the order `syncProxyRules` declares them:
    /// EXT, FW, SVC, SVL, then the endpoint chains.
    pub fn chains(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.uses_ext() {
            v.push(self.ext_chain());
        }
        if self.uses_fw() {
            v.push(self.fw_chain());
        }
        if self.uses_svc() {
            v.push(self.svc_chain.clone());
        }
        if self.uses_svl() {
            v.push(self.svl_chain());
        }
        v.extend(self.pick(&self.cats.reachable).map(|(_, sep)| sep.clone()));
        v
    }
}

/// The port of `svc` named `name` with `proto`, `port`, `node_port` and its
/// endpoints at `target` (None: the endpoints' own ports).
fn view(
    svc: &Service,
    name: String,
    proto: &'static str,
    port: u16,
    node_port: Option<u16>,
    target: Option<u16>,
) -> PortView {
    let endpoints = svc
        .endpoints
        .iter()
        .map(|ep| {
            let ep = Endpoint {
                ip: ep.ip,
                port: target.unwrap_or(ep.port),
            };
            (ep, kube_sep_chain(&name, proto, &ep.host_port()))
        })
        .collect();
    let cats = if topology::all_plain(svc) {
        topology::plain(svc.endpoints.len())
    } else {
        topology::categorize(svc, node_port)
    };
    PortView {
        svc_chain: kube_svc_chain(&name, proto),
        name,
        proto,
        port,
        node_port,
        endpoints,
        cats,
        int_local: topology::internal_policy_local(svc),
        ext_local: topology::external_policy_local(svc),
        accessible: topology::externally_accessible(svc, node_port),
        firewalled: !svc.spec.ingress_ips.is_empty() && !svc.spec.source_ranges.is_empty(),
        uses_cluster: topology::uses_cluster_endpoints(svc, node_port),
        uses_local: topology::uses_local_endpoints(svc, node_port),
    }
}

/// The service's ports in order; the first is named as every synthetic service's
/// one port always was (`names::svc_chain`, `names::sep_chain` for TCP), so N x E
/// renders as before.
pub fn views(svc: &Service) -> Vec<PortView> {
    let mut out = Vec::with_capacity(1 + svc.spec.extra_ports.len());
    out.push(view(
        svc,
        svc.port_name(),
        svc.spec.protocol.lower(),
        svc.port,
        svc.spec.node_port,
        None,
    ));
    for p in &svc.spec.extra_ports {
        let name = format!(
            "{}/{}:{}",
            crate::floor::model::NAMESPACE,
            svc.name(),
            p.name
        );
        out.push(view(
            svc,
            name,
            p.protocol.lower(),
            p.port,
            p.node_port,
            Some(p.target_port),
        ));
    }
    out
}
