//! One service as kube-proxy's nftables proxier walks it (pkg/proxy/nftables/proxier.go
//! `syncProxyRules`): one service port at a time (`svcPortMap`), each with its own
//! chains, named `<prefix>-<HASH8>-kpbench/svc-<i>/<proto>/<port name>`, and its
//! endpoints at the port's target port, sorted into kube-proxy's categories
//! (`proxy.CategorizeEndpoints`).
//!
//! What one port writes, in knftables' call order:
//!
//! 1. its chains ([`Op::Chain`], `ensureChain`): the endpoint chains of every locally
//!    reachable endpoint (1.35 always; 1.36 only with ClientIP affinity), the cluster
//!    policy chain `service-`, the local policy chain `local-`, the external chain
//!    `external-`;
//! 2. its elements ([`Op::Elem`], `ensureElem`), the firewall chain `firewall-` among
//!    them where kube-proxy ensures it (after the external IPs, before the
//!    load-balancer IPs): the ClusterIP in `cluster-ips`; in `service-ips` the ClusterIP
//!    to the internal chain, each external and load-balancer IP to the external chain;
//!    `firewall-ips`; `service-nodeports`; and what has no endpoints in
//!    `no-endpoint-services` / `no-endpoint-nodeports` (`goto reject-chain` with no
//!    endpoint at all, `drop` under a Local policy with no local endpoint); 1.36's
//!    `hairpin-connections` tuples last;
//! 3. its rules ([`Stmt`]), when the port changed: the ClusterIP's off-cluster
//!    masquerade (1.35), the external chain's, the firewall's, the affinity sets
//!    (`add set affinity-..`), the policy chains' dispatch, the endpoint chains'.
//!
//! 1.36 (PRs #135800, #136499, commit 475f9622c8 "Squash nftables endpoint chains into
//! service vmap") has no `mark-for-masquerade` chain: where 1.35 jumps to it, 1.36
//! writes the mark itself (`mark set mark or 0x00004000`, kube-proxy's
//! `masqueradeRule`); a policy chain without affinity DNATs through one
//! `numgen random mod N map`; with affinity it keeps 1.35's form (`ip saddr @affinity-..
//! goto endpoint-..` per endpoint, then `numgen ... vmap` to endpoint chains that
//! `update @affinity-.. { ip saddr }` and DNAT) without the per-endpoint hairpin jump.

use std::fmt::Write;

use super::Elem;
use crate::floor::model::{pod_cidr, Endpoint, Service, NAMESPACE};
use crate::floor::names::nft_hash_and_truncate;
use crate::floor::spec::TrafficPolicy;
use crate::floor::sync::KubeProxyVersion;

/// kube-proxy's masquerade mark, as the rules write it.
use super::MASQ_MARK;

/// One service port with its endpoints in kube-proxy's categories.
pub(crate) struct PortView<'a> {
    pub svc: &'a Service,
    /// `kpbench/svc-<i>:<port name>`: the comment of its no-endpoint elements.
    pub name: String,
    /// `kpbench/svc-<i>/<proto>/<port name>`: its chains' name base.
    pub base: String,
    pub proto: &'static str,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Endpoints for the Cluster policy: the ready ones, else the serving terminating
    /// ones.
    pub cluster: Vec<Endpoint>,
    /// Endpoints for a Local policy: the node's ready ones, else its serving
    /// terminating ones (empty unless a policy is Local).
    pub local: Vec<Endpoint>,
    /// Every endpoint this node may DNAT to: `allLocallyReachableEndpoints`.
    pub reachable: Vec<Endpoint>,
    /// `hasEndpoints`: any usable endpoint on any node.
    pub has_endpoints: bool,
}

/// The service's ports in order; the first (`http`, TCP by default) is named as every
/// synthetic service's one port always was.
pub(crate) fn views(svc: &Service) -> Vec<PortView<'_>> {
    svc.ports()
        .into_iter()
        .map(|p| {
            let proto = p.protocol.lower();
            let at_port = |e: &Endpoint| Endpoint {
                ip: e.ip,
                port: p.target_port,
            };
            let pick = |local_only: bool| -> Vec<Endpoint> {
                let of = |f: &dyn Fn(&crate::floor::spec::Conditions) -> bool| -> Vec<Endpoint> {
                    svc.endpoints
                        .iter()
                        .filter(|e| {
                            let c = svc.conditions(e);
                            (!local_only || c.local) && f(&c)
                        })
                        .map(at_port)
                        .collect()
                };
                let ready = of(&|c| c.ready);
                if ready.is_empty() {
                    of(&|c| c.serving && c.terminating)
                } else {
                    ready
                }
            };
            let uses_local = uses_local_endpoints(svc);
            let uses_cluster = uses_cluster_endpoints(svc);
            let cluster = pick(false);
            let local = if uses_local { pick(true) } else { Vec::new() };
            let has_endpoints = !cluster.is_empty() || !local.is_empty();
            let reachable = match (uses_local, uses_cluster) {
                (false, _) => cluster.clone(),
                (true, false) => local.clone(),
                (true, true) => {
                    let mut all = cluster.clone();
                    all.extend(local.iter().filter(|e| !cluster.contains(e)).copied());
                    all
                }
            };
            PortView {
                svc,
                name: format!("{NAMESPACE}/{}:{}", svc.name(), p.name),
                base: format!("{NAMESPACE}/{}/{proto}/{}", svc.name(), p.name),
                proto,
                port: p.port,
                node_port: p.node_port,
                cluster,
                local,
                reachable,
                has_endpoints,
            }
        })
        .collect()
}

/// `ExternallyAccessible`: a node port, a load-balancer IP or an external IP.
fn externally_accessible(svc: &Service) -> bool {
    svc.spec.kind.has_node_ports()
        || !svc.spec.ingress_ips.is_empty()
        || !svc.spec.external_ips.is_empty()
}

/// `UsesLocalEndpoints`.
fn uses_local_endpoints(svc: &Service) -> bool {
    svc.spec.internal_policy == TrafficPolicy::Local
        || (svc.spec.external_policy == TrafficPolicy::Local && externally_accessible(svc))
}

/// `UsesClusterEndpoints`.
fn uses_cluster_endpoints(svc: &Service) -> bool {
    svc.spec.internal_policy == TrafficPolicy::Cluster
        || (externally_accessible(svc) && svc.spec.external_policy == TrafficPolicy::Cluster)
}

/// What one port ensures before its rules, in kube-proxy's order.
pub(crate) enum Op {
    Chain(String),
    Elem(Elem),
}

/// Which part of a sync a statement belongs to in the floor's two transactions:
/// `Prepare` (affinity sets and endpoint-chain rules, which nothing refers to yet) or
/// `Publish` (the rules that lead into them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Prepare,
    Publish,
}

/// One statement of a port's rules: a rule (`chain`, text) or a line of its own.
pub(crate) struct Stmt {
    pub part: Part,
    pub chain: Option<String>,
    pub text: String,
}

impl PortView<'_> {
    fn chain(&self, prefix: &str) -> String {
        format!("{prefix}-{}", nft_hash_and_truncate(&self.base))
    }

    /// `service-..`: the Cluster policy chain.
    pub fn service_chain(&self) -> String {
        self.chain("service")
    }

    fn local_chain(&self) -> String {
        self.chain("local")
    }

    fn external_chain(&self) -> String {
        self.chain("external")
    }

    fn firewall_chain(&self) -> String {
        self.chain("firewall")
    }

    fn endpoint_base(&self, ep: &Endpoint) -> String {
        nft_hash_and_truncate(&format!("{}__{}/{}", self.base, ep.ip, ep.port))
    }

    /// `endpoint-..` of one endpoint.
    pub fn endpoint_chain(&self, ep: &Endpoint) -> String {
        format!("endpoint-{}", self.endpoint_base(ep))
    }

    /// `affinity-..` of one endpoint: the set of clients that stick to it.
    pub fn affinity_set(&self, ep: &Endpoint) -> String {
        format!("affinity-{}", self.endpoint_base(ep))
    }

    fn affinity(&self) -> Option<u32> {
        self.svc.spec.affinity_timeout_s
    }

    fn internal_local(&self) -> bool {
        self.svc.spec.internal_policy == TrafficPolicy::Local
    }

    fn external_local(&self) -> bool {
        self.svc.spec.external_policy == TrafficPolicy::Local
    }

    /// Whether this release writes endpoint chains for the port.
    fn endpoint_chains(&self, release: KubeProxyVersion) -> bool {
        release == KubeProxyVersion::V1_35 || self.affinity().is_some()
    }

    fn uses_cluster_chain(&self) -> bool {
        !self.cluster.is_empty() && uses_cluster_endpoints(self.svc)
    }

    fn uses_local_chain(&self) -> bool {
        !self.local.is_empty() && uses_local_endpoints(self.svc)
    }

    fn uses_external_chain(&self) -> bool {
        self.has_endpoints && externally_accessible(self.svc)
    }

    fn uses_firewall(&self) -> bool {
        !self.svc.spec.ingress_ips.is_empty() && !self.svc.spec.source_ranges.is_empty()
    }

    /// `internalTrafficChain`.
    fn internal_chain(&self) -> String {
        if self.internal_local() {
            self.local_chain()
        } else {
            self.service_chain()
        }
    }

    fn has_internal_endpoints(&self) -> bool {
        self.has_endpoints && !(self.internal_local() && self.local.is_empty())
    }

    fn has_external_endpoints(&self) -> bool {
        self.has_endpoints && !(self.external_local() && self.local.is_empty())
    }

    /// The chains this port uses with `release`'s rules, in `ensureChain` order.
    pub fn chains(&self, release: KubeProxyVersion) -> Vec<String> {
        let mut v = Vec::new();
        if self.endpoint_chains(release) {
            v.extend(self.reachable.iter().map(|ep| self.endpoint_chain(ep)));
        }
        if self.uses_cluster_chain() {
            v.push(self.service_chain());
        }
        if self.uses_local_chain() {
            v.push(self.local_chain());
        }
        if self.uses_external_chain() {
            v.push(self.external_chain());
        }
        if self.uses_firewall() {
            v.push(self.firewall_chain());
        }
        v
    }

    /// The affinity sets this port uses (none without ClientIP affinity).
    pub fn affinity_sets(&self) -> Vec<String> {
        match self.affinity() {
            Some(_) => self
                .reachable
                .iter()
                .map(|ep| self.affinity_set(ep))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Chains and elements in kube-proxy's order (the firewall chain among the
    /// elements, where kube-proxy ensures it).
    pub fn ops(&self, release: KubeProxyVersion) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .chains(release)
            .into_iter()
            .filter(|c| !self.uses_firewall() || *c != self.firewall_chain())
            .map(Op::Chain)
            .collect();
        let key = |ip: &dyn std::fmt::Display| format!("{ip} . {} . {}", self.proto, self.port);
        // `internalTrafficFilterVerdict` / `externalTrafficFilterVerdict`: reject with no
        // endpoint at all, drop under a Local policy without a local one.
        let verdict = if self.has_endpoints {
            "drop"
        } else {
            "goto reject-chain"
        };
        let no_endpoint = |container: &'static str, k: String| {
            Op::Elem(Elem {
                container,
                key: k,
                value: Some(verdict.to_string()),
                comment: Some(self.name.clone()),
            })
        };
        let goto = |container: &'static str, k: String, chain: String| {
            Op::Elem(Elem {
                container,
                key: k,
                value: Some(format!("goto {chain}")),
                comment: None,
            })
        };
        ops.push(Op::Elem(Elem {
            container: "cluster-ips",
            key: self.svc.vip.to_string(),
            value: None,
            comment: None,
        }));
        if self.has_internal_endpoints() {
            ops.push(goto(
                "service-ips",
                key(&self.svc.vip),
                self.internal_chain(),
            ));
        } else {
            ops.push(no_endpoint("no-endpoint-services", key(&self.svc.vip)));
        }
        let spec = &self.svc.spec;
        for ip in &spec.external_ips {
            if self.has_endpoints {
                ops.push(goto("service-ips", key(ip), self.external_chain()));
            }
            if !self.has_external_endpoints() {
                ops.push(no_endpoint("no-endpoint-services", key(ip)));
            }
        }
        if self.uses_firewall() {
            ops.push(Op::Chain(self.firewall_chain()));
        }
        for ip in &spec.ingress_ips {
            if self.has_endpoints {
                ops.push(goto("service-ips", key(ip), self.external_chain()));
            }
            if self.uses_firewall() {
                ops.push(goto("firewall-ips", key(ip), self.firewall_chain()));
            }
        }
        if !self.has_external_endpoints() {
            for ip in &spec.ingress_ips {
                ops.push(no_endpoint("no-endpoint-services", key(ip)));
            }
        }
        if let Some(np) = self.node_port {
            let k = format!("{} . {np}", self.proto);
            if self.has_endpoints {
                ops.push(goto("service-nodeports", k.clone(), self.external_chain()));
            }
            if !self.has_external_endpoints() {
                ops.push(no_endpoint("no-endpoint-nodeports", k));
            }
        }
        if release == KubeProxyVersion::V1_36 {
            ops.extend(self.reachable.iter().map(|ep| {
                Op::Elem(Elem {
                    container: super::HAIRPIN_SET,
                    key: format!("{ip} . {ip} . {} . {}", self.proto, ep.port, ip = ep.ip),
                    value: None,
                    comment: None,
                })
            }));
        }
        ops
    }

    /// The elements of [`PortView::ops`].
    pub fn elements(&self, release: KubeProxyVersion) -> Vec<Elem> {
        self.ops(release)
            .into_iter()
            .filter_map(|op| match op {
                Op::Elem(e) => Some(e),
                Op::Chain(_) => None,
            })
            .collect()
    }

    /// The port's rules (and affinity-set statements) in kube-proxy's order.
    pub fn statements(&self, release: KubeProxyVersion) -> Vec<Stmt> {
        let mut out = Vec::new();
        let mut rule = |part: Part, chain: String, text: String| {
            out.push(Stmt {
                part,
                chain: Some(chain),
                text,
            })
        };
        let masq = match release {
            KubeProxyVersion::V1_35 => "jump mark-for-masquerade".to_string(),
            KubeProxyVersion::V1_36 => format!("mark set mark or {MASQ_MARK}"),
        };
        if self.has_internal_endpoints() && release == KubeProxyVersion::V1_35 {
            rule(
                Part::Publish,
                self.internal_chain(),
                format!(
                    "ip daddr {} {} dport {} ip saddr != {} {masq}",
                    self.svc.vip,
                    self.proto,
                    self.port,
                    pod_cidr()
                ),
            );
        }
        if self.uses_external_chain() {
            let ext = self.external_chain();
            let svc_chain = self.service_chain();
            if !self.external_local() {
                rule(Part::Publish, ext.clone(), masq.clone());
            } else {
                rule(
                    Part::Publish,
                    ext.clone(),
                    format!(
                        "ip saddr {} goto {svc_chain} comment \"short-circuit pod traffic\"",
                        pod_cidr()
                    ),
                );
                rule(
                    Part::Publish,
                    ext.clone(),
                    format!("fib saddr type local {masq} comment \"masquerade local traffic\""),
                );
                rule(
                    Part::Publish,
                    ext.clone(),
                    format!(
                        "fib saddr type local goto {svc_chain} comment \"short-circuit local traffic\""
                    ),
                );
            }
            if self.has_external_endpoints() {
                let policy = if self.external_local() {
                    self.local_chain()
                } else {
                    svc_chain
                };
                rule(Part::Publish, ext, format!("goto {policy}"));
            }
        }
        if self.uses_firewall() {
            let sources: Vec<String> = self
                .svc
                .spec
                .source_ranges
                .iter()
                .map(|(net, len)| format!("{net}/{len}"))
                .collect();
            rule(
                Part::Publish,
                self.firewall_chain(),
                format!("ip saddr != {{ {} }} drop", sources.join(" , ")),
            );
        }
        if let Some(timeout) = self.affinity() {
            for set in self.affinity_sets() {
                out.push(Stmt {
                    part: Part::Prepare,
                    chain: None,
                    text: format!(
                        "add set {} {set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}",
                        super::TABLE
                    ),
                });
            }
        }
        if self.uses_cluster_chain() {
            self.dispatch(&mut out, self.service_chain(), &self.cluster, release);
        }
        if self.uses_local_chain() {
            self.dispatch(&mut out, self.local_chain(), &self.local, release);
        }
        if self.endpoint_chains(release) {
            self.endpoint_rules(&mut out, release);
        }
        out
    }

    /// `writeServiceToEndpointRules` for one policy chain.
    fn dispatch(
        &self,
        out: &mut Vec<Stmt>,
        chain: String,
        endpoints: &[Endpoint],
        release: KubeProxyVersion,
    ) {
        let mut rule = |text: String| {
            out.push(Stmt {
                part: Part::Publish,
                chain: Some(chain.clone()),
                text,
            })
        };
        if !self.endpoint_chains(release) {
            let mut map = String::new();
            for (i, ep) in endpoints.iter().enumerate() {
                if i > 0 {
                    map.push_str(" , ");
                }
                let _ = write!(map, "{i} : {} . {}", ep.ip, ep.port);
            }
            rule(format!(
                "meta l4proto {} dnat ip addr . port to numgen random mod {} map {{ {map} }}",
                self.proto,
                endpoints.len()
            ));
            return;
        }
        if self.affinity().is_some() {
            for ep in endpoints {
                rule(format!(
                    "ip saddr @{} goto {}",
                    self.affinity_set(ep),
                    self.endpoint_chain(ep)
                ));
            }
        }
        let mut vmap = String::new();
        for (i, ep) in endpoints.iter().enumerate() {
            if i > 0 {
                vmap.push_str(" , ");
            }
            let _ = write!(vmap, "{i} : goto {}", self.endpoint_chain(ep));
        }
        rule(format!(
            "numgen random mod {} vmap {{ {vmap} }}",
            endpoints.len()
        ));
    }

    /// Each endpoint chain: (1.35) hairpin masquerade, the affinity update, the DNAT.
    fn endpoint_rules(&self, out: &mut Vec<Stmt>, release: KubeProxyVersion) {
        for ep in &self.reachable {
            let chain = self.endpoint_chain(ep);
            let mut rule = |text: String| {
                out.push(Stmt {
                    part: Part::Prepare,
                    chain: Some(chain.clone()),
                    text,
                })
            };
            if release == KubeProxyVersion::V1_35 {
                rule(format!("ip saddr {} jump mark-for-masquerade", ep.ip));
            }
            if self.affinity().is_some() {
                rule(format!("update @{} {{ ip saddr }}", self.affinity_set(ep)));
            }
            rule(format!(
                "meta l4proto {} dnat to {}",
                self.proto,
                ep.host_port()
            ));
        }
    }
}
